#include "proxy/http/http2_server_connection.h"

#include <boost/asio/post.hpp>
#include <cstring>

#include "core/log.h"
#include "core/turn_clock.h"
#include "proxy/http/http_connection.h"
#include "proxy/server/worker.h"

namespace mesh::proxy {
namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxQueuedOutput = 64 * 1024;  // frames taken from nghttp2 ahead of the socket
constexpr std::chrono::seconds kGoawayLinger{5};  // for a peer that does not read our GOAWAY

using Clock = std::chrono::steady_clock;

}  // namespace

// One request stream as its router sees it. Owned jointly by the connection (until the
// session closes the stream or the connection goes) and the router (until detach()).
class Http2ServerConnection::Stream final : public DownstreamStream {
 public:
  Stream(Http2ServerConnection& conn, int32_t id) : conn_(&conn), worker_(conn.worker_), id_(id) {}

  void asyncRead(boost::asio::mutable_buffer b, IoHandler h) override {
    if (conn_ == nullptr || reset_) {
      complete(std::move(h), boost::asio::error::connection_reset, 0);
      return;
    }
    read_buf_ = b;
    read_ = std::move(h);
    serveRead();
  }

  void asyncWrite(const BufferList& b, IoHandler h) override {
    if (conn_ == nullptr || reset_) {
      complete(std::move(h), boost::asio::error::connection_reset, 0);
      return;
    }
    size_t total = 0;
    bool drained = true;
    for (const auto& buf : b) {
      total += buf.size();
      drained = conn_->session_->writeResponse(
                    id_, std::string_view(static_cast<const char*>(buf.data()), buf.size())) &&
                drained;
    }
    written_ = total;
    if (drained) {
      complete(std::move(h), {}, total);
    } else {
      write_ = std::move(h);
    }
    serveRead();  // the response may be complete now: a waiting read ends
    if (conn_ != nullptr) conn_->flush();  // serveRead's flush may have closed the connection
  }

  void detach() override {
    attached_ = false;
    if (read_) complete(std::move(read_), boost::asio::error::operation_aborted, 0);
    if (write_) complete(std::move(write_), boost::asio::error::operation_aborted, 0);
    Http2ServerConnection* c = conn_;
    if (c != nullptr && in_session_) {
      Http2ServerSession& s = *c->session_;
      if (!s.responseComplete(id_)) {
        s.resetStream(id_, NGHTTP2_INTERNAL_ERROR);
      } else if (!s.requestEnded(id_)) {
        s.resetStream(id_, NGHTTP2_NO_ERROR);  // the rest of the body is read and dropped
      }
    }
    if (!in_session_) delete this;  // else once the session closes the stream
    if (c != nullptr) c->flush();
  }

  // The session has request bytes, or the exchange moved on: a waiting read may complete.
  void serveRead() {
    if (!read_ || conn_ == nullptr) return;
    if (reset_) {
      complete(std::move(read_), boost::asio::error::connection_reset, 0);
      return;
    }
    if (!in_session_) {
      complete(std::move(read_), boost::asio::error::eof, 0);
      return;
    }
    Http2ServerSession& s = *conn_->session_;
    std::string_view p = s.pendingRequest(id_);
    if (!p.empty()) {
      size_t n = std::min(p.size(), read_buf_.size());
      std::memcpy(read_buf_.data(), p.data(), n);
      s.consumeRequest(id_, n);  // may open the windows (WINDOW_UPDATE)
      complete(std::move(read_), {}, n);
      conn_->flush();  // last: it may close the connection
      return;
    }
    // A half-closed request is not the end: only a complete exchange is.
    if (s.requestEnded(id_) && s.responseComplete(id_) && !write_) {
      complete(std::move(read_), boost::asio::error::eof, 0);
    }
  }

  void onDrained() {
    if (write_) complete(std::move(write_), {}, written_);
    serveRead();
  }

  // The session closed the stream: after a complete exchange, or reset.
  void onClose(bool complete_exchange) {
    if (!complete_exchange) reset_ = true;
    if (write_) {
      complete(std::move(write_),
               reset_ ? boost::system::error_code(boost::asio::error::connection_reset)
                      : boost::system::error_code(),
               written_);
    }
    in_session_ = false;
    serveRead();
    maybeDelete();
  }

