#include "proxy/upstream/http2_response.h"

#include <charconv>

namespace mesh::proxy {

nghttp2_session* newHttp2ClientSession(const nghttp2_session_callbacks* cbs, void* user_data) {
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) return nullptr;
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_session* session = nullptr;
  int rv = nghttp2_session_client_new2(&session, cbs, user_data, opt);
  nghttp2_option_del(opt);
  if (rv != 0) return nullptr;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kHttp2UpstreamStreamWindow}};
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                        kHttp2UpstreamConnectionWindow);
  return session;
}

bool Http2Response::onHeader(const nghttp2_frame* f, std::string_view name,
                             std::string_view value) {
  if (f->hd.type != NGHTTP2_HEADERS) return true;
  if (head_ready_) {
    trailers_.emplace_back(name, value);
  } else if (name == ":status") {
    // nghttp2 checked it is three digits; anything else reads as 0.
    int status = 0;
    auto r = std::from_chars(value.data(), value.data() + value.size(), status);
    status_ = r.ec == std::errc() ? status : 0;
    if (status_ < 100 || status_ > 599) {
      response_bytes_ = true;  // the server did answer, with something unusable
      return false;
    }
  } else if (!name.starts_with(':')) {
    headers_.emplace_back(name, value);
  }
  return true;
}

bool Http2Response::onFrameRecv(const nghttp2_frame* f) {
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return false;
  if (f->hd.type == NGHTTP2_HEADERS && !head_ready_) {
    response_bytes_ = true;
    if (status_ >= 100 && status_ < 200) {
      headers_.clear();  // interim
    } else {
      head_ready_ = true;
    }
  }
  if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) ended_ = true;
  return true;
}

void Http2Response::onDataChunk(std::string_view data) {
  response_bytes_ = true;
  (body_in_flight_ ? body_next_ : body_).append(data);
}

void Http2Response::onStreamClose(uint32_t code) {
  closed_ = true;
  if (code != NGHTTP2_NO_ERROR || !ended_) reset_ = true;
}

Http2Response::Due Http2Response::due() const {
  if (head_ready_ && !head_delivered_) return Due::kHead;
  if (head_delivered_ && !body_in_flight_ && !body_.empty()) return Due::kBody;
  if (head_delivered_ && ended_ && !body_in_flight_ && body_.empty() && !complete_) {
    return Due::kComplete;
  }
  if (reset_ && !complete_) return Due::kReset;
  return Due::kNone;
}

http::ResponseHead Http2Response::takeHead(bool head_request) {
  head_delivered_ = true;
  http::ResponseHead h;
  h.status = static_cast<uint16_t>(status_);
  h.keep_alive = true;
  h.framing = http::BodyFraming::kChunked;  // re-chunked (or length-framed) for HTTP/1.1
  for (const auto& [n, v] : headers_) {
    h.headers.add(n, v);
    if (n == "content-length") {
      uint64_t len = 0;
      bool ok = !v.empty();
      for (char c : v) ok = ok && c >= '0' && c <= '9' && (len = len * 10 + (c - '0'), true);
      if (ok) {
        h.framing = http::BodyFraming::kContentLength;
        h.content_length = len;
      }
    }
  }
  if (head_request || status_ == 204 || status_ == 304) h.framing = http::BodyFraming::kNone;
  return h;
}

std::string_view Http2Response::takeBody() {
  body_in_flight_ = true;
  return body_;
}

size_t Http2Response::bodyConsumed() {
  body_in_flight_ = false;
  size_t n = body_.size();
  body_.swap(body_next_);
  body_next_.clear();
  return n;
}

const http::HeaderList& Http2Response::takeTrailers() {
  complete_ = true;
  trailer_list_.clear();
  for (const auto& [n, v] : trailers_) trailer_list_.add(n, v);
  return trailer_list_;
}

}  // namespace mesh::proxy
