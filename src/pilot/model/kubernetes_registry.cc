#include "pilot/model/kubernetes_registry.h"

#include <algorithm>
#include <charconv>

namespace mesh::pilot::model {
namespace {

namespace kv1 = config::v1;

constexpr char kExportToAnnotation[] = "networking.istio.io/exportTo";

std::vector<std::string> splitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string part = s.substr(start, comma - start);
    part.erase(0, part.find_first_not_of(' '));
    part.erase(part.find_last_not_of(' ') + 1);
    if (!part.empty()) out.push_back(part);
    start = comma + 1;
  }
  return out;
}

uint32_t numericPort(const std::string& s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() ? v : 0;
}

}  // namespace

void KubernetesRegistry::update(const std::vector<config::KubernetesObject>& objects) {
  entries_.clear();
  // Pods by namespace/name and by IP, for endpoint labels.
  std::map<std::string, const config::KubernetesObject*> pods_by_name, pods_by_ip;
  for (const auto& o : objects) {
    if (const auto* pod = o.as<kv1::KubernetesPodObject>()) {
      pods_by_name[o.namespace_name + "/" + o.name] = &o;
      if (!pod->status().pod_ip().empty()) {
        pods_by_ip[o.namespace_name + "/" + pod->status().pod_ip()] = &o;
      }
    }
  }
  for (const auto& o : objects) {
    const auto* svc = o.as<kv1::KubernetesServiceObject>();
    if (svc == nullptr) continue;
    auto entry = std::make_unique<Entry>();
    Service& s = entry->service;
    s.hostname = o.name + "." + o.namespace_name + ".svc." + domain_suffix_;
    s.namespace_name = o.namespace_name;
    s.name = o.name;
    s.labels.insert(svc->metadata().labels().begin(), svc->metadata().labels().end());
    auto annotation = svc->metadata().annotations().find(kExportToAnnotation);
    if (annotation != svc->metadata().annotations().end()) {
      s.export_to = splitCommas(annotation->second);
    }
    const std::string& cluster_ip = svc->spec().cluster_ip();
    if (!cluster_ip.empty() && cluster_ip != "None") s.addresses.push_back(cluster_ip);
    for (const auto& p : svc->spec().ports()) {
      // appProtocol first, then the port name; Kubernetes' own protocol field is L4 only.
      s.ports.push_back({p.name(), p.port(), resolveProtocol(p.app_protocol(), p.name()),
                         numericPort(p.target_port())});
    }
    entries_[s.hostname] = std::move(entry);
  }
  for (const auto& o : objects) {
    const auto* eps = o.as<kv1::KubernetesEndpointsObject>();
    if (eps == nullptr) continue;
    auto it = entries_.find(o.name + "." + o.namespace_name + ".svc." + domain_suffix_);
    if (it == entries_.end()) continue;
    for (const auto& subset : eps->subsets()) {
      auto add = [&](const kv1::EndpointAddress& a, bool healthy) {
        Endpoint e;
        e.address = a.ip();
        for (const auto& p : subset.ports()) e.ports[p.name()] = p.port();
        e.namespace_name = o.namespace_name;
        e.healthy = healthy;
        const config::KubernetesObject* pod = nullptr;
        if (a.target_ref().kind() == "Pod") {
          std::string ns =
              a.target_ref().namespace_().empty() ? o.namespace_name : a.target_ref().namespace_();
          auto p = pods_by_name.find(ns + "/" + a.target_ref().name());
          if (p != pods_by_name.end()) pod = p->second;
        }
        if (pod == nullptr) {
          auto p = pods_by_ip.find(o.namespace_name + "/" + a.ip());
          if (p != pods_by_ip.end()) pod = p->second;
        }
        if (pod != nullptr) {
          const auto& po = *pod->as<kv1::KubernetesPodObject>();
          e.labels.insert(po.metadata().labels().begin(), po.metadata().labels().end());
          e.service_account = po.spec().service_account_name().empty()
                                  ? "default"
                                  : po.spec().service_account_name();
          e.workload_name = pod->name;
        } else if (a.target_ref().kind() == "Pod") {
          e.workload_name = a.target_ref().name();
        }
        it->second->endpoints.push_back(std::move(e));
      };
      for (const auto& a : subset.addresses()) add(a, true);
      for (const auto& a : subset.not_ready_addresses()) add(a, false);
    }
  }
  for (const auto& cb : callbacks_) cb();
}

std::vector<const Service*> KubernetesRegistry::services() const {
  std::vector<const Service*> out;
  for (const auto& [host, e] : entries_) out.push_back(&e->service);
  return out;
}

const std::vector<Endpoint>& KubernetesRegistry::endpoints(const Service& service) const {
  static const std::vector<Endpoint> kNone;
  auto it = entries_.find(service.hostname);
  if (it == entries_.end() || &it->second->service != &service) return kNone;
  return it->second->endpoints;
}

}  // namespace mesh::pilot::model
