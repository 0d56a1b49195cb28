#include "pilot/translate/translator.h"

#include <google/protobuf/any.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <set>

#include "config/host_name.h"
#include "core/proxy_id.h"
#include "pilot/translate/http_routes.h"
#include "pilot/translate/traffic_policy.h"

namespace mesh::pilot::translate {
namespace {

namespace v1 = mesh::proxy::v1;

std::string hostPort(const std::string& host, uint32_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string resourceName(const config::Resource& r) {
  return std::string(config::kindName(r.kind)) + " " + r.namespace_name + "/" + r.name;
}

// One service per hostname: the proxy's own namespace's definition first, else the first.
std::vector<const model::Service*> onePerHost(const std::vector<const model::Service*>& in,
                                              const std::string& proxy_namespace) {
  std::vector<const model::Service*> out;
  std::map<std::string, size_t> index;
  for (const model::Service* s : in) {
    auto [it, inserted] = index.emplace(s->hostname, out.size());
    if (inserted) {
      out.push_back(s);
    } else if (s->namespace_name == proxy_namespace &&
               out[it->second]->namespace_name != proxy_namespace) {
      out[it->second] = s;
    }
  }
  return out;
}

// The endpoints of `s` on port `sp` whose labels match `selector` (a subset's, or none).
void addEndpoints(const model::Service& s, const model::ServicePort& sp,
                  const std::map<std::string, std::string>& selector,
                  const std::vector<model::Endpoint>& endpoints,
                  google::protobuf::RepeatedPtrField<v1::Endpoint>* out_endpoints,
                  std::vector<std::string>* warnings) {
  for (const model::Endpoint& e : endpoints) {
    if (!e.healthy || !model::labelsMatch(selector, e.labels)) continue;
    if (s.resolution != model::Resolution::kDns && !config::isIpAddress(e.address)) {
      warnings->push_back(s.hostname + ": endpoint '" + e.address +
                          "' is not an IP address and the service is not resolved by "
                          "DNS; skipped");
      continue;
    }
    v1::Endpoint* out = out_endpoints->Add();
    out->set_address(e.address);
    out->set_port(e.portFor(sp));
    if (e.weight != 0) out->set_weight(e.weight);
    if (!e.workload_name.empty() || !e.labels.empty() || !e.service_account.empty()) {
      v1::WorkloadInfo* w = out->mutable_workload();
      // Istio's label for a workload's name wins over the pod / WorkloadEntry name.
      auto named = e.labels.find("service.istio.io/workload-name");
      w->set_name(named != e.labels.end() ? named->second : e.workload_name);
      w->set_namespace_(e.namespace_name);
      w->mutable_labels()->insert(e.labels.begin(), e.labels.end());
      w->set_service_account(e.service_account);
    }
  }
}

// One `resources` entry: field 2 holding an Any of `a`.
std::string entryOf(const v1::ClusterLoadAssignment& a) {
  static const std::string kAnyType =
      "type.googleapis.com/" + v1::ClusterLoadAssignment::descriptor()->full_name();
  std::string any;
  appendBytesField(&any, 1, kAnyType);                   // google.protobuf.Any.type_url
  appendBytesField(&any, 2, serializeDeterministic(a));  // google.protobuf.Any.value
  std::string out;
  appendBytesField(&out, 2, any);  // DiscoveryResponse.resources
  return out;
}

}  // namespace

void appendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t varintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void appendBytesField(std::string* out, int field, std::string_view value) {
  out->push_back(static_cast<char>(field << 3 | 2));
  appendVarint(out, value.size());
  out->append(value);
}

AssignmentSet::AssignmentSet(const AssignmentSet& base,
                             const std::vector<v1::ClusterLoadAssignment>& replacements) {
  std::map<std::string_view, std::string> replaced;
  for (const auto& a : replacements) replaced[a.cluster_name()] = entryOf(a);
  auto all = std::make_shared<std::string>();
  all->reserve(base.all_->size());
  for (const Entry& old : base.entries_) {
    auto it = replaced.find(old.name);
    std::string_view bytes = it != replaced.end() ? std::string_view(it->second) : base.bytes(old);
    Entry e;
    e.name = old.name;
    e.offset = all->size();
    all->append(bytes);
    e.size = bytes.size();
    e.hash = it != replaced.end() ? std::hash<std::string_view>{}(bytes) : old.hash;
    entries_.push_back(std::move(e));
  }
  all_ = std::move(all);
}

AssignmentSet::AssignmentSet(const std::vector<v1::ClusterLoadAssignment>& assignments) {
  std::vector<const v1::ClusterLoadAssignment*> sorted;
  sorted.reserve(assignments.size());
  for (const auto& a : assignments) sorted.push_back(&a);
  std::sort(sorted.begin(), sorted.end(),
            [](auto* a, auto* b) { return a->cluster_name() < b->cluster_name(); });
  auto all = std::make_shared<std::string>();
  for (const v1::ClusterLoadAssignment* a : sorted) {
    Entry e;
    e.name = a->cluster_name();
    e.offset = all->size();
    all->append(entryOf(*a));
    e.size = all->size() - e.offset;
    e.hash = std::hash<std::string_view>{}(std::string_view(all->data() + e.offset, e.size));
    entries_.push_back(std::move(e));
  }
  all_ = std::move(all);
}

std::shared_ptr<const std::string> AssignmentSet::changedSince(
    const std::shared_ptr<const AssignmentSet>& before) const {
  static const auto kNone = std::make_shared<const std::string>();
  if (before == nullptr) return all_;
  if (before.get() == this) return kNone;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [set, diff] : diffs_) {
    if (set.lock() == before) return diff;
  }
  // A merge walk over both sorted lists: an entry is sent when its name is new or its bytes differ.
  auto diff = std::make_shared<std::string>();
  size_t changed = 0;
  auto old = before->entries_.begin();
  for (const Entry& e : entries_) {
    while (old != before->entries_.end() && old->name < e.name) ++old;
    const bool same = old != before->entries_.end() && old->name == e.name && old->hash == e.hash &&
                      before->bytes(*old) == bytes(e);
    if (same) continue;
    ++changed;
    diff->append(bytes(e));
  }
  std::shared_ptr<const std::string> out = diff;
  if (changed == entries_.size()) out = all_;  // the same bytes, shared
  std::erase_if(diffs_, [](const auto& d) { return d.first.expired(); });
  diffs_.emplace_back(before, out);
  return out;
}

std::vector<v1::ClusterLoadAssignment> AssignmentSet::parse(std::string_view entries) {
  std::vector<v1::ClusterLoadAssignment> out;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(entries.data()),
                                            static_cast<int>(entries.size()));
  uint32_t tag = 0;
  while ((tag = in.ReadTag()) != 0) {
    uint32_t size = 0;
    std::string any_bytes;
    google::protobuf::Any any;
    if (tag != (2 << 3 | 2) || !in.ReadVarint32(&size) || !in.ReadString(&any_bytes, size) ||
        !any.ParseFromString(any_bytes) || !any.UnpackTo(&out.emplace_back())) {
      break;
    }
  }
  return out;
}

