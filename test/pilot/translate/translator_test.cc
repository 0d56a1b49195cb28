#include "pilot/translate/translator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/pilot/translate/test_util.h"

namespace mesh::pilot::translate::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// web in a (HTTP and TCP, two endpoints), web in b, and api.example.com (DNS) declared in b.
std::string twoNamespaces() {
  return yamlStream({meshService("web", "a", R"(  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 5432, name: tcp-db, protocol: TCP}
  endpoints:
  - {address: 10.1.0.1, labels: {app: web}}
  - {address: 10.1.0.2, labels: {app: web}, ports: {http: 9090}}
)"),
                     meshService("web", "b", R"(  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.2.0.1}]
)"),
                     serviceEntry("external", "b", R"(  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 443, name: http-plain, protocol: HTTP}]
)")});
}

TEST(TranslatorTest, ClusterNamesDomainsAndDnsClusters) {
  Mesh mesh({twoNamespaces()});
  Translation t = mesh.translate(proxyIn("a"));
  EXPECT_THAT(t.warnings, IsEmpty());
  const v1::Bootstrap& b = t.bootstrap;
  EXPECT_THAT(clusterNames(b),
              ElementsAre("outbound|443||api.example.com", "outbound|80||web.a.svc.cluster.local",
                          "outbound|5432||web.a.svc.cluster.local",
                          "outbound|80||web.b.svc.cluster.local"));
  const v1::Cluster* ext = findCluster(b, "outbound|443||api.example.com");
  ASSERT_NE(ext, nullptr);
  EXPECT_EQ(ext->type(), v1::Cluster::STRICT_DNS);
  ASSERT_EQ(ext->endpoints_size(), 1);
  EXPECT_EQ(ext->endpoints(0).address(), "api.example.com");
  EXPECT_EQ(ext->endpoints(0).port(), 443u);
  EXPECT_EQ(ext->service().name(), "api.example.com");
  // Endpoint ports: the endpoint's own port for the port name, else the targetPort.
  const v1::Cluster* web = findCluster(b, "outbound|80||web.a.svc.cluster.local");
  ASSERT_NE(web, nullptr);
  ASSERT_EQ(web->endpoints_size(), 2);
  EXPECT_EQ(web->endpoints(0).port(), 8080u);
  EXPECT_EQ(web->endpoints(1).port(), 9090u);

  // Route config "80": the own namespace's service answers to its short name too.
  const v1::VirtualHost* own = findVirtualHost(b, "80", "web.a.svc.cluster.local:80");
  ASSERT_NE(own, nullptr);
  EXPECT_THAT(own->domains(), ElementsAre("web.a.svc.cluster.local", "web.a.svc", "web.a", "web"));
  const v1::VirtualHost* other = findVirtualHost(b, "80", "web.b.svc.cluster.local:80");
  ASSERT_NE(other, nullptr);
  EXPECT_THAT(other->domains(), ElementsAre("web.b.svc.cluster.local", "web.b.svc", "web.b"));
  const v1::VirtualHost* api = findVirtualHost(b, "443", "api.example.com:443");
  ASSERT_NE(api, nullptr);
  EXPECT_THAT(api->domains(), ElementsAre("api.example.com"));

  // HTTP ports get HTTP listeners; the TCP port a tcpProxy listener and no route config.
  std::vector<std::string> listeners;
  for (const auto& l : b.listeners()) listeners.push_back(l.name());
  EXPECT_THAT(listeners, ElementsAre("0.0.0.0_80", "0.0.0.0_443", "0.0.0.0_5432"));
  EXPECT_EQ(findRouteConfig(b, "5432"), nullptr);
  const v1::Listener* db = findListener(b, "0.0.0.0_5432");
  ASSERT_NE(db, nullptr);
  EXPECT_FALSE(db->has_http());
  EXPECT_EQ(db->tcp_proxy().cluster(), "outbound|5432||web.a.svc.cluster.local");
  EXPECT_EQ(db->address(), "0.0.0.0:5432");
}

TEST(TranslatorTest, ShortNameGoesToTheProxysOwnNamespace) {
  Mesh mesh({twoNamespaces()});
  Translation t = mesh.translate(proxyIn("b"));
  const v1::VirtualHost* own = findVirtualHost(t.bootstrap, "80", "web.b.svc.cluster.local:80");
  ASSERT_NE(own, nullptr);
  EXPECT_THAT(own->domains(), ElementsAre("web.b.svc.cluster.local", "web.b.svc", "web.b", "web"));
}

TEST(TranslatorTest, InboundPortOfUnknownProtocolDetectsHttpOrTcp) {
  // A Kubernetes Service port named without a protocol prefix: Istio sniffs it.
  Mesh mesh({R"(apiVersion: v1
kind: Service
metadata: {name: svc, namespace: a}
spec:
  ports: [{port: 7000, name: custom, targetPort: 7000}, {port: 3306, name: db, targetPort: 3306}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: svc, namespace: a}
subsets:
- addresses: [{ip: 10.1.0.9}]
  ports: [{port: 7000, name: custom}, {port: 3306, name: db}]
)"});
  Translation t = mesh.translate(proxyIn("a", {{"app", "svc"}}, "10.1.0.9"));
  const v1::Listener* in = findListener(t.bootstrap, "virtualInbound_7000");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->http().route_config_name(), "inbound|7000||");
  EXPECT_EQ(in->tcp_proxy().cluster(), "inbound|7000||");
  EXPECT_EQ(in->server_first_ports_size(), 0);
  // MySQL's port, undeclared: still sniffed, but listed as server-first (no detection wait).
  const v1::Listener* db = findListener(t.bootstrap, "virtualInbound_3306");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->tcp_proxy().cluster(), "inbound|3306||");
  EXPECT_THAT(db->server_first_ports(), ElementsAre(3306u));
}

// An ingress gateway (a "router" proxy) gets a listener per Gateway server port, with the
// routes of the VirtualServices bound to the Gateway; sidecars do not get those routes.
TEST(TranslatorTest, GatewayServesTheVirtualServicesBoundToIt) {
  Mesh mesh({meshService("productpage", "default",
                         "  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
                         "  endpoints: [{address: 10.0.0.1}]\n"),
             sample("bookinfo-gateway.yaml")});
  ProxyIdentity gw = proxyIn("default", {{"istio", "ingressgateway"}});
  gw.id = "router~10.0.9.9~istio-ingressgateway-0.default~default.svc.cluster.local";
  Translation t = mesh.translate(gw);
  const v1::Listener* l = findListener(t.bootstrap, "0.0.0.0_8080");
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->http().route_config_name(), "http.8080");
  EXPECT_EQ(findListener(t.bootstrap, "0.0.0.0_9080"), nullptr);  // no sidecar listeners
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "http.8080", "*:8080");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 5);  // one per match
  EXPECT_EQ(vh->routes(0).match().path(), "/productpage");
  EXPECT_EQ(vh->routes(0).route().cluster(),
            "outbound|9080||productpage.default.svc.cluster.local");
  EXPECT_NE(findCluster(t.bootstrap, "outbound|9080||productpage.default.svc.cluster.local"),
            nullptr);

  // A gateway whose labels the selector does not match gets nothing; a sidecar keeps its own
  // default route for productpage (the "*" VirtualService is bound to the gateway only).
  ProxyIdentity other = gw;
  other.labels = {{"istio", "egressgateway"}};
  EXPECT_EQ(mesh.translate(other).bootstrap.listeners_size(), 0);
  Translation sidecar = mesh.translate(proxyIn("default"));
  const v1::VirtualHost* svh =
      findVirtualHost(sidecar.bootstrap, "9080", "productpage.default.svc.cluster.local:9080");
  ASSERT_NE(svh, nullptr);
  ASSERT_EQ(svh->routes_size(), 1);
  EXPECT_EQ(svh->routes(0).match().prefix(), "/");
}

