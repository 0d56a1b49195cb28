#include "istioctl/proxy_commands.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <vector>

#include "core/net/address.h"
#include "core/proxy_id.h"
#include "istioctl/http_get.h"
#include "proxy/v1/config.pb.h"

namespace mesh::istioctl {
namespace {

namespace pb = google::protobuf;
namespace v1 = mesh::proxy::v1;

// Prints rows as left-aligned columns separated by two spaces or more, as istioctl does.
void printTable(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (r.size() > width.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    out << line << "\n";
  }
}

StatusOr<pb::Struct> parseJsonObject(const std::string& json, const std::string& what) {
  pb::Struct s;
  pb::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  auto st = pb::util::JsonStringToMessage(json, &s, o);
  if (!st.ok()) return invalidArgument(what + " is not the JSON expected: " + st.ToString());
  return s;
}

std::string field(const pb::Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) return "";
  if (it->second.has_string_value()) return it->second.string_value();
  if (it->second.has_number_value())
    return std::to_string(static_cast<int64_t>(it->second.number_value()));
  return "";
}

StatusOr<std::string> fetch(const std::string& address, const std::string& path) {
  auto r = httpGet(address, path);
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return unavailable("GET " + address + path + ": status " + std::to_string(r->status) + ": " +
                       r->body);
  }
  return r->body;
}

// pilot's syncz as a list of proxies.
StatusOr<std::vector<pb::Struct>> syncz(const std::string& pilot) {
  auto body = fetch(pilot, "/debug/syncz");
  if (!body.ok()) return body.status();
  auto s = parseJsonObject("{\"proxies\":" + *body + "}", "pilot's /debug/syncz");
  if (!s.ok()) return s.status();
  std::vector<pb::Struct> out;
  for (const auto& v : s->fields().at("proxies").list_value().values()) {
    out.push_back(v.struct_value());
  }
  return out;
}

bool looksLikeAddress(const std::string& s) {
  auto hp = net::parseHostPort(s);
  return hp.ok() && hp->port != 0;
}

// The admin address of `proxy`: itself if it is host:port, else found in pilot's syncz.
StatusOr<std::string> adminAddressOf(const std::string& proxy, const std::string& pilot) {
  if (looksLikeAddress(proxy)) return proxy;
  auto proxies = syncz(pilot);
  if (!proxies.ok()) return proxies.status();
  std::vector<const pb::Struct*> hits;
  for (const auto& p : *proxies) {
    const std::string id = field(p, "proxy"), workload = field(p, "workload"),
                      ns = field(p, "namespace");
    // Also the pod name inside an Istio id: "sidecar~<ip>~<pod>.<ns>~...".
    const bool pod = podNameFromProxyId(id, ns) == proxy;
    if (id == proxy || workload == proxy || workload + "." + ns == proxy || pod) {
      hits.push_back(&p);
    }
  }
  if (hits.empty()) return notFound("no proxy '" + proxy + "' is connected to pilot at " + pilot);
  if (hits.size() > 1) {
    std::string ids;
    for (const auto* h : hits) ids += "\n  " + field(*h, "proxy");
    return invalidArgument("'" + proxy + "' names " + std::to_string(hits.size()) +
                           " proxies; use one of their ids:" + ids);
  }
  std::string admin = field(*hits[0], "admin_address");
  if (admin.empty()) return notFound("proxy '" + proxy + "' did not tell pilot its admin address");
  return admin;
}

StatusOr<v1::Bootstrap> runningConfig(const std::string& admin) {
  auto body = fetch(admin, "/config_dump");
  if (!body.ok()) return body.status();
  auto dump = parseJsonObject(*body, "the proxy's /config_dump");
  if (!dump.ok()) return dump.status();
  auto configs = dump->fields().find("configs");
  if (configs == dump->fields().end() || configs->second.list_value().values_size() == 0) {
    return invalidArgument("the proxy's /config_dump has no configs");
  }
  const pb::Struct& first = configs->second.list_value().values(0).struct_value();
  auto b = first.fields().find("bootstrap");
  if (b == first.fields().end())
    return invalidArgument("the proxy's /config_dump has no bootstrap");
  std::string json;
  (void)pb::util::MessageToJsonString(b->second, &json);
  v1::Bootstrap out;
  pb::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  auto st = pb::util::JsonStringToMessage(json, &out, o);
  if (!st.ok()) return invalidArgument("the proxy's config does not parse: " + st.ToString());
  return out;
}

std::string weighted(const v1::WeightedClusters& w) {
  std::string out;
  for (const auto& c : w.clusters()) {
    if (!out.empty()) out += ", ";
    out += c.name() + " " + std::to_string(c.weight()) + "%";
  }
  return out;
}

