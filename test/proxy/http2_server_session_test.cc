// Http2ServerSession against a real nghttp2 client session, bytes pumped in memory: the HTTP/2
// <-> HTTP/1.1 conversion both ways, flow control, and the abuse limits.
#include "proxy/http/http2_server_session.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "test/testing/h2_frames.h"

namespace mesh::proxy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace h2 = mesh::testing::h2;

struct Router : Http2ServerSession::Callbacks {
  void onRequest(int32_t id) override { requests.push_back(id); }
  void onRequestData(int32_t id) override { data.push_back(id); }
  void onStreamClose(int32_t id, uint32_t code) override { closed[id] = code; }
  void onResponseDrained(int32_t id) override { drained.push_back(id); }
  std::vector<int32_t> requests, data, drained;
  std::map<int32_t, uint32_t> closed;
};

// What the client saw.
struct ClientView {
  std::map<int32_t, std::vector<std::pair<std::string, std::string>>> headers, trailers;
  std::map<int32_t, std::string> body;
  std::map<int32_t, uint32_t> closed;
  std::string body_to_send;
  size_t body_off = 0;
  bool send_trailers = false;
};

class Http2ServerSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
                const uint8_t* v, size_t vl, uint8_t, void* ud) {
          auto* c = static_cast<ClientView*>(ud);
          std::pair<std::string, std::string> h{std::string(reinterpret_cast<const char*>(n), nl),
                                                std::string(reinterpret_cast<const char*>(v), vl)};
          if (f->headers.cat == NGHTTP2_HCAT_HEADERS) {
            c->trailers[f->hd.stream_id].push_back(h);
          } else {
            c->headers[f->hd.stream_id].push_back(h);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* ud) {
          static_cast<ClientView*>(ud)->body[id].append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cbs, [](nghttp2_session*, int32_t id, uint32_t code, void* ud) {
          static_cast<ClientView*>(ud)->closed[id] = code;
          return 0;
        });
    nghttp2_session_client_new(&client_, cbs, &view_);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(client_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  void TearDown() override { nghttp2_session_del(client_); }

  // Moves bytes both ways until neither side has anything to say.
  void pump() {
    for (int i = 0; i < 100; ++i) {
      std::string c2s;
      const uint8_t* p;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(client_, &p)) > 0) {
        c2s.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
      }
      bool more = true;
      if (!c2s.empty()) more = server_.receive(c2s);
      std::string s2c;
      server_.send(s2c, 1 << 20);
      if (!s2c.empty()) {
        nghttp2_session_mem_recv(client_, reinterpret_cast<const uint8_t*>(s2c.data()),
                                 s2c.size());
      }
      if (!more) last_receive_ok_ = false;
      if (c2s.empty() && s2c.empty()) return;
    }
  }

  int32_t request(const std::vector<std::pair<std::string, std::string>>& fields,
                  bool with_body = false) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : fields) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_data_provider prd;
    prd.source.ptr = &view_;
    prd.read_callback = [](nghttp2_session* s, int32_t id, uint8_t* buf, size_t len,
                           uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
      auto* c = static_cast<ClientView*>(src->ptr);
      size_t n = std::min(len, c->body_to_send.size() - c->body_off);
      std::memcpy(buf, c->body_to_send.data() + c->body_off, n);
      c->body_off += n;
      if (c->body_off == c->body_to_send.size()) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (c->send_trailers) {
          static std::string tn = "x-checksum", tv = "42";
          nghttp2_nv t{reinterpret_cast<uint8_t*>(tn.data()), reinterpret_cast<uint8_t*>(tv.data()),
                       tn.size(), tv.size(), NGHTTP2_NV_FLAG_NONE};
          nghttp2_submit_trailer(s, id, &t, 1);
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
      }
      return static_cast<ssize_t>(n);
    };
    return nghttp2_submit_request(client_, nullptr, nv.data(), nv.size(),
                                  with_body ? &prd : nullptr, nullptr);
  }

  std::string takeRequest(int32_t id) {
    std::string s(server_.pendingRequest(id));
    server_.consumeRequest(id, s.size());
    return s;
  }

  Router router_;
  Http2Limits limits_;
  Http2ServerSession server_{router_, limits_};
  nghttp2_session* client_ = nullptr;
  ClientView view_;
  bool last_receive_ok_ = true;
};

