#include "core/tls/transport_socket.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

#include "core/net/readable_wait.h"

namespace mesh::tls {
namespace {

// Empties this thread's OpenSSL error queue before an SSL call, as SSL_get_error needs. Looking
// first is cheaper than clearing: ERR_clear_error walks all 16 slots of the queue, and on the
// hot path (a record read or written per request) the queue is nearly always empty already.
void clearErrors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace

// A BIO over a non-blocking descriptor. Writes go straight to the socket with MSG_NOSIGNAL (a
// peer that resets must be an error value, never a SIGPIPE for the whole proxy). Reads are served
// from `in`, which TransportSocket fills with Asio reads of whatever the socket holds: one recv
// brings a whole record (or several) instead of OpenSSL's header-then-body pair, and Asio's
// speculative read needs no epoll re-arm, which a wait for readability costs on every request.
struct SocketBioState {
  static constexpr size_t kCapacity = 20 * 1024;  // > the largest TLS record (16 KiB + 2 KiB + 5)
  int fd = -1;
  std::unique_ptr<char[]> in{new char[kCapacity]};
  size_t begin = 0;  // ciphertext not yet taken by OpenSSL: [begin, end)
  size_t end = 0;
  bool eof = false;     // the peer closed its side and `in` is drained up to it
  bool failed = false;  // reading failed (reset): reported once `in` is drained
  // Batched mode (the loop has an IoBatcher): ciphertext collects here and TransportSocket
  // queues it after the OpenSSL call; null: written to the socket at once.
  std::string* out = nullptr;
  bool out_failed = false;  // a batched send failed: later writes fail too
};

namespace {

int bioWrite(BIO* b, const char* data, int len) {
  auto* s = static_cast<SocketBioState*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (s->out != nullptr) {
    if (s->out_failed) return -1;
    s->out->append(data, static_cast<size_t>(len));
    return len;
  }
  ssize_t n = ::send(s->fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
    return -1;
  }
  return static_cast<int>(n);
}

int bioRead(BIO* b, char* out, int len) {
  auto* s = static_cast<SocketBioState*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  size_t avail = s->end - s->begin;
  if (avail == 0) {
    if (s->failed) return -1;
    if (s->eof) return 0;
    BIO_set_retry_read(b);
    return -1;
  }
  size_t n = std::min(avail, static_cast<size_t>(len));
  std::memcpy(out, s->in.get() + s->begin, n);
  s->begin += n;
  if (s->begin == s->end) s->begin = s->end = 0;
  return static_cast<int>(n);
}

long bioCtrl(BIO* b, int cmd, long, void*) {  // NOLINT(runtime/int): OpenSSL's signature
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF: {
      auto* st = static_cast<SocketBioState*>(BIO_get_data(b));
      return st->eof && st->begin == st->end ? 1 : 0;
    }
    case BIO_CTRL_PENDING: {
      auto* st = static_cast<SocketBioState*>(BIO_get_data(b));
      return static_cast<long>(st->end - st->begin);  // NOLINT(runtime/int)
    }
    default:
      return 0;
  }
}

int bioCreate(BIO* b) {
  BIO_set_data(b, new SocketBioState());
  BIO_set_init(b, 1);
  return 1;
}

int bioDestroy(BIO* b) {
  delete static_cast<SocketBioState*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* socketBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mesh socket");
    BIO_meth_set_write(m, bioWrite);
    BIO_meth_set_read(m, bioRead);
    BIO_meth_set_ctrl(m, bioCtrl);
    BIO_meth_set_create(m, bioCreate);
    BIO_meth_set_destroy(m, bioDestroy);
    return m;
  }();
  return method;
}

boost::system::error_code protocolError() {
  return boost::system::errc::make_error_code(boost::system::errc::protocol_error);
}

}  // namespace