std::string matchText(const v1::RouteMatch& m) {
  std::string out;
  if (!m.prefix().empty()) out = m.prefix() + "*";
  if (!m.path().empty()) out = m.path();
  if (!m.regex().empty()) out = "~" + m.regex();
  if (out.empty()) out = "/*";
  for (const auto& h : m.headers()) out += " [" + h.name() + "]";
  if (!m.method().exact().empty()) out += " " + m.method().exact();
  return out;
}

std::string routeDestination(const v1::Route& r) {
  if (r.has_redirect()) return "redirect";
  if (r.has_direct_response()) return "direct " + std::to_string(r.direct_response().status());
  if (r.route().has_weighted_clusters()) return weighted(r.route().weighted_clusters());
  return r.route().cluster();
}

std::string tcpDestination(const v1::TcpProxy& t) {
  if (t.sni_routes_size() > 0) return "SNI routes (" + std::to_string(t.sni_routes_size()) + ")";
  if (t.has_weighted_clusters()) return weighted(t.weighted_clusters());
  return t.cluster();
}

std::string printJson(const pb::Message& m) {
  std::string json;
  pb::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = false;
  (void)pb::util::MessageToJsonString(m, &json, o);
  return json;
}

// Bound addresses by listener name, from /listeners.
std::map<std::string, std::string> boundAddresses(const std::string& admin) {
  std::map<std::string, std::string> out;
  auto body = fetch(admin, "/listeners?format=json");
  if (!body.ok()) return out;
  auto s = parseJsonObject(*body, "/listeners");
  if (!s.ok()) return out;
  auto it = s->fields().find("listener_statuses");
  if (it == s->fields().end()) return out;
  for (const auto& v : it->second.list_value().values()) {
    out[field(v.struct_value(), "name")] = field(v.struct_value(), "local_address");
  }
  return out;
}

int listeners(const std::string& admin, const v1::Bootstrap& b, const ProxyCommandOptions& opts,
              std::ostream& out) {
  if (opts.output == "json") {
    v1::Bootstrap only;
    *only.mutable_listeners() = b.listeners();
    out << printJson(only) << "\n";
    return 0;
  }
  auto bound = boundAddresses(admin);
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "ADDRESS", "DIRECTION", "TYPE", "DESTINATION"}};
  for (const auto& l : b.listeners()) {
    std::string addr = bound.count(l.name()) ? bound[l.name()] : l.address();
    std::string dir = l.direction() == v1::INBOUND ? "inbound" : "outbound";
    if (l.has_http() && l.has_tcp_proxy()) {
      rows.push_back(
          {l.name(), addr, dir, "HTTP+TCP",
           "Route: " + l.http().route_config_name() + "; else " + tcpDestination(l.tcp_proxy())});
    } else if (l.has_http()) {
      rows.push_back({l.name(), addr, dir, "HTTP", "Route: " + l.http().route_config_name()});
    } else {
      rows.push_back({l.name(), addr, dir, "TCP", "Cluster: " + tcpDestination(l.tcp_proxy())});
    }
  }
  printTable(out, rows);
  return 0;
}

int routes(const v1::Bootstrap& b, const ProxyCommandOptions& opts, std::ostream& out) {
  if (opts.output == "json") {
    v1::Bootstrap only;
    *only.mutable_route_configs() = b.route_configs();
    out << printJson(only) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "VHOST NAME", "DOMAINS", "MATCH", "DESTINATION"}};
  for (const auto& rc : b.route_configs()) {
    for (const auto& vh : rc.virtual_hosts()) {
      std::string domains;
      for (const auto& d : vh.domains()) {
        if (domains.size() > 40) {
          domains += ", ...";
          break;
        }
        domains += (domains.empty() ? "" : ", ") + d;
      }
      for (const auto& r : vh.routes()) {
        rows.push_back({rc.name(), vh.name(), domains, matchText(r.match()), routeDestination(r)});
      }
    }
  }
  printTable(out, rows);
  return 0;
}

int clusters(const v1::Bootstrap& b, const ProxyCommandOptions& opts, std::ostream& out) {
  if (opts.output == "json") {
    v1::Bootstrap only;
    *only.mutable_clusters() = b.clusters();
    out << printJson(only) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "ENDPOINTS"}};
  for (const auto& c : b.clusters()) {
    // Istio's names: "direction|port|subset|host".
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
      size_t bar = c.name().find('|', start);
      parts.push_back(c.name().substr(start, bar - start));
      if (bar == std::string::npos) break;
      start = bar + 1;
    }
    std::string type = c.type() == v1::Cluster::STRICT_DNS ? "STRICT_DNS" : "STATIC";
    std::string eps = std::to_string(c.endpoints_size());
    if (parts.size() == 4) {
      rows.push_back({parts[3].empty() ? c.service().host() : parts[3], parts[1],
                      parts[2].empty() ? "-" : parts[2], parts[0], type, eps});
    } else {
      rows.push_back({c.name(), "-", "-", "-", type, eps});
    }
  }
  printTable(out, rows);
  return 0;
}

