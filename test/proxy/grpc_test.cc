#include "proxy/http/grpc.h"

#include <gtest/gtest.h>

#include "test/proxy/test_util.h"

namespace mesh::proxy::grpc {
namespace {

using std::chrono::milliseconds;

TEST(GrpcContentTypeTest, RecognisesGrpcAndItsSubtypes) {
  EXPECT_TRUE(isGrpcContentType("application/grpc"));
  EXPECT_TRUE(isGrpcContentType("application/grpc+proto"));
  EXPECT_TRUE(isGrpcContentType("application/grpc+json"));
  EXPECT_TRUE(isGrpcContentType("application/grpc;charset=utf-8"));
  EXPECT_TRUE(isGrpcContentType("Application/GRPC"));
  EXPECT_TRUE(isGrpcContentType(" application/grpc "));
  EXPECT_FALSE(isGrpcContentType("application/grpc-web"));
  EXPECT_FALSE(isGrpcContentType("application/grpc-web+proto"));
  EXPECT_FALSE(isGrpcContentType("application/grpcx"));
  EXPECT_FALSE(isGrpcContentType("application/json"));
  EXPECT_FALSE(isGrpcContentType("application/grp"));
  EXPECT_FALSE(isGrpcContentType(""));
}

TEST(GrpcContentTypeTest, RequestIsGrpcByItsContentType) {
  testing::ParsedRequest grpc(testing::get(
      "h", "/pkg.Svc/Method", "content-type: application/grpc\r\nte: trailers\r\n", "POST"));
  ASSERT_TRUE(grpc.ok());
  EXPECT_TRUE(isGrpcRequest(grpc.head().headers));
  testing::ParsedRequest plain(testing::get("h", "/", "content-type: text/plain\r\n", "POST"));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(isGrpcRequest(plain.head().headers));
  testing::ParsedRequest none(testing::get("h", "/"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(isGrpcRequest(none.head().headers));
}

TEST(GrpcTimeoutTest, ParsesEveryUnit) {
  EXPECT_EQ(parseTimeout("2H"), milliseconds(2 * 3600 * 1000));
  EXPECT_EQ(parseTimeout("3M"), milliseconds(3 * 60 * 1000));
  EXPECT_EQ(parseTimeout("10S"), milliseconds(10000));
  EXPECT_EQ(parseTimeout("250m"), milliseconds(250));
  EXPECT_EQ(parseTimeout("1500000u"), milliseconds(1500));
  EXPECT_EQ(parseTimeout("99999999n"), milliseconds(100));  // rounded up
  EXPECT_EQ(parseTimeout("99999999H"), milliseconds(int64_t{99999999} * 3600 * 1000));
}

TEST(GrpcTimeoutTest, SubMillisecondAndZeroRoundUpToOneMillisecond) {
  EXPECT_EQ(parseTimeout("1n"), milliseconds(1));
  EXPECT_EQ(parseTimeout("1u"), milliseconds(1));
  EXPECT_EQ(parseTimeout("1001u"), milliseconds(2));
  EXPECT_EQ(parseTimeout("0m"), milliseconds(1));
  EXPECT_EQ(parseTimeout("00000000S"), milliseconds(1));
}

TEST(GrpcTimeoutTest, MalformedValuesAreIgnored) {
  for (std::string_view bad : std::initializer_list<std::string_view>{
           "", "S", "5", "123456789S", "5s", "5h", "5 S", " 5S", "5S ", "-5S", "+5S", "5.0S",
           "0x5S", "5SS", "5Sm", "\xff\x53", std::string_view("5\0S", 3)}) {
    EXPECT_EQ(parseTimeout(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(GrpcTimeoutTest, RouteTimeoutCapsTheHeader) {
  const auto grpc5s = std::optional<milliseconds>(milliseconds(5000));
  const auto grpc100ms = std::optional<milliseconds>(milliseconds(100));
  // No route timeout: the header alone.
  EXPECT_EQ(effectiveTimeout(milliseconds(0), true, grpc5s), milliseconds(5000));
  // A shorter header wins; a longer one is capped by the route.
  EXPECT_EQ(effectiveTimeout(milliseconds(1000), true, grpc100ms), milliseconds(100));
  EXPECT_EQ(effectiveTimeout(milliseconds(1000), true, grpc5s), milliseconds(1000));
  // No header, or not gRPC: the route timeout.
  EXPECT_EQ(effectiveTimeout(milliseconds(1000), true, std::nullopt), milliseconds(1000));
  EXPECT_EQ(effectiveTimeout(milliseconds(1000), false, grpc100ms), milliseconds(1000));
  EXPECT_EQ(effectiveTimeout(milliseconds(0), false, grpc100ms), milliseconds(0));
}

TEST(GrpcStatusTest, ParsesDecimalStatuses) {
  EXPECT_EQ(parseStatus("0"), 0u);
  EXPECT_EQ(parseStatus("14"), 14u);
  EXPECT_EQ(parseStatus(" 4 "), 4u);
  EXPECT_EQ(parseStatus("99"), 99u);  // unknown codes are kept
  EXPECT_EQ(parseStatus("4294967295"), 4294967295u);
  EXPECT_EQ(parseStatus("4294967296"), std::nullopt);
  EXPECT_EQ(parseStatus("99999999999"), std::nullopt);
  EXPECT_EQ(parseStatus(""), std::nullopt);
  EXPECT_EQ(parseStatus("-1"), std::nullopt);
  EXPECT_EQ(parseStatus("1a"), std::nullopt);
  EXPECT_EQ(parseStatus("UNAVAILABLE"), std::nullopt);
}

TEST(GrpcStatusTest, FoundInHeadersOrTrailers) {
  http::HeaderList h;
  h.add("content-type", "application/grpc");
  EXPECT_EQ(statusOf(h), std::nullopt);
  h.add("Grpc-Status", "14");
  EXPECT_EQ(statusOf(h), 14u);
  http::HeaderList bad;
  bad.add("grpc-status", "fourteen");
  EXPECT_EQ(statusOf(bad), std::nullopt);
}

TEST(GrpcStatusTest, HttpStatusMapping) {
  EXPECT_EQ(statusFromHttp(400), kInternal);
  EXPECT_EQ(statusFromHttp(401), kUnauthenticated);
  EXPECT_EQ(statusFromHttp(403), kPermissionDenied);
  EXPECT_EQ(statusFromHttp(404), kUnimplemented);
  EXPECT_EQ(statusFromHttp(429), kUnavailable);
  EXPECT_EQ(statusFromHttp(502), kUnavailable);
  EXPECT_EQ(statusFromHttp(503), kUnavailable);
  EXPECT_EQ(statusFromHttp(504), kUnavailable);
  EXPECT_EQ(statusFromHttp(500), kUnknown);
  EXPECT_EQ(statusFromHttp(418), kUnknown);
}

TEST(GrpcStatusTest, NamesRoundTrip) {
  for (uint32_t c = 0; c <= kMaxCode; ++c) EXPECT_EQ(statusFromName(statusName(c)), c);
  EXPECT_EQ(statusFromName("UNAVAILABLE"), kUnavailable);
  EXPECT_EQ(statusFromName("DEADLINE_EXCEEDED"), kDeadlineExceeded);
  EXPECT_EQ(statusFromName("unavailable"), std::nullopt);
  EXPECT_EQ(statusFromName("14"), std::nullopt);
  EXPECT_EQ(statusName(99), "UNKNOWN");
}

TEST(GrpcStatusTest, LocalRepliesAndTelemetry) {
  EXPECT_EQ(localReplyStatus(504, true), kDeadlineExceeded);
  EXPECT_EQ(localReplyStatus(503, false), kUnavailable);
  EXPECT_EQ(localReplyStatus(404, false), kUnimplemented);
  EXPECT_EQ(telemetryStatus(false, 14u, 200), -1);
  EXPECT_EQ(telemetryStatus(true, 14u, 200), 14);
  EXPECT_EQ(telemetryStatus(true, std::nullopt, 503), 14);
  EXPECT_EQ(telemetryStatus(true, std::nullopt, 200), 2);  // no grpc-status: UNKNOWN
  EXPECT_EQ(telemetryStatus(true, std::nullopt, 0), -1);   // nothing was answered
  EXPECT_EQ(telemetryStatus(true, 4294967295u, 200), INT32_MAX);
}

TEST(GrpcLocalReplyTest, TrailersOnlyHeadersWithEncodedMessage) {
  std::string out;
  appendLocalReplyHeaders(out, kUnavailable, "no healthy upstream");
  EXPECT_EQ(out,
            "content-type: application/grpc\r\ngrpc-status: 14\r\n"
            "grpc-message: no healthy upstream\r\ncontent-length: 0\r\n");
  out.clear();
  appendLocalReplyHeaders(out, kDeadlineExceeded, "");
  EXPECT_EQ(out, "content-type: application/grpc\r\ngrpc-status: 4\r\ncontent-length: 0\r\n");
  out.clear();
  // CR, LF and '%' cannot reach the header line raw.
  appendPercentEncoded(out, "a%b\r\nc\xc3\xa9");
  EXPECT_EQ(out, "a%25b%0D%0Ac%C3%A9");
}

}  // namespace
}  // namespace mesh::proxy::grpc
