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

// Istio's label on workloads that have a sidecar (and so take mTLS): auto mTLS uses it.
constexpr const char* kTlsModeLabel = "security.istio.io/tlsMode";

// Istio's workload certificate files in a proxy's cert dir (as /etc/certs).
std::string certFile(const ProxyIdentity& proxy, const char* name) {
  return proxy.cert_dir + "/" + name;
}

// What mTLS to a cluster learns from its endpoints (those matching its subset's selector, healthy
// or not): whether every one is a mesh workload (label security.istio.io/tlsMode: istio, as
// Istio's sidecar injector sets) and their SPIFFE ids.
struct EndpointIdentity {
  bool any = false;
  bool all_in_mesh = true;
  std::set<std::string> sans;
  // Equal keys: the same TLS settings for the cluster.
  std::string key() const {
    std::string k = any && all_in_mesh ? "mesh" : "plain";
    for (const auto& san : sans) k += "|" + san;
    return k;
  }
};

EndpointIdentity endpointIdentity(const model::Service& s,
                                  const std::map<std::string, std::string>& selector,
                                  const std::vector<model::Endpoint>& endpoints,
                                  const std::string& trust_domain) {
  EndpointIdentity out;
  for (const model::Endpoint& e : endpoints) {
    if (!model::labelsMatch(selector, e.labels)) continue;
    out.any = true;
    auto mode = e.labels.find(kTlsModeLabel);
    out.all_in_mesh = out.all_in_mesh && mode != e.labels.end() && mode->second == "istio";
    out.sans.insert("spiffe://" + trust_domain + "/ns/" +
                    (e.namespace_name.empty() ? s.namespace_name : e.namespace_name) + "/sa/" +
                    (e.service_account.empty() ? "default" : e.service_account));
  }
  return out;
}

// mTLS to the cluster `c` of service `s`: with DestinationRule tls ISTIO_MUTUAL, or, without a
// tls setting, automatically when every endpoint is a mesh workload, as Istio's auto mTLS. The
// client certificate is the proxy's own (cert_dir); the expected SANs are the endpoints' SPIFFE
// ids, or the rule's subjectAltNames. Returns the endpoints' identity key when the TLS settings
// depend on the endpoints (an endpoint-only change must then rebuild them), else "".
std::string applyMtls(const EffectivePolicy& policy, const model::Service& s,
                      const EndpointIdentity& identity, const ProxyIdentity& proxy,
                      const std::string& where, v1::Cluster* c,
                      std::vector<std::string>* warnings) {
  using Tls = networking::ClientTLSSettings;
  const bool istio_mutual = policy.tls != nullptr && policy.tls->mode() == Tls::ISTIO_MUTUAL;
  if (policy.tls != nullptr && !istio_mutual) return "";  // DISABLE, or SIMPLE/MUTUAL (warned)
  const bool rule_sans = istio_mutual && !policy.tls->subject_alt_names().empty();
  const std::string key = rule_sans || proxy.cert_dir.empty() ? "" : identity.key();
  if (!istio_mutual && (!identity.any || !identity.all_in_mesh || s.mesh_external)) return key;
  if (proxy.cert_dir.empty()) {
    if (istio_mutual) {
      warnings->push_back(where +
                          ": tls ISTIO_MUTUAL needs the proxy's workload certificates "
                          "(istio-proxy --cert-dir); plaintext is used");
    }
    return "";
  }
  v1::UpstreamTls* tls = c->mutable_tls();
  tls->set_certificate_chain(certFile(proxy, "cert-chain.pem"));
  tls->set_private_key(certFile(proxy, "key.pem"));
  tls->set_trusted_ca(certFile(proxy, "root-cert.pem"));
  if (rule_sans) {
    for (const std::string& san : policy.tls->subject_alt_names()) tls->add_subject_alt_names(san);
  } else {
    for (const std::string& san : identity.sans) tls->add_subject_alt_names(san);
  }
  // Istio's SNI for mesh mTLS names the cluster: "outbound_.9080_.v1_.reviews.default.svc...".
  std::string sni = c->name();
  for (size_t pos = 0; (pos = sni.find('|', pos)) != std::string::npos; pos += 2) {
    sni.replace(pos, 1, "_.");
  }
  tls->set_sni(istio_mutual && !policy.tls->sni().empty() ? policy.tls->sni() : sni);
  return key;
}

