// The real `pilot` binary on OS-picked ports with a temp config directory, and a gRPC client in
// the test playing the proxy: first push equal to the Translator's result, ACK/NACK shown in
// /debug/syncz, a VirtualService change pushed, an invalid file kept out with file:line:field in
// /debug/configz, and every pushed Bootstrap accepted by the proxy's own validation.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "discovery/v1/discovery.grpc.pb.h"
#include "pilot/server/config_directory.h"
#include "pilot/server/discovery.h"
#include "test/integration/harness.h"
#include "test/pilot/translate/test_util.h"
#include "test/testing/xds_client.h"

namespace mesh::integration {
namespace {

namespace dv1 = ::mesh::discovery::v1;
using ::testing::HasSubstr;
using ::testing::Not;
namespace v1 = ::mesh::proxy::v1;

constexpr milliseconds kWait{10000};

std::string sourceFile(const std::string& rel) {
  return readFile(std::string(MESH_SOURCE_DIR) + "/" + rel);
}

std::string reviewsVirtualService(int v1_weight) {
  return R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: )" +
         std::to_string(v1_weight) +
         R"(
    - destination:
        host: reviews
        subset: v3
      weight: )" +
         std::to_string(100 - v1_weight) + "\n";
}

dv1::Node productpageNode() {
  dv1::Node n;
  n.set_id("sidecar~10.0.0.1~productpage-v1-123.default~default.svc.cluster.local");
  n.set_namespace_("default");
  n.set_workload_name("productpage-v1");
  (*n.mutable_labels())["app"] = "productpage";
  (*n.mutable_labels())["version"] = "v1";
  n.set_service_account("bookinfo-productpage");
  n.set_ip("10.0.0.1");
  return n;
}

pilot::translate::ProxyIdentity productpageIdentity() {
  pilot::translate::ProxyIdentity p;
  p.id = productpageNode().id();
  p.namespace_name = "default";
  p.workload_name = "productpage-v1";
  p.labels = {{"app", "productpage"}, {"version", "v1"}};
  p.service_account = "bookinfo-productpage";
  p.ip = "10.0.0.1";
  return p;
}

// What the Translator gives for the productpage proxy with the directory's current files.
v1::Bootstrap expectedBootstrap(const std::string& dir) {
  pilot::server::DirectoryConfig c = pilot::server::loadConfigDirectory(dir);
  EXPECT_TRUE(c.ok()) << c.errors.toString();
  pilot::server::MeshConfig mesh(std::move(c), 1, {});
  return mesh.translate(productpageIdentity()).bootstrap;
}

using XdsClient = ::mesh::testing::XdsTestClient;

v1::Bootstrap bootstrapOf(const dv1::DiscoveryResponse& r) {
  EXPECT_EQ(r.type_url(), pilot::server::kBootstrapType);
  EXPECT_EQ(r.resources_size(), 1);
  v1::Bootstrap b;
  EXPECT_TRUE(r.resources_size() > 0 && r.resources(0).UnpackTo(&b));
  return b;
}

// A whole Bootstrap as pilot pushes it: outbound clusters `eds`, their endpoints apart.
v1::Bootstrap withoutEndpoints(v1::Bootstrap b) {
  for (v1::Cluster& c : *b.mutable_clusters()) {
    if (!c.name().starts_with("outbound|")) continue;
    c.set_eds(true);
    c.clear_endpoints();
  }
  return b;
}

std::map<std::string, v1::ClusterLoadAssignment> assignmentsOf(const dv1::DiscoveryResponse& r) {
  EXPECT_EQ(r.type_url(), pilot::server::kAssignmentType);
  std::map<std::string, v1::ClusterLoadAssignment> out;
  for (const auto& any : r.resources()) {
    v1::ClusterLoadAssignment a;
    EXPECT_TRUE(any.UnpackTo(&a));
    out[a.cluster_name()] = a;
  }
  return out;
}

// A pushed Bootstrap with the assignments' endpoints back in its clusters.
v1::Bootstrap merged(v1::Bootstrap b, const std::map<std::string, v1::ClusterLoadAssignment>& a) {
  for (v1::Cluster& c : *b.mutable_clusters()) {
    if (!c.eds()) continue;
    c.set_eds(false);
    auto it = a.find(c.name());
    if (it != a.end()) *c.mutable_endpoints() = it->second.endpoints();
  }
  return b;
}

