// `istioctl proxy-status` (every proxy pilot knows, with its sync state, from pilot's
// /debug/syncz) and `istioctl proxy-config listeners|routes|clusters|endpoints PROXY` (from the
// proxy's admin API: /config_dump, /listeners and /clusters). PROXY is the admin address
// ("127.0.0.1:15000") or, looked up in pilot's syncz, a proxy id or workload name
// ("reviews-v1" or "reviews-v1.default").
#pragma once

#include <ostream>
#include <string>

namespace mesh::istioctl {

struct ProxyCommandOptions {
  std::string pilot = "127.0.0.1:15014";  // pilot's HTTP (monitoring) address
  std::string output = "short";           // "short" (a table) or "json"
};

int runProxyStatus(const ProxyCommandOptions& opts, std::ostream& out, std::ostream& err);

// kind: listeners, routes, clusters or endpoints (also singular, and "all").
int runProxyConfig(const std::string& kind, const std::string& proxy,
                   const ProxyCommandOptions& opts, std::ostream& out, std::ostream& err);

}  // namespace mesh::istioctl
