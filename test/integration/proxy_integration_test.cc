// istio-proxy end to end: the real proxy binary in front of real httpbin backends on 127.0.0.1,
// every port picked by the OS. Covers routing and rewrites, a weighted split, retries hiding a
// failing endpoint, route timeouts, reload under load, a refused reload, drain, and Istio
// metrics after traffic.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/telemetry/peer_metadata.h"
#include "test/integration/harness.h"
#include "test/testing/client_hello_builder.h"

namespace mesh::integration {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;

// Cluster YAML for one httpbin endpoint.
std::string cluster(const std::string& name, const std::vector<uint16_t>& ports,
                    const std::string& version, const std::string& extra = "") {
  std::string y = "- name: " + name + "\n" + extra +
                  "  service: {host: httpbin.default.svc.cluster.local, name: httpbin, "
                  "namespace: default}\n  endpoints:\n";
  for (uint16_t p : ports) {
    y += "  - {address: 127.0.0.1, port: " + std::to_string(p) + ", workload: {name: httpbin-" +
         version + ", namespace: default, labels: {app: httpbin, version: " + version + "}}}\n";
  }
  return y;
}

// The version that answered, from httpbin's x-version header.
std::string versionOf(const HttpResponse& r) { return r.header("x-version"); }

class ProxyIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1_ = startHttpbin(dir_, "httpbin-v1", "v1");
    v2_ = startHttpbin(dir_, "httpbin-v2", "v2");
  }

  // Starts the proxy with route config "r" holding one catch-all virtual host whose routes are
  // `routes` (YAML list items indented by four spaces), and the clusters `clusters`.
  void startWithRoutes(const std::string& routes, const std::string& clusters,
                       int concurrency = 2) {
    startWith(
        "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: default\n"
        "    domains: [\"*\"]\n    routes:\n" +
            routes + "clusters:\n" + clusters,
        concurrency);
  }

  // Starts the proxy with one outbound listener "http" using route config "r".
  void startWith(const std::string& routes_and_clusters, int concurrency = 2) {
    std::string yaml = proxyPreamble() +
                       "listeners:\n- name: http\n  address: 127.0.0.1:0\n"
                       "  http: {routeConfigName: r}\n" +
                       routes_and_clusters;
    proxy_ = startProxy(dir_, yaml, {"http"}, concurrency);
    port_ = proxy_.listeners["http"];
  }

  std::string metrics() {
    HttpResponse r = httpGet(proxy_.prometheus, "/stats/prometheus");
    EXPECT_TRUE(r.ok) << r.error;
    return r.body;
  }

  // Telemetry is recorded when a request completes on its worker, which may be just after the
  // client has read the response: scrape until `metric{labels}` reaches `at_least` (bounded),
  // and return that scrape for exact checks.
  std::string metricsWhen(const std::string& metric, const std::vector<std::string>& labels,
                          double at_least) {
    auto deadline = Clock::now() + milliseconds(5000);
    std::string m = metrics();
    while (promSum(m, metric, labels) < at_least && Clock::now() < deadline) m = metrics();
    return m;
  }

  // Writes a new config and POSTs /reload; returns the admin response.
  HttpResponse reloadWith(const std::string& yaml) {
    writeFileAtomic(proxy_.config_path, yaml);
    return httpPost(proxy_.admin, "/reload");
  }

  TempDir dir_;
  Httpbin v1_, v2_;
  Proxy proxy_;
  uint16_t port_ = 0;
};

TEST_F(ProxyIntegrationTest, RoutingAndRewrites) {
  startWith(R"y(routeConfigs:
- name: r
  virtualHosts:
  - name: api
    domains: ["api.example.com", "*.api.internal"]
    routes:
    - {match: {prefix: /}, route: {cluster: v2}, responseHeaders: {set: [{name: x-vhost, value: api}]}}
  - name: default
    domains: ["*"]
    routes:
    - name: jason
      match: {prefix: /, headers: [{name: end-user, stringMatch: {exact: jason}}]}
      route: {cluster: v2}
    - name: v2-prefix
      match: {prefix: /v2/}
      route: {cluster: v2, prefixRewrite: /}
      requestHeaders: {set: [{name: x-added, value: by-route}], remove: [x-secret]}
    - name: regex
      match: {regex: "/items/([0-9]+)"}
      route: {cluster: v1, regexRewrite: {pattern: "/items/([0-9]+)", substitution: "/status/\\1"}}
    - name: authority
      match: {path: /whoami}
      route: {cluster: v1, prefixRewrite: /headers, hostRewrite: rewritten.example}
    - name: old
      match: {prefix: /old}
      redirect: {path: /new, responseCode: 302}
    - name: teapot
      match: {path: /direct}
      directResponse: {status: 418, body: "short and stout"}
    - name: only-get
      match: {prefix: /v1/, method: {exact: GET}}
      route: {cluster: v1, prefixRewrite: /}
      responseHeaders: {set: [{name: x-mesh-route, value: v1}]}
clusters:
)y" + cluster("v1", {v1_.port}, "v1") +
            cluster("v2", {v2_.port}, "v2"));

  // Prefix rewrite, request header set and remove: /headers on v2 echoes what it received.
  HttpResponse r = httpGet(port_, "/v2/headers", {"x-secret: hunter2"});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(versionOf(r), "v2");
  EXPECT_THAT(r.body, HasSubstr("\"x-added\":\"by-route\""));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("hunter2")));
  EXPECT_THAT(r.body, HasSubstr("\"x-request-id\":"));  // generated when absent
  EXPECT_THAT(r.body, HasSubstr("\"traceparent\":"));

  // A B3 context continues with this hop as the span: the old parent is replaced, the flags
  // go on as they came.
  r = httpGet(port_, "/v2/headers",
              {"x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124", "x-b3-spanid: a2fb4a1d1a96d312",
               "x-b3-parentspanid: 0020000000000001", "x-b3-sampled: 1", "x-b3-flags: 1"});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.body, HasSubstr("\"x-b3-traceid\":\"463ac35c9f6413ad48485a3953bb6124\""));
  EXPECT_THAT(r.body, HasSubstr("\"x-b3-parentspanid\":\"a2fb4a1d1a96d312\""));
  EXPECT_THAT(r.body, HasSubstr("\"x-b3-flags\":\"1\""));
  EXPECT_THAT(r.body, HasSubstr("\"traceparent\":\"00-463ac35c9f6413ad48485a3953bb6124-"));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("0020000000000001")));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("a2fb4a1d1a96d312\"}")));  // not our span id

  // Header match.
  r = httpGet(port_, "/", {"end-user: jason"});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(versionOf(r), "v2");

  // Regex rewrite with a capture group: /items/418 becomes /status/418.
  r = httpGet(port_, "/items/418");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 418);
  EXPECT_EQ(versionOf(r), "v1");

  // Authority rewrite.
  r = httpGet(port_, "/whoami");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_THAT(r.body, HasSubstr("\"host\":\"rewritten.example\""));

  // Redirect keeps the request's authority, replaces the path.
  r = httpGet(port_, "/old/page", {}, "shop.local");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("location"), "http://shop.local/new");

  // Direct response.
  r = httpGet(port_, "/direct");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 418);
  EXPECT_EQ(r.body, "short and stout");

  // Method match and response header set.
  r = httpGet(port_, "/v1/status/201");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("x-mesh-route"), "v1");

  // Virtual hosts by authority: exact (port ignored) and wildcard suffix.
  for (const std::string host : {"api.example.com", "api.example.com:8080", "eu.api.internal"}) {
    r = httpGet(port_, "/", {}, host);
    ASSERT_TRUE(r.ok) << host << ": " << r.error;
    EXPECT_EQ(versionOf(r), "v2") << host;
    EXPECT_EQ(r.header("x-vhost"), "api") << host;
  }

  // No route: POST /v1/ matches nothing: 404 with flag NR in the metrics.
  HttpClient c(port_);
  r = c.roundTrip("POST /v1/echo HTTP/1.1\r\nHost: test.local\r\nContent-Length: 2\r\n\r\nhi",
                  milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 404);
  std::string m = metricsWhen("istio_requests_total", {"response_code=\"404\""}, 1);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"404\"", "response_flags=\"NR\""}),
            1)
      << m;
}