// Workloads sharing one loopback address: each proxy owns only the WorkloadEntry named after
// its workload, its app listens on a private port, and outbound listeners bind where it asks.
TEST(TranslatorTest, SharedAddressWorkloadsAreToldApartByName) {
  Mesh mesh({meshService("reviews", "default",
                         "  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
                         "  workloadSelector: {labels: {app: reviews}}\n"),
             workloadEntry("reviews-v1", "default",
                           "{address: 127.0.0.1, ports: {http: 41001}, labels: {app: reviews, "
                           "version: v1}}"),
             workloadEntry("reviews-v2", "default",
                           "{address: 127.0.0.1, ports: {http: 41002}, labels: {app: reviews, "
                           "version: v2}}")});
  ProxyIdentity p = proxyIn("default", {{"app", "reviews"}, {"version", "v2"}}, "127.0.0.1");
  p.workload_name = "reviews";
  p.id = "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local";  // pod reviews-v2
  EXPECT_EQ(podName(p), "reviews-v2");
  p.app_ports = {{41002, 52002}};
  p.outbound_bind = "127.0.0.1:0";
  Translation t = mesh.translate(p);
  EXPECT_EQ(findListener(t.bootstrap, "virtualInbound_41001"), nullptr);
  const v1::Listener* in = findListener(t.bootstrap, "virtualInbound_41002");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->address(), "127.0.0.1:41002");
  const v1::Cluster* c = findCluster(t.bootstrap, "inbound|41002||");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->endpoints_size(), 1);
  EXPECT_EQ(c->endpoints(0).address(), "127.0.0.1");
  EXPECT_EQ(c->endpoints(0).port(), 52002u);
  const v1::Listener* out = findListener(t.bootstrap, "0.0.0.0_9080");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->address(), "127.0.0.1:0");

  // Without a name match every endpoint at the IP is the proxy's (distinct-IP meshes).
  ProxyIdentity other = proxyIn("default", {}, "127.0.0.1");
  other.outbound_bind = "127.0.0.1";
  Translation t2 = mesh.translate(other);
  EXPECT_NE(findListener(t2.bootstrap, "virtualInbound_41001"), nullptr);
  EXPECT_NE(findListener(t2.bootstrap, "virtualInbound_41002"), nullptr);
  EXPECT_EQ(findListener(t2.bootstrap, "0.0.0.0_9080")->address(), "127.0.0.1:9080");
}

