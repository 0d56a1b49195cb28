// A real gRPC service (grpc-echo-server, test/testing/grpc_echo) and gRPC's C++ client. The
// Direct tests prove the binaries: unary, server-streaming and bidi calls, FailFirst's
// UNAVAILABLE-per-key counting, and a deadline shorter than Sleep. The ThroughTwoProxies test
// sends the same calls through two sidecars (outbound A -> inbound B -> server) over HTTP/2,
// with A retrying UNAVAILABLE and answering an expired deadline itself.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "test/integration/harness.h"
#include "testing/grpc_echo/echo.grpc.pb.h"  // generated, build/gen/

namespace mesh::integration {
namespace {

namespace echo = mesh::testing::echo;
using ::testing::HasSubstr;

struct EchoServer {
  std::unique_ptr<Process> process;
  uint16_t port = 0;
};

EchoServer startEchoServer(const TempDir& dir, const std::string& name) {
  EchoServer s;
  const std::string port_file = dir.file(name + ".port");
  s.process = std::make_unique<Process>(
      std::vector<std::string>{binPath("grpc-echo-server"), "--listen", "127.0.0.1:0", "--name",
                               name, "--port-file", port_file},
      dir.file(name + ".log"));
  std::string error;
  auto content = waitForFile(port_file, *s.process, milliseconds(10000), &error);
  if (!content) throw std::runtime_error("grpc-echo-server: " + error);
  s.port = static_cast<uint16_t>(jsonNumber(*content, "port").value_or(0));
  if (s.port == 0) throw std::runtime_error("grpc-echo-server: bad port file " + *content);
  return s;
}

std::unique_ptr<echo::Echo::Stub> stubFor(uint16_t port, const std::string& authority = "") {
  grpc::ChannelArguments args;
  if (!authority.empty()) args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
  return echo::Echo::NewStub(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                                       grpc::InsecureChannelCredentials(), args));
}

void setDeadline(grpc::ClientContext* ctx, milliseconds d) {
  ctx->set_deadline(std::chrono::system_clock::now() + d);
}

// The calls every variant makes: unary, a server stream of 5, a bidi exchange of 3.
void expectEchoCalls(echo::Echo::Stub& stub, const std::string& server) {
  {
    grpc::ClientContext ctx;
    setDeadline(&ctx, milliseconds(5000));
    echo::EchoRequest req;
    req.set_message("hello");
    echo::EchoReply out;
    grpc::Status st = stub.Unary(&ctx, req, &out);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(out.message(), "hello");
    EXPECT_EQ(out.server(), server);
    EXPECT_FALSE(out.deadline().empty());  // the client's deadline arrived as grpc-timeout
  }
  {
    grpc::ClientContext ctx;
    setDeadline(&ctx, milliseconds(5000));
    echo::StreamRequest req;
    req.set_message("s");
    req.set_count(5);
    auto reader = stub.ServerStream(&ctx, req);
    std::vector<std::string> got;
    echo::EchoReply out;
    while (reader->Read(&out)) got.push_back(out.message());
    grpc::Status st = reader->Finish();
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_THAT(got, ::testing::ElementsAre("s-0", "s-1", "s-2", "s-3", "s-4"));
  }
  {
    grpc::ClientContext ctx;
    setDeadline(&ctx, milliseconds(5000));
    auto stream = stub.Bidi(&ctx);
    for (const char* m : {"a", "b", "c"}) {
      echo::EchoRequest req;
      req.set_message(m);
      ASSERT_TRUE(stream->Write(req));
      echo::EchoReply out;
      ASSERT_TRUE(stream->Read(&out));  // each message answered before the next is sent
      EXPECT_EQ(out.message(), m);
    }
    stream->WritesDone();
    echo::EchoReply extra;
    EXPECT_FALSE(stream->Read(&extra));
    grpc::Status st = stream->Finish();
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
}

grpc::Status failFirst(echo::Echo::Stub& stub, const std::string& key, uint32_t failures,
                       echo::EchoReply* out) {
  grpc::ClientContext ctx;
  setDeadline(&ctx, milliseconds(5000));
  echo::FailRequest req;
  req.set_key(key);
  req.set_failures(failures);
  return stub.FailFirst(&ctx, req, out);
}

class GrpcEchoIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override { server_ = startEchoServer(dir_, "echo-1"); }
  TempDir dir_;
  EchoServer server_;
};

TEST_F(GrpcEchoIntegrationTest, DirectUnaryServerStreamingAndBidi) {
  auto stub = stubFor(server_.port);
  expectEchoCalls(*stub, "echo-1");
}

TEST_F(GrpcEchoIntegrationTest, DirectFailFirstIsUnavailableNTimesPerKey) {
  auto stub = stubFor(server_.port);
  echo::EchoReply out;
  for (int i = 1; i <= 2; ++i) {
    grpc::Status st = failFirst(*stub, "k1", 2, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << i;
    EXPECT_THAT(st.error_message(), HasSubstr("failing call " + std::to_string(i)));
  }
  grpc::Status st = failFirst(*stub, "k1", 2, &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.attempt(), 3u);
  // Keys count separately.
  EXPECT_EQ(failFirst(*stub, "k2", 1, &out).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(failFirst(*stub, "k2", 1, &out).ok());
  EXPECT_EQ(out.attempt(), 2u);
}

TEST_F(GrpcEchoIntegrationTest, DirectDeadlineShorterThanSleepIsDeadlineExceeded) {
  auto stub = stubFor(server_.port);
  grpc::ClientContext ctx;
  setDeadline(&ctx, milliseconds(200));
  echo::SleepRequest req;
  req.set_milliseconds(3000);
  echo::EchoReply out;
  auto start = Clock::now();
  grpc::Status st = stub->Sleep(&ctx, req, &out);
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_GE(took, 190);
  EXPECT_LT(took, 2500);
  // A long enough deadline lets it finish.
  grpc::ClientContext ok_ctx;
  setDeadline(&ok_ctx, milliseconds(5000));
  req.set_milliseconds(50);
  st = stub->Sleep(&ok_ctx, req, &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.message(), "slept 50ms");
}

// Two sidecars between client and server: A (outbound, retries UNAVAILABLE) -> B (inbound) ->
// grpc-echo-server. Every HTTP listener takes h2c with prior knowledge; both clusters speak
// HTTP/2 (http2: true), so trailers (grpc-status) cross both hops.
TEST_F(GrpcEchoIntegrationTest, ThroughTwoProxiesRetriesDeadlinesAndMetrics) {
  TempDir dir_a, dir_b;
  const std::string service =
      "  service: {host: echo.default.svc.cluster.local, name: echo, namespace: default}\n";
  Proxy b = startProxy(
      dir_b,
      proxyPreamble() +
          "listeners:\n- name: inbound\n  address: 127.0.0.1:0\n  direction: INBOUND\n"
          "  http: {routeConfigName: r}\n"
          "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: all\n    domains: [\"*\"]\n"
          "    routes:\n    - match: {prefix: /}\n      route: {cluster: app}\n"
          "clusters:\n- name: app\n  http2: true\n" +
          service + "  endpoints: [{address: 127.0.0.1, port: " + std::to_string(server_.port) +
          "}]\n",
      {"inbound"});
  Proxy a = startProxy(
      dir_a,
      proxyPreamble() +
          "listeners:\n- name: outbound\n  address: 127.0.0.1:0\n  http: {routeConfigName: r}\n"
          "routeConfigs:\n- name: r\n  virtualHosts:\n  - name: all\n    domains: [\"*\"]\n"
          "    routes:\n    - match: {prefix: /}\n      route:\n        cluster: b\n"
          "        retryPolicy: {retryOn: unavailable, numRetries: 3, "
          "backoffBaseInterval: 0.001s}\n"
          "clusters:\n- name: b\n  http2: true\n" +
          service + "  endpoints: [{address: 127.0.0.1, port: " +
          std::to_string(b.listeners["inbound"]) + "}]\n",
      {"outbound"});
  auto stub = stubFor(a.listeners["outbound"], "echo.default.svc.cluster.local");
  expectEchoCalls(*stub, "echo-1");

  // Two UNAVAILABLE answers are retried by A: the client sees one successful call.
  echo::EchoReply out;
  grpc::Status st = failFirst(*stub, "through", 2, &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.attempt(), 3u);

  // The client's deadline travels as grpc-timeout; A answers DEADLINE_EXCEEDED itself.
  grpc::ClientContext ctx;
  setDeadline(&ctx, milliseconds(300));
  echo::SleepRequest sleep;
  sleep.set_milliseconds(3000);
  st = stub->Sleep(&ctx, sleep, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();

  const std::vector<std::string> ok = {"request_protocol=\"grpc\"", "grpc_response_status=\"0\""};
  std::string mb = waitForPage(b.prometheus, "/stats/prometheus", [&](const std::string& m) {
    return promSum(m, "istio_requests_total", ok) >= 4;
  });
  EXPECT_GE(promSum(mb, "istio_requests_total", ok), 4) << mb;
  EXPECT_EQ(promSum(mb, "istio_requests_total", {"grpc_response_status=\"14\""}), 2) << mb;
  // The client's deadline, A's timer and B's (both from grpc-timeout, forwarded unchanged as in
  // Envoy) expire together, so the call ends one of three ways, each recorded once by A: A's own
  // timeout (UT, grpc-status 4, maybe with DC), B's timeout relayed (grpc-status 4), or the
  // client's cancel arriving first (DC). grpc-timeout alone deciding is tested deterministically
  // over HTTP/1.1 (GrpcHttp1IntegrationTest.GrpcTimeoutShorterThanTheBackendIsDeadlineExceeded).
  auto timedOut = [](const std::string& m) {
    return promSum(m, "istio_requests_total",
                   {"reporter=\"source\"", "grpc_response_status=\"4\""}) +
           promSum(m, "istio_requests_total",
                   {"reporter=\"source\"", "grpc_response_status=\"-\"", "response_flags=\"DC\""});
  };
  std::string ma = waitForPage(a.prometheus, "/stats/prometheus",
                               [&](const std::string& m) { return timedOut(m) >= 1; });
  EXPECT_EQ(timedOut(ma), 1) << ma;
}

}  // namespace
}  // namespace mesh::integration