TEST_F(ProxyIntegrationTest, WeightedSplitWithinTolerance) {
  startWithRoutes(R"(    - match: {prefix: /}
      route: {weightedClusters: {clusters: [{name: v1, weight: 80}, {name: v2, weight: 20}]}}
)",
                  cluster("v1", {v1_.port}, "v1") + cluster("v2", {v2_.port}, "v2"));

  constexpr int kRequests = 1000;
  std::map<std::string, int> seen;
  HttpClient c(port_);
  for (int i = 0; i < kRequests; ++i) {
    HttpResponse r = c.get("/");
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_EQ(r.status, 200);
    ++seen[versionOf(r)];
  }
  // 20% of 1000 is 200; one standard deviation of a random 80/20 split is 12.6. Five of them:
  // a correct proxy fails this about once in 1.7 million runs, a 70/30 or 90/10 split always.
  EXPECT_EQ(seen["v1"] + seen["v2"], kRequests);
  EXPECT_NEAR(seen["v2"], 200, 63) << "v1=" << seen["v1"] << " v2=" << seen["v2"];

  // The metrics agree with what the client saw.
  std::string m = metricsWhen("istio_requests_total", {}, kRequests);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"destination_version=\"v2\""}), seen["v2"]);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"destination_version=\"v1\""}), seen["v1"]);
}

TEST_F(ProxyIntegrationTest, RetryHidesFailingEndpoint) {
  Httpbin bad = startHttpbin(dir_, "httpbin-bad", "v1", {"--status-override", "503"});
  startWithRoutes(R"(    - match: {prefix: /retried}
      route: {cluster: mixed, prefixRewrite: /, retryPolicy: {retryOn: "5xx", numRetries: 3, perTryTimeout: 2s}}
    - match: {prefix: /plain}
      route: {cluster: mixed, prefixRewrite: /}
)",
                  cluster("mixed", {v1_.port, bad.port}, "v1", "  lbPolicy: ROUND_ROBIN\n"));

  // Without retries, round robin sends half of the requests to the failing endpoint.
  int plain_failures = 0;
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = httpGet(port_, "/plain");
    ASSERT_TRUE(r.ok) << r.error;
    if (r.status == 503) ++plain_failures;
  }
  EXPECT_GE(plain_failures, 5) << "the failing endpoint should be visible without retries";

  // With retries, the client never sees it.
  for (int i = 0; i < 50; ++i) {
    HttpResponse r = httpGet(port_, "/retried");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200) << "request " << i;
    EXPECT_EQ(r.header("x-instance"), "httpbin-v1");
  }
  std::string m = metricsWhen("istio_requests_total", {}, 70);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"200\""}),
            50 + 20 - plain_failures);
  EXPECT_GT(promSum(m, "envoy_cluster_upstream_rq_retry", {"cluster_name=\"mixed\""}), 0) << m;
}

TEST_F(ProxyIntegrationTest, RouteTimeoutIs504WithFlagUT) {
  startWithRoutes(R"(    - match: {prefix: /}
      route: {cluster: v1, timeout: 300ms}
)",
                  cluster("v1", {v1_.port}, "v1"));

  auto start = Clock::now();
  HttpResponse r = httpGet(port_, "/delay/5000");
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 504);
  // Not a timing assertion on speed: only that the route timeout, not the backend, ended it.
  EXPECT_LT(took.count(), 4000);
  EXPECT_EQ(promSum(metricsWhen("istio_requests_total", {"response_code=\"504\""}, 1),
                    "istio_requests_total", {"response_code=\"504\"", "response_flags=\"UT\""}),
            1);

  // A request within the timeout passes.
  r = httpGet(port_, "/delay/10");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
}

TEST_F(ProxyIntegrationTest, FaultInjection) {
  startWithRoutes(R"(    - match: {prefix: /abort}
      route: {cluster: v1, prefixRewrite: /}
      fault: {abort: {httpStatus: 503}}
    - match: {prefix: /half}
      route: {cluster: v1, prefixRewrite: /}
      fault: {abort: {httpStatus: 500, percentage: 50}}
    - match: {prefix: /slow}
      route: {cluster: v1, prefixRewrite: /, timeout: 1s}
      fault: {delay: {fixedDelay: 1500ms}}
    - match: {prefix: /both}
      route: {cluster: v1, prefixRewrite: /}
      fault: {delay: {fixedDelay: 200ms}, abort: {httpStatus: 418}}
)",
                  cluster("v1", {v1_.port}, "v1"));

  // Abort at 100%: the upstream never sees the request.
  HttpClient c(port_);
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = c.get("/abort");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.body, "fault filter abort");
  }
  HttpResponse count = httpGet(v1_.port, "/count");
  ASSERT_TRUE(count.ok) << count.error;
  EXPECT_THAT(count.body, HasSubstr("\"requests\":1}"));  // only this /count itself

  // Abort at 50% over 400 requests: within five standard deviations (10 each) of 200.
  int aborted = 0, passed = 0;
  for (int i = 0; i < 400; ++i) {
    HttpResponse r = c.get("/half");
    ASSERT_TRUE(r.ok) << r.error;
    if (r.status == 500) ++aborted;
    if (r.status == 200) ++passed;
  }
  EXPECT_EQ(aborted + passed, 400);
  EXPECT_NEAR(aborted, 200, 50);

  // A 1.5 s delay on a route with a 1 s timeout: the delay comes before the router, so the
  // timeout does not fire and the request succeeds after at least the delay.
  auto start = Clock::now();
  HttpResponse r = c.get("/slow", {}, "test.local", milliseconds(10000));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(took.count(), 1500);

  // Delay, then abort.
  start = Clock::now();
  r = c.get("/both");
  took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 418);
  EXPECT_GE(took.count(), 200);

  std::string m = metricsWhen("istio_requests_total", {}, 10 + 400 + 2);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"503\"", "response_flags=\"FI\""}),
            10);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"500\"", "response_flags=\"FI\""}),
            aborted);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"200\"", "response_flags=\"DI\""}),
            1);
  EXPECT_EQ(
      promSum(m, "istio_requests_total", {"response_code=\"418\"", "response_flags=\"DI,FI\""}), 1)
      << m;
}

