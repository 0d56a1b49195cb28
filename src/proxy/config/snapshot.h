// One immutable, validated view of the proxy's whole configuration. Built on the main thread
// from a Bootstrap (a file or, later, pilot's push), then published to every worker; a request
// finishes on the snapshot it started with.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/http/http1_parser.h"
#include "core/stats/store.h"
#include "proxy/http/http2_limits.h"
#include "proxy/router/route_table.h"
#include "proxy/upstream/cluster_info.h"

namespace mesh::proxy {

namespace v1 {
class Bootstrap;
}

enum class Direction : uint8_t { kOutbound, kInbound };

struct ListenerStats {
  stats::SeriesId cx_total;
  stats::SeriesId cx_active;  // gauge
  stats::SeriesId rq_total;
  stats::SeriesId rq_2xx, rq_3xx, rq_4xx, rq_5xx;
  stats::SeriesId protocol_error;
  stats::SeriesId ssl_handshake, ssl_connection_error;  // TLS listeners only
};

struct SniRoute {
  std::vector<std::string> exact;     // lowercase names
  std::vector<std::string> suffixes;  // "*.example.com" as ".example.com"
  uint32_t cluster = 0;
  bool matches(std::string_view sni) const {
    for (const auto& e : exact) {
      if (e == sni) return true;
    }
    for (const auto& s : suffixes) {
      if (sni.size() > s.size() && sni.ends_with(s)) return true;
    }
    return false;
  }
};

struct TcpProxyInfo {
  std::vector<SniRoute> sni_routes;     // checked first, when present
  std::vector<WeightedTarget> targets;  // cluster indexes and weights
  uint64_t total_weight = 0;
  Millis idle_timeout{3600 * 1000};
};

struct ListenerInfo {
  std::string name;
  std::string address;  // as configured, "127.0.0.1:0"
  uint32_t slot = 0;    // stable across snapshots for the same name
  std::string host;     // the address's IP literal, without brackets
  uint16_t port = 0;
  // Hands each connection to the listener for its original destination (findByDestination).
  bool use_original_dst = false;
  bool bind_to_port = true;  // false: reached only through a useOriginalDst listener
  Direction direction = Direction::kOutbound;
  const RouteTable* routes = nullptr;  // owned by the snapshot; null for a TCP listener
  std::optional<TcpProxyInfo> tcp;     // a TCP proxy listener
  // Both routes and tcp set: the first bytes choose (protocol detection).
  Millis detection_timeout{100};
  bool detectsProtocol() const { return routes != nullptr && tcp.has_value(); }
  std::vector<uint16_t> server_first_ports;  // detection skipped: straight to tcp
  http::Limits limits;
  Http2Limits http2;  // HTTP/2 clients (max_header_list_bytes follows `limits`)
  Millis idle_timeout{3600 * 1000};
  bool generate_request_id = true;
  bool access_log = false;
  std::string access_log_path;
  double trace_sampling = 1.0;
  // TLS termination: connections take the provider's current context at accept.
  std::shared_ptr<tls::ContextProvider> tls;
  // Istio's PERMISSIVE: TLS only when the client's first byte starts a handshake.
  bool tls_permissive = false;
  // Telemetry: the inbound cluster's service for reporter=destination.
  ListenerStats stats;
};

struct NodeInfo {
  std::string id;
  std::string workload_name;
  std::string namespace_;
  std::map<std::string, std::string> labels;
  std::string service_account;
  std::string trust_domain = "cluster.local";
  std::string cluster_id = "Kubernetes";
  uint32_t workload_id = 0;  // telemetry id of this proxy's own workload
  // Istio's metadata exchange: this workload as x-envoy-peer-metadata (base64 Struct).
  std::string peer_metadata;
};

struct Snapshot {
  uint64_t version = 0;
  std::string source;  // the file it came from
  std::chrono::system_clock::time_point loaded_at;
  std::shared_ptr<const v1::Bootstrap> config;  // as loaded, for /config_dump
  NodeInfo node;
  std::vector<ListenerInfo> listeners;
  std::vector<uint32_t> listener_by_slot;  // slot -> index into listeners, or UINT32_MAX
  std::vector<std::shared_ptr<const RouteTable>> route_tables;
  std::vector<std::shared_ptr<const ClusterInfo>> clusters;
  std::unordered_map<std::string, uint32_t> cluster_index;
  bool metrics_enabled = true;
  std::string admin_address = "127.0.0.1:15000";
  std::string prometheus_address = "0.0.0.0:15090";
  std::string health_address = "0.0.0.0:15021";

  const ListenerInfo* listenerBySlot(uint32_t slot) const {
    if (slot >= listener_by_slot.size() || listener_by_slot[slot] == UINT32_MAX) return nullptr;
    return &listeners[listener_by_slot[slot]];
  }
  // Envoy's use_original_dst lookup: among the listeners of `direction` (virtualInbound hands
  // only to inbound listeners, virtualOutbound only to outbound ones), the one bound to exactly
  // ip:port, else the wildcard of the family ("0.0.0.0:port" or "::" port); never a
  // useOriginalDst listener. Null if none.
  const ListenerInfo* findByDestination(std::string_view ip, uint16_t port,
                                        Direction direction) const {
    const ListenerInfo* wildcard = nullptr;
    const bool v6 = ip.find(':') != std::string_view::npos;
    for (const ListenerInfo& l : listeners) {
      if (l.use_original_dst || l.port != port || l.direction != direction) continue;
      if (l.host == ip) return &l;
      if (wildcard == nullptr && l.host == (v6 ? "::" : "0.0.0.0")) wildcard = &l;
    }
    return wildcard;
  }
  const ClusterInfo* findCluster(const std::string& name) const {
    auto it = cluster_index.find(name);
    return it == cluster_index.end() ? nullptr : clusters[it->second].get();
  }
};

}  // namespace mesh::proxy