TransportSocket::TransportSocket(TransportSocket&& o) noexcept
    : socket_(std::move(o.socket_)),
      ctx_(std::move(o.ctx_)),
      ssl_(o.ssl_),
      in_(o.in_),
      error_(std::move(o.error_)),
      peer_principal_(std::move(o.peer_principal_)),
      local_principal_(std::move(o.local_principal_)),
      handshake_done_(o.handshake_done_),
      peer_certified_(o.peer_certified_),
      closed_(o.closed_),
      batcher_checked_(o.batcher_checked_),
      batcher_(o.batcher_),
      batched_(std::move(o.batched_)),
      tls_out_(std::move(o.tls_out_)) {
  o.ssl_ = nullptr;
  o.in_ = nullptr;
  if (in_ != nullptr && in_->out != nullptr) in_->out = &tls_out_;
  if (batched_) batched_->owner = this;
  o.releaseIdleWait();  // the wait stays on the descriptor, stale: this object receives at once
}

TransportSocket::~TransportSocket() {
  sendBatchedNow(true);
  releaseIdleWait();
  bool recv_dropped = dropBatchedRecv();
  if (alive_) *alive_ = nullptr;
  if (recv_dropped || fill_pending_ || read_waiting_) {
    // As Asio does for a destroyed socket: what waited completes, aborted.
    auto ex = socket_.get_executor();
    auto aborted = boost::asio::error::operation_aborted;
    if (read_handler_)
      boost::asio::post(ex, [h = std::move(read_handler_), aborted] { h(aborted, 0); });
    if (write_handler_ && ssl_ != nullptr)
      boost::asio::post(ex, [h = std::move(write_handler_), aborted] { h(aborted, 0); });
    if (handshake_handler_)
      boost::asio::post(ex, [h = std::move(handshake_handler_), aborted] { h(aborted); });
  }
  if (ssl_ != nullptr) SSL_free(ssl_);
}

void TransportSocket::onBatchedSend(int result) {
  if (ssl_ != nullptr) return onTlsBatchSent(result);
  IoHandler h = std::move(write_handler_);
  write_handler_ = nullptr;
  size_t total = batched_->total;
  if (result >= 0 && static_cast<size_t>(result) == total) return h({}, total);
  if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK) {
    return h(boost::system::error_code(-result, boost::asio::error::get_system_category()), 0);
  }
  // The socket took part of it (or none): the rest waits for room as any Asio write does.
  size_t sent = result > 0 ? static_cast<size_t>(result) : 0;
  std::vector<boost::asio::const_buffer> rest;
  size_t skip = sent;
  for (int i = 0; i < batched_->iovcnt; ++i) {
    const iovec& v = batched_->iov[i];
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    rest.emplace_back(static_cast<const char*>(v.iov_base) + skip, v.iov_len - skip);
    skip = 0;
  }
  boost::asio::async_write(
      socket_, rest,
      [h = std::move(h), sent](const boost::system::error_code& ec, size_t n) { h(ec, sent + n); });
}

std::unique_ptr<TransportSocket::BatchedOp> TransportSocket::newOp(net::IoBatcher::Op::Kind kind) {
  auto op = std::make_unique<BatchedOp>();
  op->owner = this;
  op->kind = kind;
  return op;
}

void TransportSocket::startRecv() {
  if (wait_armed_) {
    read_waiting_ = true;        // the armed wait receives when the socket turns readable
    scheduler_->work_started();  // from now on it is work, as a pending read
    return;
  }
  queueRecv();
}

void TransportSocket::queueRecv() {
  boost::asio::mutable_buffer b = read_buf_;
  if (ssl_ != nullptr) {
    b = boost::asio::buffer(in_->in.get() + in_->end, SocketBioState::kCapacity - in_->end);
  }
  if (!batched_read_) batched_read_ = newOp(net::IoBatcher::Op::Kind::kRecv);
  BatchedOp& r = *batched_read_;
  r.iov[0].iov_base = b.data();
  r.iov[0].iov_len = b.size();
  r.iovcnt = 1;
  r.fd = socket_.native_handle();
  batcher_->queue(r, socket_.get_executor());
}

void TransportSocket::armReadable() {
  if (wait_armed_) return;
  // No syscall (see readable_wait.h). The wait may outlive this object: the liveness cell.
  if (!alive_) alive_ = std::make_shared<TransportSocket*>(this);
  if (reactor_ == nullptr) {
    reactor_ = &net::reactorOf(socket_.get_executor());
    scheduler_ = &net::schedulerOf(socket_.get_executor());
  }
  wait_armed_ = true;
  net::asyncWaitReadable(*reactor_, socket_,
                         [alive = alive_, gen = ++wait_gen_](const boost::system::error_code& ec) {
                           TransportSocket* self = *alive;
                           if (self != nullptr && gen == self->wait_gen_) self->onReadable(ec);
                         });
  if (!read_waiting_) scheduler_->work_finished();  // nobody reads yet: not work
}

