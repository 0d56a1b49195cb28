// Computes one proxy's resources (api/proxy/v1 Bootstrap: node, listeners, route configurations,
// clusters) from a PushContext, following Istio's naming and semantics. What proxies of one
// namespace with one Sidecar share (the outbound view) is computed once and cached.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pilot/translate/push_context.h"
#include "proxy/v1/config.pb.h"

namespace mesh::pilot::translate {

struct TranslateOptions {
  // Address of the outbound listener (HTTP or TCP) for a port. Default "0.0.0.0:<port>" (as with
  // transparent capture, where the address is nominal). Must be distinct per port.
  std::function<std::string(uint32_t port)> outbound_address;
  // Address of the inbound listener for one of the proxy's own ports. Default "<proxy ip>:<port>".
  std::function<std::string(const ProxyIdentity& proxy, uint32_t port)> inbound_address;
  // Where the app listens; inbound clusters point at <app_address>:<endpoint port>.
  std::string app_address = "127.0.0.1";
};

struct Translation {
  mesh::proxy::v1::Bootstrap bootstrap;
  // Config that could not be (fully) translated, one line each, naming the resource.
  std::vector<std::string> warnings;
};

// The ClusterLoadAssignments of an outbound view's clusters, each serialized once as a
// DiscoveryResponse `resources` entry (field 2: a google.protobuf.Any holding a
// mesh.proxy.v1.ClusterLoadAssignment), so that a response is the concatenation of entries.
// Immutable after construction apart from the cache of changedSince, which is thread-safe.
class AssignmentSet {
 public:
  // `assignments` in any order; names must be distinct.
  explicit AssignmentSet(const std::vector<mesh::proxy::v1::ClusterLoadAssignment>& assignments);
  // `base` with the assignments of the same names replaced (names not in `base` are ignored).
  AssignmentSet(const AssignmentSet& base,
                const std::vector<mesh::proxy::v1::ClusterLoadAssignment>& replacements);

  // Every entry (a proxy's first push).
  const std::shared_ptr<const std::string>& all() const { return all_; }
  size_t size() const { return entries_.size(); }
  // The entries that are new or differ from `before` (all of them when `before` is null; none
  // when it is this set). Computed once per `before` and shared by every proxy that had it.
  std::shared_ptr<const std::string> changedSince(
      const std::shared_ptr<const AssignmentSet>& before) const;
  // Parsed entries (tests, debugging); by cluster name.
  static std::vector<mesh::proxy::v1::ClusterLoadAssignment> parse(std::string_view entries);

 private:
  struct Entry {
    std::string name;
    size_t offset = 0;  // in *all_
    size_t size = 0;
    size_t hash = 0;
  };
  std::string_view bytes(const Entry& e) const { return {all_->data() + e.offset, e.size}; }

  std::vector<Entry> entries_;  // by name
  std::shared_ptr<const std::string> all_;
  mutable std::mutex mu_;
  mutable std::vector<
      std::pair<std::weak_ptr<const AssignmentSet>, std::shared_ptr<const std::string>>>
      diffs_;
};

// translate()'s result in two parts whose serializations, concatenated (shared first), parse to
// the same Bootstrap (protobuf appends repeated fields of concatenated messages in order).
// `shared` is the outbound view (route configurations, clusters), serialized
// deterministically once per view and the same object for every proxy with that view; `own` is
// the proxy's node, outbound listeners and inbound listeners, clusters and routes. Pushing to many
// proxies then costs one serialization of the big part, not one per proxy.
// In the split form the outbound clusters are `eds`: their endpoints are not in `shared` but in
// `assignments` (one per outbound cluster, shared per view like `shared`). Inbound clusters keep
// their endpoints inline.
struct SplitTranslation {
  std::shared_ptr<const std::string> shared;
  size_t shared_hash = 0;  // of *shared, computed once with it: a cheap "surely different"
  mesh::proxy::v1::Bootstrap own;
  std::shared_ptr<const AssignmentSet> assignments;
  std::vector<std::string> warnings;
};

// Not thread-safe (it caches); one Translator per PushContext, which it must not outlive.
class Translator {
 public:
  explicit Translator(const PushContext& push, TranslateOptions options = {});

  Translation translate(const ProxyIdentity& proxy);
  SplitTranslation translateSplit(const ProxyIdentity& proxy);

  // Outbound views computed and reused so far (for tests and debug pages).
  size_t viewsBuilt() const { return views_built_; }
  size_t viewsReused() const { return views_reused_; }
  // Views taken over from `inherit` with their changed assignments recomputed.
  size_t viewsRefreshed() const { return views_refreshed_; }

  // The config changed from `previous`'s only in the endpoints of `changed_services`
  // ("namespace/name"): the outbound views `previous` built are taken over as they are needed,
  // only the assignments of those services' clusters computed again. Call before translating.
  // `previous` may go away afterwards (views hold no pointer into its registry).
  void inherit(const Translator& previous, std::set<std::string> changed_services);

