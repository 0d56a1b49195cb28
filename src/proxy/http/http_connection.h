// A downstream HTTP/1.1 connection and the request it is serving. Requests are handled one at
// a time in arrival order, so pipelined responses leave in order; the next request is parsed
// only after the current response has been written.
//
// The router lives here too: route match, cluster and host choice, the upstream request, retries
// with backoff, per-try and route timeouts, the response relay (re-framed for the client), local
// replies, and telemetry on completion. Bodies stream in both directions without buffering,
// except what a retry policy keeps for replay.
//
// Lifetime: owned by itself; deleted once closed with no asynchronous operation outstanding.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "core/buffer.h"
#include "core/http/http1_parser.h"
#include "core/tls/transport_socket.h"
#include "proxy/http/downstream_stream.h"
#include "proxy/upstream/outlier_detection.h"
#include "proxy/upstream/upstream_connection.h"

namespace mesh::proxy {

class Worker;
struct SnapshotHolder;
struct ListenerInfo;
struct Route;
struct WeightedTarget;
struct ClusterRuntime;
struct HostState;
struct RetryPolicy;

class HttpConnection final : public UpstreamCallbacks, public DownstreamConnection {
 public:
  // `initial_bytes`: what was already read from the client (protocol detection).
  // A TLS socket may arrive before or after its handshake (after: from protocol detection).
  // `original_dst`: where a captured connection was going (Listener.useOriginalDst); routes to
  // an ORIGINAL_DST cluster go there.
  HttpConnection(Worker& worker, tls::TransportSocket socket, uint32_t listener_slot,
                 std::string_view initial_bytes = {},
                 std::optional<boost::asio::ip::tcp::endpoint> original_dst = std::nullopt);
  ~HttpConnection() override;

  // A router for one HTTP/2 stream: one the worker kept from a finished stream (made like new),
  // else a new one. attachStream() and start() follow.
  static HttpConnection* forStream(
      Worker& worker, uint32_t listener_slot,
      const std::optional<boost::asio::ip::tcp::endpoint>& original_dst);
  // The router of one HTTP/2 stream: requests are read from, and responses written to,
  // `stream` instead of the socket; `peer` describes the client's connection. Before start().
  void attachStream(DownstreamStream* stream, const DownstreamPeer& peer);
  void start();
  // The worker is draining: close when idle, else after the current response.
  void drain() override;
  // Closes the connection if it has been idle (no request) longer than the listener allows.
  void closeIfIdle(std::chrono::steady_clock::time_point now) override;
  bool active() const { return rq_.active; }

  // UpstreamCallbacks.
  void onUpstreamReady() override;
  void onUpstreamConnectFailure(bool timed_out) override;
  void onUpstreamHead(const http::ResponseHead& head) override;
  bool onUpstreamBody(std::string_view data) override;
  void onUpstreamComplete(const http::HeaderList& trailers) override;
  void onUpstreamReset(bool response_bytes_seen) override;
  void onUpstreamProtocolError(http::ParseError e) override;
  void onUpstreamWriteComplete() override;
  bool onConnectionAvailable() override;

 private:
  struct Guard;
  enum class WriteKind : uint8_t {
    kNone,
    kContinue,
    kResponseBody,
    kResponseEnd,
    kLocalReply,
    kTunnelHead,  // the 101 that starts an upgrade tunnel
  };

  // Per-request state; reset between requests (capacity of strings kept).
  struct Request {
    bool active = false;
    SnapshotHolder* holder = nullptr;
    const ListenerInfo* listener = nullptr;
    const Route* route = nullptr;
    const WeightedTarget* target = nullptr;
    uint32_t peer_workload = 0;  // the source named by x-envoy-peer-metadata (inbound)
    ClusterRuntime* cluster = nullptr;
    const RetryPolicy* retry = nullptr;
    std::chrono::steady_clock::time_point start;
    std::chrono::system_clock::time_point start_wall;
    std::chrono::steady_clock::time_point upstream_start;
    int64_t upstream_service_ms = -1;
    http::Version version = http::Version::kHttp11;
    bool keep_alive = true;
    bool head_request = false;
    bool body_expected = false;  // the request has body bytes to come
    bool chunked = false;        // request body is chunked (and forwarded chunked)
    bool forwarding = false;     // an upstream attempt owns the request
    bool request_complete = false;
    bool upstream_head_pending = false;
    bool attempt_active = false;
    bool upstream_reused = false;
    bool force_new_connection = false;
    bool silent_retry_done = false;
    bool replayable = false;  // body kept in replay_ for retries
    bool response_started = false;
    bool response_head_pending = false;
    bool response_chunked = false;
    bool upstream_keep_alive = true;
    bool upstream_done = false;   // the response was received in full
    bool finish_pending = false;  // finish once the last upstream write completes
    uint64_t request_body_bytes = 0;
    uint64_t body_bytes_forwarded = 0;
    uint64_t response_body_bytes = 0;
    uint16_t response_code = 0;
    uint32_t flags = 0;
    uint32_t retries = 0;
    int host_index = -1;
    int last_host = -1;
    std::optional<uint64_t> hash;
    bool fault_abort = false;  // abort once the injected delay is over
    bool queued = false;       // waiting in the host's queue for a connection
    bool retry_held = false;   // holds one of the cluster's maxRetries until the retry starts
    const char* details = "";
    uint32_t generation = 0;
    // gRPC (proxy/http/grpc.h): the request's content-type says gRPC; its timeout (route timeout
    // or grpc-timeout capped by it); the grpc-status seen (response headers, trailers or our
    // own local reply); a fault's gRPC status to answer with.
    bool grpc = false;
    Millis timeout{0};
    std::optional<uint32_t> grpc_status;
    std::optional<uint32_t> grpc_reply_status;
    // Outbound over mTLS: the principals the upstream's and our certificates name, as
    // telemetry workload ids (0: not mTLS).
    uint32_t upstream_principal = 0;
    uint32_t own_principal = 0;
    // Upgrade (proxy/http/upgrade.h, http_upgrade.cc): forwarded with the request; after a 101
    // the connection is a tunnel until both sides have sent their FIN.
    bool upgrade = false;
    bool tunnel = false;
    bool tunnel_down_eof = false;  // the client's FIN passed on upstream
    bool tunnel_up_eof = false;    // the server's FIN passed on to the client
    size_t tunnel_inflight = 0;    // bytes of in_ being written upstream
  };