std::string serializeDeterministic(const google::protobuf::MessageLite& m) {
  std::string out;
  google::protobuf::io::StringOutputStream sos(&out);
  google::protobuf::io::CodedOutputStream cos(&sos);
  cos.SetSerializationDeterministic(true);
  m.SerializeToCodedStream(&cos);
  return out;
}

std::string outboundClusterName(uint32_t port, const std::string& subset, const std::string& host) {
  return "outbound|" + std::to_string(port) + "|" + subset + "|" + host;
}

std::string podName(const ProxyIdentity& proxy) {
  return podNameFromProxyId(proxy.id, proxy.namespace_name);
}

std::string inboundClusterName(uint32_t port) { return "inbound|" + std::to_string(port) + "||"; }

std::vector<std::string> serviceDomains(const model::Service& service,
                                        const std::string& proxy_namespace,
                                        const std::string& domain_suffix) {
  std::vector<std::string> out{service.hostname};
  const std::string tail = "." + service.namespace_name + ".svc." + domain_suffix;
  if (service.hostname.size() > tail.size() && service.hostname.ends_with(tail)) {
    std::string name = service.hostname.substr(0, service.hostname.size() - tail.size());
    if (name.find('.') == std::string::npos) {
      out.push_back(name + "." + service.namespace_name + ".svc");
      out.push_back(name + "." + service.namespace_name);
      if (service.namespace_name == proxy_namespace) out.push_back(name);
    }
  }
  return out;
}

