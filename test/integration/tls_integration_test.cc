// TLS and mTLS end to end with certificates made by the test: termination on listeners (HTTP
// and the TCP proxy, TLS 1.2 and 1.3, ECDSA and RSA), refused clients (no certificate, an
// untrusted root, plaintext, garbage), two chained proxies speaking mTLS with SPIFFE identities
// checked both ways and reported in Istio's metrics, and a certificate swapped under load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/harness.h"
#include "test/integration/scripted_backend.h"
#include "test/integration/tls_support.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;

constexpr char kServerId[] = "spiffe://cluster.local/ns/default/sa/server";
constexpr char kClientId[] = "spiffe://cluster.local/ns/default/sa/client";

// The node of the proxy beside the server workload (its principal is kServerId).
std::string serverPreamble() {
  return R"(node:
  id: sidecar~127.0.0.1~httpbin-v1.default~default.svc.cluster.local
  workloadName: httpbin-v1
  namespace: default
  labels: {app: httpbin, version: v1}
  serviceAccount: server
admin: {address: "127.0.0.1:0", prometheusAddress: "127.0.0.1:0", healthAddress: "127.0.0.1:0"}
)";
}

std::string httpbinCluster(const std::string& name, uint16_t port) {
  return "- name: " + name +
         "\n  service: {host: httpbin.default.svc.cluster.local, name: httpbin, namespace: "
         "default}\n  endpoints:\n  - {address: 127.0.0.1, port: " +
         std::to_string(port) + "}\n";
}

std::string routesTo(const std::string& cluster) {
  return "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: all\n    domains: [\"*\"]\n"
         "    routes:\n    - match: {prefix: /}\n      route: {cluster: " +
         cluster + "}\n";
}

class TlsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // the test's blocking TLS client writes to closing sockets
    httpbin_ = startHttpbin(dir_, "httpbin-v1", "v1");
    ca_file_ = certs_.file("root.pem");
    writeFileAtomic(ca_file_, ca_.certPem());
    std::tie(server_crt_, server_key_) =
        writeCertifiedKey(certs_, "server", ca_.issue({kServerId, "server.test"}, 100));
    std::tie(client_crt_, client_key_) =
        writeCertifiedKey(certs_, "client", ca_.issue({kClientId}, 200));
    std::tie(rsa_crt_, rsa_key_) =
        writeCertifiedKey(certs_, "rsa", ca_.issue({kServerId}, 300, KeyType::kRsa2048));
  }

  // Client options: trust the test root, at exactly `version` when given.
  TlsClientOptions trusting(int version = 0) {
    TlsClientOptions o;
    o.trusted_ca_file = ca_file_;
    o.min_version = o.max_version = version;
    return o;
  }
  // The same, with a client certificate.
  TlsClientOptions mutual(const std::string& crt, const std::string& key, int version = 0) {
    TlsClientOptions o = trusting(version);
    o.cert_file = crt;
    o.key_file = key;
    return o;
  }

  // A listener's tls block (YAML flow mapping).
  std::string listenerTls(bool mutual, const std::string& crt = "", const std::string& key = "") {
    std::string y = "{certificateChain: " + (crt.empty() ? server_crt_ : crt) +
                    ", privateKey: " + (key.empty() ? server_key_ : key);
    if (mutual) y += ", trustedCa: " + ca_file_ + ", requireClientCertificate: true";
    return y + "}";
  }

  std::string metrics(const Proxy& p) {
    HttpResponse r = httpGet(p.prometheus, "/stats/prometheus");
    EXPECT_TRUE(r.ok) << r.error;
    return r.body;
  }
  // Scrapes until metric{labels} reaches at_least (bounded): telemetry lands just after the
  // response.
  std::string metricsWhen(const Proxy& p, const std::string& metric,
                          const std::vector<std::string>& labels, double at_least) {
    auto deadline = Clock::now() + milliseconds(5000);
    std::string m = metrics(p);
    while (promSum(m, metric, labels) < at_least && Clock::now() < deadline) m = metrics(p);
    return m;
  }

  // Proxy B: the server side, mTLS only, in front of httpbin (or the app on `app_port`).
  void startServerProxy(uint16_t app_port = 0) {
    std::string yaml = serverPreamble() +
                       "listeners:\n- name: inbound\n  address: 127.0.0.1:0\n"
                       "  direction: INBOUND\n  http: {routeConfigName: r}\n  tls: " +
                       listenerTls(true) + "\n" + routesTo("app") + "clusters:\n" +
                       httpbinCluster("app", app_port != 0 ? app_port : httpbin_.port);
    b_ = startProxy(dir_b_, yaml, {"inbound"});
  }

  // Proxy A: plaintext in (HTTP, and a TCP proxy), mTLS out to B expecting `san`.
  std::string clientProxyYaml(const std::string& san) {
    return proxyPreamble() +
           "listeners:\n- name: outbound\n  address: 127.0.0.1:0\n"
           "  http: {routeConfigName: r}\n"
           "- name: tcp-out\n  address: 127.0.0.1:0\n  tcpProxy: {cluster: b}\n" +
           routesTo("b") + "clusters:\n" + httpbinCluster("b", b_.listeners["inbound"]) +
           "  tls: {sni: server.test, certificateChain: " + client_crt_ +
           ", privateKey: " + client_key_ + ", trustedCa: " + ca_file_ + ", subjectAltNames: [\"" +
           san + "\"]}\n";
  }

  TempDir dir_, dir_a_, dir_b_, certs_;
  TestCa ca_{"mesh test root"};
  Httpbin httpbin_;
  std::string ca_file_, server_crt_, server_key_, client_crt_, client_key_, rsa_crt_, rsa_key_;
  Proxy a_, b_;
};

