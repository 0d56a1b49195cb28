#include "proxy/http/http2_server_session.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "core/log.h"

namespace mesh::proxy {

using namespace std::string_view_literals;

namespace {

constexpr std::string_view kCrlf = "\r\n";

std::string_view view(const uint8_t* p, size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

// Fields that describe one HTTP/1.1 connection and never appear in HTTP/2 (RFC 9113 8.2.2).
bool connectionSpecific(std::string_view name) {
  return http::equalsIgnoreCase(name, "connection") ||
         http::equalsIgnoreCase(name, "keep-alive") ||
         http::equalsIgnoreCase(name, "proxy-connection") ||
         http::equalsIgnoreCase(name, "transfer-encoding") ||
         http::equalsIgnoreCase(name, "upgrade") || http::equalsIgnoreCase(name, "te") ||
         http::equalsIgnoreCase(name, "http2-settings");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = http::toLowerAscii(c);
  return out;
}

nghttp2_nv makeNv(std::string_view name, std::string_view value) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;  // nghttp2 copies
  return nv;
}

}  // namespace

struct Http2ServerSession::Stream {
  explicit Stream(int32_t i) : id(i), parser(http::Http1Parser::Type::kResponse) {}
  // Ready for a new stream; the strings keep their capacity (a fresh stream's head and body
  // otherwise cost a dozen allocations as they grow).
  void reuse(int32_t i) {
    id = i;
    for (std::string* str : strings()) str->clear();
    header_bytes = 0;
    has_content_length = head_done = chunked = request_ended = discard = false;
    unacked = 0;
    parser.reset(http::Limits{});
    out_off = 0;
    resp_trailers.clear();
    response_submitted = response_eof = deferred = drain_wanted = false;
  }
  // Parked for reuse: a buffer a large exchange grew is freed, so that an idle connection does
  // not keep up to kSpareStreams windows' worth of memory.
  void park() {
    for (std::string* str : strings()) {
      if (str->capacity() > kKeepCapacity) std::string().swap(*str);
    }
  }
  std::array<std::string*, 10> strings() {
    return {&method, &path, &authority, &host, &cookie, &fields, &trailers, &in, &resp_in, &out};
  }
  static constexpr size_t kKeepCapacity = 4096;

  int32_t id;
  // Request head, while its HEADERS (and CONTINUATION) frames arrive.
  std::string method, path, authority, host, cookie, fields, trailers;
  size_t header_bytes = 0;
  bool has_content_length = false;
  bool head_done = false;
  bool chunked = false;  // the synthesized request body is chunked (length unknown)
  bool request_ended = false;
  bool discard = false;  // nobody reads the request any more: acknowledge DATA at once
  std::string in;        // synthesized HTTP/1.1 request bytes not yet taken
  size_t unacked = 0;    // DATA bytes acknowledged once `in` has been taken
  // Response.
  http::Http1Parser parser;
  std::string resp_in;  // an incomplete response head or chunk line
  std::string out;      // body bytes waiting to be framed
  size_t out_off = 0;
  std::vector<std::pair<std::string, std::string>> resp_trailers;
  bool response_submitted = false;
  bool response_eof = false;  // the whole response was handed over
  bool deferred = false;      // the data source is waiting for bytes
  bool drain_wanted = false;
};

Http2ServerSession::Http2ServerSession(Callbacks& cb, const Http2Limits& limits)
    : cb_(cb), limits_(limits) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, &Http2ServerSession::onBeginFrame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                          &Http2ServerSession::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Http2ServerSession::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Http2ServerSession::onFrameRecv);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
      cbs, &Http2ServerSession::onInvalidFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Http2ServerSession::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Http2ServerSession::onStreamClose);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // windows open as the router reads
  nghttp2_option_set_no_closed_streams(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, limits_.max_outbound_control_frames);
  nghttp2_option_set_max_continuations(opt, limits_.max_continuations);
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.initial_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_bytes},
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(limits_.initial_connection_window));
}

Http2ServerSession::~Http2ServerSession() { nghttp2_session_del(session_); }

