#include "pilot/translate/push_context.h"

#include <algorithm>

#include "config/host_name.h"

namespace mesh::pilot::translate {
namespace {

template <typename Repeated>
std::vector<std::string> strings(const Repeated& r) {
  return std::vector<std::string>(r.begin(), r.end());
}

// 2: exact, 1: wildcard, 0: no match.
int matchRank(const std::string& pattern, const std::string& host) {
  if (pattern == host) return 2;
  return hostMatches(pattern, host) ? 1 : 0;
}

}  // namespace

bool exportedTo(const std::vector<std::string>& export_to, const std::string& own_namespace,
                const std::string& proxy_namespace) {
  if (export_to.empty()) return true;
  return std::any_of(export_to.begin(), export_to.end(), [&](const std::string& e) {
    return e == "*" || (e == "." && own_namespace == proxy_namespace) || e == proxy_namespace;
  });
}

bool hostMatches(const std::string& pattern, const std::string& host) {
  if (pattern == "*" || pattern == host) return true;
  if (pattern.starts_with("*.")) {
    std::string suffix = pattern.substr(1);  // ".example.com"
    if (host.starts_with("*.")) return host.substr(1).ends_with(suffix);
    return host.size() > suffix.size() && host.ends_with(suffix);
  }
  return false;
}

PushContext::PushContext(const model::ServiceRegistry& registry,
                         const std::vector<config::Resource>& resources, PushOptions options)
    : registry_(registry), options_(std::move(options)), services_(registry.services()) {
  std::map<std::string, size_t> rule_index;
  for (const config::Resource& r : resources) {
    if (const auto* vs = r.as<networking::VirtualService>()) {
      bool mesh = vs->gateways().empty() || std::find(vs->gateways().begin(), vs->gateways().end(),
                                                      "mesh") != vs->gateways().end();
      if (!vs->gateways().empty()) gateway_virtual_services_.push_back(&r);
      if (!mesh) continue;
      virtual_services_.push_back(&r);
      for (const auto& http : vs->http()) {
        for (const auto& m : http.match()) {
          if (!m.source_labels().empty()) depends_on_labels_ = true;
        }
      }
    } else if (const auto* dr = r.as<networking::DestinationRule>()) {
      if (dr->has_workload_selector()) depends_on_labels_ = true;
      std::string key =
          r.namespace_name + "|" +
          config::expandShortHostName(dr->host(), r.namespace_name, options_.domain_suffix) + "|" +
          dr->workload_selector().SerializeAsString() + "|";
      for (const auto& e : dr->export_to()) key += e + ",";
      auto it = rule_index.find(key);
      if (it == rule_index.end()) {
        rule_index.emplace(std::move(key), merged_rules_.size());
        merged_rules_.push_back(r);
        continue;
      }
      auto* into = std::get_if<networking::DestinationRule>(&merged_rules_[it->second].spec);
      for (const auto& subset : dr->subsets()) {
        bool taken = std::any_of(into->subsets().begin(), into->subsets().end(),
                                 [&](const auto& s) { return s.name() == subset.name(); });
        if (!taken) *into->add_subsets() = subset;
      }
      // The first top-level policy written wins.
      if (!into->has_traffic_policy() && dr->has_traffic_policy()) {
        *into->mutable_traffic_policy() = dr->traffic_policy();
      }
    } else if (r.as<networking::Sidecar>()) {
      sidecars_.push_back(&r);
    } else if (r.as<networking::Gateway>() != nullptr) {
      gateways_.push_back(&r);
    } else if (r.as<config::security::PeerAuthentication>() != nullptr) {
      peer_authentications_.push_back(&r);
    }
  }
  for (const config::Resource& r : merged_rules_) destination_rules_.push_back(&r);
}

MtlsMode PushContext::mtlsModeFor(const ProxyIdentity& proxy, uint32_t port) const {
  using Mode = config::security::PeerAuthentication::MutualTLS;
  // Istio's order: the workload's (selector matches; its port-level setting first), then its
  // namespace's selector-less one, then the root namespace's; UNSET defers to the next.
  const config::Resource* workload = nullptr;
  const config::Resource* ns_wide = nullptr;
  const config::Resource* mesh_wide = nullptr;
  for (const config::Resource* r : peer_authentications_) {
    const auto& pa = *r->as<config::security::PeerAuthentication>();
    const auto& labels = pa.selector().match_labels();
    if (r->namespace_name == proxy.namespace_name && !labels.empty()) {
      std::map<std::string, std::string> sel(labels.begin(), labels.end());
      if (workload == nullptr && model::labelsMatch(sel, proxy.labels)) workload = r;
    } else if (r->namespace_name == proxy.namespace_name && labels.empty()) {
      if (ns_wide == nullptr) ns_wide = r;
    } else if (r->namespace_name == options_.root_namespace && labels.empty()) {
      if (mesh_wide == nullptr) mesh_wide = r;
    }
  }
  auto decided = [](Mode::Mode m, MtlsMode* out) {
    switch (m) {
      case Mode::DISABLE:
        *out = MtlsMode::kDisable;
        return true;
      case Mode::PERMISSIVE:
        *out = MtlsMode::kPermissive;
        return true;
      case Mode::STRICT:
        *out = MtlsMode::kStrict;
        return true;
      default:
        return false;
    }
  };
  MtlsMode out = MtlsMode::kPermissive;
  if (workload != nullptr) {
    const auto& pa = *workload->as<config::security::PeerAuthentication>();
    auto it = pa.port_level_mtls().find(port);
    if (it != pa.port_level_mtls().end() && decided(it->second.mode(), &out)) return out;
    if (decided(pa.mtls().mode(), &out)) return out;
  }
  for (const config::Resource* r : {ns_wide, mesh_wide}) {
    if (r != nullptr &&
        decided(r->as<config::security::PeerAuthentication>()->mtls().mode(), &out)) {
      return out;
    }
  }
  return MtlsMode::kPermissive;
}

std::vector<const config::Resource*> PushContext::gatewaysFor(const ProxyIdentity& proxy) const {
  std::vector<const config::Resource*> out;
  if (!proxy.isRouter()) return out;
  for (const config::Resource* r : gateways_) {
    const auto& gw = *r->as<networking::Gateway>();
    std::map<std::string, std::string> sel(gw.selector().begin(), gw.selector().end());
    if (model::labelsMatch(sel, proxy.labels)) out.push_back(r);
  }
  return out;
}

std::vector<const config::Resource*> PushContext::virtualServicesFor(
    const config::Resource& gateway) const {
  std::vector<const config::Resource*> out;
  const std::string full = gateway.namespace_name + "/" + gateway.name;
  for (const config::Resource* r : gateway_virtual_services_) {
    const auto& vs = *r->as<networking::VirtualService>();
    for (const std::string& g : vs.gateways()) {
      if (g == full || (g == gateway.name && r->namespace_name == gateway.namespace_name)) {
        out.push_back(r);
        break;
      }
    }
  }
  return out;
}

const config::Resource* PushContext::sidecarFor(const ProxyIdentity& proxy) const {
  const config::Resource* ns_default = nullptr;
  const config::Resource* root_default = nullptr;
  for (const config::Resource* r : sidecars_) {
    const auto& sc = *r->as<networking::Sidecar>();
    bool has_selector = sc.has_workload_selector() && !sc.workload_selector().labels().empty();
    if (r->namespace_name == proxy.namespace_name) {
      if (has_selector) {
        std::map<std::string, std::string> sel(sc.workload_selector().labels().begin(),
                                               sc.workload_selector().labels().end());
        if (model::labelsMatch(sel, proxy.labels)) return r;
      } else if (ns_default == nullptr) {
        ns_default = r;
      }
    } else if (r->namespace_name == options_.root_namespace && !has_selector &&
               root_default == nullptr) {
      root_default = r;
    }
  }
  return ns_default != nullptr ? ns_default : root_default;
}

bool PushContext::sidecarImports(const config::Resource* sidecar, const ProxyIdentity& proxy,
                                 const std::string& namespace_name, const std::string& host) const {
  if (sidecar == nullptr) return true;
  const auto& sc = *sidecar->as<networking::Sidecar>();
  if (sc.egress().empty()) return true;
  for (const auto& egress : sc.egress()) {
    for (const std::string& entry : egress.hosts()) {
      size_t slash = entry.find('/');
      std::string ns = slash == std::string::npos ? "*" : entry.substr(0, slash);
      std::string pattern = slash == std::string::npos ? entry : entry.substr(slash + 1);
      if (ns == "~") continue;
      // "." is the Sidecar's own namespace, which is the proxy's.
      bool ns_ok = ns == "*" || (ns == "." && namespace_name == proxy.namespace_name) ||
                   ns == namespace_name;
      if (ns_ok && hostMatches(pattern, host)) return true;
    }
  }
  return false;
}

std::vector<const model::Service*> PushContext::visibleServices(
    const ProxyIdentity& proxy, const config::Resource* sidecar) const {
  std::vector<const model::Service*> out;
  std::vector<bool> taken(services_.size(), false);
  for (size_t i = 0; i < services_.size(); ++i) {
    const model::Service* s = services_[i];
    if (!s->visibleFrom(proxy.namespace_name)) continue;
    if (!sidecarImports(sidecar, proxy, s->namespace_name, s->hostname)) continue;
    taken[i] = true;
  }
  // Services a Sidecar leaves out are still reachable as destinations of the VirtualServices it
  // imports (Istio adds them to the scope).
  if (sidecar != nullptr) {
    for (const config::Resource* r : virtual_services_) {
      const auto& vs = *r->as<networking::VirtualService>();
      if (!exportedTo(strings(vs.export_to()), r->namespace_name, proxy.namespace_name)) continue;
      bool imported = false;
      for (const std::string& h : vs.hosts()) {
        std::string host =
            config::expandShortHostName(h, r->namespace_name, options_.domain_suffix);
        if (sidecarImports(sidecar, proxy, r->namespace_name, host)) imported = true;
      }
      if (!imported) continue;
      for (const auto& http : vs.http()) {
        for (const auto& d : http.route()) {
          std::string host = config::expandShortHostName(d.destination().host(), r->namespace_name,
                                                         options_.domain_suffix);
          for (size_t i = 0; i < services_.size(); ++i) {
            if (!taken[i] && services_[i]->hostname == host &&
                services_[i]->visibleFrom(proxy.namespace_name)) {
              taken[i] = true;
            }
          }
        }
      }
    }
  }
  for (size_t i = 0; i < services_.size(); ++i) {
    if (taken[i]) out.push_back(services_[i]);
  }
  return out;
}

const config::Resource* PushContext::virtualServiceFor(const model::Service& service,
                                                       const ProxyIdentity& proxy,
                                                       const config::Resource* sidecar) const {
  const config::Resource* best = nullptr;
  int best_rank = 0;
  for (const config::Resource* r : virtual_services_) {
    const auto& vs = *r->as<networking::VirtualService>();
    if (!exportedTo(strings(vs.export_to()), r->namespace_name, proxy.namespace_name)) continue;
    for (const std::string& h : vs.hosts()) {
      std::string host = config::expandShortHostName(h, r->namespace_name, options_.domain_suffix);
      int rank = matchRank(host, service.hostname);
      if (rank <= best_rank) continue;
      if (!sidecarImports(sidecar, proxy, r->namespace_name, host) &&
          !sidecarImports(sidecar, proxy, r->namespace_name, service.hostname)) {
        continue;
      }
      best = r;
      best_rank = rank;
    }
  }
  return best;
}

const config::Resource* PushContext::destinationRuleFor(const model::Service& service,
                                                        const ProxyIdentity& proxy) const {
  auto lookIn = [&](const std::string& ns) -> const config::Resource* {
    const config::Resource* best = nullptr;
    int best_rank = 0;
    for (const config::Resource* r : destination_rules_) {
      if (r->namespace_name != ns) continue;
      const auto& dr = *r->as<networking::DestinationRule>();
      if (!exportedTo(strings(dr.export_to()), r->namespace_name, proxy.namespace_name)) continue;
      if (dr.has_workload_selector()) {
        // A selector applies only to workloads in the rule's own namespace.
        std::map<std::string, std::string> sel(dr.workload_selector().match_labels().begin(),
                                               dr.workload_selector().match_labels().end());
        if (r->namespace_name != proxy.namespace_name || !model::labelsMatch(sel, proxy.labels)) {
          continue;
        }
      }
      std::string host =
          config::expandShortHostName(dr.host(), r->namespace_name, options_.domain_suffix);
      int rank = matchRank(host, service.hostname);
      if (rank > best_rank) {
        best = r;
        best_rank = rank;
      }
    }
    return best;
  };
  for (const std::string* ns :
       {&proxy.namespace_name, &service.namespace_name, &options_.root_namespace}) {
    if (const config::Resource* r = lookIn(*ns)) return r;
  }
  return nullptr;
}

const model::Service* PushContext::findService(const std::string& hostname,
                                               const std::string& namespace_name) const {
  const model::Service* any = nullptr;
  for (const model::Service* s : services_) {
    if (s->hostname != hostname || !s->visibleFrom(namespace_name)) continue;
    if (s->namespace_name == namespace_name) return s;
    if (any == nullptr) any = s;
  }
  return any;
}

}  // namespace mesh::pilot::translate
