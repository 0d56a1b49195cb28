#include "config/resource.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mesh::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::vector<std::string> strings(const std::vector<ValidationError>& errors) {
  std::vector<std::string> out;
  for (const ValidationError& e : errors) out.push_back(e.toString());
  return out;
}

TEST(ResourceTest, LoadsVirtualServiceWithEveryHttpFeature) {
  const LoadedConfig c = loadConfigStream(R"(apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: prod
  labels:
    app: reviews
  annotations:
    owner: team-a
spec:
  hosts: [reviews]
  gateways: [mesh, istio-system/ingress]
  exportTo: ["."]
  http:
  - name: jason
    match:
    - uri: {prefix: /api}
      scheme: {exact: https}
      method: {exact: GET}
      authority: {regex: "a.*"}
      headers:
        end-user: {exact: jason}
      withoutHeaders:
        x-debug: {}
      queryParams:
        v: {exact: "2"}
      sourceLabels: {app: productpage}
      port: 9080
      ignoreUriCase: true
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 80
      headers:
        request:
          set: {x-a: "1"}
    - destination: {host: reviews, subset: v3}
      weight: 20
    headers:
      request: {add: {x-b: "2"}, remove: [x-c]}
      response: {set: {x-d: "3"}}
    rewrite: {uri: /v2, authority: reviews.internal}
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 250ms, retryOn: "5xx,reset"}
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 10}}
      abort: {httpStatus: 503, percentage: {value: 0.5}}
    mirror: {host: reviews, subset: v1}
    mirrorPercentage: {value: 25}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a]
      maxAge: 24h
      allowCredentials: true
  - redirect: {uri: /new, authority: example.com, redirectCode: 302}
  - directResponse: {status: 404, body: {string: nope}}
  tcp:
  - match: [{port: 3306, destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: mysql}}]
  tls:
  - match: [{sniHosts: [reviews], port: 443}]
    route: [{destination: {host: reviews}}]
)",
                                          "vs.yaml");
  ASSERT_TRUE(c.errors.empty()) << c.errors.toString();
  EXPECT_THAT(c.warnings, IsEmpty());
  ASSERT_THAT(c.resources, SizeIs(1));
  const Resource& r = c.resources[0];
  EXPECT_EQ(r.kind, Kind::kVirtualService);
  EXPECT_EQ(r.name, "reviews");
  EXPECT_EQ(r.namespace_name, "prod");
  EXPECT_EQ(r.labels.at("app"), "reviews");
  EXPECT_EQ(r.annotations.at("owner"), "team-a");
  EXPECT_EQ(r.file, "vs.yaml");
  EXPECT_EQ(r.line, 1);
  EXPECT_EQ(r.displayName(), "\"reviews\" (VirtualService)");
  const auto* vs = r.as<networking::VirtualService>();
  ASSERT_NE(vs, nullptr);
  EXPECT_EQ(r.as<networking::DestinationRule>(), nullptr);
  EXPECT_THAT(vs->gateways(), ElementsAre("mesh", "istio-system/ingress"));
  EXPECT_THAT(vs->export_to(), ElementsAre("."));
  ASSERT_EQ(vs->http_size(), 3);
  const auto& h = vs->http(0);
  EXPECT_EQ(h.name(), "jason");
  const auto& m = h.match(0);
  EXPECT_EQ(m.uri().prefix(), "/api");
  EXPECT_EQ(m.scheme().exact(), "https");
  EXPECT_EQ(m.method().exact(), "GET");
  EXPECT_EQ(m.authority().regex(), "a.*");
  EXPECT_EQ(m.headers().at("end-user").exact(), "jason");
  EXPECT_EQ(m.without_headers().at("x-debug").match_type_case(),
            networking::StringMatch::MATCH_TYPE_NOT_SET);
  EXPECT_EQ(m.query_params().at("v").exact(), "2");
  EXPECT_EQ(m.source_labels().at("app"), "productpage");
  EXPECT_EQ(m.port(), 9080u);
  EXPECT_TRUE(m.ignore_uri_case());
  EXPECT_EQ(h.route(0).destination().port().number(), 9080u);
  EXPECT_EQ(h.route(0).weight(), 80);
  EXPECT_EQ(h.route(0).headers().request().set().at("x-a"), "1");
  EXPECT_EQ(h.headers().request().add().at("x-b"), "2");
  EXPECT_THAT(h.headers().request().remove(), ElementsAre("x-c"));
  EXPECT_EQ(h.headers().response().set().at("x-d"), "3");
  EXPECT_EQ(h.rewrite().authority(), "reviews.internal");
  EXPECT_EQ(h.timeout().seconds(), 1);
  EXPECT_EQ(h.timeout().nanos(), 500'000'000);
  EXPECT_EQ(h.retries().attempts(), 3);
  EXPECT_EQ(h.retries().per_try_timeout().nanos(), 250'000'000);
  EXPECT_EQ(h.retries().retry_on(), "5xx,reset");
  EXPECT_EQ(h.fault().delay().fixed_delay().seconds(), 7);
  EXPECT_DOUBLE_EQ(h.fault().delay().percentage().value(), 10);
  EXPECT_EQ(h.fault().abort().http_status(), 503);
  EXPECT_DOUBLE_EQ(h.fault().abort().percentage().value(), 0.5);
  EXPECT_EQ(h.mirror().subset(), "v1");
  EXPECT_DOUBLE_EQ(h.mirror_percentage().value(), 25);
  EXPECT_EQ(h.cors_policy().allow_origins(0).exact(), "https://example.com");
  EXPECT_EQ(h.cors_policy().max_age().seconds(), 86400);
  EXPECT_TRUE(h.cors_policy().allow_credentials().value());
  EXPECT_EQ(vs->http(1).redirect().redirect_code(), 302u);
  EXPECT_EQ(vs->http(2).direct_response().body().string(), "nope");
  EXPECT_EQ(vs->tcp(0).match(0).port(), 3306u);
  EXPECT_EQ(vs->tcp(0).route(0).destination().host(), "mysql");
  EXPECT_EQ(vs->tls(0).match(0).sni_hosts(0), "reviews");
  // Lines of fields, for validation messages.
  EXPECT_EQ(r.lineOf("spec.http[0].route[1].weight"), 37);
  EXPECT_EQ(r.lineOf("spec.http[0].match[0].headers[end-user]"), 22);
}