void TransportSocket::releaseIdleWait() {
  // The completion of a wait nobody reads on counts work down: give it back first.
  if (!wait_armed_ || read_waiting_) return;
  wait_armed_ = false;
  ++wait_gen_;
  scheduler_->work_started();
}

void TransportSocket::onReadable(const boost::system::error_code& ec) {
  if (!read_waiting_) {
    releaseIdleWait();  // no read yet: the next one receives at once
    return;
  }
  wait_armed_ = false;
  read_waiting_ = false;
  if (!ec) return queueRecv();
  if (ssl_ != nullptr) return onFill(ec, 0);
  IoHandler h = std::move(read_handler_);
  read_handler_ = nullptr;
  h(ec, 0);
}

void TransportSocket::onBatchedRecv(int result) {
  if (result == -EAGAIN || result == -EWOULDBLOCK) {
    read_waiting_ = true;
    return armReadable();
  }
  // Emptied, no FIN behind (IoBatcher::drainSignal): the next bytes or FIN make a fresh
  // readiness event. Arming the wait now, before the loop polls again, catches it whenever the
  // next read starts, and that read then needs no receive that would say EAGAIN.
  if (result > 0 && !batched_read_->more) armReadable();
  boost::system::error_code ec;
  size_t n = 0;
  if (result > 0) {
    n = static_cast<size_t>(result);
  } else if (result == 0) {
    ec = boost::asio::error::eof;
  } else {
    ec = boost::system::error_code(-result, boost::asio::error::get_system_category());
  }
  if (ssl_ != nullptr) return onFill(ec, n);
  IoHandler h = std::move(read_handler_);
  read_handler_ = nullptr;
  h(ec, n);
}

bool TransportSocket::dropBatchedRecv() {
  if (!batched_read_ || batcher_ == nullptr || !batcher_->queued(*batched_read_)) return false;
  batcher_->cancel(*batched_read_);
  return true;
}

