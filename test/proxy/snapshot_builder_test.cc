#include "proxy/config/snapshot_builder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/proxy/test_util.h"

namespace mesh::proxy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::SnapshotFixture;

constexpr const char* kValid = R"(node:
  id: sidecar~10.0.0.9~productpage-v1.default
  workloadName: productpage-v1
  namespace: default
  labels: {app: productpage, version: v1}
listeners:
- name: http
  address: 127.0.0.1:0
  http:
    routeConfigName: main
routeConfigs:
- name: main
  virtualHosts:
  - name: reviews
    domains: ["reviews", "reviews.default.svc.cluster.local"]
    routes:
    - match: {prefix: /}
      route:
        weightedClusters:
          clusters: [{name: reviews-v1, weight: 90}, {name: reviews-v2, weight: 10}]
        retryPolicy: {retryOn: "5xx,connect-failure", numRetries: 3, perTryTimeout: 2s}
        timeout: 5s
clusters:
- name: reviews-v1
  service: {host: reviews.default.svc.cluster.local}
  endpoints: [{address: 10.1.0.1, port: 9080, workload: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}}]
- name: reviews-v2
  type: STRICT_DNS
  lbPolicy: RING_HASH
  endpoints: [{address: backend.test, port: 9080, weight: 2}]
)";

TEST(SnapshotBuilderTest, BuildsAValidConfig) {
  SnapshotFixture f;
  auto snap = f.build(kValid);
  ASSERT_TRUE(snap.ok()) << snap.status().toString();
  const Snapshot& s = **snap;
  ASSERT_EQ(s.listeners.size(), 1u);
  EXPECT_EQ(s.listeners[0].name, "http");
  ASSERT_NE(s.listeners[0].routes, nullptr);
  ASSERT_EQ(s.clusters.size(), 2u);
  const ClusterInfo* v1 = s.findCluster("reviews-v1");
  ASSERT_NE(v1, nullptr);
  ASSERT_EQ(v1->hosts.size(), 1u);
  EXPECT_EQ(v1->hosts[0].key, "10.1.0.1:9080");
  EXPECT_NE(v1->service_id, 0u);
  EXPECT_NE(v1->hosts[0].workload_id, 0u);
  // STRICT_DNS resolved through the injected resolver: both addresses, weight kept.
  const ClusterInfo* v2 = s.findCluster("reviews-v2");
  ASSERT_NE(v2, nullptr);
  ASSERT_EQ(v2->hosts.size(), 2u);
  EXPECT_EQ(v2->hosts[0].key, "10.0.0.1:9080");
  EXPECT_EQ(v2->hosts[1].weight, 2u);
  EXPECT_EQ(v2->hosts[1].hostname, "backend.test");
  EXPECT_FALSE(v2->ring.empty());
  // Route details.
  const Route& r = s.listeners[0].routes->virtualHosts()[0]->routes[0];
  ASSERT_EQ(r.targets.size(), 2u);
  EXPECT_EQ(r.total_weight, 100u);
  ASSERT_TRUE(r.retry.has_value());
  EXPECT_EQ(r.retry->num_retries, 3u);
  EXPECT_EQ(r.retry->retry_on, kRetry5xx | kRetryConnectFailure);
  EXPECT_EQ(r.retry->per_try_timeout, Millis(2000));
  EXPECT_EQ(r.timeout, Millis(5000));
  EXPECT_NE(s.node.workload_id, 0u);
}

TEST(SnapshotBuilderTest, ReportsUnknownClusterWithFileLineAndField) {
  SnapshotFixture f;
  std::string yaml = kValid;
  yaml.replace(yaml.find("{name: reviews-v2, weight: 10}"), 30, "{name: ratings, weight: 10}");
  auto snap = f.build(yaml);
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(snap.status().message(),
              HasSubstr("proxy.yaml:20: routeConfigs[0].virtualHosts[0].routes[0].route."
                        "weightedClusters.clusters[1].name: unknown cluster 'ratings'"));
}

