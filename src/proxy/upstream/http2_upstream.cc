#include "proxy/upstream/http2_upstream.h"

#include <boost/asio/post.hpp>
#include <cstring>

#include "core/log.h"
#include "core/status.h"
#include "core/turn_clock.h"
#include "proxy/server/worker.h"

namespace mesh::proxy {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxQueuedOutput = 64 * 1024;

using Fields = std::vector<std::pair<std::string, std::string>>;

bool hopByHop(std::string_view n) {
  return http::equalsIgnoreCase(n, "connection") || http::equalsIgnoreCase(n, "keep-alive") ||
         http::equalsIgnoreCase(n, "proxy-connection") ||
         http::equalsIgnoreCase(n, "transfer-encoding") || http::equalsIgnoreCase(n, "upgrade") ||
         http::equalsIgnoreCase(n, "host") || http::equalsIgnoreCase(n, "expect") ||
         http::equalsIgnoreCase(n, "http2-settings");
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = http::toLowerAscii(c);
  return out;
}

nghttp2_nv nv(const std::string& n, const std::string& v) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

class Http2Upstream::Stream final : public UpstreamRequest, public Http2Response {
 public:
  Stream(Http2Upstream& c, UpstreamCallbacks* cb, bool head)
      : conn_(&c), cb_(cb), head_(head), parser_(http::Http1Parser::Type::kRequest) {}

  void write(const BufferList& bufs) override {
    if (conn_ == nullptr || cb_ == nullptr) return;
    for (const auto& b : bufs) req_in_.append(static_cast<const char*>(b.data()), b.size());
    using Event = http::Http1Parser::Event;
    size_t off = 0;
    while (!req_eof_) {
      auto r = parser_.parse(std::string_view(req_in_).substr(off));
      off += r.consumed;
      if (r.event == Event::kNeedMore) break;
      if (r.event == Event::kError) {
        MESH_LOG("upstream", debug, "request not convertible to HTTP/2: {}",
                 http::parseErrorText(parser_.error()));
        reset_ = true;
        break;
      }
      if (r.event == Event::kHead) {
        submit(parser_.request());
      } else if (r.event == Event::kBody) {
        out_.append(r.data);
      } else if (r.event == Event::kMessageComplete) {
        for (const auto& t : parser_.trailers()) {
          if (!hopByHop(t.name)) req_trailers_.emplace_back(lower(t.name), std::string(t.value));
        }
        req_eof_ = true;
      }
    }
    req_in_.erase(0, off);
    if (id_ > 0 && deferred_ && (out_.size() > out_off_ || req_eof_)) {
      deferred_ = false;
      nghttp2_session_resume_data(conn_->session_, id_);
    }
    if (out_.size() > out_off_) {
      write_pending_ = true;  // completes once framed
    } else {
      write_done_ = true;
    }
    conn_->touch(this);
    conn_->kick();
  }

  void continueReading() override {
    if (conn_ == nullptr || !body_in_flight_) return;
    size_t n = bodyConsumed();
    if (id_ > 0 && n > 0) nghttp2_session_consume(conn_->session_, id_, n);
    conn_->touch(this);
    conn_->kick();
  }

  void release(bool) override { done(NGHTTP2_NO_ERROR); }
  void abort() override { done(NGHTTP2_CANCEL); }
  const tls::TransportSocket* transport() const override {
    return conn_ != nullptr ? &conn_->socket_ : nullptr;
  }

  // The router is done with the stream.
  void done(uint32_t code) {
    cb_ = nullptr;
    if (conn_ != nullptr && id_ > 0 && !closed_) {
      if (code != NGHTTP2_NO_ERROR || !req_eof_ || !ended_) {
        nghttp2_submit_rst_stream(conn_->session_, NGHTTP2_FLAG_NONE, id_, code);
      }
      conn_->kick();  // the stream goes when nghttp2 closes it
      return;
    }
    maybeDelete();
  }

