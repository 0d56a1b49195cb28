#include "proxy/config/snapshot_builder.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <re2/re2.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/config/yaml_proto.h"
#include "core/hash.h"
#include "core/net/address.h"
#include "core/proxy_id.h"
#include "proxy/telemetry/peer_metadata.h"
#include "proxy/v1/config.pb.h"

namespace mesh::proxy {
namespace {

class Builder {
 public:
  Builder(const BuildInput& in, SnapshotContext& ctx) : in_(in), ctx_(ctx) {}

  StatusOr<std::shared_ptr<const Snapshot>> build();

 private:
  void error(const std::string& path, std::string message) {
    int line = in_.source_map ? in_.source_map->lineOf(path) : 0;
    errors_.add(in_.file, line, path, std::move(message));
  }
  Millis duration(const google::protobuf::Duration& d, const std::string& path) {
    if (d.seconds() < 0 || d.nanos() < 0) {
      error(path, "must not be negative");
      return Millis(0);
    }
    return Millis(d.seconds() * 1000 + d.nanos() / 1000000);
  }
  std::optional<StringMatch> stringMatch(const v1::StringMatcher& m, const std::string& path);
  FaultPolicy faultPolicy(const v1::FaultInjection& f, const std::string& path);
  HeaderOps headerOps(const v1::HeaderOperations& ops, const std::string& path);
  void buildNode();
  void buildClusters();
  void buildRouteTables();
  std::unique_ptr<RouteTable> buildRouteTable(const v1::RouteConfiguration& rc,
                                              const std::string& path);
  void buildRoute(const v1::Route& r, const std::string& path, Route* out);
  void buildListeners();
  void httpListener(const v1::HttpConnectionManager& h, const std::string& hp_path,
                    ListenerInfo& info);
  TcpProxyInfo tcpProxy(const v1::TcpProxy& t, const std::string& path);
  std::shared_ptr<tls::ContextProvider> downstreamTls(const v1::DownstreamTls& t,
                                                      const std::string& path);
  std::shared_ptr<tls::ContextProvider> upstreamTls(const v1::UpstreamTls& t,
                                                    const std::string& path);
  bool tlsVersions(v1::TlsVersion min, v1::TlsVersion max, const std::string& path,
                   tls::TlsOptions& o);
  // Checks the files now (each unreadable one an error on its field), then builds the context.
  std::shared_ptr<tls::ContextProvider> tlsProvider(tls::TlsOptions o, const std::string& path);
  // Resolves a cluster name to a weighted target appended to *targets (an error if unknown).
  void addTarget(const std::string& name, uint32_t weight, const std::string& path,
                 std::vector<WeightedTarget>* targets, uint64_t* total_weight) {
    auto it = snap_->cluster_index.find(name);
    if (name.empty()) {
      error(path, "cluster name required");
    } else if (it == snap_->cluster_index.end()) {
      error(path, "unknown cluster '" + name + "'");
    } else {
      WeightedTarget t;
      t.cluster = it->second;
      t.cluster_name = name;
      t.weight = weight;
      targets->push_back(std::move(t));
      *total_weight += weight;
    }
  }

  const BuildInput& in_;
  SnapshotContext& ctx_;
  ValidationErrors errors_;
  std::shared_ptr<Snapshot> snap_ = std::make_shared<Snapshot>();
  std::map<std::string, const RouteTable*> tables_by_name_;
};

bool validHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c))) {
      return false;
    }
  }
  return true;
}

bool validHeaderValue(std::string_view v) {
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) c = http::toLowerAscii(c);
  return s;
}

std::map<std::string, std::string> toStdMap(
    const google::protobuf::Map<std::string, std::string>& m) {
  return std::map<std::string, std::string>(m.begin(), m.end());
}

std::optional<StringMatch> Builder::stringMatch(const v1::StringMatcher& m,
                                                const std::string& path) {
  StringMatch::Kind kind;
  std::string value;
  switch (m.match_case()) {
    case v1::StringMatcher::kExact:
      kind = StringMatch::Kind::kExact;
      value = m.exact();
      break;
    case v1::StringMatcher::kPrefix:
      kind = StringMatch::Kind::kPrefix;
      value = m.prefix();
      break;
    case v1::StringMatcher::kSuffix:
      kind = StringMatch::Kind::kSuffix;
      value = m.suffix();
      break;
    case v1::StringMatcher::kRegex:
      kind = StringMatch::Kind::kRegex;
      value = m.regex();
      break;
    default:
      error(path, "one of exact, prefix, suffix or regex is required");
      return std::nullopt;
  }
  std::string err;
  auto sm = StringMatch::create(kind, std::move(value), m.ignore_case(), &err);
  if (!sm) error(path + (kind == StringMatch::Kind::kRegex ? ".regex" : ""), err);
  return sm;
}

HeaderOps Builder::headerOps(const v1::HeaderOperations& ops, const std::string& path) {
  HeaderOps out;
  auto pairs = [&](const auto& list, const char* what, auto& dest) {
    for (int i = 0; i < list.size(); ++i) {
      std::string p = path + "." + what + "[" + std::to_string(i) + "]";
      const auto& hv = list[i];
      if (!validHeaderName(hv.name())) {
        error(p + ".name", "invalid header name '" + hv.name() + "'");
      } else if (!validHeaderValue(hv.value())) {
        error(p + ".value", "header value must not contain control characters");
      } else {
        dest.emplace_back(lower(hv.name()), hv.value());
      }
    }
  };
  pairs(ops.set(), "set", out.set);
  pairs(ops.add(), "add", out.add);
  for (int i = 0; i < ops.remove_size(); ++i) {
    if (!validHeaderName(ops.remove(i))) {
      error(path + ".remove[" + std::to_string(i) + "]",
            "invalid header name '" + ops.remove(i) + "'");
    } else {
      out.remove.push_back(lower(ops.remove(i)));
    }
  }
  return out;
}

void Builder::buildNode() {
  const v1::Node& n = in_.config->node();
  NodeInfo& node = snap_->node;
  node.id = n.id();
  node.workload_name = n.workload_name();
  node.namespace_ = n.namespace_();
  node.labels = toStdMap(n.labels());
  node.service_account = n.service_account();
  if (!n.trust_domain().empty()) node.trust_domain = n.trust_domain();
  if (!n.cluster_id().empty()) node.cluster_id = n.cluster_id();
  WorkloadLabels w = workloadFromLabels(node.workload_name, node.namespace_, node.labels,
                                        node.service_account, node.trust_domain, node.cluster_id);
  node.workload_id = ctx_.telemetry().internWorkload(w);
  // The pod name inside an Istio id ("sidecar~<ip>~<pod>.<ns>~..."), else the workload's.
  std::string pod = podNameFromProxyId(node.id, node.namespace_);
  if (pod.empty()) pod = node.workload_name;
  if (!node.workload_name.empty()) {
    node.peer_metadata = encodePeerMetadata(pod, node.workload_name, node.namespace_, node.labels,
                                            node.service_account, node.cluster_id);
  }

  const v1::Admin& a = in_.config->admin();
  auto check = [&](const std::string& value, const char* field, std::string* dest) {
    if (value.empty()) return;
    auto hp = net::parseHostPort(value);
    if (!hp.ok()) {
      error(std::string("admin.") + field, hp.status().message());
    } else if (!net::isIpLiteral(hp->host)) {
      error(std::string("admin.") + field, "must be an IP address, got '" + hp->host + "'");
    } else {
      *dest = value;
    }
  };
  check(a.address(), "address", &snap_->admin_address);
  check(a.prometheus_address(), "prometheusAddress", &snap_->prometheus_address);
  check(a.health_address(), "healthAddress", &snap_->health_address);
  snap_->metrics_enabled =
      !in_.config->telemetry().has_metrics() || in_.config->telemetry().metrics().value();
}