Http2ServerSession::Stream* Http2ServerSession::find(int32_t id) const {
  // A stream's calls come in runs (its router reads, writes and asks about its state in one
  // go): the last one found is remembered (forgotten when its stream closes).
  if (id == last_found_id_ && last_found_ != nullptr) return last_found_;
  auto it = streams_.find(id);
  if (it == streams_.end()) return nullptr;
  last_found_id_ = id;
  last_found_ = it->second.get();
  return last_found_;
}

int Http2ServerSession::abuse(uint32_t code, const char* what) {
  if (goaway_code_ == 0) {
    goaway_code_ = code;
    MESH_LOG("http", debug, "HTTP/2 client ends with GOAWAY: {}", what);
  }
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

bool Http2ServerSession::receive(std::string_view bytes) {
  if (failed_) return false;
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                        bytes.size());
  if (rv < 0) {
    uint32_t code = goaway_code_;
    if (code == 0) {
      code = (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
                 ? NGHTTP2_ENHANCE_YOUR_CALM
                 : NGHTTP2_PROTOCOL_ERROR;
      MESH_LOG("http", debug, "HTTP/2 client ends with GOAWAY: {}",
               nghttp2_strerror(static_cast<int>(rv)));
    }
    goaway_code_ = code;
    failed_ = true;
    nghttp2_session_terminate_session(session_, code);
    return false;
  }
  return nghttp2_session_want_read(session_) != 0;
}

void Http2ServerSession::send(std::string& out, size_t max_bytes) {
  while (out.size() < max_bytes) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &p);
    if (n < 0) {
      MESH_LOG("http", debug, "HTTP/2 send: {}", nghttp2_strerror(static_cast<int>(n)));
      failed_ = true;
      return;
    }
    if (n == 0) return;
    out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
}

bool Http2ServerSession::wantsWrite() const { return nghttp2_session_want_write(session_) != 0; }

bool Http2ServerSession::finished() const {
  if (failed_ && goaway_code_ == 0) return true;  // nghttp2 itself failed
  return !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
}

void Http2ServerSession::shutdown() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

std::string_view Http2ServerSession::pendingRequest(int32_t id) const {
  const Stream* s = find(id);
  return s ? std::string_view(s->in) : std::string_view();
}

void Http2ServerSession::consumeRequest(int32_t id, size_t n) {
  Stream* s = find(id);
  if (s == nullptr) return;
  s->in.erase(0, n);
  if (s->in.empty() && s->unacked > 0) {
    nghttp2_session_consume(session_, id, s->unacked);
    s->unacked = 0;
  }
}

bool Http2ServerSession::requestEnded(int32_t id) const {
  const Stream* s = find(id);
  return s == nullptr || s->request_ended;
}

bool Http2ServerSession::responseComplete(int32_t id) const {
  const Stream* s = find(id);
  return s == nullptr || s->response_eof;
}

void Http2ServerSession::resetStream(int32_t id, uint32_t error_code) {
  Stream* s = find(id);
  if (s == nullptr) return;
  s->discard = true;
  s->in.clear();
  if (s->unacked > 0) nghttp2_session_consume(session_, id, s->unacked);
  s->unacked = 0;
  if (error_code == NGHTTP2_NO_ERROR && s->response_eof) return;  // only stop reading
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, error_code);
}

// ---------------------------------------------------------------------------------------------
// Request side

int Http2ServerSession::onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  if (hd->type == NGHTTP2_HEADERS) {
    self->header_block_bytes_ = hd->length;
  } else if (hd->type == NGHTTP2_CONTINUATION) {
    self->header_block_bytes_ += hd->length;
  } else {
    return 0;
  }
  // Compressed bytes; twice the decoded limit leaves room for padding and Huffman's worst case.
  if (self->header_block_bytes_ > 2 * static_cast<size_t>(self->limits_.max_header_list_bytes)) {
    return self->abuse(NGHTTP2_ENHANCE_YOUR_CALM, "header block over the limit");
  }
  return 0;
}