// Istio's circuit-breaking task in miniature: one connection, one queued request, the rest
// refused with 503 and flag UO. One worker, so the per-worker allowance of one connection per
// host (as in Envoy) does not blur the counts.
TEST_F(ProxyIntegrationTest, CircuitBreakersOverflowWithUO) {
  startWithRoutes(
      R"(    - match: {prefix: /cb/}
      route: {cluster: limited, prefixRewrite: /}
    - match: {prefix: /one/}
      route: {cluster: one-request, prefixRewrite: /}
    - match: {prefix: /fresh/}
      route: {cluster: fresh, prefixRewrite: /}
)",
      cluster("limited", {v1_.port}, "v1",
              "  circuitBreakers: {maxConnections: 1, maxPendingRequests: 1}\n") +
          cluster("one-request", {v1_.port}, "v1", "  circuitBreakers: {maxRequests: 1}\n") +
          cluster("fresh", {v1_.port}, "v1", "  maxRequestsPerConnection: 1\n"),
      1);
  auto gauge = [&](const std::string& metric, const std::string& cluster_name) {
    return promSum(metrics(), metric, {"cluster_name=\"" + cluster_name + "\""});
  };
  // Bounded wait until a metric of the cluster reaches `value` (readiness, not a sleep).
  auto waitFor = [&](const std::string& metric, const std::string& cluster_name, double value) {
    auto deadline = Clock::now() + milliseconds(10000);
    while (gauge(metric, cluster_name) < value) {
      if (Clock::now() > deadline) return false;
    }
    return true;
  };

  // 1: holds the only connection. 2: waits for it. 3: nothing left, refused at once.
  HttpResponse first, second;
  std::thread a([&] { first = httpGet(port_, "/cb/delay/800"); });
  ASSERT_TRUE(waitFor("envoy_cluster_upstream_rq_total", "limited", 1));
  std::thread b([&] { second = httpGet(port_, "/cb/status/202"); });
  ASSERT_TRUE(waitFor("envoy_cluster_upstream_rq_pending_active", "limited", 1));
  HttpResponse third = httpGet(port_, "/cb/status/202");
  a.join();
  b.join();
  ASSERT_TRUE(third.ok) << third.error;
  EXPECT_EQ(third.status, 503);
  EXPECT_THAT(third.body, HasSubstr("overflow"));
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(first.status, 200);
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_EQ(second.status, 202);  // served on the same connection once the first was done
  EXPECT_EQ(gauge("envoy_cluster_upstream_cx_total", "limited"), 1);
  EXPECT_EQ(gauge("envoy_cluster_upstream_rq_pending_active", "limited"), 0);
  EXPECT_EQ(gauge("envoy_cluster_upstream_rq_pending_overflow", "limited"), 1);

  // maxRequests: 1 refuses a second concurrent request without queueing it.
  HttpResponse slow;
  std::thread c([&] { slow = httpGet(port_, "/one/delay/500"); });
  ASSERT_TRUE(waitFor("envoy_cluster_upstream_rq_total", "one-request", 1));
  HttpResponse refused = httpGet(port_, "/one/status/202");
  c.join();
  ASSERT_TRUE(refused.ok) << refused.error;
  EXPECT_EQ(refused.status, 503);
  ASSERT_TRUE(slow.ok) << slow.error;
  EXPECT_EQ(slow.status, 200);

  // maxRequestsPerConnection: 1 opens a connection per request.
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = httpGet(port_, "/fresh/status/200");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200);
  }
  EXPECT_EQ(gauge("envoy_cluster_upstream_cx_total", "fresh"), 3);

  std::string m = metricsWhen("istio_requests_total", {"response_code=\"503\""}, 2);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"503\"", "response_flags=\"UO\""}),
            2)
      << m;
}

// A failing endpoint is ejected after consecutive 5xx, shown in /clusters, and comes back once
// its ejection time is over.
TEST_F(ProxyIntegrationTest, OutlierDetectionEjectsAndReturns) {
  Httpbin bad = startHttpbin(dir_, "httpbin-bad", "v1", {"--status-override", "503"});
  startWithRoutes(R"(    - match: {prefix: /}
      route: {cluster: mixed}
)",
                  cluster("mixed", {v1_.port, bad.port}, "v1",
                          "  lbPolicy: ROUND_ROBIN\n"
                          "  outlierDetection: {consecutive5xx: 2, baseEjectionTime: 1s, "
                          "maxEjectionPercent: 50}\n"),
                  1);
  HttpClient c(port_);
  // Round robin alternates: after two 503s from the bad endpoint it is ejected.
  int failures = 0, i = 0;
  auto ejected_at = Clock::now();  // no later than the ejection: the start of its request
  for (; i < 20 && failures < 2; ++i) {
    ejected_at = Clock::now();
    HttpResponse r = c.get("/");
    ASSERT_TRUE(r.ok) << r.error;
    failures += r.status == 503;
  }
  ASSERT_EQ(failures, 2) << "after " << i << " requests";
  HttpResponse clusters = httpGet(proxy_.admin, "/clusters");
  ASSERT_TRUE(clusters.ok) << clusters.error;
  const std::string bad_key = "mixed::127.0.0.1:" + std::to_string(bad.port) + "::";
  EXPECT_THAT(clusters.body, HasSubstr(bad_key + "health_flags::/failed_outlier_check"));
  EXPECT_THAT(clusters.body, HasSubstr(bad_key + "outlier_ejection::consecutive_5xx"));
  EXPECT_EQ(promSum(metrics(), "envoy_cluster_outlier_detection_ejections_enforced_total",
                    {"cluster_name=\"mixed\""}),
            1);

  // While ejected, every request goes to the healthy endpoint.
  int served = 0;
  while (Clock::now() - ejected_at < milliseconds(500)) {
    HttpResponse r = c.get("/");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200);
    ++served;
  }
  EXPECT_GT(served, 0);

  // After the 1 s ejection it is used again: a 503 shows up (bounded wait).
  bool returned = false;
  auto deadline = Clock::now() + milliseconds(10000);
  while (!returned && Clock::now() < deadline) {
    HttpResponse r = c.get("/");
    ASSERT_TRUE(r.ok) << r.error;
    returned = r.status == 503;
  }
  EXPECT_TRUE(returned) << "the ejected endpoint never came back";
  // Ejection times are kept in whole milliseconds, so allow for one of rounding.
  EXPECT_GE(std::chrono::duration_cast<milliseconds>(Clock::now() - ejected_at).count(), 998);
}