void Builder::buildClusters() {
  const auto& clusters = in_.config->clusters();
  for (int i = 0; i < clusters.size(); ++i) {
    const v1::Cluster& c = clusters[i];
    std::string path = "clusters[" + std::to_string(i) + "]";
    auto info = std::make_shared<ClusterInfo>();
    info->name = c.name();
    if (c.name().empty()) {
      error(path + ".name", "required");
      continue;
    }
    if (snap_->cluster_index.count(c.name())) {
      error(path + ".name", "duplicate cluster name '" + c.name() + "'");
      continue;
    }
    switch (c.lb_policy()) {
      case v1::Cluster::ROUND_ROBIN:
        info->lb = LbPolicy::kRoundRobin;
        break;
      case v1::Cluster::LEAST_REQUEST:
        info->lb = LbPolicy::kLeastRequest;
        break;
      case v1::Cluster::RANDOM:
        info->lb = LbPolicy::kRandom;
        break;
      case v1::Cluster::RING_HASH:
        info->lb = LbPolicy::kRingHash;
        break;
      case v1::Cluster::MAGLEV:
        info->lb = LbPolicy::kMaglev;
        break;
      default:
        error(path + ".lbPolicy", "unsupported load balancing policy");
    }
    if (c.has_connect_timeout()) {
      info->connect_timeout = duration(c.connect_timeout(), path + ".connectTimeout");
      if (info->connect_timeout.count() == 0) error(path + ".connectTimeout", "must be > 0");
    }
    if (c.has_idle_timeout())
      info->idle_timeout = duration(c.idle_timeout(), path + ".idleTimeout");
    if (c.ring_hash_minimum_ring_size() != 0) {
      if (c.ring_hash_minimum_ring_size() > (1u << 23)) {
        error(path + ".ringHashMinimumRingSize", "must be <= 8388608");
      } else {
        info->ring_min_size = c.ring_hash_minimum_ring_size();
      }
    }
    if (c.maglev_table_size() != 0) {
      uint64_t m = c.maglev_table_size();
      bool prime = m >= 2;
      for (uint64_t d = 2; d * d <= m && prime; ++d) prime = m % d != 0;
      if (!prime || m > 5000011) {
        error(path + ".maglevTableSize", "must be a prime <= 5000011");
      } else {
        info->maglev_size = m;
      }
    }
    if (c.has_service()) {
      ServiceLabels s{c.service().host(), c.service().name(), c.service().namespace_()};
      if (s.name.empty() && !s.host.empty()) s.name = s.host.substr(0, s.host.find('.'));
      info->service_id = ctx_.telemetry().internService(s);
    }
    std::string_view labels_one[] = {info->name};
    auto series = [&](stats::FamilyId f) { return ctx_.store().series(f, labels_one); };
    info->stats.rq_total = series(ctx_.upstream_rq_total);
    info->stats.rq_retry = series(ctx_.upstream_rq_retry);
    info->stats.rq_timeout = series(ctx_.upstream_rq_timeout);
    info->stats.cx_total = series(ctx_.upstream_cx_total);
    info->stats.cx_connect_fail = series(ctx_.upstream_cx_connect_fail);
    info->stats.cx_connect_timeout = series(ctx_.upstream_cx_connect_timeout);
    if (c.has_tls()) {
      info->tls = upstreamTls(c.tls(), path + ".tls");
      info->pool_tag = "|tls:" + std::to_string(hash64(c.tls().SerializeAsString()));
      info->stats.ssl_handshake = series(ctx_.upstream_ssl_handshake);
      info->stats.ssl_connection_error = series(ctx_.upstream_ssl_connection_error);
    }
    info->stats.rq_no_host = series(ctx_.upstream_no_host);
    info->stats.rq_pending_overflow = series(ctx_.upstream_rq_pending_overflow);
    info->stats.rq_pending_active = series(ctx_.upstream_rq_pending_active);
    info->breaker = ctx_.breakerState(info->name);
    if (c.has_circuit_breakers()) {
      const auto& cb = c.circuit_breakers();
      std::string cp = path + ".circuitBreakers";
      auto limit = [&](bool has, uint32_t v, const std::string& field, uint32_t* out) {
        if (!has) return;
        if (v == 0) error(cp + "." + field, "must be > 0");
        *out = v;
      };
      limit(cb.has_max_connections(), cb.max_connections().value(), "maxConnections",
            &info->limits.max_connections);
      limit(cb.has_max_pending_requests(), cb.max_pending_requests().value(), "maxPendingRequests",
            &info->limits.max_pending_requests);
      limit(cb.has_max_requests(), cb.max_requests().value(), "maxRequests",
            &info->limits.max_requests);
      if (cb.has_max_retries()) info->limits.max_retries = cb.max_retries().value();
    }
    info->max_requests_per_connection = c.max_requests_per_connection();
    info->http2 = c.http2();
    info->stats.outlier_ejections = series(ctx_.upstream_outlier_ejections);
    info->stats.rq_retry_overflow = series(ctx_.upstream_rq_retry_overflow);
    if (c.has_outlier_detection()) {
      const auto& o = c.outlier_detection();
      std::string op = path + ".outlierDetection";
      OutlierDetection& od = info->outlier;
      od.enabled = true;
      if (o.has_consecutive_5xx()) od.consecutive_5xx = o.consecutive_5xx().value();
      if (o.has_consecutive_gateway_failure())
        od.consecutive_gateway = o.consecutive_gateway_failure().value();
      if (o.has_base_ejection_time()) {
        od.base_ejection = duration(o.base_ejection_time(), op + ".baseEjectionTime");
        if (od.base_ejection.count() < 1) error(op + ".baseEjectionTime", "must be >= 1ms");
      }
      if (o.has_interval()) {
        if (duration(o.interval(), op + ".interval").count() < 1)
          error(op + ".interval", "must be >= 1ms");
      }
      if (o.has_max_ejection_percent()) {
        od.max_ejection_percent = o.max_ejection_percent().value();
        if (od.max_ejection_percent > 100) error(op + ".maxEjectionPercent", "must be <= 100");
      }
      od.min_health_percent = o.min_health_percent();
      if (od.min_health_percent > 100) error(op + ".minHealthPercent", "must be <= 100");
      if (od.consecutive_5xx == 0 && od.consecutive_gateway == 0) od.enabled = false;
    }

    info->dns = c.type() == v1::Cluster::STRICT_DNS;
    info->original_dst = c.type() == v1::Cluster::ORIGINAL_DST;
    if (!c.upstream_bind_address().empty()) {
      if (!net::isIpLiteral(c.upstream_bind_address())) {
        error(path + ".upstreamBindAddress",
              "must be an IP address, got '" + c.upstream_bind_address() + "'");
      } else {
        info->upstream_bind_address = c.upstream_bind_address();
      }
    }
    if (info->original_dst) {
      if (c.endpoints_size() > 0) {
        error(path + ".endpoints", "must be empty for an ORIGINAL_DST cluster");
      }
      // One placeholder host (port 0: unusable) carries the host stats; a worker serves each
      // original destination with a copy that has the real address (originalDstRuntime).
      Host h;
      h.address = "0.0.0.0";
      h.key = "original_dst";
      info->hosts.push_back(std::move(h));
    }
    if (c.has_dns_refresh_rate()) {
      info->dns_refresh = duration(c.dns_refresh_rate(), path + ".dnsRefreshRate");
      if (info->dns_refresh.count() < 100) error(path + ".dnsRefreshRate", "must be >= 100ms");
    }
    std::vector<std::vector<std::string>> resolved;
    for (int j = 0; j < (info->original_dst ? 0 : c.endpoints_size()); ++j) {
      const v1::Endpoint& e = c.endpoints(j);
      std::string ep = path + ".endpoints[" + std::to_string(j) + "]";
      if (e.port() == 0 || e.port() > 65535) {
        error(ep + ".port", "must be 1..65535");
        continue;
      }
      uint32_t workload = 0;
      if (e.has_workload()) {
        const v1::WorkloadInfo& w = e.workload();
        workload = ctx_.telemetry().internWorkload(
            workloadFromLabels(w.name(), w.namespace_(), toStdMap(w.labels()), w.service_account(),
                               snap_->node.trust_domain, snap_->node.cluster_id));
      }
      uint32_t weight = e.weight() == 0 ? 1 : e.weight();
      if (info->dns) {
        if (e.address().empty()) {
          error(ep + ".address", "required");
          continue;
        }
        info->dns_targets.push_back(
            {e.address(), static_cast<uint16_t>(e.port()), weight, workload});
        continue;
      }
      Host h;
      h.address = e.address();
      h.port = static_cast<uint16_t>(e.port());
      h.weight = weight;
      h.workload_id = workload;
      if (!fillHostAddress(h)) {
        error(ep + ".address", "must be an IP address for a STATIC cluster, got '" + e.address() +
                                   "' (use type: STRICT_DNS for names)");
        continue;
      }
      info->hosts.push_back(std::move(h));
    }
    if (info->dns) {
      // Reuse the previous snapshot's answers when the names did not change; else resolve now.
      const ClusterInfo* prev = in_.previous ? in_.previous->findCluster(info->name) : nullptr;
      bool same = prev && prev->dns && prev->dns_targets.size() == info->dns_targets.size();
      for (size_t k = 0; same && k < info->dns_targets.size(); ++k) {
        same = prev->dns_targets[k].hostname == info->dns_targets[k].hostname &&
               prev->dns_targets[k].port == info->dns_targets[k].port &&
               prev->dns_targets[k].weight == info->dns_targets[k].weight &&
               prev->dns_targets[k].workload_id == info->dns_targets[k].workload_id;
      }
      if (same) {
        info->hosts = prev->hosts;
      } else {
        std::vector<std::vector<std::string>> addrs;
        for (const auto& t : info->dns_targets) {
          auto r = ctx_.resolver()(t.hostname);
          addrs.push_back(r.ok() ? *r : std::vector<std::string>{});
        }
        info->hosts = dnsHosts(*info, addrs, ctx_);
      }
    }
    for (Host& h : info->hosts) {
      std::string_view labels_two[] = {info->name, h.key};
      h.stats.rq_total = ctx_.store().series(ctx_.host_rq_total, labels_two);
      h.stats.rq_error = ctx_.store().series(ctx_.host_rq_error, labels_two);
      h.stats.cx_total = ctx_.store().series(ctx_.host_cx_total, labels_two);
      h.stats.cx_connect_fail = ctx_.store().series(ctx_.host_cx_connect_fail, labels_two);
    }
    ctx_.attachHealth(*info);
    buildLoadBalancerTables(*info);
    snap_->cluster_index.emplace(info->name, static_cast<uint32_t>(snap_->clusters.size()));
    snap_->clusters.push_back(std::move(info));
  }
}

