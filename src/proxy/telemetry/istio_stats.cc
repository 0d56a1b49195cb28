#include "proxy/telemetry/istio_stats.h"

#include <array>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/stats/buckets.h"
#include "proxy/telemetry/response_flags.h"

namespace mesh::proxy {
namespace {

const std::vector<std::string>& labelNames() {
  static const std::vector<std::string> kNames = {
      "reporter",
      "source_workload",
      "source_workload_namespace",
      "source_principal",
      "source_app",
      "source_version",
      "source_canonical_service",
      "source_canonical_revision",
      "source_cluster",
      "destination_workload",
      "destination_workload_namespace",
      "destination_principal",
      "destination_app",
      "destination_version",
      "destination_service",
      "destination_service_name",
      "destination_service_namespace",
      "destination_canonical_service",
      "destination_canonical_revision",
      "destination_cluster",
      "request_protocol",
      "response_code",
      "grpc_response_status",
      "response_flags",
      "connection_security_policy",
  };
  return kNames;
}

std::string orUnknown(const std::string& s) { return s.empty() ? "unknown" : s; }

}  // namespace

bool WorkloadLabels::operator<(const WorkloadLabels& o) const {
  return std::tie(name, namespace_, app, version, principal, canonical_service, canonical_revision,
                  cluster) < std::tie(o.name, o.namespace_, o.app, o.version, o.principal,
                                      o.canonical_service, o.canonical_revision, o.cluster);
}

bool ServiceLabels::operator<(const ServiceLabels& o) const {
  return std::tie(host, name, namespace_) < std::tie(o.host, o.name, o.namespace_);
}

IstioTelemetry::IstioTelemetry(stats::Store& store) : store_(store) {
  const auto& names = labelNames();
  std::vector<double> buckets(stats::kIstioDurationBucketsMs.begin(),
                              stats::kIstioDurationBucketsMs.end());
  requests_ = stats::registerFamily(store_, "istio_requests_total", stats::MetricType::kCounter,
                                    "Requests handled, by Istio's standard labels.", names);
  duration_ = stats::registerFamily(store_, "istio_request_duration_milliseconds",
                                    stats::MetricType::kHistogram,
                                    "Request duration in milliseconds.", names, buckets);
  std::vector<double> byte_buckets(stats::kIstioBytesBuckets.begin(),
                                   stats::kIstioBytesBuckets.end());
  request_bytes_ =
      stats::registerFamily(store_, "istio_request_bytes", stats::MetricType::kHistogram,
                            "Request body sizes in bytes.", names, byte_buckets);
  response_bytes_ =
      stats::registerFamily(store_, "istio_response_bytes", stats::MetricType::kHistogram,
                            "Response body sizes in bytes.", names, byte_buckets);
  // TCP metrics carry the same labels but response_code and grpc_response_status.
  std::vector<std::string> tcp_names;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i != kResponseCodeLabel && i != kGrpcStatusLabel) tcp_names.push_back(names[i]);
  }
  tcp_opened_ =
      stats::registerFamily(store_, "istio_tcp_connections_opened_total",
                            stats::MetricType::kCounter, "TCP connections opened.", tcp_names);
  tcp_closed_ =
      stats::registerFamily(store_, "istio_tcp_connections_closed_total",
                            stats::MetricType::kCounter, "TCP connections closed.", tcp_names);
  tcp_sent_ =
      stats::registerFamily(store_, "istio_tcp_sent_bytes_total", stats::MetricType::kCounter,
                            "Bytes sent to the client on TCP connections.", tcp_names);
  tcp_received_ =
      stats::registerFamily(store_, "istio_tcp_received_bytes_total", stats::MetricType::kCounter,
                            "Bytes received from the client on TCP connections.", tcp_names);
}

uint32_t IstioTelemetry::internWorkload(const WorkloadLabels& w) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = workload_ids_.emplace(w, static_cast<uint32_t>(workloads_.size() + 1));
  if (inserted) workloads_.push_back(w);
  return it->second;
}

uint32_t IstioTelemetry::internService(const ServiceLabels& s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = service_ids_.emplace(s, static_cast<uint32_t>(services_.size() + 1));
  if (inserted) services_.push_back(s);
  return it->second;
}

