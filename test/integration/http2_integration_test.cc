// HTTP/2 downstream end to end: the real proxy in front of a real httpbin (HTTP/1.1), reached
// by curl (h2c with prior knowledge, h2 over TLS by ALPN), by h2load, and by a raw client that
// writes frames by hand for the abuse patterns. Each abuse must end in a GOAWAY with the
// expected code and then EOF, the proxy's RSS must stay bounded, and the proxy must go on
// serving other clients.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "test/integration/harness.h"
#include "test/integration/tls_support.h"
#include "test/testing/h2_frames.h"

namespace mesh::integration {
namespace {

namespace h2 = mesh::testing::h2;
using ::testing::HasSubstr;

constexpr uint64_t kMaxRssGrowthKb = 64 * 1024;

uint64_t rssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

// A raw HTTP/2 client connection: frames by hand, reads with deadlines.
class RawH2 {
 public:
  explicit RawH2(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawH2() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  // Sends everything (waiting for the socket to drain, at most `timeout`).
  bool send(std::string_view bytes, milliseconds timeout = milliseconds(5000)) {
    return sendSome(bytes, timeout) == bytes.size();
  }
  // Sends what the peer takes before the socket stays full for `stall`.
  size_t sendSome(std::string_view bytes, milliseconds stall) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN) break;
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(stall.count())) <= 0) break;
    }
    return off;
  }
  // Sends `frame` `count` times, or until the peer stops taking bytes; how many went out.
  size_t flood(const std::string& frame, size_t count, milliseconds stall = milliseconds(500)) {
    std::string batch;
    const size_t per_batch = std::max<size_t>(1, 16384 / frame.size());
    for (size_t i = 0; i < per_batch; ++i) batch += frame;
    size_t sent = 0;
    while (sent < count) {
      size_t k = std::min(per_batch, count - sent);
      std::string_view b(batch.data(), k * frame.size());
      size_t n = sendSome(b, stall);
      sent += n / frame.size();
      if (n < b.size()) break;
    }
    return sent;
  }
  void start() {
    send(h2::kPreface);
    send(h2::settings());
  }

  // The next frame, or nullopt at EOF (eof() true) or when `timeout` passes.
  std::optional<h2::Frame> read(milliseconds timeout = milliseconds(5000)) {
    auto deadline = Clock::now() + timeout;
    h2::Frame f;
    while (!h2::nextFrame(buf_, f)) {
      if (eof_) return std::nullopt;
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
      } else if (n == 0 || errno != EAGAIN) {
        eof_ = true;
      }
    }
    return f;
  }
  bool eof() const { return eof_; }

  // Reads until a GOAWAY and then until EOF; the GOAWAY's code (nullopt if none came).
  std::optional<uint32_t> goawayThenEof(milliseconds timeout = milliseconds(20000)) {
    auto deadline = Clock::now() + timeout;
    std::optional<uint32_t> code;
    while (Clock::now() < deadline) {
      auto f = read(std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
      if (!f) break;
      if (f->type == h2::kGoaway && !code) code = f->errorCode();
      if (f->type == h2::kRstStream) resets.push_back({f->stream, f->errorCode()});
    }
    return code;
  }
  std::vector<std::pair<uint32_t, uint32_t>> resets;  // stream, code

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

class Http2IntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hb_ = startHttpbin(dir_, "httpbin-v1", "v1");
    auto [crt, key] = writeCertifiedKey(dir_, "server", ca_.issue({"localhost"}, 100));
    log_path_ = dir_.file("access.log");
    tls_log_path_ = dir_.file("access-tls.log");
    std::string yaml = proxyPreamble() +
                       "listeners:\n"
                       "- name: http\n  address: 127.0.0.1:0\n"
                       "  http: {routeConfigName: r, accessLog: {enabled: true, path: " +
                       log_path_ +
                       "}}\n"
                       "- name: https\n  address: 127.0.0.1:0\n"
                       "  http: {routeConfigName: r, accessLog: {enabled: true, path: " +
                       tls_log_path_ +
                       "}}\n"
                       "  tls: {certificateChain: " +
                       crt + ", privateKey: " + key +
                       "}\n"
                       "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: default\n"
                       "    domains: [\"*\"]\n    routes:\n"
                       "    - match: {prefix: /abort}\n"
                       "      route: {cluster: v1, prefixRewrite: /}\n"
                       "      fault: {abort: {httpStatus: 503}}\n"
                       "    - match: {prefix: /slow}\n"
                       "      route: {cluster: v1, prefixRewrite: /, timeout: 300ms}\n"
                       "    - match: {prefix: /}\n"
                       "      route: {cluster: v1}\n"
                       "      cors: {allowOrigins: [{exact: \"https://app.test\"}], "
                       "allowMethods: [GET, POST]}\n"
                       "clusters:\n- name: v1\n"
                       "  service: {host: httpbin.default.svc.cluster.local, name: httpbin, "
                       "namespace: default}\n"
                       "  endpoints:\n  - {address: 127.0.0.1, port: " +
                       std::to_string(hb_.port) + "}\n";
    proxy_ = startProxy(dir_, yaml, {"http", "https"}, 2);
    port_ = proxy_.listeners["http"];
    tls_port_ = proxy_.listeners["https"];
  }

  std::pair<int, std::string> curl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "--max-time", "8"};
    argv.insert(argv.end(), args.begin(), args.end());
    return runTool(dir_, argv);
  }

  std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // A plain HTTP/2 request still works (the proxy serves others after an abuse).
  void expectServing() {
    auto [rc, out] = curl({"--http2-prior-knowledge", "-o", "/dev/null", "-w",
                           "%{http_version} %{http_code}", url("/headers")});
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "2 200");
  }

  TempDir dir_;
  TestCa ca_{"h2 test root"};
  Httpbin hb_;
  Proxy proxy_;
  std::string log_path_, tls_log_path_;  // each listener logs to its own file
  uint16_t port_ = 0, tls_port_ = 0;
};

