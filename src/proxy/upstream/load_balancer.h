// Host selection. The tables are immutable and shared (ClusterInfo); the little mutable state a
// policy needs (round-robin position, active request counts) is per worker, so picking a host
// takes no lock.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/random.h"
#include "proxy/upstream/cluster_info.h"

namespace mesh::proxy {

struct LbState {
  uint64_t rr_next = 0;
  std::vector<int64_t> smooth_current;  // smooth weighted round robin
};

struct LbContext {
  std::optional<uint64_t> hash;  // consistent-hash key, when the route has a hash policy
  int avoid_host = -1;           // a host to avoid if another exists (retries)
  int64_t now_ms = 0;            // for outlier ejections (outlierNowMs), when enabled
};

// Picks a host index, or -1 when the cluster has no hosts. `active` holds this worker's active
// request count per host index (used by least request); it may be empty for other policies.
int chooseHost(const ClusterInfo& c, LbState& state, const std::vector<uint32_t>& active,
               Random& random, const LbContext& ctx);

}  // namespace mesh::proxy
