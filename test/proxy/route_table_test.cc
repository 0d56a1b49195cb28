#include "proxy/router/route_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/proxy/test_util.h"

namespace mesh::proxy {
namespace {

using testing::ParsedRequest;
using testing::SnapshotFixture;

// Each route answers with a direct response whose body names it, so tests read the match.
constexpr const char* kRoutes = R"(listeners:
- name: l
  address: 127.0.0.1:0
  http: {routeConfigName: r}
routeConfigs:
- name: r
  virtualHosts:
  - name: exact
    domains: ["reviews.default.svc.cluster.local", "reviews"]
    routes:
    - {name: jason, match: {prefix: /, headers: [{name: end-user, stringMatch: {exact: jason}}]}, directResponse: {status: 200, body: jason}}
    - {name: beta, match: {prefix: /, headers: [{name: x-beta, present: true}]}, directResponse: {status: 200, body: beta}}
    - {name: no-canary, match: {prefix: /api, headers: [{name: x-canary, present: false}], queryParameters: [{name: v, stringMatch: {exact: "2"}}]}, directResponse: {status: 200, body: api-v2}}
    - {name: ua, match: {prefix: /, headers: [{name: user-agent, stringMatch: {regex: ".*Firefox.*"}}]}, directResponse: {status: 200, body: firefox}}
    - {name: exactpath, match: {path: /exact}, directResponse: {status: 200, body: exact}}
    - {name: regexpath, match: {regex: "/items/[0-9]+"}, directResponse: {status: 200, body: item}}
    - {name: post, match: {prefix: /, method: {exact: POST}}, directResponse: {status: 200, body: post}}
    - {name: icase, match: {prefix: /CASE, ignoreCase: true}, directResponse: {status: 200, body: icase}}
    - {name: catchall, match: {prefix: /}, directResponse: {status: 200, body: catchall}}
  - name: suffix
    domains: ["*.example.com"]
    routes: [{match: {prefix: /}, directResponse: {status: 200, body: suffix}}]
  - name: longer-suffix
    domains: ["*.api.example.com"]
    routes: [{match: {prefix: /}, directResponse: {status: 200, body: longer-suffix}}]
  - name: prefix
    domains: ["ratings.*"]
    routes: [{match: {prefix: /}, directResponse: {status: 200, body: prefix}}]
  - name: default
    domains: ["*"]
    routes: [{match: {prefix: /only}, directResponse: {status: 200, body: default}}]
)";

class RouteTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = f_.build(kRoutes);
    ASSERT_TRUE(s.ok()) << s.status().toString();
    snap_ = *s;
    table_ = snap_->listeners[0].routes;
  }
  // Body of the matching route, or "none".
  std::string match(const std::string& host, const std::string& target,
                    const std::string& headers = "", const std::string& method = "GET") {
    ParsedRequest req(testing::get(host, target, headers, method));
    EXPECT_TRUE(req.ok());
    const Route* r = table_->findRoute(req.head());
    return r ? r->direct_body : "none";
  }

  SnapshotFixture f_;
  std::shared_ptr<const Snapshot> snap_;
  const RouteTable* table_ = nullptr;
};

TEST_F(RouteTableTest, VirtualHostPrecedence) {
  EXPECT_EQ(table_->findVirtualHost("reviews")->name, "exact");
  EXPECT_EQ(table_->findVirtualHost("REVIEWS:9080")->name, "exact");  // case and port ignored
  EXPECT_EQ(table_->findVirtualHost("reviews.default.svc.cluster.local:80")->name, "exact");
  EXPECT_EQ(table_->findVirtualHost("www.example.com")->name, "suffix");
  EXPECT_EQ(table_->findVirtualHost("v1.api.example.com")->name, "longer-suffix");
  EXPECT_EQ(table_->findVirtualHost("example.com")->name, "default");  // "*.x" needs a label
  EXPECT_EQ(table_->findVirtualHost("ratings.prod")->name, "prefix");
  EXPECT_EQ(table_->findVirtualHost("[::1]:8080")->name, "default");
  EXPECT_EQ(table_->findVirtualHost("other")->name, "default");
}

TEST_F(RouteTableTest, HeaderMatchesAndFirstMatchWins) {
  EXPECT_EQ(match("reviews", "/", "end-user: jason\r\n"), "jason");
  EXPECT_EQ(match("reviews", "/", "end-user: jasonx\r\n"), "catchall");
  // Both headers present: the first listed route wins.
  EXPECT_EQ(match("reviews", "/", "x-beta: 1\r\nend-user: jason\r\n"), "jason");
  EXPECT_EQ(match("reviews", "/", "X-Beta: \r\n"), "beta");  // presence, any value
  EXPECT_EQ(match("reviews", "/", "User-Agent: Mozilla/5.0 Firefox/120\r\n"), "firefox");
  EXPECT_EQ(match("reviews", "/", "User-Agent: curl\r\n"), "catchall");
}