TEST_F(Http2IntegrationTest, CurlPriorKnowledgeIsRoutedAndForwardedAsHttp11) {
  auto [rc, out] = curl({"--http2-prior-knowledge", "-w", "\n%{http_version} %{http_code}", "-H",
                         "cookie: a=1", "-H", "cookie: b=2", url("/headers")});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("\n2 200"));
  // h2 -> h1: :authority became Host, the split cookies one field, the router's headers added.
  EXPECT_THAT(out, HasSubstr("\"host\":\"127.0.0.1:" + std::to_string(port_) + "\""));
  EXPECT_THAT(out, HasSubstr("\"cookie\":\"a=1; b=2\""));
  EXPECT_THAT(out, HasSubstr("\"x-forwarded-proto\":\"http\""));
  EXPECT_THAT(out, HasSubstr("\"x-request-id\""));

  // A body both ways (100 KB, more than one window), byte for byte.
  std::string body;
  for (int i = 0; i < 100000; ++i) body.push_back(static_cast<char>('a' + i % 26));
  writeFileAtomic(dir_.file("body.bin"), body);
  auto [rc2, out2] =
      curl({"--http2-prior-knowledge", "--data-binary", "@" + dir_.file("body.bin"), "-o",
            dir_.file("echo.bin"), "-w", "%{http_version} %{http_code}", url("/echo")});
  ASSERT_EQ(rc2, 0) << out2;
  EXPECT_EQ(out2, "2 200");
  EXPECT_EQ(readFile(dir_.file("echo.bin")), body);

  // The access log says HTTP/2.
  std::string log;
  auto deadline = Clock::now() + milliseconds(5000);
  while (countOf(log, "\"protocol\":\"HTTP/2\"") < 2 && Clock::now() < deadline) {
    log = readFile(log_path_);
  }
  EXPECT_GE(countOf(log, "\"protocol\":\"HTTP/2\""), 2u) << log;
}

// A capture port's listener (http and tcpProxy: protocol detection) takes the HTTP/2
// connection preface for HTTP, so an h2c client gets the router (here its fault abort), not a
// byte relay to the cluster.
TEST_F(Http2IntegrationTest, ProtocolDetectionHandsTheH2PrefaceToTheRouter) {
  TempDir d;
  std::string yaml = proxyPreamble() +
                     "listeners:\n- name: detect\n  address: 127.0.0.1:0\n"
                     "  http: {routeConfigName: r}\n  tcpProxy: {cluster: v1}\n"
                     "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: default\n"
                     "    domains: [\"*\"]\n    routes:\n    - match: {prefix: /}\n"
                     "      route: {cluster: v1}\n      fault: {abort: {httpStatus: 418}}\n"
                     "clusters:\n- name: v1\n  endpoints:\n  - {address: 127.0.0.1, port: " +
                     std::to_string(hb_.port) + "}\n";
  Proxy p = startProxy(d, yaml, {"detect"});
  const std::string u = "http://127.0.0.1:" + std::to_string(p.listeners["detect"]) + "/headers";
  auto [rc, out] =
      curl({"--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", u});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "2 418");
  auto [rc2, out2] =
      curl({"--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", u});
  ASSERT_EQ(rc2, 0) << out2;
  EXPECT_EQ(out2, "1.1 418");
}

