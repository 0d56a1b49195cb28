// Translation for captured sidecars (node interception mode REDIRECT): Istio's listener layout
// (virtualOutbound 15001, virtualInbound 15006, per-port listeners bound to nothing),
// PassthroughCluster / BlackHoleCluster per outboundTrafficPolicy, InboundPassthroughCluster from
// 127.0.0.6, auto mTLS and ISTIO_MUTUAL to mesh workloads, inbound mTLS per PeerAuthentication.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>

#include "test/pilot/translate/test_util.h"
#include "test/testing/test_certificates.h"

namespace mesh::pilot::translate::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// reviews (HTTP, two mesh pods with a sidecar; the second one's address and service account as
// given), ratings (HTTP, one pod without the tlsMode label: not in the mesh), db (TCP with a
// VIP), cache (TCP without one).
std::string meshOf(const std::string& reviews_v2_address = "10.251.0.3",
                   const std::string& reviews_v2_account = "bookinfo-reviews") {
  const std::string http_9080 = "  ports: [{number: 9080, name: http, protocol: HTTP}]\n";
  auto reviews_pod = [](const std::string& address, const std::string& version,
                        const std::string& account) {
    return "  - {address: " + address + ", labels: {app: reviews, version: " + version +
           ", security.istio.io/tlsMode: istio}, serviceAccount: " + account + "}\n";
  };
  return yamlStream({
      meshService("reviews", "default",
                  "  addresses: [10.96.0.10]\n" + http_9080 + "  endpoints:\n" +
                      reviews_pod("10.251.0.2", "v1", "bookinfo-reviews") +
                      reviews_pod(reviews_v2_address, "v2", reviews_v2_account)),
      meshService("ratings", "default",
                  http_9080 + "  endpoints: [{address: 10.251.0.4, labels: {app: ratings}}]\n"),
      meshService("db", "default", R"(  addresses: [10.96.0.20/32]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.251.0.5, labels: {app: db, security.istio.io/tlsMode: istio}, serviceAccount: db}]
)"),
      meshService("cache", "default", R"(  ports: [{number: 6379, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.251.0.6}]
)"),
  });
}

// Certificate files the proxy's own validation (proxyAccepts) can read.
class CaptureTranslationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/capture-translate-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    cert_dir_ = tmpl;
    mesh::testing::TestCa ca("capture translate test");
    auto leaf = ca.issue({"spiffe://cluster.local/ns/default/sa/bookinfo-productpage"}, 2);
    write("cert-chain.pem", leaf.cert_pem);
    write("key.pem", leaf.key_pem);
    write("root-cert.pem", ca.certPem());
  }
  void TearDown() override {
    for (const char* f : {"cert-chain.pem", "key.pem", "root-cert.pem"}) {
      std::remove((cert_dir_ + "/" + f).c_str());
    }
    ::rmdir(cert_dir_.c_str());
  }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(cert_dir_ + "/" + name) << text;
  }
  // productpage's sidecar at 10.251.0.9, captured, with certificates unless told otherwise.
  ProxyIdentity captured(bool certs = true) {
    ProxyIdentity p = proxyIn("default", {{"app", "productpage"}}, "10.251.0.9");
    p.interception_mode = "REDIRECT";
    if (certs) p.cert_dir = cert_dir_;
    return p;
  }

  std::string cert_dir_;
};

