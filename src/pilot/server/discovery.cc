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

mesh::proxy::v1::Bootstrap Push::bootstrap() const {
  mesh::proxy::v1::Bootstrap b;
  b.ParseFromString(*shared_bytes + own_bytes);
  return b;
}

Discovery::Discovery(stats::Store& stats, translate::PushOptions options)
    : options_(std::move(options)), stats_(stats), thread_stats_(stats.createThreadStats()) {
  using stats::MetricType;
  pushes_ = stats.series(registerFamily(stats, "pilot_xds_pushes", MetricType::kCounter,
                                        "Responses sent on discovery streams.", {"type"}),
                         {"bootstrap"});
  rejects_ = stats.series(registerFamily(stats, "pilot_total_xds_rejects", MetricType::kCounter,
                                         "Responses a proxy rejected (NACKs).", {"type"}),
                          {"bootstrap"});
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
  auto config = std::make_shared<const MeshConfig>(std::move(loaded), version, options_);
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

std::optional<Push> Discovery::nextPush(uint64_t conn) {
  std::shared_ptr<const MeshConfig> config;
  translate::ProxyIdentity identity;
  std::shared_ptr<const std::string> last_shared;
  size_t last_hash = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = proxies_.find(conn);
    if (it == proxies_.end() || current_ == nullptr) return std::nullopt;
    config = current_;
    identity = it->second.identity;
    last_shared = it->second.sent_shared;
    last_hash = it->second.sent_shared_hash;
  }
  // Translate and compare without holding mu_: the slow part.
  translate::SplitTranslation t = config->translateSplit(identity);
  std::string own;
  {
    // Deterministic so that equal configs give equal bytes (maps are serialized in key order).
    google::protobuf::io::StringOutputStream sos(&own);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    t.own.SerializeToCodedStream(&cos);
  }
  // Usually the same object (same view), or of another hash (another config): a full compare
  // only when a new config gave equal bytes.
  const bool same_shared =
      last_shared != nullptr &&
      (last_shared == t.shared || (last_hash == t.shared_hash && *last_shared == *t.shared));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = proxies_.find(conn);
  if (it == proxies_.end()) return std::nullopt;
  ProxyState& p = it->second;
  p.config_version = std::to_string(config->version());
  if (!p.sent_version.empty() && p.sent_shared == last_shared && same_shared && p.sent_own == own) {
    return std::nullopt;
  }
  Push push;
  push.version = std::to_string(config->version());
  push.nonce = std::to_string(next_nonce_++);
  push.shared_bytes = std::move(t.shared);
  push.own_bytes = std::move(own);
  p.sent_version = push.version;
  p.sent_nonce = push.nonce;
  p.sent_shared = push.shared_bytes;
  p.sent_shared_hash = t.shared_hash;
  p.sent_own = push.own_bytes;
  p.sent_at = Clock::now();
  p.awaiting_ack = true;
  ++p.pushes;
  thread_stats_.inc(pushes_);
  for (const auto& w : t.warnings) {
    MESH_LOG("pilot", warn, "proxy {}: {}", identity.id, w);
  }
  return push;
}

bool Discovery::onResponse(uint64_t conn, const std::string& version_info, const std::string& nonce,
                           std::optional<std::pair<int, std::string>> error) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = proxies_.find(conn);
  if (it == proxies_.end()) return false;
  ProxyState& p = it->second;
  if (nonce.empty() || nonce != p.sent_nonce) return false;
  const bool first_answer = p.awaiting_ack;
  p.awaiting_ack = false;
  if (error) {
    p.nack_version = p.sent_version;
    p.nack_code = error->first;
    p.nack_message = error->second;
    if (first_answer) thread_stats_.inc(rejects_);
    MESH_LOG("pilot", warn, "proxy {} rejected version {} (code {}): {}", p.identity.id,
             p.sent_version, error->first, error->second);
    return true;
  }
  p.acked_version = version_info;
  if (first_answer && version_info == p.sent_version) {
    std::chrono::duration<double> d = Clock::now() - p.sent_at;
    thread_stats_.observe(convergence_, d.count());
  }
  return true;
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
    appendField(&out, "sent_version", p.sent_version, true);
    appendField(&out, "sent_nonce", p.sent_nonce, true);
    appendField(&out, "acked_version", p.acked_version, true);
    const char* status = "NOT SENT";
    if (!p.sent_version.empty()) {
      if (!p.nack_version.empty() && p.nack_version == p.sent_version) {
        status = "REJECTED";
      } else if (p.acked_version == p.sent_version && !p.awaiting_ack) {
        status = "SYNCED";
      } else {
        status = "STALE";
      }
    }
    appendField(&out, "status", status, true);
    out += ",\"last_nack\":";
    if (p.nack_version.empty()) {
      out += "null";
    } else {
      out += "{";
      appendField(&out, "version", p.nack_version, false);
      out += ",\"code\":" + std::to_string(p.nack_code);
      appendField(&out, "message", p.nack_message, true);
      out += "}";
    }
    out += ",\"pushes\":" + std::to_string(p.pushes) + "}";
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