// Mirroring: v1 answers, v2 receives a copy with the host suffixed "-shadow" and the body; a
// mirror that never answers does not hold the primary back; 50% mirroring within tolerance.
TEST_F(ProxyIntegrationTest, MirroringIsFireAndForget) {
  // A mirror target that accepts connections (the kernel completes the handshake) but never
  // reads or answers.
  int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(silent, 64), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t silent_port = ntohs(addr.sin_port);

  startWithRoutes(R"(    - match: {prefix: /full/}
      route: {cluster: v1, prefixRewrite: /, requestMirrorPolicies: [{cluster: v2}]}
    - match: {prefix: /half/}
      route: {cluster: v1, prefixRewrite: /, requestMirrorPolicies: [{cluster: v2, percentage: 50}]}
    - match: {prefix: /silent/}
      route: {cluster: v1, prefixRewrite: /, timeout: 2s, requestMirrorPolicies: [{cluster: silent}]}
)",
                  cluster("v1", {v1_.port}, "v1") + cluster("v2", {v2_.port}, "v2") +
                      cluster("silent", {silent_port}, "v1"));

  // The caller sees only the primary; the mirror got the same request, "-shadow" host, body.
  HttpClient c(port_);
  HttpResponse r = c.roundTrip(
      "POST /full/echo HTTP/1.1\r\nHost: httpbin.local:8000\r\nContent-Length: 11\r\n\r\nhello "
      "there",
      milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(versionOf(r), "v1");
  EXPECT_EQ(r.body, "hello there");
  auto deadline = Clock::now() + milliseconds(5000);
  std::string last;
  while (last.find("/echo") == std::string::npos && Clock::now() < deadline) {
    HttpResponse l = httpGet(v2_.port, "/last");
    ASSERT_TRUE(l.ok) << l.error;
    last = l.body;
  }
  EXPECT_THAT(last, HasSubstr("\"method\":\"POST\",\"path\":\"/echo\""));
  EXPECT_THAT(last, HasSubstr("\"host\":\"httpbin.local-shadow:8000\""));
  EXPECT_THAT(last, HasSubstr("\"body_bytes\":11"));

  // 50% of 400 requests mirrored, within five standard deviations (10 each).
  for (int i = 0; i < 400; ++i) {
    HttpResponse h = c.get("/half/status/200");
    ASSERT_TRUE(h.ok) << h.error;
    EXPECT_EQ(versionOf(h), "v1");
  }
  std::string m = metricsWhen("envoy_cluster_upstream_rq_total", {"cluster_name=\"v1\""}, 401);
  double mirrored = promSum(m, "envoy_cluster_upstream_rq_total", {"cluster_name=\"v2\""}) - 1;
  EXPECT_NEAR(mirrored, 200, 50);

  // A mirror that never answers: every primary still completes (each would time out at 5 s if
  // it waited for its mirror; the mirror itself gives up at the route's 2 s timeout).
  for (int i = 0; i < 5; ++i) {
    HttpResponse s = c.get("/silent/status/201", {}, "test.local", milliseconds(1500));
    ASSERT_TRUE(s.ok) << s.error;
    EXPECT_EQ(s.status, 201);
  }
  ::close(silent);
}

// A request body consumed while a read was in flight (the upstream connection was still being
// established) once left the next request on the connection unparsed.
TEST_F(ProxyIntegrationTest, KeepAliveAfterABodyOnAFreshUpstreamConnection) {
  startWithRoutes(R"(    - match: {prefix: /}
      route: {cluster: v1}
)",
                  cluster("v1", {v1_.port}, "v1", "  maxRequestsPerConnection: 1\n"));
  HttpClient c(port_);
  for (int i = 0; i < 5; ++i) {
    // Each request gets a new upstream connection (maxRequestsPerConnection: 1).
    HttpResponse r = c.roundTrip(
        "POST /echo HTTP/1.1\r\nHost: test.local\r\nContent-Length: 11\r\n\r\nhello there",
        milliseconds(5000));
    ASSERT_TRUE(r.ok) << "POST " << i << ": " << r.error;
    EXPECT_EQ(r.body, "hello there");
    r = c.get("/status/201");
    ASSERT_TRUE(r.ok) << "GET " << i << ": " << r.error;
    EXPECT_EQ(r.status, 201);
  }
}

TEST_F(ProxyIntegrationTest, CorsPreflightAndResponseHeaders) {
  startWithRoutes(R"(    - match: {prefix: /}
      route: {cluster: v1}
      cors:
        allowOrigins: [{exact: "https://shop.example"}, {regex: "https://.*\\.trusted\\.example"}]
        allowMethods: [GET, POST]
        allowHeaders: [x-custom]
        exposeHeaders: [x-version]
        maxAge: 24h
        allowCredentials: true
)",
                  cluster("v1", {v1_.port}, "v1"));

  // A preflight from an allowed origin is answered by the proxy.
  HttpResponse r = httpGet(port_, "/status/204", {}, "test.local");  // baseline: no Origin
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.header("access-control-allow-origin"), "");
  HttpClient c(port_);
  r = c.roundTrip(
      "OPTIONS /anything HTTP/1.1\r\nHost: test.local\r\nOrigin: https://shop.example\r\n"
      "Access-Control-Request-Method: POST\r\n\r\n",
      milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("access-control-allow-origin"), "https://shop.example");
  EXPECT_EQ(r.header("access-control-allow-methods"), "GET,POST");
  EXPECT_EQ(r.header("access-control-allow-headers"), "x-custom");
  EXPECT_EQ(r.header("access-control-max-age"), "86400");
  EXPECT_EQ(r.header("access-control-allow-credentials"), "true");
  EXPECT_EQ(r.header("x-version"), "");  // not forwarded

  // An actual request from an allowed origin (regex) is forwarded and gets the headers.
  r = c.get("/status/200", {"Origin: https://eu.trusted.example"});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.header("x-version"), "v1");
  EXPECT_EQ(r.header("access-control-allow-origin"), "https://eu.trusted.example");
  EXPECT_EQ(r.header("access-control-expose-headers"), "x-version");
  EXPECT_EQ(r.header("access-control-allow-credentials"), "true");

  // Another origin: nothing added, and its preflight goes to the upstream.
  r = c.get("/status/200", {"Origin: https://evil.example"});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.header("access-control-allow-origin"), "");
  r = c.roundTrip(
      "OPTIONS /status/200 HTTP/1.1\r\nHost: test.local\r\nOrigin: https://evil.example\r\n"
      "Access-Control-Request-Method: POST\r\n\r\n",
      milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.header("x-version"), "v1");
  EXPECT_EQ(r.header("access-control-allow-origin"), "");
}