TEST_F(CaptureTranslationTest, CapturedSidecarGetsIstiosListenerLayout) {
  Mesh mesh({meshOf()});
  Translation t = mesh.translate(captured());
  const v1::Bootstrap& b = t.bootstrap;
  const v1::Listener* vo = findListener(b, "virtualOutbound");
  ASSERT_NE(vo, nullptr);
  EXPECT_EQ(vo->address(), "0.0.0.0:15001");
  EXPECT_TRUE(vo->use_original_dst());
  EXPECT_EQ(vo->tcp_proxy().cluster(), "PassthroughCluster");
  // HTTP: one listener per port on the wildcard address, bound to nothing.
  const v1::Listener* http = findListener(b, "0.0.0.0_9080");
  ASSERT_NE(http, nullptr);
  EXPECT_EQ(http->address(), "0.0.0.0:9080");
  ASSERT_TRUE(http->has_bind_to_port());
  EXPECT_FALSE(http->bind_to_port().value());
  EXPECT_EQ(http->http().route_config_name(), "9080");
  // Hosts the mesh does not know on 9080 pass through (Istio's allow_any).
  const v1::VirtualHost* any = findVirtualHost(b, "9080", "allow_any");
  ASSERT_NE(any, nullptr);
  EXPECT_THAT(any->domains(), ElementsAre("*"));
  EXPECT_EQ(any->routes(0).route().cluster(), "PassthroughCluster");
  // TCP: VIP:port for a service with an address; the port's wildcard for one without.
  const v1::Listener* db = findListener(b, "10.96.0.20_5432");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->address(), "10.96.0.20:5432");
  EXPECT_FALSE(db->bind_to_port().value());
  EXPECT_EQ(db->tcp_proxy().cluster(), "outbound|5432||db.default.svc.cluster.local");
  const v1::Listener* cache = findListener(b, "0.0.0.0_6379");
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->tcp_proxy().cluster(), "outbound|6379||cache.default.svc.cluster.local");
  EXPECT_EQ(findCluster(b, "PassthroughCluster")->type(), v1::Cluster::ORIGINAL_DST);
  ASSERT_NE(findCluster(b, "BlackHoleCluster"), nullptr);
  EXPECT_EQ(findCluster(b, "BlackHoleCluster")->endpoints_size(), 0);
  // Inbound: every captured inbound connection arrives at 15006; unknown ports pass through
  // from 127.0.0.6.
  const v1::Listener* vi = findListener(b, "virtualInbound");
  ASSERT_NE(vi, nullptr);
  EXPECT_EQ(vi->address(), "0.0.0.0:15006");
  EXPECT_EQ(vi->direction(), v1::INBOUND);
  EXPECT_TRUE(vi->use_original_dst());
  EXPECT_EQ(vi->tcp_proxy().cluster(), "InboundPassthroughCluster");
  const v1::Cluster* in_pass = findCluster(b, "InboundPassthroughCluster");
  ASSERT_NE(in_pass, nullptr);
  EXPECT_EQ(in_pass->type(), v1::Cluster::ORIGINAL_DST);
  EXPECT_EQ(in_pass->upstream_bind_address(), "127.0.0.6");
}

// An IPv6 pod's captured traffic arrives on "::": the virtual and per-port listeners use the
// IPv6 wildcard (Istio names them as for IPv4).
TEST_F(CaptureTranslationTest, Ipv6PodGetsIpv6Wildcards) {
  Mesh mesh({meshOf()});
  ProxyIdentity p = captured();
  p.ip = "fd00:251::9";
  p.id = "sidecar~fd00:251::9~productpage.default~default.svc.cluster.local";
  Translation t = mesh.translate(p);
  EXPECT_EQ(findListener(t.bootstrap, "virtualOutbound")->address(), "[::]:15001");
  EXPECT_EQ(findListener(t.bootstrap, "virtualInbound")->address(), "[::]:15006");
  EXPECT_EQ(findListener(t.bootstrap, "0.0.0.0_9080")->address(), "[::]:9080");
  EXPECT_EQ(findListener(t.bootstrap, "0.0.0.0_6379")->address(), "[::]:6379");
  EXPECT_EQ(findListener(t.bootstrap, "10.96.0.20_5432")->address(), "10.96.0.20:5432");
}

TEST_F(CaptureTranslationTest, UncapturedProxiesKeepTheirLayout) {
  Mesh mesh({meshOf()});
  ProxyIdentity p = captured();
  p.interception_mode = "NONE";
  Translation t = mesh.translate(p);
  EXPECT_EQ(findListener(t.bootstrap, "virtualOutbound"), nullptr);
  EXPECT_EQ(findListener(t.bootstrap, "virtualInbound"), nullptr);
  EXPECT_FALSE(findListener(t.bootstrap, "0.0.0.0_9080")->has_bind_to_port());
  // An explicit outbound bind wins over the interception mode (Istio: NONE).
  p.interception_mode = "REDIRECT";
  p.outbound_bind = "127.0.0.1:0";
  t = mesh.translate(p);
  EXPECT_EQ(findListener(t.bootstrap, "virtualOutbound"), nullptr);
  EXPECT_EQ(findListener(t.bootstrap, "0.0.0.0_9080")->address(), "127.0.0.1:0");
}

