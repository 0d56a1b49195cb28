// Bookinfo's traffic-management samples (samples/bookinfo/networking) translated for the
// productpage sidecar and checked against the proxy resources an Istio user expects.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "test/pilot/translate/test_util.h"

namespace mesh::pilot::translate {
namespace {

using google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using testing::findCluster;
using testing::findListener;
using testing::findVirtualHost;
using testing::fromYaml;
using ::testing::IsEmpty;
using testing::Mesh;
using testing::proxyIn;
using testing::sample;
using testing::testdata;
namespace v1 = mesh::proxy::v1;

constexpr char kReviews[] = "reviews.default.svc.cluster.local";
constexpr char kRatings[] = "ratings.default.svc.cluster.local";

ProxyIdentity productpage() {
  ProxyIdentity p = proxyIn("default", {{"app", "productpage"}, {"version", "v1"}}, "10.0.0.1");
  p.id = "sidecar~10.0.0.1~productpage-v1-123.default~default.svc.cluster.local";
  p.workload_name = "productpage-v1";
  p.service_account = "bookinfo-productpage";
  return p;
}

// The routes of one service's virtual host on port 9080, compared as a whole message.
void expectVirtualHost(const v1::Bootstrap& b, const std::string& host, const std::string& yaml) {
  const v1::VirtualHost* vh = findVirtualHost(b, "9080", host + ":9080");
  ASSERT_NE(vh, nullptr) << host;
  v1::VirtualHost expected = fromYaml<v1::VirtualHost>(yaml);
  std::string diff;
  MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(expected, *vh)) << diff << "\nactual:\n" << vh->DebugString();
}

// The default retry policy, as every route without `retries` gets it.
constexpr char kDefaultRetry[] =
    "retryPolicy: {retryOn: \"connect-failure,refused-stream,unavailable,cancelled,"
    "retriable-status-codes\", numRetries: 2, retriableStatusCodes: [503]}";

TEST(BookinfoTest, WithoutRulesEveryServiceGetsOneClusterAndADefaultRoute) {
  Mesh mesh({testdata("bookinfo-services.yaml")});
  Translation t = mesh.translate(productpage());
  EXPECT_THAT(t.warnings, IsEmpty());
  const v1::Bootstrap& b = t.bootstrap;
  EXPECT_EQ(b.node().id(), "sidecar~10.0.0.1~productpage-v1-123.default~default.svc.cluster.local");
  EXPECT_EQ(b.node().workload_name(), "productpage-v1");
  EXPECT_EQ(b.node().namespace_(), "default");
  EXPECT_EQ(b.node().labels().at("app"), "productpage");
  EXPECT_EQ(b.node().service_account(), "bookinfo-productpage");
  EXPECT_THAT(testing::clusterNames(b),
              ElementsAre("outbound|9080||details.default.svc.cluster.local",
                          "outbound|8000||httpbin.default.svc.cluster.local",
                          "outbound|9080||productpage.default.svc.cluster.local",
                          "outbound|9080||ratings.default.svc.cluster.local",
                          "outbound|9080||reviews.default.svc.cluster.local", "inbound|9080||"));
  expectVirtualHost(b, kReviews, std::string(R"(
name: reviews.default.svc.cluster.local:9080
domains: [reviews.default.svc.cluster.local, reviews.default.svc, reviews.default, reviews]
routes:
- name: default
  match: {prefix: /}
  route:
    cluster: outbound|9080||reviews.default.svc.cluster.local
    )") + kDefaultRetry);

  const v1::Cluster* reviews = findCluster(b, "outbound|9080||reviews.default.svc.cluster.local");
  ASSERT_NE(reviews, nullptr);
  v1::Cluster expected = fromYaml<v1::Cluster>(R"(
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
)");
  EXPECT_TRUE(MessageDifferencer::Equals(expected, *reviews)) << reviews->DebugString();

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
  Mesh mesh({testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-all-v1.yaml")});
  Translation t = mesh.translate(productpage());
  EXPECT_THAT(t.warnings, IsEmpty());
  const v1::Bootstrap& b = t.bootstrap;
  for (std::string svc : {"productpage", "reviews", "ratings", "details"}) {
    std::string host = svc + ".default.svc.cluster.local";
    expectVirtualHost(b, host,
                      "name: " + host + ":9080\ndomains: [" + host + ", " + svc + ".default.svc, " +
                          svc + ".default, " + svc +
                          "]\nroutes:\n- match: {prefix: /}\n  route:\n" +
                          "    cluster: outbound|9080|v1|" + host + "\n    " + kDefaultRetry);
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

TEST(BookinfoTest, ReviewsTestV2SendsJasonToV2) {
  Mesh mesh({testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-reviews-test-v2.yaml")});
  Translation t = mesh.translate(productpage());
  expectVirtualHost(t.bootstrap, kReviews, std::string(R"(
name: reviews.default.svc.cluster.local:9080
domains: [reviews.default.svc.cluster.local, reviews.default.svc, reviews.default, reviews]
routes:
- match:
    prefix: /
    headers: [{name: end-user, stringMatch: {exact: jason}}]
  route:
    cluster: outbound|9080|v2|reviews.default.svc.cluster.local
    )") + kDefaultRetry + R"(
- match: {prefix: /}
  route:
    cluster: outbound|9080|v1|reviews.default.svc.cluster.local
    )" + kDefaultRetry);
}

TEST(BookinfoTest, Reviews50V3SplitsTraffic) {
  Mesh mesh({testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-reviews-50-v3.yaml")});
  Translation t = mesh.translate(productpage());
  expectVirtualHost(t.bootstrap, kReviews, std::string(R"(
name: reviews.default.svc.cluster.local:9080
domains: [reviews.default.svc.cluster.local, reviews.default.svc, reviews.default, reviews]
routes:
- match: {prefix: /}
  route:
    weightedClusters:
      clusters:
      - {name: outbound|9080|v1|reviews.default.svc.cluster.local, weight: 50}
      - {name: outbound|9080|v3|reviews.default.svc.cluster.local, weight: 50}
    )") + kDefaultRetry);
}

TEST(BookinfoTest, RatingsDelayForJason) {
  Mesh mesh({testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-ratings-test-delay.yaml")});
  Translation t = mesh.translate(productpage());
  expectVirtualHost(t.bootstrap, kRatings, std::string(R"(
name: ratings.default.svc.cluster.local:9080
domains: [ratings.default.svc.cluster.local, ratings.default.svc, ratings.default, ratings]
routes:
- match:
    prefix: /
    headers: [{name: end-user, stringMatch: {exact: jason}}]
  fault:
    delay: {fixedDelay: 7s, percentage: 100}
  route:
    cluster: outbound|9080|v1|ratings.default.svc.cluster.local
    )") + kDefaultRetry + R"(
- match: {prefix: /}
  route:
    cluster: outbound|9080|v1|ratings.default.svc.cluster.local
    )" + kDefaultRetry);
}

TEST(BookinfoTest, RatingsAbortForJason) {
  Mesh mesh({testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-ratings-test-abort.yaml")});
  Translation t = mesh.translate(productpage());
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
  Mesh mesh({testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-reviews-timeout.yaml")});
  Translation t = mesh.translate(productpage());
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "9080", std::string(kReviews) + ":9080");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 1);
  const v1::RouteAction& a = vh->routes(0).route();
  EXPECT_EQ(a.cluster(), "outbound|9080|v2|reviews.default.svc.cluster.local");
  EXPECT_EQ(a.timeout().seconds(), 0);
  EXPECT_EQ(a.timeout().nanos(), 500000000);
}

TEST(BookinfoTest, RatingsRetry) {
  Mesh mesh({testdata("bookinfo-services.yaml"), sample("destination-rule-all.yaml"),
             sample("virtual-service-ratings-retry.yaml")});
  Translation t = mesh.translate(productpage());
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "9080", std::string(kRatings) + ":9080");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 1);
  v1::RetryPolicy expected = fromYaml<v1::RetryPolicy>(
      "{retryOn: \"5xx,connect-failure,reset\", numRetries: 3, "
      "perTryTimeout: 2s}");
  EXPECT_TRUE(MessageDifferencer::Equals(expected, vh->routes(0).route().retry_policy()))
      << vh->routes(0).route().retry_policy().DebugString();
}

TEST(BookinfoTest, HttpbinCircuitBreaker) {
  Mesh mesh({testdata("bookinfo-services.yaml"),
             sample("destination-rule-httpbin-circuit-breaker.yaml")});
  Translation t = mesh.translate(productpage());
  const v1::Cluster* c =
      findCluster(t.bootstrap, "outbound|8000||httpbin.default.svc.cluster.local");
  ASSERT_NE(c, nullptr);
  v1::Cluster expected = fromYaml<v1::Cluster>(R"(
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
)");
  std::string diff;
  MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(expected, *c)) << diff;
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
}  // namespace mesh::pilot::translate
