#include "proxy/discovery/discovered_config.h"

namespace mesh::proxy {

v1::Bootstrap mergeAssignments(const DiscoveredConfig& config) {
  v1::Bootstrap out = *config.bootstrap;
  for (v1::Cluster& c : *out.mutable_clusters()) {
    if (!c.eds()) continue;
    c.clear_endpoints();
    auto it = config.assignments->find(c.name());
    if (it != config.assignments->end()) *c.mutable_endpoints() = it->second.endpoints();
  }
  return out;
}

}  // namespace mesh::proxy
