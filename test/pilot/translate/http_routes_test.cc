#include "pilot/translate/http_routes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/pilot/translate/test_util.h"

namespace mesh::pilot::translate::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kV1[] = "outbound|80|v1|web.a.svc.cluster.local";
constexpr char kV2[] = "outbound|80|v2|web.a.svc.cluster.local";

struct Result {
  std::vector<v1::Route> routes;
  std::vector<std::string> warnings;
};

// The routes of web's virtual host on `port` for a proxy, given the VirtualService's spec; web
// (webInA) has subsets v1 and v2.
Result routesFor(const std::string& vs_spec, ProxyIdentity proxy = proxyIn("a"),
                 uint32_t port = 80) {
  Translation t = translateOnce({webInA(), destinationRule("web", "a", R"(  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
)"),
                                 virtualService("web", "a", vs_spec)},
                                proxy);
  Result r;
  r.warnings = t.warnings;
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, std::to_string(port),
                                              "web.a.svc.cluster.local:" + std::to_string(port));
  EXPECT_NE(vh, nullptr);
  if (vh != nullptr) r.routes.assign(vh->routes().begin(), vh->routes().end());
  return r;
}

TEST(HttpRoutesTest, EveryMatchFieldAndOneRoutePerMatchBlock) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - name: api
    match:
    - name: exact
      uri: {exact: /api/v1}
      ignoreUriCase: true
      method: {exact: GET}
      headers:
        x-a: {exact: "1"}
        x-b: {prefix: pre}
        x-c: {regex: "v[0-9]+"}
        x-d: {}
      withoutHeaders:
        x-debug: {}
        x-env: {exact: prod}
      queryParams:
        user: {exact: jason}
        beta: {}
      authority: {prefix: web}
    - uri: {regex: "/api/v[0-9]+/.*"}
    - uri: {prefix: /api}
    route: [{destination: {host: web, subset: v1}}]
)");
  ASSERT_EQ(r.routes.size(), 3u);
  EXPECT_TRUE(equalsYaml(r.routes[0], std::string(R"(
name: api.exact
match:
  path: /api/v1
  ignoreCase: true
  method: {exact: GET}
  headers:
  - {name: x-a, stringMatch: {exact: "1"}}
  - {name: x-b, stringMatch: {prefix: pre}}
  - {name: x-c, stringMatch: {regex: "v[0-9]+"}}
  - {name: x-d, present: true}
  - {name: x-debug, present: true, invert: true}
  - {name: x-env, stringMatch: {exact: prod}, invert: true}
  - {name: ":authority", stringMatch: {prefix: web}}
  queryParameters:
  - {name: beta, present: true}
  - {name: user, stringMatch: {exact: jason}}
route:
  cluster: outbound|80|v1|web.a.svc.cluster.local
  )") + kDefaultRetryYaml));
  EXPECT_EQ(r.routes[1].name(), "api");
  EXPECT_EQ(r.routes[1].match().regex(), "/api/v[0-9]+/.*");
  EXPECT_EQ(r.routes[2].match().prefix(), "/api");
  EXPECT_THAT(r.warnings, IsEmpty());
}

TEST(HttpRoutesTest, MatchesForOtherPortsSourcesAndGatewaysAreDropped) {
  const std::string spec = R"(  hosts: [web]
  http:
  - name: admin-only
    match: [{port: 81}]
    route: [{destination: {host: web, subset: v2}}]
  - name: canary-clients
    match: [{sourceLabels: {canary: "true"}}, {sourceNamespace: b}]
    route: [{destination: {host: web, subset: v2}}]
  - name: ingress-only
    match: [{gateways: [istio-system/ingress], uri: {prefix: /x}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: rest
    route: [{destination: {host: web, subset: v1, port: {number: 80}}}]
)";
  Result plain = routesFor(spec);
  ASSERT_EQ(plain.routes.size(), 1u);
  EXPECT_EQ(plain.routes[0].name(), "rest");

  Result canary = routesFor(spec, proxyIn("a", {{"canary", "true"}}));
  ASSERT_EQ(canary.routes.size(), 2u);
  EXPECT_EQ(canary.routes[0].name(), "canary-clients");
  EXPECT_EQ(canary.routes[0].route().cluster(), kV2);

  Result other_ns = routesFor(spec, proxyIn("b"));
  ASSERT_EQ(other_ns.routes.size(), 2u);
  EXPECT_EQ(other_ns.routes[0].name(), "canary-clients");

  // On port 81 the port match applies; the port-80 destination stays on port 80.
  Result admin = routesFor(spec, proxyIn("a"), 81);
  ASSERT_EQ(admin.routes.size(), 2u);
  EXPECT_EQ(admin.routes[0].route().cluster(), "outbound|81|v2|web.a.svc.cluster.local");
  EXPECT_EQ(admin.routes[1].route().cluster(), kV1);
}

TEST(HttpRoutesTest, WeightedDestinationsAndHeaderOperations) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - headers:
      request:
        set: {x-b: "2", x-a: "1"}
        add: {x-trace: "on"}
        remove: [cookie]
      response:
        set: {x-served-by: mesh}
        remove: [server]
    route:
    - destination: {host: web, subset: v1}
      weight: 75
      headers: {request: {set: {x-subset: v1}}, response: {add: {x-via: v1}}}
    - destination: {host: web.a.svc.cluster.local, subset: v2}
      weight: 25
  - match: [{uri: {prefix: /one}}]
    route:
    - destination: {host: web, subset: v2}
      headers: {request: {set: {x-subset: v2}}}
)");
  ASSERT_EQ(r.routes.size(), 2u);
  EXPECT_TRUE(equalsYaml(r.routes[0], std::string(R"(
match: {prefix: /}
requestHeaders:
  set: [{name: x-a, value: "1"}, {name: x-b, value: "2"}]
  add: [{name: x-trace, value: "on"}]
  remove: [cookie]
responseHeaders:
  set: [{name: x-served-by, value: mesh}]
  remove: [server]
route:
  weightedClusters:
    clusters:
    - name: outbound|80|v1|web.a.svc.cluster.local
      weight: 75
      requestHeaders: {set: [{name: x-subset, value: v1}]}
      responseHeaders: {add: [{name: x-via, value: v1}]}
    - {name: outbound|80|v2|web.a.svc.cluster.local, weight: 25}
  )") + kDefaultRetryYaml));
  // One destination: its header operations join the route's.
  EXPECT_EQ(r.routes[1].route().cluster(), kV2);
  ASSERT_EQ(r.routes[1].request_headers().set_size(), 1);
  EXPECT_EQ(r.routes[1].request_headers().set(0).name(), "x-subset");
}

TEST(HttpRoutesTest, UnknownDestinationsAreDroppedAndARouteWithNoneLeftAnswers503) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: web, subset: v1}, weight: 50}
    - {destination: {host: web, subset: v9}, weight: 50}
  - match: [{uri: {prefix: /gone}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: nowhere.example.com}}]
)");
  ASSERT_EQ(r.routes.size(), 2u);
  EXPECT_EQ(r.routes[0].route().cluster(), kV1);
  EXPECT_TRUE(equalsYaml(r.routes[1], R"(
match: {prefix: /gone}
directResponse: {status: 503, body: no healthy upstream}
)"));
  EXPECT_THAT(r.warnings, Contains(HasSubstr("subset v9 is unknown")));
  EXPECT_THAT(r.warnings, Contains(HasSubstr("nowhere.example.com is unknown")));
}