TEST(ResourceTest, LoadsDestinationRule) {
  const LoadedConfig c = loadConfigStream(R"(apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.prod.svc.cluster.local
  exportTo: ["*"]
  workloadSelector: {matchLabels: {app: productpage}}
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, ttl: 0s}
        ringHash: {minimumRingSize: 1024}
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: us-west}]
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {probes: 3, time: 7200s}}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRetries: 3,
             idleTimeout: 1h, h2UpgradePolicy: UPGRADE, useClientProtocol: true}
    outlierDetection:
      consecutive5xxErrors: 7
      consecutiveGatewayErrors: 3
      interval: 5m
      baseEjectionTime: 15m
      maxEjectionPercent: 50
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 80}
      loadBalancer: {simple: LEAST_REQUEST}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
)",
                                          "dr.yaml");
  ASSERT_TRUE(c.errors.empty()) << c.errors.toString();
  ASSERT_THAT(c.resources, SizeIs(1));
  EXPECT_EQ(c.resources[0].namespace_name, "default");
  const auto* dr = c.resources[0].as<networking::DestinationRule>();
  ASSERT_NE(dr, nullptr);
  EXPECT_EQ(dr->host(), "reviews.prod.svc.cluster.local");
  EXPECT_EQ(dr->workload_selector().match_labels().at("app"), "productpage");
  const auto& tp = dr->traffic_policy();
  EXPECT_EQ(tp.load_balancer().consistent_hash().http_cookie().name(), "user");
  EXPECT_EQ(tp.load_balancer().consistent_hash().ring_hash().minimum_ring_size(), 1024u);
  EXPECT_TRUE(tp.load_balancer().locality_lb_setting().enabled().value());
  EXPECT_EQ(tp.connection_pool().tcp().max_connections(), 100);
  EXPECT_EQ(tp.connection_pool().tcp().connect_timeout().nanos(), 30'000'000);
  EXPECT_EQ(tp.connection_pool().http().h2_upgrade_policy(),
            networking::ConnectionPoolSettings::HTTPSettings::UPGRADE);
  EXPECT_EQ(tp.outlier_detection().consecutive_5xx_errors().value(), 7u);
  EXPECT_EQ(tp.outlier_detection().base_ejection_time().seconds(), 900);
  EXPECT_EQ(tp.tls().mode(), networking::ClientTLSSettings::ISTIO_MUTUAL);
  EXPECT_EQ(tp.port_level_settings(0).load_balancer().simple(),
            networking::LoadBalancerSettings::LEAST_REQUEST);
  EXPECT_EQ(dr->subsets(0).traffic_policy().load_balancer().simple(),
            networking::LoadBalancerSettings::ROUND_ROBIN);
}

