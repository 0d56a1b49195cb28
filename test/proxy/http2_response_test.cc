// Http2Response (the response side of an upstream HTTP/2 stream) against a real nghttp2 client
// session made like Http2Upstream's, with the server's frames written by hand.
#include "proxy/upstream/http2_response.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "test/testing/h2_frames.h"
#include "test/testing/h2_upstream_driver.h"

namespace mesh::proxy {
namespace {

namespace h2 = mesh::testing::h2;
using Fields = std::vector<std::pair<std::string, std::string>>;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

std::string headers(uint32_t id, const Fields& f, bool end_stream) {
  return h2::frame(h2::kHeaders, h2::kEndHeaders | (end_stream ? h2::kEndStream : 0), id,
                   h2::headerBlock(f));
}
std::string data(uint32_t id, std::string_view body, bool end_stream) {
  return h2::frame(h2::kData, end_stream ? h2::kEndStream : 0, id, body);
}
std::string serverPreface() { return h2::settings() + h2::frame(h2::kSettings, h2::kAck, 0, ""); }

TEST(Http2ResponseTest, ResponseWithTrailers) {
  h2::UpstreamDriver d;
  auto* s = d.request();
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(d.receive(serverPreface()));
  ASSERT_TRUE(
      d.receive(headers(1, {{":status", "200"}, {"content-type", "application/grpc"}}, false) +
                data(1, "hello", false)));
  EXPECT_TRUE(s->got_head);
  EXPECT_EQ(s->status, 200);
  EXPECT_THAT(s->head_fields, ElementsAre(Pair("content-type", "application/grpc")));
  EXPECT_EQ(s->body, "hello");
  EXPECT_EQ(s->completes, 0);
  d.receive(headers(1, {{"grpc-status", "0"}, {"grpc-message", "fine"}}, true));
  EXPECT_EQ(s->completes, 1);
  EXPECT_EQ(s->resets, 0);
  EXPECT_THAT(s->trailer_fields,
              ElementsAre(Pair("grpc-status", "0"), Pair("grpc-message", "fine")));
}

TEST(Http2ResponseTest, InterimHeadsAreDroppedAndTheFinalHeadFollows) {
  h2::UpstreamDriver d;
  auto* s = d.request();
  ASSERT_TRUE(d.receive(serverPreface()));
  d.receive(headers(1, {{":status", "100"}}, false) +
            headers(1, {{":status", "103"}, {"link", "</style.css>; rel=preload"}}, false));
  EXPECT_FALSE(s->got_head);
  EXPECT_TRUE(s->response_bytes_);
  d.receive(headers(1, {{":status", "200"}, {"content-length", "2"}}, false) + data(1, "ok", true));
  EXPECT_EQ(s->status, 200);
  EXPECT_THAT(s->head_fields, ElementsAre(Pair("content-length", "2")));  // no "link"
  EXPECT_EQ(s->body, "ok");
  EXPECT_EQ(s->completes, 1);
  EXPECT_EQ(s->resets, 0);
  EXPECT_THAT(s->trailer_fields, IsEmpty());
}

TEST(Http2ResponseTest, RstStreamMidBodyIsAResetWithBytesSeen) {
  h2::UpstreamDriver d;
  auto* s = d.request();
  auto* other = d.request();
  ASSERT_TRUE(d.receive(serverPreface()));
  ASSERT_TRUE(d.receive(headers(1, {{":status", "200"}}, false) + data(1, "part", false) +
                        h2::rstStream(1, h2::kCancel)));
  EXPECT_EQ(s->body, "part");
  EXPECT_EQ(s->resets, 1);
  EXPECT_TRUE(s->reset_bytes_seen);
  EXPECT_EQ(s->completes, 0);
  // The connection and the other stream go on.
  d.receive(headers(3, {{":status", "204"}}, true));
  EXPECT_EQ(other->completes, 1);
  EXPECT_EQ(other->status, 204);
}

TEST(Http2ResponseTest, RstNoErrorBeforeEndStreamIsAReset) {
  h2::UpstreamDriver d;
  auto* s = d.request();
  ASSERT_TRUE(d.receive(serverPreface()));
  d.receive(headers(1, {{":status", "200"}}, false) + h2::rstStream(1, h2::kNoError));
  EXPECT_EQ(s->resets, 1);
  EXPECT_EQ(s->completes, 0);
}

TEST(Http2ResponseTest, GoawayBelowAnActiveStreamResetsItAndLetsTheLowerOneFinish) {
  h2::UpstreamDriver d;
  auto* low = d.request();
  auto* high = d.request();
  ASSERT_EQ(high->id, 3);
  ASSERT_TRUE(d.receive(serverPreface()));
  std::string goaway;
  h2::put32(goaway, 1);  // last stream id
  h2::put32(goaway, h2::kNoError);
  ASSERT_TRUE(
      d.receive(headers(1, {{":status", "200"}}, false) + h2::frame(h2::kGoaway, 0, 0, goaway)));
  EXPECT_EQ(high->resets, 1);  // refused: never processed, not seen
  EXPECT_FALSE(high->reset_bytes_seen);
  EXPECT_EQ(low->resets, 0);
  d.receive(data(1, "done", true));
  EXPECT_EQ(low->completes, 1);
  EXPECT_EQ(low->body, "done");
  // Nothing is left to do on the connection after the last stream.
  EXPECT_TRUE(d.closed());
  EXPECT_EQ(low->completes + low->resets, 1);
}

TEST(Http2ResponseTest, DataBeyondContentLengthIsAReset) {
  h2::UpstreamDriver d;
  auto* s = d.request();
  ASSERT_TRUE(d.receive(serverPreface()));
  d.receive(headers(1, {{":status", "200"}, {"content-length", "3"}}, false) +
            data(1, "too long", true));
  EXPECT_EQ(s->completes, 0);
  EXPECT_EQ(s->resets, 1);
}

TEST(Http2ResponseTest, StatusOutsideTheHttpRangeResetsTheStream) {
  h2::UpstreamDriver d;
  auto* s = d.request();
  auto* other = d.request();
  ASSERT_TRUE(d.receive(serverPreface()));
  d.sent().clear();
  ASSERT_TRUE(d.receive(headers(1, {{":status", "000"}}, true)));
  EXPECT_FALSE(s->got_head);
  EXPECT_EQ(s->resets, 1);
  EXPECT_TRUE(s->reset_bytes_seen);
  h2::Frame f;
  bool rst = false;
  while (h2::nextFrame(d.sent(), f)) {
    rst = rst || (f.type == h2::kRstStream && f.stream == 1 && f.errorCode() == h2::kProtocolError);
  }
  EXPECT_TRUE(rst);
  d.receive(headers(3, {{":status", "599"}}, true));
  EXPECT_EQ(other->status, 599);
  EXPECT_EQ(other->completes, 1);
}

TEST(Http2ResponseTest, HeldBodyIsNotAcknowledgedAndCompletesAfterRelease) {
  h2::UpstreamDriver d;
  auto* s = d.request();
  s->hold_body = true;
  ASSERT_TRUE(d.receive(serverPreface()));
  d.receive(headers(1, {{":status", "200"}}, false) + data(1, "one", false));
  EXPECT_EQ(s->body, "one");
  d.receive(data(1, "two", true));  // arrives while the router holds "one"
  EXPECT_EQ(s->body, "one");
  EXPECT_EQ(s->body_next_, "two");
  EXPECT_EQ(s->completes, 0);  // the router still holds "one"
  d.release(s);
  EXPECT_EQ(s->body, "onetwo");
  d.release(s);
  EXPECT_EQ(s->completes, 1);
}

TEST(Http2ResponseTest, HeadFramingFollowsContentLengthHeadAnd204) {
  Http2Response r;
  r.status_ = 200;
  r.headers_ = {{"content-length", "12"}};
  r.head_ready_ = true;
  http::ResponseHead h = r.takeHead(false);
  EXPECT_EQ(h.framing, http::BodyFraming::kContentLength);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_EQ(r.takeHead(true).framing, http::BodyFraming::kNone);
  r.headers_ = {{"content-length", "1x"}};
  EXPECT_EQ(r.takeHead(false).framing, http::BodyFraming::kChunked);
  r.status_ = 204;
  EXPECT_EQ(r.takeHead(false).framing, http::BodyFraming::kNone);
}

}  // namespace
}  // namespace mesh::proxy
