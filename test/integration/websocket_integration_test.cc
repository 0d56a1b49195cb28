// WebSocket through the real proxy: a real RFC 6455 handshake and frames echoed by a backend the
// test scripts (scripted_backend.h). After the upstream's 101 the connection is a byte tunnel
// both ways (a frame larger than the proxy's buffers, half-close each way); a non-101 answer
// is an ordinary response and the connection stays HTTP; an idle tunnel is closed after the
// listener's idleTimeout; the tunnel is one request in Istio's metrics, recorded when it ends.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

#include "test/integration/harness.h"
#include "test/integration/scripted_backend.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;

class WebSocketIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = std::make_unique<ScriptedBackend>([](const BackendRequest& req) {
      std::string connection = req.header("connection");
      for (char& ch : connection) ch = static_cast<char>(std::tolower(ch));
      if (req.target == "/chat" && req.header("upgrade") == "websocket" &&
          connection.find("upgrade") != std::string::npos) {
        return ScriptedBackend::websocketUpgrade(req);
      }
      if (req.target == "/hop") {
        // What arrived of the client's fields, and a field this hop names in Connection.
        BackendReply r;
        std::string body =
            "secret=[" + req.header("x-secret") + "] other=[" + req.header("x-other") + "]\n";
        r.bytes =
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, X-Internal\r\n"
            "x-internal: hop\r\nx-kept: end\r\ncontent-length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
        return r;
      }
      if (req.target == "/forbidden") {
        BackendReply r;
        r.bytes = "HTTP/1.1 403 Forbidden\r\ncontent-length: 7\r\n\r\nno ws!\n";
        return r;
      }
      BackendReply r;
      std::string body =
          "upgrade=[" + req.header("upgrade") + "] connection=[" + req.header("connection") + "]\n";
      r.bytes =
          "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
      return r;
    });
  }

  void startProxy(const std::string& idle_timeout = "") {
    std::string yaml = proxyPreamble() +
                       "listeners:\n- name: http\n  address: 127.0.0.1:0\n"
                       "  http: {routeConfigName: r" +
                       (idle_timeout.empty() ? "" : ", idleTimeout: " + idle_timeout) +
                       "}\n"
                       "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: all\n"
                       "    domains: [\"*\"]\n    routes:\n"
                       "    - match: {prefix: /}\n      route: {cluster: backend, timeout: 1s}\n"
                       "clusters:\n- name: backend\n"
                       "  service: {host: ws.default.svc.cluster.local, name: ws, "
                       "namespace: default}\n"
                       "  endpoints: [{address: 127.0.0.1, port: " +
                       std::to_string(backend_->port()) + "}]\n";
    proxy_ = mesh::integration::startProxy(dir_, yaml, {"http"});
    port_ = proxy_.listeners["http"];
  }

  std::string metricsWhen(const std::vector<std::string>& labels, double at_least) {
    return waitForPage(proxy_.prometheus, "/stats/prometheus", [&](const std::string& m) {
      return promSum(m, "istio_requests_total", labels) >= at_least;
    });
  }

  TempDir dir_;
  std::unique_ptr<ScriptedBackend> backend_;
  Proxy proxy_;
  uint16_t port_ = 0;
};

// RFC 9110 7.6.1: fields named in Connection are this hop's and are not forwarded, either way;
// the next request on the connection, naming none, has its fields forwarded.
TEST_F(WebSocketIntegrationTest, FieldsNamedInConnectionStopAtTheProxy) {
  startProxy();
  HttpClient c(port_);
  HttpResponse r = c.roundTrip(
      "GET /hop HTTP/1.1\r\nHost: test.local\r\nConnection: keep-alive, X-Secret\r\n"
      "X-Secret: 1\r\nX-Other: 2\r\n\r\n",
      milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.body, "secret=[] other=[2]\n");
  EXPECT_EQ(r.header("x-internal"), "");
  EXPECT_EQ(r.header("x-kept"), "end");
  r = c.roundTrip("GET /hop HTTP/1.1\r\nHost: test.local\r\nX-Secret: 3\r\n\r\n",
                  milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.body, "secret=[3] other=[]\n");
}

