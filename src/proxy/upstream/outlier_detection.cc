#include "proxy/upstream/outlier_detection.h"

#include <algorithm>
#include <chrono>

#include "core/log.h"
#include "core/turn_clock.h"

namespace mesh::proxy {

AttemptOutcome outcomeOfStatus(uint16_t status) {
  if (status < 500) return AttemptOutcome::kSuccess;
  if (status == 502 || status == 503 || status == 504) return AttemptOutcome::kGatewayError;
  return AttemptOutcome::k5xx;
}

int64_t outlierNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(TurnClock::now().time_since_epoch())
      .count();
}

namespace {

size_t ejectedCount(const ClusterInfo& c, int64_t now_ms) {
  size_t n = 0;
  for (const Host& h : c.hosts) n += isEjected(h, now_ms) ? 1 : 0;
  return n;
}

}  // namespace

bool ejectionsApply(const ClusterInfo& c, int64_t now_ms) {
  if (c.outlier.min_health_percent == 0) return true;
  size_t healthy = c.hosts.size() - ejectedCount(c, now_ms);
  return healthy * 100 >= c.hosts.size() * c.outlier.min_health_percent;
}

bool recordOutcome(const ClusterInfo& c, size_t index, AttemptOutcome o, int64_t now_ms) {
  const OutlierDetection& od = c.outlier;
  HostHealth* h = c.hosts[index].health.get();
  if (!od.enabled || h == nullptr) return false;
  if (o == AttemptOutcome::kSuccess) {
    h->consecutive_5xx.store(0, std::memory_order_relaxed);
    h->consecutive_gateway.store(0, std::memory_order_relaxed);
    return false;
  }
  uint32_t fives = h->consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1;
  uint32_t gateway = h->consecutive_gateway.load(std::memory_order_relaxed);
  if (o == AttemptOutcome::kGatewayError || o == AttemptOutcome::kLocalFailure) {
    gateway = h->consecutive_gateway.fetch_add(1, std::memory_order_relaxed) + 1;
  } else {
    h->consecutive_gateway.store(0, std::memory_order_relaxed);
    gateway = 0;
  }
  HostHealth::Reason reason = HostHealth::kNone;
  if (od.consecutive_5xx != 0 && fives >= od.consecutive_5xx) {
    reason = HostHealth::kConsecutive5xx;
  } else if (od.consecutive_gateway != 0 && gateway >= od.consecutive_gateway) {
    reason = HostHealth::kConsecutiveGatewayFailure;
  }
  if (reason == HostHealth::kNone || isEjected(c.hosts[index], now_ms)) return false;
  // At most max_ejection_percent of the hosts, but always at least one, as in Envoy.
  size_t allowed = std::max<size_t>(1, c.hosts.size() * od.max_ejection_percent / 100);
  if (ejectedCount(c, now_ms) >= allowed) return false;
  uint32_t times = h->times_ejected.fetch_add(1, std::memory_order_relaxed) + 1;
  h->reason.store(reason, std::memory_order_relaxed);
  h->ejected_until_ms.store(now_ms + od.base_ejection.count() * times, std::memory_order_relaxed);
  h->consecutive_5xx.store(0, std::memory_order_relaxed);
  h->consecutive_gateway.store(0, std::memory_order_relaxed);
  return true;
}

void reportOutcome(const ClusterInfo& c, size_t index, AttemptOutcome o,
                   stats::ThreadStats& stats) {
  if (!c.outlier.enabled) return;
  if (recordOutcome(c, index, o, outlierNowMs())) {
    stats.inc(c.stats.outlier_ejections);
    MESH_LOG("upstream", info, "outlier detection ejected {} of cluster {}", c.hosts[index].key,
             c.name);
  }
}

}  // namespace mesh::proxy