bool Builder::tlsVersions(v1::TlsVersion min, v1::TlsVersion max, const std::string& path,
                          tls::TlsOptions& o) {
  auto version = [](v1::TlsVersion v, int dflt) {
    return v == v1::TLSv1_2 ? TLS1_2_VERSION : v == v1::TLSv1_3 ? TLS1_3_VERSION : dflt;
  };
  o.min_version = version(min, TLS1_2_VERSION);
  o.max_version = version(max, TLS1_3_VERSION);
  if (o.min_version > o.max_version) {
    error(path + ".minVersion", "must not be above maxVersion");
    return false;
  }
  return true;
}

std::shared_ptr<tls::ContextProvider> Builder::tlsProvider(tls::TlsOptions o,
                                                           const std::string& path) {
  bool readable = true;
  const std::pair<const std::string*, const char*> files[] = {
      {&o.certificate_chain, "certificateChain"},
      {&o.private_key, "privateKey"},
      {&o.trusted_ca, "trustedCa"}};
  for (auto [file, field] : files) {
    if (file->empty() || ::access(file->c_str(), R_OK) == 0) continue;
    error(path + "." + field, "cannot read '" + *file + "': " + std::strerror(errno));
    readable = false;
  }
  if (!readable) return nullptr;
  auto p = tls::ContextProvider::create(std::move(o));
  if (!p.ok()) {
    error(path, std::string(p.status().message()));
    return nullptr;
  }
  ctx_.tlsRegistry().add(*p);
  return *p;
}

std::shared_ptr<tls::ContextProvider> Builder::downstreamTls(const v1::DownstreamTls& t,
                                                             const std::string& path) {
  tls::TlsOptions o;
  o.server = true;
  o.certificate_chain = t.certificate_chain();
  o.private_key = t.private_key();
  o.trusted_ca = t.trusted_ca();
  o.require_client_certificate = t.require_client_certificate();
  o.alpn.assign(t.alpn().begin(), t.alpn().end());
  bool ok = tlsVersions(t.min_version(), t.max_version(), path, o);
  if (o.certificate_chain.empty()) {
    error(path + ".certificateChain", "required");
    ok = false;
  }
  if (o.private_key.empty()) {
    error(path + ".privateKey", "required");
    ok = false;
  }
  if (o.require_client_certificate && o.trusted_ca.empty()) {
    error(path + ".trustedCa", "required with requireClientCertificate");
    ok = false;
  }
  for (int i = 0; i < t.alpn_size(); ++i) {
    if (t.alpn(i).empty() || t.alpn(i).size() > 255) {
      error(path + ".alpn[" + std::to_string(i) + "]", "must be 1..255 bytes");
      ok = false;
    }
  }
  if (!ok) return nullptr;
  return tlsProvider(std::move(o), path);
}

std::shared_ptr<tls::ContextProvider> Builder::upstreamTls(const v1::UpstreamTls& t,
                                                           const std::string& path) {
  tls::TlsOptions o;
  o.server = false;
  o.sni = t.sni();
  o.certificate_chain = t.certificate_chain();
  o.private_key = t.private_key();
  o.trusted_ca = t.trusted_ca();
  o.subject_alt_names.assign(t.subject_alt_names().begin(), t.subject_alt_names().end());
  bool ok = tlsVersions(t.min_version(), t.max_version(), path, o);
  if (o.certificate_chain.empty() != o.private_key.empty()) {
    error(path + (o.private_key.empty() ? ".privateKey" : ".certificateChain"),
          "certificateChain and privateKey go together");
    ok = false;
  }
  if (!o.subject_alt_names.empty() && o.trusted_ca.empty()) {
    error(path + ".trustedCa", "required with subjectAltNames");
    ok = false;
  }
  if (!ok) return nullptr;
  return tlsProvider(std::move(o), path);
}

// 0..100 percent as a fraction per million; absent means every request.
static uint32_t perMillion(bool has, double percent) {
  if (!has) return 1000000;
  return static_cast<uint32_t>(percent * 10000.0 + 0.5);
}

