// A downstream HTTP/2 connection (h2c with prior knowledge, or h2 chosen by ALPN): the socket
// and the Http2ServerSession, and for each request stream a router of its own, an
// HttpConnection reading and writing that stream (DownstreamStream) instead of a socket. So
// every stream gets routes, retries, timeouts, faults, mirroring, CORS and telemetry exactly
// as an HTTP/1.1 request does, and goes upstream as HTTP/1.1.
//
// Made by an HttpConnection that saw the connection preface or ALPN "h2" (it hands over its
// socket, the bytes it read, and the connection's peer facts).
//
// Lifetime: owned by itself; deleted once closed with no asynchronous operation outstanding.
// Streams outlive it when their router still holds them (they then fail every operation).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/stats/store.h"
#include "core/tls/transport_socket.h"
#include "proxy/http/downstream_stream.h"
#include "proxy/http/http2_server_session.h"

namespace mesh::proxy {

class Worker;

class Http2ServerConnection final : public DownstreamConnection,
                                    private Http2ServerSession::Callbacks {
 public:
  // `cx_active`: the listener's active-connection gauge, already counted for this connection
  // (it is decremented on close).
  Http2ServerConnection(Worker& worker, tls::TransportSocket socket, uint32_t listener_slot,
                        std::string_view initial_bytes,
                        std::optional<boost::asio::ip::tcp::endpoint> original_dst,
                        DownstreamPeer peer, stats::SeriesId cx_active);
  ~Http2ServerConnection() override;

  void start();
  void drain() override;
  void closeIfIdle(std::chrono::steady_clock::time_point now) override;

 private:
  class Stream;
  struct Guard;

  // Http2ServerSession::Callbacks.
  void onRequest(int32_t id) override;
  void onRequestData(int32_t id) override;
  void onStreamClose(int32_t id, uint32_t error_code) override;
  void onResponseDrained(int32_t id) override;

  void startRead();
  void onRead(const boost::system::error_code& ec, size_t n);
  void receive(std::string_view bytes);
  // Moves frames from the session to the socket (bounded: a peer that does not read leaves
  // them queued in nghttp2, which counts them): flush() at the end of this turn of the event
  // loop, flushNow() at once.
  void flush();
  void flushNow();
  void onWrite(const boost::system::error_code& ec);
  void close();

  Worker& worker_;
  tls::TransportSocket socket_;
  uint32_t slot_;
  std::optional<boost::asio::ip::tcp::endpoint> original_dst_;
  DownstreamPeer peer_;
  stats::SeriesId cx_active_;
  std::unique_ptr<Http2ServerSession> session_;
  std::unordered_map<int32_t, Stream*> streams_;
  std::vector<int32_t> started_;  // request heads seen during receive(), started after it
  std::vector<int32_t> ready_;    // streams with request bytes for a waiting read
  std::string initial_;
  std::unique_ptr<char[]> read_buf_;
  std::string out_;   // being written
  std::string next_;  // frames waiting for the current write
  bool closed_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool flush_posted_ = false;
  bool receiving_ = false;
  bool read_done_ = false;  // the session wants no more input (GOAWAY)
  bool lingering_ = false;  // our GOAWAY is out: input is read and dropped until EOF
  uint32_t pending_ = 0;
  uint32_t depth_ = 0;
  std::chrono::steady_clock::time_point last_activity_;
  std::chrono::steady_clock::time_point goaway_at_;
};

}  // namespace mesh::proxy