std::array<std::string, 25> IstioTelemetry::labelValues(const RequestKey& key) {
  std::array<std::string, 25> v;
  {
    std::lock_guard<std::mutex> lock(mu_);
    static const WorkloadLabels kUnknownWorkload;
    static const ServiceLabels kUnknownService;
    const WorkloadLabels& src =
        key.source_workload ? workloads_[key.source_workload - 1] : kUnknownWorkload;
    const WorkloadLabels& dst =
        key.destination_workload ? workloads_[key.destination_workload - 1] : kUnknownWorkload;
    const ServiceLabels& svc = key.service ? services_[key.service - 1] : kUnknownService;
    // Principals: a destination reporter's mTLS connection, or a source reporter's mTLS
    // upstream (connection_security_policy stays "unknown" there, as in Istio).
    const bool mtls = key.security == 2 || key.destination_principal != 0;
    v[0] = key.reporter == Reporter::kSource ? "source" : "destination";
    v[1] = orUnknown(src.name);
    v[2] = orUnknown(src.namespace_);
    const std::string& src_principal =
        key.source_principal ? workloads_[key.source_principal - 1].principal : src.principal;
    const std::string& dst_principal = key.destination_principal
                                           ? workloads_[key.destination_principal - 1].principal
                                           : dst.principal;
    v[3] = mtls ? orUnknown(src_principal) : "unknown";
    v[4] = orUnknown(src.app);
    v[5] = orUnknown(src.version);
    v[6] = orUnknown(src.canonical_service);
    v[7] = orUnknown(src.canonical_revision);
    v[8] = orUnknown(src.cluster);
    v[9] = orUnknown(dst.name);
    v[10] = orUnknown(dst.namespace_);
    v[11] = mtls ? orUnknown(dst_principal) : "unknown";
    v[12] = orUnknown(dst.app);
    v[13] = orUnknown(dst.version);
    v[14] = orUnknown(svc.host);
    v[15] = orUnknown(svc.name);
    v[16] = orUnknown(svc.namespace_);
    v[17] = orUnknown(dst.canonical_service);
    v[18] = orUnknown(dst.canonical_revision);
    v[19] = orUnknown(dst.cluster);
  }
  v[20] = key.protocol == 2 ? "tcp" : key.protocol == 1 ? "grpc" : "http";
  v[21] = std::to_string(key.response_code);
  v[22] = key.grpc_status >= 0 ? std::to_string(key.grpc_status) : "-";
  v[23] = formatResponseFlags(key.flags);
  v[24] = key.security == 2 ? "mutual_tls" : key.security == 1 ? "none" : "unknown";
  return v;
}

TcpSeries IstioTelemetry::resolveTcp(const RequestKey& key) {
  std::array<std::string, 25> v = labelValues(key);
  std::array<std::string_view, 23> views;
  size_t n = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != kResponseCodeLabel && i != kGrpcStatusLabel) views[n++] = v[i];
  }
  TcpSeries s;
  s.opened = store_.series(tcp_opened_, views);
  s.closed = store_.series(tcp_closed_, views);
  s.sent = store_.series(tcp_sent_, views);
  s.received = store_.series(tcp_received_, views);
  return s;
}

RequestSeries IstioTelemetry::resolve(const RequestKey& key) {
  std::array<std::string, 25> v = labelValues(key);
  std::array<std::string_view, 25> views;
  for (size_t i = 0; i < v.size(); ++i) views[i] = v[i];
  RequestSeries s;
  s.requests = store_.series(requests_, views);
  s.duration = store_.series(duration_, views);
  s.request_bytes = store_.series(request_bytes_, views);
  s.response_bytes = store_.series(response_bytes_, views);
  return s;
}

WorkloadLabels workloadFromLabels(const std::string& name, const std::string& ns,
                                  const std::map<std::string, std::string>& labels,
                                  const std::string& service_account,
                                  const std::string& trust_domain, const std::string& cluster) {
  auto get = [&](std::string_view k) -> std::string {
    auto it = labels.find(std::string(k));
    return it == labels.end() ? std::string() : it->second;
  };
  WorkloadLabels w;
  w.name = name;
  w.namespace_ = ns;
  w.app = get("app");
  if (w.app.empty()) w.app = get("app.kubernetes.io/name");
  w.version = get("version");
  if (w.version.empty()) w.version = get("app.kubernetes.io/version");
  w.canonical_service = get("service.istio.io/canonical-name");
  if (w.canonical_service.empty()) w.canonical_service = w.app.empty() ? name : w.app;
  w.canonical_revision = get("service.istio.io/canonical-revision");
  if (w.canonical_revision.empty()) w.canonical_revision = w.version.empty() ? "latest" : w.version;
  if (!service_account.empty() && !ns.empty()) {
    w.principal = "spiffe://" +
                  (trust_domain.empty() ? std::string("cluster.local") : trust_domain) + "/ns/" +
                  ns + "/sa/" + service_account;
  }
  w.cluster = cluster.empty() ? "Kubernetes" : cluster;
  if (name.empty() && ns.empty() && labels.empty()) return WorkloadLabels{};
  return w;
}

WorkloadLabels workloadFromPrincipal(const std::string& principal) {
  WorkloadLabels w;
  w.principal = principal;
  size_t ns = principal.find("/ns/");
  if (ns != std::string::npos) {
    size_t end = principal.find('/', ns + 4);
    w.namespace_ = principal.substr(ns + 4, end == std::string::npos ? end : end - ns - 4);
  }
  return w;
}

}  // namespace mesh::proxy
