#include "pilot/translate/traffic_policy.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "test/pilot/translate/test_util.h"

namespace mesh::pilot::translate {
namespace {

using google::protobuf::util::MessageDifferencer;
using testing::findCluster;
using testing::findVirtualHost;
using testing::fromYaml;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::Mesh;
using testing::proxyIn;
using ::testing::SizeIs;
namespace v1 = mesh::proxy::v1;

constexpr char kWeb[] = R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: a}
spec:
  hosts: [web.a.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: http-admin, protocol: HTTP}
  endpoints:
  - {address: 10.1.0.1, labels: {version: v1}}
  - {address: 10.1.0.2, labels: {version: v2}}
---
)";

v1::Cluster clusterOf(const std::string& rule_yaml, const std::string& name,
                      std::vector<std::string>* warnings = nullptr) {
  Mesh mesh({std::string(kWeb) + rule_yaml});
  Translation t = mesh.translate(proxyIn("a"));
  if (warnings != nullptr) *warnings = t.warnings;
  const v1::Cluster* c = findCluster(t.bootstrap, name);
  EXPECT_NE(c, nullptr) << name;
  return c == nullptr ? v1::Cluster() : *c;
}

// Only the policy fields: name, type, service and endpoints are checked elsewhere.
v1::Cluster policyOnly(v1::Cluster c) {
  c.clear_name();
  c.clear_type();
  c.clear_service();
  c.clear_endpoints();
  return c;
}

void expectPolicy(const v1::Cluster& actual, const std::string& yaml) {
  v1::Cluster expected = fromYaml<v1::Cluster>(yaml);
  std::string diff;
  MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  EXPECT_TRUE(d.Compare(expected, policyOnly(actual))) << diff;
}

TEST(TrafficPolicyTest, SimpleLoadBalancers) {
  auto lb = [](const std::string& simple) {
    return clusterOf(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: )" +
                         simple + "}}\n",
                     "outbound|80||web.a.svc.cluster.local")
        .lb_policy();
  };
  EXPECT_EQ(lb("ROUND_ROBIN"), v1::Cluster::ROUND_ROBIN);
  EXPECT_EQ(lb("LEAST_REQUEST"), v1::Cluster::LEAST_REQUEST);
  EXPECT_EQ(lb("LEAST_CONN"), v1::Cluster::LEAST_REQUEST);
  EXPECT_EQ(lb("RANDOM"), v1::Cluster::RANDOM);
  EXPECT_EQ(lb("UNSPECIFIED"), v1::Cluster::LEAST_REQUEST);
  std::vector<std::string> warnings;
  clusterOf(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
)",
            "outbound|80||web.a.svc.cluster.local", &warnings);
  ASSERT_THAT(warnings, SizeIs(1));
  EXPECT_THAT(warnings[0], HasSubstr("PASSTHROUGH"));
}

TEST(TrafficPolicyTest, EveryConnectionPoolAndOutlierField) {
  v1::Cluster c = clusterOf(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 50, maxRequestsPerConnection: 5, idleTimeout: 30s, maxRetries: 3}
    outlierDetection:
      consecutive5xxErrors: 7
      consecutiveGatewayErrors: 3
      interval: 5s
      baseEjectionTime: 1m
      maxEjectionPercent: 50
      minHealthPercent: 25
)",
                            "outbound|80||web.a.svc.cluster.local");
  expectPolicy(c, R"(
lbPolicy: LEAST_REQUEST
connectTimeout: 0.25s
idleTimeout: 30s
circuitBreakers: {maxConnections: 100, maxPendingRequests: 10, maxRequests: 50, maxRetries: 3}
maxRequestsPerConnection: 5
outlierDetection:
  consecutive5xx: 7
  consecutiveGatewayFailure: 3
  interval: 5s
  baseEjectionTime: 60s
  maxEjectionPercent: 50
  minHealthPercent: 25
)");
}

TEST(TrafficPolicyTest, ZeroFiveXxDisablesAndDeprecatedConsecutiveErrorsCountsAsFiveXx) {
  v1::Cluster off = clusterOf(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 2}}
)",
                              "outbound|80||web.a.svc.cluster.local");
  ASSERT_TRUE(off.outlier_detection().has_consecutive_5xx());
  EXPECT_EQ(off.outlier_detection().consecutive_5xx().value(), 0u);
  EXPECT_EQ(off.outlier_detection().consecutive_gateway_failure().value(), 2u);
  v1::Cluster old = clusterOf(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy: {outlierDetection: {consecutiveErrors: 4}}
)",
                              "outbound|80||web.a.svc.cluster.local");
  EXPECT_EQ(old.outlier_detection().consecutive_5xx().value(), 4u);
}

