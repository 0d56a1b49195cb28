#include "config/validation.h"

#include <google/protobuf/duration.pb.h>
#include <re2/re2.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "config/host_name.h"
#include "core/status.h"

namespace mesh::config {
namespace {

using google::protobuf::Duration;
namespace nw = ::istio::networking::v1alpha3;

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }
std::string idx(const std::string& path, int i) { return path + "[" + std::to_string(i) + "]"; }
std::string key(const std::string& path, const std::string& k) { return path + "[" + k + "]"; }

constexpr int64_t kNanosPerMs = 1'000'000;

// Saturates instead of overflowing: Duration allows about 10,000 years, int64 nanoseconds 292.
int64_t toNanos(const Duration& d) {
  constexpr int64_t kMaxSeconds = INT64_MAX / 1'000'000'000 - 1;
  if (d.seconds() > kMaxSeconds) return INT64_MAX;
  if (d.seconds() < -kMaxSeconds) return INT64_MIN;
  return d.seconds() * 1'000'000'000 + static_cast<int64_t>(d.nanos());
}

bool isKnownProtocol(std::string_view p) {
  static const std::set<std::string, std::less<>> kProtocols = {
      "HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "MYSQL", "REDIS", "TCP", "TLS", "UDP"};
  std::string upper(p);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return kProtocols.count(upper) > 0;
}

// Collects the errors and warnings of one resource, each at the line of its field.
class Checker {
 public:
  Checker(const Resource& r, ValidationReport* out) : r_(r), out_(*out) {}

  void error(const std::string& path, std::string message) {
    out_.errors.add(r_.file, r_.lineOf(path), path, std::move(message));
  }
  void warn(const std::string& path, std::string message) {
    out_.warnings.push_back({r_.file, r_.lineOf(path), path, std::move(message)});
  }

  // --- shared field checks ----------------------------------------------------------------------

  void metadata() {
    if (r_.name.empty()) {
      error("metadata.name", "required");
    } else if (!isDns1123Subdomain(r_.name)) {
      error("metadata.name", "invalid name " + quoted(r_.name) +
                                 ": lower case letters, digits, '-' and '.' only, starting and "
                                 "ending with a letter or digit");
    }
    if (r_.namespace_set && !isDns1123Label(r_.namespace_name)) {
      error("metadata.namespace", "invalid namespace " + quoted(r_.namespace_name));
    }
    labels("metadata.labels", r_.labels);
  }

  template <typename Map>
  void labels(const std::string& path, const Map& m) {
    for (const auto& [k, v] : m) {
      if (!isLabelKey(k)) error(key(path, k), "invalid label key " + quoted(k));
      if (!isLabelValue(v)) error(key(path, k), "invalid label value " + quoted(v));
    }
  }

  // Durations Istio requires to be at least 1ms and whole milliseconds.
  void duration(const std::string& path, const Duration& d) {
    const int64_t ns = toNanos(d);
    if (ns < kNanosPerMs) {
      error(path, "must be at least 1ms");
    } else if (ns % kNanosPerMs != 0) {
      error(path, "only millisecond precision is supported");
    }
  }

  void percent(const std::string& path, double v) {
    if (std::isnan(v) || v < 0 || v > 100) error(path, "must be between 0 and 100");
  }

  void port(const std::string& path, uint64_t number) {
    if (number == 0 || number > 65535) error(path, "must be between 1 and 65535");
  }

  void regex(const std::string& path, const std::string& pattern) {
    RE2::Options opts;
    opts.set_log_errors(false);
    RE2 re(pattern, opts);
    if (!re.ok()) error(path, "invalid regex " + quoted(pattern) + ": " + re.error());
  }

  void exportTo(const std::string& path, const google::protobuf::RepeatedPtrField<std::string>& e) {
    std::set<std::string> seen;
    for (int i = 0; i < e.size(); ++i) {
      const std::string& v = e[i];
      const std::string p = idx(path, i);
      if (v != "." && v != "*" && v != "~" && !isDns1123Label(v)) {
        error(p, "invalid value " + quoted(v) + "; expected '.', '*', '~' or a namespace");
      }
      if (!seen.insert(v).second) error(p, "duplicate " + quoted(v));
    }
    if (e.size() > 1 && (seen.count("*") > 0 || seen.count("~") > 0)) {
      error(path, "'*' and '~' must be the only entry");
    }
  }

  // A destination host: a service name, FQDN or "*.suffix"; not "*" alone.
  void destination(const std::string& path, const nw::Destination& d) {
    if (d.host().empty()) {
      error(path + ".host", "required");
    } else if (d.host() == "*") {
      error(path + ".host", "'*' is not a valid destination host");
    } else if (!isWildcardDnsName(d.host())) {
      error(path + ".host", "invalid host " + quoted(d.host()));
    }
    if (!d.subset().empty() && !isDns1123Label(d.subset())) {
      error(path + ".subset", "invalid subset name " + quoted(d.subset()));
    }
    if (d.has_port()) port(path + ".port.number", d.port().number());
  }

  void stringMatch(const std::string& path, const nw::StringMatch& m, bool allow_empty_prefix) {
    switch (m.match_type_case()) {
      case nw::StringMatch::kExact:
        break;
      case nw::StringMatch::kPrefix:
        if (m.prefix().empty() && !allow_empty_prefix) error(path + ".prefix", "must not be empty");
        break;
      case nw::StringMatch::kRegex:
        if (m.regex().empty()) {
          error(path + ".regex", "must not be empty");
        } else {
          regex(path + ".regex", m.regex());
        }
        break;
      case nw::StringMatch::MATCH_TYPE_NOT_SET:
        error(path, "one of exact, prefix or regex is required");
        break;
    }
  }

  template <typename Map>
  void headerMatches(const std::string& path, const Map& m) {
    for (const auto& [name, match] : m) {
      const std::string p = key(path, name);
      if (!isHeaderName(name)) error(p, "invalid header name " + quoted(name));
      // {} tests that the header is present; an empty prefix is the same test.
      if (match.match_type_case() != nw::StringMatch::MATCH_TYPE_NOT_SET) {
        stringMatch(p, match, /*allow_empty_prefix=*/true);
      }
    }
  }

  void headerOperations(const std::string& path, const nw::Headers::HeaderOperations& ops) {
    for (const auto* m : {&ops.set(), &ops.add()}) {
      const std::string p = path + (m == &ops.set() ? ".set" : ".add");
      for (const auto& [name, value] : *m) {
        if (!isHeaderName(name)) error(key(p, name), "invalid header name " + quoted(name));
      }
    }
    for (int i = 0; i < ops.remove_size(); ++i) {
      if (!isHeaderName(ops.remove(i))) {
        error(idx(path + ".remove", i), "invalid header name " + quoted(ops.remove(i)));
      }
    }
  }

  void headers(const std::string& path, const nw::Headers& h) {
    if (h.has_request()) headerOperations(path + ".request", h.request());
    if (h.has_response()) headerOperations(path + ".response", h.response());
  }

  // Weights of a destination list: each 0..100 and, with several destinations, a total of 100.
  template <typename Dest>
  void weights(const std::string& path, const google::protobuf::RepeatedPtrField<Dest>& route) {
    int64_t total = 0;
    for (int i = 0; i < route.size(); ++i) {
      const int32_t w = route[i].weight();
      if (w < 0 || w > 100) error(idx(path, i) + ".weight", "must be between 0 and 100");
      total += w;
    }
    if (route.size() > 1 && total != 100) {
      error(path, "weights of the destinations must add up to 100, got " + std::to_string(total));
    }
  }

  // --- VirtualService ------------------------------------------------------------------------

  void virtualService(const nw::VirtualService& vs) {
    const bool delegate = vs.hosts().empty();
    if (delegate) {
      // Istio reads a VirtualService without hosts as a delegate, reachable only through
      // another VirtualService's http[].delegate.
      warn("spec.hosts", "no hosts: usable only as a delegate of another VirtualService");
      if (!vs.gateways().empty())
        error("spec.gateways", "a delegate VirtualService has no gateways");
      if (!vs.tcp().empty()) error("spec.tcp", "a delegate VirtualService has no tcp routes");
      if (!vs.tls().empty()) error("spec.tls", "a delegate VirtualService has no tls routes");
    }
    bool mesh_bound = vs.gateways().empty();
    for (int i = 0; i < vs.gateways_size(); ++i) {
      const std::string& g = vs.gateways(i);
      const std::string p = idx("spec.gateways", i);
      if (g == "mesh") {
        mesh_bound = true;
        continue;
      }
      const size_t slash = g.find('/');
      const std::string ns = slash == std::string::npos ? "" : g.substr(0, slash);
      const std::string name = slash == std::string::npos ? g : g.substr(slash + 1);
      if ((slash != std::string::npos && !isDns1123Label(ns)) || !isDns1123Subdomain(name)) {
        error(p, "invalid gateway " + quoted(g) + "; expected 'name', 'namespace/name' or 'mesh'");
      }
    }
    std::set<std::string> seen;
    for (int i = 0; i < vs.hosts_size(); ++i) {
      const std::string& h = vs.hosts(i);
      const std::string p = idx("spec.hosts", i);
      if (h == "*" && mesh_bound) {
        error(p, "'*' is not allowed for a VirtualService bound to the mesh gateway");
      } else if (isIpAddress(h)) {
        if (mesh_bound) error(p, "IP addresses are allowed only for gateways, not for 'mesh'");
      } else if (!isWildcardDnsName(h)) {
        error(p, "invalid host " + quoted(h));
      }
      if (!seen.insert(h).second) error(p, "duplicate host " + quoted(h));
    }
    if (vs.http().empty() && vs.tcp().empty() && vs.tls().empty()) {
      error("spec", "at least one of http, tcp or tls routes is required");
    }
    for (int i = 0; i < vs.http_size(); ++i) httpRoute(idx("spec.http", i), vs.http(i));
    for (int i = 0; i < vs.tcp_size(); ++i) {
      const std::string p = idx("spec.tcp", i);
      const nw::TCPRoute& t = vs.tcp(i);
      for (int j = 0; j < t.match_size(); ++j) l4Match(idx(p + ".match", j), t.match(j));
      routeDestinations(p + ".route", t.route());
    }
    for (int i = 0; i < vs.tls_size(); ++i) {
      const std::string p = idx("spec.tls", i);
      const nw::TLSRoute& t = vs.tls(i);
      if (t.match().empty()) error(p + ".match", "a TLS route needs at least one match");
      for (int j = 0; j < t.match_size(); ++j) tlsMatch(idx(p + ".match", j), t.match(j), vs);
      routeDestinations(p + ".route", t.route());
    }
    exportTo("spec.exportTo", vs.export_to());
  }

  template <typename Dest>
  void routeDestinations(const std::string& path,
                         const google::protobuf::RepeatedPtrField<Dest>& route) {
    if (route.empty()) {
      error(path, "at least one destination is required");
      return;
    }
    for (int i = 0; i < route.size(); ++i) {
      const std::string p = idx(path, i);
      if (!route[i].has_destination()) {
        error(p + ".destination", "required");
      } else {
        destination(p + ".destination", route[i].destination());
      }
    }
    weights(path, route);
  }

  // The attributes TCP and TLS matches share.
  template <typename Match>
  void l4Match(const std::string& path, const Match& m) {
    for (int i = 0; i < m.destination_subnets_size(); ++i) {
      if (!isIpOrCidr(m.destination_subnets(i))) {
        error(idx(path + ".destinationSubnets", i),
              "invalid IP address or CIDR " + quoted(m.destination_subnets(i)));
      }
    }
    if (m.port() != 0) port(path + ".port", m.port());
    labels(path + ".sourceLabels", m.source_labels());
  }

  void tlsMatch(const std::string& path, const nw::TLSMatchAttributes& m,
                const nw::VirtualService& vs) {
    if (m.sni_hosts().empty()) error(path + ".sniHosts", "at least one SNI host is required");
    for (int i = 0; i < m.sni_hosts_size(); ++i) {
      const std::string& sni = m.sni_hosts(i);
      const std::string p = idx(path + ".sniHosts", i);
      if (!isWildcardDnsName(sni)) {
        error(p, "invalid SNI host " + quoted(sni));
        continue;
      }
      bool covered = false;
      for (const std::string& h : vs.hosts()) {
        if (h == "*" || h == sni ||
            (h.substr(0, 2) == "*." && sni.size() > h.size() - 1 &&
             sni.compare(sni.size() - (h.size() - 1), h.size() - 1, h, 1) == 0)) {
          covered = true;
        }
      }
      if (!covered) error(p, "SNI host " + quoted(sni) + " is not within the VirtualService hosts");
    }
    l4Match(path, m);
  }

  void httpMatch(const std::string& path, const nw::HTTPMatchRequest& m) {
    if (m.has_uri()) stringMatch(path + ".uri", m.uri(), /*allow_empty_prefix=*/false);
    if (m.has_scheme()) stringMatch(path + ".scheme", m.scheme(), false);
    if (m.has_method()) stringMatch(path + ".method", m.method(), false);
    if (m.has_authority()) stringMatch(path + ".authority", m.authority(), false);
    headerMatches(path + ".headers", m.headers());
    headerMatches(path + ".withoutHeaders", m.without_headers());
    for (const auto& [name, match] : m.query_params()) {
      if (match.match_type_case() != nw::StringMatch::MATCH_TYPE_NOT_SET) {
        stringMatch(key(path + ".queryParams", name), match, /*allow_empty_prefix=*/true);
      }
    }
    if (m.port() != 0) port(path + ".port", m.port());
    labels(path + ".sourceLabels", m.source_labels());
    if (m.ignore_uri_case() && m.uri().has_regex()) {
      warn(path + ".ignoreUriCase", "has no effect on a regex uri match");
    }
  }

  void httpRoute(const std::string& path, const nw::HTTPRoute& h) {
    for (int i = 0; i < h.match_size(); ++i) httpMatch(idx(path + ".match", i), h.match(i));

    const int actions = (h.route().empty() ? 0 : 1) + (h.has_redirect() ? 1 : 0) +
                        (h.has_direct_response() ? 1 : 0) + (h.has_delegate() ? 1 : 0);
    if (actions == 0) {
      error(path, "one of route, redirect, directResponse or delegate is required");
    } else if (actions > 1) {
      error(path, "route, redirect, directResponse and delegate are mutually exclusive");
    }
    if (!h.route().empty()) {
      for (int i = 0; i < h.route_size(); ++i) {
        const std::string p = idx(path + ".route", i);
        const nw::HTTPRouteDestination& d = h.route(i);
        if (!d.has_destination()) {
          error(p + ".destination", "required");
        } else {
          destination(p + ".destination", d.destination());
        }
        if (d.has_headers()) headers(p + ".headers", d.headers());
      }
      weights(path + ".route", h.route());
    }
    if (h.has_redirect()) redirect(path + ".redirect", h.redirect());
    if (h.has_redirect() && h.has_rewrite()) {
      error(path + ".rewrite", "rewrite and redirect are mutually exclusive");
    }
    if (h.has_direct_response()) {
      const uint32_t s = h.direct_response().status();
      if (s < 200 || s > 599) error(path + ".directResponse.status", "must be between 200 and 599");
    }
    if (h.has_delegate()) {
      const nw::Delegate& d = h.delegate();
      if (d.name().empty()) error(path + ".delegate.name", "required");
      if (!d.namespace_().empty() && !isDns1123Label(d.namespace_())) {
        error(path + ".delegate.namespace", "invalid namespace " + quoted(d.namespace_()));
      }
    }
    if (h.has_rewrite()) {
      const nw::HTTPRewrite& rw = h.rewrite();
      if (!rw.uri().empty() && rw.has_uri_regex_rewrite()) {
        error(path + ".rewrite", "uri and uriRegexRewrite are mutually exclusive");
      }
      if (rw.has_uri_regex_rewrite()) {
        if (rw.uri_regex_rewrite().match().empty()) {
          error(path + ".rewrite.uriRegexRewrite.match", "required");
        } else {
          regex(path + ".rewrite.uriRegexRewrite.match", rw.uri_regex_rewrite().match());
        }
      }
      if (rw.uri().empty() && rw.authority().empty() && !rw.has_uri_regex_rewrite()) {
        error(path + ".rewrite", "one of uri, authority or uriRegexRewrite is required");
      }
    }
    if (h.has_timeout() && toNanos(h.timeout()) != 0) duration(path + ".timeout", h.timeout());
    if (h.has_retries()) retries(path + ".retries", h.retries());
    if (h.has_fault()) fault(path + ".fault", h.fault());
    if (h.has_mirror()) destination(path + ".mirror", h.mirror());
    if (h.has_mirror() && !h.mirrors().empty()) {
      error(path + ".mirrors", "mirror and mirrors are mutually exclusive");
    }
    for (int i = 0; i < h.mirrors_size(); ++i) {
      const std::string p = idx(path + ".mirrors", i);
      destination(p + ".destination", h.mirrors(i).destination());
      if (h.mirrors(i).has_percentage()) {
        percent(p + ".percentage.value", h.mirrors(i).percentage().value());
      }
    }
    if (h.has_mirror_percentage()) {
      percent(path + ".mirrorPercentage.value", h.mirror_percentage().value());
    }
    if (h.has_mirror_percent()) {
      if (h.mirror_percent().value() > 100) error(path + ".mirrorPercent", "must be at most 100");
      warn(path + ".mirrorPercent", "deprecated; use mirrorPercentage");
    }
    if ((h.has_mirror_percentage() || h.has_mirror_percent()) && !h.has_mirror()) {
      warn(path + ".mirrorPercentage", "has no effect without mirror");
    }
    if (h.has_cors_policy()) cors(path + ".corsPolicy", h.cors_policy());
    if (h.has_headers()) headers(path + ".headers", h.headers());
  }

  void redirect(const std::string& path, const nw::HTTPRedirect& r) {
    if (r.uri().empty() && r.authority().empty() && r.scheme().empty() &&
        r.redirect_port_case() == nw::HTTPRedirect::REDIRECT_PORT_NOT_SET) {
      error(path, "at least one of uri, authority, scheme, port or derivePort is required");
    }
    if (r.redirect_port_case() == nw::HTTPRedirect::kPort) port(path + ".port", r.port());
    const uint32_t c = r.redirect_code();
    if (c != 0 && c != 301 && c != 302 && c != 303 && c != 307 && c != 308) {
      error(path + ".redirectCode", "must be one of 301, 302, 303, 307 or 308");
    }
  }

  void retries(const std::string& path, const nw::HTTPRetry& r) {
    if (r.attempts() < 0) error(path + ".attempts", "must not be negative");
    if (r.has_per_try_timeout()) duration(path + ".perTryTimeout", r.per_try_timeout());
    if (r.has_backoff()) duration(path + ".backoff", r.backoff());
    if (r.retry_on().empty()) return;
    static const std::set<std::string, std::less<>> kPolicies = {"5xx",
                                                                 "gateway-error",
                                                                 "reset",
                                                                 "reset-before-request",
                                                                 "connect-failure",
                                                                 "envoy-ratelimited",
                                                                 "retriable-4xx",
                                                                 "refused-stream",
                                                                 "retriable-status-codes",
                                                                 "retriable-headers",
                                                                 "http3-post-connect-failure",
                                                                 "cancelled",
                                                                 "deadline-exceeded",
                                                                 "internal",
                                                                 "resource-exhausted",
                                                                 "unavailable"};
    std::string_view list = r.retry_on();
    while (true) {
      const size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      int code = 0;
      const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), code);
      const bool is_code = !item.empty() && ec == std::errc() && end == item.data() + item.size();
      if (is_code ? (code < 100 || code > 599) : kPolicies.count(item) == 0) {
        error(path + ".retryOn", "unknown retry condition " + quoted(item));
      }
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }

  void fault(const std::string& path, const nw::HTTPFaultInjection& f) {
    if (!f.has_delay() && !f.has_abort()) error(path, "at least one of delay or abort is required");
    if (f.has_delay()) {
      const auto& d = f.delay();
      const std::string p = path + ".delay";
      switch (d.http_delay_type_case()) {
        case nw::HTTPFaultInjection::Delay::kFixedDelay:
          duration(p + ".fixedDelay", d.fixed_delay());
          break;
        case nw::HTTPFaultInjection::Delay::kExponentialDelay:
          error(p + ".exponentialDelay", "not supported; use fixedDelay");
          break;
        case nw::HTTPFaultInjection::Delay::HTTP_DELAY_TYPE_NOT_SET:
          error(p + ".fixedDelay", "required");
          break;
      }
      if (d.has_percentage()) percent(p + ".percentage.value", d.percentage().value());
      if (d.percent() != 0) {
        if (d.percent() < 0 || d.percent() > 100)
          error(p + ".percent", "must be between 0 and 100");
        warn(p + ".percent", "deprecated; use percentage");
      }
    }
    if (f.has_abort()) {
      const auto& a = f.abort();
      const std::string p = path + ".abort";
      switch (a.error_type_case()) {
        case nw::HTTPFaultInjection::Abort::kHttpStatus:
          if (a.http_status() < 200 || a.http_status() > 599) {
            error(p + ".httpStatus", "must be between 200 and 599");
          }
          break;
        case nw::HTTPFaultInjection::Abort::kGrpcStatus: {
          if (!statusCodeFromName(a.grpc_status())) {
            error(p + ".grpcStatus", "unknown gRPC status " + quoted(a.grpc_status()));
          }
          break;
        }
        case nw::HTTPFaultInjection::Abort::kHttp2Error:
          error(p + ".http2Error", "not supported; use httpStatus or grpcStatus");
          break;
        case nw::HTTPFaultInjection::Abort::ERROR_TYPE_NOT_SET:
          error(p, "one of httpStatus or grpcStatus is required");
          break;
      }
      if (a.has_percentage()) percent(p + ".percentage.value", a.percentage().value());
    }
  }

  void cors(const std::string& path, const nw::CorsPolicy& c) {
    for (int i = 0; i < c.allow_origins_size(); ++i) {
      stringMatch(idx(path + ".allowOrigins", i), c.allow_origins(i), false);
    }
    if (!c.allow_origin().empty()) warn(path + ".allowOrigin", "deprecated; use allowOrigins");
    static const std::set<std::string, std::less<>> kMethods = {
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*"};
    for (int i = 0; i < c.allow_methods_size(); ++i) {
      if (kMethods.count(c.allow_methods(i)) == 0) {
        error(idx(path + ".allowMethods", i), "unknown method " + quoted(c.allow_methods(i)));
      }
    }
    for (const auto* list : {&c.allow_headers(), &c.expose_headers()}) {
      const std::string p =
          path + (list == &c.allow_headers() ? ".allowHeaders" : ".exposeHeaders");
      for (int i = 0; i < list->size(); ++i) {
        if ((*list)[i] != "*" && !isHeaderName((*list)[i])) {
          error(idx(p, i), "invalid header name " + quoted((*list)[i]));
        }
      }
    }
    if (c.has_max_age()) {
      if (toNanos(c.max_age()) < 0) error(path + ".maxAge", "must not be negative");
      if (c.max_age().nanos() != 0) error(path + ".maxAge", "only whole seconds are supported");
    }
  }

  // --- DestinationRule ------------------------------------------------------------------------

  void destinationRule(const nw::DestinationRule& dr) {
    if (dr.host().empty()) {
      error("spec.host", "required");
    } else if (!isWildcardDnsName(dr.host())) {
      error("spec.host", "invalid host " + quoted(dr.host()));
    }
    if (dr.has_traffic_policy()) trafficPolicy("spec.trafficPolicy", dr.traffic_policy());
    std::map<std::string, int> names;
    for (int i = 0; i < dr.subsets_size(); ++i) {
      const nw::Subset& s = dr.subsets(i);
      const std::string p = idx("spec.subsets", i);
      if (s.name().empty()) {
        error(p + ".name", "required");
      } else if (!isDns1123Label(s.name())) {
        error(p + ".name", "invalid subset name " + quoted(s.name()));
      } else if (auto [it, fresh] = names.emplace(s.name(), i); !fresh) {
        error(p + ".name", "duplicate subset name " + quoted(s.name()) + " (also subsets[" +
                               std::to_string(it->second) + "])");
      }
      if (s.labels().empty()) {
        warn(p + ".labels", "no labels: the subset selects every endpoint of the host");
      }
      labels(p + ".labels", s.labels());
      if (s.has_traffic_policy()) trafficPolicy(p + ".trafficPolicy", s.traffic_policy());
    }
    if (dr.has_workload_selector()) {
      if (dr.workload_selector().match_labels().empty()) {
        error("spec.workloadSelector.matchLabels", "at least one label is required");
      }
      labels("spec.workloadSelector.matchLabels", dr.workload_selector().match_labels());
    }
    exportTo("spec.exportTo", dr.export_to());
  }

  void trafficPolicy(const std::string& path, const nw::TrafficPolicy& tp) {
    if (tp.has_load_balancer()) loadBalancer(path + ".loadBalancer", tp.load_balancer());
    if (tp.has_connection_pool()) connectionPool(path + ".connectionPool", tp.connection_pool());
    if (tp.has_outlier_detection()) {
      outlierDetection(path + ".outlierDetection", tp.outlier_detection());
    }
    if (tp.has_tls()) clientTls(path + ".tls", tp.tls());
    std::map<uint32_t, int> ports;
    for (int i = 0; i < tp.port_level_settings_size(); ++i) {
      const auto& pl = tp.port_level_settings(i);
      const std::string p = idx(path + ".portLevelSettings", i);
      if (!pl.has_port()) {
        error(p + ".port", "required");
      } else {
        port(p + ".port.number", pl.port().number());
        if (auto [it, fresh] = ports.emplace(pl.port().number(), i); !fresh) {
          error(p + ".port.number", "port " + std::to_string(pl.port().number()) +
                                        " already has settings in portLevelSettings[" +
                                        std::to_string(it->second) + "]");
        }
      }
      if (pl.has_load_balancer()) loadBalancer(p + ".loadBalancer", pl.load_balancer());
      if (pl.has_connection_pool()) connectionPool(p + ".connectionPool", pl.connection_pool());
      if (pl.has_outlier_detection()) {
        outlierDetection(p + ".outlierDetection", pl.outlier_detection());
      }
      if (pl.has_tls()) clientTls(p + ".tls", pl.tls());
    }
  }

  void loadBalancer(const std::string& path, const nw::LoadBalancerSettings& lb) {
    using LB = nw::LoadBalancerSettings;
    if (lb.lb_policy_case() == LB::kSimple && lb.simple() == LB::LEAST_CONN) {
      warn(path + ".simple", "LEAST_CONN is deprecated; use LEAST_REQUEST");
    }
    if (lb.has_consistent_hash()) {
      const auto& ch = lb.consistent_hash();
      const std::string p = path + ".consistentHash";
      using CH = LB::ConsistentHashLB;
      switch (ch.hash_key_case()) {
        case CH::kHttpHeaderName:
          if (!isHeaderName(ch.http_header_name())) {
            error(p + ".httpHeaderName", "invalid header name " + quoted(ch.http_header_name()));
          }
          break;
        case CH::kHttpCookie:
          if (ch.http_cookie().name().empty()) error(p + ".httpCookie.name", "required");
          if (ch.http_cookie().has_ttl() && toNanos(ch.http_cookie().ttl()) < 0) {
            error(p + ".httpCookie.ttl", "must not be negative");
          }
          break;
        case CH::kUseSourceIp:
          if (!ch.use_source_ip()) error(p + ".useSourceIp", "must be true when set");
          break;
        case CH::kHttpQueryParameterName:
          if (ch.http_query_parameter_name().empty()) {
            error(p + ".httpQueryParameterName", "must not be empty");
          }
          break;
        case CH::HASH_KEY_NOT_SET:
          error(p,
                "one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName is "
                "required");
          break;
      }
      if (ch.minimum_ring_size() != 0 && ch.hash_algorithm_case() != CH::HASH_ALGORITHM_NOT_SET) {
        error(p + ".minimumRingSize", "deprecated field; set ringHash.minimumRingSize only");
      }
      if (ch.has_maglev()) {
        const uint64_t n = ch.maglev().table_size();
        bool prime = n >= 2;
        for (uint64_t d = 2; prime && d * d <= n; ++d) prime = n % d != 0;
        if (n != 0 && !prime) error(p + ".maglev.tableSize", "must be a prime number");
      }
    }
    if (lb.has_locality_lb_setting()) {
      const auto& l = lb.locality_lb_setting();
      const std::string p = path + ".localityLbSetting";
      const int kinds = (l.distribute().empty() ? 0 : 1) + (l.failover().empty() ? 0 : 1);
      if (kinds > 1) error(p, "distribute and failover are mutually exclusive");
      for (int i = 0; i < l.distribute_size(); ++i) {
        uint64_t total = 0;
        for (const auto& [locality, weight] : l.distribute(i).to()) total += weight;
        if (total != 100) {
          error(idx(p + ".distribute", i) + ".to",
                "weights must add up to 100, got " + std::to_string(total));
        }
      }
      for (int i = 0; i < l.failover_size(); ++i) {
        if (l.failover(i).from() == l.failover(i).to()) {
          error(idx(p + ".failover", i), "from and to must differ");
        }
      }
    }
    if (lb.has_warmup_duration_secs()) {
      duration(path + ".warmupDurationSecs", lb.warmup_duration_secs());
    }
  }

  void connectionPool(const std::string& path, const nw::ConnectionPoolSettings& cp) {
    if (!cp.has_tcp() && !cp.has_http()) {
      error(path, "at least one of tcp or http is required");
    }
    if (cp.has_tcp()) {
      const auto& t = cp.tcp();
      const std::string p = path + ".tcp";
      if (t.max_connections() < 0) error(p + ".maxConnections", "must not be negative");
      if (t.has_connect_timeout()) duration(p + ".connectTimeout", t.connect_timeout());
      if (t.has_max_connection_duration()) {
        duration(p + ".maxConnectionDuration", t.max_connection_duration());
      }
      if (t.has_idle_timeout() && toNanos(t.idle_timeout()) != 0) {
        duration(p + ".idleTimeout", t.idle_timeout());
      }
      if (t.has_tcp_keepalive()) {
        if (t.tcp_keepalive().has_time())
          duration(p + ".tcpKeepalive.time", t.tcp_keepalive().time());
        if (t.tcp_keepalive().has_interval()) {
          duration(p + ".tcpKeepalive.interval", t.tcp_keepalive().interval());
        }
      }
    }
    if (cp.has_http()) {
      const auto& h = cp.http();
      const std::string p = path + ".http";
      const std::pair<int32_t, const char*> counts[] = {
          {h.http1_max_pending_requests(), ".http1MaxPendingRequests"},
          {h.http2_max_requests(), ".http2MaxRequests"},
          {h.max_requests_per_connection(), ".maxRequestsPerConnection"},
          {h.max_retries(), ".maxRetries"},
          {h.max_concurrent_streams(), ".maxConcurrentStreams"},
      };
      for (const auto& [value, field] : counts) {
        if (value < 0) error(p + field, "must not be negative");
      }
      if (h.has_idle_timeout()) duration(p + ".idleTimeout", h.idle_timeout());
    }
  }

  void outlierDetection(const std::string& path, const nw::OutlierDetection& od) {
    if (od.consecutive_errors() < 0) error(path + ".consecutiveErrors", "must not be negative");
    if (od.consecutive_errors() != 0) {
      warn(path + ".consecutiveErrors", "deprecated; use consecutive5xxErrors");
    }
    if (od.has_interval()) duration(path + ".interval", od.interval());
    if (od.has_base_ejection_time()) duration(path + ".baseEjectionTime", od.base_ejection_time());
    if (od.max_ejection_percent() < 0 || od.max_ejection_percent() > 100) {
      error(path + ".maxEjectionPercent", "must be between 0 and 100");
    }
    if (od.min_health_percent() < 0 || od.min_health_percent() > 100) {
      error(path + ".minHealthPercent", "must be between 0 and 100");
    }
    if (od.has_consecutive_local_origin_failures() && !od.split_external_local_origin_errors()) {
      warn(path + ".consecutiveLocalOriginFailures",
           "has no effect unless splitExternalLocalOriginErrors is true");
    }
  }

  void clientTls(const std::string& path, const nw::ClientTLSSettings& tls) {
    using T = nw::ClientTLSSettings;
    if (tls.mode() == T::ISTIO_MUTUAL) {
      if (!tls.client_certificate().empty() || !tls.private_key().empty() ||
          !tls.ca_certificates().empty() || !tls.credential_name().empty()) {
        error(path,
              "ISTIO_MUTUAL uses the mesh's certificates: clientCertificate, privateKey, "
              "caCertificates and credentialName must be empty");
      }
    }
    if (tls.mode() == T::MUTUAL && tls.credential_name().empty()) {
      if (tls.client_certificate().empty()) {
        error(path + ".clientCertificate", "required for MUTUAL without credentialName");
      }
      if (tls.private_key().empty()) {
        error(path + ".privateKey", "required for MUTUAL without credentialName");
      }
    }
  }

  // --- Gateway ---------------------------------------------------------------------------------

  void gateway(const nw::Gateway& gw) {
    if (gw.servers().empty()) error("spec.servers", "at least one server is required");
    labels("spec.selector", gw.selector());
    std::map<std::string, int> names;
    for (int i = 0; i < gw.servers_size(); ++i) {
      const nw::Server& s = gw.servers(i);
      const std::string p = idx("spec.servers", i);
      std::string protocol;
      if (!s.has_port()) {
        error(p + ".port", "required");
      } else {
        port(p + ".port.number", s.port().number());
        protocol = s.port().protocol();
        for (char& c : protocol) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (protocol.empty()) {
          error(p + ".port.protocol", "required");
        } else if (!isKnownProtocol(protocol)) {
          error(p + ".port.protocol", "unknown protocol " + quoted(s.port().protocol()));
        }
        if (s.port().name().empty()) error(p + ".port.name", "required");
      }
      if (s.hosts().empty()) error(p + ".hosts", "at least one host is required");
      for (int j = 0; j < s.hosts_size(); ++j) {
        const std::string& h = s.hosts(j);
        const size_t slash = h.find('/');
        const std::string ns = slash == std::string::npos ? "*" : h.substr(0, slash);
        const std::string dns = slash == std::string::npos ? h : h.substr(slash + 1);
        if (ns != "*" && ns != "." && !isDns1123Label(ns)) {
          error(idx(p + ".hosts", j), "invalid namespace " + quoted(ns) + " in host " + quoted(h));
        }
        if (!isWildcardDnsName(dns)) error(idx(p + ".hosts", j), "invalid host " + quoted(dns));
      }
      if (!s.name().empty()) {
        if (auto [it, fresh] = names.emplace(s.name(), i); !fresh) {
          error(p + ".name", "duplicate server name " + quoted(s.name()));
        }
      }
      const bool tls_protocol = protocol == "HTTPS" || protocol == "TLS";
      if (tls_protocol && !s.has_tls()) {
        error(p + ".tls", "required for " + protocol + " servers");
      }
      if (s.has_tls()) serverTls(p + ".tls", s.tls(), protocol);
    }
  }

  void serverTls(const std::string& path, const nw::ServerTLSSettings& tls,
                 const std::string& protocol) {
    using T = nw::ServerTLSSettings;
    if (tls.https_redirect()) return;  // an HTTP server that only redirects
    if (protocol == "HTTP" || protocol == "HTTP2" || protocol == "GRPC" || protocol == "TCP") {
      warn(path, "TLS settings on a plain " + protocol + " server are ignored");
      return;
    }
    if (tls.mode() == T::SIMPLE || tls.mode() == T::MUTUAL || tls.mode() == T::OPTIONAL_MUTUAL) {
      const bool has_credential = !tls.credential_name().empty() || !tls.credential_names().empty();
      if (!has_credential) {
        if (tls.server_certificate().empty()) {
          error(path + ".serverCertificate",
                "required for " + T::TLSmode_Name(tls.mode()) + " without credentialName");
        }
        if (tls.private_key().empty()) {
          error(path + ".privateKey",
                "required for " + T::TLSmode_Name(tls.mode()) + " without credentialName");
        }
        if (tls.mode() != T::SIMPLE && tls.ca_certificates().empty()) {
          error(path + ".caCertificates",
                "required for " + T::TLSmode_Name(tls.mode()) + " without credentialName");
        }
      }
    }
    if (tls.credential_names_size() > 2) error(path + ".credentialNames", "at most 2 are allowed");
    if (tls.max_protocol_version() != T::TLS_AUTO &&
        tls.min_protocol_version() > tls.max_protocol_version()) {
      error(path + ".minProtocolVersion", "must not be above maxProtocolVersion");
    }
  }

  // --- ServiceEntry ----------------------------------------------------------------------------

  void serviceEntry(const nw::ServiceEntry& se) {
    using SE = nw::ServiceEntry;
    if (se.hosts().empty()) error("spec.hosts", "at least one host is required");
    bool wildcard = false;
    for (int i = 0; i < se.hosts_size(); ++i) {
      const std::string& h = se.hosts(i);
      if (h == "*") {
        error(idx("spec.hosts", i), "'*' is not allowed; use a domain or '*.suffix'");
      } else if (!isWildcardDnsName(h)) {
        error(idx("spec.hosts", i), "invalid host " + quoted(h));
      }
      if (h.find('*') != std::string::npos) wildcard = true;
    }
    for (int i = 0; i < se.addresses_size(); ++i) {
      if (!isIpOrCidr(se.addresses(i))) {
        error(idx("spec.addresses", i), "invalid IP address or CIDR " + quoted(se.addresses(i)));
      }
    }
    if (se.ports().empty()) error("spec.ports", "at least one port is required");
    std::map<uint32_t, int> numbers;
    std::map<std::string, int> names;
    for (int i = 0; i < se.ports_size(); ++i) {
      const nw::ServicePort& sp = se.ports(i);
      const std::string p = idx("spec.ports", i);
      port(p + ".number", sp.number());
      if (auto [it, fresh] = numbers.emplace(sp.number(), i); !fresh) {
        error(p + ".number", "port " + std::to_string(sp.number()) + " is already used by ports[" +
                                 std::to_string(it->second) + "]");
      }
      if (sp.protocol().empty()) {
        error(p + ".protocol", "required");
      } else if (!isKnownProtocol(sp.protocol())) {
        error(p + ".protocol", "unknown protocol " + quoted(sp.protocol()));
      }
      if (sp.name().empty()) {
        error(p + ".name", "required");
      } else if (auto [it, fresh] = names.emplace(sp.name(), i); !fresh) {
        error(p + ".name", "port name " + quoted(sp.name()) + " is already used by ports[" +
                               std::to_string(it->second) + "]");
      }
      if (sp.target_port() != 0) port(p + ".targetPort", sp.target_port());
    }
    if (!se.endpoints().empty() && se.has_workload_selector()) {
      error("spec.workloadSelector", "endpoints and workloadSelector are mutually exclusive");
    }
    if (se.has_workload_selector()) {
      if (se.location() != SE::MESH_INTERNAL) {
        error("spec.workloadSelector", "applies only to MESH_INTERNAL services");
      }
      labels("spec.workloadSelector.labels", se.workload_selector().labels());
    }
    switch (se.resolution()) {
      case SE::NONE:
        if (!se.endpoints().empty()) {
          error("spec.endpoints", "must be empty for resolution NONE");
        }
        break;
      case SE::STATIC:
        if (se.endpoints().empty() && !se.has_workload_selector()) {
          error("spec.endpoints", "required for resolution STATIC (or a workloadSelector)");
        }
        break;
      case SE::DNS:
        if (se.endpoints().empty() && wildcard) {
          error("spec.resolution", "DNS resolution of wildcard hosts needs endpoints");
        }
        break;
      case SE::DNS_ROUND_ROBIN:
        if (se.endpoints_size() > 1) {
          error("spec.endpoints", "DNS_ROUND_ROBIN allows at most one endpoint");
        }
        if (se.endpoints().empty() && wildcard) {
          error("spec.resolution", "DNS resolution of wildcard hosts needs endpoints");
        }
        break;
      default:
        break;
    }
    for (int i = 0; i < se.endpoints_size(); ++i) {
      const nw::WorkloadEntry& e = se.endpoints(i);
      const std::string p = idx("spec.endpoints", i);
      const bool static_resolution = se.resolution() == SE::STATIC;
      if (e.address().empty()) {
        if (e.network().empty()) error(p + ".address", "required");
      } else if (static_resolution) {
        if (!isIpAddress(e.address()) && e.address().rfind("unix://", 0) != 0) {
          error(p + ".address",
                "must be an IP address or unix:// path for resolution STATIC, "
                "got " +
                    quoted(e.address()));
        }
      } else if (!isIpAddress(e.address()) && !isDnsName(e.address())) {
        error(p + ".address", "invalid address " + quoted(e.address()));
      }
      for (const auto& [name, number] : e.ports()) {
        port(key(p + ".ports", name), number);
        if (names.count(name) == 0) {
          error(key(p + ".ports", name), "no port named " + quoted(name) + " in spec.ports");
        }
      }
      labels(p + ".labels", e.labels());
    }
    exportTo("spec.exportTo", se.export_to());
  }

  // --- WorkloadEntry ---------------------------------------------------------------------------

  void workloadEntry(const nw::WorkloadEntry& we) {
    if (we.address().empty()) {
      if (we.network().empty()) error("spec.address", "required unless network is set");
    } else if (we.address().rfind("unix://", 0) == 0) {
      if (!we.ports().empty()) error("spec.ports", "must be empty for a unix:// address");
    } else if (!isIpAddress(we.address()) && !isDnsName(we.address())) {
      error("spec.address", "invalid address " + quoted(we.address()));
    }
    for (const auto& [name, number] : we.ports()) port(key("spec.ports", name), number);
    labels("spec.labels", we.labels());
  }

  // --- Sidecar ---------------------------------------------------------------------------------

  void sidecar(const nw::Sidecar& sc) {
    if (sc.egress().empty() && sc.ingress().empty() && !sc.has_outbound_traffic_policy() &&
        !sc.has_inbound_connection_pool()) {
      error("spec", "empty Sidecar: set egress, ingress or outboundTrafficPolicy");
    }
    if (sc.has_workload_selector()) {
      if (sc.workload_selector().labels().empty()) {
        error("spec.workloadSelector.labels", "at least one label is required");
      }
      labels("spec.workloadSelector.labels", sc.workload_selector().labels());
    }
    std::map<uint32_t, int> ingress_ports;
    for (int i = 0; i < sc.ingress_size(); ++i) {
      const auto& in = sc.ingress(i);
      const std::string p = idx("spec.ingress", i);
      if (!in.has_port()) {
        error(p + ".port", "required");
      } else {
        sidecarPort(p + ".port", in.port());
        if (auto [it, fresh] = ingress_ports.emplace(in.port().number(), i); !fresh) {
          error(p + ".port.number", "port " + std::to_string(in.port().number()) +
                                        " is already used by ingress[" +
                                        std::to_string(it->second) + "]");
        }
      }
      const std::string& de = in.default_endpoint();
      if (!de.empty() && de.rfind("unix://", 0) != 0) {
        const size_t colon = de.rfind(':');
        const std::string host = colon == std::string::npos ? "" : de.substr(0, colon);
        if (host != "127.0.0.1" && host != "0.0.0.0" && host != "[::1]" && host != "[::]") {
          error(p + ".defaultEndpoint",
                "must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix:///path");
        }
      }
      if (in.has_connection_pool()) connectionPool(p + ".connectionPool", in.connection_pool());
    }
    int catch_all = -1;
    std::map<uint32_t, int> egress_ports;
    for (int i = 0; i < sc.egress_size(); ++i) {
      const auto& eg = sc.egress(i);
      const std::string p = idx("spec.egress", i);
      if (eg.has_port()) {
        sidecarPort(p + ".port", eg.port());
        if (auto [it, fresh] = egress_ports.emplace(eg.port().number(), i); !fresh) {
          error(p + ".port.number", "port " + std::to_string(eg.port().number()) +
                                        " is already used by egress[" + std::to_string(it->second) +
                                        "]");
        }
      } else if (catch_all >= 0) {
        error(p, "only one egress listener may omit the port (egress[" + std::to_string(catch_all) +
                     "] already does)");
      } else {
        catch_all = i;
      }
      if (eg.hosts().empty()) error(p + ".hosts", "at least one host is required");
      for (int j = 0; j < eg.hosts_size(); ++j) {
        const std::string& h = eg.hosts(j);
        const std::string hp = idx(p + ".hosts", j);
        const size_t slash = h.find('/');
        if (slash == std::string::npos) {
          error(hp, "expected 'namespace/dnsName', got " + quoted(h));
          continue;
        }
        std::string ns = h.substr(0, slash);
        if (!ns.empty() && ns[0] == '~' && ns.size() > 1) ns = ns.substr(1);
        if (ns != "*" && ns != "." && ns != "~" && !isDns1123Label(ns)) {
          error(hp, "invalid namespace " + quoted(ns) + " in host " + quoted(h));
        }
        if (!isWildcardDnsName(h.substr(slash + 1))) {
          error(hp, "invalid host " + quoted(h.substr(slash + 1)));
        }
      }
    }
    if (catch_all >= 0 && catch_all != sc.egress_size() - 1) {
      error(idx("spec.egress", catch_all), "the egress listener without a port must be the last");
    }
    if (sc.has_outbound_traffic_policy() && sc.outbound_traffic_policy().has_egress_proxy()) {
      if (sc.outbound_traffic_policy().mode() != nw::OutboundTrafficPolicy::ALLOW_ANY) {
        error("spec.outboundTrafficPolicy.egressProxy", "requires mode ALLOW_ANY");
      }
      destination("spec.outboundTrafficPolicy.egressProxy",
                  sc.outbound_traffic_policy().egress_proxy());
    }
  }

  void sidecarPort(const std::string& path, const nw::SidecarPort& p) {
    port(path + ".number", p.number());
    if (!p.protocol().empty() && !isKnownProtocol(p.protocol())) {
      error(path + ".protocol", "unknown protocol " + quoted(p.protocol()));
    }
  }

  // --- PeerAuthentication ----------------------------------------------------------------------
  void peerAuthentication(const config::security::PeerAuthentication& pa) {
    if (!pa.port_level_mtls().empty() && pa.selector().match_labels().empty()) {
      // Istio: port-level settings need a workload selector (ports are a workload's).
      error("spec.portLevelMtls", "requires spec.selector (port-level mTLS is per workload)");
    }
    for (const auto& [number, mtls] : pa.port_level_mtls()) {
      port("spec.portLevelMtls[" + std::to_string(number) + "]", number);
    }
  }

 private:
  const Resource& r_;
  ValidationReport& out_;
};

}  // namespace

ValidationReport validateResource(const Resource& resource) {
  ValidationReport report;
  Checker c(resource, &report);
  c.metadata();
  if (const auto* vs = resource.as<nw::VirtualService>()) c.virtualService(*vs);
  if (const auto* dr = resource.as<nw::DestinationRule>()) c.destinationRule(*dr);
  if (const auto* gw = resource.as<nw::Gateway>()) c.gateway(*gw);
  if (const auto* se = resource.as<nw::ServiceEntry>()) c.serviceEntry(*se);
  if (const auto* we = resource.as<nw::WorkloadEntry>()) c.workloadEntry(*we);
  if (const auto* sc = resource.as<nw::Sidecar>()) c.sidecar(*sc);
  if (const auto* pa = resource.as<config::security::PeerAuthentication>()) {
    c.peerAuthentication(*pa);
  }
  return report;
}

std::vector<ValidationReport> validateResources(const std::vector<Resource>& resources) {
  std::vector<ValidationReport> reports;
  reports.reserve(resources.size());
  std::map<std::tuple<Kind, std::string, std::string>, size_t> seen;
  for (size_t i = 0; i < resources.size(); ++i) {
    const Resource& r = resources[i];
    reports.push_back(validateResource(r));
    auto [it, fresh] = seen.emplace(std::make_tuple(r.kind, r.namespace_name, r.name), i);
    if (!fresh && !r.name.empty()) {
      const Resource& first = resources[it->second];
      reports.back().errors.add(r.file, r.lineOf("metadata.name"), "metadata.name",
                                "duplicate " + std::string(kindName(r.kind)) + " " +
                                    r.namespace_name + "/" + r.name + " (first defined at " +
                                    first.file + ":" + std::to_string(first.line) + ")");
    }
  }
  return reports;
}

}  // namespace mesh::config