TEST_F(WebSocketIntegrationTest, HandshakeFramesAndCloseThroughTheProxy) {
  startProxy();
  RawClient c(port_);
  ASSERT_TRUE(c.connected());
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455's example
  ASSERT_TRUE(c.send(websocketHandshake(key)));
  std::string head = c.readHead();
  ASSERT_THAT(head, HasSubstr("HTTP/1.1 101 ")) << head;
  EXPECT_THAT(head, HasSubstr("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) << head;
  EXPECT_THAT(head, HasSubstr("upgrade: websocket\r\n")) << head;
  EXPECT_THAT(head, HasSubstr("connection: upgrade\r\n")) << head;
  EXPECT_THAT(head, ::testing::Not(HasSubstr("transfer-encoding"))) << head;

  // Text, binary and ping frames echo; one frame far larger than the proxy's 16 KiB reads.
  std::string big(300 * 1024, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  const std::vector<std::pair<uint8_t, std::string>> frames = {
      {0x1, "hello"}, {0x2, std::string("\x00\x01\xff", 3)}, {0x1, big}};
  for (const auto& [op, payload] : frames) {
    ASSERT_TRUE(c.send(websocketClientFrame(op, payload)));
    uint8_t got_op = 0;
    std::string got;
    ASSERT_TRUE(c.readFrame(&got_op, &got)) << "no echo for a frame of " << payload.size();
    EXPECT_EQ(got_op, op);
    EXPECT_EQ(got, payload);
  }
  ASSERT_TRUE(c.send(websocketClientFrame(0x9, "ping")));
  uint8_t op = 0;
  std::string payload;
  ASSERT_TRUE(c.readFrame(&op, &payload));
  EXPECT_EQ(op, 0xA);
  EXPECT_EQ(payload, "ping");

  // Close: the client sends its close frame and its FIN at once (half-close); the server's
  // close frame still arrives, then the server's FIN.
  ASSERT_TRUE(c.send(websocketClientFrame(0x8, std::string("\x03\xe8", 2))));
  c.shutdownWrite();
  ASSERT_TRUE(c.readFrame(&op, &payload));
  EXPECT_EQ(op, 0x8);
  EXPECT_EQ(payload, std::string("\x03\xe8", 2));
  EXPECT_TRUE(c.waitEof(milliseconds(5000)));

  // One request in Istio's metrics, code 101, recorded when both sides had closed.
  std::vector<std::string> labels = {"response_code=\"101\"", "response_flags=\"-\"",
                                     "request_protocol=\"http\""};
  std::string m = metricsWhen(labels, 1);
  EXPECT_EQ(promSum(m, "istio_requests_total", labels), 1) << m;
  EXPECT_EQ(promSum(m, "istio_requests_total"), 1) << m;
  EXPECT_GE(promSum(m, "istio_request_bytes_sum", labels), big.size()) << m;
  EXPECT_GE(promSum(m, "istio_response_bytes_sum", labels), big.size()) << m;
}

// 64 MiB each way in 1 MiB frames, through the proxy and (for comparison) straight to the
// backend; every byte must come back. Prints the rates (a measurement, not a threshold).
TEST_F(WebSocketIntegrationTest, BulkEchoThroughTheTunnel) {
  startProxy();
  std::string frame_payload(1 << 20, '\0');
  for (size_t i = 0; i < frame_payload.size(); ++i) {
    frame_payload[i] = static_cast<char>((i * 131) & 0xff);
  }
  const std::string frame = websocketClientFrame(0x2, frame_payload);
  auto run = [&](uint16_t port) -> double {
    RawClient c(port);
    EXPECT_TRUE(c.connected());
    EXPECT_TRUE(c.send(websocketHandshake("dGhlIHNhbXBsZSBub25jZQ==")));
    std::string head = c.readHead();
    if (head.find(" 101 ") == std::string::npos) {
      ADD_FAILURE() << "no 101 from port " << port << ": " << head;
      return 0;
    }
    auto start = Clock::now();
    for (int i = 0; i < 64; ++i) {
      EXPECT_TRUE(c.send(frame));
      uint8_t op = 0;
      std::string got;
      EXPECT_TRUE(c.readFrame(&op, &got, milliseconds(10000))) << i;
      if (got != frame_payload) {
        ADD_FAILURE() << "frame " << i << " came back different";
        return 0;
      }
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    return 64.0 / secs;
  };
  double proxied = run(port_);
  double direct = run(backend_->port());
  std::printf(
      "websocket echo, 64 x 1 MiB frames: through the proxy %.0f MiB/s each way, direct "
      "%.0f MiB/s\n",
      proxied, direct);
  EXPECT_GT(proxied, 0);
}

TEST_F(WebSocketIntegrationTest, NonSwitchingAnswerIsAnOrdinaryResponse) {
  startProxy();
  RawClient c(port_);
  ASSERT_TRUE(c.connected());
  std::string req = websocketHandshake("x3JJHMbDL1EzLkh9GBhXDw==");
  req.replace(req.find("/chat"), 5, "/forbidden");
  ASSERT_TRUE(c.send(req));
  std::string head = c.readHead();
  ASSERT_THAT(head, HasSubstr("HTTP/1.1 403 ")) << head;
  EXPECT_THAT(head, ::testing::Not(HasSubstr("upgrade"))) << head;
  while (c.buffered().size() < 7 && c.readSome(milliseconds(5000))) {
  }
  EXPECT_EQ(c.buffered(), "no ws!\n");
  c.buffered().clear();
  // Still HTTP: the next request on the same connection is served, and a plain request
  // carries no upgrade fields upstream.
  ASSERT_TRUE(c.send("GET /plain HTTP/1.1\r\nHost: ws.test\r\n\r\n"));
  head = c.readHead();
  ASSERT_THAT(head, HasSubstr("HTTP/1.1 200 ")) << head;
  while (c.buffered().find('\n') == std::string::npos && c.readSome(milliseconds(5000))) {
  }
  EXPECT_EQ(c.buffered(), "upgrade=[] connection=[]\n");
  // An h2c upgrade is not forwarded (Envoy drops it too): the backend sees a plain request.
  c.buffered().clear();
  ASSERT_TRUE(
      c.send("GET /plain HTTP/1.1\r\nHost: ws.test\r\nUpgrade: h2c\r\n"
             "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAA\r\n\r\n"));
  head = c.readHead();
  ASSERT_THAT(head, HasSubstr("HTTP/1.1 200 ")) << head;
  while (c.buffered().find('\n') == std::string::npos && c.readSome(milliseconds(5000))) {
  }
  EXPECT_EQ(c.buffered(), "upgrade=[] connection=[]\n");
}

TEST_F(WebSocketIntegrationTest, IdleTunnelIsClosedAfterTheIdleTimeout) {
  startProxy("1s");
  RawClient c(port_);
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(websocketHandshake("AQIDBAUGBwgJCgsMDQ4PEA==")));
  ASSERT_THAT(c.readHead(), HasSubstr("HTTP/1.1 101 "));
  // Traffic keeps it open past the timeout...
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send(websocketClientFrame(0x1, "keepalive")));
    uint8_t op;
    std::string payload;
    ASSERT_TRUE(c.readFrame(&op, &payload));
    // ...at a pace under the timeout (the echo's round trip, then the next frame).
  }
  // ...then nothing for longer than it: the proxy closes (within its 1 s sweep). The route's
  // 1 s timeout stopped at the 101: the flag is SI, not UT.
  auto start = Clock::now();
  EXPECT_TRUE(c.waitEof(milliseconds(5000)));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  EXPECT_GE(took, 900);
  std::vector<std::string> labels = {"response_code=\"101\"", "response_flags=\"SI\""};
  std::string m = metricsWhen(labels, 1);
  EXPECT_EQ(promSum(m, "istio_requests_total", labels), 1) << m;
}

}  // namespace
}  // namespace mesh::integration