  // The connection is gone.
  void onConnectionClosed() {
    reset_ = true;
    in_session_ = false;
    if (read_) complete(std::move(read_), boost::asio::error::connection_reset, 0);
    if (write_) complete(std::move(write_), boost::asio::error::connection_reset, 0);
    conn_ = nullptr;
    maybeDelete();
  }

  void setRouter() { attached_ = true; }
  bool attached() const { return attached_; }

 private:
  void complete(IoHandler h, boost::system::error_code ec, size_t n) {
    worker_.deferCompletion(std::move(h), ec, n);  // as a post, without a handler allocation
  }
  void maybeDelete() {
    if (!attached_ && !in_session_) delete this;
  }

  Http2ServerConnection* conn_;
  Worker& worker_;
  int32_t id_;
  bool attached_ = false;  // a router holds the stream
  bool in_session_ = true;
  bool reset_ = false;
  boost::asio::mutable_buffer read_buf_;
  IoHandler read_;
  IoHandler write_;
  size_t written_ = 0;
};

struct Http2ServerConnection::Guard {
  explicit Guard(Http2ServerConnection* c) : c_(c) { ++c_->depth_; }
  ~Guard() {
    if (--c_->depth_ == 0 && c_->closed_ && c_->pending_ == 0) delete c_;
  }
  Http2ServerConnection* c_;
};

Http2ServerConnection::Http2ServerConnection(
    Worker& worker, tls::TransportSocket socket, uint32_t listener_slot,
    std::string_view initial_bytes, std::optional<boost::asio::ip::tcp::endpoint> original_dst,
    DownstreamPeer peer, stats::SeriesId cx_active)
    : worker_(worker),
      socket_(std::move(socket)),
      slot_(listener_slot),
      original_dst_(original_dst),
      peer_(std::move(peer)),
      cx_active_(cx_active),
      initial_(initial_bytes) {
  Http2Limits limits;
  if (const ListenerInfo* l = worker.snapshot().listenerBySlot(listener_slot)) limits = l->http2;
  session_ = std::make_unique<Http2ServerSession>(static_cast<Callbacks&>(*this), limits);
}

Http2ServerConnection::~Http2ServerConnection() = default;

void Http2ServerConnection::start() {
  Guard g(this);
  last_activity_ = TurnClock::now();
  worker_.addConnection(this);
  std::string initial = std::move(initial_);
  if (!initial.empty()) receive(initial);
  if (closed_) return;
  flush();
  startRead();
}