// A TCP proxy listener: bytes relayed both ways, clusters picked per connection by weight,
// a refused upstream closes the client's connection, Istio's TCP metrics.
TEST_F(ProxyIntegrationTest, TcpProxyRelaysAndSplitsConnections) {
  // A port with nothing behind it: bind, note the port, close.
  int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t dead_port = ntohs(addr.sin_port);
  ::close(probe);

  std::string yaml = proxyPreamble() + R"(listeners:
- name: tcp
  address: 127.0.0.1:0
  tcpProxy: {weightedClusters: {clusters: [{name: v1, weight: 80}, {name: v2, weight: 20}]}}
- name: dead
  address: 127.0.0.1:0
  tcpProxy: {cluster: dead}
clusters:
)" + cluster("v1", {v1_.port}, "v1") +
                     cluster("v2", {v2_.port}, "v2") + cluster("dead", {dead_port}, "v1");
  proxy_ = startProxy(dir_, yaml, {"tcp", "dead"});
  const uint16_t tcp = proxy_.listeners["tcp"];

  // One connection, several requests: all on the backend the connection was given.
  HttpClient c(tcp);
  HttpResponse first = c.roundTrip(
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", milliseconds(5000));
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(first.body, "hello");
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = c.get("/");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(versionOf(r), versionOf(first));
  }
  c.close();

  // 300 connections split 80/20 within five standard deviations (6.9 each).
  std::map<std::string, int> seen;
  for (int i = 0; i < 300; ++i) {
    HttpResponse r = httpGet(tcp, "/");  // Connection: close: the backend's FIN is passed on
    ASSERT_TRUE(r.ok) << r.error;
    ++seen[versionOf(r)];
  }
  EXPECT_EQ(seen["v1"] + seen["v2"], 300);
  EXPECT_NEAR(seen["v2"], 60, 35);

  // A refused upstream: the client's connection is closed without a byte.
  HttpResponse dead = httpGet(proxy_.listeners["dead"], "/");
  EXPECT_FALSE(dead.ok);
  EXPECT_THAT(dead.error, ::testing::AnyOf(HasSubstr("closed"), HasSubstr("reset")));

  std::string m = metricsWhen("istio_tcp_connections_closed_total", {}, 302);
  EXPECT_EQ(promSum(m, "istio_tcp_connections_opened_total", {"request_protocol=\"tcp\""}), 302);
  EXPECT_EQ(promSum(m, "istio_tcp_connections_closed_total",
                    {"destination_version=\"v2\"", "reporter=\"source\""}),
            seen["v2"] + (versionOf(first) == "v2" ? 1 : 0));  // the keep-alive one too
  EXPECT_EQ(promSum(m, "istio_tcp_connections_closed_total", {"response_flags=\"UF\""}), 1);
  EXPECT_GT(promSum(m, "istio_tcp_received_bytes_total"), 300 * 20);
  EXPECT_GT(promSum(m, "istio_tcp_sent_bytes_total"), 300 * 50);
}

// A port on 127.0.0.1 where a connect hangs: a listener with backlog 0 whose accept queue is
// full (one connection never accepted, one more in case the queue holds two) drops new SYNs.
class BlackHoleListener {
 public:
  BlackHoleListener() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 0), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    filler_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(filler_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    extra_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    (void)::connect(extra_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));  // not waited
  }
  ~BlackHoleListener() {
    for (int fd : {extra_fd_, filler_fd_, listen_fd_}) ::close(fd);
  }
  uint16_t port() const { return port_; }

 private:
  int listen_fd_ = -1, filler_fd_ = -1, extra_fd_ = -1;
  uint16_t port_ = 0;
};

// The cluster's connectTimeout (Istio's connectionPool.tcp.connectTimeout) bounds the TCP
// proxy's connect, as in Envoy: the client's connection is closed after about the timeout with
// flag UF, the connect counts as timed out and failed, and outlier detection hears of it (one
// gateway failure ejects the host here).
TEST_F(ProxyIntegrationTest, TcpProxyConnectTimeoutClosesTheClientWithUF) {
  BlackHoleListener hole;
  std::string yaml = proxyPreamble() + R"(listeners:
- name: tcp
  address: 127.0.0.1:0
  tcpProxy: {cluster: hole}
clusters:
)" +
                     cluster("hole", {hole.port()}, "v1",
                             "  connectTimeout: 0.5s\n"
                             "  outlierDetection: {consecutiveGatewayFailure: 1}\n");
  proxy_ = startProxy(dir_, yaml, {"tcp"});

  auto t0 = Clock::now();
  HttpResponse r = httpGet(proxy_.listeners["tcp"], "/", {}, "test.local", milliseconds(10000));
  auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, ::testing::AnyOf(HasSubstr("closed"), HasSubstr("reset")));
  EXPECT_GE(elapsed, milliseconds(500));
  EXPECT_LT(elapsed, milliseconds(3000));  // the kernel would retry its SYN for minutes

  std::string m = metricsWhen("istio_tcp_connections_closed_total", {"response_flags=\"UF\""}, 1);
  EXPECT_EQ(promSum(m, "istio_tcp_connections_closed_total", {"response_flags=\"UF\""}), 1) << m;
  const std::vector<std::string> hole_cluster = {"cluster_name=\"hole\""};
  EXPECT_EQ(promSum(m, "envoy_cluster_upstream_cx_connect_timeout", hole_cluster), 1);
  EXPECT_EQ(promSum(m, "envoy_cluster_upstream_cx_connect_fail", hole_cluster), 1);
  EXPECT_EQ(promSum(m, "envoy_cluster_outlier_detection_ejections_enforced_total", hole_cluster),
            1);
}