int Http2ServerSession::onBeginHeaders(nghttp2_session* session, const nghttp2_frame* f,
                                       void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    ++self->total_streams_;
    std::unique_ptr<Stream> s;
    if (self->spare_.empty()) {
      s = std::make_unique<Stream>(f->hd.stream_id);
    } else {
      s = std::move(self->spare_.back());
      self->spare_.pop_back();
      s->reuse(f->hd.stream_id);
    }
    nghttp2_session_set_stream_user_data(session, f->hd.stream_id, s.get());
    self->last_found_ = nullptr;
    self->streams_[f->hd.stream_id] = std::move(s);
  } else if (Stream* s = self->find(f->hd.stream_id)) {
    s->header_bytes = 0;  // trailers count on their own
  }
  return 0;
}

int Http2ServerSession::onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name,
                                 size_t nlen, const uint8_t* value, size_t vlen, uint8_t,
                                 void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  if (f->hd.type != NGHTTP2_HEADERS) return 0;
  Stream* s = self->find(f->hd.stream_id);
  if (s == nullptr) return 0;
  s->header_bytes += nlen + vlen + 32;
  if (s->header_bytes > self->limits_.max_header_list_bytes) {
    return self->abuse(NGHTTP2_ENHANCE_YOUR_CALM, "header list over the limit");
  }
  std::string_view n = view(name, nlen);
  std::string_view v = view(value, vlen);
  if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
    // Trailers (nghttp2 refuses pseudo-headers there).
    s->trailers.append(n).append(": "sv).append(v).append(kCrlf);
    return 0;
  }
  if (!n.empty() && n[0] == ':') {
    if (n == ":method") {
      s->method.assign(v);
    } else if (n == ":path") {
      s->path.assign(v);
    } else if (n == ":authority") {
      s->authority.assign(v);
    }
    return 0;  // :scheme and :protocol have no HTTP/1.1 form
  }
  if (n == "host") {
    s->host.assign(v);
    return 0;
  }
  if (n == "cookie") {
    // Split cookie fields are one field again in HTTP/1.1 (RFC 9113 8.2.3).
    if (!s->cookie.empty()) s->cookie.append("; "sv);
    s->cookie.append(v);
    return 0;
  }
  // "te: trailers" is hop-by-hop; "expect" would make the router answer 100 in HTTP/1.1.
  if (n == "te" || n == "expect") return 0;
  if (n == "content-length") s->has_content_length = true;
  s->fields.append(n).append(": "sv).append(v).append(kCrlf);
  return 0;
}

void Http2ServerSession::finishRequestHead(Stream& s, bool end_stream) {
  // The synthesized head goes into `in` (empty until now) and keeps its capacity, as `fields`
  // and `cookie` do theirs, for the stream's next use.
  std::string& head = s.in;
  head.clear();
  head.reserve(s.method.size() + s.path.size() + s.authority.size() + s.fields.size() +
               s.cookie.size() + 64);
  head.append(s.method).push_back(' ');
  // :authority wins over Host (RFC 9113 8.3.1); CONNECT names the authority as its target.
  const std::string& authority = s.authority.empty() ? s.host : s.authority;
  head.append(s.method == "CONNECT" ? authority : s.path);
  head.append(" HTTP/1.1\r\n"sv);
  if (!authority.empty()) head.append("host: "sv).append(authority).append(kCrlf);
  head.append(s.fields);
  if (!s.cookie.empty()) head.append("cookie: "sv).append(s.cookie).append(kCrlf);
  s.chunked = !end_stream && !s.has_content_length;
  if (s.chunked) head.append("transfer-encoding: chunked\r\n"sv);
  head.append(kCrlf);
  s.head_done = true;
  s.parser.setRequestWasHead(s.method == "HEAD");
  s.request_ended = end_stream;
  s.fields.clear();
  s.cookie.clear();
  cb_.onRequest(s.id);
}

void Http2ServerSession::endRequestBody(Stream& s) {
  if (s.request_ended) return;
  s.request_ended = true;
  if (s.discard) return;
  if (s.chunked) {
    s.in.append("0\r\n"sv);
    s.in.append(s.trailers);  // with a known length the trailers are dropped (RFC 9110 6.5.1)
    s.in.append(kCrlf);
  }
  cb_.onRequestData(s.id);
}