TEST(SnapshotBuilderTest, ReportsEveryErrorAtOnce) {
  SnapshotFixture f;
  const char* yaml = R"(listeners:
- name: a
  address: localhost:80
  http: {routeConfigName: missing}
- name: a
  address: 127.0.0.1:81
  http: {routeConfigName: r}
routeConfigs:
- name: r
  virtualHosts:
  - domains: ["*"]
    routes:
    - match: {regex: "(unclosed"}
      route: {cluster: c, retryPolicy: {retryOn: "5xx,sometimes", numRetries: 1}}
    - match: {prefix: /x}
      redirect: {responseCode: 200}
    - match: {prefix: /y}
      route: {cluster: c}
      requestHeaders: {set: [{name: x-bad, value: "a\rb"}]}
    - match: {prefix: /z}
clusters:
- name: c
  endpoints: [{address: not-an-ip, port: 80}, {address: 10.0.0.1, port: 0}]
)";
  auto snap = f.build(yaml);
  ASSERT_FALSE(snap.ok());
  const std::string& m = snap.status().message();
  EXPECT_THAT(m, HasSubstr("proxy.yaml:3: listeners[0].address: must be an IP address, got "
                           "'localhost'"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:4: listeners[0].http.routeConfigName: unknown route "
                           "configuration 'missing'"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:5: listeners[1].name: duplicate listener name 'a'"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:13: routeConfigs[0].virtualHosts[0].routes[0].match."
                           "regex: invalid regex '(unclosed'"));
  EXPECT_THAT(m, HasSubstr("routes[0].route.retryPolicy.retryOn: unknown retry condition "
                           "'sometimes'"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:16: routeConfigs[0].virtualHosts[0].routes[1].redirect."
                           "responseCode: must be 301, 302, 303, 307 or 308"));
  EXPECT_THAT(m, HasSubstr("routes[2].requestHeaders.set[0].value: header value must not "
                           "contain control characters"));
  EXPECT_THAT(m, HasSubstr("routes[3]: a route needs one of route, redirect or directResponse"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:23: clusters[0].endpoints[0].address: must be an IP "
                           "address for a STATIC cluster, got 'not-an-ip'"));
  EXPECT_THAT(m, HasSubstr("clusters[0].endpoints[1].port: must be 1..65535"));
}

TEST(SnapshotBuilderTest, RejectsDuplicateDomainsAndZeroWeights) {
  SnapshotFixture f;
  const char* yaml = R"(routeConfigs:
- name: r
  virtualHosts:
  - {domains: ["a.com", "*.b.com"], routes: [{match: {prefix: /}, directResponse: {status: 200}}]}
  - {domains: ["A.com"], routes: [{match: {prefix: /}, directResponse: {status: 200}}]}
  - domains: ["c.com"]
    routes:
    - match: {prefix: /}
      route: {weightedClusters: {clusters: [{name: c, weight: 0}]}}
clusters:
- {name: c, endpoints: [{address: 10.0.0.1, port: 80}]}
)";
  auto snap = f.build(yaml);
  ASSERT_FALSE(snap.ok());
  EXPECT_THAT(snap.status().message(),
              HasSubstr("proxy.yaml:5: routeConfigs[0].virtualHosts[1].domains: domain 'A.com' "
                        "is already used by another virtual host"));
  EXPECT_THAT(snap.status().message(),
              HasSubstr("virtualHosts[2].routes[0].route.weightedClusters: weights must not all "
                        "be 0"));
}

