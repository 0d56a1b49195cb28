// Bookinfo's traffic-management samples (samples/bookinfo/networking) translated for the
// productpage sidecar and checked against the proxy resources an Istio user expects.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/pilot/translate/test_util.h"

namespace mesh::pilot::translate::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kReviews[] = "reviews.default.svc.cluster.local";
constexpr char kRatings[] = "ratings.default.svc.cluster.local";

ProxyIdentity productpage() {
  ProxyIdentity p = proxyIn("default", {{"app", "productpage"}, {"version", "v1"}}, "10.0.0.1");
  p.id = "sidecar~10.0.0.1~productpage-v1-123.default~default.svc.cluster.local";
  p.workload_name = "productpage-v1";
  p.service_account = "bookinfo-productpage";
  return p;
}

// productpage's translation of bookinfo's services, every DestinationRule of
// destination-rule-all.yaml and the sample `file`.
Translation productpageWith(const std::string& file) {
  return translateOnce(
      {testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"), sample(file)},
      productpage());
}

// A route of a virtual host (a YAML list item): `match` as a flow mapping, `action` the route
// action's one field, `more` the route's further fields (block lines indented by two spaces).
// Every route without `retries` carries the default retry policy.
std::string routeYaml(const std::string& match, const std::string& action,
                      const std::string& more = "") {
  return "- match: " + match + "\n" + more + "  route:\n    " + action + "\n    " +
         kDefaultRetryYaml + "\n";
}

// Service `svc`'s virtual host on port 9080 is the one with its name, its domains as seen from
// namespace default, and `routes`; compared as a whole message.
::testing::AssertionResult virtualHostIs(const v1::Bootstrap& b, const std::string& svc,
                                         const std::string& routes) {
  const std::string host = svc + ".default.svc.cluster.local";
  const v1::VirtualHost* vh = findVirtualHost(b, "9080", host + ":9080");
  if (vh == nullptr) return ::testing::AssertionFailure() << "no virtual host for " << host;
  return equalsYaml(*vh, "name: " + host + ":9080\ndomains: [" + host + ", " + svc +
                             ".default.svc, " + svc + ".default, " + svc + "]\nroutes:\n" + routes);
}

TEST(BookinfoTest, WithoutRulesEveryServiceGetsOneClusterAndADefaultRoute) {
  Translation t = translateOnce({testdata("bookinfo-services.yaml")}, productpage());
  EXPECT_THAT(t.warnings, IsEmpty());
  const v1::Bootstrap& b = t.bootstrap;
  EXPECT_EQ(b.node().id(), "sidecar~10.0.0.1~productpage-v1-123.default~default.svc.cluster.local");
  EXPECT_EQ(b.node().workload_name(), "productpage-v1");
  EXPECT_EQ(b.node().namespace_(), "default");
  EXPECT_EQ(b.node().labels().at("app"), "productpage");
  EXPECT_EQ(b.node().service_account(), "bookinfo-productpage");
  EXPECT_THAT(clusterNames(b),
              ElementsAre("outbound|9080||details.default.svc.cluster.local",
                          "outbound|8000||httpbin.default.svc.cluster.local",
                          "outbound|9080||productpage.default.svc.cluster.local",
                          "outbound|9080||ratings.default.svc.cluster.local",
                          "outbound|9080||reviews.default.svc.cluster.local", "inbound|9080||"));
  EXPECT_TRUE(virtualHostIs(b, "reviews", std::string(R"(- name: default
  match: {prefix: /}
  route:
    cluster: outbound|9080||reviews.default.svc.cluster.local
    )") + kDefaultRetryYaml));

  const v1::Cluster* reviews = findCluster(b, "outbound|9080||reviews.default.svc.cluster.local");
  ASSERT_NE(reviews, nullptr);
  EXPECT_TRUE(equalsYaml(*reviews, R"(
name: outbound|9080||reviews.default.svc.cluster.local
type: STATIC
lbPolicy: LEAST_REQUEST
service: {host: reviews.default.svc.cluster.local, name: reviews, namespace: default}
endpoints:
- address: 10.0.3.1
  port: 9080
  workload: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}, serviceAccount: bookinfo-reviews}
- address: 10.0.3.2
  port: 9080
  workload: {name: reviews-v2, namespace: default, labels: {app: reviews, version: v2}, serviceAccount: bookinfo-reviews}
- address: 10.0.3.3
  port: 9080
  workload: {name: reviews-v3, namespace: default, labels: {app: reviews, version: v3}, serviceAccount: bookinfo-reviews}
)"));
  // Outbound: one HTTP listener per service port, named by and routed through that port.
  const v1::Listener* out9080 = findListener(b, "0.0.0.0_9080");
  ASSERT_NE(out9080, nullptr);
  EXPECT_EQ(out9080->address(), "0.0.0.0:9080");
  EXPECT_EQ(out9080->direction(), v1::OUTBOUND);
  EXPECT_EQ(out9080->http().route_config_name(), "9080");
  const v1::Listener* out8000 = findListener(b, "0.0.0.0_8000");
  ASSERT_NE(out8000, nullptr);
  EXPECT_EQ(out8000->http().route_config_name(), "8000");

  // Inbound: productpage's own port, to the app on loopback.
  const v1::Listener* in = findListener(b, "virtualInbound_9080");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->address(), "10.0.0.1:9080");
  EXPECT_EQ(in->direction(), v1::INBOUND);
  EXPECT_EQ(in->http().route_config_name(), "inbound|9080||");
  const v1::Cluster* inbound = findCluster(b, "inbound|9080||");
  ASSERT_NE(inbound, nullptr);
  ASSERT_EQ(inbound->endpoints_size(), 1);
  EXPECT_EQ(inbound->endpoints(0).address(), "127.0.0.1");
  EXPECT_EQ(inbound->endpoints(0).port(), 9080u);
  EXPECT_EQ(inbound->service().host(), "productpage.default.svc.cluster.local");
}

TEST(BookinfoTest, AllV1RoutesEveryServiceToSubsetV1) {
  Translation t = productpageWith("virtual-service-all-v1.yaml");
  EXPECT_THAT(t.warnings, IsEmpty());
  const v1::Bootstrap& b = t.bootstrap;
  for (std::string svc : {"productpage", "reviews", "ratings", "details"}) {
    EXPECT_TRUE(virtualHostIs(b, svc,
                              routeYaml("{prefix: /}", "cluster: outbound|9080|v1|" + svc +
                                                           ".default.svc.cluster.local")));
  }
  // Subset clusters hold only the endpoints with the subset's labels.
  const v1::Cluster* v1c = findCluster(b, "outbound|9080|v1|reviews.default.svc.cluster.local");
  ASSERT_NE(v1c, nullptr);
  ASSERT_EQ(v1c->endpoints_size(), 1);
  EXPECT_EQ(v1c->endpoints(0).address(), "10.0.3.1");
  EXPECT_EQ(v1c->endpoints(0).workload().name(), "reviews-v1");
  EXPECT_EQ(v1c->service().name(), "reviews");
  const v1::Cluster* v3c = findCluster(b, "outbound|9080|v3|reviews.default.svc.cluster.local");
  ASSERT_NE(v3c, nullptr);
  ASSERT_EQ(v3c->endpoints_size(), 1);
  EXPECT_EQ(v3c->endpoints(0).address(), "10.0.3.3");
  // A subset without endpoints still gets its (empty) cluster.
  const v1::Cluster* mysql =
      findCluster(b, "outbound|9080|v2-mysql|ratings.default.svc.cluster.local");
  ASSERT_NE(mysql, nullptr);
  EXPECT_EQ(mysql->endpoints_size(), 0);
}

// The samples that only route: each one's virtual host as a whole.
struct RouteSample {
  std::string test_name;
  std::string file;
  std::string service;
  std::string routes;
};

void PrintTo(const RouteSample& s, std::ostream* os) { *os << s.file; }

class BookinfoRouteSampleTest : public ::testing::TestWithParam<RouteSample> {};

TEST_P(BookinfoRouteSampleTest, VirtualHostIsIstios) {
  const RouteSample& s = GetParam();
  EXPECT_TRUE(virtualHostIs(productpageWith(s.file).bootstrap, s.service, s.routes));
}

constexpr char kJason[] = "{prefix: /, headers: [{name: end-user, stringMatch: {exact: jason}}]}";

INSTANTIATE_TEST_SUITE_P(
    Bookinfo, BookinfoRouteSampleTest,
    ::testing::Values(
        RouteSample{
            "ReviewsTestV2SendsJasonToV2", "virtual-service-reviews-test-v2.yaml", "reviews",
            routeYaml(kJason, "cluster: outbound|9080|v2|reviews.default.svc.cluster.local") +
                routeYaml("{prefix: /}",
                          "cluster: outbound|9080|v1|reviews.default.svc.cluster.local")},
        RouteSample{
            "Reviews50V3SplitsTraffic", "virtual-service-reviews-50-v3.yaml", "reviews",
            routeYaml("{prefix: /}",
                      "weightedClusters: {clusters: ["
                      "{name: outbound|9080|v1|reviews.default.svc.cluster.local, weight: 50}, "
                      "{name: outbound|9080|v3|reviews.default.svc.cluster.local, weight: 50}]}")},
        RouteSample{"RatingsDelayForJason", "virtual-service-ratings-test-delay.yaml", "ratings",
                    routeYaml(kJason, "cluster: outbound|9080|v1|ratings.default.svc.cluster.local",
                              "  fault: {delay: {fixedDelay: 7s, percentage: 100}}\n") +
                        routeYaml("{prefix: /}",
                                  "cluster: outbound|9080|v1|ratings.default.svc.cluster.local")}),
    [](const ::testing::TestParamInfo<RouteSample>& info) { return info.param.test_name; });

TEST(BookinfoTest, RatingsAbortForJason) {
  Translation t = productpageWith("virtual-service-ratings-test-abort.yaml");
  const v1::VirtualHost* vh =
      findVirtualHost(t.bootstrap, "9080", "ratings.default.svc.cluster.local:9080");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 2);
  const v1::Route& jason = vh->routes(0);
  ASSERT_EQ(jason.match().headers_size(), 1);
  EXPECT_EQ(jason.match().headers(0).name(), "end-user");
  EXPECT_EQ(jason.match().headers(0).string_match().exact(), "jason");
  EXPECT_EQ(jason.fault().abort().http_status(), 500u);
  EXPECT_EQ(jason.fault().abort().percentage().value(), 100.0);
  EXPECT_FALSE(jason.fault().has_delay());
  EXPECT_EQ(jason.route().cluster(), "outbound|9080|v1|ratings.default.svc.cluster.local");
  EXPECT_FALSE(vh->routes(1).has_fault());
}