int Http2ServerSession::onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  const bool end_stream = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (f->hd.type) {
    case NGHTTP2_DATA: {
      if (f->hd.length == 0 && !end_stream) {
        if (++self->empty_frames_ > self->limits_.max_consecutive_empty_frames) {
          return self->abuse(NGHTTP2_ENHANCE_YOUR_CALM, "empty DATA frame flood");
        }
      } else {
        self->empty_frames_ = 0;
      }
      Stream* s = self->find(f->hd.stream_id);
      if (s != nullptr && end_stream) self->endRequestBody(*s);
      break;
    }
    case NGHTTP2_HEADERS: {
      self->empty_frames_ = 0;
      Stream* s = self->find(f->hd.stream_id);
      if (s == nullptr) break;
      if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        self->finishRequestHead(*s, end_stream);
      } else if (end_stream) {
        self->endRequestBody(*s);
      }
      break;
    }
    case NGHTTP2_RST_STREAM: {
      Stream* s = self->find(f->hd.stream_id);
      if (s != nullptr && !s->response_eof) {
        // A stream the client gave up before its response (CVE-2023-44487's pattern when
        // most streams end so), as Envoy counts premature resets.
        ++self->premature_resets_;
        if (self->premature_resets_ >= self->limits_.max_premature_resets &&
            self->premature_resets_ * 2 >= self->total_streams_) {
          return self->abuse(NGHTTP2_ENHANCE_YOUR_CALM, "too many premature stream resets");
        }
      }
      break;
    }
    default:
      break;
  }
  return 0;
}

int Http2ServerSession::onInvalidFrameRecv(nghttp2_session*, const nghttp2_frame*, int err,
                                           void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  if (err == NGHTTP2_ERR_REFUSED_STREAM &&
      ++self->refused_streams_ > self->limits_.max_refused_streams) {
    return self->abuse(NGHTTP2_ENHANCE_YOUR_CALM, "streams over the concurrency limit");
  }
  return 0;
}

int Http2ServerSession::onDataChunk(nghttp2_session* session, uint8_t, int32_t id,
                                    const uint8_t* data, size_t len, void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  Stream* s = self->find(id);
  if (s == nullptr || s->discard) {
    nghttp2_session_consume(session, id, len);
    return 0;
  }
  if (s->chunked) {
    char size[24];
    int n = std::snprintf(size, sizeof(size), "%zx\r\n", len);
    s->in.append(size, static_cast<size_t>(n));
    s->in.append(view(data, len));
    s->in.append(kCrlf);
  } else {
    s->in.append(view(data, len));
  }
  s->unacked += len;
  self->cb_.onRequestData(id);
  return 0;
}

