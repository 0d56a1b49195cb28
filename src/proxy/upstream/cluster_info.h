// Immutable description of an upstream cluster and its endpoints (hosts), as one config
// snapshot sees it. Workers keep their mutable per-host state (pools, active counts) beside it.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/stats/store.h"
#include "core/tls/context_provider.h"

namespace mesh::proxy {

using Millis = std::chrono::milliseconds;

struct HostStats {
  stats::SeriesId rq_total;
  stats::SeriesId rq_error;  // 5xx responses and failures
  stats::SeriesId cx_total;
  stats::SeriesId cx_connect_fail;
};

// Passive health of one host, shared by every worker and kept across reloads (by cluster name
// and host key, in the SnapshotContext).
struct HostHealth {
  enum Reason : uint8_t { kNone, kConsecutive5xx, kConsecutiveGatewayFailure };
  std::atomic<uint32_t> consecutive_5xx{0};
  std::atomic<uint32_t> consecutive_gateway{0};
  std::atomic<int64_t> ejected_until_ms{0};  // steady-clock milliseconds; 0: never ejected
  std::atomic<uint32_t> times_ejected{0};
  std::atomic<uint8_t> reason{kNone};
};

struct Host {
  std::string address;  // IP literal
  uint16_t port = 0;
  std::string key;       // "ip:port" ("[v6]:port")
  std::string hostname;  // DNS name it came from (STRICT_DNS), else empty
  sockaddr_storage sockaddr{};
  socklen_t sockaddr_len = 0;
  uint32_t weight = 1;
  uint32_t workload_id = 0;  // telemetry peer id; 0 = unknown
  HostStats stats;
  std::shared_ptr<HostHealth> health;  // set when the cluster has outlier detection
};

struct ClusterStats {
  stats::SeriesId rq_total;
  stats::SeriesId rq_retry;
  stats::SeriesId rq_timeout;
  stats::SeriesId cx_total;
  stats::SeriesId cx_connect_fail;
  stats::SeriesId cx_connect_timeout;  // counted by the UpstreamConnector, once per connection
  stats::SeriesId rq_no_host;
  stats::SeriesId rq_pending_overflow;  // requests refused by a circuit breaker (flag UO)
  stats::SeriesId rq_pending_active;    // gauge: requests queued for a connection
  stats::SeriesId outlier_ejections;    // hosts ejected by outlier detection
  stats::SeriesId rq_retry_overflow;    // retries refused by maxRetries
  stats::SeriesId ssl_handshake;        // TLS clusters only
  stats::SeriesId ssl_connection_error;
};

struct OutlierDetection {
  bool enabled = false;
  uint32_t consecutive_5xx = 5;      // 0: off
  uint32_t consecutive_gateway = 0;  // 0: off
  Millis base_ejection{30000};
  uint32_t max_ejection_percent = 10;
  uint32_t min_health_percent = 0;
};

// Circuit-breaker limits of a cluster; UINT32_MAX = unlimited.
struct CircuitBreakers {
  uint32_t max_connections = UINT32_MAX;
  uint32_t max_pending_requests = UINT32_MAX;
  uint32_t max_requests = UINT32_MAX;
  uint32_t max_retries = UINT32_MAX;
};

// What the limits are checked against: counts for the whole cluster, across workers and across
// config snapshots (kept by name in the SnapshotContext).
struct CircuitBreakerState {
  std::atomic<uint32_t> connections{0};  // open upstream connections
  std::atomic<uint32_t> pending{0};      // requests waiting for a connection
  std::atomic<uint32_t> requests{0};     // requests on upstream connections
  std::atomic<uint32_t> retries{0};      // retries scheduled and not yet started
};

enum class LbPolicy : uint8_t { kRoundRobin, kLeastRequest, kRandom, kRingHash, kMaglev };

struct DnsTarget {
  std::string hostname;
  uint16_t port = 0;
  uint32_t weight = 1;
  uint32_t workload_id = 0;
};

struct ClusterInfo {
  std::string name;
  LbPolicy lb = LbPolicy::kRoundRobin;
  Millis connect_timeout{10000};
  Millis idle_timeout{3600 * 1000};
  std::vector<Host> hosts;
  uint32_t service_id = 0;  // telemetry service id; 0 = unknown
  ClusterStats stats;
  CircuitBreakers limits;
  std::shared_ptr<CircuitBreakerState> breaker;  // never null in a built snapshot
  bool http2 = false;  // requests go upstream as HTTP/2 streams (h2c, or h2 by ALPN with tls)
  uint32_t max_requests_per_connection = 0;      // 0: unlimited
  OutlierDetection outlier;
  // TLS origination: each new connection takes the provider's current context.
  std::shared_ptr<tls::ContextProvider> tls;
  // Appended to the per-host pool key: connections made under other TLS settings (another
  // expected SAN, CA or client certificate file) are never reused for this config. Empty for
  // plaintext, so reloads keep their pools as before.
  std::string pool_tag;

  // ORIGINAL_DST (Istio's PassthroughCluster): a connection goes to its own original
  // destination. The snapshot's cluster has one placeholder host (port 0); HTTP requests use a
  // worker's copy whose one host is the destination (Worker::originalDstRuntime).
  bool original_dst = false;
  // Local IP upstream TCP proxy connections bind before connecting (Istio's
  // upstream_bind_config; "127.0.0.6" for InboundPassthroughCluster); empty: the kernel picks.
  std::string upstream_bind_address;

  // STRICT_DNS: the names to resolve, and how often.
  bool dns = false;
  std::vector<DnsTarget> dns_targets;
  Millis dns_refresh{5000};

  // Load-balancer tables, derived from hosts (see buildLoadBalancerTables).
  bool equal_weights = true;
  uint64_t total_weight = 0;
  std::vector<uint64_t> cumulative_weights;
  std::vector<std::pair<uint64_t, uint32_t>> ring;  // (hash, host index), sorted
  std::vector<uint32_t> maglev;                     // host index per slot
  uint64_t ring_min_size = 1024;
  uint64_t maglev_size = 65537;
};

// Fills the weight and hash tables of `c` from c.hosts.
void buildLoadBalancerTables(ClusterInfo& c);

}  // namespace mesh::proxy