TEST(SnapshotBuilderTest, FaultInjectionIsValidated) {
  SnapshotFixture f;
  const char* yaml = R"(routeConfigs:
- name: r
  virtualHosts:
  - domains: ["*"]
    routes:
    - match: {prefix: /a}
      route: {cluster: c}
      fault: {abort: {httpStatus: 700, percentage: 150}}
    - match: {prefix: /b}
      route: {cluster: c}
      fault: {delay: {percentage: 50}}
    - match: {prefix: /c}
      redirect: {path: /d}
      fault: {abort: {httpStatus: 503}}
    - match: {prefix: /e}
      route: {cluster: c}
      fault: {}
    - match: {prefix: /ok}
      route: {cluster: c}
      fault: {delay: {fixedDelay: 1.5s, percentage: 12.5}, abort: {httpStatus: 503}}
clusters:
- {name: c, endpoints: [{address: 10.0.0.1, port: 80}]}
)";
  auto snap = f.build(yaml);
  ASSERT_FALSE(snap.ok());
  const std::string m(snap.status().message());
  EXPECT_THAT(m, HasSubstr("proxy.yaml:8: routeConfigs[0].virtualHosts[0].routes[0].fault.abort."
                           "httpStatus: must be between 200 and 599"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:8: routeConfigs[0].virtualHosts[0].routes[0].fault.abort."
                           "percentage: must be between 0 and 100"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:11: routeConfigs[0].virtualHosts[0].routes[1].fault.delay."
                           "fixedDelay: required"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:14: routeConfigs[0].virtualHosts[0].routes[2].fault: only "
                           "allowed on a route to a cluster"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:17: routeConfigs[0].virtualHosts[0].routes[3].fault: delay "
                           "or abort is required"));
  EXPECT_THAT(m, ::testing::Not(HasSubstr("routes[4]")));

  // The valid route alone builds, with the fractions per million.
  std::string good(yaml);
  good.erase(good.find("    - match: {prefix: /a}"),
             good.find("    - match: {prefix: /ok}") - good.find("    - match: {prefix: /a}"));
  auto ok = f.build(good);
  ASSERT_TRUE(ok.ok()) << ok.status().toString();
  const Route& r = (*ok)->route_tables[0]->virtualHosts()[0]->routes[0];
  ASSERT_TRUE(r.fault.has_value());
  EXPECT_EQ(r.fault->delay, Millis(1500));
  EXPECT_EQ(r.fault->delay_per_million, 125000u);
  EXPECT_EQ(r.fault->abort_status, 503);
  EXPECT_EQ(r.fault->abort_per_million, 1000000u);  // no percentage: every request
}

TEST(SnapshotBuilderTest, FaultAbortWithGrpcStatus) {
  SnapshotFixture f;
  auto bad = f.build(R"(routeConfigs:
- name: r
  virtualHosts:
  - domains: ["*"]
    routes:
    - match: {prefix: /a}
      route: {cluster: c}
      fault: {abort: {grpcStatus: 17}}
    - match: {prefix: /b}
      route: {cluster: c}
      fault: {abort: {httpStatus: 503, grpcStatus: 14}}
clusters:
- {name: c, endpoints: [{address: 10.0.0.1, port: 80}]}
)");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("proxy.yaml:8: routeConfigs[0].virtualHosts[0].routes[0].fault.abort."
                        "grpcStatus: must be between 0 and 16"));
  EXPECT_THAT(bad.status().message(),
              HasSubstr("proxy.yaml:11: routeConfigs[0].virtualHosts[0].routes[1].fault.abort."
                        "grpcStatus: only one of httpStatus and grpcStatus may be set"));
  auto ok = f.build(R"(routeConfigs:
- name: r
  virtualHosts:
  - domains: ["*"]
    routes:
    - match: {prefix: /}
      route: {cluster: c}
      fault: {abort: {grpcStatus: 14, percentage: 50}}
clusters:
- {name: c, endpoints: [{address: 10.0.0.1, port: 80}]}
)");
  ASSERT_TRUE(ok.ok()) << ok.status().toString();
  const Route& r = (*ok)->route_tables[0]->virtualHosts()[0]->routes[0];
  ASSERT_TRUE(r.fault.has_value());
  EXPECT_EQ(r.fault->abort_grpc_status, 14u);
  EXPECT_EQ(r.fault->abort_status, 200);
  EXPECT_EQ(r.fault->abort_per_million, 500000u);
}

TEST(SnapshotBuilderTest, CircuitBreakersAreValidatedAndShareStateAcrossBuilds) {
  SnapshotFixture f;
  auto bad = f.build(R"(clusters:
- name: c
  circuitBreakers: {maxConnections: 0, maxRequests: 5}
  endpoints: [{address: 10.0.0.1, port: 80}]
)");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("proxy.yaml:3: clusters[0].circuitBreakers.maxConnections: must be > 0"));

  const char* good = R"(clusters:
- name: c
  circuitBreakers: {maxConnections: 2, maxPendingRequests: 3}
  maxRequestsPerConnection: 4
  endpoints: [{address: 10.0.0.1, port: 80}]
)";
  auto one = f.build(good);
  ASSERT_TRUE(one.ok()) << one.status().toString();
  const ClusterInfo& c = *(*one)->clusters[0];
  EXPECT_EQ(c.limits.max_connections, 2u);
  EXPECT_EQ(c.limits.max_pending_requests, 3u);
  EXPECT_EQ(c.limits.max_requests, UINT32_MAX);  // absent: unlimited, as Istio sets Envoy
  EXPECT_EQ(c.max_requests_per_connection, 4u);
  // A reload keeps counting against the same limits: connections opened under the old
  // snapshot still count.
  auto two = f.build(good, one->get());
  ASSERT_TRUE(two.ok()) << two.status().toString();
  EXPECT_EQ((*two)->clusters[0]->breaker.get(), c.breaker.get());
}

