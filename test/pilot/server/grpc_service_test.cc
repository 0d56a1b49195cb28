// GrpcDiscoveryServer (callback API) in-process over a Discovery: the real status of a bad first
// request reaches the proxy, many streams all get a change, a proxy that never reads does not
// hold up the others, and a burst of changes ends with the latest config. Waits are bounded and
// event-driven (no sleeps).
#include "pilot/server/grpc_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <vector>

#include "config/resource.h"
#include "discovery/v1/discovery.grpc.pb.h"
#include "pilot/server/discovery.h"
#include "test/testing/xds_client.h"

namespace mesh::pilot::server {
namespace {

namespace dv1 = ::mesh::discovery::v1;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

DirectoryConfig configOf(const std::string& yaml) {
  DirectoryConfig c;
  config::LoadedConfig loaded = config::loadConfigStream(yaml, "mem.yaml");
  c.errors = loaded.errors;
  c.resources = std::move(loaded.resources);
  return c;
}

// A ServiceEntry on `port` with `endpoints` static endpoints (a bigger Bootstrap per endpoint).
std::string entry(int port, int endpoints = 1) {
  std::string y = R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: )" +
                  std::to_string(port) +
                  R"(, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
)";
  for (int i = 0; i < endpoints; ++i) {
    y += "  - {address: 10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) +
         ", labels: {pod: pod-with-a-rather-long-name-" + std::to_string(i) + "}}\n";
  }
  return y;
}

dv1::Node node(int i) {
  dv1::Node n;
  n.set_id("sidecar~10.0.0." + std::to_string(i) + "~app-" + std::to_string(i) +
           ".default~default.svc.cluster.local");
  n.set_namespace_("default");
  n.set_ip("10.0.0." + std::to_string(i));
  return n;
}

using Client = ::mesh::testing::XdsTestClient;

class GrpcServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(discovery_.applyConfig(configOf(entry(80))));
    auto port = server_.start("127.0.0.1:0");
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = *port;
  }

  stats::Store stats_;
  Discovery discovery_{stats_, {}};
  GrpcDiscoveryServer server_{discovery_};
  uint16_t port_ = 0;
};

TEST_F(GrpcServiceTest, UnknownTypeUrlEndsTheStreamWithInvalidArgumentAndTheReason) {
  Client client(port_);
  ASSERT_TRUE(client.subscribe(node(1), "type.googleapis.com/envoy.config.cluster.v3.Cluster"));
  EXPECT_FALSE(client.next().has_value());
  grpc::Status status = client.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("unknown type_url"));
  EXPECT_THAT(status.error_message(), HasSubstr("envoy.config.cluster.v3.Cluster"));
}

TEST_F(GrpcServiceTest, FirstRequestWithoutNodeIdEndsWithInvalidArgument) {
  Client client(port_);
  ASSERT_TRUE(client.subscribe(dv1::Node()));
  EXPECT_FALSE(client.next().has_value());
  grpc::Status status = client.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("node.id"));
}

TEST_F(GrpcServiceTest, FiftyStreamsAllGetTheFirstPushAndTheChange) {
  constexpr int kStreams = 50;
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kStreams; ++i) {
    clients.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(clients.back()->subscribe(node(i + 1)));
  }
  for (auto& c : clients) {
    auto first = c->next();
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->version_info(), "1");
    ASSERT_TRUE(c->ack(*first));
  }
  ASSERT_TRUE(discovery_.applyConfig(configOf(entry(8080))));
  for (int i = 0; i < kStreams; ++i) {
    auto second = clients[i]->next();
    ASSERT_TRUE(second.has_value()) << "stream " << i;
    EXPECT_EQ(second->version_info(), "2");
    mesh::proxy::v1::Bootstrap b;
    ASSERT_TRUE(second->resources(0).UnpackTo(&b));
    EXPECT_EQ(b.node().id(), node(i + 1).id());
  }
  EXPECT_THAT(discovery_.metrics(), HasSubstr("pilot_xds_connected_proxies 50"));
}

TEST_F(GrpcServiceTest, BurstOfChangesEndsWithTheLatestConfig) {
  Client client(port_);
  ASSERT_TRUE(client.subscribe(node(1)));
  ASSERT_TRUE(client.untilVersion("1").has_value());
  constexpr int kChanges = 20;
  for (int i = 1; i <= kChanges; ++i) {
    ASSERT_TRUE(discovery_.applyConfig(configOf(entry(8000 + i))));
  }
  // Intermediate versions may be skipped (one write in flight, the latest config wins), but the
  // last one always arrives.
  auto n = client.untilVersion(std::to_string(kChanges + 1));
  ASSERT_TRUE(n.has_value());
  EXPECT_LE(*n, kChanges);
}