TEST(HttpRoutesTest, RewritesRedirectsAndDirectResponses) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - match: [{uri: {prefix: /old}}]
    rewrite: {uri: /new, authority: backend.internal}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {regex: "/r/.*"}}]
    rewrite: {uri: /fixed}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /re}}]
    rewrite: {uriRegexRewrite: {match: "^/re/(.*)$", rewrite: "/\\1"}}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {exact: /moved}}]
    redirect: {uri: /here, authority: other.example.com, port: 8443, scheme: https, redirectCode: 308}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
)");
  ASSERT_EQ(r.routes.size(), 5u);
  EXPECT_EQ(r.routes[0].route().prefix_rewrite(), "/new");
  EXPECT_EQ(r.routes[0].route().host_rewrite(), "backend.internal");
  EXPECT_EQ(r.routes[1].route().regex_rewrite().pattern(), "^.*$");
  EXPECT_EQ(r.routes[1].route().regex_rewrite().substitution(), "/fixed");
  EXPECT_TRUE(r.routes[1].route().prefix_rewrite().empty());
  EXPECT_EQ(r.routes[2].route().regex_rewrite().pattern(), "^/re/(.*)$");
  EXPECT_EQ(r.routes[2].route().regex_rewrite().substitution(), "/\\1");
  EXPECT_TRUE(equalsYaml(r.routes[3], R"(
match: {path: /moved}
redirect: {path: /here, host: other.example.com, port: 8443, scheme: https, responseCode: 308}
)"));
  EXPECT_TRUE(equalsYaml(r.routes[4], R"(
match: {path: /teapot}
directResponse: {status: 418, body: short and stout}
)"));
}

TEST(HttpRoutesTest, TimeoutsAndRetries) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - match: [{uri: {prefix: /a}}]
    timeout: 3s
    retries: {attempts: 0}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /b}}]
    retries: {attempts: 4}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /c}}]
    retries: {attempts: 1, retryOn: "503,reset,504", perTryTimeout: 100ms, backoff: 50ms}
    route: [{destination: {host: web, subset: v1}}]
)");
  ASSERT_EQ(r.routes.size(), 3u);
  EXPECT_EQ(r.routes[0].route().timeout().seconds(), 3);
  EXPECT_FALSE(r.routes[0].route().has_retry_policy());  // attempts 0 disables retries
  EXPECT_EQ(r.routes[1].route().retry_policy().num_retries(), 4u);
  EXPECT_EQ(r.routes[1].route().retry_policy().retry_on(),
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
  EXPECT_THAT(r.routes[1].route().retry_policy().retriable_status_codes(),
              ::testing::ElementsAre(503));
  v1::RetryPolicy expected = fromYaml<v1::RetryPolicy>(
      "{numRetries: 1, retryOn: \"reset,retriable-status-codes\", retriableStatusCodes: [503, "
      "504], perTryTimeout: 0.1s, backoffBaseInterval: 0.05s}");
  EXPECT_TRUE(sameMessage(expected, r.routes[2].route().retry_policy()));
}