TEST_F(RouteTableTest, AbsentHeaderAndQueryParameter) {
  EXPECT_EQ(match("reviews", "/api?v=2"), "api-v2");
  EXPECT_EQ(match("reviews", "/api?a=1&v=2"), "api-v2");
  EXPECT_EQ(match("reviews", "/api?v=2", "x-canary: yes\r\n"), "catchall");
  EXPECT_EQ(match("reviews", "/api?v=3"), "catchall");
  EXPECT_EQ(match("reviews", "/api"), "catchall");
}

TEST_F(RouteTableTest, PathKindsAndMethod) {
  EXPECT_EQ(match("reviews", "/exact"), "exact");
  EXPECT_EQ(match("reviews", "/exact?q=1"), "exact");  // the query is not part of the path
  EXPECT_EQ(match("reviews", "/exact/more"), "catchall");
  EXPECT_EQ(match("reviews", "/items/42"), "item");
  EXPECT_EQ(match("reviews", "/items/42x"), "catchall");  // regex matches the whole path
  EXPECT_EQ(match("reviews", "/x", "", "POST"), "post");
  EXPECT_EQ(match("reviews", "/case/sensitive"), "icase");
  EXPECT_EQ(match("other", "/only/this"), "default");
  EXPECT_EQ(match("other", "/elsewhere"), "none");
}

TEST(RouteRewriteTest, PrefixRewriteAndRegexRewriteKeepTheQuery) {
  SnapshotFixture f;
  auto snap = f.build(R"(listeners: [{name: l, address: "127.0.0.1:0", http: {routeConfigName: r}}]
routeConfigs:
- name: r
  virtualHosts:
  - domains: ["*"]
    routes:
    - {match: {prefix: /v1/}, route: {cluster: c, prefixRewrite: /}}
    - {match: {prefix: /old}, route: {cluster: c, prefixRewrite: /new}}
    - {match: {path: /exact}, route: {cluster: c, prefixRewrite: /replaced}}
    - {match: {prefix: /re}, route: {cluster: c, regexRewrite: {pattern: "^/re/([a-z]+)/([0-9]+)$", substitution: "/\\2/\\1"}}}
    - {match: {prefix: /}, route: {cluster: c}}
clusters: [{name: c, endpoints: [{address: 10.0.0.1, port: 80}]}]
)");
  ASSERT_TRUE(snap.ok()) << snap.status().toString();
  const RouteTable& t = *(*snap)->listeners[0].routes;
  auto rewrite = [&](const std::string& target) {
    ParsedRequest req(testing::get("h", target));
    const Route* r = t.findRoute(req.head());
    std::string out;
    return r->rewritePath(req.head(), &out) ? out : std::string("(unchanged)");
  };
  EXPECT_EQ(rewrite("/v1/reviews/1?x=y"), "/reviews/1?x=y");
  EXPECT_EQ(rewrite("/v1/"), "/");
  EXPECT_EQ(rewrite("/old/path"), "/new/path");
  EXPECT_EQ(rewrite("/oldies"), "/newies");
  EXPECT_EQ(rewrite("/exact?q=1"), "/replaced?q=1");  // an exact match replaces the whole path
  EXPECT_EQ(rewrite("/re/abc/123"), "/123/abc");
  EXPECT_EQ(rewrite("/plain"), "(unchanged)");
}

TEST(RouteRedirectTest, LocationKeepsWhatIsNotReplaced) {
  SnapshotFixture f;
  auto snap = f.build(R"(listeners: [{name: l, address: "127.0.0.1:0", http: {routeConfigName: r}}]
routeConfigs:
- name: r
  virtualHosts:
  - domains: ["*"]
    routes:
    - {match: {prefix: /https}, redirect: {scheme: https, responseCode: 308}}
    - {match: {prefix: /moved}, redirect: {host: new.example.com, prefixRewrite: /here}}
    - {match: {prefix: /strip}, redirect: {path: /landing, stripQuery: true, port: 8443}}
)");
  ASSERT_TRUE(snap.ok()) << snap.status().toString();
  const RouteTable& t = *(*snap)->listeners[0].routes;
  auto location = [&](const std::string& host, const std::string& target) {
    ParsedRequest req(testing::get(host, target));
    const Route* r = t.findRoute(req.head());
    return r->redirectLocation(req.head(), false) + " " + std::to_string(r->redirect_code);
  };
  EXPECT_EQ(location("shop.example.com:8080", "/https/x?a=1"),
            "https://shop.example.com/https/x?a=1 308");
  EXPECT_EQ(location("shop.example.com", "/moved/deep?a=1"),
            "http://new.example.com/here/deep?a=1 301");
  EXPECT_EQ(location("shop.example.com", "/strip?a=1"), "http://shop.example.com:8443/landing 301");
}

