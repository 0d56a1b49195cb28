// Discovery without gRPC: what is pushed when, ACK/NACK bookkeeping, and a bad config load
// keeping the last good one.
#include "pilot/server/discovery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <set>
#include <sstream>

#include "config/resource.h"
#include "core/log.h"
#include "discovery/v1/discovery.pb.h"
#include "test/pilot/istio_yaml.h"

namespace mesh::pilot::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

DirectoryConfig configOf(const std::string& yaml) {
  DirectoryConfig c;
  config::LoadedConfig loaded = config::loadConfigStream(yaml, "mem.yaml");
  c.errors = loaded.errors;
  c.resources = std::move(loaded.resources);
  config::LoadedKubernetes kube = config::loadKubernetesStream(yaml, "mem.yaml");
  c.kube_objects = std::move(kube.objects);
  return c;
}

std::string entry(int port) {
  return R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: )" +
         std::to_string(port) + R"(, name: http, protocol: HTTP}]
  resolution: DNS
)";
}

translate::ProxyIdentity proxy() {
  translate::ProxyIdentity p;
  p.id = "sidecar~10.0.0.1~app.default~default.svc.cluster.local";
  p.ip = "10.0.0.1";
  return p;
}

// Two static services with endpoints; `reviews_ip` is the address of reviews' one endpoint.
std::string twoServices(const std::string& reviews_ip, const std::string& extra = "") {
  return R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.1}, {address: 10.1.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: )" +
         reviews_ip + "}]\n" + extra;
}

// The ClusterLoadAssignments of an assignments push.
std::vector<proxy::v1::ClusterLoadAssignment> assignmentsOf(const Push& push) {
  EXPECT_EQ(push.type, Push::Type::kAssignments);
  discovery::v1::DiscoveryResponse r;
  EXPECT_TRUE(r.ParseFromString(*push.shared_bytes));
  std::vector<proxy::v1::ClusterLoadAssignment> out;
  for (const auto& any : r.resources()) {
    EXPECT_TRUE(any.UnpackTo(&out.emplace_back()));
  }
  return out;
}

class DiscoveryTest : public ::testing::Test {
 protected:
  // The one push due (the proxy did not subscribe to assignments: Bootstraps only).
  std::optional<Push> nextPush(uint64_t conn) {
    std::vector<Push> pushes = d_.nextPushes(conn);
    EXPECT_LE(pushes.size(), 1u);
    if (pushes.empty()) return std::nullopt;
    EXPECT_EQ(pushes[0].type, Push::Type::kBootstrap);
    return std::move(pushes[0]);
  }

  stats::Store stats_;
  Discovery d_{stats_, {}};
  int wakes_ = 0;
};

TEST_F(DiscoveryTest, NotReadyAndNothingToPushBeforeAGoodConfig) {
  EXPECT_FALSE(d_.ready());
  uint64_t c = d_.connect(proxy(), [&] { ++wakes_; });
  EXPECT_FALSE(nextPush(c).has_value());
}

TEST_F(DiscoveryTest, PushesOnlyWhenTheProxysBootstrapChanged) {
  ASSERT_TRUE(d_.applyConfig(configOf(entry(80))));
  uint64_t c = d_.connect(proxy(), [&] { ++wakes_; });
  auto first = nextPush(c);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->version, "1");
  EXPECT_EQ(first->bootstrap().node().id(), proxy().id);
  EXPECT_FALSE(nextPush(c).has_value());

  // Same content again: a new config version, woken, but nothing to send.
  ASSERT_TRUE(d_.applyConfig(configOf(entry(80))));
  EXPECT_EQ(wakes_, 1);
  EXPECT_FALSE(nextPush(c).has_value());

  ASSERT_TRUE(d_.applyConfig(configOf(entry(8080))));
  auto second = nextPush(c);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->version, "3");
  EXPECT_NE(second->nonce, first->nonce);
}