TEST(HttpRoutesTest, FaultsWithAndWithoutPercentages) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - match: [{uri: {prefix: /a}}]
    fault:
      delay: {fixedDelay: 2s}
      abort: {httpStatus: 503, percentage: {value: 12.5}}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /b}}]
    fault:
      delay: {fixedDelay: 1s, percent: 30}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /c}}]
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}
    route: [{destination: {host: web, subset: v1}}]
)");
  ASSERT_EQ(r.routes.size(), 3u);
  v1::FaultInjection a = fromYaml<v1::FaultInjection>(
      "{delay: {fixedDelay: 2s, percentage: 0}, abort: {httpStatus: 503, percentage: 12.5}}");
  EXPECT_TRUE(sameMessage(a, r.routes[0].fault())) << r.routes[0].DebugString();
  EXPECT_EQ(r.routes[1].fault().delay().percentage().value(), 30.0);
  v1::FaultInjection c = fromYaml<v1::FaultInjection>("{abort: {grpcStatus: 14, percentage: 10}}");
  EXPECT_TRUE(sameMessage(c, r.routes[2].fault())) << r.routes[2].DebugString();
  EXPECT_THAT(r.warnings, ::testing::Not(Contains(HasSubstr("grpcStatus"))));
}

TEST(HttpRoutesTest, MirrorsAndCors) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - match: [{uri: {prefix: /one}}]
    mirror: {host: web, subset: v2}
    mirrorPercentage: {value: 25}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*[.]example[.]org"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-served-by]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /many}}]
    mirrors:
    - destination: {host: web, subset: v2}
    - destination: {host: web, subset: v9}
      percentage: {value: 5}
    corsPolicy: {allowOrigin: ["*"]}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /old}}]
    mirror: {host: web, subset: v2}
    mirrorPercent: 10
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /redirect}}]
    mirror: {host: web, subset: v2}
    redirect: {uri: /elsewhere}
)");
  ASSERT_EQ(r.routes.size(), 4u);
  EXPECT_TRUE(equalsYaml(r.routes[0], std::string(R"(
match: {prefix: /one}
cors:
  allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*[.]example[.]org"}]
  allowMethods: [GET, POST]
  allowHeaders: [x-token]
  exposeHeaders: [x-served-by]
  maxAge: 86400s
  allowCredentials: true
route:
  cluster: outbound|80|v1|web.a.svc.cluster.local
  requestMirrorPolicies: [{cluster: outbound|80|v2|web.a.svc.cluster.local, percentage: 25}]
  )") + kDefaultRetryYaml));
  // mirrors[]: absent percentage is every request; an unknown subset is dropped.
  const auto& many = r.routes[1];
  ASSERT_EQ(many.route().request_mirror_policies_size(), 1);
  EXPECT_EQ(many.route().request_mirror_policies(0).cluster(), kV2);
  EXPECT_FALSE(many.route().request_mirror_policies(0).has_percentage());
  ASSERT_EQ(many.cors().allow_origins_size(), 1);
  EXPECT_EQ(many.cors().allow_origins(0).regex(), ".*");
  EXPECT_EQ(r.routes[2].route().request_mirror_policies(0).percentage().value(), 10.0);
  EXPECT_TRUE(r.routes[3].has_redirect());
  EXPECT_THAT(r.warnings,
              Contains(HasSubstr("mirror destination web.a.svc.cluster.local subset v9")));
  EXPECT_THAT(r.warnings, Contains(HasSubstr("apply only to routes with destinations")));
}

TEST(HttpRoutesTest, AVirtualServiceWithNoRouteForThePortFallsBackToTheDefaultRoute) {
  Result r = routesFor(R"(  hosts: [web]
  http:
  - match: [{port: 80}]
    route: [{destination: {host: web, subset: v1}}]
)",
                       proxyIn("a"), 81);
  ASSERT_EQ(r.routes.size(), 1u);
  EXPECT_EQ(r.routes[0].route().cluster(), "outbound|81||web.a.svc.cluster.local");
}

TEST(HttpRoutesTest, DefaultRetryPolicyIsIstios) {
  v1::RetryPolicy p = defaultRetryPolicy();
  EXPECT_EQ(p.num_retries(), 2u);
  EXPECT_EQ(p.retry_on(),
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
  EXPECT_THAT(p.retriable_status_codes(), ::testing::ElementsAre(503));
}

}  // namespace
}  // namespace mesh::pilot::translate::testing
