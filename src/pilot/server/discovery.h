// The discovery state of a running pilot: the current good config (translated on demand per
// proxy), the config errors of the last load, and per connected proxy what was sent, what was
// ACKed and the last NACK. The gRPC stream (grpc_service.cc) and the debug pages read and drive
// it; it knows nothing of gRPC. All methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/stats/store.h"
#include "pilot/model/aggregate_registry.h"
#include "pilot/model/kubernetes_registry.h"
#include "pilot/model/service_entry_registry.h"
#include "pilot/server/config_directory.h"
#include "pilot/translate/push_context.h"
#include "pilot/translate/translator.h"
#include "proxy/v1/config.pb.h"

namespace mesh::pilot::server {

// The two resource types of the stream (api/discovery/v1/discovery.proto).
inline constexpr char kBootstrapType[] = "type.mesh/proxy.v1.Bootstrap";
inline constexpr char kAssignmentType[] = "type.mesh/proxy.v1.ClusterLoadAssignment";

// One good config and what translation needs of it. Immutable after construction apart from
// the translator's cache, which translate() guards.
class MeshConfig {
 public:
  MeshConfig(DirectoryConfig config, uint64_t version, translate::PushOptions options);
  MeshConfig(const MeshConfig&) = delete;
  MeshConfig& operator=(const MeshConfig&) = delete;

  uint64_t version() const { return version_; }
  const DirectoryConfig& config() const { return config_; }
  translate::Translation translate(const translate::ProxyIdentity& proxy) const;
  // What pushes use: the shared outbound part is serialized once per view.
  translate::SplitTranslation translateSplit(const translate::ProxyIdentity& proxy) const;
  // The service model (every service, its ports and endpoints) as JSON, for /debug/registryz.
  std::string registryz() const;
  // This config differs from `previous` only in the endpoints of `changed_services`
  // ("namespace/name"): take over the outbound views `previous` built (Translator::inherit).
  // Before this config is shared.
  void inheritViews(const MeshConfig& previous, std::set<std::string> changed_services);
  // Outbound views taken over from the previous config (tests, debugging).
  size_t viewsRefreshed() const;

 private:
  const DirectoryConfig config_;
  const uint64_t version_;
  model::ServiceEntryRegistry service_entries_;
  model::KubernetesRegistry kubernetes_;
  model::AggregateRegistry registry_{{&kubernetes_, &service_entries_}};
  std::unique_ptr<translate::PushContext> push_;
  mutable std::mutex mu_;
  std::unique_ptr<translate::Translator> translator_;
};

// A response to send on a proxy's stream.
// - kBootstrap: the serialized mesh.proxy.v1.Bootstrap is *shared_bytes followed by own_bytes:
//   the outbound view, one object shared by every proxy with that view, then the proxy's node and
//   inbound config (concatenated protobuf messages merge).
// - kAssignments: *shared_bytes is the DiscoveryResponse's `resources` entries, ready to send
//   (translate::AssignmentSet); own_bytes is empty.
struct Push {
  enum class Type { kBootstrap, kAssignments };
  Type type = Type::kBootstrap;
  std::string version;
  std::string nonce;
  std::shared_ptr<const std::string> shared_bytes;
  std::string own_bytes;

  size_t size() const { return shared_bytes->size() + own_bytes.size(); }
  const char* typeUrl() const {
    return type == Type::kBootstrap ? kBootstrapType : kAssignmentType;
  }
  // Parsed (tests, debugging); pushes send the bytes as they are. Only for kBootstrap.
  mesh::proxy::v1::Bootstrap bootstrap() const;
};

class Discovery {
 public:
  using Clock = std::chrono::steady_clock;
  Discovery(stats::Store& stats, translate::PushOptions options);

  // A new load of the config directory. A good one becomes the current config (with the next
  // version) and every connected proxy is woken to recompute; a bad one only replaces the
  // recorded errors, and the last good config keeps serving. Returns true if it was applied.
  bool applyConfig(DirectoryConfig loaded);
  // True once a good config has been applied.
  bool ready() const;
  std::shared_ptr<const MeshConfig> current() const;

  // A proxy's stream registered it. `wake` is called (from any thread, with no lock of this
  // class held) when the proxy should call nextPush again. Returns the connection id.
  uint64_t connect(const translate::ProxyIdentity& proxy, std::function<void()> wake);
  void disconnect(uint64_t conn);