TEST_F(TlsIntegrationTest, TerminatesTls12And13ForHttpAndTcpWithEcdsaAndRsa) {
  std::string https_tls = listenerTls(false);
  https_tls.insert(https_tls.size() - 1, ", alpn: [http/1.1]");
  std::string yaml = proxyPreamble() +
                     "listeners:\n"
                     "- name: https\n  address: 127.0.0.1:0\n  http: {routeConfigName: r}\n"
                     "  tls: " +
                     https_tls +
                     "\n- name: https-rsa\n  address: 127.0.0.1:0\n  http: {routeConfigName: r}\n"
                     "  tls: " +
                     listenerTls(false, rsa_crt_, rsa_key_) +
                     "\n- name: tls-tcp\n  address: 127.0.0.1:0\n  tcpProxy: {cluster: app}\n"
                     "  tls: " +
                     listenerTls(false) + "\n" + routesTo("app") + "clusters:\n" +
                     httpbinCluster("app", httpbin_.port);
  Proxy p = startProxy(dir_a_, yaml, {"https", "https-rsa", "tls-tcp"});

  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    for (const char* listener : {"https", "https-rsa", "tls-tcp"}) {
      TlsClientOptions o = trusting(version);
      // An http listener offers h2,http/1.1 unless configured ("https": http/1.1 only); this
      // client speaks HTTP/1.1, so it offers h2 only where the listener must refuse it.
      if (std::string(listener) == "https-rsa") {
        o.alpn = {"http/1.1"};
      } else {
        o.alpn = {"h2", "http/1.1"};
      }
      TlsClient c(o);
      std::string error;
      ASSERT_TRUE(c.connect(p.listeners[listener], &error)) << listener << ": " << error;
      EXPECT_EQ(c.version(), version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3");
      EXPECT_EQ(c.peerUriSan(), kServerId);
      // No ALPN for the TCP proxy; never h2 where the config says http/1.1.
      EXPECT_EQ(c.alpn(), std::string(listener) == "tls-tcp" ? "" : "http/1.1");
      for (int i = 0; i < 2; ++i) {  // keep-alive over the same TLS connection
        HttpResponse r = c.get("/status/201");
        ASSERT_TRUE(r.ok) << listener << ": " << r.error;
        EXPECT_EQ(r.status, 201);
      }
      EXPECT_EQ(c.peerSerial(), std::string(listener) == "https-rsa" ? "012C" : "64");
      if (version == TLS1_3_VERSION) {
        // A body far larger than the socket buffers, streamed through the TLS writes.
        HttpResponse big = c.get("/bytes/3000000");
        ASSERT_TRUE(big.ok) << listener << ": " << big.error;
        EXPECT_EQ(big.body.size(), 3000000u);
      }
    }
  }
  std::string m = metrics(p);
  EXPECT_EQ(promSum(m, "envoy_listener_ssl_handshake", {"listener=\"https\""}), 2) << m;
  EXPECT_EQ(promSum(m, "envoy_listener_ssl_handshake", {"listener=\"tls-tcp\""}), 2) << m;
  EXPECT_EQ(promSum(m, "envoy_listener_ssl_connection_error"), 0) << m;
  // Plaintext on a TLS port is a failed handshake, not a request.
  HttpResponse plain = httpGet(p.listeners["https"], "/status/200");
  EXPECT_FALSE(plain.ok);
}