TEST_F(CaptureTranslationTest, RegistryOnlyMeshBlackHolesUnknownDestinations) {
  // Mesh-wide (pilot's default), and per namespace through a Sidecar.
  Mesh mesh({meshOf()}, PushOptions{.registry_only = true});
  Translation t = mesh.translate(captured());
  EXPECT_EQ(findListener(t.bootstrap, "virtualOutbound")->tcp_proxy().cluster(),
            "BlackHoleCluster");
  const v1::VirtualHost* block = findVirtualHost(t.bootstrap, "9080", "block_all");
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->routes(0).direct_response().status(), 502u);
  EXPECT_EQ(findVirtualHost(t.bootstrap, "9080", "allow_any"), nullptr);

  Mesh per_namespace({meshOf(), sidecar("default", "default",
                                        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")});
  t = per_namespace.translate(captured());
  EXPECT_EQ(findListener(t.bootstrap, "virtualOutbound")->tcp_proxy().cluster(),
            "BlackHoleCluster");
}

TEST_F(CaptureTranslationTest, AutoMtlsToMeshWorkloadsOnly) {
  Mesh mesh({meshOf()});
  Translation t = mesh.translate(captured());
  // reviews' pods are mesh workloads: mTLS with this proxy's certificate, their SPIFFE id
  // expected.
  const v1::Cluster* reviews =
      findCluster(t.bootstrap, "outbound|9080||reviews.default.svc.cluster.local");
  ASSERT_NE(reviews, nullptr);
  ASSERT_TRUE(reviews->has_tls());
  EXPECT_EQ(reviews->tls().certificate_chain(), cert_dir_ + "/cert-chain.pem");
  EXPECT_EQ(reviews->tls().private_key(), cert_dir_ + "/key.pem");
  EXPECT_EQ(reviews->tls().trusted_ca(), cert_dir_ + "/root-cert.pem");
  EXPECT_THAT(reviews->tls().subject_alt_names(),
              ElementsAre("spiffe://cluster.local/ns/default/sa/bookinfo-reviews"));
  EXPECT_EQ(reviews->tls().sni(), "outbound_.9080_._.reviews.default.svc.cluster.local");
  const v1::Cluster* db = findCluster(t.bootstrap, "outbound|5432||db.default.svc.cluster.local");
  EXPECT_THAT(db->tls().subject_alt_names(),
              ElementsAre("spiffe://cluster.local/ns/default/sa/db"));
  // ratings' pod is not in the mesh: plaintext.
  EXPECT_FALSE(
      findCluster(t.bootstrap, "outbound|9080||ratings.default.svc.cluster.local")->has_tls());
  // A proxy without certificates cannot do mTLS.
  Translation plain = mesh.translate(captured(false));
  EXPECT_FALSE(
      findCluster(plain.bootstrap, "outbound|9080||reviews.default.svc.cluster.local")->has_tls());
}

// An endpoint-only change keeps the outbound view (only endpoints are recomputed) unless what a
// cluster's mTLS came from changed: a new service account is a new expected SAN.
TEST_F(CaptureTranslationTest, EndpointOnlyChangeRebuildsTheViewWhenIdentitiesChange) {
  Mesh before({meshOf("10.251.0.3", "bookinfo-reviews")});
  before.translate(captured());
  const std::string reviews = "outbound|9080||reviews.default.svc.cluster.local";

  Mesh moved({meshOf("10.251.0.7", "bookinfo-reviews")});  // same identities, another address
  moved.translator().inherit(before.translator(), {"default/reviews"});
  Translation t = moved.translate(captured());
  EXPECT_EQ(moved.translator().viewsRefreshed(), 1u);
  EXPECT_EQ(moved.translator().viewsBuilt(), 0u);
  EXPECT_THAT(findCluster(t.bootstrap, reviews)->tls().subject_alt_names(),
              ElementsAre("spiffe://cluster.local/ns/default/sa/bookinfo-reviews"));

  Mesh renamed({meshOf("10.251.0.3", "reviews-v2")});  // a pod with another service account
  renamed.translator().inherit(before.translator(), {"default/reviews"});
  t = renamed.translate(captured());
  EXPECT_EQ(renamed.translator().viewsRefreshed(), 0u);
  EXPECT_EQ(renamed.translator().viewsBuilt(), 1u);
  EXPECT_THAT(findCluster(t.bootstrap, reviews)->tls().subject_alt_names(),
              ElementsAre("spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
                          "spiffe://cluster.local/ns/default/sa/reviews-v2"));
}

TEST_F(CaptureTranslationTest, DestinationRuleIstioMutualAndDisable) {
  Mesh mesh({meshOf(),
             destinationRule("ratings", "default", R"(  host: ratings.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
)"),
             destinationRule("reviews", "default", R"(  host: reviews.default.svc.cluster.local
  trafficPolicy:
    tls: {mode: DISABLE}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/default/sa/other"]}
)")});
  Translation t = mesh.translate(captured());
  const v1::Cluster* ratings =
      findCluster(t.bootstrap, "outbound|9080||ratings.default.svc.cluster.local");
  ASSERT_TRUE(ratings->has_tls());  // ISTIO_MUTUAL although not labelled as a mesh workload
  EXPECT_THAT(ratings->tls().subject_alt_names(),
              ElementsAre("spiffe://cluster.local/ns/default/sa/default"));
  EXPECT_FALSE(
      findCluster(t.bootstrap, "outbound|9080||reviews.default.svc.cluster.local")->has_tls());
  const v1::Cluster* v1_subset =
      findCluster(t.bootstrap, "outbound|9080|v1|reviews.default.svc.cluster.local");
  ASSERT_TRUE(v1_subset->has_tls());
  EXPECT_THAT(v1_subset->tls().subject_alt_names(),
              ElementsAre("spiffe://cluster.local/ns/default/sa/other"));
  // Without certificates, ISTIO_MUTUAL is reported.
  Translation plain = mesh.translate(captured(false));
  EXPECT_THAT(plain.warnings, ::testing::Contains(HasSubstr("ISTIO_MUTUAL needs the proxy's "
                                                            "workload certificates")));
}

// The proxy's own inbound: PERMISSIVE by default (TLS detected, plaintext accepted), STRICT and
// DISABLE by PeerAuthentication: workload port-level, then workload, then namespace, then mesh.
TEST_F(CaptureTranslationTest, InboundMtlsFollowsPeerAuthentication) {
  // This proxy's own service.
  const std::string productpage = meshService(
      "productpage", "default",
      R"(  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9443, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.251.0.9, labels: {app: productpage}}]
)");
  const std::string mesh_strict =
      peerAuthentication("default", "istio-system", "  mtls: {mode: STRICT}\n");
  auto inbound_tls = [&](Mesh& mesh, uint32_t port) {
    Translation t = mesh.translate(captured());
    const v1::Listener* l = findListener(t.bootstrap, "virtualInbound_" + std::to_string(port));
    EXPECT_NE(l, nullptr);
    if (l != nullptr) {
      EXPECT_FALSE(l->bind_to_port().value());
    }
    return l != nullptr && l->has_tls() ? std::optional<v1::DownstreamTls>(l->tls()) : std::nullopt;
  };
  {
    Mesh mesh({meshOf(), productpage});
    auto tls = inbound_tls(mesh, 9080);
    ASSERT_TRUE(tls);
    EXPECT_TRUE(tls->permissive());
    EXPECT_TRUE(tls->require_client_certificate());
    EXPECT_EQ(tls->certificate_chain(), cert_dir_ + "/cert-chain.pem");
    EXPECT_EQ(tls->trusted_ca(), cert_dir_ + "/root-cert.pem");
    // Ports without a listener pass through as they come under PERMISSIVE.
    Translation t = mesh.translate(captured());
    EXPECT_FALSE(findListener(t.bootstrap, "virtualInbound")->has_tls());
  }
  {
    Mesh mesh({meshOf(), productpage, mesh_strict,
               peerAuthentication("productpage", "default",
                                  R"(  selector: {matchLabels: {app: productpage}}
  mtls: {mode: UNSET}
  portLevelMtls:
    9443: {mode: DISABLE}
)",
                                  "v1beta1")});
    auto strict = inbound_tls(mesh, 9080);  // the workload's UNSET defers to the mesh's STRICT
    ASSERT_TRUE(strict);
    EXPECT_FALSE(strict->permissive());
    EXPECT_FALSE(inbound_tls(mesh, 9443));  // port-level DISABLE: plaintext
    // STRICT covers the ports without a listener too (virtualInbound's passthrough).
    Translation t = mesh.translate(captured());
    const v1::Listener* vi = findListener(t.bootstrap, "virtualInbound");
    ASSERT_TRUE(vi->has_tls());
    EXPECT_FALSE(vi->tls().permissive());
    EXPECT_TRUE(vi->tls().require_client_certificate());
  }
  {
    Mesh mesh({meshOf(), productpage,
               peerAuthentication("default", "default", "  mtls: {mode: DISABLE}\n"), mesh_strict});
    EXPECT_FALSE(inbound_tls(mesh, 9080));  // the namespace's DISABLE beats the mesh's STRICT
  }
}

TEST(PeerAuthenticationConfigTest, PortLevelWithoutSelectorIsRefusedWithItsLine) {
  config::LoadedConfig loaded = config::loadConfigStream(
      peerAuthentication("default", "default",
                         "  mtls: {mode: STRICT}\n  portLevelMtls:\n    0: {mode: DISABLE}\n"),
      "pa.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.toString();
  ASSERT_EQ(loaded.resources.size(), 1u);
  auto report = config::validateResource(loaded.resources[0]);
  EXPECT_THAT(report.errors.toString(),
              ::testing::AllOf(HasSubstr("spec.portLevelMtls: requires spec.selector"),
                               HasSubstr("spec.portLevelMtls[0]: must be between 1 and 65535")));
  loaded = config::loadConfigStream(peerAuthentication("default", "", "{}", "v2"), "pa.yaml");
  EXPECT_THAT(loaded.errors.toString(), HasSubstr("pa.yaml:1: apiVersion: unsupported version"));
}

}  // namespace
}  // namespace mesh::pilot::translate::testing