Translator::Translator(const PushContext& push, TranslateOptions options)
    : push_(push), options_(std::move(options)) {
  if (!options_.outbound_address) {
    options_.outbound_address = [](uint32_t port) { return hostPort("0.0.0.0", port); };
  }
  if (!options_.inbound_address) {
    options_.inbound_address = [](const ProxyIdentity& p, uint32_t port) {
      return hostPort(p.ip, port);
    };
  }
}

std::shared_ptr<const Translator::OutboundView> Translator::outboundView(
    const ProxyIdentity& proxy) {
  const config::Resource* sidecar = push_.sidecarFor(proxy);
  std::string key = proxy.namespace_name + "|";
  if (sidecar != nullptr) key += sidecar->namespace_name + "/" + sidecar->name;
  if (proxy.isRouter()) key = "router|" + key;
  if (push_.dependsOnProxyLabels() || proxy.isRouter()) {
    for (const auto& [k, v] : proxy.labels) key += "|" + k + "=" + v;
  }
  auto it = views_.find(key);
  if (it != views_.end()) {
    ++views_reused_;
    return it->second;
  }
  auto inherited = inherited_.find(key);
  if (inherited != inherited_.end()) {
    // Only endpoints changed since the config that built it: its clusters and routes stand, and
    // only the assignments of the changed services' clusters are computed again.
    ++views_refreshed_;
    auto view = std::make_shared<OutboundView>(*inherited->second);
    view->assignments = refreshedAssignments(*view);
    inherited_.erase(inherited);
    views_.emplace(std::move(key), view);
    return view;
  }
  ++views_built_;
  auto view = buildOutbound(proxy, sidecar);
  views_.emplace(std::move(key), view);
  return view;
}

void Translator::inherit(const Translator& previous, std::set<std::string> changed_services) {
  inherited_.clear();
  for (const auto& [key, view] : previous.views_) inherited_.emplace(key, view);
  changed_services_ = std::move(changed_services);
}

std::shared_ptr<const AssignmentSet> Translator::refreshedAssignments(const OutboundView& view) {
  if (service_index_.empty()) {
    for (const model::Service* s : push_.registry().services()) {
      service_index_.emplace(s->namespace_name + "/" + s->hostname, s);
    }
  }
  std::vector<v1::ClusterLoadAssignment> replacements;
  std::vector<std::string> ignored;  // the view's warnings are those of the config that built it
  for (const ClusterSource& src : *view.sources) {
    if (!changed_services_.contains(src.service_namespace + "/" + src.service_name)) continue;
    v1::ClusterLoadAssignment& a = replacements.emplace_back();
    a.set_cluster_name(src.cluster);
    auto s = service_index_.find(src.service_namespace + "/" + src.host);
    if (s == service_index_.end()) continue;
    const model::ServicePort* sp = s->second->port(src.port);
    if (sp == nullptr) continue;
    addEndpoints(*s->second, *sp, src.selector, push_.registry().endpoints(*s->second),
                 a.mutable_endpoints(), &ignored);
  }
  return std::make_shared<const AssignmentSet>(*view.assignments, replacements);
}