void Http2ServerConnection::startRead() {
  if (reading_ || closed_ || (read_done_ && !lingering_)) return;
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

void Http2ServerConnection::onRead(const boost::system::error_code& ec, size_t n) {
  if (closed_) return;
  if (ec) {
    close();  // the client is gone (or done after our GOAWAY): every stream with it
    return;
  }
  last_activity_ = TurnClock::now();
  if (lingering_) {
    startRead();  // after our GOAWAY: what the client still sends is dropped
    return;
  }
  receive(std::string_view(read_buf_.get(), n));
  if (closed_) return;
  flush();
  startRead();
}

void Http2ServerConnection::receive(std::string_view bytes) {
  receiving_ = true;
  bool more = session_->receive(bytes);
  receiving_ = false;
  if (!more) {
    read_done_ = true;
    goaway_at_ = TurnClock::now();
    if (session_->goawayCode() != 0) {
      if (const ListenerInfo* l = worker_.snapshot().listenerBySlot(slot_)) {
        worker_.stats().inc(l->stats.protocol_error);
      }
    }
  }
  // Routers start, and waiting reads are served, outside nghttp2's callbacks.
  std::vector<int32_t> started;
  started.swap(started_);
  for (int32_t id : started) {
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    Stream* s = it->second;
    s->setRouter();
    HttpConnection* router = HttpConnection::forStream(worker_, slot_, original_dst_);
    router->attachStream(s, peer_);
    router->start();
  }
  std::vector<int32_t> ready;
  ready.swap(ready_);
  for (int32_t id : ready) {
    auto it = streams_.find(id);
    if (it != streams_.end()) it->second->serveRead();
  }
}

void Http2ServerConnection::flush() {
  if (closed_ || writing_ || flush_posted_) return;  // a write's completion flushes again
  // Deferred to the end of this turn of the event loop: the responses that upstreams complete
  // in one turn (and the frames a read produced) leave in one send: with h2load -c16 -m4,
  // 0.5 -> 0.25 downstream sends per request (strace -c).
  flush_posted_ = true;
  ++pending_;
  boost::asio::post(worker_.io(), [this] {
    Guard g(this);
    --pending_;
    flush_posted_ = false;
    flushNow();
  });
}

void Http2ServerConnection::flushNow() {
  if (closed_) return;
  if (next_.size() < kMaxQueuedOutput) session_->send(next_, kMaxQueuedOutput);
  if (!writing_ && !next_.empty()) {
    out_.swap(next_);
    next_.clear();
    writing_ = true;
    ++pending_;
    socket_.asyncWrite(boost::asio::buffer(out_), [this](const boost::system::error_code& ec,
                                                         size_t) {
      Guard g(this);
      --pending_;
      writing_ = false;
      onWrite(ec);
    });
    return;
  }
  if (!writing_ && next_.empty() && session_->finished()) {
    if (!read_done_) {
      close();  // a graceful end: the client has nothing more in flight
      return;
    }
    // After a GOAWAY for an error: closing with the client's bytes unread would reset the
    // connection and could destroy the GOAWAY before the client reads it. Half-close, drop
    // what still arrives, and close at the client's EOF (or after kGoawayLinger).
    if (!lingering_) {
      lingering_ = true;
      socket_.shutdownSend();
      startRead();
    }
  }
}

void Http2ServerConnection::onWrite(const boost::system::error_code& ec) {
  if (closed_) return;
  if (ec) {
    close();
    return;
  }
  last_activity_ = TurnClock::now();
  out_.clear();
  flushNow();
}

void Http2ServerConnection::close() {
  if (closed_) return;
  closed_ = true;
  socket_.close();
  std::unordered_map<int32_t, Stream*> streams;
  streams.swap(streams_);
  for (auto& [id, s] : streams) s->onConnectionClosed();
  if (cx_active_.valid()) worker_.stats().add(cx_active_, -1);
  worker_.removeConnection(this);
  // Deleted from the loop, whoever closed it.
  ++pending_;
  boost::asio::post(worker_.io(), [this] {
    Guard g(this);
    --pending_;
  });
}

void Http2ServerConnection::drain() {
  Guard g(this);
  if (closed_) return;
  session_->shutdown();
  flush();
}

void Http2ServerConnection::closeIfIdle(Clock::time_point now) {
  Guard g(this);
  if (closed_) return;
  if (read_done_) {
    // A GOAWAY is out (or queued behind a peer that stopped reading): not for ever.
    if (now - goaway_at_ > kGoawayLinger) close();
    return;
  }
  if (!streams_.empty()) return;
  const ListenerInfo* l = worker_.snapshot().listenerBySlot(slot_);
  Millis timeout = l ? l->idle_timeout : Millis(3600 * 1000);
  if (timeout.count() > 0 && now - last_activity_ > timeout) close();
}

// ---------------------------------------------------------------------------------------------
// Session callbacks (inside nghttp2: only bookkeeping here)

void Http2ServerConnection::onRequest(int32_t id) {
  streams_[id] = new Stream(*this, id);
  started_.push_back(id);
}

void Http2ServerConnection::onRequestData(int32_t id) { ready_.push_back(id); }

void Http2ServerConnection::onStreamClose(int32_t id, uint32_t error_code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream* s = it->second;
  streams_.erase(it);
  const bool complete = error_code == NGHTTP2_NO_ERROR && session_->responseComplete(id) &&
                        session_->requestEnded(id);
  s->onClose(complete);
}

void Http2ServerConnection::onResponseDrained(int32_t id) {
  auto it = streams_.find(id);
  if (it != streams_.end()) it->second->onDrained();
}

}  // namespace mesh::proxy