TEST_F(DiscoveryTest, AckNackAndStaleNonces) {
  ASSERT_TRUE(d_.applyConfig(configOf(entry(80))));
  uint64_t c = d_.connect(proxy(), [] {});
  auto push = nextPush(c);
  ASSERT_TRUE(push.has_value());
  EXPECT_THAT(d_.syncz(), HasSubstr("\"status\":\"STALE\""));
  EXPECT_FALSE(d_.onResponse(c, kBootstrapType, push->version, "not-the-nonce", std::nullopt));
  EXPECT_TRUE(d_.onResponse(c, kBootstrapType, push->version, push->nonce, std::nullopt));
  EXPECT_THAT(d_.syncz(), HasSubstr("\"status\":\"SYNCED\""));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_proxy_convergence_time_count 1"));

  ASSERT_TRUE(d_.applyConfig(configOf(entry(8080))));
  auto next = nextPush(c);
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(d_.onResponse(c, kBootstrapType, push->version, next->nonce,
                            std::make_pair(3, std::string("listener \"x\": bad \"port\""))));
  std::string syncz = d_.syncz();
  EXPECT_THAT(syncz, HasSubstr("\"status\":\"REJECTED\""));
  EXPECT_THAT(syncz, HasSubstr("\"acked_version\":\"1\""));
  EXPECT_THAT(syncz, HasSubstr(R"("last_nack":{"version":"2","code":3,)"));
  EXPECT_THAT(syncz, HasSubstr(R"("message":"listener \"x\": bad \"port\"")"));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_total_xds_rejects{type=\"bootstrap\"} 1"));
}

TEST_F(DiscoveryTest, EndpointOnlyChangeSendsOnlyTheChangedAssignments) {
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.1"))));
  uint64_t c = d_.connect(proxy(), [&] { ++wakes_; });
  d_.subscribeAssignments(c);
  EXPECT_EQ(wakes_, 1);

  // First: the Bootstrap (clusters marked eds, without endpoints), then every assignment.
  std::vector<Push> first = d_.nextPushes(c);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].type, Push::Type::kBootstrap);
  proxy::v1::Bootstrap b = first[0].bootstrap();
  ASSERT_EQ(b.clusters_size(), 2);
  for (const auto& cluster : b.clusters()) {
    EXPECT_TRUE(cluster.eds()) << cluster.name();
    EXPECT_EQ(cluster.endpoints_size(), 0) << cluster.name();
  }
  auto all = assignmentsOf(first[1]);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].cluster_name(), "outbound|9080||ratings.default.svc.cluster.local");
  EXPECT_EQ(all[0].endpoints_size(), 2);
  EXPECT_EQ(all[1].cluster_name(), "outbound|9080||reviews.default.svc.cluster.local");
  ASSERT_EQ(all[1].endpoints_size(), 1);
  EXPECT_EQ(all[1].endpoints(0).address(), "10.2.0.1");
  EXPECT_TRUE(d_.onResponse(c, kBootstrapType, "1", first[0].nonce, std::nullopt));
  EXPECT_TRUE(d_.onResponse(c, kAssignmentType, "1", first[1].nonce, std::nullopt));
  EXPECT_THAT(d_.syncz(), HasSubstr("\"status\":\"SYNCED\""));
  EXPECT_TRUE(d_.nextPushes(c).empty());

  // reviews' endpoint moves: only its assignment goes out, no Bootstrap.
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.9"))));
  std::vector<Push> moved = d_.nextPushes(c);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].version, "2");
  auto changed = assignmentsOf(moved[0]);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].cluster_name(), "outbound|9080||reviews.default.svc.cluster.local");
  ASSERT_EQ(changed[0].endpoints_size(), 1);
  EXPECT_EQ(changed[0].endpoints(0).address(), "10.2.0.9");
  EXPECT_THAT(d_.syncz(), HasSubstr("\"status\":\"STALE\""));
  EXPECT_TRUE(d_.onResponse(c, kAssignmentType, "2", moved[0].nonce, std::nullopt));
  EXPECT_THAT(d_.syncz(), HasSubstr("\"status\":\"SYNCED\""));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_xds_pushes{type=\"eds\"} 2"));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_xds_pushes{type=\"bootstrap\"} 1"));

  // A routing change: only the Bootstrap (the endpoints are the same).
  const std::string vs = R"(---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: ratings.default.svc.cluster.local}
)";
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.9", vs))));
  std::vector<Push> routed = d_.nextPushes(c);
  ASSERT_EQ(routed.size(), 1u);
  EXPECT_EQ(routed[0].type, Push::Type::kBootstrap);
  EXPECT_EQ(routed[0].version, "3");
}

