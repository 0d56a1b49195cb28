// Istio's standard request metrics (istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes, istio_response_bytes) with Istio's label set.
//
// Label values are resolved once: workloads and services are interned to small ids when a
// config snapshot is built, a request is described by a compact key of ids and codes, and each
// worker maps that key to its series through a private cache. Only a key never seen before on a
// worker takes the shared lock and formats label strings.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/stats/store.h"

namespace mesh::proxy {

struct WorkloadLabels {
  std::string name;
  std::string namespace_;
  std::string app;
  std::string version;
  std::string principal;  // spiffe://... or "unknown"
  std::string canonical_service;
  std::string canonical_revision;
  std::string cluster;
  bool operator<(const WorkloadLabels& o) const;
};

struct ServiceLabels {
  std::string host;
  std::string name;
  std::string namespace_;
  bool operator<(const ServiceLabels& o) const;
};

enum class Reporter : uint8_t { kSource, kDestination };

struct RequestKey {
  uint32_t source_workload = 0;  // 0 = unknown
  uint32_t destination_workload = 0;
  uint32_t service = 0;
  uint32_t flags = 0;
  uint16_t response_code = 0;
  Reporter reporter = Reporter::kSource;
  uint8_t protocol = 0;      // 0 http, 1 grpc, 2 tcp
  uint8_t security = 0;      // 0 unknown, 1 none, 2 mutual_tls
  int32_t grpc_status = -1;  // grpc_response_status; -1: not a gRPC request ("-")
  // Source reporter over mTLS: the principals the two certificates proved (interned like
  // workloads, by workloadFromPrincipal; 0: take the workloads' own principals).
  uint32_t source_principal = 0;
  uint32_t destination_principal = 0;
  bool operator==(const RequestKey&) const = default;
};

struct RequestKeyHash {
  size_t operator()(const RequestKey& k) const {
    uint64_t h = (uint64_t{k.source_workload} << 32) ^ k.destination_workload;
    h = h * 0x9e3779b97f4a7c15ULL ^ ((uint64_t{k.service} << 32) | k.flags);
    h = h * 0x9e3779b97f4a7c15ULL ^
        ((uint64_t{k.response_code} << 24) | (uint64_t(k.reporter) << 16) |
         (uint64_t{k.protocol} << 8) | k.security);
    h = h * 0x9e3779b97f4a7c15ULL ^
        ((uint64_t(static_cast<uint32_t>(k.grpc_status)) << 32) | k.destination_principal);
    h = h * 0x9e3779b97f4a7c15ULL ^ k.source_principal;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

struct TcpSeries {
  stats::SeriesId opened;
  stats::SeriesId closed;
  stats::SeriesId sent;      // bytes to the client
  stats::SeriesId received;  // bytes from the client
};

struct RequestSeries {
  stats::SeriesId requests;
  stats::SeriesId duration;
  stats::SeriesId request_bytes;
  stats::SeriesId response_bytes;
};

// A peer workload known only by its SPIFFE id: the principal, and the namespace from
// "spiffe://<trust-domain>/ns/<ns>/sa/<sa>".
WorkloadLabels workloadFromPrincipal(const std::string& principal);

class IstioTelemetry {
 public:
  explicit IstioTelemetry(stats::Store& store);

  // Interning; thread-safe. Id 0 is "unknown".
  uint32_t internWorkload(const WorkloadLabels& w);
  uint32_t internService(const ServiceLabels& s);

  // Series for a key; thread-safe, takes the lock: call through WorkerCache.
  RequestSeries resolve(const RequestKey& key);
  // The TCP metrics' series for a key (protocol 2); thread-safe, takes the lock.
  TcpSeries resolveTcp(const RequestKey& key);

  class WorkerCache {
   public:
    explicit WorkerCache(IstioTelemetry& t) : telemetry_(t) {}
    void record(stats::ThreadStats& ts, const RequestKey& key, double duration_ms,
                uint64_t request_bytes, uint64_t response_bytes) {
      auto it = cache_.find(key);
      if (it == cache_.end()) it = cache_.emplace(key, telemetry_.resolve(key)).first;
      const RequestSeries& s = it->second;
      ts.inc(s.requests);
      ts.observe(s.duration, duration_ms);
      ts.observe(s.request_bytes, static_cast<double>(request_bytes));
      ts.observe(s.response_bytes, static_cast<double>(response_bytes));
    }

    // The workload id of an mTLS peer known only by its SPIFFE id (principal, and the namespace
    // the id names); cached per worker, so the shared lock is taken once per identity.
    uint32_t peerWorkload(const std::string& principal) {
      auto it = peers_.find(principal);
      if (it == peers_.end()) {
        it = peers_.emplace(principal, telemetry_.internWorkload(workloadFromPrincipal(principal)))
                 .first;
      }
      return it->second;
    }

    // The workload id of the source an inbound request's x-envoy-peer-metadata names (0 if it
    // names none). Cached per worker; at most kMaxPeers distinct values are interned, so a
    // client inventing identities cannot grow the metrics without bound.
    uint32_t peerFromMetadata(std::string_view header, const std::string& principal);
    static constexpr size_t kMaxPeers = 1024;

    const TcpSeries& tcp(const RequestKey& key) {
      auto it = tcp_cache_.find(key);
      if (it == tcp_cache_.end()) it = tcp_cache_.emplace(key, telemetry_.resolveTcp(key)).first;
      return it->second;
    }

   private:
    IstioTelemetry& telemetry_;
    std::unordered_map<RequestKey, RequestSeries, RequestKeyHash> cache_;
    std::unordered_map<RequestKey, TcpSeries, RequestKeyHash> tcp_cache_;
    std::unordered_map<std::string, uint32_t> peers_;
    std::unordered_map<std::string, uint32_t> metadata_peers_;  // by principal + header
  };

 private:
  stats::Store& store_;
  static constexpr size_t kResponseCodeLabel = 21, kGrpcStatusLabel = 22;
  std::array<std::string, 25> labelValues(const RequestKey& key);

  stats::FamilyId requests_, duration_, request_bytes_, response_bytes_;
  stats::FamilyId tcp_opened_, tcp_closed_, tcp_sent_, tcp_received_;
  std::mutex mu_;
  std::deque<WorkloadLabels> workloads_;  // index = id - 1
  std::map<WorkloadLabels, uint32_t> workload_ids_;
  std::deque<ServiceLabels> services_;
  std::map<ServiceLabels, uint32_t> service_ids_;
};

// Workload labels from a name, namespace and Kubernetes-style pod labels, the way Istio derives
// app, version and canonical service/revision.
WorkloadLabels workloadFromLabels(const std::string& name, const std::string& ns,
                                  const std::map<std::string, std::string>& labels,
                                  const std::string& service_account,
                                  const std::string& trust_domain, const std::string& cluster);

}  // namespace mesh::proxy