FaultPolicy Builder::faultPolicy(const v1::FaultInjection& f, const std::string& path) {
  FaultPolicy out;
  auto percentage = [&](bool has, double value, const std::string& p) {
    if (has && !(value >= 0.0 && value <= 100.0)) error(p, "must be between 0 and 100");
    return perMillion(has, std::clamp(value, 0.0, 100.0));
  };
  if (f.has_delay()) {
    const auto& d = f.delay();
    std::string dp = path + ".delay";
    if (!d.has_fixed_delay()) {
      error(dp + ".fixedDelay", "required");
    } else {
      out.delay = duration(d.fixed_delay(), dp + ".fixedDelay");
      if (out.delay.count() < 1) error(dp + ".fixedDelay", "must be >= 1ms");
    }
    out.delay_per_million =
        percentage(d.has_percentage(), d.percentage().value(), dp + ".percentage");
  }
  if (f.has_abort()) {
    const auto& a = f.abort();
    std::string ap = path + ".abort";
    if (a.has_grpc_status()) {
      if (a.http_status() != 0) {
        error(ap + ".grpcStatus", "only one of httpStatus and grpcStatus may be set");
      } else if (a.grpc_status().value() > kMaxStatusCode) {
        error(ap + ".grpcStatus", "must be between 0 and 16");
      } else {
        out.abort_status = 200;
        out.abort_grpc_status = a.grpc_status().value();
      }
    } else if (a.http_status() < 200 || a.http_status() > 599) {
      error(ap + ".httpStatus", "must be between 200 and 599");
    } else {
      out.abort_status = static_cast<uint16_t>(a.http_status());
    }
    out.abort_per_million =
        percentage(a.has_percentage(), a.percentage().value(), ap + ".percentage");
  }
  if (!f.has_delay() && !f.has_abort()) error(path, "delay or abort is required");
  return out;
}