// TLS passthrough routed by the ClientHello's server name, never terminated: the backends are
// plain httpbins, which answer the TLS bytes with a 400 naming their version.
TEST_F(ProxyIntegrationTest, SniRoutesPickTheClusterWithoutTerminatingTls) {
  std::string yaml = proxyPreamble() + R"(listeners:
- name: sni
  address: 127.0.0.1:0
  tcpProxy:
    cluster: v1
    sniRoutes: [{serverNames: [reviews.example, "*.v2.example"], cluster: v2}]
- name: strict
  address: 127.0.0.1:0
  tcpProxy: {sniRoutes: [{serverNames: [reviews.example], cluster: v2}]}
clusters:
)" + cluster("v1", {v1_.port}, "v1") +
                     cluster("v2", {v2_.port}, "v2");
  proxy_ = startProxy(dir_, yaml, {"sni", "strict"});
  // The bytes are followed by an empty line, so that httpbin's parser sees a (bad) request
  // line and answers at once.
  auto versionFor = [&](uint16_t port, const std::string& bytes) {
    HttpClient c(port);
    HttpResponse r = c.roundTrip(bytes + "\r\n\r\n", milliseconds(5000));
    return r.ok ? versionOf(r) : "error: " + r.error;
  };
  const uint16_t sni = proxy_.listeners["sni"];
  EXPECT_EQ(versionFor(sni, testing::clientHello("reviews.example")), "v2");
  EXPECT_EQ(versionFor(sni, testing::clientHello("EU.v2.example")), "v2");
  EXPECT_EQ(versionFor(sni, testing::clientHello("other.example")), "v1");
  // Not TLS at all: the default cluster, the bytes unchanged.
  EXPECT_EQ(versionFor(sni, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close"), "v1");
  // No default: a name that matches nothing is closed.
  EXPECT_THAT(versionFor(proxy_.listeners["strict"], testing::clientHello("other.example")),
              HasSubstr("error"));
  EXPECT_EQ(versionFor(proxy_.listeners["strict"], testing::clientHello("reviews.example")), "v2");
  std::string m = metricsWhen("istio_tcp_connections_closed_total", {}, 6);
  EXPECT_EQ(promSum(m, "istio_tcp_connections_closed_total", {"response_flags=\"NR\""}), 1) << m;
}

// maxRetries: while one request waits to retry, another request's retry is refused.
TEST_F(ProxyIntegrationTest, MaxRetriesBoundsRetriesWaitingAtOnce) {
  Httpbin bad = startHttpbin(dir_, "httpbin-bad", "v1", {"--status-override", "503"});
  startWithRoutes(R"(    - match: {prefix: /}
      route:
        cluster: failing
        retryPolicy: {retryOn: 5xx, numRetries: 1, backoffBaseInterval: 1s, backoffMaxInterval: 1s}
)",
                  cluster("failing", {bad.port}, "v1", "  circuitBreakers: {maxRetries: 1}\n"), 1);
  // The backoff is jittered in [0, 1 s]: a round in which the first request's retry started
  // before the second request arrived shows no overflow, so a few rounds are allowed (the
  // chance that three in a row do is about one in a billion).
  double overflow = 0, retries = 0;
  for (int round = 0; round < 3 && overflow == 0; ++round) {
    HttpResponse first;
    std::thread a([&] { first = httpGet(port_, "/"); });
    // Readiness: the first request has scheduled its retry.
    auto deadline = Clock::now() + milliseconds(10000);
    while (promSum(metrics(), "envoy_cluster_upstream_rq_retry", {"cluster_name=\"failing\""}) <
           retries + 1) {
      ASSERT_LT(Clock::now(), deadline);
    }
    HttpResponse second = httpGet(port_, "/");
    a.join();
    ASSERT_TRUE(first.ok) << first.error;
    ASSERT_TRUE(second.ok) << second.error;
    EXPECT_EQ(first.status, 503);
    EXPECT_EQ(second.status, 503);
    std::string m = metrics();
    overflow = promSum(m, "envoy_cluster_upstream_rq_retry_overflow", {"cluster_name=\"failing\""});
    retries = promSum(m, "envoy_cluster_upstream_rq_retry", {"cluster_name=\"failing\""});
  }
  EXPECT_EQ(overflow, 1);
}

