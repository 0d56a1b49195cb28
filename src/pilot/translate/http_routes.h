// A VirtualService's routes for one listener port: one proxy route per HTTPMatchRequest (first
// match wins) with (weighted) clusters, rewrites, redirects, direct responses, timeouts, retries,
// faults, mirrors, CORS and header operations; tcp routes as a listener's tcpProxy.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "config/resource.h"
#include "pilot/translate/push_context.h"
#include "proxy/v1/config.pb.h"

namespace mesh::pilot::translate {

struct RouteContext {
  uint32_t port = 0;  // the listener (service) port the routes are for
  const ProxyIdentity* proxy = nullptr;
  std::string vs_namespace;  // short destination hosts are expanded with it
  std::string domain_suffix = "cluster.local";
  std::string where;  // "VirtualService default/reviews", for warnings
  // The gateway ("<ns>/<name>") the routes are for; "" for sidecars (the "mesh" gateway).
  std::string gateway;
  // The cluster for a destination (expanded host, subset or "", port or 0), or "" when the
  // destination does not exist for this proxy (unknown host or subset).
  std::function<std::string(const std::string& host, const std::string& subset, uint32_t port)>
      cluster_for;
  // The consistent-hash policy of a cluster's DestinationRule (empty if none).
  std::function<std::vector<mesh::proxy::v1::HashPolicy>(const std::string& cluster)> hash_for;
  std::vector<std::string>* warnings = nullptr;
};

// Routes in order. Matches that cannot apply to this proxy and port (port, sourceLabels,
// sourceNamespace, gateways without "mesh") are dropped; a route left without matches is
// dropped too.
std::vector<mesh::proxy::v1::Route> translateHttpRoutes(
    const config::networking::VirtualService& vs, const RouteContext& ctx);

// A VirtualService's tcp routes for one opaque TCP port: the first route with an applicable
// match (port, sourceLabels, sourceNamespace, gateways; none = all) gives the (weighted)
// clusters. Empty when no route applies or no destination exists.
mesh::proxy::v1::TcpProxy translateTcpRoutes(const config::networking::VirtualService& vs,
                                             const RouteContext& ctx);

// What a route gets when its VirtualService sets no retries (MeshConfig defaultHttpRetryPolicy):
// 2 retries on connect-failure, refused-stream, unavailable, cancelled and a 503 response.
mesh::proxy::v1::RetryPolicy defaultRetryPolicy();

// A route for any path to one cluster, with the default retry policy: what a service without
// a VirtualService gets.
mesh::proxy::v1::Route defaultRoute(const std::string& cluster,
                                    const std::vector<mesh::proxy::v1::HashPolicy>& hash);

}  // namespace mesh::pilot::translate