::testing::AssertionResult sameBootstrap(const v1::Bootstrap& expected,
                                         const v1::Bootstrap& actual) {
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  if (d.Compare(expected, actual)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff;
}

class PilotIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_dir_ = tmp_.path() + "/config";
    ASSERT_EQ(::mkdir(config_dir_.c_str(), 0700), 0);
    writeFileAtomic(config_dir_ + "/bookinfo-services.yaml",
                    sourceFile("test/pilot/testdata/bookinfo-services.yaml"));
    writeFileAtomic(config_dir_ + "/destination-rule-all.yaml",
                    sourceFile("samples/bookinfo/networking/destination-rule-all.yaml"));
    writeFileAtomic(config_dir_ + "/reviews-vs.yaml", reviewsVirtualService(50));
    const std::string port_file = tmp_.file("pilot.ports");
    pilot_ = std::make_unique<Process>(
        std::vector<std::string>{binPath("pilot"), "--config-dir", config_dir_, "--grpc-address",
                                 "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--port-file",
                                 port_file, "--debounce-ms", "50"},
        tmp_.file("pilot.log"));
    std::string error;
    auto ports = waitForFile(port_file, *pilot_, kWait, &error);
    ASSERT_TRUE(ports.has_value()) << error << "\n" << pilot_->log();
    grpc_port_ = static_cast<uint16_t>(jsonNumber(*ports, "grpc").value_or(0));
    http_port_ = static_cast<uint16_t>(jsonNumber(*ports, "http").value_or(0));
    ASSERT_NE(grpc_port_, 0);
    ASSERT_NE(http_port_, 0);
    HttpResponse ready = httpGet(http_port_, "/ready");
    ASSERT_EQ(ready.status, 200) << ready.body << pilot_->log();
  }

  // Subscribes as productpage and ACKs the first push; nullopt (and a failure) if none came.
  std::optional<dv1::DiscoveryResponse> subscribeAndAck(XdsClient& client) {
    EXPECT_TRUE(client.subscribe(productpageNode()));
    auto r = client.next();
    EXPECT_TRUE(r.has_value()) << pilot_->log();
    if (r) {
      EXPECT_TRUE(client.ack(*r));
    }
    return r;
  }

  std::string syncz(const std::function<bool(const std::string&)>& pred) {
    return waitForPage(http_port_, "/debug/syncz", pred);
  }

  TempDir tmp_;
  std::string config_dir_;
  std::unique_ptr<Process> pilot_;
  uint16_t grpc_port_ = 0;
  uint16_t http_port_ = 0;
};

TEST_F(PilotIntegrationTest, FirstPushEqualsTheTranslatorsAndAnAckMakesItSynced) {
  XdsClient client(grpc_port_);
  EXPECT_TRUE(client.subscribe(productpageNode()));
  EXPECT_TRUE(client.subscribeAssignments());
  auto r = client.next();
  ASSERT_TRUE(r.has_value()) << pilot_->log();
  v1::Bootstrap b = bootstrapOf(*r);
  const v1::Bootstrap expected = expectedBootstrap(config_dir_);
  EXPECT_TRUE(sameBootstrap(withoutEndpoints(expected), b));
  EXPECT_FALSE(r->version_info().empty());
  EXPECT_FALSE(r->nonce().empty());
  // Then every outbound cluster's assignment: with them, the Translator's whole Bootstrap.
  auto a = client.next();
  ASSERT_TRUE(a.has_value()) << pilot_->log();
  auto assignments = assignmentsOf(*a);
  int outbound = 0;
  for (const auto& c : expected.clusters()) outbound += c.name().starts_with("outbound|");
  EXPECT_EQ(assignments.size(), static_cast<size_t>(outbound));
  EXPECT_GE(outbound, 4);
  EXPECT_TRUE(sameBootstrap(expected, merged(b, assignments)));
  EXPECT_TRUE(pilot::translate::testing::proxyAccepts(merged(b, assignments)));

  EXPECT_TRUE(client.ack(*r));
  EXPECT_TRUE(client.ack(*a));
  std::string want = "\"acked_version\":\"" + r->version_info() + "\"";
  std::string body = syncz([&](const std::string& s) { return s.find("SYNCED") != s.npos; });
  EXPECT_THAT(body, HasSubstr("\"status\":\"SYNCED\"")) << body;
  EXPECT_THAT(body, HasSubstr("\"sent_version\":\"" + r->version_info() + "\""));
  EXPECT_THAT(body, HasSubstr(want));
  EXPECT_THAT(body, HasSubstr(productpageNode().id()));

  std::string metrics = httpGet(http_port_, "/metrics").body;
  EXPECT_GE(promSum(metrics, "pilot_xds_pushes"), 1);
  EXPECT_EQ(promSum(metrics, "pilot_xds_connected_proxies"), 1);
  EXPECT_EQ(promSum(metrics, "pilot_proxy_convergence_time_count"), 2);  // one per type
}

