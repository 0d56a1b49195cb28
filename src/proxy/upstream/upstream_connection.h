// One HTTP/1.1 connection to an upstream host, owned by a worker's pool. It serves one request
// at a time for whoever is attached (UpstreamCallbacks); idle in the pool it keeps a read open
// so a close by the server is noticed at once, and it is never handed out once broken.
//
// Lifetime: the object deletes itself once closed and no I/O is outstanding. After abort() or a
// terminal callback (connect failure, reset, protocol error) the attached party must forget it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

#include "core/buffer.h"
#include "core/http/http1_parser.h"
#include "core/tls/transport_socket.h"
#include "proxy/upstream/cluster_info.h"
#include "proxy/upstream/upstream_connector.h"
#include "proxy/upstream/upstream_request.h"

namespace mesh::proxy {

class Worker;
struct HostState;

// A small owning list of buffers for one gathered write.
struct BufferList {
  std::array<boost::asio::const_buffer, 6> bufs;
  size_t n = 0;
  void add(const void* p, size_t len) {
    if (len > 0) bufs[n++] = boost::asio::const_buffer(p, len);
  }
  void add(std::string_view s) { add(s.data(), s.size()); }
  const boost::asio::const_buffer* begin() const { return bufs.data(); }
  const boost::asio::const_buffer* end() const { return bufs.data() + n; }
  bool empty() const { return n == 0; }
};

class UpstreamCallbacks {
 public:
  virtual ~UpstreamCallbacks() = default;
  // The connection is ready to take the request (new and connected).
  virtual void onUpstreamReady() = 0;
  // Terminal: the connection could not be established.
  virtual void onUpstreamConnectFailure(bool timed_out) = 0;
  // A final (non-1xx) response head; views are valid only during the call.
  virtual void onUpstreamHead(const http::ResponseHead& head) = 0;
  // A body slice; valid until the callee calls continueReading(). Return true if the callee
  // will call continueReading() later, false to keep reading now.
  virtual bool onUpstreamBody(std::string_view data) = 0;
  // The response is complete; the callee must release() or abort() the connection.
  virtual void onUpstreamComplete(const http::HeaderList& trailers) = 0;
  // Terminal: closed or reset before the response completed.
  virtual void onUpstreamReset(bool response_bytes_seen) = 0;
  // Terminal: the response could not be parsed.
  virtual void onUpstreamProtocolError(http::ParseError e) = 0;
  virtual void onUpstreamWriteComplete() = 0;
  // For a request queued on a host (Worker::enqueueWaiter): a connection may be had now. Return
  // false to stay first in the queue; once served, the callee has left the queue.
  virtual bool onConnectionAvailable() { return true; }
};

class UpstreamConnection final : public UpstreamRequest, private UpstreamConnector::Callbacks {
 public:
  // Counts itself in the cluster's open connections until it is deleted.
  UpstreamConnection(Worker& worker, HostState& host, const Host& desc, const ClusterInfo& cluster);
  ~UpstreamConnection() override;

  // Starts connecting; onUpstreamReady or onUpstreamConnectFailure follows.
  void connect(UpstreamCallbacks* cb, bool head_request);
  // Takes an idle connection for a request; it is ready at once.
  void assign(UpstreamCallbacks* cb, bool head_request);
  void write(const BufferList& bufs) override;
  void continueReading() override;
  // After onUpstreamComplete: back to the pool when `reusable`, else closed.
  void release(bool reusable) override;
  // Drops the attached request and closes the connection; no further callbacks.
  void abort() override;
  // Closes an idle connection (idle timeout, host removed, drain).
  void closeIdle();

  bool idle() const { return state_ == State::kIdle; }
  // Whether this connection served a request before the current one.
  bool reused() const { return requests_ > 1; }
  std::chrono::steady_clock::time_point idleSince() const { return idle_since_; }
  HostState& host() { return host_; }
  // The request asks for an Upgrade (HTTP/1.1 Connection: upgrade): a 101 answer is accepted,
  // after which the connection is a byte tunnel. Each later read is one onUpstreamBody (same
  // pause contract), the server's FIN is onUpstreamComplete with no trailers, and the
  // connection is never pooled again (the attached party abort()s it when the tunnel ends).
  void setUpgradeRequested(bool upgrade) override { upgrade_requested_ = upgrade; }
  // Tunnel: passes the client's half-close on (FIN after what was written).
  void shutdownSend() override { socket_.shutdownSend(); }

  // The transport (TLS state, the server's principal) once connected.
  const tls::TransportSocket* transport() const override { return &socket_; }

 private:
  enum class State : uint8_t { kConnecting, kActive, kIdle, kClosed };
  struct Guard;

  // UpstreamConnector::Callbacks
  void onConnectorOperationStarted() override { ++pending_; }
  void onConnectorOperationDone(UpstreamConnector::Operation op,
                                const boost::system::error_code& ec) override;
  void onTransportReady() override;
  void onTransportFailed(bool timed_out) override;
  void startRead();
  void onRead(const boost::system::error_code& ec, size_t n);
  void processInput();
  void relayTunnel();
  void close();
  void detachFromPool();

  Worker& worker_;
  HostState& host_;
  tls::TransportSocket socket_;
  UpstreamConnector connector_;
  IoBuffer in_;
  http::Http1Parser parser_;
  UpstreamCallbacks* cb_ = nullptr;
  State state_ = State::kConnecting;
  bool reading_ = false;
  bool writing_ = false;
  bool paused_ = false;
  bool response_bytes_ = false;
  bool upgrade_requested_ = false;
  bool tunnel_ = false;   // after a 101: raw bytes both ways
  uint32_t pending_ = 0;  // outstanding async operations
  uint32_t depth_ = 0;    // nested calls in progress
  uint32_t requests_ = 0;
  uint32_t max_requests_ = 0;  // per connection; 0: unlimited
  std::shared_ptr<CircuitBreakerState> breaker_;
  std::chrono::steady_clock::time_point idle_since_;
};

}  // namespace mesh::proxy
