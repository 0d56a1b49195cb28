#include "config/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mesh::config {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

struct Result {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// Loads the stream as "x.yaml" (which must load cleanly) and validates it.
Result check(const std::string& yaml) {
  const LoadedConfig c = loadConfigStream(yaml, "x.yaml");
  EXPECT_TRUE(c.errors.empty()) << c.errors.toString();
  Result out;
  for (const ValidationReport& r : validateResources(c.resources)) {
    for (const ValidationError& e : r.errors.errors()) out.errors.push_back(e.toString());
    for (const ValidationError& w : r.warnings) out.warnings.push_back(w.toString());
  }
  return out;
}

// Lines 1-7; the http list starts on line 8.
const std::string kVs = R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
)";

// Lines 1-5; the spec's fields start on line 6.
std::string head(const std::string& kind) {
  return "apiVersion: networking.istio.io/v1\nkind: " + kind + "\nmetadata:\n  name: r\nspec:\n";
}

TEST(ValidationTest, ValidVirtualServiceHasNoErrors) {
  const Result r = check(kVs + R"(  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews, subset: v3}, weight: 25}
)");
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_THAT(r.warnings, IsEmpty());
}

TEST(ValidationTest, WeightsMustBeInRangeAndAddUpTo100) {
  const Result r = check(kVs + R"(  - route:
    - destination: {host: reviews, subset: v1}
      weight: 150
    - destination: {host: reviews, subset: v2}
      weight: -60
)");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:10: spec.http[0].route[0].weight: must be between 0 and 100",
                          "x.yaml:12: spec.http[0].route[1].weight: must be between 0 and 100",
                          "x.yaml:8: spec.http[0].route: weights of the destinations must add up "
                          "to 100, got 90"));
}

TEST(ValidationTest, SeveralDestinationsWithoutWeightsAreAnError) {
  const Result r = check(kVs + R"(  - route:
    - destination: {host: reviews, subset: v1}
    - destination: {host: reviews, subset: v2}
)");
  EXPECT_THAT(r.errors, ElementsAre("x.yaml:8: spec.http[0].route: weights of the destinations "
                                    "must add up to 100, got 0"));
}

TEST(ValidationTest, DestinationNeedsAHost) {
  const Result r = check(kVs + R"(  - route:
    - destination:
        subset: v1
    - weight: 100
  - route:
    - destination: {host: "*"}
  - route:
    - destination: {host: "bad host", subset: V1, port: {number: 70000}}
)");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:9: spec.http[0].route[0].destination.host: required",
                          "x.yaml:11: spec.http[0].route[1].destination: required",
                          "x.yaml:13: spec.http[1].route[0].destination.host: '*' is not a "
                          "valid destination host",
                          "x.yaml:15: spec.http[2].route[0].destination.host: invalid host "
                          "'bad host'",
                          "x.yaml:15: spec.http[2].route[0].destination.subset: invalid subset "
                          "name 'V1'",
                          "x.yaml:15: spec.http[2].route[0].destination.port.number: must be "
                          "between 1 and 65535"));
}

TEST(ValidationTest, RegexMustCompileWithRe2) {
  const Result r = check(kVs + R"(  - match:
    - uri:
        regex: "/api/(v1"
      headers:
        x-version:
          regex: "[0-9"
    route: [{destination: {host: reviews}}]
)");
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0],
            "x.yaml:10: spec.http[0].match[0].uri.regex: invalid regex '/api/(v1': missing ): "
            "/api/(v1");
  EXPECT_EQ(r.errors[1],
            "x.yaml:13: spec.http[0].match[0].headers[x-version].regex: invalid regex '[0-9': "
            "missing ]: [0-9");
}

TEST(ValidationTest, StringMatchNeedsAKind) {
  const Result r = check(kVs + R"(  - match:
    - uri: {}
      method: {prefix: ""}
      withoutHeaders:
        x-debug: {}
    route: [{destination: {host: reviews}}]
)");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:9: spec.http[0].match[0].uri: one of exact, prefix or regex is "
                          "required",
                          "x.yaml:10: spec.http[0].match[0].method.prefix: must not be empty"));
}