TEST_F(Http2ServerSessionTest, GetBecomesAnHttp11Request) {
  int32_t id = request({{":method", "GET"},
                        {":scheme", "https"},
                        {":path", "/reviews/1?x=y"},
                        {":authority", "reviews:9080"},
                        {"cookie", "a=1"},
                        {"te", "trailers"},
                        {"cookie", "b=2"},
                        {"x-user", "jason"}});
  pump();
  ASSERT_EQ(router_.requests, std::vector<int32_t>{id});
  EXPECT_TRUE(server_.requestEnded(id));
  EXPECT_EQ(takeRequest(id),
            "GET /reviews/1?x=y HTTP/1.1\r\nhost: reviews:9080\r\nx-user: jason\r\n"
            "cookie: a=1; b=2\r\n\r\n");
}

TEST_F(Http2ServerSessionTest, BodyOfUnknownLengthIsChunkedWithTrailers) {
  view_.body_to_send = "hello";
  view_.send_trailers = true;
  int32_t id = request({{":method", "POST"}, {":scheme", "http"}, {":path", "/p"},
                        {":authority", "a"}},
                       true);
  pump();
  EXPECT_TRUE(server_.requestEnded(id));
  EXPECT_EQ(takeRequest(id),
            "POST /p HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n");
}

TEST_F(Http2ServerSessionTest, BodyWithContentLengthKeepsIt) {
  view_.body_to_send = "hello";
  int32_t id = request({{":method", "PUT"}, {":scheme", "http"}, {":path", "/p"},
                        {":authority", "a"}, {"content-length", "5"}},
                       true);
  pump();
  EXPECT_EQ(takeRequest(id), "PUT /p HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello");
}

TEST_F(Http2ServerSessionTest, ResponseLosesConnectionFieldsAndKeepsTrailers) {
  int32_t id = request({{":method", "GET"}, {":scheme", "http"}, {":path", "/"},
                        {":authority", "a"}});
  pump();
  takeRequest(id);
  EXPECT_FALSE(server_.writeResponse(
      id,
      "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
      "Content-Type: application/grpc\r\nKeep-Alive: timeout=5\r\n\r\n3\r\nabc\r\n"));
  EXPECT_FALSE(server_.responseComplete(id));
  EXPECT_TRUE(router_.drained.empty());  // framed only when sent
  pump();
  EXPECT_EQ(router_.drained, std::vector<int32_t>{id});
  EXPECT_TRUE(server_.writeResponse(id, "0\r\ngrpc-status: 0\r\n\r\n"));
  EXPECT_TRUE(server_.responseComplete(id));
  pump();
  using Fields = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(view_.headers[id], (Fields{{":status", "200"}, {"content-type", "application/grpc"}}));
  EXPECT_EQ(view_.body[id], "abc");
  EXPECT_EQ(view_.trailers[id], (Fields{{"grpc-status", "0"}}));
  EXPECT_EQ(view_.closed[id], NGHTTP2_NO_ERROR);
  EXPECT_EQ(router_.closed[id], NGHTTP2_NO_ERROR);
}