  void submit(const http::RequestHead& req) {
    Fields f;
    f.reserve(req.headers.size() + 4);
    f.emplace_back(":method", std::string(req.method));
    f.emplace_back(":scheme", conn_->connector_.originatesTls() ? "https" : "http");
    f.emplace_back(":authority", std::string(req.host));
    std::string path(req.absolute_form ? req.path : req.target);
    if (req.absolute_form && !req.query.empty()) path.append("?").append(req.query);
    f.emplace_back(":path", std::move(path));
    bool te_trailers = false;
    for (const auto& h : req.headers) {
      if (hopByHop(h.name)) continue;
      if (http::equalsIgnoreCase(h.name, "te")) {
        if (!http::equalsIgnoreCase(h.value, "trailers")) continue;
        te_trailers = true;
      }
      f.emplace_back(lower(h.name), std::string(h.value));
    }
    // gRPC servers expect "te: trailers", which the HTTP/1.1 hop (hop-by-hop) dropped.
    if (!te_trailers && req.headers.get("content-type").starts_with("application/grpc")) {
      f.emplace_back("te", "trailers");
    }
    std::vector<nghttp2_nv> v;
    for (const auto& [n, val] : f) v.push_back(nv(n, val));
    const bool body = req.framing == http::BodyFraming::kChunked ||
                      (req.framing == http::BodyFraming::kContentLength && req.content_length > 0);
    nghttp2_data_provider prd;
    prd.source.ptr = this;
    prd.read_callback = &Http2Upstream::readRequestData;
    int32_t id = nghttp2_submit_request(conn_->session_, nullptr, v.data(), v.size(),
                                        body ? &prd : nullptr, this);
    if (id < 0) {
      reset_ = true;
      return;
    }
    id_ = id;
    conn_->streams_[id] = this;
  }

  // Runs what is due for the router, in order; stops while the router holds a body slice.
  void deliver() {
    busy_ = true;
    while (cb_ != nullptr) {
      UpstreamCallbacks* cb = cb_;
      if (ready_) {
        ready_ = false;
        cb->onUpstreamReady();
        continue;
      }
      if (write_done_) {
        write_done_ = false;
        cb->onUpstreamWriteComplete();
        continue;
      }
      const Due due = Http2Response::due();
      if (due == Due::kHead) {
        cb->onUpstreamHead(takeHead(head_));
        continue;
      }
      if (due == Due::kBody) {
        if (!cb->onUpstreamBody(takeBody())) continueReading();
        continue;
      }
      if (due == Due::kComplete) {
        cb->onUpstreamComplete(takeTrailers());
        continue;
      }
      if (due == Due::kReset) {
        cb_ = nullptr;
        cb->onUpstreamReset(response_bytes_);
        break;
      }
      break;
    }
    busy_ = false;
    maybeDelete();
  }

  void maybeDelete() {
    if (busy_ || cb_ != nullptr) return;
    if (conn_ != nullptr && id_ > 0 && !closed_) return;  // the session still has it
    if (conn_ != nullptr) conn_->forget(this);
    delete this;
  }

  Http2Upstream* conn_;
  UpstreamCallbacks* cb_;
  int32_t id_ = -1;
  bool head_;
  http::Http1Parser parser_;
  std::string req_in_;
  std::string out_;
  size_t out_off_ = 0;
  Fields req_trailers_;
  bool req_eof_ = false;
  bool deferred_ = false;
  bool write_pending_ = false;
  bool write_done_ = false;
  bool ready_ = false;
  bool busy_ = false;
  bool touched_ = false;
};

struct Http2Upstream::Guard {
  explicit Guard(Http2Upstream* c) : c_(c) { ++c_->depth_; }
  ~Guard() {
    if (--c_->depth_ == 0 && c_->state_ == State::kClosed && c_->pending_ == 0) delete c_;
  }
  Http2Upstream* c_;
};

Http2Upstream::Http2Upstream(Worker& worker, HostState& host, const Host& desc,
                             const ClusterInfo& cluster)
    : worker_(worker),
      host_(host),
      socket_(worker.io()),
      connector_(*this, worker.io(), worker.stats(), socket_, host.key, desc, cluster, "h2"),
      breaker_(cluster.breaker),
      max_requests_(cluster.max_requests_per_connection) {
  breaker_->connections.fetch_add(1, std::memory_order_relaxed);
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Http2Upstream::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Http2Upstream::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Http2Upstream::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Http2Upstream::onStreamClose);
  session_ = newHttp2ClientSession(cbs, this);
  nghttp2_session_callbacks_del(cbs);
  MESH_RELEASE_ASSERT(session_ != nullptr, "nghttp2 session: out of memory");
  idle_since_ = TurnClock::now();
}

Http2Upstream::~Http2Upstream() {
  nghttp2_session_del(session_);
  breaker_->connections.fetch_sub(1, std::memory_order_relaxed);
}

void Http2Upstream::connect() {
  Guard g(this);
  connector_.connect();
}

void Http2Upstream::onConnectorOperationDone(UpstreamConnector::Operation op,
                                             const boost::system::error_code& ec) {
  Guard g(this);
  --pending_;
  connector_.complete(op, ec);
}

void Http2Upstream::onTransportReady() {
  state_ = State::kConnected;
  std::vector<Stream*> waiting;
  waiting.swap(waiting_);
  for (Stream* s : waiting) {
    s->ready_ = true;
    touch(s);
  }
  deliver();
  flush();
  startRead();
}