TEST(ValidationTest, FaultPercentagesAndAbortStatus) {
  const Result r = check(kVs + R"(  - fault:
      delay:
        fixedDelay: 0.5ms
        percentage: {value: 120}
      abort:
        httpStatus: 600
        percentage: {value: -1}
    route: [{destination: {host: reviews}}]
  - fault:
      abort:
        grpcStatus: NOPE
    route: [{destination: {host: reviews}}]
  - fault: {delay: {percentage: {value: 5}}}
    route: [{destination: {host: reviews}}]
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre("x.yaml:10: spec.http[0].fault.delay.fixedDelay: must be at least 1ms",
                  "x.yaml:11: spec.http[0].fault.delay.percentage.value: must be between 0 and 100",
                  "x.yaml:13: spec.http[0].fault.abort.httpStatus: must be between 200 and 599",
                  "x.yaml:14: spec.http[0].fault.abort.percentage.value: must be between 0 and 100",
                  "x.yaml:18: spec.http[1].fault.abort.grpcStatus: unknown gRPC status 'NOPE'",
                  "x.yaml:20: spec.http[2].fault.delay.fixedDelay: required"));
}

TEST(ValidationTest, RetriesAndDurations) {
  const Result r = check(kVs + R"(  - route: [{destination: {host: reviews}}]
    timeout: 0.0001s
    retries:
      attempts: -1
      perTryTimeout: 1500us
      retryOn: 5xx,gateway-eror,503,99
  - route: [{destination: {host: reviews}}]
    timeout: 0s
    retries: {attempts: 0}
)");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:9: spec.http[0].timeout: must be at least 1ms",
                          "x.yaml:11: spec.http[0].retries.attempts: must not be negative",
                          "x.yaml:12: spec.http[0].retries.perTryTimeout: only millisecond "
                          "precision is supported",
                          "x.yaml:13: spec.http[0].retries.retryOn: unknown retry condition "
                          "'gateway-eror'",
                          "x.yaml:13: spec.http[0].retries.retryOn: unknown retry condition "
                          "'99'"));
}

TEST(ValidationTest, GrpcRetryConditionsAreAcceptedAndTyposRefused) {
  const Result ok = check(kVs + R"(  - route: [{destination: {host: reviews}}]
    retries:
      attempts: 2
      retryOn: cancelled,deadline-exceeded,internal,resource-exhausted,unavailable
)");
  EXPECT_THAT(ok.errors, ::testing::IsEmpty());
  const Result bad = check(kVs + R"(  - route: [{destination: {host: reviews}}]
    retries:
      attempts: 2
      retryOn: unavailble,deadline_exceeded
)");
  EXPECT_THAT(bad.errors,
              ElementsAre("x.yaml:11: spec.http[0].retries.retryOn: unknown retry condition "
                          "'unavailble'",
                          "x.yaml:11: spec.http[0].retries.retryOn: unknown retry condition "
                          "'deadline_exceeded'"));
}

TEST(ValidationTest, RedirectRouteAndDirectResponseAreExclusive) {
  const Result r = check(kVs + R"(  - route: [{destination: {host: reviews}}]
    redirect: {uri: /v2}
  - redirect: {uri: /v2, redirectCode: 200}
    rewrite: {uri: /v3}
  - directResponse: {status: 700}
  - match: [{uri: {prefix: /}}]
  - redirect: {}
    directResponse: {status: 200}
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          "x.yaml:8: spec.http[0]: route, redirect, directResponse and delegate are mutually "
          "exclusive",
          "x.yaml:10: spec.http[1].redirect.redirectCode: must be one of 301, 302, 303, 307 or 308",
          "x.yaml:11: spec.http[1].rewrite: rewrite and redirect are mutually exclusive",
          "x.yaml:12: spec.http[2].directResponse.status: must be between 200 and 599",
          "x.yaml:13: spec.http[3]: one of route, redirect, directResponse or delegate is "
          "required",
          "x.yaml:14: spec.http[4]: route, redirect, directResponse and delegate are mutually "
          "exclusive",
          "x.yaml:14: spec.http[4].redirect: at least one of uri, authority, scheme, port or "
          "derivePort is required"));
}