void Builder::buildRoute(const v1::Route& r, const std::string& path, Route* out) {
  out->name = r.name();
  const v1::RouteMatch& m = r.match();
  std::string mp = path + ".match";
  out->ignore_case = m.ignore_case();
  switch (m.path_specifier_case()) {
    case v1::RouteMatch::kPrefix:
      out->path_kind = Route::PathKind::kPrefix;
      out->path = out->ignore_case ? lower(m.prefix()) : m.prefix();
      break;
    case v1::RouteMatch::kPath:
      out->path_kind = Route::PathKind::kExact;
      out->path = out->ignore_case ? lower(m.path()) : m.path();
      break;
    case v1::RouteMatch::kRegex: {
      out->path_kind = Route::PathKind::kRegex;
      RE2::Options opts;
      opts.set_log_errors(false);
      out->path_regex = std::make_unique<RE2>(m.regex(), opts);
      if (!out->path_regex->ok()) {
        error(mp + ".regex", "invalid regex '" + m.regex() + "': " + out->path_regex->error());
      }
      break;
    }
    default:
      out->path_kind = Route::PathKind::kAny;
  }
  for (int i = 0; i < m.headers_size(); ++i) {
    const v1::HeaderMatcher& h = m.headers(i);
    std::string hp = mp + ".headers[" + std::to_string(i) + "]";
    HeaderMatch hm;
    hm.name = lower(h.name());
    if (hm.name.empty()) {
      error(hp + ".name", "required");
      continue;
    }
    hm.invert = h.invert();
    if (h.match_case() == v1::HeaderMatcher::kStringMatch) {
      auto sm = stringMatch(h.string_match(), hp + ".stringMatch");
      if (!sm) continue;
      hm.value = std::move(*sm);
    } else {
      hm.presence_only = true;
      // present: false means "absent", like invert with present: true.
      if (h.match_case() == v1::HeaderMatcher::kPresent && !h.present()) hm.invert = !hm.invert;
    }
    out->headers.push_back(std::move(hm));
  }
  for (int i = 0; i < m.query_parameters_size(); ++i) {
    const v1::QueryParameterMatcher& q = m.query_parameters(i);
    std::string qp = mp + ".queryParameters[" + std::to_string(i) + "]";
    QueryMatch qm;
    qm.name = q.name();
    if (qm.name.empty()) {
      error(qp + ".name", "required");
      continue;
    }
    if (q.match_case() == v1::QueryParameterMatcher::kStringMatch) {
      auto sm = stringMatch(q.string_match(), qp + ".stringMatch");
      if (!sm) continue;
      qm.value = std::move(*sm);
    } else {
      qm.presence_only = true;
    }
    out->query.push_back(std::move(qm));
  }
  if (m.has_method()) out->method = stringMatch(m.method(), mp + ".method");

  out->request_ops = headerOps(r.request_headers(), path + ".requestHeaders");
  out->response_ops = headerOps(r.response_headers(), path + ".responseHeaders");
  if (r.has_cors()) {
    const v1::CorsPolicy& c = r.cors();
    std::string cp = path + ".cors";
    CorsPolicy cors;
    for (int i = 0; i < c.allow_origins_size(); ++i) {
      auto m = stringMatch(c.allow_origins(i), cp + ".allowOrigins[" + std::to_string(i) + "]");
      if (m) cors.allow_origins.push_back(std::move(*m));
    }
    if (c.allow_origins_size() == 0) error(cp + ".allowOrigins", "at least one origin is required");
    auto joined = [&](const google::protobuf::RepeatedPtrField<std::string>& items,
                      const std::string& field) {
      std::string out;
      for (int i = 0; i < items.size(); ++i) {
        if (!validHeaderValue(items[i]) || items[i].empty() ||
            items[i].find(',') != std::string::npos) {
          error(cp + "." + field + "[" + std::to_string(i) + "]",
                "invalid value '" + items[i] + "'");
        }
        if (!out.empty()) out += ",";
        out += items[i];
      }
      return out;
    };
    std::string methods = joined(c.allow_methods(), "allowMethods");
    std::string headers = joined(c.allow_headers(), "allowHeaders");
    std::string expose = joined(c.expose_headers(), "exposeHeaders");
    auto line = [](std::string& out, const char* name, const std::string& value) {
      if (!value.empty()) out.append(name).append(": ").append(value).append("\r\n");
    };
    line(cors.preflight_headers, "access-control-allow-methods", methods);
    line(cors.preflight_headers, "access-control-allow-headers", headers);
    if (c.has_max_age()) {
      Millis age = duration(c.max_age(), cp + ".maxAge");
      line(cors.preflight_headers, "access-control-max-age", std::to_string(age.count() / 1000));
    }
    line(cors.response_headers, "access-control-expose-headers", expose);
    if (c.allow_credentials()) {
      line(cors.preflight_headers, "access-control-allow-credentials", "true");
      line(cors.response_headers, "access-control-allow-credentials", "true");
    }
    if (r.action_case() != v1::Route::kRoute) {
      error(cp, "only allowed on a route to a cluster");
    } else {
      out->cors = std::move(cors);
    }
  }
  if (r.has_fault()) {
    if (r.action_case() != v1::Route::kRoute) {
      error(path + ".fault", "only allowed on a route to a cluster");
    } else {
      out->fault = faultPolicy(r.fault(), path + ".fault");
    }
  }

  switch (r.action_case()) {
    case v1::Route::kRoute: {
      const v1::RouteAction& a = r.route();
      std::string ap = path + ".route";
      out->action = Route::Action::kCluster;
      auto target = [&](const std::string& name, uint32_t weight, const std::string& p) {
        addTarget(name, weight, p, &out->targets, &out->total_weight);
      };
      if (a.cluster_specifier_case() == v1::RouteAction::kCluster) {
        target(a.cluster(), 1, ap + ".cluster");
      } else if (a.cluster_specifier_case() == v1::RouteAction::kWeightedClusters) {
        const auto& wc = a.weighted_clusters().clusters();
        if (wc.empty()) error(ap + ".weightedClusters.clusters", "at least one cluster required");
        for (int i = 0; i < wc.size(); ++i) {
          std::string wp = ap + ".weightedClusters.clusters[" + std::to_string(i) + "]";
          size_t before = out->targets.size();
          target(wc[i].name(), wc[i].weight(), wp + ".name");
          if (out->targets.size() > before) {
            out->targets.back().request_ops =
                headerOps(wc[i].request_headers(), wp + ".requestHeaders");
            out->targets.back().response_ops =
                headerOps(wc[i].response_headers(), wp + ".responseHeaders");
          }
        }
        if (!wc.empty() && out->total_weight == 0) {
          error(ap + ".weightedClusters", "weights must not all be 0");
        }
      } else {
        error(ap, "cluster or weightedClusters is required");
      }
      if (!a.prefix_rewrite().empty()) {
        // As in Envoy: the matched prefix, or the whole path of an exact match, is replaced.
        if (out->path_kind == Route::PathKind::kRegex) {
          error(ap + ".prefixRewrite", "not allowed with a regex match (use regexRewrite)");
        }
        out->prefix_rewrite = a.prefix_rewrite();
      }
      if (a.has_regex_rewrite()) {
        RE2::Options opts;
        opts.set_log_errors(false);
        out->regex_rewrite = std::make_unique<RE2>(a.regex_rewrite().pattern(), opts);
        out->regex_substitution = a.regex_rewrite().substitution();
        std::string why;
        if (!out->regex_rewrite->ok()) {
          error(ap + ".regexRewrite.pattern", "invalid regex: " + out->regex_rewrite->error());
        } else if (!out->regex_rewrite->CheckRewriteString(out->regex_substitution, &why)) {
          error(ap + ".regexRewrite.substitution", why);
        }
      }
      if (!a.host_rewrite().empty()) {
        if (!validHeaderValue(a.host_rewrite())) {
          error(ap + ".hostRewrite", "must not contain control characters");
        }
        out->host_rewrite = a.host_rewrite();
      }
      if (a.has_timeout()) out->timeout = duration(a.timeout(), ap + ".timeout");
      if (a.has_retry_policy()) {
        const v1::RetryPolicy& rp = a.retry_policy();
        std::string rpp = ap + ".retryPolicy";
        RetryPolicy policy;
        policy.num_retries = rp.num_retries();
        std::vector<std::string> unknown;
        parseRetryOn(rp.retry_on(), &policy, &unknown);
        for (const auto& u : unknown)
          error(rpp + ".retryOn", "unknown retry condition '" + u + "'");
        for (uint32_t code : rp.retriable_status_codes()) {
          if (code < 100 || code > 599) {
            error(rpp + ".retriableStatusCodes", "invalid status " + std::to_string(code));
          } else {
            policy.status_codes.push_back(static_cast<uint16_t>(code));
          }
        }
        if (rp.has_per_try_timeout()) {
          policy.per_try_timeout = duration(rp.per_try_timeout(), rpp + ".perTryTimeout");
        }
        if (rp.has_backoff_base_interval()) {
          policy.base_interval = duration(rp.backoff_base_interval(), rpp + ".backoffBaseInterval");
          if (policy.base_interval.count() < 1)
            error(rpp + ".backoffBaseInterval", "must be >= 1ms");
          policy.max_interval = policy.base_interval * 10;
        }
        if (rp.has_backoff_max_interval()) {
          policy.max_interval = duration(rp.backoff_max_interval(), rpp + ".backoffMaxInterval");
          if (policy.max_interval < policy.base_interval) {
            error(rpp + ".backoffMaxInterval", "must be >= backoffBaseInterval");
          }
        }
        if (rp.max_replay_body_bytes() != 0)
          policy.max_replay_body_bytes = rp.max_replay_body_bytes();
        if (policy.num_retries > 0) out->retry = std::move(policy);
      }
      for (int i = 0; i < a.request_mirror_policies_size(); ++i) {
        const v1::RequestMirror& m = a.request_mirror_policies(i);
        std::string mp = ap + ".requestMirrorPolicies[" + std::to_string(i) + "]";
        auto it = snap_->cluster_index.find(m.cluster());
        if (m.cluster().empty()) {
          error(mp + ".cluster", "required");
        } else if (it == snap_->cluster_index.end()) {
          error(mp + ".cluster", "unknown cluster '" + m.cluster() + "'");
        } else if (snap_->clusters[it->second]->original_dst) {
          error(mp + ".cluster",
                "an ORIGINAL_DST cluster cannot be a mirror (a copy has no "
                "original destination of its own)");
        }
        double pct = m.has_percentage() ? m.percentage().value() : 100.0;
        if (!(pct >= 0.0 && pct <= 100.0)) error(mp + ".percentage", "must be between 0 and 100");
        if (it != snap_->cluster_index.end()) {
          out->mirrors.push_back(
              {it->second, perMillion(m.has_percentage(), std::clamp(pct, 0.0, 100.0))});
        }
      }
      for (int i = 0; i < a.hash_policy_size(); ++i) {
        const v1::HashPolicy& hp = a.hash_policy(i);
        std::string hpp = ap + ".hashPolicy[" + std::to_string(i) + "]";
        HashPolicy p;
        switch (hp.policy_case()) {
          case v1::HashPolicy::kHeader:
            p.kind = HashPolicy::Kind::kHeader;
            p.name = lower(hp.header().name());
            if (p.name.empty()) error(hpp + ".header.name", "required");
            break;
          case v1::HashPolicy::kCookie:
            p.kind = HashPolicy::Kind::kCookie;
            p.name = hp.cookie().name();
            if (p.name.empty()) error(hpp + ".cookie.name", "required");
            if (hp.cookie().has_ttl()) {
              p.cookie_ttl = duration(hp.cookie().ttl(), hpp + ".cookie.ttl");
              p.generate_cookie = true;
            }
            p.cookie_path = hp.cookie().path();
            break;
          case v1::HashPolicy::kSourceIp:
            p.kind = HashPolicy::Kind::kSourceIp;
            break;
          default:
            error(hpp, "one of header, cookie or sourceIp is required");
            continue;
        }
        out->hash_policies.push_back(std::move(p));
      }
      break;
    }
    case v1::Route::kRedirect: {
      const v1::RedirectAction& rd = r.redirect();
      std::string rp = path + ".redirect";
      out->action = Route::Action::kRedirect;
      out->redirect_scheme = rd.scheme();
      out->redirect_host = rd.host();
      out->redirect_port = rd.port();
      out->redirect_path = rd.path();
      out->redirect_prefix = rd.prefix_rewrite();
      out->strip_query = rd.strip_query();
      if (!rd.path().empty() && !rd.prefix_rewrite().empty()) {
        error(rp + ".path", "path and prefixRewrite are exclusive");
      }
      uint32_t code = rd.response_code() == 0 ? 301 : rd.response_code();
      if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
        error(rp + ".responseCode", "must be 301, 302, 303, 307 or 308");
      }
      out->redirect_code = static_cast<uint16_t>(code);
      if (rd.port() > 65535) error(rp + ".port", "must be <= 65535");
      for (const std::string* s : {&rd.scheme(), &rd.host(), &rd.path(), &rd.prefix_rewrite()}) {
        if (!validHeaderValue(*s)) error(rp, "redirect fields must not contain control characters");
      }
      break;
    }
    case v1::Route::kDirectResponse: {
      const v1::DirectResponseAction& dr = r.direct_response();
      out->action = Route::Action::kDirectResponse;
      if (dr.status() < 200 || dr.status() > 599) {
        error(path + ".directResponse.status", "must be 200..599");
      }
      out->direct_status = static_cast<uint16_t>(dr.status());
      out->direct_body = dr.body();
      break;
    }
    default:
      error(path, "a route needs one of route, redirect or directResponse");
  }
}

