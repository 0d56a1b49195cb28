// Transparent capture end to end: two network namespaces ("pods") joined by a veth pair, each
// with an app, an istio-proxy running as uid 1337 and Istio's nat rules installed by
// `istio-proxy capture install`. A client in pod 1 calls pod 2's IP and port with no proxy
// settings; both proxies see the request, and the hop between them is mTLS with SPIFFE
// certificates made by the test. Needs root and `ip netns`; skips (saying why)
// without them. Everything created is removed when the test ends: processes by pid, then the
// namespaces (which takes the veth pair and the rules with them).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "test/integration/harness.h"
#include "test/integration/tls_support.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;

constexpr const char* kProxyUid = "1337";
// Private addresses on a /30 that exists only inside the two namespaces.
constexpr const char* kClientIp = "10.250.0.1";
constexpr const char* kServerIp = "10.250.0.2";
constexpr const char* kClientId = "spiffe://cluster.local/ns/default/sa/client";
constexpr const char* kServerId = "spiffe://cluster.local/ns/default/sa/httpbin";

std::string tool(const std::string& name) { return systemTool(name); }

// The node: pod 1 is client-v1 (the harness's), pod 2 httpbin-v1.
std::string preamble(const std::string& proxy) {
  std::string p = proxyPreamble();
  if (proxy != "proxy2") return p;
  for (size_t pos; (pos = p.find("client")) != std::string::npos;) p.replace(pos, 6, "httpbin");
  return p;
}

// The namespaces this test made; deleted (with their veth ends and rules) on destruction.
class Namespaces {
 public:
  explicit Namespaces(const TempDir& dir) : dir_(dir) {}
  ~Namespaces() {
    for (const auto& ns : names_) runTool(dir_, {tool("ip"), "netns", "del", ns});
  }
  bool add(const std::string& ns, std::string* error) {
    auto [rc, out] = runTool(dir_, {tool("ip"), "netns", "add", ns});
    if (rc != 0) {
      *error = out;
      return false;
    }
    names_.push_back(ns);
    return true;
  }

 private:
  const TempDir& dir_;
  std::vector<std::string> names_;
};

class CaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "capture test skipped: needs root (network namespaces)";
    for (const char* t : {"ip", "iptables", "iptables-restore", "setpriv", "curl"}) {
      if (tool(t).empty()) GTEST_SKIP() << "capture test skipped: '" << t << "' is not installed";
    }
    ::chmod(dir_.path().c_str(), 0777);  // the proxies run as uid 1337
    const std::string tag = std::to_string(::getpid());
    ns1_ = "meshcap1-" + tag;
    ns2_ = "meshcap2-" + tag;
    std::string error;
    if (!namespaces_.add(ns1_, &error)) {
      GTEST_SKIP() << "capture test skipped: 'ip netns add' is not allowed here: " << error;
    }
    ASSERT_TRUE(namespaces_.add(ns2_, &error)) << error;
    const std::string veth1 = "mc" + tag + "a", veth2 = "mc" + tag + "b";
    const std::string ip = tool("ip");
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {ip, "link", "add", veth1, "netns", ns1_, "type", "veth", "peer", "name", veth2,
              "netns", ns2_},
             {ip, "-n", ns1_, "link", "set", "lo", "up"},
             {ip, "-n", ns2_, "link", "set", "lo", "up"},
             {ip, "-n", ns1_, "addr", "add", std::string(kClientIp) + "/30", "dev", veth1},
             {ip, "-n", ns2_, "addr", "add", std::string(kServerIp) + "/30", "dev", veth2},
             {ip, "-n", ns1_, "link", "set", veth1, "up"},
             {ip, "-n", ns2_, "link", "set", veth2, "up"}}) {
      auto [rc, out] = runTool(dir_, argv);
      ASSERT_EQ(rc, 0) << argv[1] << " " << argv[2] << " " << argv[3] << ": " << out;
    }
  }

  std::vector<std::string> inNs(const std::string& ns, std::vector<std::string> argv) {
    std::vector<std::string> out = {tool("ip"), "netns", "exec", ns};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  // httpbin inside `ns` on 0.0.0.0:port, as root (the app is not the proxy's uid).
  std::unique_ptr<Process> startApp(const std::string& ns, uint16_t port,
                                    const std::string& instance) {
    std::string pf = dir_.file(instance + ".port");
    auto p = std::make_unique<Process>(
        inNs(ns, {binPath("httpbin"), "--listen", "0.0.0.0:" + std::to_string(port), "--instance",
                  instance, "--port-file", pf, "--threads", "1"}),
        dir_.file(instance + ".log"));
    std::string error;
    EXPECT_TRUE(waitForFile(pf, *p, milliseconds(10000), &error)) << error << p->log();
    return p;
  }

  // istio-proxy inside `ns` as uid/gid 1337; returns its admin port.
  std::unique_ptr<Process> startProxy(const std::string& ns, const std::string& name,
                                      const std::string& yaml, uint16_t* admin) {
    std::string config = dir_.file(name + ".yaml");
    writeFileAtomic(config, preamble(name) + yaml);
    ::chmod(config.c_str(), 0644);
    std::string pf = dir_.file(name + ".port");
    auto p = std::make_unique<Process>(
        inNs(ns, {tool("setpriv"), std::string("--reuid=") + kProxyUid,
                  std::string("--regid=") + kProxyUid, "--clear-groups", binPath("istio-proxy"),
                  "--config", config, "--port-file", pf, "--concurrency", "1"}),
        dir_.file(name + ".log"));
    std::string error;
    auto content = waitForFile(pf, *p, milliseconds(10000), &error);
    EXPECT_TRUE(content) << error << p->log();
    *admin = content ? static_cast<uint16_t>(jsonNumber(*content, "admin").value_or(0)) : 0;
    return p;
  }

  std::pair<int, std::string> capture(const std::string& ns, std::vector<std::string> flags) {
    std::vector<std::string> argv = {binPath("istio-proxy"), "capture"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return runTool(dir_, inNs(ns, argv));
  }

  // curl inside `ns` (as root: captured like any app); its exit code and output.
  std::pair<int, std::string> curl(const std::string& ns, const std::string& url,
                                   std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {tool("curl"), "-sS", "--max-time", "5", "--noproxy", "*"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    return runTool(dir_, inNs(ns, argv));
  }

  // The proxy's Prometheus text once `metric{labels}` sums to at least `want` (bounded).
  std::string metricsWhen(const std::string& ns, uint16_t admin, const std::string& metric,
                          const std::vector<std::string>& labels, double want) {
    std::string url = "http://127.0.0.1:" + std::to_string(admin) + "/stats/prometheus";
    const auto deadline = Clock::now() + milliseconds(10000);
    std::string text;
    while (Clock::now() < deadline) {
      text = curl(ns, url).second;
      if (promSum(text, metric, labels) >= want) break;
    }
    return text;
  }

  TempDir dir_;
  Namespaces namespaces_{dir_};
  std::string ns1_, ns2_;
};

// Pod 1 (the client): captured outbound goes to 15001, which hands a connection to the
// listener for its original destination (8000: a known service; 9100: HTTP to any host), or
// serves it itself (TCP). Unknown destinations go to `unknown_cluster`: PassthroughCluster, or
// BlackHoleCluster when the mesh is registry-only.
std::string clientProxyYaml(const char* unknown_cluster, const std::string& tls) {
  return std::string(R"(listeners:
- name: virtualOutbound
  address: 0.0.0.0:15001
  useOriginalDst: true
  tcpProxy: {cluster: )") +
         unknown_cluster + R"(}
- name: 0.0.0.0_8000
  address: 0.0.0.0:8000
  bindToPort: false
  http:
    routeConfig:
      virtualHosts:
      - name: httpbin
        domains: ["*"]
        routes: [{match: {prefix: /}, route: {cluster: "outbound|8000||httpbin.default.svc.cluster.local"}}]
  tcpProxy: {cluster: "outbound|8000||httpbin.default.svc.cluster.local"}
- name: 0.0.0.0_9100
  address: 0.0.0.0:9100
  bindToPort: false
  http:
    routeConfig:
      virtualHosts:
      - name: allow_any
        domains: ["*"]
        routes: [{match: {prefix: /}, route: {cluster: )" +
         unknown_cluster + R"(}}]
clusters:
- {name: PassthroughCluster, type: ORIGINAL_DST}
- {name: BlackHoleCluster}
- name: "outbound|8000||httpbin.default.svc.cluster.local"
  service: {host: httpbin.default.svc.cluster.local}
  endpoints:
  - address: 10.250.0.2
    port: 8000
    workload: {name: httpbin-v1, namespace: default, labels: {app: httpbin, version: v1}}
  tls: )" +
         tls + "\n";
}

// Pod 2 (the server): captured inbound goes to 15006, which hands port 8000 to the inbound
// listener for the local app.
std::string serverProxyYaml(const std::string& tls) {
  return R"(listeners:
- name: virtualInbound
  address: 0.0.0.0:15006
  direction: INBOUND
  useOriginalDst: true
  tcpProxy: {cluster: BlackHoleCluster}
- name: inbound_0.0.0.0_8000
  address: 0.0.0.0:8000
  bindToPort: false
  direction: INBOUND
  tls: )" +
         tls + R"(
  http:
    routeConfig:
      virtualHosts:
      - name: inbound
        domains: ["*"]
        routes: [{match: {prefix: /}, route: {cluster: "inbound|8000||"}}]
  tcpProxy: {cluster: "inbound|8000||"}
clusters:
- {name: BlackHoleCluster}
- name: "inbound|8000||"
  service: {host: httpbin.default.svc.cluster.local}
  endpoints: [{address: 127.0.0.1, port: 8000}]
)";
}

TEST_F(CaptureTest, AppToAppThroughBothSidecars) {
  auto app1 = startApp(ns1_, 8080, "client-app");
  auto app2 = startApp(ns2_, 8000, "httpbin-v1");
  // Port 9000 is not in the mesh's config, and not captured inbound (-b 8000): the target of a
  // passthrough call.
  auto other = startApp(ns2_, 9000, "unlisted");
  auto other_http = startApp(ns2_, 9100, "unlisted-http");
  // mTLS between the sidecars: each has its SPIFFE identity from one root.
  TestCa ca("capture test root");
  const std::string ca_file = dir_.file("root.crt");
  writeFileAtomic(ca_file, ca.certPem());
  auto [client_crt, client_key] = writeCertifiedKey(dir_, "client", ca.issue({kClientId}, 10));
  auto [server_crt, server_key] = writeCertifiedKey(dir_, "server", ca.issue({kServerId}, 20));
  for (const auto& f : {ca_file, client_crt, client_key, server_crt, server_key}) {
    ::chmod(f.c_str(), 0644);  // test keys, read by uid 1337
  }
  const std::string client_tls = "{certificateChain: " + client_crt +
                                 ", privateKey: " + client_key + ", trustedCa: " + ca_file +
                                 ", subjectAltNames: [\"" + kServerId + "\"]}";
  const std::string server_tls = "{certificateChain: " + server_crt +
                                 ", privateKey: " + server_key + ", trustedCa: " + ca_file +
                                 ", requireClientCertificate: true}";
  uint16_t admin1 = 0, admin2 = 0;
  auto proxy1 =
      startProxy(ns1_, "proxy1", clientProxyYaml("PassthroughCluster", client_tls), &admin1);
  auto proxy2 = startProxy(ns2_, "proxy2", serverProxyYaml(server_tls), &admin2);
  ASSERT_NE(admin1, 0);
  ASSERT_NE(admin2, 0);

  // Install twice: the second replaces the first (one set of rules).
  for (int i = 0; i < 2; ++i) {
    auto [rc1, out1] = capture(ns1_, {"install", "-u", kProxyUid, "-g", kProxyUid});
    ASSERT_EQ(rc1, 0) << out1;
  }
  auto [rc2, out2] = capture(ns2_, {"install", "-u", kProxyUid, "-b", "8000"});
  ASSERT_EQ(rc2, 0) << out2;
  auto [rc_rules, rules] = runTool(dir_, inNs(ns1_, {tool("iptables"), "-t", "nat", "-S"}));
  ASSERT_EQ(rc_rules, 0) << rules;
  EXPECT_EQ(countOf(rules, "-A OUTPUT -p tcp -j ISTIO_OUTPUT"), 1u) << rules;
  EXPECT_THAT(rules, HasSubstr("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"));
  // The same chains for IPv6 where the namespace has it (a new namespace does, on lo).
  const bool v6 = !tool("ip6tables").empty() && ::access("/proc/net/if_inet6", F_OK) == 0;
  if (v6) {
    auto [rc6, rules6] = runTool(dir_, inNs(ns1_, {tool("ip6tables"), "-t", "nat", "-S"}));
    ASSERT_EQ(rc6, 0) << rules6;
    EXPECT_EQ(countOf(rules6, "-A OUTPUT -p tcp -j ISTIO_OUTPUT"), 1u) << rules6;
    EXPECT_THAT(rules6, HasSubstr("-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN"));
  }

  // The client calls the server's IP and port; it knows nothing of the proxies.
  auto [rc, body] = curl(ns1_, std::string("http://") + kServerIp + ":8000/headers");
  ASSERT_EQ(rc, 0) << body << proxy1->log() << proxy2->log();
  EXPECT_THAT(body, HasSubstr("httpbin-v1"));
  // Both sidecars were on the way: pod 1's outbound started a trace, pod 2's inbound made a
  // child span of it, and took the metadata exchange headers out.
  EXPECT_THAT(body, HasSubstr("\"x-b3-parentspanid\""));
  EXPECT_THAT(body, ::testing::Not(HasSubstr("x-envoy-peer-metadata")));

  std::string m1 = metricsWhen(ns1_, admin1, "istio_requests_total", {"reporter=\"source\""}, 1);
  EXPECT_EQ(promSum(m1, "istio_requests_total",
                    {"reporter=\"source\"", "response_code=\"200\"",
                     "destination_service=\"httpbin.default.svc.cluster.local\""}),
            1)
      << m1;
  std::string m2 =
      metricsWhen(ns2_, admin2, "istio_requests_total", {"reporter=\"destination\""}, 1);
  EXPECT_EQ(promSum(m2, "istio_requests_total",
                    {"reporter=\"destination\"", "response_code=\"200\"",
                     "source_workload=\"client-v1\"", "connection_security_policy=\"mutual_tls\"",
                     std::string("source_principal=\"") + kClientId + "\""}),
            1)
      << m2;

  // A destination the config does not know goes out unchanged through PassthroughCluster.
  auto [rc_pass, pass] = curl(ns1_, std::string("http://") + kServerIp + ":9000/headers");
  ASSERT_EQ(rc_pass, 0) << pass << proxy1->log();
  EXPECT_THAT(pass, HasSubstr("unlisted"));
  m1 = metricsWhen(ns1_, admin1, "envoy_cluster_upstream_cx_total",
                   {"cluster_name=\"PassthroughCluster\""}, 1);
  EXPECT_EQ(promSum(m1, "envoy_cluster_upstream_cx_total", {"cluster_name=\"PassthroughCluster\""}),
            1)
      << m1;

  // HTTP to a host the mesh does not know, on a port it has an HTTP listener for: routed (the
  // proxy adds its headers) to PassthroughCluster, which goes where the client was going.
  auto [rc_http, http] = curl(ns1_, std::string("http://") + kServerIp + ":9100/headers");
  ASSERT_EQ(rc_http, 0) << http << proxy1->log();
  EXPECT_THAT(http, HasSubstr("unlisted-http"));
  EXPECT_THAT(http, HasSubstr("\"x-b3-traceid\""));
  m1 = metricsWhen(ns1_, admin1, "envoy_cluster_upstream_rq_total",
                   {"cluster_name=\"PassthroughCluster\""}, 1);
  EXPECT_EQ(promSum(m1, "envoy_cluster_upstream_rq_total", {"cluster_name=\"PassthroughCluster\""}),
            1)
      << m1;

  // The app talking to itself on loopback is left alone.
  auto [rc_self, self] = curl(ns1_, "http://127.0.0.1:8080/headers");
  EXPECT_EQ(rc_self, 0) << self;
  EXPECT_THAT(self, HasSubstr("client-app"));

  // Registry-only: unknown destinations are refused by BlackHoleCluster; known ones still work.
  writeFileAtomic(dir_.file("proxy1.yaml"),
                  preamble("proxy1") + clientProxyYaml("BlackHoleCluster", client_tls));
  ::chmod(dir_.file("proxy1.yaml").c_str(), 0644);
  auto [rc_reload, reload] = curl(ns1_, "http://127.0.0.1:" + std::to_string(admin1) + "/reload",
                                  {"-X", "POST", "--fail"});
  ASSERT_EQ(rc_reload, 0) << reload;
  auto [rc_hole, hole] = curl(ns1_, std::string("http://") + kServerIp + ":9000/headers");
  EXPECT_NE(rc_hole, 0) << hole;
  EXPECT_THAT(hole, ::testing::Not(HasSubstr("unlisted")));
  auto [rc_hole_http, hole_http] =
      curl(ns1_, std::string("http://") + kServerIp + ":9100/headers", {"-i"});
  EXPECT_EQ(rc_hole_http, 0) << hole_http;
  EXPECT_THAT(hole_http, HasSubstr("503"));
  EXPECT_THAT(hole_http, ::testing::Not(HasSubstr("unlisted-http")));
  m1 = metricsWhen(ns1_, admin1, "envoy_cluster_upstream_cx_none_healthy",
                   {"cluster_name=\"BlackHoleCluster\""}, 2);
  EXPECT_EQ(
      promSum(m1, "envoy_cluster_upstream_cx_none_healthy", {"cluster_name=\"BlackHoleCluster\""}),
      2)
      << m1;
  auto [rc_known, known] = curl(ns1_, std::string("http://") + kServerIp + ":8000/headers");
  EXPECT_EQ(rc_known, 0) << known;
  EXPECT_THAT(known, HasSubstr("httpbin-v1"));

  // Without the rules the client reaches the app directly: nothing else was left behind.
  auto [rc_rm, rm] = capture(ns1_, {"remove"});
  ASSERT_EQ(rc_rm, 0) << rm;
  std::tie(rc_rules, rules) = runTool(dir_, inNs(ns1_, {tool("iptables"), "-t", "nat", "-S"}));
  EXPECT_THAT(rules, ::testing::Not(HasSubstr("ISTIO"))) << rules;
  if (v6) {
    auto [rc6, rules6] = runTool(dir_, inNs(ns1_, {tool("ip6tables"), "-t", "nat", "-S"}));
    EXPECT_THAT(rules6, ::testing::Not(HasSubstr("ISTIO"))) << rules6;
  }
  std::tie(rc_hole, hole) = curl(ns1_, std::string("http://") + kServerIp + ":9000/headers");
  EXPECT_EQ(rc_hole, 0) << hole;
  auto [rc_rm2, rm2] = capture(ns2_, {"remove"});
  EXPECT_EQ(rc_rm2, 0) << rm2;
}

}  // namespace
}  // namespace mesh::integration
