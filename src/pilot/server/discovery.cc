#include "pilot/server/discovery.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdio>
#include <utility>

#include "core/log.h"

namespace mesh::pilot::server {

MeshConfig::MeshConfig(DirectoryConfig config, uint64_t version, translate::PushOptions options)
    : config_(std::move(config)), version_(version) {
  service_entries_.update(config_.resources);
  kubernetes_.update(config_.kube_objects);
  push_ =
      std::make_unique<translate::PushContext>(registry_, config_.resources, std::move(options));
  translator_ = std::make_unique<translate::Translator>(*push_);
}

translate::Translation MeshConfig::translate(const translate::ProxyIdentity& proxy) const {
  std::lock_guard<std::mutex> lock(mu_);
  return translator_->translate(proxy);
}

translate::SplitTranslation MeshConfig::translateSplit(
    const translate::ProxyIdentity& proxy) const {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t built = translator_->viewsBuilt();
  const auto start = std::chrono::steady_clock::now();
  translate::SplitTranslation t = translator_->translateSplit(proxy);
  if (translator_->viewsBuilt() != built) {
    std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
    MESH_LOG("pilot", debug, "config {}: outbound view #{} (namespace {}) built in {:.1f} ms",
             version_, translator_->viewsBuilt(), proxy.namespace_name, took.count());
  }
  return t;
}

void MeshConfig::inheritViews(const MeshConfig& previous, std::set<std::string> changed_services) {
  std::scoped_lock lock(mu_, previous.mu_);
  translator_->inherit(*previous.translator_, std::move(changed_services));
}

size_t MeshConfig::viewsRefreshed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return translator_->viewsRefreshed();
}

namespace {

bool sameResource(const config::Resource& a, const config::Resource& b) {
  if (a.kind != b.kind || a.api_version != b.api_version || a.name != b.name ||
      a.namespace_name != b.namespace_name || a.namespace_set != b.namespace_set ||
      a.labels != b.labels || a.annotations != b.annotations || a.spec.index() != b.spec.index()) {
    return false;
  }
  auto bytes = [](const config::Resource& r) {
    return std::visit([](const auto& m) { return translate::serializeDeterministic(m); }, r.spec);
  };
  return bytes(a) == bytes(b);
}

std::string kubeBytes(const config::KubernetesObject& o) {
  return std::visit([](const auto& m) { return translate::serializeDeterministic(m); }, o.object);
}

}  // namespace

std::optional<std::set<std::string>> endpointOnlyChange(const DirectoryConfig& before,
                                                        const DirectoryConfig& after) {
  if (before.resources.size() != after.resources.size()) return std::nullopt;
  for (size_t i = 0; i < before.resources.size(); ++i) {
    if (!sameResource(before.resources[i], after.resources[i])) return std::nullopt;
  }
  // Everything but Endpoints in the same order and equal; Endpoints compared by name.
  std::vector<const config::KubernetesObject*> others[2];
  std::map<std::string, std::string> endpoints[2];
  const DirectoryConfig* loads[2] = {&before, &after};
  for (int i = 0; i < 2; ++i) {
    for (const config::KubernetesObject& o : loads[i]->kube_objects) {
      if (o.as<config::v1::KubernetesEndpointsObject>() != nullptr) {
        endpoints[i][o.namespace_name + "/" + o.name] = kubeBytes(o);
      } else {
        others[i].push_back(&o);
      }
    }
  }
  if (others[0].size() != others[1].size()) return std::nullopt;
  for (size_t i = 0; i < others[0].size(); ++i) {
    const config::KubernetesObject& a = *others[0][i];
    const config::KubernetesObject& b = *others[1][i];
    if (a.name != b.name || a.namespace_name != b.namespace_name ||
        a.object.index() != b.object.index() || kubeBytes(a) != kubeBytes(b)) {
      return std::nullopt;
    }
  }
  std::set<std::string> changed;
  for (const auto& [name, bytes] : endpoints[0]) {
    auto it = endpoints[1].find(name);
    if (it == endpoints[1].end() || it->second != bytes) changed.insert(name);
  }
  for (const auto& [name, bytes] : endpoints[1]) {
    if (!endpoints[0].contains(name)) changed.insert(name);
  }
  return changed;
}

mesh::proxy::v1::Bootstrap Push::bootstrap() const {
  mesh::proxy::v1::Bootstrap b;
  b.ParseFromString(*shared_bytes + own_bytes);
  return b;
}