std::unique_ptr<RouteTable> Builder::buildRouteTable(const v1::RouteConfiguration& rc,
                                                     const std::string& path) {
  auto table = std::make_unique<RouteTable>(rc.name());
  for (int j = 0; j < rc.virtual_hosts_size(); ++j) {
    const v1::VirtualHost& v = rc.virtual_hosts(j);
    std::string vp = path + ".virtualHosts[" + std::to_string(j) + "]";
    VirtualHost vh;
    vh.name = v.name();
    if (v.domains_size() == 0) error(vp + ".domains", "at least one domain is required");
    for (const auto& d : v.domains()) {
      if (d.empty() || (d.find('*') != std::string::npos && d != "*" && !d.starts_with("*") &&
                        !d.ends_with("*"))) {
        error(vp + ".domains", "invalid domain '" + d + "'");
      }
      vh.domains.push_back(d);
    }
    for (int k = 0; k < v.routes_size(); ++k) {
      Route r;
      buildRoute(v.routes(k), vp + ".routes[" + std::to_string(k) + "]", &r);
      vh.routes.push_back(std::move(r));
    }
    if (auto dup = table->addVirtualHost(std::move(vh))) {
      error(vp + ".domains", "domain '" + *dup + "' is already used by another virtual host");
    }
  }
  return table;
}

void Builder::buildRouteTables() {
  const auto& rcs = in_.config->route_configs();
  for (int i = 0; i < rcs.size(); ++i) {
    std::string path = "routeConfigs[" + std::to_string(i) + "]";
    if (rcs[i].name().empty()) {
      error(path + ".name", "required");
      continue;
    }
    if (tables_by_name_.count(rcs[i].name())) {
      error(path + ".name", "duplicate route configuration '" + rcs[i].name() + "'");
      continue;
    }
    auto table = buildRouteTable(rcs[i], path);
    tables_by_name_[rcs[i].name()] = table.get();
    snap_->route_tables.push_back(std::move(table));
  }
}

void Builder::httpListener(const v1::HttpConnectionManager& h, const std::string& hp_path,
                           ListenerInfo& info) {
  if (h.has_route_config()) {
    if (!h.route_config_name().empty()) {
      error(hp_path + ".routeConfigName", "set either routeConfigName or routeConfig, not both");
    }
    auto table = buildRouteTable(h.route_config(), hp_path + ".routeConfig");
    info.routes = table.get();
    snap_->route_tables.push_back(std::move(table));
  } else {
    auto it = tables_by_name_.find(h.route_config_name());
    if (h.route_config_name().empty()) {
      error(hp_path + ".routeConfigName", "routeConfigName or routeConfig is required");
    } else if (it == tables_by_name_.end()) {
      error(hp_path + ".routeConfigName",
            "unknown route configuration '" + h.route_config_name() + "'");
    } else {
      info.routes = it->second;
    }
  }
  const v1::HttpLimits& lim = h.limits();
  if (lim.max_request_headers_kb() != 0) {
    if (lim.max_request_headers_kb() > 8192) {
      error(hp_path + ".limits.maxRequestHeadersKb", "must be <= 8192");
    }
    info.limits.max_head_bytes = size_t{lim.max_request_headers_kb()} * 1024;
  }
  if (lim.max_headers_count() != 0) info.limits.max_headers = lim.max_headers_count();
  if (lim.max_uri_kb() != 0) {
    info.limits.max_uri_bytes = size_t{lim.max_uri_kb()} * 1024;
    if (info.limits.max_uri_bytes > info.limits.max_head_bytes) {
      error(hp_path + ".limits.maxUriKb", "must not exceed maxRequestHeadersKb");
    }
  }
  // HTTP/2: the header list limit is the listener's header limit.
  Http2Limits& h2 = info.http2;
  h2.max_header_list_bytes = static_cast<uint32_t>(info.limits.max_head_bytes);
  h2.max_continuations =
      std::max<uint32_t>(h2.max_continuations, h2.max_header_list_bytes / 16384 + 2);
  const v1::Http2Options& o = h.http2();
  const std::string op = hp_path + ".http2";
  auto bounded = [&](bool has, uint32_t v, uint32_t lo, uint32_t hi, const char* field,
                     uint32_t* out) {
    if (!has) return;
    if (v < lo || v > hi) {
      error(op + "." + field, "must be " + std::to_string(lo) + ".." + std::to_string(hi));
      return;
    }
    *out = v;
  };
  constexpr uint32_t kMaxWindow = 0x7fffffff;
  bounded(o.has_max_concurrent_streams(), o.max_concurrent_streams().value(), 1, kMaxWindow,
          "maxConcurrentStreams", &h2.max_concurrent_streams);
  bounded(o.has_initial_stream_window_size(), o.initial_stream_window_size().value(), 65535,
          kMaxWindow, "initialStreamWindowSize", &h2.initial_stream_window);
  bounded(o.has_initial_connection_window_size(), o.initial_connection_window_size().value(), 65535,
          kMaxWindow, "initialConnectionWindowSize", &h2.initial_connection_window);
  bounded(o.has_max_outbound_control_frames(), o.max_outbound_control_frames().value(), 1,
          kMaxWindow, "maxOutboundControlFrames", &h2.max_outbound_control_frames);
  bounded(o.has_max_consecutive_inbound_frames_with_empty_payload(),
          o.max_consecutive_inbound_frames_with_empty_payload().value(), 1, kMaxWindow,
          "maxConsecutiveInboundFramesWithEmptyPayload", &h2.max_consecutive_empty_frames);
  bounded(o.has_max_premature_resets(), o.max_premature_resets().value(), 1, kMaxWindow,
          "maxPrematureResets", &h2.max_premature_resets);
  h2.max_refused_streams = h2.max_premature_resets;
  if (h.has_idle_timeout())
    info.idle_timeout = duration(h.idle_timeout(), hp_path + ".idleTimeout");
  if (h.has_generate_request_id()) info.generate_request_id = h.generate_request_id().value();
  info.access_log = h.access_log().enabled();
  info.access_log_path = h.access_log().path();
  if (h.tracing().has_random_sampling()) {
    double s = h.tracing().random_sampling().value();
    if (s < 0 || s > 100) error(hp_path + ".tracing.randomSampling", "must be 0..100");
    info.trace_sampling = s;
  }
}

TcpProxyInfo Builder::tcpProxy(const v1::TcpProxy& t, const std::string& path) {
  TcpProxyInfo out;
  auto add = [&](const std::string& name, uint32_t weight, const std::string& p) {
    addTarget(name, weight, p, &out.targets, &out.total_weight);
  };
  if (!t.cluster().empty() && t.has_weighted_clusters()) {
    error(path, "set either cluster or weightedClusters, not both");
  } else if (!t.cluster().empty()) {
    add(t.cluster(), 1, path + ".cluster");
  } else if (t.has_weighted_clusters()) {
    const auto& wc = t.weighted_clusters().clusters();
    for (int i = 0; i < wc.size(); ++i) {
      add(wc[i].name(), wc[i].weight(),
          path + ".weightedClusters.clusters[" + std::to_string(i) + "].name");
    }
    if (!wc.empty() && out.total_weight == 0) {
      error(path + ".weightedClusters", "weights must not all be 0");
    }
  } else if (t.sni_routes_size() == 0) {
    error(path, "cluster, weightedClusters or sniRoutes is required");
  }
  for (int i = 0; i < t.sni_routes_size(); ++i) {
    const v1::SniRoute& sr = t.sni_routes(i);
    std::string sp = path + ".sniRoutes[" + std::to_string(i) + "]";
    SniRoute route;
    auto it = snap_->cluster_index.find(sr.cluster());
    if (sr.cluster().empty()) {
      error(sp + ".cluster", "required");
    } else if (it == snap_->cluster_index.end()) {
      error(sp + ".cluster", "unknown cluster '" + sr.cluster() + "'");
    } else {
      route.cluster = it->second;
    }
    if (sr.server_names_size() == 0) error(sp + ".serverNames", "at least one name is required");
    for (int k = 0; k < sr.server_names_size(); ++k) {
      std::string name = lower(sr.server_names(k));
      if (name.starts_with("*.") && name.size() > 2) {
        route.suffixes.push_back(name.substr(1));
      } else if (name.empty() || name.find('*') != std::string::npos) {
        error(sp + ".serverNames[" + std::to_string(k) + "]",
              "must be a host name or '*.' followed by one, got '" + sr.server_names(k) + "'");
      } else {
        route.exact.push_back(std::move(name));
      }
    }
    out.sni_routes.push_back(std::move(route));
  }
  if (t.has_idle_timeout()) out.idle_timeout = duration(t.idle_timeout(), path + ".idleTimeout");
  return out;
}