constexpr char kLayered[] = R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 10}}
    portLevelSettings:
    - port: {number: 81}
      loadBalancer: {simple: RANDOM}
      connectionPool: {http: {http2MaxRequests: 7}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 2}}
      portLevelSettings:
      - port: {number: 81}
        loadBalancer: {simple: LEAST_REQUEST}
)";

TEST(TrafficPolicyTest, PortLevelAndSubsetPoliciesReplaceWholeCategories) {
  Mesh mesh({std::string(kWeb) + kLayered});
  Translation t = mesh.translate(proxyIn("a"));
  EXPECT_THAT(t.warnings, IsEmpty());
  auto get = [&](const std::string& name) {
    const v1::Cluster* c = findCluster(t.bootstrap, name);
    EXPECT_NE(c, nullptr) << name;
    return c == nullptr ? v1::Cluster() : *c;
  };
  // Port 80: the rule's own settings.
  expectPolicy(get("outbound|80||web.a.svc.cluster.local"),
               "{lbPolicy: ROUND_ROBIN, circuitBreakers: {maxConnections: 10}}");
  // Port 81: port-level categories replace the rule's (maxConnections is not inherited).
  expectPolicy(get("outbound|81||web.a.svc.cluster.local"),
               "{lbPolicy: RANDOM, circuitBreakers: {maxRequests: 7}}");
  // Subset without a policy: as the rule.
  expectPolicy(get("outbound|80|v1|web.a.svc.cluster.local"),
               "{lbPolicy: ROUND_ROBIN, circuitBreakers: {maxConnections: 10}}");
  // Subset policy over the rule's; subset port-level over everything.
  expectPolicy(get("outbound|80|v2|web.a.svc.cluster.local"),
               "{lbPolicy: ROUND_ROBIN, circuitBreakers: {maxConnections: 2}}");
  expectPolicy(get("outbound|81|v2|web.a.svc.cluster.local"),
               "{lbPolicy: LEAST_REQUEST, circuitBreakers: {maxConnections: 2}}");
  // Endpoints are filtered by the subset's labels.
  const v1::Cluster v2 = get("outbound|81|v2|web.a.svc.cluster.local");
  ASSERT_EQ(v2.endpoints_size(), 1);
  EXPECT_EQ(v2.endpoints(0).address(), "10.1.0.2");
}

TEST(TrafficPolicyTest, ConsistentHashSetsRingHashOrMaglevAndTheRouteHashPolicy) {
  Mesh mesh({std::string(kWeb) + R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}
    portLevelSettings:
    - port: {number: 81}
      loadBalancer:
        consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}, maglev: {tableSize: 65537}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true}}
)"});
  Translation t = mesh.translate(proxyIn("a"));
  const v1::Cluster* c80 = findCluster(t.bootstrap, "outbound|80||web.a.svc.cluster.local");
  ASSERT_NE(c80, nullptr);
  EXPECT_EQ(c80->lb_policy(), v1::Cluster::RING_HASH);
  EXPECT_EQ(c80->ring_hash_minimum_ring_size(), 2048u);
  const v1::Cluster* c81 = findCluster(t.bootstrap, "outbound|81||web.a.svc.cluster.local");
  ASSERT_NE(c81, nullptr);
  EXPECT_EQ(c81->lb_policy(), v1::Cluster::MAGLEV);
  EXPECT_EQ(c81->maglev_table_size(), 65537u);
  const v1::Cluster* s1 = findCluster(t.bootstrap, "outbound|80|v1|web.a.svc.cluster.local");
  ASSERT_NE(s1, nullptr);
  EXPECT_EQ(s1->lb_policy(), v1::Cluster::RING_HASH);

  // Without a VirtualService the default route carries the hash key.
  const v1::VirtualHost* vh80 = findVirtualHost(t.bootstrap, "80", "web.a.svc.cluster.local:80");
  ASSERT_NE(vh80, nullptr);
  ASSERT_EQ(vh80->routes(0).route().hash_policy_size(), 1);
  EXPECT_EQ(vh80->routes(0).route().hash_policy(0).header().name(), "x-user");
  const v1::VirtualHost* vh81 = findVirtualHost(t.bootstrap, "81", "web.a.svc.cluster.local:81");
  ASSERT_NE(vh81, nullptr);
  ASSERT_EQ(vh81->routes(0).route().hash_policy_size(), 1);
  const auto& cookie = vh81->routes(0).route().hash_policy(0).cookie();
  EXPECT_EQ(cookie.name(), "session");
  EXPECT_EQ(cookie.path(), "/");
  EXPECT_EQ(cookie.ttl().seconds(), 60);
}