TEST_F(Http2IntegrationTest, RouterBehaviourPerStream) {
  // Fault abort, route timeout and CORS, each on an HTTP/2 stream.
  auto [rc, out] = curl({"--http2-prior-knowledge", "-w", "\n%{http_code}", url("/abort")});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "fault filter abort\n503");
  auto [rc2, out2] = curl({"--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}",
                           url("/slow/delay/5000")});
  ASSERT_EQ(rc2, 0) << out2;
  EXPECT_EQ(out2, "504");
  auto [rc3, out3] = curl({"--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", "-H",
                           "origin: https://app.test", url("/headers")});
  ASSERT_EQ(rc3, 0) << out3;
  EXPECT_THAT(out3, HasSubstr("HTTP/2 200"));
  EXPECT_THAT(out3, HasSubstr("access-control-allow-origin: https://app.test"));
  // No HTTP/1.1 connection-specific field leaks into the HTTP/2 response.
  EXPECT_THAT(out3, ::testing::Not(HasSubstr("transfer-encoding")));
  EXPECT_THAT(out3, ::testing::Not(HasSubstr("connection:")));
  std::string m = waitForPage(proxy_.prometheus, "/stats/prometheus", [](const std::string& t) {
    return promSum(t, "istio_requests_total", {"response_code=\"504\""}) >= 1;
  });
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"504\"", "response_flags=\"UT\""}),
            1);
  EXPECT_EQ(promSum(m, "istio_requests_total", {"response_code=\"503\"", "response_flags=\"FI\""}),
            1);
}