void Builder::buildListeners() {
  const auto& ls = in_.config->listeners();
  std::set<std::string> names, addresses;
  for (int i = 0; i < ls.size(); ++i) {
    const v1::Listener& l = ls[i];
    std::string path = "listeners[" + std::to_string(i) + "]";
    ListenerInfo info;
    info.name = l.name();
    if (l.name().empty()) {
      error(path + ".name", "required");
      continue;
    }
    if (!names.insert(l.name()).second) {
      error(path + ".name", "duplicate listener name '" + l.name() + "'");
      continue;
    }
    auto hp = net::parseHostPort(l.address());
    if (!hp.ok()) {
      error(path + ".address", hp.status().message());
    } else if (!net::isIpLiteral(hp->host)) {
      error(path + ".address", "must be an IP address, got '" + hp->host + "'");
    } else if (hp->port != 0 && !addresses.insert(l.address()).second) {
      error(path + ".address", "address '" + l.address() + "' is used by another listener");
    }
    info.address = l.address();
    if (hp.ok()) {
      info.host = hp->host;
      info.port = hp->port;
    }
    info.use_original_dst = l.use_original_dst();
    info.bind_to_port = !l.has_bind_to_port() || l.bind_to_port().value();
    if (info.use_original_dst && !info.bind_to_port) {
      error(path + ".bindToPort", "a useOriginalDst listener must bind its port");
    }
    info.direction = l.direction() == v1::INBOUND ? Direction::kInbound : Direction::kOutbound;
    if (l.server_first_ports_size() > 0 && !(l.has_tcp_proxy() && l.has_http())) {
      error(path + ".serverFirstPorts", "needs protocol detection (both http and tcpProxy)");
    }
    if (l.has_tcp_proxy()) {
      info.tcp = tcpProxy(l.tcp_proxy(), path + ".tcpProxy");
      if (l.has_http()) httpListener(l.http(), path + ".http", info);  // protocol detection
      if (l.has_protocol_detection_timeout()) {
        info.detection_timeout =
            duration(l.protocol_detection_timeout(), path + ".protocolDetectionTimeout");
      }
      for (int k = 0; k < l.server_first_ports_size(); ++k) {
        uint32_t port = l.server_first_ports(k);
        if (port == 0 || port > 65535) {
          error(path + ".serverFirstPorts[" + std::to_string(k) + "]",
                "must be a port number (1-65535), got " + std::to_string(port));
          continue;
        }
        info.server_first_ports.push_back(static_cast<uint16_t>(port));
      }
    } else if (!l.has_http()) {
      error(path + ".http", "http or tcpProxy is required");
      continue;
    } else {
      httpListener(l.http(), path + ".http", info);
    }
    if (l.has_tls()) {
      v1::DownstreamTls tls = l.tls();
      // HTTP listeners speak HTTP/2 and HTTP/1.1: offered by ALPN unless the config says.
      if (l.has_http() && tls.alpn_size() == 0) {
        tls.add_alpn("h2");
        tls.add_alpn("http/1.1");
      }
      info.tls = downstreamTls(tls, path + ".tls");
      info.tls_permissive = l.tls().permissive();
      for (int k = 0; l.has_http() && k < l.tls().alpn_size(); ++k) {
        if (l.tls().alpn(k) != "h2" && l.tls().alpn(k) != "http/1.1" &&
            l.tls().alpn(k) != "http/1.0") {
          error(path + ".tls.alpn[" + std::to_string(k) + "]",
                "'" + l.tls().alpn(k) +
                    "' is not served by an http listener (h2, http/1.1, http/1.0)");
        }
      }
    }
    info.slot = ctx_.listenerSlot(info.name);
    std::string_view label[] = {info.name};
    info.stats.cx_total = ctx_.store().series(ctx_.cx_total, label);
    info.stats.cx_active = ctx_.store().series(ctx_.cx_active, label);
    info.stats.rq_total = ctx_.store().series(ctx_.rq_total, label);
    info.stats.protocol_error = ctx_.store().series(ctx_.protocol_error, label);
    if (info.tls) {
      info.stats.ssl_handshake = ctx_.store().series(ctx_.listener_ssl_handshake, label);
      info.stats.ssl_connection_error =
          ctx_.store().series(ctx_.listener_ssl_connection_error, label);
    }
    const char* classes[] = {"2", "3", "4", "5"};
    stats::SeriesId* xx[] = {&info.stats.rq_2xx, &info.stats.rq_3xx, &info.stats.rq_4xx,
                             &info.stats.rq_5xx};
    for (int k = 0; k < 4; ++k) {
      std::string_view labels2[] = {info.name, classes[k]};
      *xx[k] = ctx_.store().series(ctx_.rq_xx, labels2);
    }
    snap_->listeners.push_back(std::move(info));
  }
  for (size_t i = 0; i < snap_->listeners.size(); ++i) {
    uint32_t slot = snap_->listeners[i].slot;
    if (snap_->listener_by_slot.size() <= slot)
      snap_->listener_by_slot.resize(slot + 1, UINT32_MAX);
    snap_->listener_by_slot[slot] = static_cast<uint32_t>(i);
  }
}

StatusOr<std::shared_ptr<const Snapshot>> Builder::build() {
  snap_->version = in_.version;
  snap_->source = in_.file;
  snap_->loaded_at = std::chrono::system_clock::now();
  snap_->config = in_.config;
  buildNode();
  buildClusters();
  buildRouteTables();
  buildListeners();
  if (!errors_.empty()) return errors_.toStatus();
  return std::shared_ptr<const Snapshot>(std::move(snap_));
}

}  // namespace