 private:
  // What an outbound cluster's endpoints are computed from.
  struct ClusterSource {
    std::string cluster;
    std::string host;
    std::string service_namespace;
    std::string service_name;
    uint32_t port = 0;
    std::map<std::string, std::string> selector;  // a subset's labels
    // Set when the cluster's mTLS settings follow its endpoints (auto mTLS, ISTIO_MUTUAL's
    // SANs): what they were derived from, to tell whether an endpoint-only change alters them.
    std::string identity_key;
  };
  // The big parts are shared (not changed after buildOutbound) so that a refreshed copy is cheap.
  struct OutboundView {
    std::shared_ptr<std::vector<mesh::proxy::v1::Cluster>> clusters =
        std::make_shared<std::vector<mesh::proxy::v1::Cluster>>();
    std::shared_ptr<std::vector<ClusterSource>> sources =
        std::make_shared<std::vector<ClusterSource>>();  // one per cluster
    std::shared_ptr<std::vector<mesh::proxy::v1::RouteConfiguration>> route_configs =
        std::make_shared<std::vector<mesh::proxy::v1::RouteConfiguration>>();
    std::vector<uint32_t> http_ports;  // one outbound listener each, ascending
    // Opaque TCP ports (TCP, TLS, HTTPS): one tcpProxy listener each, ascending. For a captured
    // proxy, a service with addresses gets one per VIP (vip set) instead of the port's.
    struct TcpPort {
      uint32_t port = 0;
      std::string vip;  // "": the port's wildcard listener
      mesh::proxy::v1::TcpProxy tcp;
    };
    std::vector<TcpPort> tcp_ports;
    bool captured = false;       // Istio's capture layout (ProxyIdentity::captured)
    bool registry_only = false;  // unknown destinations: BlackHoleCluster, not Passthrough
    // A router's: route configurations "http.<port>", one listener per port, ascending.
    std::shared_ptr<std::vector<mesh::proxy::v1::RouteConfiguration>> gateway_route_configs =
        std::make_shared<std::vector<mesh::proxy::v1::RouteConfiguration>>();
    std::vector<uint32_t> gateway_ports;
    std::vector<std::string> warnings;
    // A Bootstrap of clusters and route_configs, serialized deterministically. (Outbound
    // listeners are per proxy: their address may be the proxy's outbound_bind.)
    // Its clusters are `eds`, without endpoints: those are in `assignments`.
    std::shared_ptr<const std::string> bytes;
    size_t bytes_hash = 0;
    std::shared_ptr<const AssignmentSet> assignments;
  };
  // A proxy's own endpoints (those with its IP) in registry order, by IP; built on first use.
  using InboundIndex =
      std::map<std::string, std::vector<std::pair<const model::Service*, const model::Endpoint*>>>;
  const InboundIndex& inboundIndex();
  void addNode(const ProxyIdentity& proxy, mesh::proxy::v1::Bootstrap* out);
  void addOutboundListeners(const ProxyIdentity& proxy, const OutboundView& view,
                            mesh::proxy::v1::Bootstrap* out);
  std::shared_ptr<const OutboundView> outboundView(const ProxyIdentity& proxy);
  std::shared_ptr<const OutboundView> buildOutbound(const ProxyIdentity& proxy,
                                                    const config::Resource* sidecar);
  void addInbound(const ProxyIdentity& proxy, mesh::proxy::v1::Bootstrap* out,
                  std::vector<std::string>* warnings);
  // Inbound TLS on `l` per the PeerAuthentication for the proxy's workload and `port` (0: the
  // workload's own mode, for ports without a listener).
  void addPeerAuthentication(const ProxyIdentity& proxy, uint32_t port,
                             mesh::proxy::v1::Listener* l, std::vector<std::string>* warnings);
  std::shared_ptr<const AssignmentSet> refreshedAssignments(const OutboundView& view);
  // True if an endpoint-only change altered what a cluster's mTLS settings came from.
  bool identitiesChanged(const OutboundView& view);
  const model::Service* findIndexed(const std::string& namespace_name, const std::string& host);

  const PushContext& push_;
  TranslateOptions options_;
  // Keyed by namespace, Sidecar and (only when config depends on them) the proxy's labels.
  std::map<std::string, std::shared_ptr<const OutboundView>> views_;
  size_t views_built_ = 0;
  size_t views_reused_ = 0;
  size_t views_refreshed_ = 0;
  std::map<std::string, std::shared_ptr<const OutboundView>> inherited_;
  std::set<std::string> changed_services_;
  std::map<std::string, const model::Service*> service_index_;  // "namespace/host"
  std::unique_ptr<InboundIndex> inbound_index_;
};

// `m` serialized deterministically (map entries in key order): equal messages give equal bytes.
std::string serializeDeterministic(const google::protobuf::MessageLite& m);

// Protobuf wire format, for messages built by hand from pre-serialized parts (concatenated
// parts of one message merge): a varint, its encoded size, and a length-delimited field (wire
// type 2) of field number < 16.
void appendVarint(std::string* out, uint64_t v);
size_t varintSize(uint64_t v);
void appendBytesField(std::string* out, int field, std::string_view value);

// Istio's clusters and listeners of a captured sidecar (ProxyIdentity::captured).
inline constexpr const char* kPassthroughCluster = "PassthroughCluster";
inline constexpr const char* kBlackHoleCluster = "BlackHoleCluster";
inline constexpr const char* kInboundPassthroughCluster = "InboundPassthroughCluster";
inline constexpr uint32_t kVirtualOutboundPort = 15001;
inline constexpr uint32_t kVirtualInboundPort = 15006;

// Istio's cluster names: "outbound|9080|v1|reviews.default.svc.cluster.local",
// "inbound|9080||".
std::string outboundClusterName(uint32_t port, const std::string& subset, const std::string& host);
std::string inboundClusterName(uint32_t port);
// The pod name in the proxy's Istio id (core/proxy_id.h); "" if the id has no such part.
std::string podName(const ProxyIdentity& proxy);

// The names a proxy in `proxy_namespace` may use for a service: the FQDN and, for Kubernetes
// style hosts, "name.ns.svc", "name.ns" and (same namespace only) "name". No ":port" forms: the
// proxy matches domains without the port.
std::vector<std::string> serviceDomains(const model::Service& service,
                                        const std::string& proxy_namespace,
                                        const std::string& domain_suffix);

}  // namespace mesh::pilot::translate