// Streams one after another on one connection: each stream's router is the one the stream
// before left to the worker (HttpConnection::forStream), and nothing of that stream (a fault's
// local reply, a fired route timer, CORS headers, access-log fields) reaches the next one.
// Over TLS with ALPN: curl 7.88 cannot reuse a prior-knowledge h2c connection (curl #10634).
TEST_F(Http2IntegrationTest, LaterStreamsOnKeptRoutersStartClean) {
  writeFileAtomic(dir_.file("ca.pem"), ca_.certPem());
  const std::string resolve = "localhost:" + std::to_string(tls_port_) + ":127.0.0.1";
  std::vector<std::string> args;
  auto add = [&](const std::string& path, std::vector<std::string> extra) {
    if (!args.empty()) args.push_back("--next");
    for (const std::string& a :
         {std::string("--http2"), std::string("-sS"), std::string("--max-time"), std::string("8"),
          std::string("--cacert"), dir_.file("ca.pem"), std::string("--resolve"), resolve,
          std::string("-D"), std::string("-"), std::string("-o"), std::string("/dev/null"),
          std::string("-w"), std::string("connects=%{num_connects}\n")}) {
      args.push_back(a);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back("https://localhost:" + std::to_string(tls_port_) + path);
  };
  add("/abort", {});
  add("/headers", {"-H", "origin: https://app.test"});
  add("/slow/delay/5000", {});
  add("/headers", {});
  add("/status/418", {});
  add("/headers", {"-H", "origin: https://app.test"});
  auto [rc, out] = curl(args);
  ASSERT_EQ(rc, 0) << out;
  // One header block per response, in order.
  std::vector<std::string> heads;
  for (size_t at = out.find("HTTP/2 "); at != std::string::npos;) {
    size_t next = out.find("HTTP/2 ", at + 1);
    heads.push_back(out.substr(at, next == std::string::npos ? std::string::npos : next - at));
    at = next;
  }
  ASSERT_EQ(heads.size(), 6u) << out;
  EXPECT_EQ(countOf(out, "connects=1\n"), 1u) << out;  // one connection for all six
  EXPECT_EQ(countOf(out, "connects=0\n"), 5u) << out;
  EXPECT_EQ(heads[0].rfind("HTTP/2 503", 0), 0u) << heads[0];
  EXPECT_EQ(heads[1].rfind("HTTP/2 200", 0), 0u) << heads[1];
  EXPECT_THAT(heads[1], HasSubstr("access-control-allow-origin: https://app.test"));
  EXPECT_EQ(heads[2].rfind("HTTP/2 504", 0), 0u) << heads[2];
  EXPECT_EQ(heads[3].rfind("HTTP/2 200", 0), 0u) << heads[3];
  EXPECT_THAT(heads[3], ::testing::Not(HasSubstr("access-control")));
  EXPECT_EQ(heads[4].rfind("HTTP/2 418", 0), 0u) << heads[4];
  EXPECT_THAT(heads[4], ::testing::Not(HasSubstr("access-control")));
  EXPECT_EQ(heads[5].rfind("HTTP/2 200", 0), 0u) << heads[5];
  EXPECT_THAT(heads[5], HasSubstr("access-control-allow-origin: https://app.test"));
  // The access log has each request with its own path, code and flags (in the order they
  // ended, which a route timeout may change).
  std::string log;
  auto deadline = Clock::now() + milliseconds(5000);
  while (countOf(log, "\n") < 6 && Clock::now() < deadline) log = readFile(tls_log_path_);
  auto value = [](const std::string& line, const std::string& name) {
    size_t at = line.find("\"" + name + "\":");
    if (at == std::string::npos) return std::string("?");
    at += name.size() + 3;
    if (line[at] == '"') ++at;
    return line.substr(at, line.find_first_of("\",}", at) - at);
  };
  std::vector<std::string> seen;
  for (size_t b = 0, e; (e = log.find('\n', b)) != std::string::npos; b = e + 1) {
    std::string line = log.substr(b, e - b);
    EXPECT_THAT(line, HasSubstr("\"protocol\":\"HTTP/2\""));
    seen.push_back(value(line, "path") + " " + value(line, "response_code") + " " +
                   value(line, "response_flags"));
  }
  std::sort(seen.begin(), seen.end());
  std::vector<std::string> want = {"/abort 503 FI",           "/headers 200 -",
                                   "/headers 200 -",          "/headers 200 -",
                                   "/slow/delay/5000 504 UT", "/status/418 418 -"};
  EXPECT_EQ(seen, want) << log;
  // The plaintext listener's own log file has none of them.
  EXPECT_EQ(readFile(log_path_).find("/status/418"), std::string::npos);
}

TEST_F(Http2IntegrationTest, CurlOverTlsNegotiatesH2ByAlpn) {
  std::string u = "https://localhost:" + std::to_string(tls_port_) + "/headers";
  std::string resolve = "localhost:" + std::to_string(tls_port_) + ":127.0.0.1";
  writeFileAtomic(dir_.file("ca.pem"), ca_.certPem());
  auto [rc, out] = curl({"--http2", "--cacert", dir_.file("ca.pem"), "--resolve", resolve, "-w",
                         "\n%{http_version} %{http_code}", u});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("\n2 200"));
  // The upstream is told the client came over TLS.
  EXPECT_THAT(out, HasSubstr("\"x-forwarded-proto\":\"https\""));
  // A client without h2 in its ALPN stays on HTTP/1.1.
  auto [rc2, out2] = curl({"--http1.1", "--cacert", dir_.file("ca.pem"), "--resolve", resolve, "-w",
                           "\n%{http_version} %{http_code}", u});
  ASSERT_EQ(rc2, 0) << out2;
  EXPECT_THAT(out2, HasSubstr("\n1.1 200"));
  EXPECT_THAT(out2, HasSubstr("\"x-forwarded-proto\":\"https\""));
}

TEST_F(Http2IntegrationTest, H2loadAllSucceed) {
  for (const std::string& target :
       {url("/headers"), "https://127.0.0.1:" + std::to_string(tls_port_) + "/headers"}) {
    auto [rc, out] =
        runTool(dir_, {"/usr/bin/h2load", "-n", "2000", "-c", "4", "-m", "10", target});
    ASSERT_EQ(rc, 0) << out;
    EXPECT_THAT(out, HasSubstr("status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx")) << out;
    EXPECT_THAT(out, HasSubstr("2000 succeeded")) << out;
  }
}