Discovery::Discovery(stats::Store& stats, translate::PushOptions options)
    : options_(std::move(options)), stats_(stats), thread_stats_(stats.createThreadStats()) {
  using stats::MetricType;
  stats::FamilyId pushes = registerFamily(stats, "pilot_xds_pushes", MetricType::kCounter,
                                          "Responses sent on discovery streams.", {"type"});
  stats::FamilyId rejects = registerFamily(stats, "pilot_total_xds_rejects", MetricType::kCounter,
                                           "Responses a proxy rejected (NACKs).", {"type"});
  pushes_ = stats.series(pushes, {"bootstrap"});
  rejects_ = stats.series(rejects, {"bootstrap"});
  assignment_pushes_ = stats.series(pushes, {"eds"});
  assignment_rejects_ = stats.series(rejects, {"eds"});
  connected_ = stats.series(registerFamily(stats, "pilot_xds_connected_proxies", MetricType::kGauge,
                                           "Proxies with an open discovery stream.", {}));
  config_errors_ =
      stats.series(registerFamily(stats, "pilot_config_errors", MetricType::kGauge,
                                  "Errors of the last config load (0 when it was applied).", {}));
  stats::FamilyId loads = registerFamily(stats, "pilot_config_loads", MetricType::kCounter,
                                         "Loads of the config directory, by result.", {"result"});
  config_loads_ok_ = stats.series(loads, {"applied"});
  config_loads_bad_ = stats.series(loads, {"rejected"});
  convergence_ =
      stats.series(registerFamily(stats, "pilot_proxy_convergence_time", MetricType::kHistogram,
                                  "Seconds from sending a config to a proxy until it ACKed it.", {},
                                  {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3, 5, 10, 20, 30}));
  // Make the gauges appear at 0 before the first change.
  thread_stats_.add(connected_, 0);
  thread_stats_.add(config_errors_, 0);
}

bool Discovery::applyConfig(DirectoryConfig loaded) {
  uint64_t version = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t before = static_cast<int64_t>(errors_.size());
    if (!loaded.ok()) {
      errors_ = loaded.errors;
      thread_stats_.add(config_errors_, static_cast<int64_t>(errors_.size()) - before);
      thread_stats_.inc(config_loads_bad_);
      MESH_LOG("pilot", warn, "config rejected, keeping version {}: {}",
               current_ ? current_->version() : 0, errors_.toString());
      return false;
    }
    errors_ = ValidationErrors();
    thread_stats_.add(config_errors_, -before);
    thread_stats_.inc(config_loads_ok_);
    version = next_config_version_++;
  }
  // Indexing the registries and resources takes tens of ms for thousands of services: not
  // under mu_, which every stream's ACK and push bookkeeping takes.
  std::shared_ptr<const MeshConfig> previous = current();
  std::optional<std::set<std::string>> endpoint_only;
  if (previous != nullptr) endpoint_only = endpointOnlyChange(previous->config(), loaded);
  auto config = std::make_shared<MeshConfig>(std::move(loaded), version, options_);
  if (endpoint_only) {
    // Clusters and routes are as they were: the new config takes over the views, and only the
    // assignments of the services whose endpoints changed are computed again.
    MESH_LOG("pilot", debug, "config version {}: endpoint-only change ({} Endpoints)", version,
             endpoint_only->size());
    config->inheritViews(*previous, std::move(*endpoint_only));
  }
  std::vector<std::function<void()>> wakes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Concurrent applies: the later version wins whatever order they finish in.
    if (current_ != nullptr && current_->version() > version) return true;
    current_ = std::move(config);
    MESH_LOG("pilot", info, "config version {} applied: {} resources, {} Kubernetes objects",
             current_->version(), current_->config().resources.size(),
             current_->config().kube_objects.size());
    wakes.reserve(proxies_.size());
    for (auto& [id, p] : proxies_) wakes.push_back(p.wake);
  }
  for (auto& wake : wakes) wake();
  return true;
}

bool Discovery::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_ != nullptr;
}

std::shared_ptr<const MeshConfig> Discovery::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

uint64_t Discovery::connect(const translate::ProxyIdentity& proxy, std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_conn_++;
  ProxyState& p = proxies_[id];
  p.identity = proxy;
  p.wake = std::move(wake);
  thread_stats_.add(connected_, 1);
  MESH_LOG("pilot", info, "proxy {} connected (stream {})", proxy.id, id);
  return id;
}