// Protocol detection on a listener with both http and tcpProxy: HTTP/1.1 goes to the HTTP
// routes, other bytes to the TCP cluster, and a client that sends nothing (a server-first
// protocol) is connected to the TCP cluster once the detection timeout has passed.
TEST_F(ProxyIntegrationTest, ProtocolDetectionSplitsHttpTcpAndServerFirst) {
  // A server-first backend: greets every connection it accepts.
  int greeter = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(greeter, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(greeter, 8), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(greeter, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t greeter_port = ntohs(addr.sin_port);

  std::string yaml = proxyPreamble() + R"(listeners:
- name: auto
  address: 127.0.0.1:0
  protocolDetectionTimeout: 100ms
  http: {routeConfigName: r}
  tcpProxy: {cluster: tcp}
routeConfigs:
- name: r
  virtualHosts:
  - name: default
    domains: ["*"]
    routes:
    - match: {prefix: /}
      route: {cluster: v1}
      responseHeaders: {set: [{name: x-path, value: http}]}
clusters:
)" + cluster("v1", {v1_.port}, "v1") +
                     cluster("tcp", {v2_.port}, "v2") + cluster("greeter", {greeter_port}, "v1");
  proxy_ = startProxy(dir_, yaml, {"auto"});
  const uint16_t port = proxy_.listeners["auto"];

  // HTTP, on a keep-alive connection: the HTTP routes answer, twice.
  HttpClient c(port);
  for (int i = 0; i < 2; ++i) {
    HttpResponse r = c.get("/status/200");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.header("x-path"), "http");
    EXPECT_EQ(versionOf(r), "v1");
  }
  // TLS bytes: the TCP cluster (a v2 httpbin, which answers the bytes with a 400).
  HttpClient t(port);
  HttpResponse r = t.roundTrip(testing::clientHello("db.example") + "\r\n\r\n", milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(versionOf(r), "v2");
  EXPECT_EQ(r.header("x-path"), "");

  // Server-first: reload with the TCP cluster pointing at the greeter, connect and send nothing.
  std::string greet_yaml = yaml;
  greet_yaml.replace(greet_yaml.find("tcpProxy: {cluster: tcp}"), 24,
                     "tcpProxy: {cluster: greeter}");
  HttpResponse reload = reloadWith(greet_yaml);
  ASSERT_TRUE(reload.ok && reload.status == 200) << reload.body;
  std::thread server([&] {
    pollfd p{greeter, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return;
    int s = ::accept(greeter, nullptr, nullptr);
    if (s < 0) return;
    ::send(s, "HELLO\r\n", 7, MSG_NOSIGNAL);
    ::close(s);
  });
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  std::string got;
  char buf[64];
  pollfd p{client, POLLIN, 0};
  while (got.size() < 7 && ::poll(&p, 1, 5000) == 1) {
    ssize_t n = ::recv(client, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(client);
  server.join();
  EXPECT_EQ(got, "HELLO\r\n");

  // A long detection timeout, but the port is listed as server-first: no waiting for the client.
  std::string listed_yaml = greet_yaml;
  listed_yaml.replace(
      listed_yaml.find("protocolDetectionTimeout: 100ms"), 31,
      "protocolDetectionTimeout: 20s\n  serverFirstPorts: [" + std::to_string(port) + "]");
  reload = reloadWith(listed_yaml);
  ASSERT_TRUE(reload.ok && reload.status == 200) << reload.body;
  std::thread server2([&] {
    pollfd sp{greeter, POLLIN, 0};
    if (::poll(&sp, 1, 10000) != 1) return;
    int s = ::accept(greeter, nullptr, nullptr);
    if (s < 0) return;
    ::send(s, "HELLO\r\n", 7, MSG_NOSIGNAL);
    ::close(s);
  });
  const auto start = std::chrono::steady_clock::now();
  client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  got.clear();
  p = pollfd{client, POLLIN, 0};
  while (got.size() < 7 && ::poll(&p, 1, 10000) == 1) {
    ssize_t n = ::recv(client, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  const auto waited = std::chrono::steady_clock::now() - start;
  ::close(client);
  server2.join();
  ::close(greeter);
  EXPECT_EQ(got, "HELLO\r\n");
  // Detection would have held the connection for 20 s; listed, the greeting comes at once.
  EXPECT_LT(waited, std::chrono::seconds(10));
}

// Reload while two clients send requests back to back (one keep-alive, one new connection per
// request): no request fails, and each reload's split takes effect.
TEST_F(ProxyIntegrationTest, ReloadUnderLoadDropsNothing) {
  auto config = [&](int w1, int w2) {
    return proxyPreamble() +
           "listeners:\n- name: http\n  address: 127.0.0.1:0\n  http: {routeConfigName: r}\n" +
           R"(routeConfigs:
- name: r
  virtualHosts:
  - name: default
    domains: ["*"]
    routes:
    - match: {prefix: /}
      route: {weightedClusters: {clusters: [{name: v1, weight: )" +
           std::to_string(w1) + "}, {name: v2, weight: " + std::to_string(w2) +
           "}]}}\nclusters:\n" + cluster("v1", {v1_.port}, "v1") + cluster("v2", {v2_.port}, "v2");
  };
  proxy_ = startProxy(dir_, config(100, 0), {"http"});
  port_ = proxy_.listeners["http"];

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_failure;
  std::mutex mu;
  auto client = [&](bool keep_alive) {
    HttpClient c(port_);
    while (!stop.load()) {
      HttpResponse r = keep_alive ? c.get("/") : httpGet(port_, "/");
      if (r.ok && r.status == 200) {
        ++ok;
      } else {
        ++failed;
        std::lock_guard<std::mutex> l(mu);
        if (first_failure.empty())
          first_failure = std::string(keep_alive ? "keep-alive" : "new connection") + ", " +
                          (r.ok ? "status " + std::to_string(r.status) : r.error) + " after " +
                          std::to_string(ok.load()) + " ok";
      }
    }
  };
  std::thread a(client, true), b(client, false);

  const int kReloads = 10;
  for (int i = 1; i <= kReloads; ++i) {
    bool to_v2 = i % 2 == 1;
    int before = ok.load();
    // Let some traffic through on the current config first (bounded wait on a counter).
    auto deadline = Clock::now() + milliseconds(5000);
    while (ok.load() < before + 200 && Clock::now() < deadline) std::this_thread::yield();
    HttpResponse r = reloadWith(config(to_v2 ? 0 : 100, to_v2 ? 100 : 0));
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_EQ(r.status, 200) << r.body;
    // Once the reload answered, every worker has the new snapshot: new requests follow it.
    HttpResponse check = httpGet(port_, "/");
    ASSERT_TRUE(check.ok) << check.error;
    EXPECT_EQ(versionOf(check), to_v2 ? "v2" : "v1") << "after reload " << i;
  }
  stop = true;
  a.join();
  b.join();
  EXPECT_EQ(failed.load(), 0) << "first failure: " << first_failure;
  EXPECT_GT(ok.load(), kReloads * 200);
  EXPECT_EQ(proxy_.version(), static_cast<uint64_t>(kReloads + 1));
  EXPECT_EQ(promSum(metrics(), "mesh_config_reload_total", {"result=\"success\""}), kReloads + 1);
}

TEST_F(ProxyIntegrationTest, InvalidReloadIsRefusedAndOldConfigServes) {
  startWithRoutes(R"(    - match: {prefix: /}
      route: {cluster: v1}
)",
                  cluster("v1", {v1_.port}, "v1"));

  std::string bad = proxyPreamble() +
                    "listeners:\n- name: http\n  address: 127.0.0.1:0\n"
                    "  http: {routeConfigName: r}\n"
                    "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: default\n"
                    "    domains: [\"*\"]\n    routes:\n    - match: {prefix: /}\n"
                    "      route: {cluster: nowhere}\n"
                    "clusters:\n" +
                    cluster("v1", {v1_.port}, "v1");
  // The line of "route: {cluster: nowhere}", 1-based.
  int line = 1;
  for (char ch : bad.substr(0, bad.find("cluster: nowhere"))) line += ch == '\n';

  HttpResponse r = reloadWith(bad);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_NE(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr(proxy_.config_path + ":" + std::to_string(line)));
  EXPECT_THAT(r.body, HasSubstr("routeConfigs[0].virtualHosts[0].routes[0].route.cluster"));
  EXPECT_THAT(r.body, HasSubstr("nowhere"));
  HttpResponse dump = httpGet(proxy_.admin, "/config_dump");
  ASSERT_TRUE(dump.ok) << dump.error;
  EXPECT_THAT(dump.body, HasSubstr("\"last_rejected_config\":\"" + proxy_.config_path + ":" +
                                   std::to_string(line)));

  // A YAML syntax error is refused too.
  r = reloadWith(proxyPreamble() + "listeners: [\n");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_NE(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr(proxy_.config_path + ":"));

  // The old config still serves, and the refusal is counted and shown.
  r = httpGet(port_, "/");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(versionOf(r), "v1");
  EXPECT_EQ(proxy_.version(), 1u);
  EXPECT_EQ(promSum(metrics(), "mesh_config_reload_total", {"result=\"rejected\""}), 2);
}

// SIGTERM while a request is in flight: the listener closes, the request finishes, the process
// exits 0.
TEST_F(ProxyIntegrationTest, DrainLetsInFlightRequestFinish) {
  startWithRoutes(R"(    - match: {prefix: /}
      route: {cluster: v1, timeout: 20s}
)",
                  cluster("v1", {v1_.port}, "v1"));

  HttpResponse slow;
  std::thread t(
      [&] { slow = httpGet(port_, "/delay/1500", {}, "test.local", milliseconds(15000)); });
  // Readiness: the proxy has sent the request upstream.
  auto deadline = Clock::now() + milliseconds(10000);
  while (promSum(metrics(), "envoy_cluster_upstream_rq_total", {"cluster_name=\"v1\""}) < 1) {
    ASSERT_LT(Clock::now(), deadline) << "the request never reached the upstream";
  }
  proxy_.process->signal(SIGTERM);
  // The listener stops accepting while the request is still being served.
  deadline = Clock::now() + milliseconds(5000);
  while (!connectRefused(port_)) {
    ASSERT_LT(Clock::now(), deadline) << "listener still accepting after SIGTERM";
  }
  t.join();
  ASSERT_TRUE(slow.ok) << slow.error;
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(versionOf(slow), "v1");
  auto code = proxy_.process->wait(milliseconds(10000));
  ASSERT_TRUE(code.has_value()) << "istio-proxy did not exit after draining";
  EXPECT_EQ(*code, 0) << proxy_.process->log();
}

// A drain waits for open TCP proxy connections too: the relay keeps working after SIGTERM, and
// the proxy exits once the client is done, not at the drain timeout (10 s by default).
TEST_F(ProxyIntegrationTest, DrainWaitsForTcpConnections) {
  std::string yaml = proxyPreamble() + R"(listeners:
- name: tcp
  address: 127.0.0.1:0
  tcpProxy: {cluster: v1}
clusters:
)" + cluster("v1", {v1_.port}, "v1");
  proxy_ = startProxy(dir_, yaml, {"tcp"});
  HttpClient c(proxy_.listeners["tcp"]);
  ASSERT_EQ(c.get("/").status, 200);
  proxy_.process->signal(SIGTERM);
  const auto deadline = Clock::now() + milliseconds(5000);
  while (!connectRefused(proxy_.listeners["tcp"])) {
    ASSERT_LT(Clock::now(), deadline) << "listener still accepting after SIGTERM";
  }
  // Draining: the open connection still relays.
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = c.get("/");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200);
  }
  EXPECT_TRUE(proxy_.process->running());
  c.close();
  auto code = proxy_.process->wait(milliseconds(10000));
  ASSERT_TRUE(code.has_value()) << "istio-proxy did not exit once the TCP connection closed";
  EXPECT_EQ(*code, 0) << proxy_.process->log();
}

TEST_F(ProxyIntegrationTest, IstioMetricsCarryIstiosLabels) {
  startWithRoutes(R"(    - match: {prefix: /}
      route: {cluster: v1}
)",
                  cluster("v1", {v1_.port}, "v1"));
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = httpGet(port_, "/status/201");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 201);
  }
  std::string m = metricsWhen("istio_request_duration_milliseconds_count", {}, 3);
  EXPECT_EQ(promSum(m, "istio_requests_total",
                    {"reporter=\"source\"", "source_workload=\"client-v1\"",
                     "source_workload_namespace=\"default\"", "source_app=\"client\"",
                     "source_version=\"v1\"", "destination_workload=\"httpbin-v1\"",
                     "destination_service=\"httpbin.default.svc.cluster.local\"",
                     "destination_service_name=\"httpbin\"", "destination_version=\"v1\"",
                     "request_protocol=\"http\"", "response_code=\"201\"", "response_flags=\"-\""}),
            3)
      << m;
  EXPECT_EQ(promSum(m, "istio_request_duration_milliseconds_count",
                    {"destination_version=\"v1\"", "response_code=\"201\""}),
            3);
  EXPECT_THAT(m, HasSubstr("# TYPE istio_requests_total counter"));
}

// An inbound listener names the source of each request by its x-envoy-peer-metadata, also when
// requests on one connection carry different ones (the lookup is remembered per connection).
TEST_F(ProxyIntegrationTest, InboundNamesEachRequestsSourceByItsPeerMetadata) {
  std::string yaml = proxyPreamble() + R"(listeners:
- name: http
  address: 127.0.0.1:0
  direction: INBOUND
  http: {routeConfigName: r}
routeConfigs:
- name: r
  virtualHosts:
  - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: v1}}]}