// The wildcard address of the proxy's family: a captured IPv6 pod's traffic arrives on "::".
// (Dual-stack pods would need both; the node reports one IP.)
std::string wildcardFor(const ProxyIdentity& proxy) {
  return proxy.ip.find(':') != std::string::npos ? "::" : "0.0.0.0";
}

// Istio's MeshConfig.outboundTrafficPolicy, overridden by the proxy's Sidecar.
bool registryOnly(const config::Resource* sidecar, const PushOptions& options) {
  if (sidecar != nullptr) {
    const auto& sc = *sidecar->as<networking::Sidecar>();
    if (sc.has_outbound_traffic_policy()) {
      return sc.outbound_traffic_policy().mode() ==
             networking::OutboundTrafficPolicy::REGISTRY_ONLY;
    }
  }
  return options.registry_only;
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
  // Captured proxies get catch-all routes and per-VIP listeners; certificates are per proxy.
  if (proxy.captured()) key += "|captured";
  if (!proxy.cert_dir.empty()) key += "|certs=" + proxy.cert_dir;
  if (push_.dependsOnProxyLabels() || proxy.isRouter()) {
    for (const auto& [k, v] : proxy.labels) key += "|" + k + "=" + v;
  }
  auto it = views_.find(key);
  if (it != views_.end()) {
    ++views_reused_;
    return it->second;
  }
  auto inherited = inherited_.find(key);
  if (inherited != inherited_.end() && identitiesChanged(*inherited->second)) {
    inherited_.erase(inherited);  // mTLS settings follow the endpoints: built anew below
    inherited = inherited_.end();
  }
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

const model::Service* Translator::findIndexed(const std::string& namespace_name,
                                              const std::string& host) {
  if (service_index_.empty()) {
    for (const model::Service* s : push_.registry().services()) {
      service_index_.emplace(s->namespace_name + "/" + s->hostname, s);
    }
  }
  auto it = service_index_.find(namespace_name + "/" + host);
  return it == service_index_.end() ? nullptr : it->second;
}

bool Translator::identitiesChanged(const OutboundView& view) {
  for (const ClusterSource& src : *view.sources) {
    if (src.identity_key.empty() ||
        !changed_services_.contains(src.service_namespace + "/" + src.service_name)) {
      continue;
    }
    const model::Service* s = findIndexed(src.service_namespace, src.host);
    if (s == nullptr) return true;
    EndpointIdentity now = endpointIdentity(*s, src.selector, push_.registry().endpoints(*s),
                                            push_.options().trust_domain);
    if (now.key() != src.identity_key) return true;
  }
  return false;
}

std::shared_ptr<const AssignmentSet> Translator::refreshedAssignments(const OutboundView& view) {
  std::vector<v1::ClusterLoadAssignment> replacements;
  std::vector<std::string> ignored;  // the view's warnings are those of the config that built it
  for (const ClusterSource& src : *view.sources) {
    if (!changed_services_.contains(src.service_namespace + "/" + src.service_name)) continue;
    v1::ClusterLoadAssignment& a = replacements.emplace_back();
    a.set_cluster_name(src.cluster);
    const model::Service* s = findIndexed(src.service_namespace, src.host);
    if (s == nullptr) continue;
    const model::ServicePort* sp = s->port(src.port);
    if (sp == nullptr) continue;
    addEndpoints(*s, *sp, src.selector, push_.registry().endpoints(*s), a.mutable_endpoints(),
                 &ignored);
  }
  return std::make_shared<const AssignmentSet>(*view.assignments, replacements);
}

std::shared_ptr<const Translator::OutboundView> Translator::buildOutbound(
    const ProxyIdentity& proxy, const config::Resource* sidecar) {
  auto view = std::make_shared<OutboundView>();
  view->captured = proxy.captured();
  view->registry_only = registryOnly(sidecar, push_.options());
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
      std::string identity_key = applyMtls(
          policy, *s, endpointIdentity(*s, selector, endpoints, push_.options().trust_domain),
          proxy, where, &c, &view->warnings);
      view->sources->push_back({c.name(), s->hostname, s->namespace_name, s->name, sp.number,
                                std::move(selector), std::move(identity_key)});
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
    if (view->captured && !used_domains.contains("*")) {
      // Istio's catch-all for hosts the mesh does not know on this port: "allow_any" to
      // PassthroughCluster, or "block_all" (502) when the mesh is registry-only.
      v1::VirtualHost* vh = rc.add_virtual_hosts();
      vh->set_name(view->registry_only ? "block_all" : "allow_any");
      vh->add_domains("*");
      v1::Route* r = vh->add_routes();
      r->set_name(vh->name());
      r->mutable_match()->set_prefix("/");
      if (view->registry_only) {
        r->mutable_direct_response()->set_status(502);
      } else {
        r->mutable_route()->set_cluster(kPassthroughCluster);
      }
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
  auto tcp_proxy_for = [&](const model::Service* s, uint32_t port) {
    v1::TcpProxy tcp;
    if (const config::Resource* vs_res = push_.virtualServiceFor(*s, proxy, sidecar)) {
      tcp = translateTcpRoutes(*vs_res->as<networking::VirtualService>(),
                               route_context(*vs_res, port));
    }
    if (tcp.cluster().empty() && !tcp.has_weighted_clusters()) {
      tcp.set_cluster(outboundClusterName(port, "", s->hostname));
    }
    return tcp;
  };
  std::vector<OutboundView::TcpPort> vip_ports;
  std::set<std::string> vip_used;
  for (const model::Service* s : services) {
    for (const model::ServicePort& sp : s->ports) {
      if (model::isHttp(sp.protocol) || http_ports.count(sp.number)) continue;
      if (view->captured && !s->addresses.empty()) {
        // Captured traffic keeps its destination: VIP:port tells the service (as Istio's
        // "10.0.0.5_3306" listeners).
        for (const std::string& vip : s->addresses) {
          if (!vip_used.insert(hostPort(vip, sp.number)).second) continue;
          vip_ports.push_back({sp.number, vip, tcp_proxy_for(s, sp.number)});
        }
        continue;
      }
      tcp_services[sp.number].push_back(s);
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
    view->tcp_ports.push_back({port, "", tcp_proxy_for(owners[0], port)});
  }
  for (auto& p : vip_ports) view->tcp_ports.push_back(std::move(p));

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

void Translator::addPeerAuthentication(const ProxyIdentity& proxy, uint32_t port, v1::Listener* l,
                                       std::vector<std::string>* warnings) {
  // mTLS with the workload's certificate, required (STRICT) or next to plaintext (PERMISSIVE,
  // the default); DISABLE or no certificates: plaintext.
  const MtlsMode mode = push_.mtlsModeFor(proxy, port);
  if (mode != MtlsMode::kDisable && !proxy.cert_dir.empty()) {
    v1::DownstreamTls* tls = l->mutable_tls();
    tls->set_certificate_chain(certFile(proxy, "cert-chain.pem"));
    tls->set_private_key(certFile(proxy, "key.pem"));
    tls->set_trusted_ca(certFile(proxy, "root-cert.pem"));
    tls->set_require_client_certificate(true);
    tls->set_permissive(mode == MtlsMode::kPermissive);
  } else if (mode == MtlsMode::kStrict) {
    warnings->push_back("PeerAuthentication STRICT for " + proxy.id +
                        (port != 0 ? " port " + std::to_string(port) : std::string()) +
                        ": the proxy has no workload certificates (istio-proxy --cert-dir); "
                        "plaintext is accepted");
  }
}

void Translator::addInbound(const ProxyIdentity& proxy, v1::Bootstrap* out,
                            std::vector<std::string>* warnings) {
  const bool captured = proxy.captured();
  if (captured) {
    // Istio's virtualInbound: captured inbound connections are handed to the listener of their
    // destination port; other ports pass through to the app from 127.0.0.6, a source the
    // capture rules leave alone (the app's answer is not captured again).
    v1::Listener* vi = out->add_listeners();
    vi->set_name("virtualInbound");
    vi->set_address(hostPort(wildcardFor(proxy), kVirtualInboundPort));
    vi->set_direction(v1::INBOUND);
    vi->set_use_original_dst(true);
    vi->mutable_tcp_proxy()->set_cluster(kInboundPassthroughCluster);
    // Ports without a listener of their own: mTLS only when the workload's mode is STRICT. (Mesh
    // clients reach such ports through PassthroughCluster, in plaintext; under PERMISSIVE a
    // client's own TLS to such a port passes through untouched.)
    if (push_.mtlsModeFor(proxy, 0) == MtlsMode::kStrict) {
      addPeerAuthentication(proxy, 0, vi, warnings);
    }
    v1::Cluster* pass = out->add_clusters();
    pass->set_name(kInboundPassthroughCluster);
    pass->set_type(v1::Cluster::ORIGINAL_DST);
    pass->set_upstream_bind_address("127.0.0.6");
  }
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
      if (captured) l->mutable_bind_to_port()->set_value(false);
      addPeerAuthentication(proxy, target, l, warnings);
      if (!model::isHttp(sp.protocol)) {
        l->mutable_tcp_proxy()->set_cluster(name);
        continue;
      }
      l->mutable_http()->set_route_config_name(name);
      // A port of unknown protocol is sniffed, as Istio's inbound listeners do: HTTP/1.1 to the
      // route below, anything else relayed as TCP to the same inbound cluster.
      if (sp.protocol == model::Protocol::kUnknown) {
        l->mutable_tcp_proxy()->set_cluster(name);
        // Well-known server-first ports (SMTP, MySQL, MongoDB) skip the sniffing: their clients
        // wait for the server, so detection would only add its timeout.
        if (target == 25 || target == 3306 || target == 27017) l->add_server_first_ports(target);
      }

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
  if (view.captured) {
    // Istio's capture layout: the capture rules send every outbound connection to
    // virtualOutbound, which hands it to the listener for its original destination (bound to
    // nothing); what matches none goes to PassthroughCluster (BlackHoleCluster if registry-only).
    v1::Listener* vo = out->add_listeners();
    vo->set_name("virtualOutbound");
    vo->set_address(hostPort(wildcardFor(proxy), kVirtualOutboundPort));
    vo->set_direction(v1::OUTBOUND);
    vo->set_use_original_dst(true);
    vo->mutable_tcp_proxy()->set_cluster(view.registry_only ? kBlackHoleCluster
                                                            : kPassthroughCluster);
    v1::Cluster* pass = out->add_clusters();
    pass->set_name(kPassthroughCluster);
    pass->set_type(v1::Cluster::ORIGINAL_DST);
    out->add_clusters()->set_name(kBlackHoleCluster);  // STATIC, no endpoints
    for (uint32_t port : view.http_ports) {
      v1::Listener* l = out->add_listeners();
      l->set_name("0.0.0.0_" + std::to_string(port));
      l->set_address(hostPort(wildcardFor(proxy), port));
      l->mutable_bind_to_port()->set_value(false);
      l->set_direction(v1::OUTBOUND);
      l->mutable_http()->set_route_config_name(std::to_string(port));
    }
    for (const auto& p : view.tcp_ports) {
      const std::string ip = p.vip.empty() ? wildcardFor(proxy) : p.vip;
      v1::Listener* l = out->add_listeners();
      l->set_name((p.vip.empty() ? std::string("0.0.0.0") : p.vip) + "_" + std::to_string(p.port));
      l->set_address(hostPort(ip, p.port));
      l->mutable_bind_to_port()->set_value(false);
      l->set_direction(v1::OUTBOUND);
      *l->mutable_tcp_proxy() = p.tcp;
    }
    return;
  }
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
  for (const auto& p : view.tcp_ports) {
    v1::Listener* l = out->add_listeners();
    l->set_name("0.0.0.0_" + std::to_string(p.port));
    l->set_address(outbound_address(p.port));
    l->set_direction(v1::OUTBOUND);
    *l->mutable_tcp_proxy() = p.tcp;
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
  if (!proxy.isRouter()) addInbound(proxy, &out.bootstrap, &out.warnings);
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
  out.warnings = view->warnings;
  if (!proxy.isRouter()) addInbound(proxy, &out.own, &out.warnings);
  return out;
}

}  // namespace mesh::pilot::translate