TEST_F(TlsIntegrationTest, MutualTlsRefusesMissingUntrustedPlaintextAndGarbage) {
  startServerProxy();
  uint16_t port = b_.listeners["inbound"];
  // The trusted client passes.
  {
    TlsClient c(mutual(client_crt_, client_key_));
    std::string error;
    ASSERT_TRUE(c.connect(port, &error)) << error;
    HttpResponse r = c.get("/status/200");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200);
  }
  // A TLS 1.3 server refuses a client certificate after the client's handshake has ended, so
  // refusal shows at the latest when the client reads.
  auto refused = [&](TlsClientOptions o) {
    TlsClient c(std::move(o));
    std::string error;
    if (!c.connect(port, &error)) return true;
    return !c.get("/status/200").ok;
  };
  EXPECT_TRUE(refused(trusting()));  // no certificate
  TestCa other("untrusted root");
  auto [bad_crt, bad_key] = writeCertifiedKey(certs_, "untrusted", other.issue({kClientId}, 400));
  EXPECT_TRUE(refused(mutual(bad_crt, bad_key)));
  EXPECT_TRUE(refused(mutual(bad_crt, bad_key, TLS1_2_VERSION)));
  // Plaintext HTTP to the mTLS-only port.
  EXPECT_FALSE(httpGet(port, "/status/200").ok);
  // Garbage, and a TLS record header announcing a huge record: the connection just ends.
  for (std::string garbage :
       {std::string(200, '\x7f'), std::string("\x16\x03\x01\xff\xff", 5) + std::string(64, 'A')}) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
    char buf[512];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
    }
    // Closed with unread bytes, the kernel may answer with a reset: also an end, not a hang.
    EXPECT_TRUE(n == 0 || errno == ECONNRESET) << "expected a close, got " << std::strerror(errno);
    ::close(fd);
  }
  std::string m = metricsWhen(b_, "envoy_listener_ssl_connection_error", {}, 6);
  EXPECT_GE(promSum(m, "envoy_listener_ssl_connection_error", {"listener=\"inbound\""}), 6) << m;
  // And the proxy still serves.
  TlsClient c(mutual(client_crt_, client_key_));
  std::string error;
  ASSERT_TRUE(c.connect(port, &error)) << error;
  HttpResponse r = c.get("/status/200");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(b_.process->running());
}