std::shared_ptr<const Translator::OutboundView> Translator::buildOutbound(
    const ProxyIdentity& proxy, const config::Resource* sidecar) {
  auto view = std::make_shared<OutboundView>();
  const model::ServiceRegistry& registry = push_.registry();
  std::vector<const model::Service*> services =
      onePerHost(push_.visibleServices(proxy, sidecar), proxy.namespace_name);

  // Clusters: one per service port, one more per DestinationRule subset.
  std::map<std::string, std::vector<v1::HashPolicy>> hash_by_cluster;
  std::set<std::string> cluster_names;
  for (const model::Service* s : services) {
    const config::Resource* dr_res = push_.destinationRuleFor(*s, proxy);
    const networking::DestinationRule* dr =
        dr_res ? dr_res->as<networking::DestinationRule>() : nullptr;
    std::string where = dr_res ? resourceName(*dr_res) : s->hostname;
    const auto& endpoints = registry.endpoints(*s);
    auto build = [&](const model::ServicePort& sp, const networking::Subset* subset) {
      v1::Cluster c;
      c.set_name(outboundClusterName(sp.number, subset ? subset->name() : "", s->hostname));
      if (!cluster_names.insert(c.name()).second) return;  // a duplicate subset name: first wins
      c.set_type(s->resolution == model::Resolution::kDns ? v1::Cluster::STRICT_DNS
                                                          : v1::Cluster::STATIC);
      c.mutable_service()->set_host(s->hostname);
      c.mutable_service()->set_name(s->name);
      c.mutable_service()->set_namespace_(s->namespace_name);
      std::map<std::string, std::string> selector;
      if (subset != nullptr) selector.insert(subset->labels().begin(), subset->labels().end());
      addEndpoints(*s, sp, selector, endpoints, c.mutable_endpoints(), &view->warnings);
      view->sources->push_back(
          {c.name(), s->hostname, s->namespace_name, s->name, sp.number, std::move(selector)});
      EffectivePolicy policy = effectivePolicy(dr, subset, sp.number);
      applyPolicy(policy, &c, where, &view->warnings);
      // As Istio: HTTP/2 to ports declared http2, grpc or grpc-web, and to HTTP ports whose
      // DestinationRule asks for h2UpgradePolicy UPGRADE.
      if (sp.protocol == model::Protocol::kHttp2 || sp.protocol == model::Protocol::kGrpc ||
          (sp.protocol == model::Protocol::kHttp && policy.connection_pool != nullptr &&
           policy.connection_pool->http().h2_upgrade_policy() ==
               networking::ConnectionPoolSettings::HTTPSettings::UPGRADE)) {
        c.set_http2(true);
      }
      auto hash = hashPolicies(policy);
      if (!hash.empty()) hash_by_cluster[c.name()] = std::move(hash);
      view->clusters->push_back(std::move(c));
    };
    for (const model::ServicePort& sp : s->ports) {
      build(sp, nullptr);
      if (dr == nullptr) continue;
      for (const auto& subset : dr->subsets()) build(sp, &subset);
    }
  }

  // Route configurations: one per HTTP port, one virtual host per service on it.
  std::set<uint32_t> http_ports;
  for (const model::Service* s : services) {
    for (const model::ServicePort& sp : s->ports) {
      if (model::isHttp(sp.protocol)) http_ports.insert(sp.number);
    }
  }
  auto cluster_for = [&](const std::string& host, const std::string& subset, uint32_t listener_port,
                         uint32_t port) -> std::string {
    const model::Service* s = nullptr;
    for (const model::Service* c : services) {
      if (c->hostname == host) s = c;
    }
    if (s == nullptr) return "";
    if (port == 0) {
      if (s->ports.size() == 1) {
        port = s->ports[0].number;
      } else if (s->port(listener_port) != nullptr) {
        port = listener_port;
      } else {
        return "";
      }
    }
    std::string name = outboundClusterName(port, subset, host);
    return cluster_names.count(name) ? name : "";
  };
  auto hash_for = [&](const std::string& cluster) {
    auto it = hash_by_cluster.find(cluster);
    return it == hash_by_cluster.end() ? std::vector<v1::HashPolicy>{} : it->second;
  };
  const std::string& suffix = push_.options().domain_suffix;
  auto route_context = [&](const config::Resource& vs, uint32_t port) {
    RouteContext ctx;
    ctx.port = port;
    ctx.proxy = &proxy;
    ctx.vs_namespace = vs.namespace_name;
    ctx.domain_suffix = suffix;
    ctx.where = resourceName(vs);
    ctx.cluster_for = [&cluster_for, port](const std::string& h, const std::string& sub,
                                           uint32_t p) { return cluster_for(h, sub, port, p); };
    ctx.hash_for = hash_for;
    ctx.warnings = &view->warnings;
    return ctx;
  };
  for (uint32_t port : http_ports) {
    v1::RouteConfiguration rc;
    rc.set_name(std::to_string(port));
    std::set<std::string> used_domains;
    for (const model::Service* s : services) {
      const model::ServicePort* sp = s->port(port);
      if (sp == nullptr || !model::isHttp(sp->protocol)) continue;
      v1::VirtualHost vh;
      vh.set_name(hostPort(s->hostname, port));
      for (const std::string& d : serviceDomains(*s, proxy.namespace_name, suffix)) {
        if (used_domains.insert(d).second) vh.add_domains(d);
      }
      if (vh.domains().empty()) continue;
      std::vector<v1::Route> routes;
      if (const config::Resource* vs_res = push_.virtualServiceFor(*s, proxy, sidecar)) {
        routes = translateHttpRoutes(*vs_res->as<networking::VirtualService>(),
                                     route_context(*vs_res, port));
      }
      if (routes.empty()) {
        std::string cluster = outboundClusterName(port, "", s->hostname);
        routes.push_back(defaultRoute(cluster, hash_for(cluster)));
      }
      for (auto& r : routes) *vh.add_routes() = std::move(r);
      *rc.add_virtual_hosts() = std::move(vh);
    }
    view->route_configs->push_back(std::move(rc));
    view->http_ports.push_back(port);
  }
  // A router: per Gateway server port, the routes of the VirtualServices bound to the Gateway
  // whose hosts the server accepts. Only plaintext HTTP servers for now.
  std::map<uint32_t, v1::RouteConfiguration> gateway_rcs;
  for (const config::Resource* gw_res : push_.gatewaysFor(proxy)) {
    const auto& gw = *gw_res->as<networking::Gateway>();
    const std::string gw_key = gw_res->namespace_name + "/" + gw_res->name;
    for (const auto& server : gw.servers()) {
      const std::string proto = server.port().protocol();
      const uint32_t port = server.port().number();
      if (proto != "HTTP" && proto != "HTTP2" && proto != "GRPC") {
        view->warnings.push_back("Gateway " + gw_key + ": server port " + std::to_string(port) +
                                 " (" + proto + ") is not served yet: only HTTP servers are");
        continue;
      }
      v1::RouteConfiguration& rc = gateway_rcs[port];
      rc.set_name("http." + std::to_string(port));
      std::set<std::string> used;
      for (const auto& vh : rc.virtual_hosts())
        used.insert(vh.domains().begin(), vh.domains().end());
      for (const config::Resource* vs_res : push_.virtualServicesFor(*gw_res)) {
        const auto& vs = *vs_res->as<networking::VirtualService>();
        for (const std::string& h : vs.hosts()) {
          bool accepted = false;
          for (std::string sh : server.hosts()) {
            size_t slash = sh.find('/');
            if (slash != std::string::npos) sh = sh.substr(slash + 1);
            accepted = accepted || hostMatches(sh, h) || hostMatches(h, sh);
          }
          if (!accepted || !used.insert(h).second) continue;
          RouteContext ctx = route_context(*vs_res, port);
          ctx.gateway = gw_key;
          std::vector<v1::Route> routes = translateHttpRoutes(vs, ctx);
          if (routes.empty()) continue;
          v1::VirtualHost* vh = rc.add_virtual_hosts();
          vh->set_name(h + ":" + std::to_string(port));
          vh->add_domains(h);
          for (auto& r : routes) *vh->add_routes() = std::move(r);
        }
      }
    }
  }
  for (auto& [port, rc] : gateway_rcs) {
    view->gateway_route_configs->push_back(std::move(rc));
    view->gateway_ports.push_back(port);
  }
  // Opaque TCP ports: a listener per port relays to the one service on it, split by the
  // VirtualService's first applicable tcp route. Without per-service addresses, a port that
  // several services share cannot be told apart and gets no listener.
  std::map<uint32_t, std::vector<const model::Service*>> tcp_services;
  for (const model::Service* s : services) {
    for (const model::ServicePort& sp : s->ports) {
      if (!model::isHttp(sp.protocol) && !http_ports.count(sp.number)) {
        tcp_services[sp.number].push_back(s);
      }
    }
  }
  for (const auto& [port, owners] : tcp_services) {
    if (owners.size() > 1) {
      std::string names;
      for (const model::Service* s : owners) names += (names.empty() ? "" : ", ") + s->hostname;
      view->warnings.push_back("TCP port " + std::to_string(port) + " is shared by " + names +
                               "; no outbound listener (services are not told apart by address)");
      continue;
    }
    const model::Service* s = owners[0];
    v1::TcpProxy tcp;
    if (const config::Resource* vs_res = push_.virtualServiceFor(*s, proxy, sidecar)) {
      tcp = translateTcpRoutes(*vs_res->as<networking::VirtualService>(),
                               route_context(*vs_res, port));
    }
    if (tcp.cluster().empty() && !tcp.has_weighted_clusters()) {
      tcp.set_cluster(outboundClusterName(port, "", s->hostname));
    }
    view->tcp_ports.emplace_back(port, std::move(tcp));
  }

  // A policy shared by several ports or subsets is reported once.
  std::set<std::string> seen;
  std::erase_if(view->warnings, [&](const std::string& w) { return !seen.insert(w).second; });

  v1::Bootstrap shared;
  for (const auto& rc : proxy.isRouter() ? *view->gateway_route_configs : *view->route_configs) {
    *shared.add_route_configs() = rc;
  }
  std::vector<v1::ClusterLoadAssignment> assignments;
  assignments.reserve(view->clusters->size());
  for (const auto& c : *view->clusters) {
    v1::Cluster* eds = shared.add_clusters();
    *eds = c;
    eds->set_eds(true);
    v1::ClusterLoadAssignment& a = assignments.emplace_back();
    a.set_cluster_name(c.name());
    a.mutable_endpoints()->Swap(eds->mutable_endpoints());
  }
  view->assignments = std::make_shared<const AssignmentSet>(assignments);
  auto bytes = std::make_shared<std::string>();
  {
    // Deterministic so that equal views give equal bytes (maps in key order).
    google::protobuf::io::StringOutputStream sos(bytes.get());
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    shared.SerializeToCodedStream(&cos);
  }
  view->bytes_hash = std::hash<std::string_view>{}(*bytes);
  view->bytes = std::move(bytes);
  return view;
}