TEST_F(PilotIntegrationTest, VirtualServiceChangeIsPushedWithANewVersion) {
  XdsClient client(grpc_port_);
  auto first = subscribeAndAck(client);
  ASSERT_TRUE(first.has_value());

  writeFileAtomic(config_dir_ + "/reviews-vs.yaml", reviewsVirtualService(80));
  auto second = client.next();
  ASSERT_TRUE(second.has_value()) << "no push after the change\n" << pilot_->log();
  EXPECT_NE(second->version_info(), first->version_info());
  EXPECT_NE(second->nonce(), first->nonce());
  v1::Bootstrap b = bootstrapOf(*second);
  EXPECT_TRUE(sameBootstrap(withoutEndpoints(expectedBootstrap(config_dir_)), b));
  EXPECT_TRUE(pilot::translate::testing::proxyAccepts(b));
  const v1::VirtualHost* vh = pilot::translate::testing::findVirtualHost(
      b, "9080", "reviews.default.svc.cluster.local:9080");
  ASSERT_NE(vh, nullptr);
  ASSERT_GT(vh->routes_size(), 0);
  ASSERT_EQ(vh->routes(0).route().weighted_clusters().clusters_size(), 2);
  EXPECT_EQ(vh->routes(0).route().weighted_clusters().clusters(0).weight(), 80u);
  EXPECT_TRUE(client.ack(*second));
  std::string body = syncz([&](const std::string& s) {
    return s.find("\"acked_version\":\"" + second->version_info() + "\"") != s.npos;
  });
  EXPECT_THAT(body, HasSubstr("SYNCED"));
}

TEST_F(PilotIntegrationTest, EndpointOnlyChangeSendsOnlyTheChangedAssignments) {
  XdsClient client(grpc_port_);
  EXPECT_TRUE(client.subscribe(productpageNode()));
  EXPECT_TRUE(client.subscribeAssignments());
  auto b = client.next();
  ASSERT_TRUE(b.has_value()) << pilot_->log();
  ASSERT_EQ(b->type_url(), pilot::server::kBootstrapType);
  auto a = client.next();
  ASSERT_TRUE(a.has_value()) << pilot_->log();
  ASSERT_EQ(a->type_url(), pilot::server::kAssignmentType);
  EXPECT_TRUE(client.ack(*b));
  EXPECT_TRUE(client.ack(*a));

  // ratings' one endpoint moves (the registry changes, the routing does not).
  std::string services = sourceFile("test/pilot/testdata/bookinfo-services.yaml");
  services.replace(services.find("address: 10.0.2.1"), 17, "address: 10.0.2.7");
  writeFileAtomic(config_dir_ + "/bookinfo-services.yaml", services);
  auto changed = client.next();
  ASSERT_TRUE(changed.has_value()) << "no push after the change\n" << pilot_->log();
  EXPECT_EQ(changed->type_url(), pilot::server::kAssignmentType);
  EXPECT_NE(changed->version_info(), a->version_info());
  auto assignments = assignmentsOf(*changed);
  // Only ratings' clusters (the service's and its subset v1's).
  ASSERT_EQ(assignments.size(), 2u);
  for (const char* name : {"outbound|9080||ratings.default.svc.cluster.local",
                           "outbound|9080|v1|ratings.default.svc.cluster.local"}) {
    ASSERT_TRUE(assignments.contains(name)) << name;
    ASSERT_EQ(assignments[name].endpoints_size(), 1);
    EXPECT_EQ(assignments[name].endpoints(0).address(), "10.0.2.7");
  }
  EXPECT_TRUE(client.ack(*changed));
  // Pilot recorded one Bootstrap and two assignment pushes, both ACKed at their versions.
  std::string body = syncz([&](const std::string& s) {
    return s.find("\"eds_acked_version\":\"" + changed->version_info() + "\"") != s.npos;
  });
  EXPECT_THAT(body, HasSubstr("\"status\":\"SYNCED\"")) << body;
  EXPECT_THAT(body, HasSubstr("\"sent_version\":\"" + b->version_info() + "\""));
  EXPECT_THAT(body, HasSubstr("\"pushes\":1,")) << body;
  EXPECT_THAT(body, HasSubstr("\"eds_pushes\":2")) << body;

  // A routing change after it: a Bootstrap (and no assignments: none changed).
  writeFileAtomic(config_dir_ + "/reviews-vs.yaml", reviewsVirtualService(90));
  auto routed = client.next();
  ASSERT_TRUE(routed.has_value()) << pilot_->log();
  EXPECT_EQ(routed->type_url(), pilot::server::kBootstrapType);
  EXPECT_TRUE(client.ack(*routed));
  body = syncz([&](const std::string& s) {
    return s.find("\"acked_version\":\"" + routed->version_info() + "\"") != s.npos;
  });
  EXPECT_THAT(body, HasSubstr("\"eds_pushes\":2")) << body;
}