// A reader that does not read: the proxy holds at most about a window per stream, so a 64 MB
// response does not end up in its memory; once the client reads, all of it arrives.
TEST_F(Http2IntegrationTest, SlowReaderBackPressuresTheUpstream) {
  const uint64_t before = rssKb(proxy_.process->pid());
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  const uint64_t total = 64u << 20;
  c.send(h2::frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream, 1,
                   h2::requestBlock("GET", "/bytes/" + std::to_string(total))));
  // For a second, read nothing and watch the proxy's memory.
  uint64_t peak = before;
  auto until = Clock::now() + milliseconds(1000);
  while (Clock::now() < until) {
    peak = std::max(peak, rssKb(proxy_.process->pid()));
    ::poll(nullptr, 0, 20);
  }
  EXPECT_LT(peak - before, kMaxRssGrowthKb);
  // Now read it all, opening the windows as we go.
  uint64_t got = 0;
  bool ended = false;
  while (!ended) {
    auto f = c.read(milliseconds(10000));
    ASSERT_TRUE(f.has_value()) << "after " << got << " bytes";
    if (f->type == h2::kData) {
      got += f->payload.size();
      ended = (f->flags & h2::kEndStream) != 0;
      if (!f->payload.empty()) {
        c.send(h2::windowUpdate(0, static_cast<uint32_t>(f->payload.size())) +
               h2::windowUpdate(1, static_cast<uint32_t>(f->payload.size())));
      }
    }
    if (f->type == h2::kRstStream || f->type == h2::kGoaway) FAIL() << "stream ended early";
    peak = std::max(peak, rssKb(proxy_.process->pid()));
  }
  EXPECT_EQ(got, total);
  EXPECT_LT(peak - before, kMaxRssGrowthKb);
}