void Discovery::disconnect(uint64_t conn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = proxies_.find(conn);
  if (it == proxies_.end()) return;
  MESH_LOG("pilot", info, "proxy {} disconnected (stream {})", it->second.identity.id, conn);
  proxies_.erase(it);
  thread_stats_.add(connected_, -1);
}

void Discovery::subscribeAssignments(uint64_t conn) {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = proxies_.find(conn);
    if (it == proxies_.end() || it->second.assignments_subscribed) return;
    it->second.assignments_subscribed = true;
    wake = it->second.wake;
  }
  wake();
}

Push Discovery::record(TypeState& t, Push::Type type, const std::string& version,
                       std::shared_ptr<const std::string> shared, std::string own) {
  Push push;
  push.type = type;
  push.version = version;
  push.nonce = std::to_string(next_nonce_++);
  push.shared_bytes = std::move(shared);
  push.own_bytes = std::move(own);
  t.sent_version = push.version;
  t.sent_nonce = push.nonce;
  t.sent_at = Clock::now();
  t.awaiting_ack = true;
  ++t.pushes;
  thread_stats_.inc(type == Push::Type::kBootstrap ? pushes_ : assignment_pushes_);
  return push;
}

std::vector<Push> Discovery::nextPushes(uint64_t conn) {
  std::shared_ptr<const MeshConfig> config;
  translate::ProxyIdentity identity;
  std::shared_ptr<const std::string> last_shared;
  size_t last_hash = 0;
  std::shared_ptr<const translate::AssignmentSet> last_assignments;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = proxies_.find(conn);
    if (it == proxies_.end() || current_ == nullptr) return {};
    config = current_;
    identity = it->second.identity;
    last_shared = it->second.sent_shared;
    last_hash = it->second.sent_shared_hash;
    last_assignments = it->second.sent_assignments;
  }
  // Translate and compare without holding mu_: the slow part.
  translate::SplitTranslation t = config->translateSplit(identity);
  // Deterministic so that equal configs give equal bytes.
  std::string own = translate::serializeDeterministic(t.own);
  // Usually the same object (same view), or of another hash (another config): a full compare
  // only when a new config gave equal bytes.
  const bool same_shared =
      last_shared != nullptr &&
      (last_shared == t.shared || (last_hash == t.shared_hash && *last_shared == *t.shared));
  // Computed once per (view, previous view) and shared by the proxies that have them.
  std::shared_ptr<const std::string> changed = t.assignments->changedSince(last_assignments);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = proxies_.find(conn);
  if (it == proxies_.end()) return {};
  ProxyState& p = it->second;
  const std::string version = std::to_string(config->version());
  p.config_version = version;
  std::vector<Push> pushes;
  if (p.bootstrap.sent_version.empty() || p.sent_shared != last_shared || !same_shared ||
      p.sent_own != own) {
    pushes.push_back(
        record(p.bootstrap, Push::Type::kBootstrap, version, t.shared, std::move(own)));
    p.sent_own = pushes.back().own_bytes;
    p.sent_shared = std::move(t.shared);
    p.sent_shared_hash = t.shared_hash;
    if (warned_version_ != version) {
      warned_version_ = version;
      warned_.clear();
    }
    for (const auto& w : t.warnings) {
      if (warned_.insert(w).second) {
        MESH_LOG("pilot", warn, "config version {}: {} (first seen for proxy {})", version, w,
                 identity.id);
      } else {
        MESH_LOG("pilot", debug, "proxy {}: {}", identity.id, w);
      }
    }
  }
  if (p.assignments_subscribed) {
    // A NACK since (sent_assignments reset): resend them all.
    if (p.sent_assignments != last_assignments) changed = t.assignments->all();
    if (!changed->empty() || p.assignments.sent_version.empty()) {
      pushes.push_back(
          record(p.assignments, Push::Type::kAssignments, version, std::move(changed), ""));
    }
    p.sent_assignments = std::move(t.assignments);
  }
  return pushes;
}