TEST(SnapshotBuilderTest, OutlierDetectionIsValidatedAndKeepsHostHealthAcrossBuilds) {
  SnapshotFixture f;
  auto bad = f.build(R"(clusters:
- name: c
  outlierDetection: {maxEjectionPercent: 150, baseEjectionTime: 0s}
  endpoints: [{address: 10.0.0.1, port: 80}]
)");
  ASSERT_FALSE(bad.ok());
  const std::string m(bad.status().message());
  EXPECT_THAT(m, HasSubstr("proxy.yaml:3: clusters[0].outlierDetection.maxEjectionPercent: must "
                           "be <= 100"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:3: clusters[0].outlierDetection.baseEjectionTime: must be "
                           ">= 1ms"));

  const char* good = R"(clusters:
- name: c
  outlierDetection: {consecutiveGatewayFailure: 3}
  endpoints: [{address: 10.0.0.1, port: 80}, {address: 10.0.0.2, port: 80}]
)";
  auto one = f.build(good);
  ASSERT_TRUE(one.ok()) << one.status().toString();
  const ClusterInfo& c = *(*one)->clusters[0];
  EXPECT_TRUE(c.outlier.enabled);
  EXPECT_EQ(c.outlier.consecutive_5xx, 5u);  // Envoy's default
  EXPECT_EQ(c.outlier.consecutive_gateway, 3u);
  ASSERT_NE(c.hosts[0].health, nullptr);
  auto two = f.build(good, one->get());
  ASSERT_TRUE(two.ok()) << two.status().toString();
  EXPECT_EQ((*two)->clusters[0]->hosts[0].health.get(), c.hosts[0].health.get());
}

TEST(SnapshotBuilderTest, CorsPolicyIsValidated) {
  SnapshotFixture f;
  auto snap = f.build(R"(routeConfigs:
- name: r
  virtualHosts:
  - domains: ["*"]
    routes:
    - match: {prefix: /a}
      route: {cluster: c}
      cors: {allowOrigins: [{regex: "(unclosed"}], allowMethods: ["GET,POST"]}
    - match: {prefix: /b}
      route: {cluster: c}
      cors: {allowMethods: [GET]}
clusters: [{name: c, endpoints: [{address: 10.0.0.1, port: 80}]}]
)");
  ASSERT_FALSE(snap.ok());
  const std::string m(snap.status().message());
  EXPECT_THAT(m, HasSubstr("proxy.yaml:8: routeConfigs[0].virtualHosts[0].routes[0].cors."
                           "allowOrigins[0].regex: "));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:8: routeConfigs[0].virtualHosts[0].routes[0].cors."
                           "allowMethods[0]: invalid value 'GET,POST'"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:11: routeConfigs[0].virtualHosts[0].routes[1].cors."
                           "allowOrigins: at least one origin is required"));
}

TEST(SnapshotBuilderTest, TcpProxyListenersAreValidated) {
  SnapshotFixture f;
  auto snap = f.build(R"(listeners:
- {name: a, address: "127.0.0.1:0", tcpProxy: {cluster: nowhere}}
- {name: b, address: "127.0.0.1:0"}
- name: c
  address: "127.0.0.1:0"
  tcpProxy: {cluster: c, weightedClusters: {clusters: [{name: c, weight: 1}]}}
- name: d
  address: "127.0.0.1:0"
  tcpProxy: {sniRoutes: [{serverNames: ["a.*"], cluster: c}, {serverNames: [], cluster: x}]}
clusters: [{name: c, endpoints: [{address: 10.0.0.1, port: 80}]}]
)");
  ASSERT_FALSE(snap.ok());
  const std::string m(snap.status().message());
  EXPECT_THAT(m, HasSubstr("proxy.yaml:2: listeners[0].tcpProxy.cluster: unknown cluster "
                           "'nowhere'"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:3: listeners[1].http: http or tcpProxy is required"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:6: listeners[2].tcpProxy: set either cluster or "
                           "weightedClusters, not both"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:9: listeners[3].tcpProxy.sniRoutes[0].serverNames[0]: "
                           "must be a host name or '*.' followed by one, got 'a.*'"));
  EXPECT_THAT(m, HasSubstr("listeners[3].tcpProxy.sniRoutes[1].cluster: unknown cluster 'x'"));
  EXPECT_THAT(m, HasSubstr("listeners[3].tcpProxy.sniRoutes[1].serverNames: at least one name is "
                           "required"));
}