// Kubernetes Services web and api with one endpoint each; `web_ip` is web's.
std::string kubeServices(const std::string& web_ip, const std::string& extra = "") {
  auto service = [](const std::string& name, const std::string& ip) {
    return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
           ", namespace: default}\nspec:\n  ports: [{port: 80, name: http, targetPort: 8080}]\n"
           "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: " +
           name + ", namespace: default}\nsubsets:\n- addresses: [{ip: " + ip +
           "}]\n  ports: [{name: http, port: 8080}]\n---\n";
  };
  return service("web", web_ip) + service("api", "10.3.0.1") + extra;
}

TEST(EndpointOnlyChangeTest, NamesTheChangedEndpointsOrSaysSomethingElseChanged) {
  auto changed =
      endpointOnlyChange(configOf(kubeServices("10.2.0.1")), configOf(kubeServices("10.2.0.2")));
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(*changed, std::set<std::string>{"default/web"});
  changed =
      endpointOnlyChange(configOf(kubeServices("10.2.0.1")), configOf(kubeServices("10.2.0.1")));
  ASSERT_TRUE(changed.has_value());
  EXPECT_TRUE(changed->empty());
  const std::string vs = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - route:
    - destination: {host: api}
)";
  EXPECT_FALSE(
      endpointOnlyChange(configOf(kubeServices("10.2.0.1")), configOf(kubeServices("10.2.0.2", vs)))
          .has_value());
  std::string other_port = kubeServices("10.2.0.1");
  other_port.replace(other_port.find("port: 80,"), 9, "port: 81,");
  EXPECT_FALSE(
      endpointOnlyChange(configOf(kubeServices("10.2.0.1")), configOf(other_port)).has_value());
}

TEST_F(DiscoveryTest, EndpointOnlyKubernetesChangeReusesTheViewsAndSendsTheNewEndpoints) {
  ASSERT_TRUE(d_.applyConfig(configOf(kubeServices("10.2.0.1"))));
  uint64_t c = d_.connect(proxy(), [] {});
  d_.subscribeAssignments(c);
  std::vector<Push> first = d_.nextPushes(c);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(assignmentsOf(first[1]).size(), 2u);

  ASSERT_TRUE(d_.applyConfig(configOf(kubeServices("10.2.0.7"))));
  std::vector<Push> moved = d_.nextPushes(c);
  ASSERT_EQ(moved.size(), 1u);
  auto changed = assignmentsOf(moved[0]);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].cluster_name(), "outbound|80||web.default.svc.cluster.local");
  ASSERT_EQ(changed[0].endpoints_size(), 1);
  EXPECT_EQ(changed[0].endpoints(0).address(), "10.2.0.7");
  EXPECT_EQ(changed[0].endpoints(0).port(), 8080u);
  EXPECT_EQ(d_.current()->viewsRefreshed(), 1u);  // taken over, not built again
  // The whole translation (clusters with their endpoints) is what a fresh config gives.
  MeshConfig fresh(configOf(kubeServices("10.2.0.7")), 9, {});
  EXPECT_EQ(d_.current()->translate(proxy()).bootstrap.SerializeAsString(),
            fresh.translate(proxy()).bootstrap.SerializeAsString());

  // Back again from the refreshed view (a chain of endpoint-only changes).
  ASSERT_TRUE(d_.applyConfig(configOf(kubeServices("10.2.0.1"))));
  moved = d_.nextPushes(c);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(assignmentsOf(moved[0])[0].endpoints(0).address(), "10.2.0.1");
  EXPECT_EQ(d_.current()->viewsRefreshed(), 1u);

  // A routing change (api's port) builds the view again: a Bootstrap and api's new cluster.
  std::string other_port = kubeServices("10.2.0.1");
  other_port.replace(other_port.rfind("port: 80,"), 9, "port: 81,");
  ASSERT_TRUE(d_.applyConfig(configOf(other_port)));
  moved = d_.nextPushes(c);
  ASSERT_EQ(moved.size(), 2u);
  EXPECT_EQ(moved[0].type, Push::Type::kBootstrap);
  EXPECT_EQ(d_.current()->viewsRefreshed(), 0u);
  auto added = assignmentsOf(moved[1]);
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0].cluster_name(), "outbound|81||api.default.svc.cluster.local");
}