SnapshotContext::SnapshotContext(stats::Store& store, IstioTelemetry& telemetry, Resolver resolver)
    : store_(store), telemetry_(telemetry), resolver_(std::move(resolver)) {
  using stats::MetricType;
  const std::vector<std::string> listener = {"listener"};
  const std::vector<std::string> cluster = {"cluster_name"};
  const std::vector<std::string> host = {"cluster_name", "host"};
  cx_total = stats::registerFamily(store, "envoy_http_downstream_cx_total", MetricType::kCounter,
                                   "Downstream connections accepted.", listener);
  cx_active = stats::registerFamily(store, "envoy_http_downstream_cx_active", MetricType::kGauge,
                                    "Downstream connections open.", listener);
  rq_total = stats::registerFamily(store, "envoy_http_downstream_rq_total", MetricType::kCounter,
                                   "Downstream requests.", listener);
  rq_xx =
      stats::registerFamily(store, "envoy_http_downstream_rq_xx", MetricType::kCounter,
                            "Downstream responses by class.", {"listener", "response_code_class"});
  protocol_error =
      stats::registerFamily(store, "envoy_http_downstream_cx_protocol_error", MetricType::kCounter,
                            "Downstream connections closed for a protocol error.", listener);
  upstream_rq_total =
      stats::registerFamily(store, "envoy_cluster_upstream_rq_total", MetricType::kCounter,
                            "Upstream requests (attempts).", cluster);
  upstream_rq_retry = stats::registerFamily(store, "envoy_cluster_upstream_rq_retry",
                                            MetricType::kCounter, "Upstream retries.", cluster);
  upstream_rq_timeout =
      stats::registerFamily(store, "envoy_cluster_upstream_rq_timeout", MetricType::kCounter,
                            "Upstream request timeouts.", cluster);
  upstream_cx_total =
      stats::registerFamily(store, "envoy_cluster_upstream_cx_total", MetricType::kCounter,
                            "Upstream connections opened.", cluster);
  upstream_cx_connect_fail =
      stats::registerFamily(store, "envoy_cluster_upstream_cx_connect_fail", MetricType::kCounter,
                            "Upstream connection failures.", cluster);
  upstream_cx_connect_timeout = stats::registerFamily(
      store, "envoy_cluster_upstream_cx_connect_timeout", MetricType::kCounter,
      "Upstream connection attempts that reached the cluster's connect timeout.", cluster);
  upstream_no_host =
      stats::registerFamily(store, "envoy_cluster_upstream_cx_none_healthy", MetricType::kCounter,
                            "Requests that found no upstream host.", cluster);
  upstream_rq_pending_overflow = stats::registerFamily(
      store, "envoy_cluster_upstream_rq_pending_overflow", MetricType::kCounter,
      "Requests refused by the cluster's circuit breakers (flag UO).", cluster);
  upstream_rq_retry_overflow =
      stats::registerFamily(store, "envoy_cluster_upstream_rq_retry_overflow", MetricType::kCounter,
                            "Retries refused by maxRetries.", cluster);
  upstream_outlier_ejections =
      stats::registerFamily(store, "envoy_cluster_outlier_detection_ejections_enforced_total",
                            MetricType::kCounter, "Hosts ejected by outlier detection.", cluster);
  upstream_rq_pending_active =
      stats::registerFamily(store, "envoy_cluster_upstream_rq_pending_active", MetricType::kGauge,
                            "Requests waiting for a connection (maxConnections reached).", cluster);
  listener_ssl_handshake =
      stats::registerFamily(store, "envoy_listener_ssl_handshake", MetricType::kCounter,
                            "Downstream TLS handshakes completed.", listener);
  listener_ssl_connection_error = stats::registerFamily(
      store, "envoy_listener_ssl_connection_error", MetricType::kCounter,
      "Downstream TLS handshakes failed (refused peer, not TLS, malformed).", listener);
  upstream_ssl_handshake =
      stats::registerFamily(store, "envoy_cluster_ssl_handshake", MetricType::kCounter,
                            "Upstream TLS handshakes completed.", cluster);
  upstream_ssl_connection_error = stats::registerFamily(
      store, "envoy_cluster_ssl_connection_error", MetricType::kCounter,
      "Upstream TLS handshakes failed (untrusted chain, unexpected SAN).", cluster);
  host_rq_total = stats::registerFamily(store, "mesh_host_rq_total", MetricType::kCounter,
                                        "Requests per upstream host.", host);
  host_rq_error =
      stats::registerFamily(store, "mesh_host_rq_error", MetricType::kCounter,
                            "Failed requests (5xx or no response) per upstream host.", host);
  host_cx_total = stats::registerFamily(store, "mesh_host_cx_total", MetricType::kCounter,
                                        "Connections per upstream host.", host);
  host_cx_connect_fail =
      stats::registerFamily(store, "mesh_host_cx_connect_fail", MetricType::kCounter,
                            "Connection failures per upstream host.", host);
}

uint32_t SnapshotContext::listenerSlot(const std::string& name) {
  auto [it, inserted] = slots_.emplace(name, static_cast<uint32_t>(slots_.size()));
  return it->second;
}

std::shared_ptr<HostHealth> SnapshotContext::hostHealth(const std::string& cluster,
                                                        const std::string& host_key) {
  auto& h = health_[cluster + "|" + host_key];
  if (!h) h = std::make_shared<HostHealth>();
  return h;
}

void SnapshotContext::attachHealth(ClusterInfo& c) {
  for (Host& h : c.hosts) h.health = c.outlier.enabled ? hostHealth(c.name, h.key) : nullptr;
}

std::shared_ptr<CircuitBreakerState> SnapshotContext::breakerState(const std::string& cluster) {
  auto& s = breakers_[cluster];
  if (!s) s = std::make_shared<CircuitBreakerState>();
  return s;
}

StatusOr<std::shared_ptr<const Snapshot>> buildSnapshot(const BuildInput& in,
                                                        SnapshotContext& ctx) {
  Builder b(in, ctx);
  return b.build();
}

bool fillHostAddress(Host& h) {
  std::memset(&h.sockaddr, 0, sizeof(h.sockaddr));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&h.sockaddr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&h.sockaddr);
  if (inet_pton(AF_INET, h.address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(h.port);
    h.sockaddr_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, h.address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(h.port);
    h.sockaddr_len = sizeof(sockaddr_in6);
  } else {
    return false;
  }
  h.key = net::formatHostPort(h.address, h.port);
  return true;
}

std::vector<Host> dnsHosts(const ClusterInfo& c,
                           const std::vector<std::vector<std::string>>& addresses,
                           SnapshotContext& ctx) {
  std::vector<Host> hosts;
  std::set<std::string> seen;
  for (size_t i = 0; i < c.dns_targets.size() && i < addresses.size(); ++i) {
    for (const std::string& a : addresses[i]) {
      Host h;
      h.address = a;
      h.port = c.dns_targets[i].port;
      h.weight = c.dns_targets[i].weight;
      h.workload_id = c.dns_targets[i].workload_id;
      h.hostname = c.dns_targets[i].hostname;
      if (!fillHostAddress(h) || !seen.insert(h.key).second) continue;
      std::string_view labels_two[] = {c.name, h.key};
      h.stats.rq_total = ctx.store().series(ctx.host_rq_total, labels_two);
      h.stats.rq_error = ctx.store().series(ctx.host_rq_error, labels_two);
      h.stats.cx_total = ctx.store().series(ctx.host_cx_total, labels_two);
      h.stats.cx_connect_fail = ctx.store().series(ctx.host_cx_connect_fail, labels_two);
      if (c.outlier.enabled) h.health = ctx.hostHealth(c.name, h.key);
      hosts.push_back(std::move(h));
    }
  }
  return hosts;
}

std::shared_ptr<const ClusterInfo> withHosts(const ClusterInfo& c, std::vector<Host> hosts) {
  auto copy = std::make_shared<ClusterInfo>(c);
  copy->hosts = std::move(hosts);
  for (Host& h : copy->hosts) {
    // Hosts that stay keep their health; new ones start healthy (attached by dnsHosts).
    for (const Host& old : c.hosts) {
      if (old.key == h.key && old.health) h.health = old.health;
    }
  }
  buildLoadBalancerTables(*copy);
  return copy;
}

StatusOr<std::vector<std::string>> systemResolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) return unavailable("cannot resolve '" + host + "': " + gai_strerror(rc));
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    char buf[INET6_ADDRSTRLEN];
    const void* src =
        p->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr);
    if (inet_ntop(p->ai_family, src, buf, sizeof(buf)) && seen.insert(buf).second) {
      out.emplace_back(buf);
    }
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace mesh::proxy