const Translator::InboundIndex& Translator::inboundIndex() {
  if (inbound_index_) return *inbound_index_;
  inbound_index_ = std::make_unique<InboundIndex>();
  const model::ServiceRegistry& registry = push_.registry();
  for (const model::Service* s : registry.services()) {
    for (const model::Endpoint& e : registry.endpoints(*s)) {
      (*inbound_index_)[e.address].emplace_back(s, &e);
    }
  }
  return *inbound_index_;
}

void Translator::addInbound(const ProxyIdentity& proxy, v1::Bootstrap* out) {
  if (proxy.ip.empty()) return;
  const InboundIndex& index = inboundIndex();
  auto own = index.find(proxy.ip);
  if (own == index.end()) return;
  // On a shared address (workloads on one loopback) the name tells whose endpoint it is: when
  // some endpoint at the proxy's IP names the proxy's pod (from its id) or workload, only those
  // count.
  const std::string pod = podName(proxy);
  auto names_proxy = [&](const model::Endpoint& e) {
    return !e.workload_name.empty() &&
           (e.workload_name == pod || e.workload_name == proxy.workload_name);
  };
  bool by_name = false;
  for (const auto& [s, endpoint] : own->second) by_name = by_name || names_proxy(*endpoint);
  std::set<uint32_t> seen;
  for (const auto& [s, endpoint] : own->second) {
    const model::Endpoint& e = *endpoint;
    if (by_name && !names_proxy(e)) continue;
    for (const model::ServicePort& sp : s->ports) {
      uint32_t target = e.portFor(sp);
      if (!seen.insert(target).second) continue;
      std::string name = inboundClusterName(target);
      v1::Cluster* c = out->add_clusters();
      c->set_name(name);
      c->set_type(v1::Cluster::STATIC);
      c->mutable_service()->set_host(s->hostname);
      c->mutable_service()->set_name(s->name);
      c->mutable_service()->set_namespace_(s->namespace_name);
      // The app speaks HTTP/2 on ports declared http2, grpc or grpc-web (as Istio's inbound).
      if (sp.protocol == model::Protocol::kHttp2 || sp.protocol == model::Protocol::kGrpc) {
        c->set_http2(true);
      }
      v1::Endpoint* ep = c->add_endpoints();
      ep->set_address(options_.app_address);
      auto app = proxy.app_ports.find(target);
      ep->set_port(app != proxy.app_ports.end() ? app->second : target);

      v1::Listener* l = out->add_listeners();
      l->set_name("virtualInbound_" + std::to_string(target));
      l->set_address(options_.inbound_address(proxy, target));
      l->set_direction(v1::INBOUND);
      if (!model::isHttp(sp.protocol)) {
        l->mutable_tcp_proxy()->set_cluster(name);
        continue;
      }
      l->mutable_http()->set_route_config_name(name);
      // A port of unknown protocol is sniffed, as Istio's inbound listeners do: HTTP/1.1 to the
      // route below, anything else relayed as TCP to the same inbound cluster.
      if (sp.protocol == model::Protocol::kUnknown) l->mutable_tcp_proxy()->set_cluster(name);

      v1::RouteConfiguration* rc = out->add_route_configs();
      rc->set_name(name);
      v1::VirtualHost* vh = rc->add_virtual_hosts();
      vh->set_name("inbound|http|" + std::to_string(target));
      vh->add_domains("*");
      v1::Route* r = vh->add_routes();
      r->set_name("default");
      r->mutable_match()->set_prefix("/");
      r->mutable_route()->set_cluster(name);
    }
  }
}