void TransportSocket::sendBatchedNow(bool closing) {
  if (!batched_ || batcher_ == nullptr || !batcher_->queued(*batched_)) return;
  batcher_->cancel(*batched_);
  // What Asio's immediate send did before this call: one try; what does not fit is cut off by
  // the close or the shutdown that follows.
  msghdr msg{};
  msg.msg_iov = batched_->iov;
  msg.msg_iovlen = static_cast<size_t>(batched_->iovcnt);
  ssize_t n = ::sendmsg(batched_->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  bool whole = n >= 0 && static_cast<size_t>(n) == batched_->total;
  if (ssl_ != nullptr) {
    tls_sending_.clear();
    if (whole && !tls_out_.empty()) {
      n = ::send(batched_->fd, tls_out_.data(), tls_out_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      whole = n >= 0 && static_cast<size_t>(n) == tls_out_.size();
    }
    tls_out_.clear();
    if (!whole) in_->out_failed = true;
    if (!tls_write_waiting_) return;
    tls_write_waiting_ = false;
  }
  IoHandler h = std::move(write_handler_);
  write_handler_ = nullptr;
  size_t total = ssl_ != nullptr ? write_buf_.size() : batched_->total;
  boost::system::error_code ec;
  if (!whole) {
    ec = closing ? boost::asio::error::operation_aborted : boost::asio::error::broken_pipe;
  }
  boost::asio::post(socket_.get_executor(),
                    [h = std::move(h), ec, total] { h(ec, ec ? 0 : total); });
}

void TransportSocket::flushTls() {
  if (tls_out_.empty() || !tls_sending_.empty() || closed_) return;
  tls_sending_.swap(tls_out_);  // tls_out_ is empty again
  BatchedOp& w = *batched_;
  w.iov[0].iov_base = tls_sending_.data();
  w.iov[0].iov_len = tls_sending_.size();
  w.iovcnt = 1;
  w.total = tls_sending_.size();
  w.fd = socket_.native_handle();
  batcher_->queue(w, socket_.get_executor());
}

void TransportSocket::onTlsBatchSent(int result) {
  size_t total = tls_sending_.size();
  if (result >= 0 && static_cast<size_t>(result) == total) return onTlsSent({});
  if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK) {
    return onTlsSent(boost::system::error_code(-result, boost::asio::error::get_system_category()));
  }
  // The rest waits for room. Nothing else guarantees this object outlives that wait (a flush
  // can follow a handshake or a read whose handler has run), hence the liveness cell.
  size_t sent = result > 0 ? static_cast<size_t>(result) : 0;
  if (!alive_) alive_ = std::make_shared<TransportSocket*>(this);
  boost::asio::async_write(socket_, boost::asio::buffer(tls_sending_.data() + sent, total - sent),
                           [alive = alive_](const boost::system::error_code& ec, size_t) {
                             if (*alive != nullptr) (*alive)->onTlsSent(ec);
                           });
}

void TransportSocket::onTlsSent(const boost::system::error_code& ec) {
  tls_sending_.clear();
  if (ec) {
    in_->out_failed = true;
    tls_out_.clear();
    if (error_.empty()) error_ = "connection reset";
  } else if (!tls_out_.empty()) {
    flushTls();  // more came meanwhile; a waiting write completes after it
    if (!tls_sending_.empty()) return;
  }
  if (shutdown_pending_) {
    shutdown_pending_ = false;
    shutdownSend();
  }
  if (!tls_write_waiting_) return;
  tls_write_waiting_ = false;
  finishWrite(ec ? boost::asio::error::connection_reset : ec, false);
}

bool TransportSocket::startTls(std::shared_ptr<const TlsContext> ctx) {
  SSL* ssl = ctx ? ctx->newSsl() : nullptr;
  if (ssl == nullptr) {
    error_ = "cannot create an SSL: " + lastError();
    return false;
  }
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  BIO* bio = BIO_new(socketBioMethod());
  if (ec || bio == nullptr) {
    SSL_free(ssl);
    error_ = "cannot set up the socket for TLS";
    return false;
  }
  in_ = static_cast<SocketBioState*>(BIO_get_data(bio));
  in_->fd = socket_.native_handle();
  if (batching()) {
    in_->out = &tls_out_;
    if (!batched_) batched_ = newOp(net::IoBatcher::Op::Kind::kSend);
  }
  SSL_set_bio(ssl, bio, bio);  // one reference, owned by the SSL
  ssl_ = ssl;
  ctx_ = std::move(ctx);
  return true;
}

std::string_view TransportSocket::version() const {
  return ssl_ != nullptr ? SSL_get_version(ssl_) : "";
}

void TransportSocket::asyncHandshake(HandshakeHandler h) {
  handshake_handler_ = std::move(h);
  if (ssl_ == nullptr || handshake_done_) {
    finishHandshake({}, true);
    return;
  }
  doHandshake(true);
}

void TransportSocket::doHandshake(bool initiating) {
  if (closed_) return finishHandshake(boost::asio::error::operation_aborted, initiating);
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  flushTls();
  if (r == 1) {
    handshake_done_ = true;
    peer_certified_ = SSL_get0_peer_certificate(ssl_) != nullptr &&
                      SSL_get_verify_result(ssl_) == X509_V_OK &&
                      SSL_get_verify_mode(ssl_) != SSL_VERIFY_NONE;
    peer_principal_ = tls::peerPrincipal(ssl_);
    local_principal_ = tls::localPrincipal(ssl_);
    return finishHandshake({}, initiating);
  }
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ) {
    handshake_wants_input_ = true;
    if (!startFill()) return finishHandshake(protocolError(), initiating);
    return;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    socket_.async_wait(boost::asio::socket_base::wait_write,
                       [this](const boost::system::error_code& ec) {
                         if (ec) return finishHandshake(ec, false);
                         doHandshake(false);
                       });
    return;
  }
  long verify = SSL_get_verify_result(ssl_);  // NOLINT(runtime/int)
  if (verify != X509_V_OK) {
    error_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    ERR_clear_error();
  } else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    error_ = "connection closed during the handshake";
  } else {
    error_ = lastError();
  }
  finishHandshake(protocolError(), initiating);
}