TEST(SnapshotBuilderTest, UnknownFieldsAreRejectedNotDropped) {
  SnapshotFixture f;
  auto snap = f.build("clusters:\n- name: c\n  lbPolcy: RANDOM\n");
  ASSERT_FALSE(snap.ok());
  EXPECT_THAT(snap.status().message(),
              HasSubstr("proxy.yaml:3: clusters[0]: unknown field 'lbPolcy' (did you mean "
                        "'lbPolicy'?)"));
}

TEST(SnapshotBuilderTest, ReusesDnsAnswersFromThePreviousSnapshot) {
  SnapshotFixture f;
  auto first = f.build(kValid);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(f.resolves, 1);
  // Unchanged DNS targets reuse the previous answer (the refresh timer re-resolves them).
  auto second = f.build(kValid, first->get());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(f.resolves, 1);
  EXPECT_EQ((*second)->findCluster("reviews-v2")->hosts.size(), 2u);
  // A changed target is resolved again.
  std::string changed = kValid;
  changed.replace(changed.find("backend.test"), 12, "one.test");
  auto third = f.build(changed, second->get());
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(f.resolves, 2);
  EXPECT_EQ((*third)->findCluster("reviews-v2")->hosts.size(), 1u);
}

TEST(SnapshotBuilderTest, ListenerSlotsAreStableAcrossBuilds) {
  SnapshotFixture f;
  auto a = f.build(kValid);
  auto b = f.build(kValid);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->listeners[0].slot, (*b)->listeners[0].slot);
  EXPECT_EQ((*b)->listenerBySlot((*a)->listeners[0].slot), &(*b)->listeners[0]);
}

TEST(SnapshotBuilderTest, HttpLimitsComeFromTheListener) {
  SnapshotFixture f;
  auto snap = f.build(R"(listeners:
- name: l
  address: 127.0.0.1:0
  http:
    routeConfig: {name: inline, virtualHosts: [{domains: ["*"], routes: [{directResponse: {status: 204}}]}]}
    limits: {maxRequestHeadersKb: 8, maxHeadersCount: 10, maxUriKb: 2}
)");
  ASSERT_TRUE(snap.ok()) << snap.status().toString();
  const http::Limits& l = (*snap)->listeners[0].limits;
  EXPECT_EQ(l.max_head_bytes, 8u * 1024);
  EXPECT_EQ(l.max_headers, 10u);
  EXPECT_EQ(l.max_uri_bytes, 2u * 1024);
}

TEST(SnapshotBuilderTest, Http2OptionsAndTheirBounds) {
  SnapshotFixture f;
  auto snap = f.build(R"(listeners:
- name: a
  address: 127.0.0.1:0
  http:
    routeConfig: {name: inline, virtualHosts: [{domains: ["*"], routes: [{directResponse: {status: 204}}]}]}
    limits: {maxRequestHeadersKb: 256}
    http2: {maxConcurrentStreams: 10, initialStreamWindowSize: 1048576, maxPrematureResets: 20,
            maxOutboundControlFrames: 50, maxConsecutiveInboundFramesWithEmptyPayload: 1}
)");
  ASSERT_TRUE(snap.ok()) << snap.status().toString();
  const Http2Limits& h = (*snap)->listeners[0].http2;
  EXPECT_EQ(h.max_concurrent_streams, 10u);
  EXPECT_EQ(h.initial_stream_window, 1048576u);
  EXPECT_EQ(h.initial_connection_window, 1024u * 1024);  // default
  EXPECT_EQ(h.max_premature_resets, 20u);
  EXPECT_EQ(h.max_refused_streams, 20u);
  EXPECT_EQ(h.max_outbound_control_frames, 50u);
  EXPECT_EQ(h.max_consecutive_empty_frames, 1u);
  // The header list limit is the listener's, with room in CONTINUATION frames for it.
  EXPECT_EQ(h.max_header_list_bytes, 256u * 1024);
  EXPECT_EQ(h.max_continuations, 18u);

  auto bad = f.build(R"(listeners:
- name: a
  address: 127.0.0.1:0
  http:
    routeConfig: {name: inline, virtualHosts: [{domains: ["*"], routes: [{directResponse: {status: 204}}]}]}
    http2: {maxConcurrentStreams: 0, initialStreamWindowSize: 100}
)");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("listeners[0].http.http2.maxConcurrentStreams: must be 1..2147483647"));
  EXPECT_THAT(bad.status().message(),
              HasSubstr("listeners[0].http.http2.initialStreamWindowSize: must be "
                        "65535..2147483647"));
}

