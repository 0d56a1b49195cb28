// Turns a Bootstrap into a Snapshot, checking everything a proto schema cannot (references,
// regexes, addresses, weights) and reporting every problem with its field path and line.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/stats/store.h"
#include "core/status.h"
#include "core/tls/context_provider.h"
#include "core/validation_errors.h"
#include "proxy/config/snapshot.h"
#include "proxy/telemetry/istio_stats.h"

namespace mesh::config {
class SourceMap;
}

namespace mesh::proxy {

// Resolves a host name to addresses (IPv4 and IPv6 literals). Injected so tests need no DNS.
using Resolver = std::function<StatusOr<std::vector<std::string>>(const std::string& host)>;
// getaddrinfo(3).
StatusOr<std::vector<std::string>> systemResolve(const std::string& host);

// State that outlives snapshots: stat families, telemetry ids, listener slots.
class SnapshotContext {
 public:
  SnapshotContext(stats::Store& store, IstioTelemetry& telemetry, Resolver resolver);

  stats::Store& store() { return store_; }
  IstioTelemetry& telemetry() { return telemetry_; }
  const Resolver& resolver() const { return resolver_; }
  uint32_t listenerSlot(const std::string& name);
  // The circuit-breaker counts of a cluster, the same object for every snapshot.
  std::shared_ptr<CircuitBreakerState> breakerState(const std::string& cluster);
  // The passive health of a host of a cluster, the same object for every snapshot.
  std::shared_ptr<HostHealth> hostHealth(const std::string& cluster, const std::string& host_key);
  // Attaches host health to every host of a cluster with outlier detection.
  void attachHealth(ClusterInfo& c);
  // The TLS contexts of listeners and clusters, reloaded when their files change.
  tls::ContextRegistry& tlsRegistry() { return tls_registry_; }

  // Stat families for listeners, clusters and hosts.
  stats::FamilyId cx_total, cx_active, rq_total, rq_xx, protocol_error;
  stats::FamilyId upstream_rq_total, upstream_rq_retry, upstream_rq_timeout, upstream_cx_total,
      upstream_cx_connect_fail, upstream_cx_connect_timeout, upstream_no_host,
      upstream_rq_pending_overflow, upstream_rq_pending_active, upstream_outlier_ejections,
      upstream_rq_retry_overflow;
  stats::FamilyId host_rq_total, host_rq_error, host_cx_total, host_cx_connect_fail;
  stats::FamilyId listener_ssl_handshake, listener_ssl_connection_error, upstream_ssl_handshake,
      upstream_ssl_connection_error;

 private:
  stats::Store& store_;
  IstioTelemetry& telemetry_;
  Resolver resolver_;
  std::map<std::string, uint32_t> slots_;
  std::map<std::string, std::shared_ptr<CircuitBreakerState>> breakers_;
  std::map<std::string, std::shared_ptr<HostHealth>> health_;  // by "cluster|host"
  tls::ContextRegistry tls_registry_;
};

struct BuildInput {
  std::shared_ptr<const v1::Bootstrap> config;
  const config::SourceMap* source_map = nullptr;  // lines for errors; may be null
  std::string file;                               // for errors; may be empty
  uint64_t version = 0;
  const Snapshot* previous = nullptr;  // DNS results are reused for unchanged names
};

// Builds a snapshot or returns every error found.
StatusOr<std::shared_ptr<const Snapshot>> buildSnapshot(const BuildInput& in, SnapshotContext& ctx);

// Fills a host's socket address from its IP literal and port; false if not an IP literal.
bool fillHostAddress(Host& h);

// A copy of `c` with new resolved hosts (used by DNS refresh).
std::shared_ptr<const ClusterInfo> withHosts(const ClusterInfo& c, std::vector<Host> hosts);

// Hosts for a STRICT_DNS cluster from resolved addresses per target.
std::vector<Host> dnsHosts(const ClusterInfo& c,
                           const std::vector<std::vector<std::string>>& addresses,
                           SnapshotContext& ctx);

}  // namespace mesh::proxy
