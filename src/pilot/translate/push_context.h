// One consistent view of the mesh for a push: the service model and the validated Istio
// resources, indexed once, with the scoping rules (exportTo, Sidecar egress, DestinationRule
// lookup order, VirtualService per host) that translation applies for each proxy.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "config/resource.h"
#include "pilot/model/service.h"

namespace mesh::pilot::translate {

namespace networking = config::networking;

// The proxy a translation is for.
struct ProxyIdentity {
  std::string id;  // "sidecar~10.0.0.5~reviews-v1-abc.default~default.svc.cluster.local"
  std::string namespace_name = "default";
  std::string workload_name;
  std::map<std::string, std::string> labels;
  std::string service_account;
  std::string ip;  // the workload's IP: endpoints with this address are this proxy's services
  // Where the app listens when not on the endpoint's target port (target port -> app port).
  std::map<uint32_t, uint32_t> app_ports;
  // Outbound listeners bind "<outbound_bind>:<service port>" or, when it has a port,
  // "<outbound_bind>" (port 0: the OS picks); empty: TranslateOptions::outbound_address.
  std::string outbound_bind;
  std::string admin_address;  // the proxy's admin API, as it reported it
  // Istio's INTERCEPTION_MODE: "REDIRECT" when the workload's traffic is captured.
  std::string interception_mode;
  // Workload certificates (cert-chain.pem, key.pem, root-cert.pem); empty: no mTLS.
  std::string cert_dir;

  // A gateway (Istio's "router" node type, id "router~..."), not a sidecar.
  bool isRouter() const { return id.rfind("router~", 0) == 0; }
  // Istio's capture layout (virtualOutbound, virtualInbound): a captured sidecar that does not
  // ask for its outbound listeners somewhere else.
  bool captured() const {
    return interception_mode == "REDIRECT" && outbound_bind.empty() && !isRouter();
  }
};

// A workload's inbound mTLS per PeerAuthentication.
enum class MtlsMode { kDisable, kPermissive, kStrict };

struct PushOptions {
  std::string root_namespace = "istio-system";
  std::string domain_suffix = "cluster.local";
  // MeshConfig.outboundTrafficPolicy.mode for captured sidecars without a Sidecar saying
  // otherwise: false is ALLOW_ANY (unknown destinations pass through), true REGISTRY_ONLY.
  bool registry_only = false;
  std::string trust_domain = "cluster.local";
};

// Immutable once built; safe to share between translations on one thread. Keeps pointers into
// `registry` and `resources`, which must outlive it and not change while it is in use.
class PushContext {
 public:
  PushContext(const model::ServiceRegistry& registry,
              const std::vector<config::Resource>& resources, PushOptions options = {});

  const PushOptions& options() const { return options_; }
  const model::ServiceRegistry& registry() const { return registry_; }

  // The Sidecar that applies to the proxy: one selecting it in its namespace, else its
  // namespace's selector-less one, else the root namespace's; nullptr if none.
  const config::Resource* sidecarFor(const ProxyIdentity& proxy) const;

  // Services the proxy may call: exported to its namespace, within its Sidecar's egress hosts
  // (plus the destinations of VirtualServices the Sidecar imports), in registry order.
  std::vector<const model::Service*> visibleServices(const ProxyIdentity& proxy,
                                                     const config::Resource* sidecar) const;

  // The VirtualService bound to the mesh (sidecars) that owns `service` for this proxy: exported
  // to its namespace and allowed by its Sidecar; an exact host beats a wildcard, then resource
  // order. nullptr if none.
  const config::Resource* virtualServiceFor(const model::Service& service,
                                            const ProxyIdentity& proxy,
                                            const config::Resource* sidecar) const;

  // The DestinationRule for a host as seen from the proxy: proxy namespace, then the service's
  // namespace, then the root namespace; exact host beats wildcard; exportTo and workloadSelector
  // respected; several rules for one host in one namespace count as one merged rule. nullptr if
  // none.
  const config::Resource* destinationRuleFor(const model::Service& service,
                                             const ProxyIdentity& proxy) const;

  // A service by hostname as a proxy in `namespace_name` sees it: its own namespace's first.
  const model::Service* findService(const std::string& hostname,
                                    const std::string& namespace_name) const;

  // The Gateways whose selector matches the proxy's labels (a router's config).
  std::vector<const config::Resource*> gatewaysFor(const ProxyIdentity& proxy) const;
  // The VirtualServices bound to a Gateway: their gateways name it as "<ns>/<name>", or as
  // "<name>" from the Gateway's own namespace. In resource order.
  std::vector<const config::Resource*> virtualServicesFor(const config::Resource& gateway) const;

  // The inbound mTLS mode of the proxy's workload on `port` (its app's port) per
  // PeerAuthentication: the workload's own (port-level first), its namespace's, the root
  // namespace's; PERMISSIVE when none decides.
  MtlsMode mtlsModeFor(const ProxyIdentity& proxy, uint32_t port) const;

  // True if some VirtualService uses sourceLabels or some DestinationRule a workloadSelector,
  // i.e. the outbound view depends on the proxy's labels, not just its namespace and Sidecar.
  bool dependsOnProxyLabels() const { return depends_on_labels_; }

 private:
  bool sidecarImports(const config::Resource* sidecar, const ProxyIdentity& proxy,
                      const std::string& namespace_name, const std::string& host) const;

  const model::ServiceRegistry& registry_;
  PushOptions options_;
  std::vector<const model::Service*> services_;
  std::vector<const config::Resource*> virtual_services_;  // bound to "mesh"
  // DestinationRules, those for one host in one namespace (same exportTo and selector) merged
  // as Istio merges them: subsets appended (first name wins), the first trafficPolicy kept.
  std::deque<config::Resource> merged_rules_;
  std::vector<const config::Resource*> destination_rules_;
  std::vector<const config::Resource*> sidecars_;
  std::vector<const config::Resource*> gateways_;
  std::vector<const config::Resource*> peer_authentications_;
  std::vector<const config::Resource*> gateway_virtual_services_;  // naming any gateway
  bool depends_on_labels_ = false;
};

// Istio's exportTo: empty or "*" is everyone, "." the resource's own namespace, else names.
bool exportedTo(const std::vector<std::string>& export_to, const std::string& own_namespace,
                const std::string& proxy_namespace);
// True if `pattern` ("*", "*.example.com" or a name) covers `host` (which may be a wildcard too).
bool hostMatches(const std::string& pattern, const std::string& host);

}  // namespace mesh::pilot::translate