  // Downstream I/O.
  void startHandshake();
  void onSecure();
  void startRead();
  void onRead(const boost::system::error_code& ec, size_t n);
  void processInput();
  void writeDownstream(const BufferList& b, WriteKind kind);
  void onDownstreamWrite(const boost::system::error_code& ec);
  void close();
  // Closed with nothing in flight: a stream's router goes back to the worker for the next
  // stream, anything else is deleted.
  void finish();
  // A kept stream router back to the state of a new one (keeping its storage); every member
  // below that a stream can change is reset here.
  void resetForStream(uint32_t listener_slot,
                      const std::optional<boost::asio::ip::tcp::endpoint>& original_dst);
  // The client speaks HTTP/2 (connection preface, or ALPN "h2"): an Http2ServerConnection
  // takes over the socket and what was read.
  void handOffToHttp2();
  const std::string& peerPrincipal() const;

  // Request flow.
  void onRequestHead();
  void onRequestBody(std::string_view data);
  void onRequestComplete();
  void onParseError();
  // Picks the request's weighted target and its cluster, once.
  void pickTarget();
  void startRoute(const http::RequestHead& req);
  void startAttempt();
  void acquireUpstream();
  void leaveQueue();
  void releaseRetryBudget();
  void noteOutcome(AttemptOutcome o);
  void sendShadows();
  void flushUpstreamHead();
  void endAttempt(bool failed);
  void releaseUpstream();
  void abortUpstream(bool failed);
  bool canRetry() const;
  bool replayOk() const;
  void scheduleRetry();
  void onRouteTimeout(uint32_t generation);
  void onAttemptTimer(uint32_t generation, bool backoff);
  void onFaultDelayEnd(uint32_t generation);
  void abortByFault();
  void failRequest(uint16_t status, std::string_view body, uint32_t flags, const char* details);
  void sendLocalReply(uint16_t status, std::string_view body, uint32_t flags, const char* details,
                      std::string_view location = {});
  void buildUpstreamHead(const http::RequestHead& req);
  void buildResponseHead(const http::ResponseHead& resp);
  void finishRequest();
  void recordRequest();
  void copyForAccessLog(const http::RequestHead& req);
  // Upgrade tunnel (http_upgrade.cc).
  void startTunnel(const http::ResponseHead& resp);
  void tunnelToUpstream();
  void onTunnelUpstreamWritten();
  void onTunnelDownstreamEof(const boost::system::error_code& ec);
  void onTunnelUpstreamEof();
  void endTunnel(uint32_t flags);
  void resetRequest();

  Worker& worker_;
  tls::TransportSocket socket_;
  uint32_t slot_;
  std::optional<boost::asio::ip::tcp::endpoint> original_dst_;
  IoBuffer in_;
  http::Http1Parser parser_;
  boost::asio::steady_timer route_timer_;
  boost::asio::steady_timer attempt_timer_;
  UpstreamRequest* upstream_ = nullptr;
  DownstreamStream* stream_ = nullptr;  // HTTP/2: the stream this router serves
  std::string stream_principal_;

  bool closed_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool in_process_ = false;
  bool wait_upstream_ = false;
  bool upstream_write_inflight_ = false;
  bool stop_parsing_ = false;
  bool peer_eof_ = false;
  bool close_after_ = false;
  bool http2_ = false;         // serves an HTTP/2 stream (access log protocol)
  bool maybe_preface_ = true;  // the first bytes may still turn out to be HTTP/2's preface
  WriteKind write_kind_ = WriteKind::kNone;
  std::optional<std::pair<BufferList, WriteKind>> queued_write_;
  uint32_t pending_ = 0;
  uint32_t depth_ = 0;
  stats::SeriesId cx_active_;
  stats::SeriesId ssl_handshake_, ssl_error_;
  // mTLS: the client's SPIFFE id as a telemetry workload (0: none or plaintext).
  uint32_t peer_workload_ = 0;
  bool mutual_tls_ = false;
  bool stream_secure_ = false;  // HTTP/2 stream: its connection is TLS
  std::chrono::steady_clock::time_point last_activity_;
  uint64_t remote_hash_ = 0;

  Request rq_;
  // The last x-envoy-peer-metadata looked up (inbound), with the principal it came over: a
  // peer sends the same one on every request, and the lookup keys on ~400 bytes.
  std::string peer_md_value_;
  std::string peer_md_principal_;
  uint32_t peer_md_workload_ = 0;
  std::string upstream_head_;
  // Mirrors chosen for the current request and the body kept for them.
  std::vector<uint32_t> shadow_clusters_;
  std::string cors_headers_;  // CORS response header lines for the current request
  std::string shadow_body_;
  std::string response_head_;
  std::string replay_;
  std::string scratch_;  // local replies, trailers
  std::string set_cookie_;
  char chunk_up_[24];
  char chunk_down_[24];
  // Access log copies (only filled when the access log is on).
  std::string log_method_, log_path_, log_authority_, log_user_agent_, log_request_id_, log_xff_,
      log_traceparent_, remote_address_, local_address_;
};

}  // namespace mesh::proxy
