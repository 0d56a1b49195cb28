// One HTTP/2 connection to an upstream host (h2c, or h2 by ALPN when the cluster has TLS),
// pooled per host by the worker and shared by many requests at once: each request is a stream
// (UpstreamRequest). The router still writes HTTP/1.1 and is called back as for an HTTP/1.1
// upstream; this converts both ways (Host -> :authority, chunked -> DATA, chunked trailers ->
// trailers; the response's trailers come back in onUpstreamComplete).
//
// Capacity: the peer's SETTINGS_MAX_CONCURRENT_STREAMS and the cluster's
// maxRequestsPerConnection (then the connection takes no new stream and closes once its streams
// are done); a GOAWAY from the peer also stops new streams. Flow control: response DATA is
// acknowledged only once the router let go of it (continueReading), and a request write
// completes once its bytes are framed.
//
// Lifetime: owned by itself; deleted once closed with no operation outstanding and no stream
// still held by a router (such streams then fail every call).
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tls/transport_socket.h"
#include "proxy/upstream/cluster_info.h"
#include "proxy/upstream/http2_response.h"
#include "proxy/upstream/upstream_connection.h"
#include "proxy/upstream/upstream_connector.h"

namespace mesh::proxy {

class Worker;
struct HostState;

class Http2Upstream final : private UpstreamConnector::Callbacks {
 public:
  Http2Upstream(Worker& worker, HostState& host, const Host& desc, const ClusterInfo& cluster);
  ~Http2Upstream() override;

  // Starts connecting (once).
  void connect();
  // A stream for one request. onUpstreamReady follows (posted), or onUpstreamConnectFailure.
  UpstreamRequest* newStream(UpstreamCallbacks* cb, bool head_request);
  // Whether it takes another stream now.
  bool hasCapacity() const;
  bool connected() const { return state_ == State::kConnected; }
  size_t activeStreams() const { return streams_.size(); }
  // Closes the connection when no stream is active (drain, idle timeout).
  void closeIfIdle();
  std::chrono::steady_clock::time_point idleSince() const { return idle_since_; }
  HostState& host() { return host_; }

 private:
  class Stream;
  struct Guard;
  enum class State : uint8_t { kConnecting, kConnected, kClosed };

  static int onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen,
                      const uint8_t* value, size_t vlen, uint8_t flags, void* ud);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data,
                         size_t len, void* ud);
  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* ud);
  static ssize_t readRequestData(nghttp2_session*, int32_t id, uint8_t* buf, size_t len,
                                 uint32_t* flags, nghttp2_data_source* src, void* ud);

  // UpstreamConnector::Callbacks
  void onConnectorOperationStarted() override { ++pending_; }
  void onConnectorOperationDone(UpstreamConnector::Operation op,
                                const boost::system::error_code& ec) override;
  void onTransportReady() override;
  void onTransportFailed(bool timed_out) override { fail(true, timed_out); }

  // Closes and fails every stream: onUpstreamConnectFailure(connect_timed_out) when the
  // connection never came up (connect_failure), else onUpstreamReset.
  void fail(bool connect_failure, bool connect_timed_out = false);
  void startRead();
  void onRead(const boost::system::error_code& ec, size_t n);
  void flush();
  void deliver();  // runs the streams' pending callbacks, outside nghttp2
  void kick();     // after a router's call: deliver and send, from the loop
  void touch(Stream* s);
  void close();
  void forget(Stream* s);

  Worker& worker_;
  HostState& host_;
  tls::TransportSocket socket_;
  UpstreamConnector connector_;
  std::shared_ptr<CircuitBreakerState> breaker_;
  uint32_t max_requests_ = 0;
  uint32_t requests_ = 0;
  nghttp2_session* session_ = nullptr;
  State state_ = State::kConnecting;
  bool goaway_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool in_deliver_ = false;
  bool kick_posted_ = false;
  std::vector<Stream*>* batch_ = nullptr;  // the streams deliver() is going through
  uint32_t pending_ = 0;
  uint32_t depth_ = 0;
  std::unordered_map<int32_t, Stream*> streams_;  // with a stream id
  std::vector<Stream*> waiting_;                  // created before the connection was up
  std::vector<Stream*> touched_;
  std::unique_ptr<char[]> read_buf_;
  std::string out_, next_;
  std::chrono::steady_clock::time_point idle_since_;
};

}  // namespace mesh::proxy
