#include "pilot/translate/traffic_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/pilot/translate/test_util.h"

namespace mesh::pilot::translate::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kWeb80[] = "outbound|80||web.a.svc.cluster.local";

// DestinationRule a/web for host web: `body` is the spec after `host`.
std::string webRule(const std::string& body) {
  return destinationRule("web", "a", "  host: web\n" + body);
}

// Cluster `name` of web (webInA) under the rule, for a proxy in a.
v1::Cluster clusterOf(const std::string& rule_body, const std::string& name = kWeb80,
                      std::vector<std::string>* warnings = nullptr) {
  Translation t = translateOnce({webInA(), webRule(rule_body)}, proxyIn("a"));
  if (warnings != nullptr) *warnings = t.warnings;
  const v1::Cluster* c = findCluster(t.bootstrap, name);
  EXPECT_NE(c, nullptr) << name;
  return c == nullptr ? v1::Cluster() : *c;
}

// Only the policy fields: name, type, service and endpoints are checked elsewhere.
::testing::AssertionResult policyIs(v1::Cluster actual, const std::string& yaml) {
  actual.clear_name();
  actual.clear_type();
  actual.clear_service();
  actual.clear_endpoints();
  return equalsYaml(actual, yaml);
}

TEST(TrafficPolicyTest, SimpleLoadBalancers) {
  const std::pair<std::string, v1::Cluster::LbPolicy> cases[] = {
      {"ROUND_ROBIN", v1::Cluster::ROUND_ROBIN},
      {"LEAST_REQUEST", v1::Cluster::LEAST_REQUEST},
      {"LEAST_CONN", v1::Cluster::LEAST_REQUEST},
      {"RANDOM", v1::Cluster::RANDOM},
      {"UNSPECIFIED", v1::Cluster::LEAST_REQUEST}};
  for (const auto& [simple, lb_policy] : cases) {
    EXPECT_EQ(clusterOf("  trafficPolicy: {loadBalancer: {simple: " + simple + "}}\n").lb_policy(),
              lb_policy)
        << simple;
  }
  std::vector<std::string> warnings;
  clusterOf("  trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n", kWeb80, &warnings);
  ASSERT_THAT(warnings, SizeIs(1));
  EXPECT_THAT(warnings[0], HasSubstr("PASSTHROUGH"));
}