// Closed streams are reused (with their buffers) for new ones: nothing of an earlier exchange
// (request body and trailers, a response head that arrived in pieces, response trailers) may
// show in a later one. More streams than the session keeps spare, one after another.
TEST_F(Http2ServerSessionTest, LaterStreamsStartCleanAfterReuse) {
  using Fields = std::vector<std::pair<std::string, std::string>>;
  view_.body_to_send = "hello";
  view_.send_trailers = true;
  int32_t first = request(
      {{":method", "POST"}, {":scheme", "http"}, {":path", "/p"}, {":authority", "a"}}, true);
  pump();
  EXPECT_EQ(takeRequest(first),
            "POST /p HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n");
  EXPECT_TRUE(server_.writeResponse(first, "HTTP/1.1 201 Created\r\nX-One: 1\r\nTransfer-"));
  EXPECT_FALSE(server_.writeResponse(  // false: the body waits to be framed
      first, "Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\ngrpc-status: 3\r\n\r\n"));
  pump();
  EXPECT_EQ(view_.headers[first], (Fields{{":status", "201"}, {"x-one", "1"}}));
  EXPECT_EQ(view_.body[first], "ok");
  EXPECT_EQ(view_.trailers[first], (Fields{{"grpc-status", "3"}}));
  ASSERT_EQ(router_.closed.count(first), 1u);

  for (int i = 0; i < 40; ++i) {
    std::string path = "/n" + std::to_string(i);
    int32_t id =
        request({{":method", "GET"}, {":scheme", "http"}, {":path", path}, {":authority", "b"}});
    pump();
    ASSERT_TRUE(server_.requestEnded(id)) << i;
    EXPECT_EQ(takeRequest(id), "GET " + path + " HTTP/1.1\r\nhost: b\r\n\r\n") << i;
    std::string body = std::to_string(i);
    EXPECT_FALSE(server_.writeResponse(id, "HTTP/1.1 200 OK\r\nContent-Length: " +
                                               std::to_string(body.size()) + "\r\n\r\n" + body));
    pump();
    EXPECT_EQ(view_.headers[id],
              (Fields{{":status", "200"}, {"content-length", std::to_string(body.size())}}))
        << i;
    EXPECT_EQ(view_.body[id], body) << i;
    EXPECT_TRUE(view_.trailers[id].empty()) << i;
    EXPECT_EQ(view_.closed[id], NGHTTP2_NO_ERROR) << i;
  }
}