// Istio's PERMISSIVE: one port takes mTLS (a first byte of 0x16) and plaintext alike; a TLS client
// without a certificate is still refused.
TEST_F(TlsIntegrationTest, PermissivePortServesMutualTlsAndPlaintext) {
  std::string tls = listenerTls(true);
  tls.insert(tls.size() - 1, ", permissive: true");
  std::string yaml = serverPreamble() +
                     "listeners:\n- name: inbound\n  address: 127.0.0.1:0\n"
                     "  direction: INBOUND\n  http: {routeConfigName: r}\n  tls: " +
                     tls + "\n" + routesTo("app") + "clusters:\n" +
                     httpbinCluster("app", httpbin_.port);
  b_ = startProxy(dir_b_, yaml, {"inbound"});
  const uint16_t port = b_.listeners["inbound"];
  {
    TlsClient c(mutual(client_crt_, client_key_));
    std::string error;
    ASSERT_TRUE(c.connect(port, &error)) << error;
    EXPECT_EQ(c.peerUriSan(), kServerId);
    HttpResponse r = c.get("/status/200");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200);
  }
  HttpResponse plain = httpGet(port, "/status/202");
  ASSERT_TRUE(plain.ok) << plain.error;
  EXPECT_EQ(plain.status, 202);
  {
    TlsClient c(trusting());  // TLS, but no client certificate
    std::string error;
    EXPECT_TRUE(!c.connect(port, &error) || !c.get("/status/200").ok);
  }
  std::string m = metricsWhen(b_, "istio_requests_total", {"reporter=\"destination\""}, 2);
  EXPECT_EQ(promSum(m, "istio_requests_total",
                    {"response_code=\"200\"", "connection_security_policy=\"mutual_tls\"",
                     std::string("source_principal=\"") + kClientId + "\""}),
            1)
      << m;
  EXPECT_EQ(promSum(m, "istio_requests_total",
                    {"response_code=\"202\"", "connection_security_policy=\"none\""}),
            1)
      << m;
}

TEST_F(TlsIntegrationTest, ChainedProxiesSpeakMutualTlsWithSpiffeIdentities) {
  startServerProxy();
  a_ = startProxy(dir_a_, clientProxyYaml(kServerId), {"outbound", "tcp-out"});
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = httpGet(a_.listeners["outbound"], "/status/200");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200) << r.body;
  }
  // The TCP proxy originates mTLS too (its requests are B's fourth).
  HttpResponse tcp = httpGet(a_.listeners["tcp-out"], "/status/200");
  ASSERT_TRUE(tcp.ok) << tcp.error;
  EXPECT_EQ(tcp.status, 200);
  std::vector<std::string> labels = {"reporter=\"destination\"",
                                     "source_principal=\"" + std::string(kClientId) + "\"",
                                     "destination_principal=\"" + std::string(kServerId) + "\"",
                                     "connection_security_policy=\"mutual_tls\"",
                                     "source_workload_namespace=\"default\"",
                                     "destination_workload=\"httpbin-v1\"",
                                     "response_code=\"200\""};
  std::string m = metricsWhen(b_, "istio_requests_total", labels, 4);
  EXPECT_EQ(promSum(m, "istio_requests_total", labels), 4) << m;
  EXPECT_EQ(promSum(m, "istio_requests_total", {"connection_security_policy=\"none\""}), 0);
  std::string ma = metrics(a_);
  EXPECT_GE(promSum(ma, "envoy_cluster_ssl_handshake", {"cluster_name=\"b\""}), 1) << ma;

  // A wrong expected SAN: A refuses B's certificate, the request fails as a connect failure.
  HttpResponse reload;
  writeFileAtomic(a_.config_path,
                  clientProxyYaml("spiffe://cluster.local/ns/default/sa/someone-else"));
  reload = httpPost(a_.admin, "/reload");
  ASSERT_EQ(reload.status, 200) << reload.body;
  HttpResponse r = httpGet(a_.listeners["outbound"], "/status/200");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 503);
  ma = metricsWhen(a_, "istio_requests_total", {"response_flags=\"UF\""}, 1);
  EXPECT_EQ(promSum(ma, "istio_requests_total", {"response_code=\"503\"", "response_flags=\"UF\""}),
            1)
      << ma;
  EXPECT_GE(promSum(ma, "envoy_cluster_ssl_connection_error", {"cluster_name=\"b\""}), 1) << ma;
  // The TCP proxy closes the client's connection, flag UF in its TCP metrics.
  EXPECT_FALSE(httpGet(a_.listeners["tcp-out"], "/status/200").ok);
  ma = metricsWhen(a_, "istio_tcp_connections_closed_total", {"response_flags=\"UF\""}, 1);
  EXPECT_EQ(promSum(ma, "istio_tcp_connections_closed_total", {"response_flags=\"UF\""}), 1) << ma;
  EXPECT_GE(promSum(ma, "envoy_cluster_ssl_connection_error", {"cluster_name=\"b\""}), 2) << ma;
}