  // The proxy subscribed to the ClusterLoadAssignment type (its request of that type without a
  // nonce): from now on pushes include assignments. Wakes the stream on the first subscription.
  void subscribeAssignments(uint64_t conn);

  // What to send the proxy under the current config, in order (each recorded as sent with a new
  // version and nonce):
  // - its Bootstrap, if it differs (serialized bytes) from the last one sent on this connection;
  // - if subscribed, the ClusterLoadAssignments that are new or changed since the last ones sent
  //   (all of them on the first push or after a NACK), if any, or if none was sent yet.
  // An endpoint-only change thus sends only assignments. Holds this class's lock only to look up
  // and record, never while translating or comparing.
  std::vector<Push> nextPushes(uint64_t conn);

  // A request after the first: ACK (no error) or NACK of the response of `type_url` named by
  // `nonce`. A stale nonce (not the last sent of that type) is ignored, as in xDS. Returns false
  // if it was ignored.
  bool onResponse(uint64_t conn, const std::string& type_url, const std::string& version_info,
                  const std::string& nonce, std::optional<std::pair<int, std::string>> error);

  // Debug pages (JSON) and metrics (Prometheus text).
  std::string syncz() const;
  std::string configz() const;
  std::string registryz() const;
  std::string metrics() const;

 private:
  // One resource type's sent, ACKed and NACKed versions on a stream.
  struct TypeState {
    std::string sent_version;
    std::string sent_nonce;
    Clock::time_point sent_at;
    bool awaiting_ack = false;
    std::string acked_version;
    std::string nack_version;
    int nack_code = 0;
    std::string nack_message;
    uint64_t pushes = 0;
    // "NOT SENT", "SYNCED", "STALE" or "REJECTED".
    const char* status() const;
  };
  struct ProxyState {
    translate::ProxyIdentity identity;
    std::function<void()> wake;
    std::string config_version;  // the config version last translated for this proxy
    TypeState bootstrap;
    TypeState assignments;
    bool assignments_subscribed = false;
    // The Bootstrap last sent (see Push): the shared part is kept by reference, not copied.
    std::shared_ptr<const std::string> sent_shared;
    size_t sent_shared_hash = 0;
    std::string sent_own;
    // The assignments the proxy was last sent (null: none, or it NACKed them).
    std::shared_ptr<const translate::AssignmentSet> sent_assignments;
  };
  // Requires mu_: a push of `type` with a new nonce, recorded as sent in `t`.
  Push record(TypeState& t, Push::Type type, const std::string& version,
              std::shared_ptr<const std::string> shared, std::string own);

  const translate::PushOptions options_;
  stats::Store& stats_;
  stats::ThreadStats& thread_stats_;  // written only under mu_
  stats::SeriesId pushes_;
  stats::SeriesId rejects_;
  stats::SeriesId assignment_pushes_;
  stats::SeriesId assignment_rejects_;
  stats::SeriesId connected_;
  stats::SeriesId config_errors_;
  stats::SeriesId config_loads_ok_;
  stats::SeriesId config_loads_bad_;
  stats::SeriesId convergence_;

  mutable std::mutex mu_;
  std::shared_ptr<const MeshConfig> current_;
  uint64_t next_config_version_ = 1;
  ValidationErrors errors_;  // of the last load (empty when it was good)
  std::map<uint64_t, ProxyState> proxies_;
  uint64_t next_conn_ = 1;
  uint64_t next_nonce_ = 1;
  // Translation warnings already logged for config version warned_version_: each is logged once
  // per config version (at warning level, naming the first proxy it came up for), not once per
  // proxy; the repeats go to debug.
  std::string warned_version_;
  std::set<std::string> warned_;
};

// The Kubernetes Endpoints objects ("namespace/name") added, removed or changed from `before` to
// `after` when nothing else changed (Istio resources, Services, Pods); nullopt otherwise.
std::optional<std::set<std::string>> endpointOnlyChange(const DirectoryConfig& before,
                                                        const DirectoryConfig& after);

// Appends s as a JSON string literal (quoted, escaped).
void appendJsonString(std::string* out, std::string_view s);

}  // namespace mesh::pilot::server