TEST(TrafficPolicyTest, EveryConnectionPoolAndOutlierField) {
  v1::Cluster c = clusterOf(R"(  trafficPolicy:
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
)");
  EXPECT_TRUE(policyIs(c, R"(
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
)"));
}

TEST(TrafficPolicyTest, ZeroFiveXxDisablesAndDeprecatedConsecutiveErrorsCountsAsFiveXx) {
  v1::Cluster off = clusterOf(
      "  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: "
      "2}}\n");
  ASSERT_TRUE(off.outlier_detection().has_consecutive_5xx());
  EXPECT_EQ(off.outlier_detection().consecutive_5xx().value(), 0u);
  EXPECT_EQ(off.outlier_detection().consecutive_gateway_failure().value(), 2u);
  v1::Cluster old = clusterOf("  trafficPolicy: {outlierDetection: {consecutiveErrors: 4}}\n");
  EXPECT_EQ(old.outlier_detection().consecutive_5xx().value(), 4u);
}

TEST(TrafficPolicyTest, PortLevelAndSubsetPoliciesReplaceWholeCategories) {
  Translation t = translateOnce({webInA(), webRule(R"(  trafficPolicy:
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
)")},
                                proxyIn("a"));
  EXPECT_THAT(t.warnings, IsEmpty());
  auto get = [&](const std::string& name) {
    const v1::Cluster* c = findCluster(t.bootstrap, name);
    EXPECT_NE(c, nullptr) << name;
    return c == nullptr ? v1::Cluster() : *c;
  };
  // Port 80: the rule's own settings.
  EXPECT_TRUE(
      policyIs(get(kWeb80), "{lbPolicy: ROUND_ROBIN, circuitBreakers: {maxConnections: 10}}"));
  // Port 81: port-level categories replace the rule's (maxConnections is not inherited).
  EXPECT_TRUE(policyIs(get("outbound|81||web.a.svc.cluster.local"),
                       "{lbPolicy: RANDOM, circuitBreakers: {maxRequests: 7}}"));
  // Subset without a policy: as the rule.
  EXPECT_TRUE(policyIs(get("outbound|80|v1|web.a.svc.cluster.local"),
                       "{lbPolicy: ROUND_ROBIN, circuitBreakers: {maxConnections: 10}}"));
  // Subset policy over the rule's; subset port-level over everything.
  EXPECT_TRUE(policyIs(get("outbound|80|v2|web.a.svc.cluster.local"),
                       "{lbPolicy: ROUND_ROBIN, circuitBreakers: {maxConnections: 2}}"));
  EXPECT_TRUE(policyIs(get("outbound|81|v2|web.a.svc.cluster.local"),
                       "{lbPolicy: LEAST_REQUEST, circuitBreakers: {maxConnections: 2}}"));
  // Endpoints are filtered by the subset's labels.
  const v1::Cluster v2 = get("outbound|81|v2|web.a.svc.cluster.local");
  ASSERT_EQ(v2.endpoints_size(), 1);
  EXPECT_EQ(v2.endpoints(0).address(), "10.1.0.2");
}

TEST(TrafficPolicyTest, ConsistentHashSetsRingHashOrMaglevAndTheRouteHashPolicy) {
  Translation t = translateOnce({webInA(), webRule(R"(  trafficPolicy:
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
)")},
                                proxyIn("a"));
  const v1::Cluster* c80 = findCluster(t.bootstrap, kWeb80);
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
  Translation t = translateOnce({webInA(), webRule(R"(  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {useSourceIp: true}}
)"),
                                 virtualService("web", "a", R"(  hosts: [web]
  http: [{route: [{destination: {host: web, subset: v1, port: {number: 80}}}]}]
)")},
                                proxyIn("a"));
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "80", "web.a.svc.cluster.local:80");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes(0).route().hash_policy_size(), 1);
  EXPECT_TRUE(vh->routes(0).route().hash_policy(0).has_source_ip());
}

TEST(TrafficPolicyTest, UnsupportedSettingsAreWarnedAbout) {
  std::vector<std::string> warnings;
  v1::Cluster c = clusterOf(R"(  trafficPolicy:
    loadBalancer:
      consistentHash: {httpQueryParameterName: user}
)",
                            kWeb80, &warnings);
  EXPECT_EQ(c.lb_policy(), v1::Cluster::RING_HASH);
  ASSERT_THAT(warnings, SizeIs(1));  // once, though both ports use it
  EXPECT_THAT(warnings[0], HasSubstr("DestinationRule a/web"));
  EXPECT_THAT(warnings[0], HasSubstr("httpQueryParameterName"));
}

// SIMPLE/MUTUAL origination is not supported; ISTIO_MUTUAL is, with the proxy's workload
// certificates (capture_test.cc), and warned about for a proxy that has none.
TEST(TrafficPolicyTest, TlsOriginationIsWarnedAboutAndIstioMutualWithoutCertificates) {
  std::vector<std::string> warnings;
  clusterOf(R"(  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 81}
      tls: {mode: SIMPLE}
)",
            kWeb80, &warnings);
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

// Istio's rule for HTTP/2 upstream: the port's protocol (http2, grpc, grpc-web), or an HTTP port
// whose DestinationRule says h2UpgradePolicy: UPGRADE.
TEST(TrafficPolicyTest, Http2ForGrpcAndHttp2PortsAndForUpgradedHttp) {
  const std::string api = meshService("api", "a", R"(  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: rpc, protocol: GRPC}
  - {number: 82, name: h2, protocol: HTTP2}
  - {number: 83, name: web, protocol: GRPC-WEB}
  endpoints:
  - {address: 10.1.0.1}
)");
  struct Case {
    std::string h2_upgrade_policy;  // "" for no DestinationRule
    std::map<uint32_t, bool> http2_by_port;
  };
  const Case cases[] = {
      {"", {{80, false}, {81, true}, {82, true}, {83, true}}},
      {"UPGRADE", {{80, true}, {81, true}}},
      // DO_NOT_UPGRADE keeps HTTP/1.1 for HTTP ports; declared HTTP/2 ports stay HTTP/2.
      {"DO_NOT_UPGRADE", {{80, false}, {81, true}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.h2_upgrade_policy.empty() ? "no DestinationRule"
                                             : "h2UpgradePolicy " + c.h2_upgrade_policy);
    std::vector<std::string> docs = {api};
    if (!c.h2_upgrade_policy.empty()) {
      docs.push_back(destinationRule("api", "a",
                                     "  host: api\n  trafficPolicy:\n    connectionPool: {http: "
                                     "{h2UpgradePolicy: " +
                                         c.h2_upgrade_policy + "}}\n"));
    }
    Translation t = translateOnce(docs, proxyIn("a"));
    for (const auto& [port, http2] : c.http2_by_port) {
      const v1::Cluster* cluster = findCluster(
          t.bootstrap, "outbound|" + std::to_string(port) + "||api.a.svc.cluster.local");
      ASSERT_NE(cluster, nullptr) << port;
      EXPECT_EQ(cluster->http2(), http2) << port;
    }
  }
}

}  // namespace
}  // namespace mesh::pilot::translate::testing