TEST(SnapshotBuilderTest, TlsFilesAndFieldsAreCheckedWithTheirLines) {
  SnapshotFixture f;
  auto snap = f.build(R"(listeners:
- name: a
  address: 127.0.0.1:0
  http: {routeConfigName: r}
  tls:
    certificateChain: /nonexistent/a.crt
    privateKey: /nonexistent/a.key
- name: b
  address: 127.0.0.1:0
  http: {routeConfigName: r}
  tls: {certificateChain: /x.crt, privateKey: /x.key, requireClientCertificate: true, alpn: [h3]}
routeConfigs:
- name: r
  virtualHosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]
clusters:
- name: c
  endpoints: [{address: 10.0.0.1, port: 80}]
  tls:
    certificateChain: /nonexistent/c.crt
    subjectAltNames: ["spiffe://cluster.local/ns/default/sa/c"]
)");
  ASSERT_FALSE(snap.ok());
  const std::string& m = snap.status().message();
  EXPECT_THAT(m, HasSubstr("proxy.yaml:6: listeners[0].tls.certificateChain: cannot read "
                           "'/nonexistent/a.crt'"));
  EXPECT_THAT(m, HasSubstr("proxy.yaml:7: listeners[0].tls.privateKey: cannot read "
                           "'/nonexistent/a.key'"));
  EXPECT_THAT(m, HasSubstr("listeners[1].tls.trustedCa: required with requireClientCertificate"));
  EXPECT_THAT(m, HasSubstr("listeners[1].tls.alpn[0]: 'h3' is not served by an http listener"));
  EXPECT_THAT(m, HasSubstr("clusters[0].tls.privateKey: certificateChain and privateKey go "
                           "together"));
  EXPECT_THAT(m, HasSubstr("clusters[0].tls.trustedCa: required with subjectAltNames"));
}

}  // namespace
}  // namespace mesh::proxy