UpstreamRequest* Http2Upstream::newStream(UpstreamCallbacks* cb, bool head_request) {
  auto* s = new Stream(*this, cb, head_request);
  ++requests_;
  if (state_ != State::kConnected) waiting_.push_back(s);
  return s;
}

bool Http2Upstream::hasCapacity() const {
  if (state_ == State::kClosed || goaway_) return false;
  if (max_requests_ > 0 && requests_ >= max_requests_) return false;
  uint32_t peer_max =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() + waiting_.size() < peer_max;
}

void Http2Upstream::fail(bool connect_failure, bool connect_timed_out) {
  if (state_ == State::kClosed) return;
  Guard g(this);
  state_ = State::kClosed;
  worker_.onHttp2Closed(this);  // no new stream lands here from the callbacks below
  std::vector<Stream*> all(waiting_.begin(), waiting_.end());
  for (auto& [id, s] : streams_) all.push_back(s);
  waiting_.clear();
  streams_.clear();
  touched_.clear();
  if (batch_ != nullptr) batch_->clear();
  for (Stream* s : all) {
    s->conn_ = nullptr;
    s->closed_ = true;
    if (s->busy_) {
      // Its deliver() is on the stack: it reports the reset and goes. Never a connect failure,
      // which comes from the connector's completion, not from inside a stream's callback.
      s->reset_ = true;
      continue;
    }
    UpstreamCallbacks* cb = s->cb_;
    s->cb_ = nullptr;
    bool seen = s->response_bytes_;
    bool ended = s->complete_;
    delete s;
    if (cb == nullptr || ended) continue;
    if (connect_failure) {
      cb->onUpstreamConnectFailure(connect_timed_out);
    } else {
      cb->onUpstreamReset(seen);
    }
  }
  connector_.cancel();
  socket_.close();
}

void Http2Upstream::close() { fail(false); }

void Http2Upstream::closeIfIdle() {
  Guard g(this);
  if (streams_.empty() && waiting_.empty()) close();
}

void Http2Upstream::forget(Stream* s) {
  if (s->id_ > 0) {
    auto it = streams_.find(s->id_);
    if (it != streams_.end() && it->second == s) streams_.erase(it);
  }
  auto w = std::find(waiting_.begin(), waiting_.end(), s);
  if (w != waiting_.end()) waiting_.erase(w);
  auto t = std::find(touched_.begin(), touched_.end(), s);
  if (t != touched_.end()) *t = nullptr;
  if (batch_ != nullptr) {
    for (Stream*& b : *batch_) {
      if (b == s) b = nullptr;
    }
  }
  if (streams_.empty() && waiting_.empty()) {
    idle_since_ = TurnClock::now();
    if (goaway_ || (max_requests_ > 0 && requests_ >= max_requests_)) {
      // No stream will come again: close from the loop (not inside the stream's call).
      ++pending_;
      boost::asio::post(worker_.io(), [this] {
        Guard g(this);
        --pending_;
        if (streams_.empty() && waiting_.empty()) close();
      });
    }
  }
  worker_.onHttp2StreamDone(this);
}

void Http2Upstream::touch(Stream* s) {
  if (s->touched_) return;
  s->touched_ = true;
  touched_.push_back(s);
}

void Http2Upstream::deliver() {
  if (in_deliver_) return;
  in_deliver_ = true;
  while (!touched_.empty()) {
    std::vector<Stream*> batch;
    batch.swap(touched_);
    batch_ = &batch;
    for (Stream*& s : batch) {
      if (s == nullptr) continue;
      s->touched_ = false;
    }
    for (Stream* s : batch) {
      if (s == nullptr || state_ == State::kClosed) continue;
      s->deliver();  // a stream forgotten meanwhile was nulled in `batch` by forget()
    }
  }
  batch_ = nullptr;
  in_deliver_ = false;
}

// The router called in (write, continueReading, release): what is due runs from the loop, so
// no callback reaches a router inside its own call.
void Http2Upstream::kick() {
  if (kick_posted_ || state_ == State::kClosed) return;
  kick_posted_ = true;
  ++pending_;
  boost::asio::post(worker_.io(), [this] {
    Guard g(this);
    --pending_;
    kick_posted_ = false;
    if (state_ == State::kClosed) return;
    deliver();
    flush();
  });
}

void Http2Upstream::startRead() {
  if (reading_ || state_ != State::kConnected) return;
  if (!read_buf_) read_buf_ = std::make_unique_for_overwrite<char[]>(kReadChunk);
  reading_ = true;
  ++pending_;
  socket_.asyncReadSome(boost::asio::buffer(read_buf_.get(), kReadChunk),
                        [this](const boost::system::error_code& ec, size_t n) {
                          Guard g(this);
                          --pending_;
                          reading_ = false;
                          onRead(ec, n);
                        });
}