TEST(BookinfoTest, ReviewsTimeout) {
  Translation t = productpageWith("virtual-service-reviews-timeout.yaml");
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "9080", std::string(kReviews) + ":9080");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 1);
  const v1::RouteAction& a = vh->routes(0).route();
  EXPECT_EQ(a.cluster(), "outbound|9080|v2|reviews.default.svc.cluster.local");
  EXPECT_EQ(a.timeout().seconds(), 0);
  EXPECT_EQ(a.timeout().nanos(), 500000000);
}

TEST(BookinfoTest, RatingsRetry) {
  Translation t = productpageWith("virtual-service-ratings-retry.yaml");
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "9080", std::string(kRatings) + ":9080");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 1);
  v1::RetryPolicy expected = fromYaml<v1::RetryPolicy>(
      "{retryOn: \"5xx,connect-failure,reset\", numRetries: 3, "
      "perTryTimeout: 2s}");
  EXPECT_TRUE(sameMessage(expected, vh->routes(0).route().retry_policy()));
}

TEST(BookinfoTest, HttpbinCircuitBreaker) {
  Translation t = translateOnce(
      {testdata("bookinfo-services.yaml"), sample("destination-rule-httpbin-circuit-breaker.yaml")},
      productpage());
  const v1::Cluster* c =
      findCluster(t.bootstrap, "outbound|8000||httpbin.default.svc.cluster.local");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(equalsYaml(*c, R"(
name: outbound|8000||httpbin.default.svc.cluster.local
type: STATIC
lbPolicy: LEAST_REQUEST
service: {host: httpbin.default.svc.cluster.local, name: httpbin, namespace: default}
endpoints:
- address: 10.0.4.1
  port: 80
  workload: {namespace: default, labels: {app: httpbin, version: v1}}
circuitBreakers: {maxConnections: 1, maxPendingRequests: 1}
maxRequestsPerConnection: 1
outlierDetection:
  consecutive5xx: 1
  interval: 1s
  baseEjectionTime: 180s
  maxEjectionPercent: 100
)"));
}

TEST(BookinfoTest, KubernetesServicesEndpointsAndPodsFeedTheSameTranslation) {
  Mesh mesh({testdata("bookinfo-kube.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-reviews-test-v2.yaml")});
  Translation t = mesh.translate(productpage());
  const v1::Bootstrap& b = t.bootstrap;
  // Subsets select endpoints by their Pods' labels; v3 is not ready and left out.
  const v1::Cluster* v2 = findCluster(b, "outbound|9080|v2|reviews.default.svc.cluster.local");
  ASSERT_NE(v2, nullptr);
  ASSERT_EQ(v2->endpoints_size(), 1);
  EXPECT_EQ(v2->endpoints(0).address(), "10.0.3.2");
  EXPECT_EQ(v2->endpoints(0).workload().name(), "reviews-v2-6c9d8f8b7-fghij");
  EXPECT_EQ(v2->endpoints(0).workload().service_account(), "bookinfo-reviews");
  const v1::Cluster* v3 = findCluster(b, "outbound|9080|v3|reviews.default.svc.cluster.local");
  ASSERT_NE(v3, nullptr);
  EXPECT_EQ(v3->endpoints_size(), 0);
  const v1::Cluster* all = findCluster(b, "outbound|9080||reviews.default.svc.cluster.local");
  ASSERT_NE(all, nullptr);
  EXPECT_EQ(all->endpoints_size(), 2);
  const v1::VirtualHost* vh = findVirtualHost(b, "9080", std::string(kReviews) + ":9080");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 2);
  EXPECT_EQ(vh->routes(0).route().cluster(), "outbound|9080|v2|reviews.default.svc.cluster.local");
  // ratings: the http-api port targets 8080 on the endpoint; its TLS port is relayed as TCP.
  const v1::Cluster* ratings = findCluster(b, "outbound|9080||ratings.default.svc.cluster.local");
  ASSERT_NE(ratings, nullptr);
  ASSERT_EQ(ratings->endpoints_size(), 1);
  EXPECT_EQ(ratings->endpoints(0).port(), 8080u);
  EXPECT_NE(findCluster(b, "outbound|9443||ratings.default.svc.cluster.local"), nullptr);
  const v1::Listener* tls = findListener(b, "0.0.0.0_9443");
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->tcp_proxy().cluster(), "outbound|9443||ratings.default.svc.cluster.local");
  // ratings is exported to its own namespace and istio-system only.
  Translation other = mesh.translate(proxyIn("other"));
  EXPECT_EQ(findCluster(other.bootstrap, "outbound|9080||ratings.default.svc.cluster.local"),
            nullptr);
  Translation system = mesh.translate(proxyIn("istio-system"));
  EXPECT_NE(findCluster(system.bootstrap, "outbound|9080||ratings.default.svc.cluster.local"),
            nullptr);
}