TEST_F(DiscoveryTest, AssignmentsAreResentWholeAfterANack) {
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.1"))));
  uint64_t c = d_.connect(proxy(), [] {});
  d_.subscribeAssignments(c);
  std::vector<Push> first = d_.nextPushes(c);
  ASSERT_EQ(first.size(), 2u);
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.9"))));
  std::vector<Push> moved = d_.nextPushes(c);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_TRUE(d_.onResponse(c, kAssignmentType, "1", moved[0].nonce,
                            std::make_pair(3, std::string("endpoint port 0"))));
  std::string syncz = d_.syncz();
  EXPECT_THAT(syncz, HasSubstr("\"status\":\"REJECTED\""));
  EXPECT_THAT(syncz, HasSubstr(R"("message":"endpoint port 0")"));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_total_xds_rejects{type=\"eds\"} 1"));

  // The next change sends every assignment again, not just the changed one.
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.7"))));
  std::vector<Push> again = d_.nextPushes(c);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(assignmentsOf(again[0]).size(), 2u);
}

TEST_F(DiscoveryTest, BadConfigKeepsTheLastGoodOneAndShowsItsErrors) {
  ASSERT_TRUE(d_.applyConfig(configOf(entry(80))));
  DirectoryConfig bad = configOf(entry(80));
  bad.errors.add("bad.yaml", 7, "spec.http[0].route[0].weight", "must be between 0 and 100");
  EXPECT_FALSE(d_.applyConfig(std::move(bad)));
  EXPECT_TRUE(d_.ready());
  EXPECT_EQ(d_.current()->version(), 1u);
  std::string configz = d_.configz();
  EXPECT_THAT(configz,
              HasSubstr(R"("file":"bad.yaml","line":7,"field":"spec.http[0].route[0].weight")"));
  EXPECT_THAT(configz, HasSubstr(R"("kind":"ServiceEntry","namespace":"default","name":"ext")"));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_config_errors 1"));

  ASSERT_TRUE(d_.applyConfig(configOf(entry(81))));
  EXPECT_THAT(d_.configz(), HasSubstr("\"errors\":[]"));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_config_errors 0"));
}

// A translation warning (here: match.scheme, which the proxy cannot match on) is the same for
// every proxy that sees the rule: logged once per config version, not once per proxy.
TEST_F(DiscoveryTest, TranslationWarningIsLoggedOncePerConfigVersion) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger& logger = log::get("pilot");
  logger.sinks().push_back(sink);
  const std::string rule =
      "---\n" + pilot::testing::virtualService("reviews", "default",
                                               "  hosts: [reviews.default.svc.cluster.local]\n"
                                               "  http:\n"
                                               "  - match: [{scheme: {exact: https}}]\n"
                                               "    route: [{destination: {host: "
                                               "reviews.default.svc.cluster.local}}]\n");
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.1", rule))));
  auto pushAll = [&](const std::vector<uint64_t>& conns) {
    for (uint64_t c : conns) ASSERT_TRUE(nextPush(c).has_value());
  };
  std::vector<uint64_t> conns;
  for (int i = 1; i <= 3; ++i) {
    translate::ProxyIdentity p = proxy();
    p.ip = "10.0.0." + std::to_string(i);
    p.id = "sidecar~" + p.ip + "~app" + std::to_string(i) + ".default~default.svc.cluster.local";
    conns.push_back(d_.connect(p, [] {}));
  }
  pushAll(conns);
  auto count = [&](const std::string& what) {
    std::string text = out.str();
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("match.scheme is not supported"), 1u) << out.str();
  EXPECT_EQ(count("config version 1:"), 1u) << out.str();

  // A new version that still has the rule (and one more service, so every proxy's Bootstrap
  // changes): once more.
  ASSERT_TRUE(d_.applyConfig(configOf(twoServices("10.2.0.1", rule + "---\n" + entry(80)))));
  pushAll(conns);
  EXPECT_EQ(count("match.scheme is not supported"), 2u) << out.str();
  EXPECT_EQ(count("config version 2:"), 1u) << out.str();
  logger.sinks().pop_back();
}

TEST_F(DiscoveryTest, ConnectedGaugeFollowsStreams) {
  uint64_t a = d_.connect(proxy(), [] {});
  uint64_t b = d_.connect(proxy(), [] {});
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_xds_connected_proxies 2"));
  d_.disconnect(a);
  d_.disconnect(b);
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_xds_connected_proxies 0"));
  EXPECT_THAT(d_.syncz(), Not(HasSubstr("sidecar~")));
}

}  // namespace
}  // namespace mesh::pilot::server
