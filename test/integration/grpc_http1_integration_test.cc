// The proxy's gRPC semantics over HTTP/1.1 (HTTP/2 comes from the h2 branch): the real proxy in
// front of a backend scripted by the test that answers as a gRPC server would (trailers-only
// replies: content-type application/grpc and grpc-status in the headers). Covers retries on
// retryOn "unavailable", grpc-timeout shorter than the backend (DEADLINE_EXCEEDED from the
// proxy), fault abort with a gRPC status, gRPC-form local replies, and Istio's metrics
// (request_protocol="grpc", grpc_response_status) and access log.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <vector>

#include "test/integration/harness.h"
#include "test/integration/scripted_backend.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;

// A trailers-only gRPC answer: the call's status in the headers, no body.
BackendReply grpcReply(int status, const std::string& message = "") {
  BackendReply r;
  r.bytes = "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: " +
            std::to_string(status) + "\r\n" +
            (message.empty() ? "" : "grpc-message: " + message + "\r\n") +
            "content-length: 0\r\n\r\n";
  return r;
}

// A unary gRPC request over HTTP/1.1: one length-prefixed message (uncompressed, 3 bytes).
std::string grpcRequest(const std::string& path, const std::vector<std::string>& extra = {}) {
  const std::string message(
      "\x00\x00\x00\x00\x03"
      "abc",
      8);
  std::string r = "POST " + path +
                  " HTTP/1.1\r\nhost: grpc.test\r\ncontent-type: application/grpc\r\n"
                  "te: trailers\r\ncontent-length: " +
                  std::to_string(message.size()) + "\r\n";
  for (const auto& h : extra) r += h + "\r\n";
  return r + "\r\n" + message;
}

class GrpcHttp1IntegrationTest : public ::testing::Test {
 protected:
  // Failures per key ("x-key" header) before a success, and a delay per request.
  void SetUp() override {
    backend_ = std::make_unique<ScriptedBackend>([this](const BackendRequest& req) {
      if (req.target == "/test.Echo/Slow") {
        BackendReply r = grpcReply(0);
        r.delay_ms = 2000;
        return r;
      }
      if (req.target == "/test.Echo/Flaky") {
        if (flaky_left_.fetch_sub(1) > 0) return grpcReply(14, "try again");
        return grpcReply(0);
      }
      if (req.target == "/test.Echo/Internal") return grpcReply(13, "boom");
      return grpcReply(0);
    });
  }

  void startProxy(const std::string& retry_on) {
    std::string yaml = proxyPreamble() +
                       "listeners:\n- name: http\n  address: 127.0.0.1:0\n"
                       "  http: {routeConfigName: r, accessLog: {enabled: true, path: " +
                       dir_.file("access.log") +
                       "}}\n"
                       "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: grpc\n"
                       "    domains: [grpc.test]\n    routes:\n"
                       "    - match: {prefix: /test.Echo/Aborted}\n"
                       "      route: {cluster: backend}\n"
                       "      fault: {abort: {grpcStatus: 14}}\n"
                       "    - match: {prefix: /test.Echo/HttpAbort}\n"
                       "      route: {cluster: backend}\n"
                       "      fault: {abort: {httpStatus: 503}}\n"
                       "    - match: {prefix: /test.Echo/}\n"
                       "      route:\n        cluster: backend\n        timeout: 5s\n"
                       "        retryPolicy: {retryOn: \"" +
                       retry_on +
                       "\", numRetries: 3, backoffBaseInterval: 0.001s}\n"
                       "clusters:\n- name: backend\n"
                       "  service: {host: echo.default.svc.cluster.local, name: echo, "
                       "namespace: default}\n"
                       "  endpoints: [{address: 127.0.0.1, port: " +
                       std::to_string(backend_->port()) + "}]\n";
    proxy_ = mesh::integration::startProxy(dir_, yaml, {"http"});
    port_ = proxy_.listeners["http"];
  }

  HttpResponse call(const std::string& path, const std::vector<std::string>& extra = {}) {
    HttpClient c(port_);
    return c.roundTrip(grpcRequest(path, extra), milliseconds(10000));
  }

  std::string metricsWhen(const std::vector<std::string>& labels, double at_least) {
    auto deadline = Clock::now() + milliseconds(5000);
    std::string m;
    do {
      m = httpGet(proxy_.prometheus, "/stats/prometheus").body;
    } while (promSum(m, "istio_requests_total", labels) < at_least && Clock::now() < deadline);
    return m;
  }

  TempDir dir_;
  std::atomic<int> flaky_left_{0};
  std::unique_ptr<ScriptedBackend> backend_;
  Proxy proxy_;
  uint16_t port_ = 0;
};