// Every bookinfo sample, for every bookinfo workload (and one in another namespace): the proxy
// accepts each translation (Mesh::translate checks it with the proxy's own snapshot builder).
TEST(BookinfoTest, EverySampleForEveryWorkloadIsAcceptedByTheProxy) {
  const std::vector<std::string> samples = {"virtual-service-all-v1.yaml",
                                            "virtual-service-reviews-test-v2.yaml",
                                            "virtual-service-reviews-50-v3.yaml",
                                            "virtual-service-reviews-v3.yaml",
                                            "virtual-service-ratings-test-delay.yaml",
                                            "virtual-service-ratings-test-abort.yaml",
                                            "virtual-service-reviews-timeout.yaml",
                                            "virtual-service-ratings-retry.yaml",
                                            "destination-rule-httpbin-circuit-breaker.yaml",
                                            "bookinfo-gateway.yaml"};
  const std::vector<ProxyIdentity> proxies = {
      productpage(), proxyIn("default", {{"app", "reviews"}, {"version", "v2"}}, "10.0.3.2"),
      proxyIn("default", {{"app", "ratings"}, {"version", "v1"}}, "10.0.2.1"),
      proxyIn("default", {{"app", "details"}, {"version", "v1"}}, "10.0.1.1"),
      proxyIn("elsewhere")};
  for (const std::string& file : samples) {
    SCOPED_TRACE(file);
    Mesh mesh({testdata("bookinfo-services.yaml"), testdata("bookinfo-kube.yaml"),
               sample("destination-rule-all.yaml"), sample(file)});
    for (const ProxyIdentity& p : proxies) {
      SCOPED_TRACE(p.id);
      Translation t = mesh.translate(p);
      EXPECT_GT(t.bootstrap.clusters_size(), 0);
      EXPECT_GT(t.bootstrap.listeners_size(), 0);
    }
    // Four proxies of "default" share one outbound view.
    EXPECT_EQ(mesh.translator().viewsBuilt(), 2u);
  }
}

}  // namespace
}  // namespace mesh::pilot::translate::testing