// Upstream HTTP/2: a front proxy whose cluster is `http2: true` in front of the fixture's proxy
// (which takes h2c) in front of httpbin. HTTP/1.1 and HTTP/2 clients both go through; streams
// share one upstream connection; maxRequestsPerConnection rolls connections over.
TEST_F(Http2IntegrationTest, UpstreamHttp2MultiplexesStreamsOnPooledConnections) {
  std::string yaml = proxyPreamble() +
                     "listeners:\n- name: front\n  address: 127.0.0.1:0\n"
                     "  http: {routeConfigName: r}\n"
                     "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: default\n"
                     "    domains: [\"*\"]\n    routes:\n"
                     "    - match: {prefix: /rolled/}\n"
                     "      route: {cluster: rolled, prefixRewrite: /}\n"
                     "    - match: {prefix: /slow/}\n"
                     "      route: {cluster: h2, prefixRewrite: /, timeout: 300ms}\n"
                     "    - match: {prefix: /}\n      route: {cluster: h2}\n"
                     "clusters:\n"
                     "- name: h2\n  http2: true\n"
                     "  endpoints:\n  - {address: 127.0.0.1, port: " +
                     std::to_string(port_) +
                     "}\n"
                     "- name: rolled\n  http2: true\n  maxRequestsPerConnection: 10\n"
                     "  endpoints:\n  - {address: 127.0.0.1, port: " +
                     std::to_string(port_) + "}\n";
  TempDir front_dir;
  Proxy front = startProxy(front_dir, yaml, {"front"}, 1);
  const std::string base = "http://127.0.0.1:" + std::to_string(front.listeners["front"]);

  // HTTP/1.1 in, HTTP/2 between the proxies: a body both ways, byte for byte.
  std::string body;
  for (int i = 0; i < 300000; ++i) body.push_back(static_cast<char>('A' + i % 23));
  writeFileAtomic(dir_.file("up.bin"), body);
  auto [rc, out] = curl({"--data-binary", "@" + dir_.file("up.bin"), "-o", dir_.file("down.bin"),
                         "-w", "%{http_version} %{http_code}", base + "/echo"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "1.1 200");
  EXPECT_EQ(readFile(dir_.file("down.bin")), body);
  // The hop between the proxies was HTTP/2 (the inner proxy's access log says so).
  std::string log = readFile(log_path_);
  EXPECT_THAT(log, HasSubstr("\"method\":\"POST\",\"path\":\"/echo\",\"protocol\":\"HTTP/2\""));

  // Many concurrent requests from both protocols; with one worker, one upstream connection.
  for (const std::vector<std::string>& extra : {std::vector<std::string>{"--h1", "-c", "8"},
                                                std::vector<std::string>{"-c", "4", "-m", "10"}}) {
    std::vector<std::string> argv = {"/usr/bin/h2load", "-n", "2000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(base + "/headers");
    auto [rc2, out2] = runTool(dir_, argv);
    ASSERT_EQ(rc2, 0) << out2;
    EXPECT_THAT(out2, HasSubstr("status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx")) << out2;
  }
  std::string m = httpGet(front.prometheus, "/stats/prometheus").body;
  EXPECT_EQ(promSum(m, "envoy_cluster_upstream_cx_total", {"cluster_name=\"h2\""}), 1) << m;

  // A route timeout resets the stream, not the connection.
  auto [rc3, out3] = curl({"-o", "/dev/null", "-w", "%{http_code}", base + "/slow/delay/5000"});
  EXPECT_EQ(out3, "504");
  auto [rc4, out4] = curl({"-o", "/dev/null", "-w", "%{http_code}", base + "/headers"});
  EXPECT_EQ(out4, "200");
  m = httpGet(front.prometheus, "/stats/prometheus").body;
  EXPECT_EQ(promSum(m, "envoy_cluster_upstream_cx_total", {"cluster_name=\"h2\""}), 1) << m;

  // maxRequestsPerConnection 10: 50 sequential requests need 5 connections.
  HttpClient c(front.listeners["front"]);
  for (int i = 0; i < 50; ++i) {
    HttpResponse r = c.get("/rolled/headers");
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_EQ(r.status, 200);
  }
  m = httpGet(front.prometheus, "/stats/prometheus").body;
  EXPECT_EQ(promSum(m, "envoy_cluster_upstream_cx_total", {"cluster_name=\"rolled\""}), 5) << m;
}

// Upstream h2 over TLS: the cluster offers h2 by ALPN and verifies the server; the fixture's
// TLS listener agrees to h2.
TEST_F(Http2IntegrationTest, UpstreamHttp2OverTlsByAlpn) {
  writeFileAtomic(dir_.file("ca.pem"), ca_.certPem());
  std::string yaml = proxyPreamble() +
                     "listeners:\n- name: front\n  address: 127.0.0.1:0\n"
                     "  http: {routeConfigName: r}\n"
                     "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: default\n"
                     "    domains: [\"*\"]\n    routes:\n"
                     "    - match: {prefix: /}\n      route: {cluster: h2tls}\n"
                     "clusters:\n- name: h2tls\n  http2: true\n"
                     "  tls: {sni: localhost, trustedCa: " +
                     dir_.file("ca.pem") +
                     ", subjectAltNames: [localhost]}\n"
                     "  endpoints:\n  - {address: 127.0.0.1, port: " +
                     std::to_string(tls_port_) + "}\n";
  TempDir front_dir;
  Proxy front = startProxy(front_dir, yaml, {"front"}, 1);
  auto [rc, out] =
      runTool(dir_, {"/usr/bin/h2load", "--h1", "-n", "300", "-c", "4",
                     "http://127.0.0.1:" + std::to_string(front.listeners["front"]) + "/headers"});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("status codes: 300 2xx, 0 3xx, 0 4xx, 0 5xx")) << out;
  std::string m = httpGet(front.prometheus, "/stats/prometheus").body;
  EXPECT_EQ(promSum(m, "envoy_cluster_upstream_cx_total", {"cluster_name=\"h2tls\""}), 1) << m;
  EXPECT_EQ(promSum(m, "envoy_cluster_ssl_handshake", {"cluster_name=\"h2tls\""}), 1) << m;
}

// ---------------------------------------------------------------------------------------------
// Abuse: each pattern ends in GOAWAY (code checked), then EOF; memory stays bounded.

class Http2AbuseTest : public Http2IntegrationTest {
 protected:
  void SetUp() override {
    Http2IntegrationTest::SetUp();
    rss_before_ = rssKb(proxy_.process->pid());
  }
  void TearDown() override {
    EXPECT_LT(rssKb(proxy_.process->pid()) - rss_before_, kMaxRssGrowthKb);
    expectServing();
  }
  uint64_t rss_before_ = 0;
};

TEST_F(Http2AbuseTest, PingFloodFromAPeerThatDoesNotRead) {
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  size_t sent = c.flood(h2::ping(1), 2000000);
  EXPECT_GT(sent, 1000u);
  EXPECT_EQ(c.goawayThenEof(), h2::kEnhanceYourCalm);
  EXPECT_TRUE(c.eof());
}

TEST_F(Http2AbuseTest, SettingsFlood) {
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  size_t sent = c.flood(h2::settings(), 2000000);
  EXPECT_GT(sent, 1000u);
  EXPECT_EQ(c.goawayThenEof(), h2::kEnhanceYourCalm);
  EXPECT_TRUE(c.eof());
}

TEST_F(Http2AbuseTest, RapidResetCve2023_44487) {
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  std::string burst;
  for (uint32_t id = 1; id < 2 * 400; id += 2) {
    burst += h2::frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream, id,
                       h2::requestBlock("GET", "/delay/1000"));
    burst += h2::rstStream(id, h2::kCancel);
  }
  c.sendSome(burst, milliseconds(2000));
  EXPECT_EQ(c.goawayThenEof(), h2::kEnhanceYourCalm);
  EXPECT_TRUE(c.eof());
}

