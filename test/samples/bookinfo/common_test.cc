// The Bookinfo client against scripted upstreams (framing, timeouts, failures) and header
// propagation.
#include "samples/bookinfo/common.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/testing/loopback_socket.h"

namespace mesh::bookinfo {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;

using mesh::testing::LoopbackSocket;

// Accepts one connection on a listening loopback socket, reads the request head, writes
// `response` and closes.
class ScriptedUpstream {
 public:
  explicit ScriptedUpstream(std::string response)
      : thread_([this, response = std::move(response)] { serve(response); }) {}
  ~ScriptedUpstream() {
    if (thread_.joinable()) thread_.join();
  }

  std::string address() const { return socket_.address(); }
  // The request head the client sent (after the exchange).
  std::string request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  void serve(const std::string& response) {
    // Bounded: when no client comes, the test fails on the client side.
    if (!socket_.waitForConnection(milliseconds(5000))) return;
    int c = ::accept(socket_.fd(), nullptr, nullptr);
    if (c < 0) return;
    char buf[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 5000) != 1) break;
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      request_.append(buf, static_cast<size_t>(n));
    }
    ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
    ::close(c);
  }

  LoopbackSocket socket_{LoopbackSocket::Mode::kListening};
  std::string request_;
  std::thread thread_;  // last: starts once the socket exists
};

Upstream upstreamAt(const std::string& address, milliseconds timeout = milliseconds(3000)) {
  return Upstream{address, "reviews:9080", timeout};
}

TEST(BookinfoClientTest, ReadsAChunkedBody) {
  ScriptedUpstream up(
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-version: v2\r\n\r\n"
      "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n");
  auto r = httpGet(upstreamAt(up.address()), "/reviews/0", {{"end-user", "jason"}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello, world");
  EXPECT_EQ(findHeader(r->headers, "X-Version"), "v2");
  std::string sent = up.request();
  EXPECT_THAT(sent, HasSubstr("GET /reviews/0 HTTP/1.1\r\nHost: reviews:9080\r\n"));
  EXPECT_THAT(sent, HasSubstr("end-user: jason\r\n"));
}

TEST(BookinfoClientTest, ReadsContentLengthAndCloseDelimitedBodies) {
  ScriptedUpstream sized("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown");
  auto a = httpGet(upstreamAt(sized.address()), "/", {});
  ASSERT_TRUE(a.ok()) << a.status().toString();
  EXPECT_EQ(a->status, 503);
  EXPECT_EQ(a->body, "down");

  ScriptedUpstream until_close("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{\"id\":0}");
  auto b = httpGet(upstreamAt(until_close.address()), "/", {});
  ASSERT_TRUE(b.ok()) << b.status().toString();
  EXPECT_EQ(b->body, "{\"id\":0}");
}

TEST(BookinfoClientTest, NeverSendsAHeaderThatWouldSplitTheRequest) {
  ScriptedUpstream up("HTTP/1.1 204 No Content\r\n\r\n");
  auto r = httpGet(upstreamAt(up.address()), "/",
                   {{"end-user", "eve\r\nx-injected: 1"}, {"x-request-id", "ok"}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->status, 204);
  std::string sent = up.request();
  EXPECT_THAT(sent, Not(HasSubstr("x-injected")));
  EXPECT_THAT(sent, HasSubstr("x-request-id: ok\r\n"));
}

TEST(BookinfoClientTest, FailuresAreStatuses) {
  LoopbackSocket refused(LoopbackSocket::Mode::kBoundOnly);
  auto a = httpGet(upstreamAt(refused.address()), "/", {});
  EXPECT_EQ(a.status().code(), StatusCode::kUnavailable) << a.status().toString();
  EXPECT_THAT(a.status().message(), HasSubstr("connect to"));

  ScriptedUpstream truncated("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
  auto b = httpGet(upstreamAt(truncated.address()), "/", {});
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable) << b.status().toString();
  EXPECT_THAT(b.status().message(), HasSubstr("closed before a complete response"));

  ScriptedUpstream garbage("SMTP ready\r\n\r\n");
  auto c = httpGet(upstreamAt(garbage.address()), "/", {});
  EXPECT_EQ(c.status().code(), StatusCode::kInternal) << c.status().toString();
  EXPECT_THAT(c.status().message(), HasSubstr("bad response"));

  auto d = httpGet(upstreamAt(""), "/", {});
  EXPECT_EQ(d.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(d.status().message(), HasSubstr("no upstream address"));
}

TEST(BookinfoClientTest, TimesOutOnAHungUpstream) {
  LoopbackSocket hung(LoopbackSocket::Mode::kListening);
  auto start = std::chrono::steady_clock::now();
  auto r = httpGet(upstreamAt(hung.address(), milliseconds(200)), "/", {});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().toString();
  EXPECT_THAT(r.status().message(), HasSubstr("timed out after 200 ms"));
  EXPECT_GE(elapsed, milliseconds(200));
  EXPECT_LT(elapsed, milliseconds(3000));
}

TEST(BookinfoPropagationTest, KeepsIstiosHeadersAndDropsTheRest) {
  ServerRequest req;
  req.headers = {{"X-Request-Id", "r1"},         {"traceparent", "00-ab-cd-01"},
                 {"x-b3-sampled", "1"},          {"x-datadog-parent-id", "7"},
                 {"Cookie", "user=jason"},       {"end-user", "jason"},
                 {"content-length", "0"},        {"host", "productpage:9080"},
                 {"x-forwarded-for", "10.0.0.1"}};
  HeaderVector out = propagatedHeaders(req);
  EXPECT_EQ(out, (HeaderVector{{"X-Request-Id", "r1"},
                               {"traceparent", "00-ab-cd-01"},
                               {"x-b3-sampled", "1"},
                               {"x-datadog-parent-id", "7"},
                               {"Cookie", "user=jason"},
                               {"end-user", "jason"}}));
}

TEST(BookinfoRoutesTest, HealthIdsAndOtherPaths) {
  Handler h = productRoutes("Details", "/details/", [](const ServerRequest&, int id) {
    return ServerResponse{200, "application/json", std::to_string(id), {}};
  });
  auto get = [&](std::string path) {
    ServerRequest r;
    r.method = "GET";
    r.path = std::move(path);
    return h(r);
  };
  EXPECT_EQ(get("/health").body, "{\"status\":\"Details is healthy\"}");
  EXPECT_EQ(get("/details/42").body, "42");
  EXPECT_EQ(get("/details/x").status, 400);
  EXPECT_EQ(get("/details/x").body, "{\"error\":\"please provide numeric product ID\"}");
  EXPECT_EQ(get("/reviews/0").status, 404);
}

TEST(BookinfoTextTest, EscapesAndIds) {
  EXPECT_EQ(htmlEscape("<b>\"a\" & 'b'</b>"), "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;");
  EXPECT_EQ(jsonQuote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
  int id = -1;
  EXPECT_TRUE(parseProductId("0", &id));
  EXPECT_EQ(id, 0);
  EXPECT_FALSE(parseProductId("", &id));
  EXPECT_FALSE(parseProductId("-1", &id));
  EXPECT_FALSE(parseProductId("1x", &id));
}

}  // namespace
}  // namespace mesh::bookinfo