TEST(ValidationTest, MirrorCorsAndHeaders) {
  const Result r = check(kVs + R"(  - route: [{destination: {host: reviews}}]
    mirror: {host: ""}
    mirrorPercentage: {value: 101}
    corsPolicy:
      allowOrigins: [{regex: "("}]
      allowMethods: [FETCH]
      maxAge: 1.5s
    headers:
      request:
        set: {"bad header": x}
        remove: ["x:y"]
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre("x.yaml:9: spec.http[0].mirror.host: required",
                  "x.yaml:10: spec.http[0].mirrorPercentage.value: must be between 0 and 100",
                  "x.yaml:12: spec.http[0].corsPolicy.allowOrigins[0].regex: invalid regex '(': "
                  "missing ): (",
                  "x.yaml:13: spec.http[0].corsPolicy.allowMethods[0]: unknown method 'FETCH'",
                  "x.yaml:14: spec.http[0].corsPolicy.maxAge: only whole seconds are supported",
                  "x.yaml:17: spec.http[0].headers.request.set[bad header]: invalid header name "
                  "'bad header'",
                  "x.yaml:18: spec.http[0].headers.request.remove[0]: invalid header name "
                  "'x:y'"));
}

TEST(ValidationTest, VirtualServiceHostsAndGateways) {
  const Result r = check(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: Bad_Name}
spec:
  hosts: ["*", "10.0.0.1", "a..b", reviews, reviews]
  gateways: [mesh, "bad/ns/x"]
  exportTo: [".", "*"]
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre("x.yaml:3: metadata.name: invalid name 'Bad_Name': lower case letters, digits, "
                  "'-' and '.' only, starting and ending with a letter or digit",
                  "x.yaml:6: spec.gateways[1]: invalid gateway 'bad/ns/x'; expected 'name', "
                  "'namespace/name' or 'mesh'",
                  "x.yaml:5: spec.hosts[0]: '*' is not allowed for a VirtualService bound to "
                  "the mesh gateway",
                  "x.yaml:5: spec.hosts[1]: IP addresses are allowed only for gateways, not for "
                  "'mesh'",
                  "x.yaml:5: spec.hosts[2]: invalid host 'a..b'",
                  "x.yaml:5: spec.hosts[4]: duplicate host 'reviews'",
                  "x.yaml:4: spec: at least one of http, tcp or tls routes is required",
                  "x.yaml:7: spec.exportTo: '*' and '~' must be the only entry"));
}

TEST(ValidationTest, VirtualServiceWithoutHostsIsADelegate) {
  const Result r = check(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-delegate}
spec:
  gateways: [ingress]
  http:
  - route: [{destination: {host: reviews}}]
)");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:5: spec.gateways: a delegate VirtualService has no gateways"));
  EXPECT_THAT(r.warnings, ElementsAre("x.yaml:4: spec.hosts: no hosts: usable only as a "
                                      "delegate of another VirtualService"));
}

TEST(ValidationTest, TcpAndTlsRoutes) {
  const Result r = check(R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: ["*.example.com"]
  tcp:
  - match: [{destinationSubnets: [10.0.0.0/40], port: 0}]
    route: []
  tls:
  - match: [{sniHosts: [api.other.com]}]
    route:
    - {destination: {host: api}, weight: 30}
    - {destination: {host: api2}, weight: 30}
  - route: [{destination: {host: api}}]
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          "x.yaml:7: spec.tcp[0].match[0].destinationSubnets[0]: invalid IP address or CIDR "
          "'10.0.0.0/40'",
          "x.yaml:8: spec.tcp[0].route: at least one destination is required",
          "x.yaml:10: spec.tls[0].match[0].sniHosts[0]: SNI host 'api.other.com' is not within "
          "the VirtualService hosts",
          "x.yaml:11: spec.tls[0].route: weights of the destinations must add up to 100, got 60",
          "x.yaml:14: spec.tls[1].match: a TLS route needs at least one match"));
}

TEST(ValidationTest, DestinationRuleHostAndSubsets) {
  const Result r = check(head("DestinationRule") + R"(  subsets:
  - name: v1
    labels: {version: v1}
  - name: v1
    labels: {version: v2}
  - labels: {"bad key!": v3}
  - name: v4
)");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:5: spec.host: required",
                          "x.yaml:9: spec.subsets[1].name: duplicate subset name 'v1' (also "
                          "subsets[0])",
                          "x.yaml:11: spec.subsets[2].name: required",
                          "x.yaml:11: spec.subsets[2].labels[bad key!]: invalid label key 'bad "
                          "key!'"));
  EXPECT_THAT(r.warnings, ElementsAre("x.yaml:12: spec.subsets[3].labels: no labels: the subset "
                                      "selects every endpoint of the host"));
}

