// Drives mesh::proxy::Http2Response the way Http2Upstream does, with no socket: an nghttp2
// client session made by newHttp2ClientSession (the upstream's settings), requests submitted on
// it, server bytes fed in, and a "router" that takes whatever due() says (head, body slices,
// complete or reset) and records it. The socket, pool and HTTP/1.1 request conversion of
// Http2Upstream are not here; the response conversion and the nghttp2 session are the real ones.
// Used by the upstream fuzz target and the Http2Response unit tests.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/upstream/http2_response.h"

namespace mesh::testing::h2 {

class UpstreamDriver {
 public:
  struct Stream : proxy::Http2Response {
    int32_t id = 0;
    bool head_request = false;
    // What the router saw.
    bool got_head = false;
    uint16_t status = 0;
    std::vector<std::pair<std::string, std::string>> head_fields, trailer_fields;
    std::string body;
    int completes = 0, resets = 0;
    bool reset_bytes_seen = false;
    bool router_done = false;  // after complete or reset: the router let go
    bool hold_body = false;    // keep each body slice until release()
    bool holding = false;
  };

  UpstreamDriver() {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &onHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &onFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &onDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &onStreamClose);
    session_ = proxy::newHttp2ClientSession(cbs, this);
    nghttp2_session_callbacks_del(cbs);
  }
  ~UpstreamDriver() { nghttp2_session_del(session_); }
  UpstreamDriver(const UpstreamDriver&) = delete;
  UpstreamDriver& operator=(const UpstreamDriver&) = delete;

  // A GET (or HEAD) without body; returns the stream, or nullptr if nghttp2 refused it.
  Stream* request(bool head_request = false, std::string_view path = "/") {
    auto s = std::make_unique<Stream>();
    s->head_request = head_request;
    const std::string_view method = head_request ? "HEAD" : "GET";
    nghttp2_nv nva[] = {nv(":method", method), nv(":scheme", "http"), nv(":authority", "up.test"),
                        nv(":path", path)};
    int32_t id = nghttp2_submit_request(session_, nullptr, nva, 4, nullptr, s.get());
    if (id < 0) return nullptr;
    s->id = id;
    streams_.push_back(std::move(s));
    send();
    return streams_.back().get();
  }

  // Server bytes; false once the connection is over (nghttp2 error, or nothing more to do),
  // as Http2Upstream::onRead closes it. Delivers and sends after each call.
  bool receive(std::string_view bytes) {
    if (closed_) return false;
    ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                          bytes.size());
    if (rv < 0) {
      error_ = static_cast<int>(rv);
      deliver();
      closeConnection();
      return false;
    }
    deliver();
    send();
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      closeConnection();
      return false;
    }
    return true;
  }

  // The router lets go of a held body slice (continueReading).
  void release(Stream* s) {
    if (!s->holding) return;
    s->holding = false;
    size_t n = s->bodyConsumed();
    if (n > 0) nghttp2_session_consume(session_, s->id, n);
    deliver();
    send();
  }

  // The connection ends (EOF or error): every stream the router still has is reset, as in
  // Http2Upstream::fail.
  void closeConnection() {
    if (closed_) return;
    closed_ = true;
    for (auto& s : streams_) {
      if (s->router_done) continue;
      s->router_done = true;
      ++s->resets;
      s->reset_bytes_seen = s->response_bytes_;
    }
  }

  // Frames the client sent (what the server would read).
  std::string& sent() { return sent_; }
  nghttp2_session* session() { return session_; }
  const std::vector<std::unique_ptr<Stream>>& streams() const { return streams_; }
  bool closed() const { return closed_; }
  int error() const { return error_; }

 private:
  // Views only: `n` and `v` must outlive the nghttp2 call (no temporaries).
  static nghttp2_nv nv(std::string_view n, std::string_view v) {
    return {reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
            reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
            NGHTTP2_NV_FLAG_NONE};
  }
  static Stream* find(nghttp2_session* session, int32_t id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  }
  // The same thin callbacks as Http2Upstream's.
  static int onHeader(nghttp2_session* session, const nghttp2_frame* f, const uint8_t* name,
                      size_t nlen, const uint8_t* value, size_t vlen, uint8_t, void*) {
    Stream* s = find(session, f->hd.stream_id);
    if (s != nullptr && !s->onHeader(f, {reinterpret_cast<const char*>(name), nlen},
                                     {reinterpret_cast<const char*>(value), vlen})) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                NGHTTP2_PROTOCOL_ERROR);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }
  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* f, void*) {
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
    if (Stream* s = find(session, f->hd.stream_id)) s->Http2Response::onFrameRecv(f);
    return 0;
  }
  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                         size_t len, void*) {
    Stream* s = find(session, id);
    if (s == nullptr || s->router_done) {
      nghttp2_session_consume(session, id, len);
      return 0;
    }
    s->Http2Response::onDataChunk({reinterpret_cast<const char*>(data), len});
    return 0;
  }
  static int onStreamClose(nghttp2_session* session, int32_t id, uint32_t code, void*) {
    if (Stream* s = find(session, id)) s->Http2Response::onStreamClose(code);
    return 0;
  }

  // Http2Upstream::Stream::deliver's response part, for every stream.
  void deliver() {
    using Due = proxy::Http2Response::Due;
    for (auto& sp : streams_) {
      Stream* s = sp.get();
      while (!s->router_done) {
        Due due = s->due();
        if (due == Due::kHead) {
          http::ResponseHead h = s->takeHead(s->head_request);
          s->got_head = true;
          s->status = h.status;
          for (const auto& f : h.headers) s->head_fields.emplace_back(f.name, f.value);
        } else if (due == Due::kBody) {
          s->body.append(s->takeBody());
          s->holding = true;
          if (!s->hold_body) {
            s->holding = false;
            size_t n = s->bodyConsumed();
            if (n > 0) nghttp2_session_consume(session_, s->id, n);
          }
        } else if (due == Due::kComplete) {
          for (const auto& f : s->takeTrailers()) s->trailer_fields.emplace_back(f.name, f.value);
          ++s->completes;
          s->router_done = true;
        } else if (due == Due::kReset) {
          ++s->resets;
          s->reset_bytes_seen = s->response_bytes_;
          s->router_done = true;
        } else {
          break;
        }
      }
    }
  }

  void send() {
    for (;;) {
      const uint8_t* p = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &p);
      if (n <= 0) break;
      sent_.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    deliver();  // streams closed by the RST_STREAM just sent, as Http2Upstream::flush
  }

  nghttp2_session* session_ = nullptr;
  std::vector<std::unique_ptr<Stream>> streams_;
  std::string sent_;
  bool closed_ = false;
  int error_ = 0;
};

}  // namespace mesh::testing::h2