TEST(TranslatorTest, InboundListenerAndClusterForTheProxysOwnService) {
  TranslateOptions opts;
  opts.outbound_address = [](uint32_t port) { return "127.0.0.1:" + std::to_string(20000 + port); };
  opts.inbound_address = [](const ProxyIdentity&, uint32_t port) {
    return "127.0.0.2:" + std::to_string(port);
  };
  opts.app_address = "127.0.0.3";
  Mesh mesh({twoNamespaces()}, {}, opts);
  ProxyIdentity p = proxyIn("a", {{"app", "web"}}, "10.1.0.2");
  Translation t = mesh.translate(p);
  const v1::Bootstrap& b = t.bootstrap;
  const v1::Listener* out = findListener(b, "0.0.0.0_80");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->address(), "127.0.0.1:20080");
  // This endpoint serves port 80 on 9090; the TCP port has no inbound HTTP listener.
  const v1::Listener* in = findListener(b, "virtualInbound_9090");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->address(), "127.0.0.2:9090");
  EXPECT_EQ(in->direction(), v1::INBOUND);
  EXPECT_EQ(in->http().route_config_name(), "inbound|9090||");
  const v1::Cluster* c = findCluster(b, "inbound|9090||");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->endpoints_size(), 1);
  EXPECT_EQ(c->endpoints(0).address(), "127.0.0.3");
  EXPECT_EQ(c->endpoints(0).port(), 9090u);
  EXPECT_EQ(c->service().host(), "web.a.svc.cluster.local");
  const v1::VirtualHost* vh = findVirtualHost(b, "inbound|9090||", "inbound|http|9090");
  ASSERT_NE(vh, nullptr);
  EXPECT_THAT(vh->domains(), ElementsAre("*"));
  EXPECT_EQ(vh->routes(0).route().cluster(), "inbound|9090||");
  EXPECT_FALSE(vh->routes(0).route().has_retry_policy());
  // The TCP port is relayed as bytes to the app.
  const v1::Listener* tcp_in = findListener(b, "virtualInbound_5432");
  ASSERT_NE(tcp_in, nullptr);
  EXPECT_EQ(tcp_in->tcp_proxy().cluster(), "inbound|5432||");
  EXPECT_EQ(findRouteConfig(b, "inbound|5432||"), nullptr);
}

TEST(TranslatorTest, ProxiesOfOneNamespaceShareTheOutboundView) {
  Mesh mesh({twoNamespaces()});
  Translation a1 = mesh.translate(proxyIn("a", {{"app", "x"}}, "10.1.0.1"));
  Translation a2 = mesh.translate(proxyIn("a", {{"app", "y"}}, "10.1.0.9"));
  Translation b1 = mesh.translate(proxyIn("b"));
  EXPECT_EQ(mesh.translator().viewsBuilt(), 2u);
  EXPECT_EQ(mesh.translator().viewsReused(), 1u);
  // Shared outbound, own inbound and node.
  EXPECT_EQ(findCluster(a1.bootstrap, "outbound|80||web.a.svc.cluster.local")->DebugString(),
            findCluster(a2.bootstrap, "outbound|80||web.a.svc.cluster.local")->DebugString());
  EXPECT_NE(findCluster(a1.bootstrap, "inbound|8080||"), nullptr);
  EXPECT_EQ(findCluster(a2.bootstrap, "inbound|8080||"), nullptr);
  EXPECT_EQ(a2.bootstrap.node().labels().at("app"), "y");
}