TEST_F(GrpcHttp1IntegrationTest, RetriesUnavailableInTrailersOnlyResponses) {
  startProxy("unavailable");
  flaky_left_ = 2;
  HttpResponse r = call("/test.Echo/Flaky");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("grpc-status"), "0");
  EXPECT_EQ(backend_->requests(), 3);  // two UNAVAILABLE, then OK

  // INTERNAL is not in retryOn: answered as is, after one try.
  const int before = backend_->requests();
  r = call("/test.Echo/Internal");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.header("grpc-status"), "13");
  EXPECT_EQ(r.header("grpc-message"), "boom");
  EXPECT_EQ(backend_->requests(), before + 1);

  // More failures than retries: the last UNAVAILABLE reaches the client, flag URX.
  flaky_left_ = 10;
  r = call("/test.Echo/Flaky");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.header("grpc-status"), "14");
  std::vector<std::string> labels = {"request_protocol=\"grpc\"", "grpc_response_status=\"14\"",
                                     "response_code=\"200\"", "response_flags=\"URX\""};
  std::string m = metricsWhen(labels, 1);
  EXPECT_EQ(promSum(m, "istio_requests_total", labels), 1) << m;
  EXPECT_EQ(promSum(m, "istio_requests_total",
                    {"request_protocol=\"grpc\"", "grpc_response_status=\"0\""}),
            1)
      << m;
  EXPECT_EQ(promSum(m, "istio_requests_total", {"grpc_response_status=\"13\""}), 1) << m;
}

TEST_F(GrpcHttp1IntegrationTest, HttpOnlyRetryOnDoesNotRetryGrpcStatuses) {
  startProxy("5xx,connect-failure");
  flaky_left_ = 1;
  HttpResponse r = call("/test.Echo/Flaky");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("grpc-status"), "14");
  EXPECT_EQ(backend_->requests(), 1);
}

TEST_F(GrpcHttp1IntegrationTest, GrpcTimeoutShorterThanTheBackendIsDeadlineExceeded) {
  startProxy("unavailable");
  auto start = Clock::now();
  HttpResponse r = call("/test.Echo/Slow", {"grpc-timeout: 200m"});
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(r.ok) << r.error;
  // gRPC form: HTTP 200, trailers-only, DEADLINE_EXCEEDED.
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/grpc");
  EXPECT_EQ(r.header("grpc-status"), "4");
  EXPECT_EQ(r.header("grpc-message"), "upstream request timeout");
  EXPECT_TRUE(r.body.empty());
  EXPECT_GE(took.count(), 190);
  EXPECT_LT(took.count(), 1900) << "the 5s route timeout or the backend answered, not 200m";

  // A malformed grpc-timeout is ignored: the backend's answer arrives (after its 2 s).
  r = call("/test.Echo/Slow", {"grpc-timeout: 200ms"});
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.header("grpc-status"), "0");

  std::vector<std::string> labels = {"request_protocol=\"grpc\"", "grpc_response_status=\"4\"",
                                     "response_flags=\"UT\""};
  std::string m = metricsWhen(labels, 1);
  EXPECT_EQ(promSum(m, "istio_requests_total", labels), 1) << m;
  std::string log = readFile(dir_.file("access.log"));
  EXPECT_THAT(log, HasSubstr("\"grpc_status\":4")) << log;
}

TEST_F(GrpcHttp1IntegrationTest, FaultAbortsAndLocalRepliesAreGrpcReplies) {
  startProxy("unavailable");
  HttpResponse r = call("/test.Echo/Aborted");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/grpc");
  EXPECT_EQ(r.header("grpc-status"), "14");
  EXPECT_EQ(r.header("grpc-message"), "fault filter abort");
  // An HTTP-status abort answers a gRPC client in gRPC terms too (503 -> UNAVAILABLE).
  r = call("/test.Echo/HttpAbort");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("grpc-status"), "14");
  EXPECT_EQ(backend_->requests(), 0);
  // No route: UNIMPLEMENTED (404), flag NR.
  HttpClient c(port_);
  std::string req = grpcRequest("/other.Svc/M");
  req.replace(req.find("grpc.test"), 9, "nowhere.test");
  r = c.roundTrip(req, milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("grpc-status"), "12");
  // A plain HTTP client of the same routes still gets HTTP statuses.
  HttpResponse plain = httpGet(port_, "/test.Echo/HttpAbort", {}, "grpc.test");
  ASSERT_TRUE(plain.ok) << plain.error;
  EXPECT_EQ(plain.status, 503);
  EXPECT_EQ(plain.header("grpc-status"), "");

  std::vector<std::string> fi = {"request_protocol=\"grpc\"", "grpc_response_status=\"14\"",
                                 "response_flags=\"FI\""};
  // A request is recorded when it ends, which can be just after its client read the response:
  // wait (bounded) for each count before checking the totals.
  std::vector<std::string> nr = {"grpc_response_status=\"12\"", "response_flags=\"NR\""};
  std::vector<std::string> plain503 = {"request_protocol=\"http\"", "grpc_response_status=\"-\"",
                                       "response_code=\"503\""};
  metricsWhen(nr, 1);
  metricsWhen(plain503, 1);
  std::string m = metricsWhen(fi, 2);
  EXPECT_EQ(promSum(m, "istio_requests_total", fi), 2) << m;
  EXPECT_EQ(promSum(m, "istio_requests_total", nr), 1) << m;
  EXPECT_EQ(promSum(m, "istio_requests_total", plain503), 1) << m;
}

}  // namespace
}  // namespace mesh::integration