// Istio's source reporter over mTLS: the client sidecar names the server by the SPIFFE id its
// certificate proved and itself by its own certificate's; connection_security_policy stays
// "unknown" on that side, as in Istio. Plaintext upstreams keep both principals unknown.
TEST_F(TlsIntegrationTest, SourceReporterNamesBothPrincipalsOverMutualTls) {
  startServerProxy();
  a_ = startProxy(dir_a_, clientProxyYaml(kServerId), {"outbound", "tcp-out"});
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = httpGet(a_.listeners["outbound"], "/status/200");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.status, 200) << r.body;
  }
  std::vector<std::string> labels = {
      "reporter=\"source\"", "source_principal=\"" + std::string(kClientId) + "\"",
      "destination_principal=\"" + std::string(kServerId) + "\"",
      "connection_security_policy=\"unknown\"", "response_code=\"200\""};
  std::string m = metricsWhen(a_, "istio_requests_total", labels, 3);
  EXPECT_EQ(promSum(m, "istio_requests_total", labels), 3) << m;
  EXPECT_EQ(promSum(m, "istio_requests_total",
                    {"reporter=\"source\"", "destination_principal=\"unknown\""}),
            0)
      << m;
  // The TCP proxy's source reporter too (its mTLS upstream): one connection, closed once the
  // HTTP exchange over it is done.
  HttpResponse tcp = httpGet(a_.listeners["tcp-out"], "/status/200");
  ASSERT_TRUE(tcp.ok) << tcp.error;
  std::vector<std::string> tcp_labels = {"reporter=\"source\"",
                                         "source_principal=\"" + std::string(kClientId) + "\"",
                                         "destination_principal=\"" + std::string(kServerId) + "\"",
                                         "connection_security_policy=\"unknown\""};
  m = metricsWhen(a_, "istio_tcp_connections_closed_total", tcp_labels, 1);
  EXPECT_EQ(promSum(m, "istio_tcp_connections_opened_total", tcp_labels), 1) << m;
  EXPECT_EQ(promSum(m, "istio_tcp_connections_closed_total", tcp_labels), 1) << m;
  EXPECT_GT(promSum(m, "istio_tcp_received_bytes_total", tcp_labels), 0) << m;

  // Straight to httpbin (plaintext): no principal is claimed on either side.
  HttpResponse reload;
  writeFileAtomic(a_.config_path, proxyPreamble() +
                                      "listeners:\n- name: outbound\n  address: 127.0.0.1:0\n"
                                      "  http: {routeConfigName: r}\n" +
                                      routesTo("plain") + "clusters:\n" +
                                      httpbinCluster("plain", httpbin_.port));
  reload = httpPost(a_.admin, "/reload");
  ASSERT_EQ(reload.status, 200) << reload.body;
  HttpResponse r = httpGet(a_.listeners["outbound"], "/status/200");
  ASSERT_TRUE(r.ok) << r.error;
  std::vector<std::string> plain = {"reporter=\"source\"", "source_principal=\"unknown\"",
                                    "destination_principal=\"unknown\""};
  m = metricsWhen(a_, "istio_requests_total", plain, 1);
  EXPECT_EQ(promSum(m, "istio_requests_total", plain), 1) << m;
}