TEST(ResourceTest, LoadsGatewayServiceEntryWorkloadEntryAndSidecar) {
  const LoadedConfig c = loadConfigStream(R"(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["prod/*.example.com"]
    tls: {mode: SIMPLE, credentialName: example-cert, minProtocolVersion: TLSV1_2}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  addresses: [192.168.1.0/24]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP, targetPort: 15432}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - {address: 192.168.1.10, ports: {tcp-pg: 6432}, labels: {zone: a}, locality: us/east/1,
     weight: 3, serviceAccount: db, network: n1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1}
spec: {address: 10.1.2.3, labels: {app: ratings}, serviceAccount: ratings}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: prod}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
    captureMode: IPTABLES
  egress:
  - hosts: ["./*", "istio-system/*"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
)",
                                          "many.yaml");
  ASSERT_TRUE(c.errors.empty()) << c.errors.toString();
  ASSERT_THAT(c.resources, SizeIs(4));
  const auto* gw = c.resources[0].as<networking::Gateway>();
  ASSERT_NE(gw, nullptr);
  EXPECT_EQ(gw->selector().at("istio"), "ingressgateway");
  EXPECT_EQ(gw->servers(0).port().protocol(), "HTTPS");
  EXPECT_EQ(gw->servers(0).tls().credential_name(), "example-cert");
  EXPECT_EQ(gw->servers(0).tls().min_protocol_version(), networking::ServerTLSSettings::TLSV1_2);
  const auto* se = c.resources[1].as<networking::ServiceEntry>();
  ASSERT_NE(se, nullptr);
  EXPECT_EQ(c.resources[1].line, 11);
  EXPECT_EQ(se->resolution(), networking::ServiceEntry::STATIC);
  EXPECT_EQ(se->location(), networking::ServiceEntry::MESH_INTERNAL);
  EXPECT_EQ(se->ports(0).target_port(), 15432u);
  EXPECT_EQ(se->endpoints(0).ports().at("tcp-pg"), 6432u);
  EXPECT_EQ(se->endpoints(0).weight(), 3u);
  const auto* we = c.resources[2].as<networking::WorkloadEntry>();
  ASSERT_NE(we, nullptr);
  EXPECT_EQ(we->address(), "10.1.2.3");
  EXPECT_EQ(c.resources[2].line, 24);
  const auto* sc = c.resources[3].as<networking::Sidecar>();
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(c.resources[3].namespace_name, "prod");
  EXPECT_EQ(sc->ingress(0).capture_mode(), networking::IPTABLES);
  EXPECT_THAT(sc->egress(0).hosts(), ElementsAre("./*", "istio-system/*"));
  EXPECT_EQ(c.resources[3].lineOf("spec.ingress[0].defaultEndpoint"), 36);
}

TEST(ResourceTest, AcceptsAllThreeApiVersions) {
  for (const char* version : {"v1alpha3", "v1beta1", "v1"}) {
    const std::string yaml = std::string("apiVersion: networking.istio.io/") + version +
                             "\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: r}\n";
    const LoadedConfig c = loadConfigStream(yaml, "v.yaml");
    EXPECT_TRUE(c.errors.empty()) << version << ": " << c.errors.toString();
    ASSERT_THAT(c.resources, SizeIs(1)) << version;
    EXPECT_EQ(c.resources[0].api_version, std::string("networking.istio.io/") + version);
  }
}

TEST(ResourceTest, RejectsUnknownVersionOfTheGroup) {
  const LoadedConfig c = loadConfigStream(
      "# comment\napiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: g}\n",
      "v.yaml");
  EXPECT_THAT(c.resources, IsEmpty());
  EXPECT_EQ(c.failed_objects, 1);
  EXPECT_EQ(c.errors.toString(),
            "v.yaml:2: apiVersion: unsupported version 'networking.istio.io/v2'; expected "
            "networking.istio.io/v1alpha3, v1beta1 or v1");
}

TEST(ResourceTest, MultiDocumentStreamKeepsLineNumbers) {
  const LoadedConfig c = loadConfigStream(R"(---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec: {host: a}
---
# second
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b}
spec:
  hosts: [b]
  http:
  - route:
    - destination: {host: b}
      weigth: 100
...
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c}
spec:
  host: c
  subsets: {name: v1}
)",
                                          "multi.yaml");
  ASSERT_THAT(c.resources, SizeIs(2));
  EXPECT_EQ(c.resources[0].line, 2);
  EXPECT_EQ(c.resources[1].line, 8);
  EXPECT_EQ(c.resources[1].lineOf("spec.http[0].route[0].destination"), 15);
  EXPECT_THAT(strings(c.warnings),
              ElementsAre("multi.yaml:16: spec.http[0].route[0]: unknown field 'weigth' (did you "
                          "mean 'weight'?)"));
  EXPECT_EQ(c.failed_objects, 1);
  EXPECT_THAT(c.errors.toString(), HasSubstr("multi.yaml:24: spec.subsets: expected a list"));
}

TEST(ResourceTest, UnknownFieldsAreWarningsWithTheirLine) {
  const LoadedConfig c = loadConfigStream(R"(apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: g
  finalizers: [x]
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tlss: {}
)",
                                          "w.yaml");
  EXPECT_TRUE(c.errors.empty()) << c.errors.toString();
  ASSERT_THAT(c.resources, SizeIs(1));
  EXPECT_THAT(
      strings(c.warnings),
      ElementsAre("w.yaml:5: metadata: unknown field 'finalizers'",
                  "w.yaml:11: spec.servers[0]: unknown field 'tlss' (did you mean 'tls'?)"));
}

TEST(ResourceTest, SkipsOtherKindsWithANote) {
  const LoadedConfig c = loadConfigStream(R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: reviews}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: f}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews}
)",
                                          "mixed.yaml");
  EXPECT_TRUE(c.errors.empty()) << c.errors.toString();
  EXPECT_THAT(c.warnings, IsEmpty());
  ASSERT_THAT(c.resources, SizeIs(1));
  EXPECT_EQ(c.resources[0].line, 16);
  EXPECT_THAT(c.notes,
              ElementsAre("mixed.yaml:1: skipped Service (v1): not an Istio networking resource",
                          "mixed.yaml:8: skipped Deployment (apps/v1): not an Istio networking "
                          "resource",
                          "mixed.yaml:12: skipped EnvoyFilter (networking.istio.io/v1alpha3): "
                          "kind not supported yet"));
}

TEST(ResourceTest, MissingKindAndBadTypesAreErrors) {
  const LoadedConfig c = loadConfigStream(R"(apiVersion: networking.istio.io/v1
metadata: {name: a}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b}
spec:
  hosts: reviews
  http:
  - timeout: soon
---
- just
- a list
)",
                                          "bad.yaml");
  EXPECT_THAT(c.resources, IsEmpty());
  EXPECT_EQ(c.failed_objects, 3);
  EXPECT_THAT(strings(c.errors.errors()),
              ElementsAre("bad.yaml:1: kind: required field is missing",
                          "bad.yaml:8: spec.hosts: expected a list, got 'reviews'",
                          "bad.yaml:10: spec.http[0].timeout: invalid duration 'soon'; expected "
                          "e.g. '1.5s', '250ms', '2h45m'",
                          "bad.yaml:12: expected a mapping, got a list"));
}

TEST(ResourceTest, YamlSyntaxErrorNamesFileAndLine) {
  const LoadedConfig c = loadConfigStream(
      "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: [}\n", "syntax.yaml");
  EXPECT_THAT(c.resources, IsEmpty());
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_THAT(c.errors.toString(), HasSubstr("syntax.yaml:3"));
}

TEST(ResourceTest, UnreadableFileIsOneError) {
  const LoadedConfig c = loadConfigFile("/nonexistent/x.yaml");
  EXPECT_EQ(c.errors.toString(), "/nonexistent/x.yaml: cannot read file");
}

}  // namespace
}  // namespace mesh::config