void Translator::addNode(const ProxyIdentity& proxy, v1::Bootstrap* out) {
  v1::Node* node = out->mutable_node();
  node->set_id(proxy.id);
  node->set_workload_name(proxy.workload_name);
  node->set_namespace_(proxy.namespace_name);
  node->mutable_labels()->insert(proxy.labels.begin(), proxy.labels.end());
  node->set_service_account(proxy.service_account);
}

void Translator::addOutboundListeners(const ProxyIdentity& proxy, const OutboundView& view,
                                      v1::Bootstrap* out) {
  // Outbound listeners: where the proxy asks (its interception mode is NONE), else the default.
  // Per proxy, hence not in the shared view.
  auto outbound_address = [&](uint32_t port) {
    const std::string& bind = proxy.outbound_bind;
    if (bind.empty()) return options_.outbound_address(port);
    size_t colon = bind.rfind(':');
    bool has_port = colon != std::string::npos && bind.find(']', colon) == std::string::npos &&
                    (bind.front() == '[' || bind.find(':') == colon);
    return has_port ? bind : hostPort(bind, port);
  };
  if (proxy.isRouter()) {
    // A gateway: its servers' listeners only; no sidecar listeners (and no inbound).
    for (uint32_t port : view.gateway_ports) {
      v1::Listener* l = out->add_listeners();
      l->set_name("0.0.0.0_" + std::to_string(port));
      l->set_address(outbound_address(port));
      l->set_direction(v1::OUTBOUND);
      l->mutable_http()->set_route_config_name("http." + std::to_string(port));
    }
    return;
  }
  for (uint32_t port : view.http_ports) {
    v1::Listener* l = out->add_listeners();
    l->set_name("0.0.0.0_" + std::to_string(port));
    l->set_address(outbound_address(port));
    l->set_direction(v1::OUTBOUND);
    l->mutable_http()->set_route_config_name(std::to_string(port));
  }
  for (const auto& [port, tcp] : view.tcp_ports) {
    v1::Listener* l = out->add_listeners();
    l->set_name("0.0.0.0_" + std::to_string(port));
    l->set_address(outbound_address(port));
    l->set_direction(v1::OUTBOUND);
    *l->mutable_tcp_proxy() = tcp;
  }
}