clusters:
)" + cluster("v1", {v1_.port}, "v1");
  proxy_ = startProxy(dir_, yaml, {"http"});
  port_ = proxy_.listeners["http"];
  auto metadata = [](const std::string& workload) {
    return "x-envoy-peer-metadata: " +
           proxy::encodePeerMetadata(workload + "-pod", workload, "shop", {{"app", workload}},
                                     "default", "Kubernetes") +
           "\r\n";
  };
  HttpClient c(port_);
  for (const char* source : {"alpha", "beta", "alpha", "alpha", "beta"}) {
    HttpResponse r =
        c.roundTrip("GET /status/200 HTTP/1.1\r\nHost: test.local\r\n" + metadata(source) + "\r\n",
                    milliseconds(5000));
    ASSERT_TRUE(r.ok) << source << ": " << r.error;
  }
  std::string m = metricsWhen("istio_requests_total", {"reporter=\"destination\""}, 5);
  EXPECT_EQ(promSum(m, "istio_requests_total",
                    {"reporter=\"destination\"", "source_workload=\"alpha\"",
                     "source_workload_namespace=\"shop\""}),
            3)
      << m;
  EXPECT_EQ(
      promSum(m, "istio_requests_total", {"reporter=\"destination\"", "source_workload=\"beta\""}),
      2)
      << m;
}

// PassthroughCluster on a connection that was not captured (no original destination other
// than the proxy itself): refused, never a loop back into the proxy.
TEST_F(ProxyIntegrationTest, OriginalDstWithoutCaptureIsRefused) {
  std::string yaml = proxyPreamble() + R"(listeners:
- name: http
  address: 127.0.0.1:0
  http:
    routeConfig:
      virtualHosts:
      - {name: any, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: PassthroughCluster}}]}
- name: tcp
  address: 127.0.0.1:0
  useOriginalDst: true
  tcpProxy: {cluster: PassthroughCluster}
clusters:
- {name: PassthroughCluster, type: ORIGINAL_DST}
)";
  proxy_ = startProxy(dir_, yaml, {"http", "tcp"});
  HttpResponse r = httpGet(proxy_.listeners["http"], "/headers");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("no healthy upstream"));
  HttpResponse t = httpGet(proxy_.listeners["tcp"], "/headers");
  EXPECT_FALSE(t.ok);  // closed without an answer
  std::string m = metricsWhen("envoy_cluster_upstream_cx_none_healthy",
                              {"cluster_name=\"PassthroughCluster\""}, 2);
  EXPECT_EQ(
      promSum(m, "envoy_cluster_upstream_cx_none_healthy", {"cluster_name=\"PassthroughCluster\""}),
      2);
}

}  // namespace
}  // namespace mesh::integration
