#include "proxy/upstream/upstream_connection.h"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "core/log.h"
#include "core/turn_clock.h"
#include "proxy/server/worker.h"

namespace mesh::proxy {

namespace {
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxBuffer = 128 * 1024;  // a 60 KiB head plus a read's worth of body
}  // namespace

// Every entry point holds a Guard: the object deletes itself when the outermost call returns
// with the connection closed and no asynchronous operation outstanding.
struct UpstreamConnection::Guard {
  explicit Guard(UpstreamConnection* c) : c_(c) { ++c_->depth_; }
  ~Guard() {
    if (--c_->depth_ == 0 && c_->state_ == State::kClosed && c_->pending_ == 0) {
      c_->worker_.onUpstreamClosed(c_);
      delete c_;
    }
  }
  UpstreamConnection* c_;
};

UpstreamConnection::UpstreamConnection(Worker& worker, HostState& host, const Host& desc,
                                       const ClusterInfo& cluster)
    : worker_(worker),
      host_(host),
      socket_(worker.io()),
      connector_(*this, worker.io(), worker.stats(), socket_, host.key, desc, cluster),
      in_(kReadChunk),
      parser_(http::Http1Parser::Type::kResponse),
      max_requests_(cluster.max_requests_per_connection),
      breaker_(cluster.breaker) {
  breaker_->connections.fetch_add(1, std::memory_order_relaxed);
}

UpstreamConnection::~UpstreamConnection() {
  breaker_->connections.fetch_sub(1, std::memory_order_relaxed);
}

void UpstreamConnection::connect(UpstreamCallbacks* cb, bool head_request) {
  Guard g(this);
  cb_ = cb;
  parser_.setRequestWasHead(head_request);
  upgrade_requested_ = false;
  ++requests_;
  state_ = State::kConnecting;
  connector_.connect();
}

void UpstreamConnection::onConnectorOperationDone(UpstreamConnector::Operation op,
                                                  const boost::system::error_code& ec) {
  Guard g(this);
  --pending_;
  connector_.complete(op, ec);
}

void UpstreamConnection::onTransportFailed(bool timed_out) {
  UpstreamCallbacks* cb = cb_;
  cb_ = nullptr;
  close();
  if (cb) cb->onUpstreamConnectFailure(timed_out);
}

void UpstreamConnection::onTransportReady() {
  state_ = State::kActive;
  startRead();
  if (cb_) cb_->onUpstreamReady();
}

void UpstreamConnection::assign(UpstreamCallbacks* cb, bool head_request) {
  Guard g(this);
  cb_ = cb;
  parser_.setRequestWasHead(head_request);
  upgrade_requested_ = false;
  state_ = State::kActive;
  response_bytes_ = false;
  paused_ = false;
  ++requests_;
  startRead();  // normally already pending from the idle state
}

void UpstreamConnection::write(const BufferList& bufs) {
  Guard g(this);
  if (state_ == State::kClosed) return;
  writing_ = true;
  ++pending_;
  socket_.asyncWrite(bufs, [this](const boost::system::error_code& ec, size_t) {
    Guard g(this);
    --pending_;
    writing_ = false;
    if (state_ == State::kClosed) return;
    if (ec) {
      UpstreamCallbacks* cb = cb_;
      cb_ = nullptr;
      close();
      if (cb) cb->onUpstreamReset(response_bytes_);
      return;
    }
    if (cb_) cb_->onUpstreamWriteComplete();
  });
}

void UpstreamConnection::startRead() {
  if (reading_ || paused_ || state_ == State::kClosed || state_ == State::kConnecting) return;
  auto [p, n] = in_.prepare(2048, kMaxBuffer);
  if (n == 0) return;  // a head that big has already failed the parser's limit
  reading_ = true;
  ++pending_;
  socket_.asyncReadSome(boost::asio::buffer(p, n),
                        [this](const boost::system::error_code& ec, size_t len) {
                          Guard g(this);
                          --pending_;
                          reading_ = false;
                          onRead(ec, len);
                        });
}

void UpstreamConnection::onRead(const boost::system::error_code& ec, size_t n) {
  if (state_ == State::kClosed) return;
  if (ec) {
    if (state_ == State::kIdle) {
      close();
      return;
    }
    if (tunnel_ && ec == boost::asio::error::eof && cb_ != nullptr) {
      cb_->onUpstreamComplete(http::HeaderList());  // the server's half-close; no more reads
      return;
    }
    if (ec == boost::asio::error::eof && cb_ != nullptr) {
      auto r = parser_.finish(in_.size());
      if (r.event == http::Http1Parser::Event::kMessageComplete) {
        // A body delimited by the close: complete, and the connection is done.
        UpstreamCallbacks* cb = cb_;
        cb->onUpstreamComplete(parser_.trailers());
        close();
        return;
      }
    }
    UpstreamCallbacks* cb = cb_;
    cb_ = nullptr;
    close();
    if (cb) cb->onUpstreamReset(response_bytes_);
    return;
  }
  in_.commit(n);
  if (state_ == State::kIdle) {
    close();  // bytes nobody asked for: the connection is out of sync
    return;
  }
  response_bytes_ = true;
  processInput();
}

void UpstreamConnection::relayTunnel() {
  while (state_ == State::kActive && cb_ != nullptr && !paused_ && !in_.empty()) {
    std::string_view data = in_.view();
    in_.consume(data.size());
    if (cb_->onUpstreamBody(data)) paused_ = true;
  }
  startRead();
}

void UpstreamConnection::processInput() {
  using Event = http::Http1Parser::Event;
  if (tunnel_) {
    relayTunnel();
    return;
  }
  while (state_ == State::kActive && cb_ != nullptr && !paused_) {
    auto r = parser_.parse(in_.view());
    switch (r.event) {
      case Event::kNeedMore:
        in_.consume(r.consumed);
        startRead();
        return;
      case Event::kHead: {
        in_.consume(r.consumed);
        const http::ResponseHead& h = parser_.response();
        if (h.status == 101 && upgrade_requested_) {
          // The bytes after the head belong to the upgraded protocol.
          tunnel_ = true;
          cb_->onUpstreamHead(h);
          relayTunnel();
          return;
        }
        if (h.status == 101) {
          // We never asked for an upgrade on this request, so a 101 is a protocol violation.
          UpstreamCallbacks* cb = cb_;
          cb_ = nullptr;
          close();
          cb->onUpstreamProtocolError(http::ParseError::kBadStatusLine);
          return;
        }
        if (h.status < 200) continue;  // interim response: skipped
        cb_->onUpstreamHead(h);
        continue;
      }
      case Event::kBody:
        in_.consume(r.consumed);
        if (cb_->onUpstreamBody(r.data)) paused_ = true;
        continue;
      case Event::kMessageComplete: {
        in_.consume(r.consumed);
        if (parser_.response().status < 200) continue;
        UpstreamCallbacks* cb = cb_;
        cb->onUpstreamComplete(parser_.trailers());
        return;
      }
      case Event::kError: {
        UpstreamCallbacks* cb = cb_;
        cb_ = nullptr;
        close();
        cb->onUpstreamProtocolError(parser_.error());
        return;
      }
    }
  }
}

void UpstreamConnection::continueReading() {
  Guard g(this);
  paused_ = false;
  processInput();
  startRead();
}

void UpstreamConnection::release(bool reusable) {
  Guard g(this);
  cb_ = nullptr;
  paused_ = false;
  if (state_ != State::kActive || !reusable || !in_.empty() || writing_ || !parser_.idle() ||
      worker_.draining() || (max_requests_ != 0 && requests_ >= max_requests_)) {
    close();
    return;
  }
  state_ = State::kIdle;
  idle_since_ = TurnClock::now();
  worker_.onConnectionIdle(this);
  startRead();
}

void UpstreamConnection::abort() {
  Guard g(this);
  cb_ = nullptr;
  close();
}

void UpstreamConnection::closeIdle() {
  Guard g(this);
  close();
}

void UpstreamConnection::detachFromPool() {
  auto& idle = host_.idle;
  for (size_t i = 0; i < idle.size(); ++i) {
    if (idle[i] == this) {
      idle[i] = idle.back();
      idle.pop_back();
      return;
    }
  }
}

void UpstreamConnection::close() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kIdle) detachFromPool();
  state_ = State::kClosed;
  socket_.close();
  connector_.cancel();
}

}  // namespace mesh::proxy