Translation Translator::translate(const ProxyIdentity& proxy) {
  Translation out;
  addNode(proxy, &out.bootstrap);
  std::shared_ptr<const OutboundView> view = outboundView(proxy);
  std::map<std::string, v1::ClusterLoadAssignment> assignments;
  for (auto& a : AssignmentSet::parse(*view->assignments->all())) {
    assignments[a.cluster_name()] = std::move(a);
  }
  for (const auto& c : *view->clusters) {
    v1::Cluster* out_c = out.bootstrap.add_clusters();
    *out_c = c;
    *out_c->mutable_endpoints() = assignments[c.name()].endpoints();
  }
  for (const auto& rc : proxy.isRouter() ? *view->gateway_route_configs : *view->route_configs) {
    *out.bootstrap.add_route_configs() = rc;
  }
  addOutboundListeners(proxy, *view, &out.bootstrap);
  out.warnings = view->warnings;
  if (!proxy.isRouter()) addInbound(proxy, &out.bootstrap);
  return out;
}

SplitTranslation Translator::translateSplit(const ProxyIdentity& proxy) {
  SplitTranslation out;
  std::shared_ptr<const OutboundView> view = outboundView(proxy);
  out.shared = view->bytes;
  out.shared_hash = view->bytes_hash;
  out.assignments = view->assignments;
  addNode(proxy, &out.own);
  addOutboundListeners(proxy, *view, &out.own);
  if (!proxy.isRouter()) addInbound(proxy, &out.own);
  out.warnings = view->warnings;
  return out;
}

}  // namespace mesh::pilot::translate