void TransportSocket::finishHandshake(const boost::system::error_code& ec, bool initiating) {
  HandshakeHandler h = std::move(handshake_handler_);
  handshake_handler_ = nullptr;
  if (initiating) {
    boost::asio::post(socket_.get_executor(), [h = std::move(h), ec] { h(ec); });
  } else {
    h(ec);
  }
}

void TransportSocket::doRead(bool initiating) {
  if (closed_ || cancel_read_) {
    cancel_read_ = false;
    return finishRead(boost::asio::error::operation_aborted, 0, initiating);
  }
  if (handshake_done_ && in_->begin == in_->end && !in_->eof && !in_->failed &&
      SSL_has_pending(ssl_) == 0) {
    // No ciphertext here and no record inside OpenSSL: SSL_read_ex could only want input.
    // Skipped, with its ERR_clear_error and SSL_get_error: every keep-alive request's read
    // after its response came here once.
    read_wants_input_ = true;
    startFill();  // cannot fail: the buffer is empty
    return;
  }
  clearErrors();
  size_t n = 0;
  int r = SSL_read_ex(ssl_, read_buf_.data(), read_buf_.size(), &n);
  flushTls();  // a read can answer (a key update, a session ticket's ack)
  if (r == 1) {
    handshake_done_ = true;
    return finishRead({}, n, initiating);
  }
  int e = SSL_get_error(ssl_, r);
  switch (e) {
    case SSL_ERROR_WANT_READ:
      read_wants_input_ = true;
      if (!startFill()) {
        read_wants_input_ = false;
        error_ = "TLS record larger than the read buffer";
        return finishRead(protocolError(), 0, initiating);
      }
      return;
    case SSL_ERROR_WANT_WRITE:
      socket_.async_wait(boost::asio::socket_base::wait_write,
                         [this](const boost::system::error_code& ec) {
                           if (ec) {
                             cancel_read_ = false;
                             return finishRead(ec, 0, false);
                           }
                           doRead(false);
                         });
      return;
    case SSL_ERROR_ZERO_RETURN:
      return finishRead(boost::asio::error::eof, 0, initiating);
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        error_ = "connection reset";
        return finishRead(boost::asio::error::connection_reset, 0, initiating);
      }
      [[fallthrough]];
    default:
      error_ = lastError();
      return finishRead(protocolError(), 0, initiating);
  }
}

bool TransportSocket::startFill() {
  if (fill_pending_) return true;
  if (in_->begin == in_->end) {
    in_->begin = in_->end = 0;
  } else if (in_->end == SocketBioState::kCapacity) {
    if (in_->begin == 0) return false;  // a record that cannot fit: not TLS as we know it
    std::memmove(in_->in.get(), in_->in.get() + in_->begin, in_->end - in_->begin);
    in_->end -= in_->begin;
    in_->begin = 0;
  }
  fill_pending_ = true;
  if (batching()) {
    startRecv();
    return true;
  }
  boost::asio::mutable_buffer room(in_->in.get() + in_->end, SocketBioState::kCapacity - in_->end);
  socket_.async_read_some(room,
                          [this](const boost::system::error_code& ec, size_t n) { onFill(ec, n); });
  return true;
}

void TransportSocket::onFill(const boost::system::error_code& ec, size_t n) {
  fill_pending_ = false;
  bool aborted = ec == boost::asio::error::operation_aborted;
  if (!ec) {
    in_->end += n;
  } else if (ec == boost::asio::error::eof) {
    in_->eof = true;
  } else if (!aborted) {
    in_->failed = true;
  }
  // Whoever waited for input tries again. The read goes last: its handler may end the owner,
  // which a pending read keeps alive until then.
  if (handshake_wants_input_) {
    handshake_wants_input_ = false;
    if (aborted) return finishHandshake(ec, false);
    return doHandshake(false);
  }
  if (write_wants_input_) {
    write_wants_input_ = false;
    if (aborted) {
      finishWrite(ec, false);
    } else {
      doWrite(false);
    }
  }
  if (read_wants_input_) {
    read_wants_input_ = false;
    if (aborted) {
      cancel_read_ = false;
      return finishRead(ec, 0, false);
    }
    doRead(false);
  }
}