void Http2Upstream::onRead(const boost::system::error_code& ec, size_t n) {
  if (state_ == State::kClosed) return;
  if (ec) {
    close();
    return;
  }
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(read_buf_.get()), n);
  if (rv < 0) {
    MESH_LOG("upstream", debug, "HTTP/2 from {}: {}", host_.key,
             nghttp2_strerror(static_cast<int>(rv)));
    close();
    return;
  }
  deliver();
  flush();
  if (state_ == State::kClosed) return;
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    close();
    return;
  }
  startRead();
}

void Http2Upstream::flush() {
  if (state_ != State::kConnected) return;
  while (next_.size() < kMaxQueuedOutput) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &p);
    if (n < 0) {
      close();
      return;
    }
    if (n == 0) break;
    next_.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  deliver();  // request writes that framing just completed
  if (writing_ || next_.empty() || state_ != State::kConnected) return;
  out_.swap(next_);
  next_.clear();
  writing_ = true;
  ++pending_;
  socket_.asyncWrite(boost::asio::buffer(out_),
                     [this](const boost::system::error_code& ec, size_t) {
                       Guard g(this);
                       --pending_;
                       writing_ = false;
                       if (state_ == State::kClosed) return;
                       if (ec) {
                         close();
                         return;
                       }
                       out_.clear();
                       flush();
                     });
}

// ---------------------------------------------------------------------------------------------
// nghttp2 callbacks: bookkeeping only; the router hears of it in deliver().

int Http2Upstream::onHeader(nghttp2_session* session, const nghttp2_frame* f, const uint8_t* name,
                            size_t nlen, const uint8_t* value, size_t vlen, uint8_t, void*) {
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, f->hd.stream_id));
  if (s == nullptr) return 0;
  if (!s->onHeader(f, {reinterpret_cast<const char*>(name), nlen},
                   {reinterpret_cast<const char*>(value), vlen})) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_PROTOCOL_ERROR);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // closes it: the router hears of a reset
  }
  return 0;
}

int Http2Upstream::onFrameRecv(nghttp2_session* session, const nghttp2_frame* f, void* ud) {
  auto* self = static_cast<Http2Upstream*>(ud);
  if (f->hd.type == NGHTTP2_GOAWAY) {
    self->goaway_ = true;  // streams above its last id are closed (REFUSED_STREAM) by nghttp2
    return 0;
  }
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, f->hd.stream_id));
  if (s == nullptr) return 0;
  if (s->Http2Response::onFrameRecv(f)) self->touch(s);
  return 0;
}

int Http2Upstream::onDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                               size_t len, void* ud) {
  auto* self = static_cast<Http2Upstream*>(ud);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  if (s == nullptr || s->cb_ == nullptr) {
    nghttp2_session_consume(session, id, len);
    return 0;
  }
  s->Http2Response::onDataChunk({reinterpret_cast<const char*>(data), len});
  self->touch(s);
  return 0;
}

int Http2Upstream::onStreamClose(nghttp2_session* session, int32_t id, uint32_t code, void* ud) {
  auto* self = static_cast<Http2Upstream*>(ud);
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  if (s == nullptr) return 0;
  s->Http2Response::onStreamClose(code);
  self->touch(s);
  if (s->cb_ == nullptr) {
    // The router let go already: the stream goes once nghttp2 is done with it.
    self->forget(s);
    s->conn_ = nullptr;
    delete s;  // maybeDelete would re-enter forget
  }
  return 0;
}

ssize_t Http2Upstream::readRequestData(nghttp2_session* session, int32_t id, uint8_t* buf,
                                       size_t len, uint32_t* flags, nghttp2_data_source* src,
                                       void* ud) {
  auto* self = static_cast<Http2Upstream*>(ud);
  auto* s = static_cast<Stream*>(src->ptr);
  size_t n = std::min(len, s->out_.size() - s->out_off_);
  if (n > 0) std::memcpy(buf, s->out_.data() + s->out_off_, n);
  s->out_off_ += n;
  if (s->out_off_ == s->out_.size()) {
    s->out_.clear();
    s->out_off_ = 0;
    if (s->write_pending_) {
      s->write_pending_ = false;
      s->write_done_ = true;
      self->touch(s);
    }
  }
  if (!s->out_.empty()) return static_cast<ssize_t>(n);
  if (!s->req_eof_) {
    if (n > 0) return static_cast<ssize_t>(n);
    s->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (!s->req_trailers_.empty()) {
    std::vector<nghttp2_nv> v;
    for (const auto& [name, value] : s->req_trailers_) v.push_back(nv(name, value));
    if (nghttp2_submit_trailer(session, id, v.data(), v.size()) == 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace mesh::proxy
