// Outlier detection: passive health from the outcomes of real requests. Workers report each
// attempt's outcome; a host whose consecutive failures reach the cluster's threshold is ejected
// (skipped by load balancing) until its ejection time has passed. Lock-free: the counters are
// atomics shared by every worker.
#pragma once

#include <cstdint>

#include "core/stats/store.h"
#include "proxy/upstream/cluster_info.h"

namespace mesh::proxy {

enum class AttemptOutcome : uint8_t {
  kSuccess,       // any response below 500
  k5xx,           // 500, 501, 505 and the like
  kGatewayError,  // 502, 503, 504
  kLocalFailure,  // connect failure, reset, timeout: counted as a gateway error and a 5xx
};

AttemptOutcome outcomeOfStatus(uint16_t status);

// Records one attempt's outcome for host `index` of `c`; true when this call ejected the host.
bool recordOutcome(const ClusterInfo& c, size_t index, AttemptOutcome o, int64_t now_ms);

// What a connection reports: when `c` has outlier detection, records the outcome now, and an
// ejection it caused is counted (outlier_ejections on `stats`) and logged.
void reportOutcome(const ClusterInfo& c, size_t index, AttemptOutcome o, stats::ThreadStats& stats);

inline bool isEjected(const Host& h, int64_t now_ms) {
  return h.health != nullptr && h.health->ejected_until_ms.load(std::memory_order_relaxed) > now_ms;
}

// Whether ejections apply: enough hosts are healthy (min_health_percent), else every host is
// used, as Envoy's panic mode does.
bool ejectionsApply(const ClusterInfo& c, int64_t now_ms);

// Milliseconds of the steady clock, the time base of ejections.
int64_t outlierNowMs();

}  // namespace mesh::proxy
