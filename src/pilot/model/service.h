// Pilot's platform-neutral service model: a Service (hostname, ports with protocol) and the
// Endpoints behind it, as every registry (ServiceEntry, Kubernetes, ...) reports them, and the
// small ServiceRegistry interface translation reads them through.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mesh::pilot::model {

enum class Protocol { kUnknown, kHttp, kHttp2, kGrpc, kTcp, kTls, kHttps };

// "HTTP", "http2", "GRPC", "TCP", "TLS", "HTTPS" (case-insensitive); "GRPC-WEB" is kGrpc and
// the appProtocol "kubernetes.io/h2c" is kHttp2.
// Anything else (MONGO, REDIS, "") is kUnknown.
Protocol parseProtocol(std::string_view name);
// Istio's port-name convention: "<protocol>[-<suffix>]" ("http-web", "grpc"); kUnknown otherwise.
Protocol protocolFromPortName(std::string_view port_name);
// The explicit protocol if given, else the one the port name implies.
Protocol resolveProtocol(std::string_view protocol, std::string_view port_name);
std::string_view protocolName(Protocol p);
// Ports the proxy serves with its HTTP connection manager. Unknown counts as HTTP: Istio sniffs
// such ports (HTTP/1.1, or HTTP/2 by its connection preface).
bool isHttp(Protocol p);

struct ServicePort {
  std::string name;
  uint32_t number = 0;
  Protocol protocol = Protocol::kUnknown;
  uint32_t target_port = 0;  // 0: same as number (endpoints may still name their own)
};

enum class Resolution { kStatic, kDns, kNone };

struct Service {
  std::string hostname;  // FQDN, e.g. "reviews.default.svc.cluster.local"; may be "*.example.com"
  std::string namespace_name;
  std::string name;  // short name: first label of a *.svc.<suffix> host, else the hostname
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> labels;
  std::vector<std::string> export_to;  // empty or "*": all namespaces; ".": own; else names
  Resolution resolution = Resolution::kStatic;
  bool mesh_external = false;
  // The service's virtual IPs (ServiceEntry addresses that are single IPs, a Kubernetes
  // Service's clusterIP): captured TCP traffic to VIP:port is this service's.
  std::vector<std::string> addresses;

  const ServicePort* port(uint32_t number) const;
  // True if a proxy in `namespace_name` may see this service (exportTo).
  bool visibleFrom(std::string_view proxy_namespace) const;
};

struct Endpoint {
  std::string address;  // IP, or a host name for DNS-resolved services
  // Endpoint port per service port name; a service port absent here uses its target port.
  std::map<std::string, uint32_t> ports;
  std::map<std::string, std::string> labels;
  std::string locality;  // "region/zone/subzone"
  std::string service_account;
  std::string namespace_name;
  std::string workload_name;
  uint32_t weight = 0;  // 0: default
  bool healthy = true;

  // The port traffic for `sp` goes to on this endpoint.
  uint32_t portFor(const ServicePort& sp) const;
};

// True if `labels` contains every key/value of `selector` (an empty selector matches all).
bool labelsMatch(const std::map<std::string, std::string>& selector,
                 const std::map<std::string, std::string>& labels);

// Where the service model comes from. Single-threaded: call from the thread that owns the
// registry. Pointers and references returned stay valid until the registry next changes.
class ServiceRegistry {
 public:
  virtual ~ServiceRegistry() = default;

  // Every service, in a stable order (by hostname, then namespace).
  virtual std::vector<const Service*> services() const = 0;
  // Endpoints of one service, healthy or not (callers filter).
  virtual const std::vector<Endpoint>& endpoints(const Service& service) const = 0;
  // Called after every change of services or endpoints, on the registry's thread.
  using ChangeCallback = std::function<void()>;
  virtual void onChange(ChangeCallback callback) = 0;
};

}  // namespace mesh::pilot::model