int endpoints(const std::string& admin, const ProxyCommandOptions& opts, std::ostream& out,
              std::ostream& err) {
  auto body = fetch(admin, "/clusters?format=json");
  if (!body.ok()) {
    err << "error: " << body.status().message() << "\n";
    return 1;
  }
  if (opts.output == "json") {
    out << *body;
    return 0;
  }
  auto s = parseJsonObject(*body, "the proxy's /clusters");
  if (!s.ok()) {
    err << "error: " << s.status().message() << "\n";
    return 1;
  }
  std::vector<std::vector<std::string>> rows = {{"ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"}};
  for (const auto& cv : s->fields().at("cluster_statuses").list_value().values()) {
    const pb::Struct& c = cv.struct_value();
    auto hosts = c.fields().find("host_statuses");
    if (hosts == c.fields().end()) continue;
    for (const auto& hv : hosts->second.list_value().values()) {
      const pb::Struct& h = hv.struct_value();
      const pb::Struct& sa =
          h.fields().at("address").struct_value().fields().at("socket_address").struct_value();
      const pb::Struct& health = h.fields().at("health_status").struct_value();
      bool ejected = health.fields().count("failed_outlier_check") > 0 &&
                     health.fields().at("failed_outlier_check").bool_value();
      rows.push_back(
          {field(sa, "address") + ":" + field(sa, "port_value"), field(health, "eds_health_status"),
           ejected ? "FAILED (" + field(health, "outlier_reason") + ")" : "OK", field(c, "name")});
    }
  }
  printTable(out, rows);
  return 0;
}

}  // namespace

int runProxyStatus(const ProxyCommandOptions& opts, std::ostream& out, std::ostream& err) {
  auto proxies = syncz(opts.pilot);
  if (!proxies.ok()) {
    err << "error: " << proxies.status().message() << "\n";
    return 1;
  }
  if (opts.output == "json") {
    pb::ListValue list;
    for (const auto& p : *proxies) *list.add_values()->mutable_struct_value() = p;
    out << printJson(list) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "NAMESPACE", "STATUS", "SENT", "ACKED", "PILOT", "LAST NACK"}};
  for (const auto& p : *proxies) {
    std::string nack;
    auto it = p.fields().find("last_nack");
    if (it != p.fields().end() && it->second.has_struct_value()) {
      nack = field(it->second.struct_value(), "version") + ": " +
             field(it->second.struct_value(), "message");
      if (nack.size() > 60) nack = nack.substr(0, 57) + "...";
    }
    rows.push_back({field(p, "proxy"), field(p, "namespace"), field(p, "status"),
                    field(p, "sent_version"), field(p, "acked_version"), opts.pilot, nack});
  }
  printTable(out, rows);
  return 0;
}

int runProxyConfig(const std::string& kind, const std::string& proxy,
                   const ProxyCommandOptions& opts, std::ostream& out, std::ostream& err) {
  static const std::vector<std::string> kKinds = {"listeners", "routes", "clusters", "endpoints",
                                                  "all"};
  std::string k = kind;
  if (!k.empty() && k.back() != 's' && k != "all") k += "s";
  if (std::find(kKinds.begin(), kKinds.end(), k) == kKinds.end()) {
    err << "error: unknown config type '" << kind
        << "'; expected listeners, routes, clusters, endpoints or all\n";
    return 2;
  }
  if (opts.output != "short" && opts.output != "json") {
    err << "error: unknown output format '" << opts.output << "'; expected short or json\n";
    return 2;
  }
  auto admin = adminAddressOf(proxy, opts.pilot);
  if (!admin.ok()) {
    err << "error: " << admin.status().message() << "\n";
    return 1;
  }
  if (k == "endpoints") return endpoints(*admin, opts, out, err);
  auto b = runningConfig(*admin);
  if (!b.ok()) {
    err << "error: " << b.status().message() << "\n";
    return 1;
  }
  if (k == "listeners") return listeners(*admin, *b, opts, out);
  if (k == "routes") return routes(*b, opts, out);
  if (k == "clusters") return clusters(*b, opts, out);
  int rc = listeners(*admin, *b, opts, out);
  out << "\n";
  rc |= routes(*b, opts, out);
  out << "\n";
  rc |= clusters(*b, opts, out);
  out << "\n";
  rc |= endpoints(*admin, opts, out, err);
  return rc;
}

}  // namespace mesh::istioctl