TEST_F(Http2ServerSessionTest, HeadResponseHasNoBody) {
  int32_t id = request({{":method", "HEAD"}, {":scheme", "http"}, {":path", "/"},
                        {":authority", "a"}});
  pump();
  takeRequest(id);
  EXPECT_TRUE(server_.writeResponse(id, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"));
  pump();
  EXPECT_EQ(view_.closed[id], NGHTTP2_NO_ERROR);
  EXPECT_EQ(view_.body[id], "");
}

TEST_F(Http2ServerSessionTest, RequestWindowOpensOnlyAsTheRouterReads) {
  view_.body_to_send.assign(200000, 'x');
  int32_t id = request({{":method", "POST"}, {":scheme", "http"}, {":path", "/"},
                        {":authority", "a"}, {"content-length", "200000"}},
                       true);
  pump();
  // One stream window arrived, no more: the router has not read.
  std::string got = takeRequest(id);
  size_t head = got.find("\r\n\r\n") + 4;
  EXPECT_EQ(got.size() - head, limits_.initial_stream_window);
  EXPECT_FALSE(server_.requestEnded(id));
  size_t total = got.size() - head;
  for (int i = 0; i < 10 && !server_.requestEnded(id); ++i) {
    pump();
    total += takeRequest(id).size();
  }
  EXPECT_TRUE(server_.requestEnded(id));
  EXPECT_EQ(total, 200000u);
}

TEST_F(Http2ServerSessionTest, ResetBeforeTheResponseClosesTheStream) {
  int32_t id = request({{":method", "GET"}, {":scheme", "http"}, {":path", "/"},
                        {":authority", "a"}});
  pump();
  nghttp2_submit_rst_stream(client_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  pump();
  EXPECT_EQ(router_.closed[id], NGHTTP2_CANCEL);
  EXPECT_TRUE(server_.writeResponse(id, "HTTP/1.1 200 OK\r\n\r\n"));  // dropped, no crash
}

TEST_F(Http2ServerSessionTest, UnparsableResponseResetsTheStream) {
  int32_t id = request({{":method", "GET"}, {":scheme", "http"}, {":path", "/"},
                        {":authority", "a"}});
  pump();
  server_.writeResponse(id, "garbage\r\n\r\n");
  pump();
  EXPECT_EQ(view_.closed[id], NGHTTP2_INTERNAL_ERROR);
}

// Raw frames for what nghttp2's client would refuse to send.
class Http2ServerSessionAbuseTest : public ::testing::Test {
 protected:
  bool feed(const std::string& bytes) { return server_.receive(bytes); }
  Router router_;
  Http2ServerSession server_{router_, Http2Limits{}};
};

TEST_F(Http2ServerSessionAbuseTest, EmptyDataFramesEndTheConnection) {
  std::string in(h2::kPreface);
  in += h2::settings();
  in += h2::frame(h2::kHeaders, h2::kEndHeaders, 1, h2::requestBlock("POST", "/"));
  for (int i = 0; i < 101; ++i) in += h2::frame(h2::kData, 0, 1, "");
  EXPECT_FALSE(feed(in));
  EXPECT_EQ(server_.goawayCode(), NGHTTP2_ENHANCE_YOUR_CALM);
  std::string out;
  server_.send(out, 1 << 20);
  h2::Frame f;
  bool goaway = false;
  while (h2::nextFrame(out, f)) goaway = goaway || (f.type == h2::kGoaway && f.errorCode() == 0xb);
  EXPECT_TRUE(goaway);
}

TEST_F(Http2ServerSessionAbuseTest, HundredEmptyDataFramesAreTolerated) {
  std::string in(h2::kPreface);
  in += h2::settings();
  in += h2::frame(h2::kHeaders, h2::kEndHeaders, 1, h2::requestBlock("POST", "/"));
  for (int i = 0; i < 100; ++i) in += h2::frame(h2::kData, 0, 1, "");
  in += h2::frame(h2::kData, h2::kEndStream, 1, "x");
  EXPECT_TRUE(feed(in));
  EXPECT_EQ(server_.goawayCode(), 0u);
}

TEST_F(Http2ServerSessionAbuseTest, PrematureResets) {
  std::string in(h2::kPreface);
  in += h2::settings();
  for (uint32_t id = 1; id < 2 * 100; id += 2) {
    in += h2::frame(h2::kHeaders, h2::kEndHeaders | h2::kEndStream, id,
                    h2::requestBlock("GET", "/"));
    in += h2::rstStream(id, h2::kCancel);
  }
  EXPECT_FALSE(feed(in));
  EXPECT_EQ(server_.goawayCode(), NGHTTP2_ENHANCE_YOUR_CALM);
}

TEST_F(Http2ServerSessionAbuseTest, HeaderListOverTheLimit) {
  std::string block = h2::requestBlock("GET", "/");
  h2::hpackLiteral(block, "x-big", std::string(15000, 'a'));
  std::string in(h2::kPreface);
  in += h2::settings();
  in += h2::frame(h2::kHeaders, 0, 1, block);
  for (int i = 0; i < 4; ++i) {
    std::string more;
    h2::hpackLiteral(more, "x-big" + std::to_string(i), std::string(15000, 'a'));
    in += h2::frame(h2::kContinuation, i == 3 ? h2::kEndHeaders : 0, 1, more);
  }
  EXPECT_FALSE(feed(in));
  EXPECT_EQ(server_.goawayCode(), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_TRUE(router_.requests.empty());
}

TEST_F(Http2ServerSessionAbuseTest, GarbageIsAProtocolError) {
  EXPECT_FALSE(feed("GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(server_.goawayCode(), NGHTTP2_PROTOCOL_ERROR);
}

}  // namespace
}  // namespace mesh::proxy
