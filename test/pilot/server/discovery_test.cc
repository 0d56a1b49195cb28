// Discovery without gRPC: what is pushed when, ACK/NACK bookkeeping, and a bad config load
// keeping the last good one.
#include "pilot/server/discovery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/resource.h"

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

class DiscoveryTest : public ::testing::Test {
 protected:
  stats::Store stats_;
  Discovery d_{stats_, {}};
  int wakes_ = 0;
};

TEST_F(DiscoveryTest, NotReadyAndNothingToPushBeforeAGoodConfig) {
  EXPECT_FALSE(d_.ready());
  uint64_t c = d_.connect(proxy(), [&] { ++wakes_; });
  EXPECT_FALSE(d_.nextPush(c).has_value());
}

TEST_F(DiscoveryTest, PushesOnlyWhenTheProxysBootstrapChanged) {
  ASSERT_TRUE(d_.applyConfig(configOf(entry(80))));
  uint64_t c = d_.connect(proxy(), [&] { ++wakes_; });
  auto first = d_.nextPush(c);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->version, "1");
  EXPECT_EQ(first->bootstrap().node().id(), proxy().id);
  EXPECT_FALSE(d_.nextPush(c).has_value());

  // Same content again: a new config version, woken, but nothing to send.
  ASSERT_TRUE(d_.applyConfig(configOf(entry(80))));
  EXPECT_EQ(wakes_, 1);
  EXPECT_FALSE(d_.nextPush(c).has_value());

  ASSERT_TRUE(d_.applyConfig(configOf(entry(8080))));
  auto second = d_.nextPush(c);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->version, "3");
  EXPECT_NE(second->nonce, first->nonce);
}

TEST_F(DiscoveryTest, AckNackAndStaleNonces) {
  ASSERT_TRUE(d_.applyConfig(configOf(entry(80))));
  uint64_t c = d_.connect(proxy(), [] {});
  auto push = d_.nextPush(c);
  ASSERT_TRUE(push.has_value());
  EXPECT_THAT(d_.syncz(), HasSubstr("\"status\":\"STALE\""));
  EXPECT_FALSE(d_.onResponse(c, push->version, "not-the-nonce", std::nullopt));
  EXPECT_TRUE(d_.onResponse(c, push->version, push->nonce, std::nullopt));
  EXPECT_THAT(d_.syncz(), HasSubstr("\"status\":\"SYNCED\""));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_proxy_convergence_time_count 1"));

  ASSERT_TRUE(d_.applyConfig(configOf(entry(8080))));
  auto next = d_.nextPush(c);
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(d_.onResponse(c, push->version, next->nonce,
                            std::make_pair(3, std::string("listener \"x\": bad \"port\""))));
  std::string syncz = d_.syncz();
  EXPECT_THAT(syncz, HasSubstr("\"status\":\"REJECTED\""));
  EXPECT_THAT(syncz, HasSubstr("\"acked_version\":\"1\""));
  EXPECT_THAT(syncz, HasSubstr(R"("last_nack":{"version":"2","code":3,)"));
  EXPECT_THAT(syncz, HasSubstr(R"("message":"listener \"x\": bad \"port\"")"));
  EXPECT_THAT(d_.metrics(), HasSubstr("pilot_total_xds_rejects{type=\"bootstrap\"} 1"));
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