namespace mesh::proxy {
namespace {

// Istio's sidecar shape: virtualOutbound hands captured connections to per-port listeners that
// bind nothing; unknown destinations go to PassthroughCluster.
constexpr const char* kCapture = R"(listeners:
- name: virtualOutbound
  address: 0.0.0.0:15001
  useOriginalDst: true
  tcpProxy: {cluster: PassthroughCluster}
- name: 0.0.0.0_8000
  address: 0.0.0.0:8000
  bindToPort: false
  tcpProxy: {cluster: BlackHoleCluster}
- name: 10.250.0.2_8000
  address: 10.250.0.2:8000
  bindToPort: false
  tcpProxy: {cluster: PassthroughCluster}
- name: inbound_10.250.0.3_8000
  address: 10.250.0.3:8000
  direction: INBOUND
  bindToPort: false
  tcpProxy: {cluster: InboundPassthroughCluster}
clusters:
- {name: PassthroughCluster, type: ORIGINAL_DST}
- {name: BlackHoleCluster}
- {name: InboundPassthroughCluster, type: ORIGINAL_DST, upstreamBindAddress: 127.0.0.6}
)";

TEST(SnapshotBuilderTest, OriginalDstListenersAndClusters) {
  testing::SnapshotFixture f;
  auto snap = f.build(kCapture);
  ASSERT_TRUE(snap.ok()) << snap.status().message();
  const Snapshot& s = **snap;
  EXPECT_TRUE(s.listeners[0].use_original_dst);
  EXPECT_TRUE(s.listeners[0].bind_to_port);
  EXPECT_FALSE(s.listeners[1].bind_to_port);
  const ClusterInfo* pass = s.findCluster("PassthroughCluster");
  EXPECT_TRUE(pass->original_dst);
  ASSERT_EQ(pass->hosts.size(), 1u);  // the placeholder, never connected to
  EXPECT_EQ(pass->hosts[0].port, 0);
  EXPECT_TRUE(s.findCluster("BlackHoleCluster")->hosts.empty());
  EXPECT_EQ(s.findCluster("InboundPassthroughCluster")->upstream_bind_address, "127.0.0.6");
  EXPECT_EQ(s.findCluster("PassthroughCluster")->upstream_bind_address, "");
  // Exact address first, then the wildcard; never the virtual listener itself.
  constexpr Direction kOut = Direction::kOutbound, kIn = Direction::kInbound;
  EXPECT_EQ(s.findByDestination("10.250.0.2", 8000, kOut)->name, "10.250.0.2_8000");
  EXPECT_EQ(s.findByDestination("10.250.0.9", 8000, kOut)->name, "0.0.0.0_8000");
  EXPECT_EQ(s.findByDestination("10.250.0.2", 15001, kOut), nullptr);
  EXPECT_EQ(s.findByDestination("fd00::1", 8000, kOut), nullptr);
  // Only listeners of the asking listener's direction: an outbound port is not an inbound one.
  EXPECT_EQ(s.findByDestination("10.250.0.3", 8000, kIn)->name, "inbound_10.250.0.3_8000");
  EXPECT_EQ(s.findByDestination("10.250.0.9", 8000, kIn), nullptr);
  EXPECT_EQ(s.findByDestination("10.250.0.3", 8000, kOut)->name, "0.0.0.0_8000");
}

TEST(SnapshotBuilderTest, ServerFirstPortsNeedDetectionAndPortNumbers) {
  testing::SnapshotFixture f;
  auto ok = f.build(R"(listeners:
- name: sniffed
  address: 127.0.0.1:0
  http: {routeConfig: {virtualHosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]}}
  tcpProxy: {cluster: c}
  serverFirstPorts: [3306, 27017]
clusters:
- name: c
  endpoints: [{address: 127.0.0.1, port: 1}]
)");
  ASSERT_TRUE(ok.ok()) << ok.status().toString();
  ASSERT_EQ((*ok)->listeners.size(), 1u);
  EXPECT_THAT((*ok)->listeners[0].server_first_ports, ::testing::ElementsAre(3306, 27017));

  auto bad = f.build(R"(listeners:
- name: tcp
  address: 127.0.0.1:0
  tcpProxy: {cluster: c}
  serverFirstPorts: [3306]
- name: sniffed
  address: 127.0.0.1:0
  http: {routeConfig: {virtualHosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}}]}]}}
  tcpProxy: {cluster: c}
  serverFirstPorts: [70000]
clusters:
- name: c
  endpoints: [{address: 127.0.0.1, port: 1}]
)");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              ::testing::AllOf(HasSubstr("listeners[0].serverFirstPorts: needs protocol detection"),
                               HasSubstr("listeners[1].serverFirstPorts[0]: must be a port number "
                                         "(1-65535), got 70000")));
}

TEST(SnapshotBuilderTest, OriginalDstMisuseIsReported) {
  testing::SnapshotFixture f;
  auto snap = f.build(R"(listeners:
- name: virtualOutbound
  address: 0.0.0.0:15001
  useOriginalDst: true
  bindToPort: false
  http:
    routeConfig:
      virtualHosts:
      - name: all
        domains: ["*"]
        routes:
        - match: {prefix: /}
          route: {cluster: PassthroughCluster, requestMirrorPolicies: [{cluster: PassthroughCluster}]}
  tcpProxy: {cluster: PassthroughCluster}
clusters:
- name: PassthroughCluster
  type: ORIGINAL_DST
  endpoints: [{address: 10.0.0.1, port: 80}]
  upstreamBindAddress: localhost
)");
  ASSERT_FALSE(snap.ok());
  EXPECT_EQ(snap.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(
      snap.status().message(),
      ::testing::AllOf(
          HasSubstr("listeners[0].bindToPort: a useOriginalDst listener must bind its port"),
          HasSubstr("requestMirrorPolicies[0].cluster: an ORIGINAL_DST cluster cannot be a "
                    "mirror"),
          HasSubstr("clusters[0].endpoints: must be empty for an ORIGINAL_DST cluster"),
          HasSubstr("clusters[0].upstreamBindAddress: must be an IP address, got 'localhost'")));
}

}  // namespace
}  // namespace mesh::proxy