void TransportSocket::finishRead(const boost::system::error_code& ec, size_t n, bool initiating) {
  IoHandler h = std::move(read_handler_);
  read_handler_ = nullptr;
  if (initiating) {
    boost::asio::post(socket_.get_executor(), [h = std::move(h), ec, n] { h(ec, n); });
  } else {
    h(ec, n);
  }
}

void TransportSocket::doWrite(bool initiating) {
  while (!closed_ && write_off_ < write_buf_.size()) {
    clearErrors();
    size_t n = 0;
    // One record at most per call keeps a retry's arguments simple (a retry repeats them).
    size_t len = std::min<size_t>(write_buf_.size() - write_off_, 16 * 1024);
    int r = SSL_write_ex(ssl_, write_buf_.data() + write_off_, len, &n);
    if (r == 1) {
      write_off_ += n;
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    flushTls();                      // what the records before this one produced
    if (e == SSL_ERROR_WANT_READ) {  // a TLS 1.2 renegotiation or a post-handshake message
      write_wants_input_ = true;
      if (!startFill()) {
        write_wants_input_ = false;
        return finishWrite(protocolError(), initiating);
      }
      return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      socket_.async_wait(boost::asio::socket_base::wait_write,
                         [this](const boost::system::error_code& ec) {
                           if (ec) return finishWrite(ec, false);
                           doWrite(false);
                         });
      return;
    }
    error_ = e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 ? "connection reset" : lastError();
    return finishWrite(boost::asio::error::connection_reset, initiating);
  }
  if (!closed_ && in_->out != nullptr) {
    // Batched: done when the ciphertext has left.
    flushTls();
    if (!tls_sending_.empty()) {
      tls_write_waiting_ = true;
      return;
    }
  }
  finishWrite(closed_ ? boost::asio::error::operation_aborted : boost::system::error_code(),
              initiating);
}

void TransportSocket::finishWrite(const boost::system::error_code& ec, bool initiating) {
  IoHandler h = std::move(write_handler_);
  write_handler_ = nullptr;
  size_t n = ec ? 0 : write_buf_.size();
  if (write_buf_.capacity() > 64 * 1024) std::string().swap(write_buf_);
  if (initiating) {
    boost::asio::post(socket_.get_executor(), [h = std::move(h), ec, n] { h(ec, n); });
  } else {
    h(ec, n);
  }
}

void TransportSocket::shutdownSend() {
  sendBatchedNow(false);
  if (ssl_ != nullptr && !tls_sending_.empty()) {
    shutdown_pending_ = true;  // after the ciphertext still waiting for room
    return;
  }
  if (in_ != nullptr) in_->out = nullptr;  // close_notify goes out at once
  boost::system::error_code ignored;
  if (ssl_ != nullptr && handshake_done_ && !write_handler_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // queues and tries to send close_notify; the result does not matter
    ERR_clear_error();
  }
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
}

void TransportSocket::cancelRead() {
  if (ssl_ != nullptr && read_handler_) cancel_read_ = true;
  abortBatchedRecv();
  releaseIdleWait();  // its aborted completion must not reach a read started after this call
  boost::system::error_code ignored;
  socket_.cancel(ignored);
}

void TransportSocket::abortBatchedRecv() {
  if (!dropBatchedRecv()) return;
  if (!alive_) alive_ = std::make_shared<TransportSocket*>(this);
  boost::asio::post(socket_.get_executor(), [alive = alive_] {
    TransportSocket* self = *alive;
    if (self == nullptr) return;  // the destructor completed what waited
    if (self->ssl_ != nullptr) return self->onFill(boost::asio::error::operation_aborted, 0);
    IoHandler h = std::move(self->read_handler_);
    self->read_handler_ = nullptr;
    if (h) h(boost::asio::error::operation_aborted, 0);
  });
}

void TransportSocket::close() {
  if (closed_) return;
  closed_ = true;
  sendBatchedNow(true);
  abortBatchedRecv();
  if (in_ != nullptr) in_->out = nullptr;  // close_notify goes out at once
  if (ssl_ != nullptr && handshake_done_ && !write_handler_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // best-effort close_notify, never waited for
    ERR_clear_error();
  }
  boost::system::error_code ignored;
  socket_.close(ignored);
}

}  // namespace mesh::tls
