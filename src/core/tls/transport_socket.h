// A connection's socket with optional TLS: the thin layer HTTP/1.1, the TCP proxy and upstream
// connections read and write through. Plaintext goes straight to the Asio socket (no cost on
// that path); with TLS an OpenSSL SSL object writes to the same non-blocking descriptor directly
// (a BIO that never raises SIGPIPE) and reads ciphertext that Asio reads ahead into the BIO.
//
// Contract, as for an Asio socket: one thread; at most one read, one write and one handshake in
// flight; every started operation completes exactly once, never inside the call that started
// it; close() makes pending operations complete with operation_aborted. The object must not be
// moved while an operation is in flight.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <memory>
#include <string>

#include "core/net/io_batcher.h"
#include "core/tls/tls_context.h"

namespace mesh::tls {

struct SocketBioState;

class TransportSocket {
 public:
  using IoHandler = std::function<void(const boost::system::error_code&, size_t)>;
  using HandshakeHandler = std::function<void(const boost::system::error_code&)>;

  explicit TransportSocket(boost::asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  explicit TransportSocket(boost::asio::io_context& io) : socket_(io) {}
  TransportSocket(TransportSocket&& o) noexcept;
  TransportSocket& operator=(TransportSocket&&) = delete;
  ~TransportSocket();

  // The TCP socket underneath: options, endpoints, connect.
  boost::asio::ip::tcp::socket& socket() { return socket_; }
  const boost::asio::ip::tcp::socket& socket() const { return socket_; }

  // From now on the connection is TLS with a new SSL from `ctx` (server or client as the context
  // says). Call once the TCP connection is established, before any I/O. False if OpenSSL could
  // not make the SSL object.
  bool startTls(std::shared_ptr<const TlsContext> ctx);
  bool secure() const { return ssl_ != nullptr; }
  SSL* ssl() const { return ssl_; }
  // Runs the TLS handshake; an error means the peer was refused or spoke no TLS (tlsError()
  // says why). Plaintext: completes at once.
  void asyncHandshake(HandshakeHandler h);
  bool handshakeDone() const { return handshake_done_; }
  // Why the last TLS operation failed (OpenSSL's reason, or the certificate verify result).
  const std::string& tlsError() const { return error_; }
  // After the handshake: whether the peer presented a certificate that verified (a server
  // refuses one that does not), its SPIFFE id ("" if none), and the protocol version.
  bool peerCertified() const { return peer_certified_; }
  const std::string& peerPrincipal() const { return peer_principal_; }
  // The SPIFFE id of the certificate this side presented ("" if none); set by the handshake.
  const std::string& localPrincipal() const { return local_principal_; }
  std::string_view version() const;

  template <typename Handler>
  void asyncReadSome(boost::asio::mutable_buffer b, Handler&& h) {
    if (ssl_ == nullptr) {
      if (batching()) {
        read_buf_ = b;
        read_handler_ = std::forward<Handler>(h);
        startRecv();
        return;
      }
      socket_.async_read_some(b, std::forward<Handler>(h));
      return;
    }
    read_buf_ = b;
    read_handler_ = std::forward<Handler>(h);
    doRead(true);
  }

  // Writes all of `buffers` (a ConstBufferSequence). Plaintext leaves in the loop turn's
  // batch (net::IoBatcher) where there is one; close() and shutdownSend() send a write still
  // waiting for it first, as the immediate send it replaces would have.
  template <typename Buffers, typename Handler>
  void asyncWrite(const Buffers& buffers, Handler&& h) {
    if (ssl_ == nullptr) {
      if (prepareBatched(buffers)) {
        write_handler_ = std::forward<Handler>(h);
        batcher_->queue(*batched_, socket_.get_executor());
        return;
      }
      boost::asio::async_write(socket_, buffers, std::forward<Handler>(h));
      return;
    }
    write_buf_.clear();
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer cb(*it);
      write_buf_.append(static_cast<const char*>(cb.data()), cb.size());
    }
    write_off_ = 0;
    write_handler_ = std::forward<Handler>(h);
    doWrite(true);
  }

  // Half-close: plaintext shuts the sending side; TLS sends close_notify first.
  void shutdownSend();
  // Makes a pending read complete with operation_aborted (and nothing consumed, for plaintext).
  void cancelRead();
  void close();

 private:
  struct BatchedOp final : net::IoBatcher::Op {
    TransportSocket* owner = nullptr;
    size_t total = 0;
    void done(int result) override {
      if (kind == Kind::kRecv) {
        owner->onBatchedRecv(result);
      } else {
        owner->onBatchedSend(result);
      }
    }
  };