TEST(TranslatorTest, SplitTranslationParsesToTheWholeAndSharesTheOutboundBytes) {
  Mesh mesh({twoNamespaces()});
  ProxyIdentity a1 = proxyIn("a", {{"app", "x"}}, "10.1.0.1");
  ProxyIdentity a2 = proxyIn("a", {{"app", "y"}}, "10.1.0.9");
  SplitTranslation s1 = mesh.translator().translateSplit(a1);
  SplitTranslation s2 = mesh.translator().translateSplit(a2);
  // One serialization of the outbound view for both proxies of namespace a.
  ASSERT_NE(s1.shared, nullptr);
  EXPECT_EQ(s1.shared, s2.shared);
  for (const auto& [proxy, split] : {std::pair{a1, &s1}, std::pair{a2, &s2}}) {
    v1::Bootstrap joined;
    ASSERT_TRUE(joined.ParseFromString(*split->shared + split->own.SerializeAsString()));
    // Outbound clusters are eds: their endpoints are the assignments'.
    std::map<std::string, v1::ClusterLoadAssignment> assignments;
    for (auto& a : AssignmentSet::parse(*split->assignments->all())) {
      assignments[a.cluster_name()] = a;
    }
    for (v1::Cluster& c : *joined.mutable_clusters()) {
      if (!c.name().starts_with("outbound|")) continue;
      EXPECT_TRUE(c.eds()) << c.name();
      EXPECT_EQ(c.endpoints_size(), 0) << c.name();
      c.set_eds(false);
      ASSERT_TRUE(assignments.contains(c.name())) << c.name();
      *c.mutable_endpoints() = assignments[c.name()].endpoints();
    }
    EXPECT_EQ(split->assignments->size(), assignments.size());
    EXPECT_TRUE(sameMessage(mesh.translate(proxy).bootstrap, joined));
  }
  EXPECT_NE(findCluster(s1.own, "inbound|8080||"), nullptr);
  EXPECT_EQ(findCluster(s2.own, "inbound|8080||"), nullptr);
  EXPECT_FALSE(findCluster(s1.own, "inbound|8080||")->eds());  // inbound stays inline
  EXPECT_EQ(s1.assignments, s2.assignments);
}