TEST(RetryPolicyTest, ParsesEnvoyAndIstioConditions) {
  RetryPolicy p;
  std::vector<std::string> unknown;
  parseRetryOn("5xx, gateway-error,connect-failure,reset,retriable-4xx,503,unavailable,bogus", &p,
               &unknown);
  EXPECT_EQ(p.retry_on, kRetry5xx | kRetryGatewayError | kRetryConnectFailure | kRetryReset |
                            kRetryRetriable4xx | kRetryRetriableStatusCodes |
                            kRetryGrpcUnavailable);
  EXPECT_EQ(p.status_codes, std::vector<uint16_t>{503});
  EXPECT_EQ(unknown, std::vector<std::string>{"bogus"});
}

TEST(RetryPolicyTest, GrpcConditionsRetryTheirStatusesOnly) {
  RetryPolicy p;
  std::vector<std::string> unknown;
  parseRetryOn("cancelled,deadline-exceeded,internal,resource-exhausted,unavailable", &p, &unknown);
  EXPECT_TRUE(unknown.empty());
  for (uint32_t code : {1u, 4u, 8u, 13u, 14u}) EXPECT_TRUE(p.retriableGrpcStatus(code)) << code;
  for (uint32_t code : {0u, 2u, 3u, 5u, 7u, 12u, 15u, 16u, 99u}) {
    EXPECT_FALSE(p.retriableGrpcStatus(code)) << code;
  }
  // gRPC conditions never retry on an HTTP status, and HTTP ones never on a gRPC status.
  EXPECT_FALSE(p.retriableStatus(503));
  RetryPolicy only_unavailable;
  parseRetryOn("unavailable", &only_unavailable, &unknown);
  EXPECT_TRUE(only_unavailable.retriableGrpcStatus(14));
  EXPECT_FALSE(only_unavailable.retriableGrpcStatus(1));
  EXPECT_FALSE(only_unavailable.retriableGrpcStatus(4));
  RetryPolicy http_only;
  parseRetryOn("5xx,gateway-error", &http_only, &unknown);
  EXPECT_FALSE(http_only.retriableGrpcStatus(14));
}

TEST(RetryPolicyTest, RetriableStatusFollowsConditions) {
  RetryPolicy gateway;
  gateway.retry_on = kRetryGatewayError;
  EXPECT_TRUE(gateway.retriableStatus(502));
  EXPECT_TRUE(gateway.retriableStatus(504));
  EXPECT_FALSE(gateway.retriableStatus(500));
  RetryPolicy any5xx;
  any5xx.retry_on = kRetry5xx;
  EXPECT_TRUE(any5xx.retriableStatus(500));
  EXPECT_FALSE(any5xx.retriableStatus(429));
  RetryPolicy codes;
  codes.retry_on = kRetryRetriableStatusCodes;
  codes.status_codes = {429};
  EXPECT_TRUE(codes.retriableStatus(429));
  EXPECT_FALSE(codes.retriableStatus(503));
  RetryPolicy conflict;
  conflict.retry_on = kRetryRetriable4xx;
  EXPECT_TRUE(conflict.retriableStatus(409));
  EXPECT_FALSE(conflict.retriableStatus(404));
}

TEST(RetryPolicyTest, BackoffIsFullyJitteredAndCapped) {
  RetryPolicy p;
  p.base_interval = Millis(25);
  p.max_interval = Millis(250);
  // Retry n waits uniformly in [0, (2^n - 1) * base], capped at max.
  for (uint64_t r = 0; r < 1000; ++r) {
    uint64_t random = r * 7919;
    EXPECT_LE(p.backoff(1, random).count(), 25);
    EXPECT_LE(p.backoff(2, random).count(), 75);
    EXPECT_LE(p.backoff(3, random).count(), 175);
    EXPECT_LE(p.backoff(10, random).count(), 250);
  }
  // The whole range is used, not a constant.
  std::set<int64_t> seen;
  for (uint64_t r = 0; r < 200; ++r) seen.insert(p.backoff(2, r).count());
  EXPECT_EQ(seen.size(), 76u);
}

}  // namespace
}  // namespace mesh::proxy