TEST_F(GrpcServiceTest, AProxyThatNeverReadsDoesNotHoldUpTheOthers) {
  // Assignment responses of ~150 KiB each: a few fill the idle proxy's flow-control windows and
  // socket buffers, so its write stays outstanding.
  constexpr int kEndpoints = 1500;
  ASSERT_TRUE(discovery_.applyConfig(configOf(entry(80, kEndpoints))));
  Client idle(port_, /*read=*/false);
  ASSERT_TRUE(idle.subscribe(node(1)));
  ASSERT_TRUE(idle.subscribeAssignments());
  Client live(port_);
  ASSERT_TRUE(live.subscribe(node(2)));
  ASSERT_TRUE(live.subscribeAssignments());
  ASSERT_TRUE(live.untilVersion("2").has_value());
  constexpr int kChanges = 15;
  for (int i = 1; i <= kChanges; ++i) {
    ASSERT_TRUE(discovery_.applyConfig(configOf(entry(8000 + i, kEndpoints))));
    ASSERT_TRUE(live.untilVersion(std::to_string(i + 2)).has_value()) << "change " << i;
  }
  // The idle proxy's first write is still outstanding: nothing more was computed for it. (Found
  // by its node id: which stream number the server gave it depends on the order the server saw
  // the two subscriptions in.)
  EXPECT_THAT(discovery_.syncz(),
              ContainsRegex(R"("proxy":"sidecar~10\.0\.0\.1~[^}]*"sent_version":"2")"));
  // Stopping does not wait for the idle proxy's write beyond the server's grace period.
  auto start = std::chrono::steady_clock::now();
  server_.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(GrpcServiceTest, BothTypesOnOneStreamAndAnEndpointOnlyChangeSendsOnlyAssignments) {
  Client client(port_);
  ASSERT_TRUE(client.subscribe(node(1)));
  ASSERT_TRUE(client.subscribeAssignments());
  // The Bootstrap first (the assignments may come with it or after the subscription is seen).
  auto bootstrap = client.next();
  ASSERT_TRUE(bootstrap.has_value());
  EXPECT_EQ(bootstrap->type_url(), kBootstrapType);
  ASSERT_TRUE(client.ack(*bootstrap));
  auto assignments = client.next();
  ASSERT_TRUE(assignments.has_value());
  EXPECT_EQ(assignments->type_url(), kAssignmentType);
  EXPECT_NE(assignments->nonce(), bootstrap->nonce());
  ASSERT_EQ(assignments->resources_size(), 1);
  mesh::proxy::v1::ClusterLoadAssignment a;
  ASSERT_TRUE(assignments->resources(0).UnpackTo(&a));
  EXPECT_EQ(a.cluster_name(), "outbound|80||api.example.com");
  EXPECT_EQ(a.endpoints_size(), 1);
  ASSERT_TRUE(client.ack(*assignments));

  // One more endpoint: an assignments response only, and the proxy is SYNCED on its ACK.
  ASSERT_TRUE(discovery_.applyConfig(configOf(entry(80, 2))));
  auto changed = client.next();
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(changed->type_url(), kAssignmentType);
  EXPECT_EQ(changed->version_info(), "2");
  ASSERT_TRUE(changed->resources(0).UnpackTo(&a));
  EXPECT_EQ(a.endpoints_size(), 2);
  ASSERT_TRUE(client.ack(*changed));

  // A routing change (the port): a Bootstrap, then the new cluster's assignment.
  ASSERT_TRUE(discovery_.applyConfig(configOf(entry(81, 2))));
  auto routed = client.next();
  ASSERT_TRUE(routed.has_value());
  EXPECT_EQ(routed->type_url(), kBootstrapType);
  EXPECT_EQ(routed->version_info(), "3");
  auto added = client.next();
  ASSERT_TRUE(added.has_value());
  EXPECT_EQ(added->type_url(), kAssignmentType);
  ASSERT_TRUE(added->resources(0).UnpackTo(&a));
  EXPECT_EQ(a.cluster_name(), "outbound|81||api.example.com");
}

TEST_F(GrpcServiceTest, StopEndsOpenStreamsWithUnavailable) {
  Client client(port_);
  ASSERT_TRUE(client.subscribe(node(1)));
  ASSERT_TRUE(client.untilVersion("1").has_value());
  server_.stop();
  grpc::Status status = client.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("stopping"));
}

}  // namespace
}  // namespace mesh::pilot::server