TEST_F(Http2AbuseTest, ContinuationFlood) {
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  std::string block = h2::requestBlock("GET", "/headers");
  std::string more;
  h2::hpackLiteral(more, "x-filler", std::string(100, 'a'));
  c.send(h2::frame(h2::kHeaders, 0, 1, block));
  c.flood(h2::frame(h2::kContinuation, 0, 1, more), 100000);
  EXPECT_EQ(c.goawayThenEof(), h2::kEnhanceYourCalm);
  EXPECT_TRUE(c.eof());
}

TEST_F(Http2AbuseTest, HeaderListOverTheLimit) {
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  // 80 KB of fields (the limit is 60 KB) in a HEADERS frame and four CONTINUATIONs.
  std::string block = h2::requestBlock("GET", "/headers");
  for (int i = 0; i < 20; ++i)
    h2::hpackLiteral(block, "x-big-" + std::to_string(i), std::string(4000, 'b'));
  std::string frames;
  size_t off = 0;
  bool first = true;
  while (off < block.size()) {
    size_t n = std::min<size_t>(16000, block.size() - off);
    bool last = off + n == block.size();
    frames +=
        h2::frame(first ? h2::kHeaders : h2::kContinuation,
                  static_cast<uint8_t>((last ? h2::kEndHeaders : 0) | (first ? h2::kEndStream : 0)),
                  1, block.substr(off, n));
    first = false;
    off += n;
  }
  c.send(frames);
  EXPECT_EQ(c.goawayThenEof(), h2::kEnhanceYourCalm);
  EXPECT_TRUE(c.eof());
}

TEST_F(Http2AbuseTest, EmptyDataFrameFlood) {
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  c.send(h2::frame(h2::kHeaders, h2::kEndHeaders, 1, h2::requestBlock("POST", "/echo")));
  c.flood(h2::frame(h2::kData, 0, 1, ""), 100000);
  EXPECT_EQ(c.goawayThenEof(), h2::kEnhanceYourCalm);
  EXPECT_TRUE(c.eof());
}

TEST_F(Http2AbuseTest, StreamsOverTheConcurrencyLimitAreRefusedThenTheConnectionEnds) {
  RawH2 c(port_);
  ASSERT_TRUE(c.connected());
  c.start();
  // 100 open requests (bodies never sent), then more: refused with REFUSED_STREAM, and a client
  // that keeps opening them is told to calm down.
  std::string burst;
  for (uint32_t i = 0; i <= 100; ++i) {
    burst += h2::frame(h2::kHeaders, h2::kEndHeaders, 1 + 2 * i, h2::requestBlock("POST", "/echo"));
  }
  c.send(burst);
  // The 101st is refused; the others stay open.
  std::optional<h2::Frame> rst;
  while (auto f = c.read()) {
    if (f->type == h2::kRstStream) {
      rst = f;
      break;
    }
  }
  ASSERT_TRUE(rst.has_value());
  EXPECT_EQ(rst->stream, 201u);
  EXPECT_EQ(rst->errorCode(), h2::kRefusedStream);
  burst.clear();
  for (uint32_t i = 101; i < 400; ++i) {
    burst += h2::frame(h2::kHeaders, h2::kEndHeaders, 1 + 2 * i, h2::requestBlock("POST", "/echo"));
  }
  c.sendSome(burst, milliseconds(2000));
  EXPECT_EQ(c.goawayThenEof(), h2::kEnhanceYourCalm);
  EXPECT_TRUE(c.eof());
}

}  // namespace
}  // namespace mesh::integration