TEST(ValidationTest, TrafficPolicy) {
  const Result r = check(head("DestinationRule") + R"(  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        maglev: {tableSize: 1000}
    connectionPool:
      tcp: {maxConnections: -1, connectTimeout: 0s}
      http: {http1MaxPendingRequests: -5}
    outlierDetection:
      maxEjectionPercent: 101
      interval: 0s
    tls: {mode: MUTUAL}
    portLevelSettings:
    - port: {number: 80}
      connectionPool: {}
    - port: {number: 80}
    - loadBalancer: {simple: LEAST_CONN}
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          "x.yaml:9: spec.trafficPolicy.loadBalancer.consistentHash: one of httpHeaderName, "
          "httpCookie, useSourceIp or httpQueryParameterName is required",
          "x.yaml:10: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: must be a "
          "prime number",
          "x.yaml:12: spec.trafficPolicy.connectionPool.tcp.maxConnections: must not be negative",
          "x.yaml:12: spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be at least 1ms",
          "x.yaml:13: spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: must not be "
          "negative",
          "x.yaml:16: spec.trafficPolicy.outlierDetection.interval: must be at least 1ms",
          "x.yaml:15: spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be between 0 "
          "and 100",
          "x.yaml:17: spec.trafficPolicy.tls.clientCertificate: required for MUTUAL without "
          "credentialName",
          "x.yaml:17: spec.trafficPolicy.tls.privateKey: required for MUTUAL without "
          "credentialName",
          "x.yaml:20: spec.trafficPolicy.portLevelSettings[0].connectionPool: at least one of tcp "
          "or http is required",
          "x.yaml:21: spec.trafficPolicy.portLevelSettings[1].port.number: port 80 already has "
          "settings in portLevelSettings[0]",
          "x.yaml:22: spec.trafficPolicy.portLevelSettings[2].port: required"));
  EXPECT_THAT(r.warnings,
              ElementsAre("x.yaml:22: spec.trafficPolicy.portLevelSettings[2].loadBalancer.simple: "
                          "LEAST_CONN is deprecated; use LEAST_REQUEST"));
}

TEST(ValidationTest, GatewayServers) {
  const Result r = check(head("Gateway") + R"(  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, protocol: HTTPS, name: https}
    hosts: ["*.example.com"]
  - port: {number: 0, protocol: SMTP}
    hosts: []
  - hosts: ["bad ns/foo.com", "x/a..b"]
  - port: {number: 8443, protocol: TLS, name: tls}
    hosts: ["./*"]
    tls: {mode: MUTUAL, serverCertificate: /c.pem}
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre("x.yaml:8: spec.servers[0].tls: required for HTTPS servers",
                  "x.yaml:10: spec.servers[1].port.number: must be between 1 and 65535",
                  "x.yaml:10: spec.servers[1].port.protocol: unknown protocol 'SMTP'",
                  "x.yaml:10: spec.servers[1].port.name: required",
                  "x.yaml:11: spec.servers[1].hosts: at least one host is required",
                  "x.yaml:12: spec.servers[2].port: required",
                  "x.yaml:12: spec.servers[2].hosts[0]: invalid namespace 'bad ns' in host 'bad "
                  "ns/foo.com'",
                  "x.yaml:12: spec.servers[2].hosts[1]: invalid host 'a..b'",
                  "x.yaml:15: spec.servers[3].tls.privateKey: required for MUTUAL without "
                  "credentialName",
                  "x.yaml:15: spec.servers[3].tls.caCertificates: required for MUTUAL without "
                  "credentialName"));
  const Result empty = check(head("Gateway") + "  selector: {istio: ingressgateway}\n");
  EXPECT_THAT(empty.errors, ElementsAre("x.yaml:5: spec.servers: at least one server is required"));
}

TEST(ValidationTest, ServiceEntry) {
  const Result r = check(head("ServiceEntry") + R"(  hosts: ["*"]
  addresses: [300.0.0.1]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 80, name: http, protocol: SMTP}
  resolution: STATIC
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre("x.yaml:6: spec.hosts[0]: '*' is not allowed; use a domain or '*.suffix'",
                  "x.yaml:7: spec.addresses[0]: invalid IP address or CIDR '300.0.0.1'",
                  "x.yaml:10: spec.ports[1].number: port 80 is already used by ports[0]",
                  "x.yaml:10: spec.ports[1].protocol: unknown protocol 'SMTP'",
                  "x.yaml:10: spec.ports[1].name: port name 'http' is already used by ports[0]",
                  "x.yaml:5: spec.endpoints: required for resolution STATIC (or a "
                  "workloadSelector)"));
  const Result missing = check(head("ServiceEntry") + "  location: MESH_EXTERNAL\n");
  EXPECT_THAT(missing.errors, ElementsAre("x.yaml:5: spec.hosts: at least one host is required",
                                          "x.yaml:5: spec.ports: at least one port is required"));
}