// A WebSocket tunnel across the mTLS hop: client -> A (plaintext) -> mTLS -> B -> echo backend.
// Frames echo both ways, and both half-closes cross the TLS hop (close_notify and FIN).
TEST_F(TlsIntegrationTest, WebSocketTunnelCrossesTheMutualTlsHop) {
  ScriptedBackend echo([](const BackendRequest& req) {
    if (req.header("upgrade") == "websocket") return ScriptedBackend::websocketUpgrade(req);
    BackendReply r;
    r.bytes = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
    return r;
  });
  startServerProxy(echo.port());
  a_ = startProxy(dir_a_, clientProxyYaml(kServerId), {"outbound", "tcp-out"});
  RawClient c(a_.listeners["outbound"]);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(websocketHandshake("dGhlIHNhbXBsZSBub25jZQ==")));
  std::string head = c.readHead();
  ASSERT_THAT(head, HasSubstr("HTTP/1.1 101 ")) << head;
  EXPECT_THAT(head, HasSubstr("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) << head;
  std::string big(100 * 1024, 'm');
  for (const std::string& payload : {std::string("over mtls"), big}) {
    ASSERT_TRUE(c.send(websocketClientFrame(0x1, payload)));
    uint8_t op = 0;
    std::string got;
    ASSERT_TRUE(c.readFrame(&op, &got));
    EXPECT_EQ(got, payload);
  }
  ASSERT_TRUE(c.send(websocketClientFrame(0x8, "")));
  c.shutdownWrite();
  uint8_t op = 0;
  std::string got;
  ASSERT_TRUE(c.readFrame(&op, &got));
  EXPECT_EQ(op, 0x8);
  EXPECT_TRUE(c.waitEof(milliseconds(5000)));
  // Each sidecar records the tunnel once, when it ended cleanly; B's side is mTLS.
  std::vector<std::string> b_labels = {"reporter=\"destination\"", "response_code=\"101\"",
                                       "response_flags=\"-\"",
                                       "connection_security_policy=\"mutual_tls\""};
  std::string mb = metricsWhen(b_, "istio_requests_total", b_labels, 1);
  EXPECT_EQ(promSum(mb, "istio_requests_total", b_labels), 1) << mb;
  std::vector<std::string> a_labels = {"reporter=\"source\"", "response_code=\"101\"",
                                       "response_flags=\"-\"",
                                       "destination_principal=\"" + std::string(kServerId) + "\""};
  std::string ma = metricsWhen(a_, "istio_requests_total", a_labels, 1);
  EXPECT_EQ(promSum(ma, "istio_requests_total", a_labels), 1) << ma;
}

TEST_F(TlsIntegrationTest, CertificateSwapDropsNoRequestAndNewHandshakesSeeIt) {
  startServerProxy();
  uint16_t port = b_.listeners["inbound"];
  TlsClientOptions opts = mutual(client_crt_, client_key_);
  // A connection made before the swap keeps working on its old certificate.
  TlsClient early(opts);
  std::string error;
  ASSERT_TRUE(early.connect(port, &error)) << error;
  ASSERT_TRUE(early.get("/status/200").ok);
  EXPECT_EQ(early.peerSerial(), "64");

  // The client loop reports each request; the test waits on that, never on a clock.
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  int ok = 0, failed = 0, new_serial = 0;
  std::string first_failure;
  std::thread loop([&] {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stop) return;
      }
      TlsClient c(opts);
      std::string e;
      HttpResponse r;
      if (c.connect(port, &e)) r = c.get("/status/200");
      std::lock_guard<std::mutex> lock(mu);
      if (r.ok && r.status == 200) {
        ++ok;
        if (c.peerSerial() == "65") ++new_serial;
      } else if (failed++ == 0) {
        first_failure = e.empty() ? r.error : e;
      }
      cv.notify_all();
    }
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, milliseconds(10000), [&] { return ok >= 20 || failed > 0; }));
  }
  // The new certificate (serial 0x65) and its new key, each replaced by an atomic rename: in
  // between, certificate and key do not match and the old pair keeps serving.
  CertifiedKey next = ca_.issue({kServerId}, 101);
  writeFileAtomic(server_crt_, next.cert_pem);
  writeFileAtomic(server_key_, next.key_pem);
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, milliseconds(10000), [&] { return new_serial >= 20; });
    stop = true;
  }
  loop.join();
  EXPECT_GE(new_serial, 20) << "new handshakes never saw the new certificate";
  EXPECT_EQ(failed, 0) << first_failure;
  EXPECT_GE(ok, 40);
  // The early connection is untouched.
  HttpResponse r = early.get("/status/200");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(early.peerSerial(), "64");
}

}  // namespace
}  // namespace mesh::integration
