#include "pilot/model/service_entry_registry.h"

#include "config/host_name.h"

namespace mesh::pilot::model {
namespace {

namespace networking = config::networking;

Endpoint endpointFrom(const networking::WorkloadEntry& we, const std::string& namespace_name,
                      const std::string& workload_name) {
  Endpoint e;
  e.address = we.address();
  for (const auto& [name, port] : we.ports()) e.ports[name] = port;
  e.labels.insert(we.labels().begin(), we.labels().end());
  e.locality = we.locality();
  e.service_account = we.service_account();
  e.namespace_name = namespace_name;
  e.workload_name = workload_name;
  e.weight = we.weight();
  return e;
}

// "reviews" for "reviews.default.svc.cluster.local"; the whole host for other names.
std::string shortName(const std::string& host) {
  size_t first = host.find('.');
  size_t second = first == std::string::npos ? first : host.find('.', first + 1);
  if (second != std::string::npos && host.compare(second, 5, ".svc.") == 0) {
    return host.substr(0, first);
  }
  return host;
}

}  // namespace

void ServiceEntryRegistry::update(const std::vector<config::Resource>& resources) {
  entries_.clear();
  warnings_.clear();
  for (const config::Resource& r : resources) {
    const auto* se = r.as<networking::ServiceEntry>();
    if (se == nullptr) continue;
    std::vector<Endpoint> eps;
    if (se->has_workload_selector()) {
      std::map<std::string, std::string> selector(se->workload_selector().labels().begin(),
                                                  se->workload_selector().labels().end());
      for (const config::Resource& w : resources) {
        const auto* we = w.as<networking::WorkloadEntry>();
        if (we == nullptr || w.namespace_name != r.namespace_name) continue;
        std::map<std::string, std::string> labels(we->labels().begin(), we->labels().end());
        if (labelsMatch(selector, labels))
          eps.push_back(endpointFrom(*we, w.namespace_name, w.name));
      }
    } else {
      for (const auto& we : se->endpoints()) eps.push_back(endpointFrom(we, r.namespace_name, ""));
    }
    for (const std::string& host : se->hosts()) {
      auto entry = std::make_unique<Entry>();
      Service& s = entry->service;
      s.hostname = host;
      s.namespace_name = r.namespace_name;
      s.name = shortName(host);
      s.labels = r.labels;
      s.export_to.assign(se->export_to().begin(), se->export_to().end());
      s.mesh_external = se->location() == networking::ServiceEntry::MESH_EXTERNAL;
      for (const std::string& a : se->addresses()) {
        // "10.0.0.1" or "10.0.0.1/32"; wider CIDRs are ranges, not one service address.
        std::string ip = a.ends_with("/32") ? a.substr(0, a.size() - 3) : a;
        if (config::isIpAddress(ip)) s.addresses.push_back(ip);
      }
      switch (se->resolution()) {
        case networking::ServiceEntry::STATIC:
          s.resolution = Resolution::kStatic;
          break;
        case networking::ServiceEntry::DNS:
        case networking::ServiceEntry::DNS_ROUND_ROBIN:
          s.resolution = Resolution::kDns;
          break;
        default:
          s.resolution = Resolution::kNone;
      }
      for (const auto& p : se->ports()) {
        s.ports.push_back(
            {p.name(), p.number(), resolveProtocol(p.protocol(), p.name()), p.target_port()});
      }
      entry->endpoints = eps;
      // DNS resolution without endpoints: the host name itself is the endpoint (not wildcards).
      if (s.resolution == Resolution::kDns && eps.empty() && host.find('*') == std::string::npos) {
        Endpoint e;
        e.address = host;
        e.namespace_name = r.namespace_name;
        entry->endpoints.push_back(std::move(e));
      }
      std::string key = host + "/" + r.namespace_name;
      if (entries_.count(key)) {
        warnings_.push_back(r.displayName() + ": host '" + host +
                            "' is already defined in namespace '" + r.namespace_name +
                            "'; the first definition is used");
        continue;
      }
      entries_.emplace(std::move(key), std::move(entry));
    }
  }
  for (const auto& cb : callbacks_) cb();
}

std::vector<const Service*> ServiceEntryRegistry::services() const {
  std::vector<const Service*> out;
  out.reserve(entries_.size());
  for (const auto& [key, e] : entries_) out.push_back(&e->service);
  return out;
}

const std::vector<Endpoint>& ServiceEntryRegistry::endpoints(const Service& service) const {
  static const std::vector<Endpoint> kNone;
  auto it = entries_.find(service.hostname + "/" + service.namespace_name);
  return it == entries_.end() ? kNone : it->second->endpoints;
}

}  // namespace mesh::pilot::model