bool Discovery::onResponse(uint64_t conn, const std::string& type_url,
                           const std::string& version_info, const std::string& nonce,
                           std::optional<std::pair<int, std::string>> error) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = proxies_.find(conn);
  if (it == proxies_.end()) return false;
  ProxyState& p = it->second;
  const bool is_assignments = type_url == kAssignmentType;
  TypeState& t = is_assignments ? p.assignments : p.bootstrap;
  if (nonce.empty() || nonce != t.sent_nonce) return false;
  const bool first_answer = t.awaiting_ack;
  t.awaiting_ack = false;
  if (error) {
    t.nack_version = t.sent_version;
    t.nack_code = error->first;
    t.nack_message = error->second;
    // The proxy kept its last good assignments, which pilot no longer knows: the next push
    // sends them all.
    if (is_assignments) p.sent_assignments = nullptr;
    if (first_answer) thread_stats_.inc(is_assignments ? assignment_rejects_ : rejects_);
    MESH_LOG("pilot", warn, "proxy {} rejected {} version {} (code {}): {}", p.identity.id,
             type_url, t.sent_version, error->first, error->second);
    return true;
  }
  t.acked_version = version_info;
  if (first_answer && version_info == t.sent_version) {
    std::chrono::duration<double> d = Clock::now() - t.sent_at;
    thread_stats_.observe(convergence_, d.count());
  }
  return true;
}

const char* Discovery::TypeState::status() const {
  if (sent_version.empty()) return "NOT SENT";
  if (!nack_version.empty() && nack_version == sent_version) return "REJECTED";
  if (acked_version == sent_version && !awaiting_ack) return "SYNCED";
  return "STALE";
}

void appendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

namespace {

void appendField(std::string* out, std::string_view name, std::string_view value, bool comma) {
  if (comma) out->push_back(',');
  appendJsonString(out, name);
  out->push_back(':');
  appendJsonString(out, value);
}

}  // namespace

std::string Discovery::syncz() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out = "[";
  bool first = true;
  for (const auto& [id, p] : proxies_) {
    if (!first) out += ",";
    first = false;
    out += "{";
    appendField(&out, "proxy", p.identity.id, false);
    appendField(&out, "namespace", p.identity.namespace_name, true);
    appendField(&out, "workload", p.identity.workload_name, true);
    appendField(&out, "admin_address", p.identity.admin_address, true);
    out += ",\"stream\":" + std::to_string(id);
    // The config version last computed for the proxy: its config is current when this is
    // pilot's version and the status is SYNCED (a change that leaves it alone sends nothing).
    appendField(&out, "config_version", p.config_version, true);
    // The Bootstrap's versions, and the proxy's status over both types: SYNCED when each type
    // sent was ACKed; REJECTED when the last of either was NACKed.
    const TypeState& b = p.bootstrap;
    const TypeState& a = p.assignments;
    appendField(&out, "sent_version", b.sent_version, true);
    appendField(&out, "sent_nonce", b.sent_nonce, true);
    appendField(&out, "acked_version", b.acked_version, true);
    std::string_view status = b.status();
    if (status == "SYNCED" && p.assignments_subscribed) status = a.status();
    if (std::string_view(a.status()) == "REJECTED") status = "REJECTED";
    appendField(&out, "status", status, true);
    auto nack = [&](const TypeState& t) {
      if (t.nack_version.empty()) return std::string("null");
      std::string o = "{";
      appendField(&o, "version", t.nack_version, false);
      o += ",\"code\":" + std::to_string(t.nack_code);
      appendField(&o, "message", t.nack_message, true);
      return o + "}";
    };
    out += ",\"last_nack\":" + nack(b);
    out += ",\"pushes\":" + std::to_string(b.pushes);
    // The assignments' (EDS) own versions, flat with a prefix: keys stay unique per proxy.
    appendField(&out, "eds_sent_version", a.sent_version, true);
    appendField(&out, "eds_sent_nonce", a.sent_nonce, true);
    appendField(&out, "eds_acked_version", a.acked_version, true);
    appendField(&out, "eds_status", p.assignments_subscribed ? a.status() : "NOT SUBSCRIBED", true);
    out += ",\"eds_last_nack\":" + nack(a);
    out += ",\"eds_pushes\":" + std::to_string(a.pushes) + "}";
  }
  out += "]\n";
  return out;
}

