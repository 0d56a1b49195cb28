#include "pilot/translate/http_routes.h"

#include <algorithm>
#include <cctype>

#include "config/host_name.h"
#include "core/status.h"

namespace mesh::pilot::translate {
namespace {

namespace v1 = mesh::proxy::v1;
using networking::HTTPMatchRequest;
using networking::HTTPRoute;
using networking::StringMatch;

constexpr char kDefaultRetryOn[] =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

// Istio StringMatch -> proxy StringMatcher. An empty StringMatch ({}) is "present".
bool stringMatcher(const StringMatch& in, v1::StringMatcher* out) {
  switch (in.match_type_case()) {
    case StringMatch::kExact:
      out->set_exact(in.exact());
      return true;
    case StringMatch::kPrefix:
      out->set_prefix(in.prefix());
      return true;
    case StringMatch::kRegex:
      out->set_regex(in.regex());
      return true;
    default:
      return false;
  }
}

// Proto maps iterate in no fixed order; the output must be deterministic.
template <typename Map>
std::vector<std::pair<std::string, typename Map::mapped_type>> sorted(const Map& m) {
  std::vector<std::pair<std::string, typename Map::mapped_type>> out(m.begin(), m.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

void headerOps(const networking::Headers::HeaderOperations& in, v1::HeaderOperations* out) {
  for (const auto& [k, v] : sorted(in.set())) {
    auto* hv = out->add_set();
    hv->set_name(k);
    hv->set_value(v);
  }
  for (const auto& [k, v] : sorted(in.add())) {
    auto* hv = out->add_add();
    hv->set_name(k);
    hv->set_value(v);
  }
  for (const auto& r : in.remove()) out->add_remove(r);
}

void mergeOps(const v1::HeaderOperations& from, v1::HeaderOperations* into) {
  into->mutable_set()->MergeFrom(from.set());
  into->mutable_add()->MergeFrom(from.add());
  into->mutable_remove()->MergeFrom(from.remove());
}

bool emptyOps(const v1::HeaderOperations& ops) {
  return ops.set_size() == 0 && ops.add_size() == 0 && ops.remove_size() == 0;
}

// Whether a match block (HTTPMatchRequest or L4MatchAttributes) can apply to this proxy on
// this port: the client-side selectors are decided here, at translation time.
template <typename Match>
bool applies(const Match& m, const RouteContext& ctx) {
  if (m.port() != 0 && m.port() != ctx.port) return false;
  if (!m.gateways().empty()) {
    bool named = false;
    for (const std::string& g : m.gateways()) {
      if (ctx.gateway.empty()) {
        named = named || g == "mesh";
      } else {
        named = named || g == ctx.gateway || ctx.vs_namespace + "/" + g == ctx.gateway;
      }
    }
    if (!named) return false;
  }
  if (!m.source_namespace().empty() && m.source_namespace() != ctx.proxy->namespace_name) {
    return false;
  }
  for (const auto& [k, v] : m.source_labels()) {
    auto it = ctx.proxy->labels.find(k);
    if (it == ctx.proxy->labels.end() || it->second != v) return false;
  }
  return true;
}

void translateMatch(const HTTPMatchRequest& m, const RouteContext& ctx, v1::RouteMatch* out) {
  switch (m.uri().match_type_case()) {
    case StringMatch::kExact:
      out->set_path(m.uri().exact());
      break;
    case StringMatch::kPrefix:
      out->set_prefix(m.uri().prefix());
      break;
    case StringMatch::kRegex:
      out->set_regex(m.uri().regex());
      break;
    default:
      out->set_prefix("/");
  }
  // Istio applies ignoreUriCase to exact and prefix URIs only.
  if (m.ignore_uri_case() && !m.uri().has_regex()) out->set_ignore_case(true);
  for (const auto& [name, sm] : sorted(m.headers())) {
    v1::HeaderMatcher* h = out->add_headers();
    h->set_name(name);
    if (!stringMatcher(sm, h->mutable_string_match())) h->set_present(true);
  }
  for (const auto& [name, sm] : sorted(m.without_headers())) {
    v1::HeaderMatcher* h = out->add_headers();
    h->set_name(name);
    h->set_invert(true);
    if (!stringMatcher(sm, h->mutable_string_match())) h->set_present(true);
  }
  if (m.has_authority()) {
    v1::HeaderMatcher* h = out->add_headers();
    h->set_name(":authority");
    if (!stringMatcher(m.authority(), h->mutable_string_match())) h->set_present(true);
  }
  for (const auto& [name, sm] : sorted(m.query_params())) {
    v1::QueryParameterMatcher* q = out->add_query_parameters();
    q->set_name(name);
    if (!stringMatcher(sm, q->mutable_string_match())) q->set_present(true);
  }
  if (m.has_method()) stringMatcher(m.method(), out->mutable_method());
  if (m.has_scheme()) {
    ctx.warnings->push_back(ctx.where + ": match.scheme is not supported by the proxy; ignored");
  }
}

// Istio's HTTPRetry: attempts -> retries after the first try; bare status codes in retryOn
// become retriable status codes.
v1::RetryPolicy retryPolicy(const networking::HTTPRetry& in) {
  v1::RetryPolicy out;
  out.set_num_retries(static_cast<uint32_t>(in.attempts()));
  std::string retry_on = in.retry_on().empty() ? kDefaultRetryOn : "";
  bool codes = false;
  std::string_view text = in.retry_on();
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string tok(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    tok.erase(0, tok.find_first_not_of(' '));
    tok.erase(tok.find_last_not_of(' ') + 1);
    if (tok.empty()) continue;
    if (std::all_of(tok.begin(), tok.end(), [](char c) { return std::isdigit(c) != 0; })) {
      out.add_retriable_status_codes(static_cast<uint32_t>(std::stoul(tok)));
      codes = true;
      continue;
    }
    if (tok == "retriable-status-codes") {
      codes = true;  // added once, at the end
      continue;
    }
    if (!retry_on.empty()) retry_on += ",";
    retry_on += tok;
  }
  if (codes) retry_on += retry_on.empty() ? "retriable-status-codes" : ",retriable-status-codes";
  if (in.retry_on().empty()) out.add_retriable_status_codes(503);
  out.set_retry_on(retry_on);
  if (in.has_per_try_timeout()) *out.mutable_per_try_timeout() = in.per_try_timeout();
  if (in.has_backoff()) *out.mutable_backoff_base_interval() = in.backoff();
  return out;
}

double percentOf(const networking::Percent* p, bool has, int32_t deprecated) {
  if (has) return p->value();
  return static_cast<double>(deprecated);
}

// Returns false if nothing of the fault could be translated.
bool translateFault(const networking::HTTPFaultInjection& in, const RouteContext& ctx,
                    v1::FaultInjection* out) {
  if (in.has_delay()) {
    const auto& d = in.delay();
    if (d.has_fixed_delay()) {
      *out->mutable_delay()->mutable_fixed_delay() = d.fixed_delay();
      // No percentage means no request is delayed (Istio's current behaviour).
      out->mutable_delay()->mutable_percentage()->set_value(
          percentOf(&d.percentage(), d.has_percentage(), d.percent()));
    } else {
      ctx.warnings->push_back(ctx.where + ": fault.delay.exponentialDelay is not supported");
    }
  }
  if (in.has_abort()) {
    const auto& a = in.abort();
    if (a.error_type_case() == networking::HTTPFaultInjection::Abort::kHttpStatus) {
      out->mutable_abort()->set_http_status(static_cast<uint32_t>(a.http_status()));
      out->mutable_abort()->mutable_percentage()->set_value(
          percentOf(&a.percentage(), a.has_percentage(), 0));
    } else if (a.error_type_case() == networking::HTTPFaultInjection::Abort::kGrpcStatus &&
               statusCodeFromName(a.grpc_status())) {
      // A gRPC-form reply (HTTP 200, grpc-status) from the proxy, as Envoy's fault filter.
      out->mutable_abort()->mutable_grpc_status()->set_value(
          static_cast<uint32_t>(*statusCodeFromName(a.grpc_status())));
      out->mutable_abort()->mutable_percentage()->set_value(
          percentOf(&a.percentage(), a.has_percentage(), 0));
    } else if (a.error_type_case() == networking::HTTPFaultInjection::Abort::kGrpcStatus) {
      // validation.cc refuses unknown names first; this only guards the translator's contract.
      ctx.warnings->push_back(ctx.where + ": fault.abort.grpcStatus '" + a.grpc_status() +
                              "' is not a gRPC status name; abort ignored");
    } else {
      ctx.warnings->push_back(ctx.where + ": fault.abort http2Error is not supported");
    }
  }
  return out->has_delay() || out->has_abort();
}

// Sets the route's action from route destinations; false if no destination exists.
bool routeToDestinations(const HTTPRoute& in, const RouteContext& ctx, v1::Route* out) {
  struct Target {
    std::string cluster;
    uint32_t weight;
    v1::HeaderOperations req, resp;
  };
  std::vector<Target> targets;
  for (const auto& d : in.route()) {
    std::string host =
        config::expandShortHostName(d.destination().host(), ctx.vs_namespace, ctx.domain_suffix);
    std::string cluster =
        ctx.cluster_for(host, d.destination().subset(), d.destination().port().number());
    if (cluster.empty()) {
      ctx.warnings->push_back(
          ctx.where + ": destination " + host +
          (d.destination().subset().empty() ? "" : " subset " + d.destination().subset()) +
          " is unknown to this proxy; dropped");
      continue;
    }
    Target t{cluster, static_cast<uint32_t>(std::max(d.weight(), 0)), {}, {}};
    headerOps(d.headers().request(), &t.req);
    headerOps(d.headers().response(), &t.resp);
    targets.push_back(std::move(t));
  }
  if (targets.empty()) return false;
  v1::RouteAction* action = out->mutable_route();
  if (targets.size() == 1) {
    action->set_cluster(targets[0].cluster);
    mergeOps(targets[0].req, out->mutable_request_headers());
    mergeOps(targets[0].resp, out->mutable_response_headers());
  } else {
    for (const Target& t : targets) {
      auto* cw = action->mutable_weighted_clusters()->add_clusters();
      cw->set_name(t.cluster);
      cw->set_weight(t.weight);
      if (!emptyOps(t.req)) *cw->mutable_request_headers() = t.req;
      if (!emptyOps(t.resp)) *cw->mutable_response_headers() = t.resp;
    }
  }
  // The first destination with a consistent-hash rule decides the route's hash policy.
  for (const Target& t : targets) {
    auto hash = ctx.hash_for(t.cluster);
    if (hash.empty()) continue;
    for (auto& h : hash) *action->add_hash_policy() = std::move(h);
    break;
  }
  return true;
}

void translateRedirect(const networking::HTTPRedirect& in, const RouteContext& ctx,
                       v1::RedirectAction* out) {
  out->set_path(in.uri());
  out->set_host(in.authority());
  out->set_scheme(in.scheme());
  if (in.redirect_port_case() == networking::HTTPRedirect::kPort) out->set_port(in.port());
  if (in.redirect_port_case() == networking::HTTPRedirect::kDerivePort &&
      in.derive_port() == networking::HTTPRedirect::FROM_REQUEST_PORT) {
    ctx.warnings->push_back(ctx.where + ": redirect.derivePort FROM_REQUEST_PORT is not supported");
  }
  if (in.redirect_code() != 0) out->set_response_code(in.redirect_code());
}

// Istio's mirror (+ mirrorPercentage, or the deprecated mirrorPercent) and mirrors[].
void translateMirrors(const HTTPRoute& in, const RouteContext& ctx, v1::RouteAction* action) {
  auto add = [&](const networking::Destination& d, bool has_pct, double pct) {
    std::string host = config::expandShortHostName(d.host(), ctx.vs_namespace, ctx.domain_suffix);
    std::string cluster = ctx.cluster_for(host, d.subset(), d.port().number());
    if (cluster.empty()) {
      ctx.warnings->push_back(ctx.where + ": mirror destination " + host +
                              (d.subset().empty() ? "" : " subset " + d.subset()) +
                              " is unknown to this proxy; dropped");
      return;
    }
    v1::RequestMirror* m = action->add_request_mirror_policies();
    m->set_cluster(cluster);
    if (has_pct) m->mutable_percentage()->set_value(pct);
  };
  if (in.has_mirror()) {
    if (in.has_mirror_percentage()) {
      add(in.mirror(), true, in.mirror_percentage().value());
    } else if (in.has_mirror_percent()) {
      add(in.mirror(), true, static_cast<double>(in.mirror_percent().value()));
    } else {
      add(in.mirror(), false, 0);
    }
  }
  for (const auto& m : in.mirrors()) {
    add(m.destination(), m.has_percentage(), m.percentage().value());
  }
}

// Istio's CorsPolicy; the deprecated allowOrigin strings are exact origins, "*" any origin.
void translateCors(const networking::CorsPolicy& in, const RouteContext& ctx, v1::Route* route) {
  v1::CorsPolicy out;
  for (const auto& o : in.allow_origins()) {
    if (!stringMatcher(o, out.add_allow_origins())) out.mutable_allow_origins()->RemoveLast();
  }
  for (const std::string& o : in.allow_origin()) {
    if (o == "*") {
      out.add_allow_origins()->set_regex(".*");
    } else {
      out.add_allow_origins()->set_exact(o);
    }
  }
  if (out.allow_origins().empty()) {
    ctx.warnings->push_back(ctx.where +
                            ": corsPolicy without allowOrigins allows nothing; ignored");
    return;
  }
  for (const auto& m : in.allow_methods()) out.add_allow_methods(m);
  for (const auto& h : in.allow_headers()) out.add_allow_headers(h);
  for (const auto& h : in.expose_headers()) out.add_expose_headers(h);
  if (in.has_max_age()) *out.mutable_max_age() = in.max_age();
  if (in.has_allow_credentials()) out.set_allow_credentials(in.allow_credentials().value());
  *route->mutable_cors() = std::move(out);
}

// The action and everything that goes with it, for one HTTPRoute under one match.
void translateAction(const HTTPRoute& in, const RouteContext& ctx, v1::Route* out) {
  headerOps(in.headers().request(), out->mutable_request_headers());
  headerOps(in.headers().response(), out->mutable_response_headers());
  if (in.has_redirect()) {
    translateRedirect(in.redirect(), ctx, out->mutable_redirect());
  } else if (in.has_direct_response()) {
    v1::DirectResponseAction* dr = out->mutable_direct_response();
    dr->set_status(in.direct_response().status());
    const auto& body = in.direct_response().body();
    dr->set_body(body.has_bytes() ? body.bytes() : body.string());
  } else if (!routeToDestinations(in, ctx, out)) {
    // Istio would route to a cluster that does not exist (503 NC); the proxy refuses dangling
    // cluster names, so the route answers 503 itself.
    out->mutable_direct_response()->set_status(503);
    out->mutable_direct_response()->set_body("no healthy upstream");
  }
  if (in.has_delegate()) {
    ctx.warnings->push_back(ctx.where + ": delegate is not supported; ignored");
  }
  if (!out->has_route()) {
    // The proxy applies mirrors, CORS and faults only on routes to clusters.
    if (in.has_mirror() || !in.mirrors().empty() || in.has_cors_policy() || in.has_fault()) {
      ctx.warnings->push_back(ctx.where +
                              ": mirror, corsPolicy and fault apply only to routes with "
                              "destinations; ignored here");
    }
    return;
  }
  v1::RouteAction* action = out->mutable_route();
  translateMirrors(in, ctx, action);
  if (in.has_cors_policy()) translateCors(in.cors_policy(), ctx, out);
  const auto& rw = in.rewrite();
  if (!rw.uri().empty()) {
    if (out->match().path_specifier_case() == v1::RouteMatch::kRegex) {
      // The proxy's prefixRewrite needs a prefix or exact match: replace the whole path.
      action->mutable_regex_rewrite()->set_pattern("^.*$");
      action->mutable_regex_rewrite()->set_substitution(rw.uri());
    } else {
      action->set_prefix_rewrite(rw.uri());
    }
  }
  if (rw.has_uri_regex_rewrite()) {
    action->mutable_regex_rewrite()->set_pattern(rw.uri_regex_rewrite().match());
    action->mutable_regex_rewrite()->set_substitution(rw.uri_regex_rewrite().rewrite());
  }
  if (!rw.authority().empty()) action->set_host_rewrite(rw.authority());
  if (in.has_timeout()) *action->mutable_timeout() = in.timeout();
  if (!in.has_retries()) {
    *action->mutable_retry_policy() = defaultRetryPolicy();
  } else if (in.retries().attempts() > 0) {
    *action->mutable_retry_policy() = retryPolicy(in.retries());
  }
  if (in.has_fault()) {
    v1::FaultInjection f;
    if (translateFault(in.fault(), ctx, &f)) *out->mutable_fault() = std::move(f);
  }
}

}  // namespace

v1::RetryPolicy defaultRetryPolicy() {
  v1::RetryPolicy p;
  p.set_num_retries(2);
  p.set_retry_on(kDefaultRetryOn);
  p.add_retriable_status_codes(503);
  return p;
}

v1::Route defaultRoute(const std::string& cluster, const std::vector<v1::HashPolicy>& hash) {
  v1::Route r;
  r.set_name("default");
  r.mutable_match()->set_prefix("/");
  r.mutable_route()->set_cluster(cluster);
  *r.mutable_route()->mutable_retry_policy() = defaultRetryPolicy();
  for (const auto& h : hash) *r.mutable_route()->add_hash_policy() = h;
  return r;
}

v1::TcpProxy translateTcpRoutes(const networking::VirtualService& vs, const RouteContext& ctx) {
  v1::TcpProxy out;
  for (int i = 0; i < vs.tcp_size(); ++i) {
    const networking::TCPRoute& route = vs.tcp(i);
    bool any = route.match().empty();
    for (const auto& m : route.match()) {
      // destinationSubnets needs the connection's original destination, which is not kept.
      if (applies(m, ctx) && m.destination_subnets().empty()) any = true;
    }
    if (!any) continue;
    std::vector<std::pair<std::string, uint32_t>> targets;
    for (const auto& d : route.route()) {
      std::string host =
          config::expandShortHostName(d.destination().host(), ctx.vs_namespace, ctx.domain_suffix);
      std::string cluster =
          ctx.cluster_for(host, d.destination().subset(), d.destination().port().number());
      if (cluster.empty()) {
        ctx.warnings->push_back(ctx.where + " tcp[" + std::to_string(i) + "]: destination " + host +
                                " is unknown to this proxy; dropped");
        continue;
      }
      targets.emplace_back(cluster, static_cast<uint32_t>(std::max(d.weight(), 0)));
    }
    if (targets.size() == 1) {
      out.set_cluster(targets[0].first);
    } else {
      for (const auto& [cluster, weight] : targets) {
        auto* cw = out.mutable_weighted_clusters()->add_clusters();
        cw->set_name(cluster);
        cw->set_weight(weight);
      }
    }
    break;
  }
  return out;
}

std::vector<v1::Route> translateHttpRoutes(const networking::VirtualService& vs,
                                           const RouteContext& ctx) {
  std::vector<v1::Route> out;
  for (int i = 0; i < vs.http_size(); ++i) {
    const HTTPRoute& in = vs.http(i);
    RouteContext rc = ctx;
    rc.where = ctx.where + " http[" + std::to_string(i) + "]";
    auto finish = [&](v1::Route& r) {
      translateAction(in, rc, &r);
      // Empty header operations are left out, so the output reads like hand-written config.
      if (emptyOps(r.request_headers())) r.clear_request_headers();
      if (emptyOps(r.response_headers())) r.clear_response_headers();
      out.push_back(std::move(r));
    };
    if (in.match().empty()) {
      v1::Route r;
      r.set_name(in.name());
      r.mutable_match()->set_prefix("/");
      finish(r);
      continue;
    }
    for (const HTTPMatchRequest& m : in.match()) {
      if (!applies(m, ctx)) continue;
      v1::Route r;
      r.set_name(m.name().empty() ? in.name() : in.name() + "." + m.name());
      translateMatch(m, rc, r.mutable_match());
      finish(r);
    }
  }
  return out;
}

}  // namespace mesh::pilot::translate