TEST(TrafficPolicyTest, HashPolicyFollowsTheRoutedSubset) {
  Mesh mesh({std::string(kWeb) + R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: a}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web, subset: v1, port: {number: 80}}}]}]
)"});
  Translation t = mesh.translate(proxyIn("a"));
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "80", "web.a.svc.cluster.local:80");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes(0).route().hash_policy_size(), 1);
  EXPECT_TRUE(vh->routes(0).route().hash_policy(0).has_source_ip());
}

TEST(TrafficPolicyTest, UnsupportedSettingsAreWarnedAbout) {
  std::vector<std::string> warnings;
  v1::Cluster c = clusterOf(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpQueryParameterName: user}
)",
                            "outbound|80||web.a.svc.cluster.local", &warnings);
  EXPECT_EQ(c.lb_policy(), v1::Cluster::RING_HASH);
  ASSERT_THAT(warnings, SizeIs(1));  // once, though both ports use it
  EXPECT_THAT(warnings[0], HasSubstr("DestinationRule a/web"));
  EXPECT_THAT(warnings[0], HasSubstr("httpQueryParameterName"));
}

// SIMPLE/MUTUAL origination is not supported; ISTIO_MUTUAL is, with the proxy's workload
// certificates (capture_test.cc), and warned about for a proxy that has none.
TEST(TrafficPolicyTest, TlsOriginationIsWarnedAboutAndIstioMutualWithoutCertificates) {
  std::vector<std::string> warnings;
  clusterOf(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 81}
      tls: {mode: SIMPLE}
)",
            "outbound|80||web.a.svc.cluster.local", &warnings);
  ASSERT_THAT(warnings, SizeIs(2));
  EXPECT_THAT(warnings[0], HasSubstr("tls ISTIO_MUTUAL needs the proxy's workload certificates"));
  EXPECT_THAT(warnings[1], HasSubstr("tls SIMPLE"));
}

TEST(EffectivePolicyTest, NothingConfiguredIsAllNull) {
  EffectivePolicy p = effectivePolicy(nullptr, nullptr, 80);
  EXPECT_EQ(p.load_balancer, nullptr);
  EXPECT_EQ(p.connection_pool, nullptr);
  EXPECT_EQ(p.outlier_detection, nullptr);
  EXPECT_TRUE(hashPolicies(p).empty());
}

}  // namespace
}  // namespace mesh::pilot::translate

namespace mesh::pilot::translate {
namespace {

constexpr char kMixedProtocols[] = R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: a}
spec:
  hosts: [api.a.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: rpc, protocol: GRPC}
  - {number: 82, name: h2, protocol: HTTP2}
  - {number: 83, name: web, protocol: GRPC-WEB}
  endpoints:
  - {address: 10.1.0.1}
---
)";

bool http2Of(const Translation& t, uint32_t port) {
  const v1::Cluster* c =
      testing::findCluster(t.bootstrap, "outbound|" + std::to_string(port) + "||api.a.svc.cluster.local");
  EXPECT_NE(c, nullptr) << port;
  return c != nullptr && c->http2();
}

// Istio's rule for HTTP/2 upstream: the port's protocol (http2, grpc, grpc-web), or an HTTP port
// whose DestinationRule says h2UpgradePolicy: UPGRADE.
TEST(TrafficPolicyTest, Http2ForGrpcAndHttp2PortsAndForUpgradedHttp) {
  {
    testing::Mesh mesh({kMixedProtocols});
    Translation t = mesh.translate(testing::proxyIn("a"));
    EXPECT_FALSE(http2Of(t, 80));
    EXPECT_TRUE(http2Of(t, 81));
    EXPECT_TRUE(http2Of(t, 82));
    EXPECT_TRUE(http2Of(t, 83));
  }
  {
    testing::Mesh mesh({std::string(kMixedProtocols) + R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: a}
spec:
  host: api
  trafficPolicy:
    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
---
)"});
    Translation t = mesh.translate(testing::proxyIn("a"));
    EXPECT_TRUE(http2Of(t, 80));
    EXPECT_TRUE(http2Of(t, 81));
  }
  {
    // DO_NOT_UPGRADE keeps HTTP/1.1 for HTTP ports; declared HTTP/2 ports stay HTTP/2.
    testing::Mesh mesh({std::string(kMixedProtocols) + R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: a}
spec:
  host: api
  trafficPolicy:
    connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}
---
)"});
    Translation t = mesh.translate(testing::proxyIn("a"));
    EXPECT_FALSE(http2Of(t, 80));
    EXPECT_TRUE(http2Of(t, 81));
  }
}

}  // namespace
}  // namespace mesh::pilot::translate