  // Whether this loop batches socket I/O (asked once).
  bool batching() {
    if (!batcher_checked_) {
      batcher_checked_ = true;
      batcher_ = net::IoBatcher::of(socket_.get_executor());
    }
    return batcher_ != nullptr;
  }
  // Fills batched_ from `buffers` when the batch can take them.
  template <typename Buffers>
  bool prepareBatched(const Buffers& buffers) {
    if (!batching() || closed_) return false;
    if (!batched_) batched_ = newOp(net::IoBatcher::Op::Kind::kSend);
    BatchedOp& w = *batched_;
    int n = 0;
    size_t total = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer cb(*it);
      if (cb.size() == 0) continue;
      if (n == net::IoBatcher::kMaxIov) return false;
      w.iov[n].iov_base = const_cast<void*>(cb.data());
      w.iov[n].iov_len = cb.size();
      total += cb.size();
      ++n;
    }
    if (total == 0) return false;
    w.iovcnt = n;
    w.total = total;
    w.fd = socket_.native_handle();
    return true;
  }
  std::unique_ptr<BatchedOp> newOp(net::IoBatcher::Op::Kind kind);
  // Receives into the plaintext read's buffer (read_buf_) or TLS's read-ahead: in the batch at
  // once, or when the readiness wait armed after a receive that drained the socket fires.
  void startRecv();
  void queueRecv();
  void armReadable();
  void onReadable(const boost::system::error_code& ec);
  // An armed wait with no read on it is let go (stale from now on).
  void releaseIdleWait();
  void onBatchedRecv(int result);
  // A receive still waiting for the batch is dropped; true if there was one.
  bool dropBatchedRecv();
  // ... and its reader hears operation_aborted (in a later turn).
  void abortBatchedRecv();
  void onBatchedSend(int result);
  // TLS, batched: queues the ciphertext OpenSSL produced (unless a send of it is under way).
  void flushTls();
  void onTlsBatchSent(int result);
  void onTlsSent(const boost::system::error_code& ec);
  // A write still waiting for the batch is sent now (close, shutdown, destruction).
  void sendBatchedNow(bool closing);

  void doRead(bool initiating);
  void doWrite(bool initiating);
  void doHandshake(bool initiating);
  // Reads what the socket holds into the BIO's input (once at a time); false if a record cannot
  // fit. onFill hands it to whichever of handshake, write and read asked for input.
  bool startFill();
  void onFill(const boost::system::error_code& ec, size_t n);
  void finishRead(const boost::system::error_code& ec, size_t n, bool initiating);
  void finishWrite(const boost::system::error_code& ec, bool initiating);
  void finishHandshake(const boost::system::error_code& ec, bool initiating);

  boost::asio::ip::tcp::socket socket_;
  std::shared_ptr<const TlsContext> ctx_;
  SSL* ssl_ = nullptr;
  SocketBioState* in_ = nullptr;  // the BIO's state (owned by ssl_): ciphertext read ahead
  boost::asio::mutable_buffer read_buf_;
  IoHandler read_handler_;
  std::string write_buf_;
  size_t write_off_ = 0;
  IoHandler write_handler_;
  HandshakeHandler handshake_handler_;
  std::string error_;
  std::string peer_principal_;
  std::string local_principal_;
  bool handshake_done_ = false;
  bool peer_certified_ = false;
  bool cancel_read_ = false;
  bool fill_pending_ = false;
  bool handshake_wants_input_ = false;
  bool read_wants_input_ = false;
  bool write_wants_input_ = false;
  bool closed_ = false;
  bool batcher_checked_ = false;
  bool wait_armed_ = false;    // a readiness wait is queued (after EAGAIN or a draining receive)
  bool read_waiting_ = false;  // ... and a read (TLS: the read-ahead) waits on it
  uint64_t wait_gen_ = 0;      // which wait is the armed one (a cancelled one may still complete)
  net::IoBatcher* batcher_ = nullptr;
  boost::asio::detail::epoll_reactor* reactor_ = nullptr;  // for net::asyncWaitReadable
  boost::asio::detail::scheduler* scheduler_ = nullptr;
  std::unique_ptr<BatchedOp> batched_;                     // the write's
  std::unique_ptr<BatchedOp> batched_read_;  // the read's (plaintext) or the read-ahead's (TLS)
  std::string tls_out_;                      // ciphertext not queued yet (batched TLS)
  std::string tls_sending_;                  // ciphertext being sent (empty: none)
  bool tls_write_waiting_ = false;  // a write's records are written, its ciphertext not yet
  bool shutdown_pending_ = false;
  std::shared_ptr<TransportSocket*>
      alive_;  // null'd by the destructor: for waits that may outlive it
};

}  // namespace mesh::tls
