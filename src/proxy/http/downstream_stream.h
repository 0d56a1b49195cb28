// What the router (HttpConnection) reads requests from and writes responses to when its client
// is not a socket of its own: one stream of a multiplexed (HTTP/2) connection, speaking
// HTTP/1.1 bytes both ways. Plus the small interface the worker drains and idles downstream
// connections through, whatever their protocol.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace mesh::proxy {

struct BufferList;

// Contract, as for a socket: at most one read and one write in flight; every started operation
// completes exactly once, never inside the call that started it (completions are posted to the
// worker's loop). A read completes with an error once the stream has nothing more to give:
// end of file after a complete exchange, connection_reset if the client reset the stream.
class DownstreamStream {
 public:
  using IoHandler = std::function<void(const boost::system::error_code&, size_t)>;
  virtual ~DownstreamStream() = default;
  virtual void asyncRead(boost::asio::mutable_buffer b, IoHandler h) = 0;
  // All of `b` (an HTTP/1.1 response, in pieces) is taken; completes once it has been framed.
  virtual void asyncWrite(const BufferList& b, IoHandler h) = 0;
  // The router is done with the stream (closed): pending operations complete with
  // operation_aborted; a response left incomplete resets the stream. No call follows.
  virtual void detach() = 0;
};

// The facts about the client connection that every stream on it shares.
struct DownstreamPeer {
  uint64_t remote_hash = 0;
  bool mutual_tls = false;
  bool secure = false;  // the connection is TLS (x-forwarded-proto: https)
  uint32_t peer_workload = 0;
  std::string principal;
  std::string remote_address;
  std::string local_address;
};

class DownstreamConnection {
 public:
  virtual ~DownstreamConnection() = default;
  // The worker is draining: close when idle, else once the requests in flight are done.
  virtual void drain() = 0;
  // Closes the connection if it has been idle longer than its listener allows.
  virtual void closeIfIdle(std::chrono::steady_clock::time_point now) = 0;
};

}  // namespace mesh::proxy