TEST(ValidationTest, ServiceEntryEndpoints) {
  const Result r = check(head("ServiceEntry") + R"(  hosts: [db.example.com, "*.cache.com"]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: STATIC
  endpoints:
  - address: db.example.com
    ports: {mysql: 3306}
  - {}
  workloadSelector: {labels: {app: db}}
---
)" + head("ServiceEntry") +
                         R"(  hosts: ["*.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  endpoints: []
)");
  EXPECT_THAT(
      r.errors,
      ElementsAre("x.yaml:13: spec.workloadSelector: endpoints and workloadSelector are mutually "
                  "exclusive",
                  "x.yaml:13: spec.workloadSelector: applies only to MESH_INTERNAL services",
                  "x.yaml:10: spec.endpoints[0].address: must be an IP address or unix:// path "
                  "for resolution STATIC, got 'db.example.com'",
                  "x.yaml:11: spec.endpoints[0].ports[mysql]: no port named 'mysql' in spec.ports",
                  "x.yaml:12: spec.endpoints[1].address: required",
                  "x.yaml:22: spec.resolution: DNS resolution of wildcard hosts needs endpoints",
                  "x.yaml:18: metadata.name: duplicate ServiceEntry default/r (first defined at "
                  "x.yaml:1)"));
}

TEST(ValidationTest, WorkloadEntry) {
  const Result r = check(head("WorkloadEntry") + R"(  address: "not an address"
  ports: {http: 0}
---
)" + head("WorkloadEntry") +
                         R"(  labels: {app: vm}
)");
  EXPECT_THAT(r.errors,
              ElementsAre("x.yaml:6: spec.address: invalid address 'not an address'",
                          "x.yaml:7: spec.ports[http]: must be between 1 and 65535",
                          "x.yaml:13: spec.address: required unless network is set",
                          "x.yaml:12: metadata.name: duplicate WorkloadEntry default/r (first "
                          "defined at x.yaml:1)"));
}

TEST(ValidationTest, Sidecar) {
  const Result r = check(head("Sidecar") + R"(  workloadSelector: {labels: {}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 10.0.0.1:8080
  - port: {number: 9080}
  - bind: 0.0.0.0
  egress:
  - hosts: [reviews.default.svc.cluster.local]
  - port: {number: 80, protocol: HTTP}
    hosts: ["~/*", "bad ns/*"]
  - hosts: []
---
)" + head("Sidecar") + "  {}\n");
  EXPECT_THAT(
      r.errors,
      ElementsAre(
          "x.yaml:6: spec.workloadSelector.labels: at least one label is required",
          "x.yaml:9: spec.ingress[0].defaultEndpoint: must be 127.0.0.1:PORT, 0.0.0.0:PORT, "
          "[::1]:PORT, [::]:PORT or unix:///path",
          "x.yaml:10: spec.ingress[1].port.number: port 9080 is already used by ingress[0]",
          "x.yaml:11: spec.ingress[2].port: required",
          "x.yaml:13: spec.egress[0].hosts[0]: expected 'namespace/dnsName', got "
          "'reviews.default.svc.cluster.local'",
          "x.yaml:15: spec.egress[1].hosts[1]: invalid namespace 'bad ns' in host 'bad ns/*'",
          "x.yaml:16: spec.egress[2]: only one egress listener may omit the port (egress[0] "
          "already does)",
          "x.yaml:16: spec.egress[2].hosts: at least one host is required",
          "x.yaml:13: spec.egress[0]: the egress listener without a port must be the last",
          "x.yaml:22: spec: empty Sidecar: set egress, ingress or outboundTrafficPolicy",
          "x.yaml:21: metadata.name: duplicate Sidecar default/r (first defined at x.yaml:1)"));
}

TEST(ValidationTest, ErrorsOfSnakeCaseKeysUseTheirLine) {
  const Result r = check(kVs + R"(  - route: [{destination: {host: reviews}}]
    retries:
      per_try_timeout: 0s
)");
  EXPECT_THAT(r.errors,
              Contains("x.yaml:10: spec.http[0].retries.perTryTimeout: must be at least 1ms"));
}

}  // namespace
}  // namespace mesh::config