std::string MeshConfig::registryz() const {
  std::lock_guard<std::mutex> lock(mu_);  // the registry fills caches on first use
  auto map_json = [](const std::map<std::string, std::string>& m) {
    std::string out = "{";
    for (const auto& [k, v] : m) {
      if (out.size() > 1) out += ",";
      appendJsonString(&out, k);
      out += ":";
      appendJsonString(&out, v);
    }
    return out + "}";
  };
  std::string out = "{\"version\":\"" + std::to_string(version_) + "\",\"services\":[";
  bool first = true;
  for (const model::Service* s : registry_.services()) {
    out += first ? "{" : ",{";
    first = false;
    out += "\"hostname\":";
    appendJsonString(&out, s->hostname);
    out += ",\"namespace\":";
    appendJsonString(&out, s->namespace_name);
    out += ",\"resolution\":\"";
    out += s->resolution == model::Resolution::kDns ? "DNS" : "STATIC";
    out += "\",\"mesh_external\":";
    out += s->mesh_external ? "true" : "false";
    out += ",\"ports\":[";
    for (size_t i = 0; i < s->ports.size(); ++i) {
      const model::ServicePort& p = s->ports[i];
      out += std::string(i ? "," : "") + "{\"name\":";
      appendJsonString(&out, p.name);
      out += ",\"port\":" + std::to_string(p.number) + ",\"protocol\":";
      appendJsonString(&out, std::string(model::protocolName(p.protocol)));
      out += "}";
    }
    out += "],\"endpoints\":[";
    const auto& eps = registry_.endpoints(*s);
    for (size_t i = 0; i < eps.size(); ++i) {
      const model::Endpoint& e = eps[i];
      out += std::string(i ? "," : "") + "{\"address\":";
      appendJsonString(&out, e.address);
      out += ",\"ports\":{";
      bool pf = true;
      for (const auto& [name, port] : e.ports) {
        out += pf ? "" : ",";
        pf = false;
        appendJsonString(&out, name);
        out += ":" + std::to_string(port);
      }
      out += "},\"labels\":" + map_json(e.labels) + ",\"workload\":";
      appendJsonString(&out, e.workload_name);
      out += ",\"service_account\":";
      appendJsonString(&out, e.service_account);
      out += ",\"healthy\":";
      out += e.healthy ? "true" : "false";
      out += "}";
    }
    out += "]}";
  }
  return out + "]}\n";
}

std::string Discovery::registryz() const {
  std::shared_ptr<const MeshConfig> config = current();
  if (config == nullptr) return "{\"version\":\"\",\"services\":[]}\n";
  return config->registryz();
}

std::string Discovery::configz() const {
  std::shared_ptr<const MeshConfig> config;
  std::string out = "{";
  {
    std::lock_guard<std::mutex> lock(mu_);
    config = current_;
    out += "\"errors\":[";
    bool first = true;
    for (const ValidationError& e : errors_.errors()) {
      if (!first) out += ",";
      first = false;
      out += "{";
      appendField(&out, "file", e.file, false);
      out += ",\"line\":" + std::to_string(e.line);
      appendField(&out, "field", e.path, true);
      appendField(&out, "message", e.message, true);
      appendField(&out, "text", e.toString(), true);
      out += "}";
    }
    out += "]";
  }
  out += ",\"version\":";
  appendJsonString(&out, config ? std::to_string(config->version()) : "");
  out += ",\"resources\":[";
  if (config) {
    bool first = true;
    for (const config::Resource& r : config->config().resources) {
      if (!first) out += ",";
      first = false;
      out += "{";
      appendField(&out, "kind", config::kindName(r.kind), false);
      appendField(&out, "namespace", r.namespace_name, true);
      appendField(&out, "name", r.name, true);
      appendField(&out, "file", r.file, true);
      out += ",\"line\":" + std::to_string(r.line) + "}";
    }
    for (const config::KubernetesObject& o : config->config().kube_objects) {
      if (!first) out += ",";
      first = false;
      const char* kind = o.as<config::v1::KubernetesServiceObject>()     ? "Service"
                         : o.as<config::v1::KubernetesEndpointsObject>() ? "Endpoints"
                                                                         : "Pod";
      out += "{";
      appendField(&out, "kind", kind, false);
      appendField(&out, "namespace", o.namespace_name, true);
      appendField(&out, "name", o.name, true);
      appendField(&out, "file", o.file, true);
      out += ",\"line\":" + std::to_string(o.line) + "}";
    }
  }
  out += "]}\n";
  return out;
}

std::string Discovery::metrics() const {
  std::string out;
  stats_.prometheusText(&out);
  return out;
}

}  // namespace mesh::pilot::server