TEST_F(PilotIntegrationTest, NackIsShownInSynczWithItsMessage) {
  XdsClient client(grpc_port_);
  auto first = subscribeAndAck(client);
  ASSERT_TRUE(first.has_value());
  writeFileAtomic(config_dir_ + "/reviews-vs.yaml", reviewsVirtualService(10));
  auto second = client.next();
  ASSERT_TRUE(second.has_value()) << pilot_->log();
  EXPECT_TRUE(client.nack(*second, first->version_info(), "clusters[2]: cannot resolve"));
  std::string body = syncz([](const std::string& s) { return s.find("REJECTED") != s.npos; });
  EXPECT_THAT(body, HasSubstr("\"status\":\"REJECTED\"")) << body;
  EXPECT_THAT(body, HasSubstr("\"message\":\"clusters[2]: cannot resolve\""));
  EXPECT_THAT(body, HasSubstr("\"acked_version\":\"" + first->version_info() + "\""));
  EXPECT_EQ(promSum(httpGet(http_port_, "/metrics").body, "pilot_total_xds_rejects"), 1);
  // The stream keeps going: the next change is still pushed.
  writeFileAtomic(config_dir_ + "/reviews-vs.yaml", reviewsVirtualService(20));
  auto third = client.next();
  ASSERT_TRUE(third.has_value()) << pilot_->log();
  EXPECT_TRUE(client.ack(*third));
  body = syncz([](const std::string& s) { return s.find("SYNCED") != s.npos; });
  EXPECT_THAT(body, HasSubstr("SYNCED"));
}

TEST_F(PilotIntegrationTest, InvalidFileKeepsTheLastGoodConfigAndConfigzNamesFileLineField) {
  XdsClient client(grpc_port_);
  auto first = subscribeAndAck(client);
  ASSERT_TRUE(first.has_value());

  std::string bad = reviewsVirtualService(50);
  bad.replace(bad.rfind("weight: 50"), 10, "weight: 150");
  writeFileAtomic(config_dir_ + "/reviews-vs.yaml", bad);
  const std::string field = "\"field\":\"spec.http[0].route[1].weight\"";
  std::string configz = waitForPage(http_port_, "/debug/configz",
                                    [&](const std::string& s) { return s.find(field) != s.npos; });
  EXPECT_THAT(configz, HasSubstr(field)) << configz;
  EXPECT_THAT(configz, HasSubstr("\"file\":\"" + config_dir_ + "/reviews-vs.yaml\",\"line\":17"));
  // The last good config still serves: same version, its resources listed, nothing pushed.
  EXPECT_THAT(configz, HasSubstr("\"version\":\"" + first->version_info() + "\""));
  EXPECT_THAT(configz,
              HasSubstr(R"("kind":"VirtualService","namespace":"default","name":"reviews")"));
  EXPECT_GE(promSum(httpGet(http_port_, "/metrics").body, "pilot_config_errors"), 1);
  EXPECT_EQ(httpGet(http_port_, "/ready").status, 200);

  // A new proxy still gets the last good config.
  XdsClient other(grpc_port_);
  dv1::Node node = productpageNode();
  node.set_id("sidecar~10.0.0.9~productpage-v1-456.default~default.svc.cluster.local");
  EXPECT_TRUE(other.subscribe(node));
  auto r = other.next();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->version_info(), first->version_info());

  // Fixing the file clears the errors and pushes the fixed config.
  writeFileAtomic(config_dir_ + "/reviews-vs.yaml", reviewsVirtualService(90));
  auto second = client.next();
  ASSERT_TRUE(second.has_value()) << pilot_->log();
  EXPECT_TRUE(pilot::translate::testing::proxyAccepts(bootstrapOf(*second)));
  configz = waitForPage(http_port_, "/debug/configz",
                        [](const std::string& s) { return s.find("\"errors\":[]") != s.npos; });
  EXPECT_THAT(configz, HasSubstr("\"errors\":[]"));
}

TEST_F(PilotIntegrationTest, UnknownTypeEndsTheStreamAndUnknownPathsAre404) {
  XdsClient client(grpc_port_);
  dv1::DiscoveryRequest req;
  *req.mutable_node() = productpageNode();
  req.set_type_url("type.googleapis.com/envoy.config.cluster.v3.Cluster");
  ASSERT_TRUE(client.send(req));
  EXPECT_FALSE(client.next().has_value());
  // The proxy gets the real status and reason (the synchronous server could only cancel).
  grpc::Status status = client.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("unknown type_url"));
  EXPECT_EQ(httpGet(http_port_, "/nope").status, 404);
}

}  // namespace
}  // namespace mesh::integration
