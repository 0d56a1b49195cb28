#include "proxy/http/tracing.h"

#include <gtest/gtest.h>

#include <regex>
#include <vector>

#include "proxy/telemetry/access_log.h"
#include "proxy/telemetry/response_flags.h"
#include "test/proxy/test_util.h"

namespace mesh::proxy {
namespace {

TEST(RequestIdTest, IsAVersion4Uuid) {
  FastRandom r(5);
  std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::string a(makeRequestId(r).view()), b(makeRequestId(r).view());
  EXPECT_TRUE(std::regex_match(a, uuid)) << a;
  EXPECT_NE(a, b);
}

// Returns the values it was given, in order.
class ScriptedRandom final : public Random {
 public:
  explicit ScriptedRandom(std::vector<uint64_t> v) : values_(std::move(v)) {}
  uint64_t next() override { return values_.at(i_++); }

 private:
  std::vector<uint64_t> values_;
  size_t i_ = 0;
};

TEST(RequestIdTest, SpellsTheRandomBitsWithVersionAndVariantSet) {
  ScriptedRandom r({0x0123456789abcdefULL, 0xfedcba9876543210ULL});
  EXPECT_EQ(makeRequestId(r).view(), "01234567-89ab-4def-bedc-ba9876543210");
  ScriptedRandom ones({~0ULL, ~0ULL});
  EXPECT_EQ(makeRequestId(ones).view(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

TEST(TraceTest, NewIdsAreTheRandomBitsInLowerCaseHex) {
  ScriptedRandom r({0x00000000000000ffULL, 0xa0b1c2d3e4f50617ULL, 0x0102030405060708ULL});
  TraceHeaders t;
  testing::ParsedRequest req(testing::get("h", "/", ""));
  ASSERT_TRUE(req.ok());
  continueTrace(req.head().headers, r, 0, &t);
  EXPECT_EQ(t.traceIdView(), "00000000000000ffa0b1c2d3e4f50617");
  EXPECT_EQ(t.spanIdView(), "0102030405060708");
  EXPECT_EQ(t.traceparentView(), "00-00000000000000ffa0b1c2d3e4f50617-0102030405060708-00");
}

TraceHeaders trace(const std::string& headers, double sampling = 100) {
  testing::ParsedRequest req(testing::get("h", "/", headers));
  EXPECT_TRUE(req.ok());
  FastRandom r(9);
  TraceHeaders t;
  continueTrace(req.head().headers, r, sampling, &t);
  return t;
}

TEST(TraceTest, ContextTakesTheFirstOfEachAndSaysWhatIsReplaced) {
  TraceContext in;
  EXPECT_TRUE(in.take({"TraceParent", "first"}));
  EXPECT_TRUE(in.take({"traceparent", "second"}));
  EXPECT_TRUE(in.take({"x-b3-traceid", ""}));  // an empty first one still counts
  EXPECT_TRUE(in.take({"x-b3-traceid", "later"}));
  EXPECT_TRUE(in.take({"X-B3-SpanId", "s"}));
  EXPECT_TRUE(in.take({"x-b3-sampled", "1"}));
  EXPECT_TRUE(in.take({"x-b3-parentspanid", "p"}));  // replaced, not read
  EXPECT_FALSE(in.take({"x-b3-flags", "1"}));        // read, and forwarded as it came
  EXPECT_FALSE(in.take({"x-request-id", "r"}));
  EXPECT_FALSE(in.take({"traceparents", "x"}));
  EXPECT_EQ(in.traceparent, "first");
  EXPECT_EQ(in.b3_trace_id, "");
  EXPECT_EQ(in.b3_span_id, "s");
  EXPECT_EQ(in.b3_sampled, "1");
  EXPECT_EQ(in.b3_flags, "1");
}

TEST(TraceTest, ContinuesW3cWithANewSpan) {
  TraceHeaders t = trace(
      "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n");
  EXPECT_EQ(t.traceIdView(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.parentView(), "00f067aa0ba902b7");
  EXPECT_TRUE(t.has_parent);
  EXPECT_TRUE(t.sampled);
  EXPECT_NE(t.spanIdView(), "00f067aa0ba902b7");
  EXPECT_EQ(t.traceparentView().substr(0, 36), "00-4bf92f3577b34da6a3ce929d0e0e4736-");
  EXPECT_EQ(t.traceparentView().substr(36, 16), t.spanIdView());
  EXPECT_EQ(t.traceparentView().substr(52), "-01");
}

TEST(TraceTest, ContinuesB3AndPadsA64BitTraceId) {
  TraceHeaders t = trace(
      "x-b3-traceid: 463ac35c9f6413ad\r\nx-b3-spanid: a2fb4a1d1a96d312\r\nx-b3-sampled: 1\r\n");
  EXPECT_EQ(t.traceIdView(), "463ac35c9f6413ad");
  EXPECT_EQ(t.parentView(), "a2fb4a1d1a96d312");
  EXPECT_TRUE(t.sampled);
  EXPECT_EQ(t.traceparentView().substr(0, 36), "00-0000000000000000463ac35c9f6413ad-");
}

TEST(TraceTest, InvalidContextStartsANewTrace) {
  for (const char* bad : {"traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n",
                          "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
                          "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n",
                          "x-b3-traceid: xyz\r\n"}) {
    TraceHeaders t = trace(bad);
    EXPECT_FALSE(t.has_parent) << bad;
    EXPECT_EQ(t.traceIdView().size(), 32u);
  }
}

TEST(TraceTest, SamplingAppliesOnlyToNewTraces) {
  EXPECT_FALSE(trace("", 0).sampled);
  EXPECT_TRUE(trace("", 100).sampled);
  EXPECT_TRUE(trace("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n", 0)
                  .sampled);
}

TEST(ResponseFlagsTest, FormatsInEnvoyOrder) {
  EXPECT_EQ(formatResponseFlags(0), "-");
  EXPECT_EQ(formatResponseFlags(kUpstreamRetryLimitExceeded | kNoHealthyUpstream), "UH,URX");
  EXPECT_EQ(formatResponseFlags(kUpstreamRequestTimeout), "UT");
  EXPECT_EQ(formatResponseFlags(kNoRouteFound), "NR");
}

TEST(AccessLogTest, FormatsOneJsonLineWithEscapes) {
  AccessLogEntry e;
  e.start_time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  e.method = "GET";
  e.path = "/a\"b";
  e.protocol = "HTTP/1.1";
  e.response_code = 503;
  e.response_flags = kUpstreamConnectionFailure;
  e.user_agent = "ua\n";
  e.duration_ms = 12;
  std::string line;
  formatAccessLog(e, &line);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_NE(line.find("\"start_time\":\"2023-11-14T22:13:20.123Z\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"path\":\"/a\\\"b\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"response_code\":503"), std::string::npos);
  EXPECT_NE(line.find("\"response_flags\":\"UF\""), std::string::npos);
  EXPECT_NE(line.find("\"user_agent\":\"ua\\n\""), std::string::npos);
  EXPECT_NE(line.find("\"upstream_host\":null"), std::string::npos);
  EXPECT_NE(line.find("\"grpc_status\":null"), std::string::npos) << line;  // not gRPC
  e.grpc_status = 14;
  line.clear();
  formatAccessLog(e, &line);
  EXPECT_NE(line.find("\"grpc_status\":14"), std::string::npos) << line;
}

}  // namespace
}  // namespace mesh::proxy