TEST(TranslatorTest, LabelDependentConfigKeysTheCacheByLabels) {
  Mesh mesh({twoNamespaces(), destinationRule("web", "a", R"(  host: web
  workloadSelector: {matchLabels: {canary: "true"}}
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
)")});
  Translation canary = mesh.translate(proxyIn("a", {{"canary", "true"}}));
  Translation plain = mesh.translate(proxyIn("a"));
  EXPECT_EQ(mesh.translator().viewsBuilt(), 2u);
  EXPECT_EQ(findCluster(canary.bootstrap, "outbound|80||web.a.svc.cluster.local")->lb_policy(),
            v1::Cluster::RANDOM);
  EXPECT_EQ(findCluster(plain.bootstrap, "outbound|80||web.a.svc.cluster.local")->lb_policy(),
            v1::Cluster::LEAST_REQUEST);
}

TEST(TranslatorTest, SidecarAndExportToShapeTheProxysResources) {
  Mesh mesh({twoNamespaces(), sidecar("default", "a", "  egress: [{hosts: [\"./*\"]}]\n"),
             virtualService("web", "b", R"(  hosts: [web.b.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: web}}], timeout: 1s}]
)")});
  Translation a = mesh.translate(proxyIn("a"));
  EXPECT_THAT(clusterNames(a.bootstrap), ElementsAre("outbound|80||web.a.svc.cluster.local",
                                                     "outbound|5432||web.a.svc.cluster.local"));
  // The VirtualService is private to b: a proxy in c sees the default route, b the timeout.
  Translation c = mesh.translate(proxyIn("c"));
  const v1::VirtualHost* from_c = findVirtualHost(c.bootstrap, "80", "web.b.svc.cluster.local:80");
  ASSERT_NE(from_c, nullptr);
  EXPECT_FALSE(from_c->routes(0).route().has_timeout());
  Translation b = mesh.translate(proxyIn("b"));
  const v1::VirtualHost* from_b = findVirtualHost(b.bootstrap, "80", "web.b.svc.cluster.local:80");
  ASSERT_NE(from_b, nullptr);
  EXPECT_EQ(from_b->routes(0).route().timeout().seconds(), 1);
  EXPECT_EQ(from_b->routes(0).route().cluster(), "outbound|80||web.b.svc.cluster.local");
}

TEST(TranslatorTest, DestinationPortIsInferredFromASinglePortService) {
  Mesh mesh({twoNamespaces(), virtualService("api", "b", R"(  hosts: [api.example.com]
  http:
  - match: [{uri: {prefix: /internal}}]
    route: [{destination: {host: web.b.svc.cluster.local}}]
  - route: [{destination: {host: api.example.com}}]
)")});
  Translation t = mesh.translate(proxyIn("b"));
  const v1::VirtualHost* vh = findVirtualHost(t.bootstrap, "443", "api.example.com:443");
  ASSERT_NE(vh, nullptr);
  ASSERT_EQ(vh->routes_size(), 2);
  EXPECT_EQ(vh->routes(0).route().cluster(), "outbound|80||web.b.svc.cluster.local");
  EXPECT_EQ(vh->routes(1).route().cluster(), "outbound|443||api.example.com");
}

TEST(TranslatorTest, StaticEndpointsThatAreNotAddressesAreSkipped) {
  Mesh mesh({serviceEntry("vm", "", R"(  hosts: [vm.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
)"),
             workloadEntry("vm-1", "", "{address: 10.5.0.1, labels: {app: vm}}"),
             workloadEntry("vm-2", "", "{address: vm-2.example.com, labels: {app: vm}}")});
  Translation t = mesh.translate(proxyIn("default"));
  const v1::Cluster* c = findCluster(t.bootstrap, "outbound|80||vm.example.com");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->endpoints_size(), 1);
  EXPECT_EQ(c->endpoints(0).workload().name(), "vm-1");
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_THAT(t.warnings[0], HasSubstr("vm-2.example.com"));
}

TEST(TranslatorTest, TcpRoutesSplitConnectionsAndSharedTcpPortsAreReported) {
  auto redis_port = [](const std::string& address) {
    return "  ports: [{number: 6379, name: tcp, protocol: TCP}]\n  endpoints: [{address: " +
           address + "}]\n";
  };
  Mesh mesh({twoNamespaces(),
             destinationRule("web", "a",
                             "  host: web\n  subsets:\n  - {name: primary, labels: {app: web}}\n"),
             virtualService("web-db", "a", R"(  hosts: [web]
  tcp:
  - match: [{port: 6000}]
    route: [{destination: {host: web, port: {number: 5432}}}]
  - route:
    - {destination: {host: web, subset: primary, port: {number: 5432}}, weight: 80}
    - {destination: {host: web, port: {number: 5432}}, weight: 20}
)"),
             meshService("redis", "a", redis_port("10.3.0.1")),
             meshService("cache", "a", redis_port("10.3.0.2"))});
  Translation t = mesh.translate(proxyIn("a"));
  const v1::Listener* db = findListener(t.bootstrap, "0.0.0.0_5432");
  ASSERT_NE(db, nullptr);
  ASSERT_EQ(db->tcp_proxy().weighted_clusters().clusters_size(), 2);
  EXPECT_EQ(db->tcp_proxy().weighted_clusters().clusters(0).name(),
            "outbound|5432|primary|web.a.svc.cluster.local");
  EXPECT_EQ(db->tcp_proxy().weighted_clusters().clusters(0).weight(), 80u);
  EXPECT_EQ(db->tcp_proxy().weighted_clusters().clusters(1).name(),
            "outbound|5432||web.a.svc.cluster.local");
  EXPECT_EQ(findListener(t.bootstrap, "0.0.0.0_6379"), nullptr);
  EXPECT_NE(findCluster(t.bootstrap, "outbound|6379||redis.a.svc.cluster.local"), nullptr);
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_THAT(t.warnings[0], HasSubstr("TCP port 6379 is shared by cache.a.svc.cluster.local, "
                                       "redis.a.svc.cluster.local"));
}

TEST(TranslatorTest, NamesFollowIstio) {
  EXPECT_EQ(outboundClusterName(9080, "", "reviews.default.svc.cluster.local"),
            "outbound|9080||reviews.default.svc.cluster.local");
  EXPECT_EQ(outboundClusterName(9080, "v2", "reviews.default.svc.cluster.local"),
            "outbound|9080|v2|reviews.default.svc.cluster.local");
  EXPECT_EQ(inboundClusterName(9080), "inbound|9080||");
}

}  // namespace
}  // namespace mesh::pilot::translate::testing