int Http2ServerSession::onStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) return 0;
  self->cb_.onStreamClose(id, code);  // may still ask requestEnded/responseComplete
  it = self->streams_.find(id);       // the callback may have changed the map
  if (it == self->streams_.end()) return 0;
  std::unique_ptr<Stream> done = std::move(it->second);
  if (self->last_found_ == done.get()) self->last_found_ = nullptr;
  self->streams_.erase(it);
  if (self->spare_.size() < kSpareStreams) {
    done->park();
    self->spare_.push_back(std::move(done));
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Response side

bool Http2ServerSession::submitResponseHead(Stream& s, const http::ResponseHead& head) {
  // Lower-cased names go into one buffer, sized first so that the views into it stay valid;
  // values are views of the head (nghttp2 copies both during the submit).
  size_t names = 16;  // the status code
  for (const auto& h : head.headers) names += h.name.size();
  nv_names_.clear();
  nv_names_.reserve(names);
  nv_.clear();
  nv_names_.append(std::to_string(head.status));
  nv_.push_back(makeNv(":status", nv_names_));
  for (const auto& h : head.headers) {
    if (connectionSpecific(h.name)) continue;
    size_t at = nv_names_.size();
    nv_names_.append(h.name);
    for (size_t i = at; i < nv_names_.size(); ++i) {
      nv_names_[i] = http::toLowerAscii(nv_names_[i]);  // ASCII, not the C locale's tolower
    }
    nv_.push_back(makeNv(std::string_view(nv_names_).substr(at, h.name.size()), h.value));
  }
  const bool no_body =
      head.framing == http::BodyFraming::kNone ||
      (head.framing == http::BodyFraming::kContentLength && head.content_length == 0);
  nghttp2_data_provider prd;
  prd.source.ptr = &s;
  prd.read_callback = &Http2ServerSession::readResponseData;
  int rv =
      nghttp2_submit_response(session_, s.id, nv_.data(), nv_.size(), no_body ? nullptr : &prd);
  if (rv != 0) return false;
  s.response_submitted = true;
  return true;
}

bool Http2ServerSession::writeResponse(int32_t id, std::string_view bytes) {
  Stream* s = find(id);
  if (s == nullptr) return true;
  if (s->response_eof) return true;
  // Parsed where it is unless an incomplete head or chunk line is waiting; what stays
  // unparsed is kept in resp_in (views into `bytes` are not used after this call).
  std::string_view input = bytes;
  if (!s->resp_in.empty()) {
    s->resp_in.append(bytes);
    input = s->resp_in;
  }
  using Event = http::Http1Parser::Event;
  size_t off = 0;
  while (!s->response_eof) {
    auto r = s->parser.parse(input.substr(off));
    off += r.consumed;
    if (r.event == Event::kNeedMore) break;
    if (r.event == Event::kError) {
      MESH_LOG("http", debug, "HTTP/2 stream {}: response not convertible: {}", id,
               http::parseErrorText(s->parser.error()));
      s->resp_in.clear();
      resetStream(id, NGHTTP2_INTERNAL_ERROR);
      return true;
    }
    if (r.event == Event::kHead) {
      const http::ResponseHead& head = s->parser.response();
      if (head.status < 200) continue;  // interim responses are not relayed
      if (!submitResponseHead(*s, head)) {
        s->resp_in.clear();
        resetStream(id, NGHTTP2_INTERNAL_ERROR);
        return true;
      }
    } else if (r.event == Event::kBody) {
      s->out.append(r.data);
    } else if (r.event == Event::kMessageComplete) {
      for (const auto& t : s->parser.trailers()) {
        if (connectionSpecific(t.name)) continue;
        s->resp_trailers.emplace_back(lower(t.name), std::string(t.value));
      }
      s->response_eof = true;
    }
  }
  if (input.data() == s->resp_in.data()) {
    s->resp_in.erase(0, off);
  } else {
    s->resp_in.assign(input.substr(off));
  }
  if (s->response_submitted && s->deferred && (s->out.size() > s->out_off || s->response_eof)) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, id);
  }
  if (s->out.size() > s->out_off) {
    s->drain_wanted = true;
    return false;
  }
  return true;
}

ssize_t Http2ServerSession::readResponseData(nghttp2_session* session, int32_t id, uint8_t* buf,
                                             size_t len, uint32_t* flags,
                                             nghttp2_data_source* src, void* ud) {
  auto* self = static_cast<Http2ServerSession*>(ud);
  auto* s = static_cast<Stream*>(src->ptr);
  size_t n = std::min(len, s->out.size() - s->out_off);
  if (n > 0) std::memcpy(buf, s->out.data() + s->out_off, n);
  s->out_off += n;
  if (s->out_off == s->out.size()) {
    s->out.clear();
    s->out_off = 0;
    if (s->drain_wanted) {
      s->drain_wanted = false;
      self->cb_.onResponseDrained(id);
    }
  }
  if (!s->out.empty()) return static_cast<ssize_t>(n);
  if (!s->response_eof) {
    if (n > 0) return static_cast<ssize_t>(n);
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (!s->resp_trailers.empty()) {
    std::vector<nghttp2_nv> nv;
    for (const auto& [name, value] : s->resp_trailers) nv.push_back(makeNv(name, value));
    if (nghttp2_submit_trailer(session, id, nv.data(), nv.size()) == 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace mesh::proxy
