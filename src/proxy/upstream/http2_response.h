// The response side of one upstream HTTP/2 stream, without a socket: what nghttp2 reports for
// the stream (header fields, whole HEADERS/DATA frames, DATA chunks, the close) becomes the
// state below, and due() says which of the router's UpstreamCallbacks comes next (head, body
// slice, complete with trailers, or reset). Http2Upstream's streams are built on it, and
// newHttp2ClientSession() makes the nghttp2 session with the settings Http2Upstream uses, so
// the fuzz target and unit tests drive the same conversion with server bytes and no socket.
//
// Conversion rules: 1xx heads are dropped (their fields cleared); the first non-1xx HEADERS is
// the head, any later HEADERS on the stream are trailers; pseudo-headers other than :status are
// not passed on. A stream that closes with an error code, or before END_STREAM, is a reset;
// exactly one of complete or reset is ever due for a stream.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/http/http1_parser.h"

namespace mesh::proxy {

// The local settings of an upstream HTTP/2 connection (receive windows; no push).
inline constexpr uint32_t kHttp2UpstreamStreamWindow = 64 * 1024;
inline constexpr int32_t kHttp2UpstreamConnectionWindow = 1024 * 1024;

// A client session with Http2Upstream's options (manual WINDOW_UPDATE through
// nghttp2_session_consume, no closed-stream retention) and its SETTINGS queued; nullptr if
// nghttp2 is out of memory.
nghttp2_session* newHttp2ClientSession(const nghttp2_session_callbacks* cbs, void* user_data);

class Http2Response {
 public:
  using Fields = std::vector<std::pair<std::string, std::string>>;
  enum class Due : uint8_t { kNone, kHead, kBody, kComplete, kReset };

  // nghttp2 callbacks, for frames of this stream. onHeader returns false for a :status
  // outside 100..599 (nghttp2 checks only its three digits): the caller resets the stream with
  // PROTOCOL_ERROR, as an HTTP/1.1 upstream's bad status line is refused. onFrameRecv returns
  // whether the frame was a HEADERS or DATA frame (something may be due).
  bool onHeader(const nghttp2_frame* f, std::string_view name, std::string_view value);
  bool onFrameRecv(const nghttp2_frame* f);
  void onDataChunk(std::string_view data);
  void onStreamClose(uint32_t code);

  // What is due for the router now (kNone while it holds a body slice).
  Due due() const;
  // Take what due() said, marking it delivered. takeHead: the HTTP/1.1 view of the head (body
  // framing from content-length; none for HEAD, 204 and 304).
  http::ResponseHead takeHead(bool head_request);
  std::string_view takeBody();
  // The router let go of the body slice: returns its size (to acknowledge to nghttp2).
  size_t bodyConsumed();
  const http::HeaderList& takeTrailers();

  // State, read by Http2Upstream and tests.
  int status_ = 0;
  Fields headers_, trailers_;
  http::HeaderList trailer_list_;
  bool head_ready_ = false, head_delivered_ = false;
  std::string body_, body_next_;
  bool body_in_flight_ = false;
  bool ended_ = false;
  bool complete_ = false;
  bool reset_ = false;
  bool response_bytes_ = false;
  bool closed_ = false;  // the session closed the stream
};

}  // namespace mesh::proxy
