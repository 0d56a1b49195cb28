#include "proxy/http/http_connection.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "core/hash.h"
#include "core/http/status_codes.h"
#include "core/log.h"
#include "core/turn_clock.h"
#include "proxy/http/grpc.h"
#include "proxy/http/http2_server_connection.h"
#include "proxy/http/shadow_request.h"
#include "proxy/http/tracing.h"
#include "proxy/http/upgrade.h"
#include "proxy/server/worker.h"
#include "proxy/telemetry/peer_metadata.h"
#include "proxy/telemetry/response_flags.h"

namespace mesh::proxy {

using namespace std::string_view_literals;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kMaxShadowBody = 64 * 1024;             // a mirrored body is kept up to this size
constexpr mesh::proxy::Millis kShadowTimeout{15000};     // for mirrors of routes with no timeout
constexpr mesh::proxy::Millis kHandshakeTimeout{10000};  // a TLS client that never finishes

using Clock = std::chrono::steady_clock;

void appendHeader(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": "sv);
  out.append(value);
  out.append(kCrlf);
}

// Hop-by-hop fields that never cross the proxy (RFC 9110 7.6.1), plus framing we redo.
bool isHopByHop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return http::equalsIgnoreCase(name, "te");
    case 7:
      return http::equalsIgnoreCase(name, "upgrade");
    case 10:
      return http::equalsIgnoreCase(name, "connection") ||
             http::equalsIgnoreCase(name, "keep-alive");
    case 16:
      return http::equalsIgnoreCase(name, "proxy-connection");
    case 17:
      return http::equalsIgnoreCase(name, "transfer-encoding");
    default:
      return false;
  }
}

// Fields named in Connection (other than the well-known tokens) are hop-by-hop too.
bool namedInConnection(const http::HeaderList& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (h.name.size() != 10 || !http::equalsIgnoreCase(h.name, "connection")) continue;
    std::string_view list = h.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view tok = list.substr(0, comma);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (http::equalsIgnoreCase(tok, name)) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return false;
}

std::string_view cookieValue(const http::HeaderList& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (!http::equalsIgnoreCase(h.name, "cookie")) continue;
    std::string_view rest = h.value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
  }
  return {};
}

size_t formatChunkHeader(char* out, size_t size) {
  int n = std::snprintf(out, 24, "%zx\r\n", size);
  return static_cast<size_t>(n);
}

void appendOps(std::string& out, const HeaderOps& ops) {
  for (const auto& [n, v] : ops.set) appendHeader(out, n, v);
  for (const auto& [n, v] : ops.add) appendHeader(out, n, v);
}

// Writes a message head with one bounds check per piece instead of std::string's capacity
// check and call per append (four per field): the string is opened up to its capacity (grown
// when a piece does not fit) and cut to what was written by done(). The request and response
// heads are built this way on every request.
class HeadWriter {
 public:
  // Opens at least `expect` bytes, at most kOpen more than that of a capacity grown earlier
  // (an earlier huge head does not make every later one clear its whole buffer).
  HeadWriter(std::string& out, size_t expect) : out_(out) {
    out_.clear();
    out_.resize(std::max(expect, std::min(out_.capacity(), expect + kOpen)));
  }
  [[gnu::always_inline]] void put(std::string_view s) { copy(room(s.size()), s); }
  void put(char c) { *room(1) = c; }
  [[gnu::always_inline]] void header(std::string_view name, std::string_view value) {
    char* p = room(name.size() + value.size() + 4);
    p = copy(p, name);
    *p++ = ':';
    *p++ = ' ';
    p = copy(p, value);
    *p++ = '\r';
    *p = '\n';
  }
  void ops(const HeaderOps& o) {
    for (const auto& [n, v] : o.set) header(n, v);
    for (const auto& [n, v] : o.add) header(n, v);
  }
  // The head as written so far; `out` is an ordinary string again.
  std::string& done() {
    out_.resize(len_);
    return out_;
  }

 private:
  static char* copy(char* p, std::string_view s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }
  [[gnu::always_inline]] char* room(size_t n) {
    if (out_.size() - len_ < n) grow(n);
    char* p = out_.data() + len_;
    len_ += n;
    return p;
  }
  [[gnu::noinline]] void grow(size_t n) { out_.resize(std::max(out_.size() * 2, len_ + n)); }
  static constexpr size_t kOpen = 2048;
  std::string& out_;
  size_t len_ = 0;
};

// A status code's digits, without a std::string.
struct StatusDigits {
  explicit StatusDigits(int status) {
    auto r = std::to_chars(buf, buf + sizeof(buf), status);
    len = static_cast<size_t>(r.ptr - buf);
  }
  operator std::string_view() const { return {buf, len}; }
  char buf[12];
  size_t len;
};

}  // namespace

struct HttpConnection::Guard {
  explicit Guard(HttpConnection* c) : c_(c) { ++c_->depth_; }
  ~Guard() {
    if (--c_->depth_ == 0 && c_->closed_ && c_->pending_ == 0) c_->finish();
  }
  HttpConnection* c_;
};

HttpConnection::HttpConnection(Worker& worker, tls::TransportSocket socket, uint32_t listener_slot,
                               std::string_view initial_bytes,
                               std::optional<boost::asio::ip::tcp::endpoint> original_dst)
    : worker_(worker),
      socket_(std::move(socket)),
      slot_(listener_slot),
      original_dst_(original_dst),
      in_(kReadChunk),
      parser_(http::Http1Parser::Type::kRequest,
              worker.snapshot().listenerBySlot(listener_slot)
                  ? worker.snapshot().listenerBySlot(listener_slot)->limits
                  : http::Limits{}),
      route_timer_(worker.io()),
      attempt_timer_(worker.io()) {
  if (!initial_bytes.empty()) {
    auto [p, n] = in_.prepare(initial_bytes.size(), initial_bytes.size() + kReadChunk);
    std::memcpy(p, initial_bytes.data(), std::min(n, initial_bytes.size()));
    in_.commit(std::min(n, initial_bytes.size()));
  }
}

HttpConnection::~HttpConnection() = default;

HttpConnection* HttpConnection::forStream(
    Worker& worker, uint32_t listener_slot,
    const std::optional<boost::asio::ip::tcp::endpoint>& original_dst) {
  if (HttpConnection* c = worker.takeStreamRouter()) {
    c->resetForStream(listener_slot, original_dst);
    return c;
  }
  return new HttpConnection(worker, tls::TransportSocket(worker.io()), listener_slot, {},
                            original_dst);
}

void HttpConnection::finish() {
  // Kept only when nothing of the stream can reach it any more: closed, no operation pending
  // (reads, writes, timers, posts all count in pending_), upstream and stream let go.
  if (http2_ && upstream_ == nullptr && stream_ == nullptr && worker_.keepStreamRouter(this)) {
    return;
  }
  delete this;
}

void HttpConnection::resetForStream(
    uint32_t listener_slot, const std::optional<boost::asio::ip::tcp::endpoint>& original_dst) {
  constexpr size_t kKeepCapacity = 4096;  // a string a large exchange grew is freed
  auto clearString = [](std::string& str) {
    if (str.capacity() > kKeepCapacity) {
      std::string().swap(str);
    } else {
      str.clear();
    }
  };
  slot_ = listener_slot;
  original_dst_ = original_dst;
  in_.reset();
  const ListenerInfo* l = worker_.snapshot().listenerBySlot(listener_slot);
  parser_.reset(l ? l->limits : http::Limits{});
  stream_principal_.clear();  // upstream_ and stream_ are null already (finish())
  closed_ = reading_ = writing_ = in_process_ = wait_upstream_ = false;
  upstream_write_inflight_ = stop_parsing_ = peer_eof_ = close_after_ = http2_ = false;
  maybe_preface_ = true;
  write_kind_ = WriteKind::kNone;
  queued_write_.reset();
  pending_ = depth_ = 0;
  cx_active_ = {};
  ssl_handshake_ = {};
  ssl_error_ = {};
  peer_workload_ = 0;
  mutual_tls_ = stream_secure_ = false;
  last_activity_ = {};
  remote_hash_ = 0;
  resetRequest();
  for (std::string* str :
       {&upstream_head_, &cors_headers_, &shadow_body_, &response_head_, &replay_, &scratch_,
        &set_cookie_, &log_method_, &log_path_, &log_authority_, &log_user_agent_, &log_request_id_,
        &log_xff_, &log_traceparent_, &remote_address_, &local_address_}) {
    clearString(*str);
  }
  // The peer metadata memo stays (it names its principal; streams of one peer share it)
  // unless a large header grew it.
  if (peer_md_value_.capacity() > kKeepCapacity) {
    std::string().swap(peer_md_value_);
    peer_md_principal_.clear();
    peer_md_workload_ = 0;
  }
  shadow_clusters_.clear();
}

void HttpConnection::attachStream(DownstreamStream* stream, const DownstreamPeer& peer) {
  stream_ = stream;
  http2_ = true;
  // A router per stream never reuses its buffers: sized once instead of grown field by field.
  upstream_head_.reserve(1024);
  response_head_.reserve(512);
  maybe_preface_ = false;
  remote_hash_ = peer.remote_hash;
  mutual_tls_ = peer.mutual_tls;
  stream_secure_ = peer.secure;
  peer_workload_ = peer.peer_workload;
  stream_principal_ = peer.principal;
  remote_address_ = peer.remote_address;
  local_address_ = peer.local_address;
}

const std::string& HttpConnection::peerPrincipal() const {
  return http2_ ? stream_principal_ : socket_.peerPrincipal();
}

void HttpConnection::start() {
  Guard g(this);
  if (stream_ != nullptr) {
    // An HTTP/2 stream: the connection (Http2ServerConnection) counts and idles itself.
    last_activity_ = TurnClock::now();
    worker_.addConnection(this);
    startRead();
    return;
  }
  boost::system::error_code ec;
  socket_.socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
  auto remote = socket_.socket().remote_endpoint(ec);
  if (!ec) {
    if (remote.address().is_v4()) {
      auto b = remote.address().to_v4().to_bytes();
      remote_hash_ = hash64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    } else {
      auto b = remote.address().to_v6().to_bytes();
      remote_hash_ = hash64(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
    }
  }
  if (const ListenerInfo* l = worker_.snapshot().listenerBySlot(slot_)) {
    cx_active_ = l->stats.cx_active;
    ssl_handshake_ = l->stats.ssl_handshake;
    ssl_error_ = l->stats.ssl_connection_error;
    worker_.stats().inc(l->stats.cx_total);
    worker_.stats().add(cx_active_, 1);
  }
  last_activity_ = TurnClock::now();
  worker_.addConnection(this);
  if (socket_.secure()) {
    if (!socket_.handshakeDone()) {
      startHandshake();  // closeIfIdle ends it after kHandshakeTimeout
      return;
    }
    onSecure();
    if (!maybe_preface_) {
      handOffToHttp2();  // ALPN chose h2
      return;
    }
  }
  if (!in_.empty()) {
    processInput();  // bytes read during protocol detection; reads on afterwards
    return;
  }
  startRead();
}

// ---------------------------------------------------------------------------------------------
// Downstream I/O

void HttpConnection::startHandshake() {
  ++pending_;
  socket_.asyncHandshake([this](const boost::system::error_code& ec) {
    Guard g(this);
    --pending_;
    if (closed_) return;
    if (ec) {
      if (ssl_error_.valid()) worker_.stats().inc(ssl_error_);
      MESH_LOG("http", debug, "TLS handshake failed: {}", socket_.tlsError());
      close();
      return;
    }
    if (ssl_handshake_.valid()) worker_.stats().inc(ssl_handshake_);
    last_activity_ = TurnClock::now();
    onSecure();
    if (!maybe_preface_) {
      handOffToHttp2();  // ALPN chose h2
      return;
    }
    startRead();
  });
}

void HttpConnection::onSecure() {
  // ALPN: "h2" means the client speaks HTTP/2 from its first byte; anything else (or nothing)
  // is HTTP/1.x, where a connection preface is not looked for.
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(socket_.ssl(), &alpn, &alpn_len);
  maybe_preface_ = !(alpn_len == 2 && alpn[0] == 'h' && alpn[1] == '2');
  // mTLS: the client proved a certificate; its SPIFFE id, when it has one, is the source.
  mutual_tls_ = socket_.peerCertified();
  const std::string& principal = socket_.peerPrincipal();
  if (mutual_tls_ && !principal.empty()) peer_workload_ = worker_.istio().peerWorkload(principal);
}

void HttpConnection::startRead() {
  // Never read while a write still points into the buffer (prepare() may move bytes).
  if (reading_ || closed_ || peer_eof_ || upstream_write_inflight_) return;
  auto [p, n] = in_.prepare(2048, parser_.limits().max_head_bytes + kReadChunk);
  if (n == 0) return;  // full: the parser has (or will have) rejected an oversized head
  reading_ = true;
  ++pending_;
  auto done = [this](const boost::system::error_code& ec, size_t len) {
    Guard g(this);
    --pending_;
    reading_ = false;
    onRead(ec, len);
  };
  if (stream_ != nullptr) {
    stream_->asyncRead(boost::asio::buffer(p, n), std::move(done));
  } else {
    socket_.asyncReadSome(boost::asio::buffer(p, n), std::move(done));
  }
}

void HttpConnection::onRead(const boost::system::error_code& ec, size_t n) {
  if (closed_) return;
  if (ec && rq_.tunnel) {
    onTunnelDownstreamEof(ec);
    return;
  }
  if (ec) {
    peer_eof_ = true;
    if (rq_.active) {
      if (write_kind_ == WriteKind::kLocalReply) {
        // Let the reply that is on its way finish; the connection closes after it.
        close_after_ = true;
        stop_parsing_ = true;
        return;
      }
      // The client went away mid-request.
      rq_.flags |= kDownstreamConnectionTermination;
      abortUpstream(true);
      if (!rq_.response_started) rq_.response_code = 0;
      recordRequest();
    }
    close();
    return;
  }
  in_.commit(n);
  last_activity_ = TurnClock::now();
  processInput();
}

void HttpConnection::processInput() {
  using Event = http::Http1Parser::Event;
  if (rq_.tunnel) {
    tunnelToUpstream();
    return;
  }
  if (in_process_) return;
  if (maybe_preface_ && !in_.empty()) {
    // HTTP/2 with prior knowledge starts with the connection preface (RFC 9113 3.4).
    std::string_view v = in_.view();
    size_t n = std::min(v.size(), kHttp2Preface.size());
    if (v.substr(0, n) != kHttp2Preface.substr(0, n)) {
      maybe_preface_ = false;
    } else if (n == kHttp2Preface.size()) {
      handOffToHttp2();
      return;
    } else {
      startRead();  // the rest of the preface
      return;
    }
  }
  in_process_ = true;
  while (!closed_ && !stop_parsing_ && !wait_upstream_ && !upstream_write_inflight_ &&
         !(rq_.active && rq_.request_complete)) {
    auto r = parser_.parse(in_.view());
    if (r.event == Event::kNeedMore) {
      in_.consume(r.consumed);
      // The request continues later: let the upstream start on the head now.
      if (rq_.forwarding && rq_.upstream_head_pending && upstream_ != nullptr) flushUpstreamHead();
      break;
    }
    if (r.event == Event::kError) {
      onParseError();
      break;
    }
    in_.consume(r.consumed);
    switch (r.event) {
      case Event::kHead:
        onRequestHead();
        break;
      case Event::kBody:
        onRequestBody(r.data);
        break;
      case Event::kMessageComplete:
        onRequestComplete();
        break;
      default:
        break;
    }
  }
  in_process_ = false;
  startRead();
}

void HttpConnection::writeDownstream(const BufferList& b, WriteKind kind) {
  if (closed_) return;
  if (writing_) {
    queued_write_.emplace(b, kind);  // only behind a "100 Continue"
    return;
  }
  writing_ = true;
  write_kind_ = kind;
  ++pending_;
  auto done = [this](const boost::system::error_code& ec, size_t) {
    Guard g(this);
    --pending_;
    writing_ = false;
    onDownstreamWrite(ec);
  };
  if (stream_ != nullptr) {
    stream_->asyncWrite(b, std::move(done));
  } else {
    socket_.asyncWrite(b, std::move(done));
  }
}

void HttpConnection::onDownstreamWrite(const boost::system::error_code& ec) {
  if (closed_) return;
  if (ec) {
    if (rq_.active) {
      rq_.flags |= kDownstreamConnectionTermination;
      abortUpstream(false);
      recordRequest();
    }
    close();
    return;
  }
  last_activity_ = TurnClock::now();
  WriteKind kind = write_kind_;
  write_kind_ = WriteKind::kNone;
  switch (kind) {
    case WriteKind::kResponseBody:
      if (upstream_ != nullptr) upstream_->continueReading();
      break;
    case WriteKind::kResponseEnd:
    case WriteKind::kLocalReply:
      finishRequest();
      break;
    default:
      break;
  }
  if (!closed_ && queued_write_ && !writing_) {
    auto q = std::move(*queued_write_);
    queued_write_.reset();
    writeDownstream(q.first, q.second);
  }
}

void HttpConnection::close() {
  if (closed_) return;
  closed_ = true;
  releaseRetryBudget();
  abortUpstream(false);
  if (stream_ != nullptr) {
    DownstreamStream* s = stream_;
    stream_ = nullptr;
    s->detach();
  } else {
    socket_.close();
  }
  route_timer_.cancel();
  attempt_timer_.cancel();
  if (rq_.holder != nullptr) {
    worker_.release(rq_.holder);
    rq_.holder = nullptr;
  }
  rq_.active = false;
  if (cx_active_.valid()) worker_.stats().add(cx_active_, -1);
  worker_.removeConnection(this);
}

void HttpConnection::handOffToHttp2() {
  maybe_preface_ = false;
  stop_parsing_ = true;
  // From the loop: the socket is not moved inside one of its own completions.
  ++pending_;
  boost::asio::post(worker_.io(), [this] {
    Guard g(this);
    --pending_;
    if (closed_) return;
    DownstreamPeer peer;
    peer.remote_hash = remote_hash_;
    peer.mutual_tls = mutual_tls_;
    peer.secure = socket_.secure();
    peer.peer_workload = peer_workload_;
    peer.principal = socket_.peerPrincipal();
    boost::system::error_code ec;
    auto r = socket_.socket().remote_endpoint(ec);
    if (!ec) peer.remote_address = r.address().to_string() + ":" + std::to_string(r.port());
    auto l = socket_.socket().local_endpoint(ec);
    if (!ec) peer.local_address = l.address().to_string() + ":" + std::to_string(l.port());
    std::string bytes(in_.view());
    in_.consume(in_.size());
    stats::SeriesId cx_active = cx_active_;
    cx_active_ = stats::SeriesId();  // the HTTP/2 connection counts itself out
    auto* h2 = new Http2ServerConnection(worker_, std::move(socket_), slot_, bytes, original_dst_,
                                         std::move(peer), cx_active);
    close();
    h2->start();
  });
}

void HttpConnection::drain() {
  Guard g(this);
  if (!rq_.active) {
    close();
  } else {
    close_after_ = true;
  }
}

void HttpConnection::closeIfIdle(Clock::time_point now) {
  Guard g(this);
  const ListenerInfo* listener = worker_.snapshot().listenerBySlot(slot_);
  if (rq_.tunnel && !closed_) {
    // An upgrade tunnel is idle when no byte moved either way (Envoy's idle timeout).
    Millis timeout = listener ? listener->idle_timeout : Millis(3600 * 1000);
    if (timeout.count() > 0 && now - last_activity_ > timeout) endTunnel(kStreamIdleTimeout);
    return;
  }
  if (rq_.active || closed_ || writing_ || stream_ != nullptr) return;
  if (socket_.secure() && !socket_.handshakeDone()) {
    if (now - last_activity_ > kHandshakeTimeout) {
      if (ssl_error_.valid()) worker_.stats().inc(ssl_error_);
      close();
    }
    return;
  }
  const ListenerInfo* l = worker_.snapshot().listenerBySlot(slot_);
  Millis timeout = l ? l->idle_timeout : Millis(3600 * 1000);
  if (timeout.count() > 0 && now - last_activity_ > timeout) close();
}

// ---------------------------------------------------------------------------------------------
// Request flow

void HttpConnection::resetRequest() {
  releaseRetryBudget();
  cors_headers_.clear();
  shadow_clusters_.clear();
  shadow_body_.clear();
  uint32_t gen = rq_.generation + 1;
  rq_ = Request();
  rq_.generation = gen;
  replay_.clear();
  set_cookie_.clear();
}

void HttpConnection::onRequestHead() {
  const http::RequestHead& req = parser_.request();
  resetRequest();
  rq_.active = true;
  rq_.start = TurnClock::now();
  rq_.start_wall = TurnClock::wallNow();
  rq_.holder = worker_.retainCurrent();
  rq_.listener = rq_.holder->snapshot->listenerBySlot(slot_);
  rq_.version = req.version;
  rq_.keep_alive = req.keep_alive;
  rq_.head_request = req.method == "HEAD";
  rq_.chunked = req.framing == http::BodyFraming::kChunked;
  rq_.body_expected =
      rq_.chunked || (req.framing == http::BodyFraming::kContentLength && req.content_length > 0);
  rq_.grpc = grpc::isGrpcRequest(req.headers);
  rq_.upgrade = upgrade::forwardable(req, rq_.grpc);
  if (rq_.listener == nullptr) {
    sendLocalReply(503, "listener removed\n", kNoRouteFound, "listener_removed");
    return;
  }
  worker_.stats().inc(rq_.listener->stats.rq_total);
  if (rq_.listener->access_log) copyForAccessLog(req);

  const Route* route = rq_.listener->routes ? rq_.listener->routes->findRoute(req) : nullptr;
  rq_.route = route;
  if (route == nullptr) {
    sendLocalReply(404, "", kNoRouteFound, "route_not_found");
    return;
  }
  switch (route->action) {
    case Route::Action::kDirectResponse:
      sendLocalReply(route->direct_status, route->direct_body, 0, "direct_response");
      return;
    case Route::Action::kRedirect: {
      std::string location = route->redirectLocation(req, false);
      sendLocalReply(route->redirect_code, "", 0, "redirect", location);
      return;
    }
    case Route::Action::kCluster:
      if (route->cors) {
        const http::Header* origin = req.headers.find("origin");
        if (origin != nullptr && route->cors->allowsOrigin(origin->value)) {
          if (req.method == "OPTIONS" && req.headers.has("access-control-request-method")) {
            // A preflight the proxy answers itself.
            cors_headers_.assign("access-control-allow-origin: ");
            cors_headers_.append(origin->value).append(kCrlf);
            cors_headers_.append(route->cors->preflight_headers);
            sendLocalReply(200, "", 0, "cors_preflight");
            return;
          }
          cors_headers_.assign("access-control-allow-origin: ");
          cors_headers_.append(origin->value).append(kCrlf);
          cors_headers_.append(route->cors->response_headers);
        }
      }
      if (route->fault) {
        // The cluster is picked first so that a fault's telemetry names the destination.
        pickTarget();
        // Decided once per request, as Envoy's fault filter does: delay first, then abort.
        const FaultPolicy& f = *route->fault;
        bool delay = f.delay.count() > 0 && worker_.random().uniform(1000000) < f.delay_per_million;
        rq_.fault_abort =
            f.abort_status != 0 && worker_.random().uniform(1000000) < f.abort_per_million;
        if (!delay && rq_.fault_abort) {
          abortByFault();
          return;
        }
        if (delay) rq_.flags |= kDelayInjected;
      }
      startRoute(req);
      return;
  }
}

void HttpConnection::abortByFault() {
  rq_.forwarding = false;
  rq_.grpc_reply_status = rq_.route->fault->abort_grpc_status;
  sendLocalReply(rq_.route->fault->abort_status, "fault filter abort", kFaultInjected,
                 "fault_filter_abort");
}

void HttpConnection::onFaultDelayEnd(uint32_t generation) {
  if (closed_ || generation != rq_.generation || !rq_.active) return;
  wait_upstream_ = false;
  if (rq_.fault_abort) {
    abortByFault();
    processInput();  // the rest of the request is read (and dropped) as after any local reply
    return;
  }
  startAttempt();
  // Parsing resumes now unless the attempt waits for a connection (then onUpstreamReady does
  // it); this also covers a local reply from startAttempt, such as no healthy upstream.
  if (!closed_ && !wait_upstream_) processInput();
}

void HttpConnection::pickTarget() {
  if (rq_.target != nullptr || rq_.route->targets.empty()) return;
  const Route& route = *rq_.route;
  rq_.target = &route.targets[pickWeighted(route.targets, route.total_weight, worker_.random())];
  rq_.cluster = rq_.holder->clusters[rq_.target->cluster];
  // Istio's PassthroughCluster: a pool for where this connection was going. Without one the
  // cluster keeps its placeholder host, which startAttempt refuses.
  if (rq_.cluster->info->original_dst && original_dst_) {
    rq_.cluster = worker_.originalDstRuntime(*rq_.cluster, *original_dst_);
  }
}

void HttpConnection::startRoute(const http::RequestHead& req) {
  const Route& route = *rq_.route;
  pickTarget();

  for (const HashPolicy& hp : route.hash_policies) {
    if (rq_.hash) break;
    switch (hp.kind) {
      case HashPolicy::Kind::kHeader: {
        const http::Header* h = req.headers.find(hp.name);
        if (h != nullptr) rq_.hash = hash64(h->value);
        break;
      }
      case HashPolicy::Kind::kCookie: {
        std::string_view v = cookieValue(req.headers, hp.name);
        if (!v.empty()) {
          rq_.hash = hash64(v);
        } else if (hp.generate_cookie) {
          char value[17];
          std::snprintf(value, sizeof(value), "%016llx",
                        static_cast<unsigned long long>(worker_.random().next()));
          rq_.hash = hash64(std::string_view(value, 16));
          set_cookie_ = hp.name + "=" + std::string(value, 16);
          if (!hp.cookie_path.empty()) set_cookie_ += "; Path=" + hp.cookie_path;
          if (hp.cookie_ttl.count() > 0) {
            set_cookie_ += "; Max-Age=" + std::to_string(hp.cookie_ttl.count() / 1000);
          }
          set_cookie_ += "; HttpOnly";
        }
        break;
      }
      case HashPolicy::Kind::kSourceIp:
        rq_.hash = remote_hash_;
        break;
    }
  }

  buildUpstreamHead(req);
  for (const MirrorPolicy& m : route.mirrors) {
    if (worker_.random().uniform(1000000) < m.per_million) shadow_clusters_.push_back(m.cluster);
  }
  if (rq_.body_expected && !rq_.chunked && req.content_length > kMaxShadowBody) {
    shadow_clusters_.clear();  // too big to keep: not mirrored
  }
  if (rq_.upgrade) shadow_clusters_.clear();  // a tunnel cannot be mirrored
  rq_.retry = route.retry ? &*route.retry : nullptr;
  rq_.timeout = grpc::effectiveTimeout(
      route.timeout, rq_.grpc,
      rq_.grpc ? grpc::parseTimeout(req.headers.get("grpc-timeout")) : std::nullopt);
  // A body is kept for replay when a retry policy might need it and it fits.
  rq_.replayable = rq_.retry != nullptr && (!rq_.body_expected || rq_.chunked ||
                                            req.content_length <= rq_.retry->max_replay_body_bytes);
  rq_.forwarding = true;
  if (req.expect_continue && rq_.body_expected) {
    BufferList b;
    b.add(kContinue);
    writeDownstream(b, WriteKind::kContinue);
  }
  if (rq_.flags & kDelayInjected) {
    // Parsing (and so the body) waits with the request until the delay is over; the upstream
    // head is already built, so the parser's views may be invalidated meanwhile.
    wait_upstream_ = true;
    uint32_t gen = rq_.generation;
    ++pending_;
    attempt_timer_.expires_after(rq_.route->fault->delay);
    attempt_timer_.async_wait([this, gen](const boost::system::error_code& ec) {
      Guard g(this);
      --pending_;
      if (!ec) onFaultDelayEnd(gen);
    });
    return;
  }
  startAttempt();
}

void HttpConnection::buildUpstreamHead(const http::RequestHead& req) {
  const Route& route = *rq_.route;
  const HeaderOps& ops = route.request_ops;
  const HeaderOps& tops = rq_.target->request_ops;
  // Room for what is added to the client's fields (ids, trace context, metadata exchange).
  HeadWriter out(upstream_head_, 1024);
  out.put(req.method);
  out.put(' ');
  if (!route.rewritePath(req, &scratch_)) {
    if (req.absolute_form) {
      scratch_.assign(req.path);
      if (!req.query.empty()) {
        scratch_.push_back('?');
        scratch_.append(req.query);
      }
    } else {
      scratch_.assign(req.target);
    }
  }
  out.put(scratch_);
  out.put(" HTTP/1.1\r\n"sv);
  const std::string_view host = route.host_rewrite.empty() ? req.host : route.host_rewrite;
  out.header("host", host);

  const bool extra_tokens = req.connection_names_fields;
  TraceContext trace_in;
  const http::Header* peer_md = nullptr;  // the first x-envoy-peer-metadata
  bool has_request_id = false;
  bool has_forwarded_proto = false;
  for (const auto& h : req.headers) {
    std::string_view n = h.name;
    if (n.size() == 4 && http::equalsIgnoreCase(n, "host")) continue;
    if (isHopByHop(n)) continue;
    if (trace_in.take(h)) continue;  // replaced below
    if (n.size() == 6 && http::equalsIgnoreCase(n, "expect")) continue;
    // Metadata exchange headers are this hop's: ours go out below, a peer's stop here.
    if (n.size() == kPeerMetadataHeader.size() && http::equalsIgnoreCase(n, kPeerMetadataHeader)) {
      if (peer_md == nullptr) peer_md = &h;
      continue;
    }
    if (n.size() == kPeerMetadataIdHeader.size() &&
        http::equalsIgnoreCase(n, kPeerMetadataIdHeader)) {
      continue;
    }
    if (n.size() == 12 && http::equalsIgnoreCase(n, "x-request-id")) has_request_id = true;
    if (n.size() == 17 && http::equalsIgnoreCase(n, "x-forwarded-proto"))
      has_forwarded_proto = true;
    if (!ops.empty() && ops.drops(n)) continue;
    if (!tops.empty() && tops.drops(n)) continue;
    if (extra_tokens && namedInConnection(req.headers, n)) continue;
    out.header(n, h.value);
  }
  if (peer_md != nullptr && rq_.listener->direction == Direction::kInbound) {
    // The source's identity, from its sidecar's metadata exchange header; a connection's
    // requests carry the same one, so the last lookup is kept (with the principal it came over).
    static const std::string kNone;
    const std::string& principal = mutual_tls_ ? peerPrincipal() : kNone;
    if (peer_md->value != peer_md_value_ || principal != peer_md_principal_) {
      peer_md_workload_ = worker_.istio().peerFromMetadata(peer_md->value, principal);
      peer_md_value_.assign(peer_md->value);
      peer_md_principal_.assign(principal);
    }
    rq_.peer_workload = peer_md_workload_;
  }
  if (rq_.chunked) out.put("transfer-encoding: chunked\r\n"sv);
  if (!has_request_id && rq_.listener->generate_request_id) {
    RequestId id = makeRequestId(worker_.random());
    out.header("x-request-id", id.view());
    if (rq_.listener->access_log) log_request_id_.assign(id.view());
  }
  // As Envoy: the scheme the client used to reach this proxy, unless a previous hop said.
  if (!has_forwarded_proto) {
    const bool secure = http2_ ? stream_secure_ : socket_.secure();
    out.put(secure ? "x-forwarded-proto: https\r\n"sv : "x-forwarded-proto: http\r\n"sv);
  }
  TraceHeaders trace;
  continueTrace(trace_in, worker_.random(), rq_.listener->trace_sampling, &trace);
  out.header("traceparent", trace.traceparentView());
  out.header("x-b3-traceid", trace.traceIdView());
  out.header("x-b3-spanid", trace.spanIdView());
  if (trace.has_parent) out.header("x-b3-parentspanid", trace.parentView());
  out.header("x-b3-sampled", trace.sampledView());
  if (rq_.listener->access_log) log_traceparent_.assign(trace.traceparentView());
  if (rq_.listener->direction == Direction::kOutbound) {
    const NodeInfo& node = rq_.holder->snapshot->node;
    if (!node.peer_metadata.empty()) {
      out.header(kPeerMetadataHeader, node.peer_metadata);
      out.header(kPeerMetadataIdHeader, node.id);
    }
  }
  out.ops(ops);
  out.ops(tops);
  std::string& head = out.done();
  if (rq_.upgrade) upgrade::appendUpgradeFields(head, req.headers);
  head.append(kCrlf);
}

void HttpConnection::startAttempt() {
  releaseRetryBudget();  // a scheduled retry is starting
  if (closed_) return;
  ClusterRuntime& cluster = *rq_.cluster;
  LbContext ctx;
  ctx.hash = rq_.hash;
  ctx.avoid_host = rq_.retries > 0 ? rq_.last_host : -1;
  if (cluster.info->outlier.enabled) ctx.now_ms = outlierNowMs();
  int host = chooseHost(*cluster.info, cluster.lb, cluster.active, worker_.random(), ctx);
  if (host >= 0 && cluster.info->original_dst && cluster.info->hosts[host].port == 0) {
    host = -1;  // ORIGINAL_DST on a connection that was not captured: nowhere to go
  }
  if (host < 0) {
    worker_.stats().inc(cluster.info->stats.rq_no_host);
    failRequest(503, "no healthy upstream", kNoHealthyUpstream, "no_healthy_upstream");
    return;
  }
  // Circuit breakers (cluster-wide): active requests, then connections and the queue for them.
  const ClusterInfo& info = *cluster.info;
  CircuitBreakerState& breaker = *info.breaker;
  const bool must_wait = !worker_.connectionAvailable(cluster, host);
  if (breaker.requests.load(std::memory_order_relaxed) >= info.limits.max_requests ||
      (must_wait &&
       breaker.pending.load(std::memory_order_relaxed) >= info.limits.max_pending_requests)) {
    worker_.stats().inc(info.stats.rq_pending_overflow);
    failRequest(503,
                "upstream connect error or disconnect/reset before headers. reset reason: "
                "overflow",
                kUpstreamOverflow, "upstream_reset_before_response_started{overflow}");
    return;
  }
  breaker.requests.fetch_add(1, std::memory_order_relaxed);
  rq_.host_index = host;
  rq_.attempt_active = true;
  ++cluster.hosts[host]->active_requests;
  ++cluster.active[host];
  worker_.stats().inc(cluster.info->stats.rq_total);
  worker_.stats().inc(cluster.info->hosts[host].stats.rq_total);
  rq_.upstream_head_pending = true;
  rq_.upstream_start = TurnClock::now();
  if (rq_.retry != nullptr && rq_.retry->per_try_timeout.count() > 0) {
    uint32_t gen = rq_.generation;
    ++pending_;
    attempt_timer_.expires_after(rq_.retry->per_try_timeout);
    attempt_timer_.async_wait([this, gen](const boost::system::error_code& ec) {
      Guard g(this);
      --pending_;
      if (!ec) onAttemptTimer(gen, false);
    });
  }
  if (must_wait) {
    // Queued until a connection to this host frees up (Worker::serveWaiters).
    breaker.pending.fetch_add(1, std::memory_order_relaxed);
    worker_.stats().add(info.stats.rq_pending_active, 1);
    rq_.queued = true;
    wait_upstream_ = true;
    worker_.enqueueWaiter(cluster, host, this);
    return;
  }
  acquireUpstream();
}

void HttpConnection::acquireUpstream() {
  bool ready = false;
  upstream_ = worker_.acquireConnection(*rq_.cluster, rq_.host_index, this,
                                        !rq_.force_new_connection, rq_.head_request, &ready);
  if (upstream_ != nullptr) upstream_->setUpgradeRequested(rq_.upgrade);
  rq_.upstream_reused = ready;
  if (ready) {
    onUpstreamReady();
  } else {
    wait_upstream_ = true;
  }
}

void HttpConnection::leaveQueue() {
  if (!rq_.queued) return;
  rq_.queued = false;
  rq_.cluster->info->breaker->pending.fetch_sub(1, std::memory_order_relaxed);
  worker_.stats().add(rq_.cluster->info->stats.rq_pending_active, -1);
  worker_.removeWaiter(*rq_.cluster->hosts[rq_.host_index], this);
}

bool HttpConnection::onConnectionAvailable() {
  Guard g(this);
  if (!rq_.queued) return true;
  if (!worker_.connectionAvailable(*rq_.cluster, rq_.host_index)) return false;
  leaveQueue();
  acquireUpstream();
  return true;
}

void HttpConnection::onUpstreamReady() {
  Guard g(this);
  wait_upstream_ = false;
  if (upstream_ == nullptr) return;
  if (rq_.request_complete || !replay_.empty()) {
    // A retry, or a request that ended before the connection was up: send what we have.
    BufferList b;
    b.add(upstream_head_);
    b.add(replay_);
    rq_.upstream_head_pending = false;
    upstream_write_inflight_ = true;
    upstream_->write(b);
    return;
  }
  processInput();
}

void HttpConnection::flushUpstreamHead() {
  BufferList b;
  b.add(upstream_head_);
  rq_.upstream_head_pending = false;
  upstream_write_inflight_ = true;
  upstream_->write(b);
}

void HttpConnection::onRequestBody(std::string_view data) {
  rq_.request_body_bytes += data.size();
  if (!shadow_clusters_.empty()) {
    if (shadow_body_.size() + data.size() > kMaxShadowBody) {
      shadow_clusters_.clear();
      shadow_body_.clear();
    } else {
      shadow_body_.append(data);
    }
  }
  if (!rq_.forwarding || upstream_ == nullptr) return;
  BufferList b;
  if (rq_.upstream_head_pending) {
    b.add(upstream_head_);
    rq_.upstream_head_pending = false;
  }
  size_t framing = 0;
  if (rq_.chunked) {
    framing = formatChunkHeader(chunk_up_, data.size());
    b.add(chunk_up_, framing);
    b.add(data);
    b.add(kCrlf);
  } else {
    b.add(data);
  }
  if (rq_.replayable) {
    if (replay_.size() + data.size() + framing + 2 > rq_.retry->max_replay_body_bytes) {
      rq_.replayable = false;
      replay_.clear();
    } else {
      replay_.append(chunk_up_, framing);
      replay_.append(data);
      if (rq_.chunked) replay_.append(kCrlf);
    }
  }
  rq_.body_bytes_forwarded += data.size();
  upstream_write_inflight_ = true;
  upstream_->write(b);
}

void HttpConnection::onRequestComplete() {
  rq_.request_complete = true;
  if (!shadow_clusters_.empty() && rq_.forwarding) sendShadows();
  if (rq_.forwarding && upstream_ != nullptr) {
    BufferList b;
    if (rq_.upstream_head_pending) {
      b.add(upstream_head_);
      rq_.upstream_head_pending = false;
    }
    if (rq_.chunked) {
      scratch_.assign("0\r\n");
      for (const auto& t : parser_.trailers()) appendHeader(scratch_, t.name, t.value);
      scratch_.append(kCrlf);
      b.add(scratch_);
      if (rq_.replayable) replay_.append(scratch_);
    }
    if (!b.empty()) {
      upstream_write_inflight_ = true;
      upstream_->write(b);
    }
  } else if (rq_.forwarding && rq_.chunked && rq_.replayable) {
    // Between attempts: the end of the body goes into the replay for the next one.
    replay_.append("0\r\n"sv);
    for (const auto& t : parser_.trailers()) appendHeader(replay_, t.name, t.value);
    replay_.append(kCrlf);
  }
  if (rq_.forwarding && rq_.timeout.count() > 0 && !rq_.response_started) {
    uint32_t gen = rq_.generation;
    ++pending_;
    route_timer_.expires_after(rq_.timeout);
    route_timer_.async_wait([this, gen](const boost::system::error_code& ec) {
      Guard g(this);
      --pending_;
      if (!ec) onRouteTimeout(gen);
    });
  }
}

// "reviews:9080" -> "reviews-shadow:9080", as Envoy names the host of a mirrored request.
static std::string shadowHost(std::string_view host) {
  size_t colon = host.rfind(':');
  bool has_port = colon != std::string_view::npos && colon + 1 < host.size() &&
                  host.find(']', colon) == std::string_view::npos;
  for (size_t i = colon + 1; has_port && i < host.size(); ++i) {
    has_port = host[i] >= '0' && host[i] <= '9';
  }
  std::string out(has_port ? host.substr(0, colon) : host);
  out += "-shadow";
  if (has_port) out += host.substr(colon);
  return out;
}

void HttpConnection::sendShadows() {
  // The upstream head with the host suffixed and the body re-framed by its (now known) length.
  std::string_view head = upstream_head_;
  std::string out;
  size_t line_end = head.find(kCrlf);
  out.append(head.substr(0, line_end + 2));
  size_t pos = line_end + 2;
  bool has_length = false;
  while (pos < head.size()) {
    size_t end = head.find(kCrlf, pos);
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    if (line.starts_with("host: ")) {
      out.append("host: "sv).append(shadowHost(line.substr(6))).append(kCrlf);
      continue;
    }
    if (line.starts_with("transfer-encoding: ")) continue;
    if (line.size() > 15 && http::equalsIgnoreCase(line.substr(0, 15), "content-length:")) {
      has_length = true;
    }
    out.append(line).append(kCrlf);
  }
  if (!has_length && !shadow_body_.empty()) {
    appendHeader(out, "content-length", std::to_string(shadow_body_.size()));
  }
  out.append(kCrlf);
  out.append(shadow_body_);
  const Millis timeout = rq_.route->timeout.count() > 0 ? rq_.route->timeout : kShadowTimeout;
  for (uint32_t cluster : shadow_clusters_) {
    ShadowRequest::send(worker_, rq_.holder, cluster, out, rq_.head_request, timeout);
  }
  shadow_clusters_.clear();
  shadow_body_.clear();
}

void HttpConnection::onUpstreamWriteComplete() {
  Guard g(this);
  upstream_write_inflight_ = false;
  if (rq_.tunnel) {
    onTunnelUpstreamWritten();
    return;
  }
  if (rq_.upstream_done) {
    releaseUpstream();
    if (rq_.finish_pending) finishRequest();
    return;
  }
  processInput();
}

void HttpConnection::onParseError() {
  http::ParseError e = parser_.error();
  int status = http::parseErrorStatus(e);
  const ListenerInfo* l = worker_.snapshot().listenerBySlot(slot_);
  if (l != nullptr) worker_.stats().inc(l->stats.protocol_error);
  MESH_LOG("http", debug, "closing downstream connection: {}", http::parseErrorText(e));
  close_after_ = true;
  stop_parsing_ = true;
  if (!rq_.active) {
    resetRequest();
    rq_.active = true;
    rq_.start = TurnClock::now();
    rq_.start_wall = TurnClock::wallNow();
    rq_.holder = worker_.retainCurrent();
    rq_.listener = l;
    rq_.keep_alive = false;
  } else {
    abortUpstream(true);
  }
  if (rq_.response_started) {
    rq_.flags |= kDownstreamProtocolError;
    recordRequest();
    close();
    return;
  }
  std::string_view text = http::parseErrorText(e);
  scratch_.assign(text);
  scratch_.push_back('\n');
  std::string body = scratch_;
  sendLocalReply(static_cast<uint16_t>(status), body, kDownstreamProtocolError,
                 "http1.codec_error");
}

// ---------------------------------------------------------------------------------------------
// Attempts, retries, timeouts

void HttpConnection::endAttempt(bool failed) {
  if (!rq_.attempt_active) return;
  rq_.attempt_active = false;
  attempt_timer_.cancel();
  if (rq_.cluster != nullptr && rq_.host_index >= 0) {
    rq_.cluster->info->breaker->requests.fetch_sub(1, std::memory_order_relaxed);
    --rq_.cluster->hosts[rq_.host_index]->active_requests;
    --rq_.cluster->active[rq_.host_index];
    if (failed) worker_.stats().inc(rq_.cluster->info->hosts[rq_.host_index].stats.rq_error);
  }
}

void HttpConnection::abortUpstream(bool failed) {
  leaveQueue();
  if (upstream_ != nullptr) {
    UpstreamRequest* u = upstream_;
    upstream_ = nullptr;
    u->abort();
  }
  upstream_write_inflight_ = false;
  wait_upstream_ = false;
  endAttempt(failed);
}

bool HttpConnection::replayOk() const { return rq_.body_bytes_forwarded == 0 || rq_.replayable; }

bool HttpConnection::canRetry() const {
  if (rq_.retry == nullptr || rq_.retries >= rq_.retry->num_retries || !replayOk() ||
      rq_.response_started || closed_) {
    return false;
  }
  // The cluster-wide budget of retries waiting at once (Istio's maxRetries).
  const ClusterInfo& info = *rq_.cluster->info;
  if (info.breaker->retries.load(std::memory_order_relaxed) >= info.limits.max_retries) {
    worker_.stats().inc(info.stats.rq_retry_overflow);
    return false;
  }
  return true;
}

void HttpConnection::releaseRetryBudget() {
  if (!rq_.retry_held) return;
  rq_.retry_held = false;
  rq_.cluster->info->breaker->retries.fetch_sub(1, std::memory_order_relaxed);
}

void HttpConnection::scheduleRetry() {
  ++rq_.retries;
  rq_.cluster->info->breaker->retries.fetch_add(1, std::memory_order_relaxed);
  rq_.retry_held = true;
  rq_.last_host = rq_.host_index;
  worker_.stats().inc(rq_.cluster->info->stats.rq_retry);
  Millis delay = rq_.retry->backoff(rq_.retries, worker_.random().next());
  if (delay.count() == 0) {
    startAttempt();
    return;
  }
  uint32_t gen = rq_.generation;
  ++pending_;
  attempt_timer_.expires_after(delay);
  attempt_timer_.async_wait([this, gen](const boost::system::error_code& ec) {
    Guard g(this);
    --pending_;
    if (!ec) onAttemptTimer(gen, true);
  });
}

void HttpConnection::onAttemptTimer(uint32_t generation, bool backoff) {
  if (closed_ || !rq_.active || generation != rq_.generation) return;
  if (backoff) {
    startAttempt();
    return;
  }
  // Per-try timeout.
  if (!rq_.attempt_active || rq_.response_started) return;
  noteOutcome(AttemptOutcome::kLocalFailure);
  worker_.stats().inc(rq_.cluster->info->stats.rq_timeout);
  abortUpstream(true);
  if (canRetry() && (rq_.retry->retry_on & (kRetry5xx | kRetryGatewayError | kRetryReset))) {
    scheduleRetry();
    return;
  }
  failRequest(504, "upstream request timeout",
              kUpstreamRequestTimeout | (rq_.retries > 0 ? kUpstreamRetryLimitExceeded : 0u),
              "upstream_per_try_timeout");
}

void HttpConnection::onRouteTimeout(uint32_t generation) {
  if (closed_ || !rq_.active || generation != rq_.generation) return;
  if (rq_.cluster != nullptr) worker_.stats().inc(rq_.cluster->info->stats.rq_timeout);
  attempt_timer_.cancel();
  abortUpstream(true);
  if (rq_.response_started) {
    rq_.flags |= kUpstreamRequestTimeout;
    recordRequest();
    close();
    return;
  }
  failRequest(504, "upstream request timeout", kUpstreamRequestTimeout,
              "upstream_response_timeout");
}

void HttpConnection::onUpstreamConnectFailure(bool timed_out) {
  Guard g(this);
  (void)timed_out;
  upstream_ = nullptr;
  upstream_write_inflight_ = false;
  wait_upstream_ = false;
  noteOutcome(AttemptOutcome::kLocalFailure);
  if (rq_.cluster != nullptr && rq_.host_index >= 0) {
    worker_.stats().inc(rq_.cluster->info->stats.cx_connect_fail);
    worker_.stats().inc(rq_.cluster->info->hosts[rq_.host_index].stats.cx_connect_fail);
  }
  endAttempt(true);
  if (closed_) return;
  if (canRetry() && (rq_.retry->retry_on &
                     (kRetryConnectFailure | kRetry5xx | kRetryGatewayError | kRetryReset))) {
    scheduleRetry();
    return;
  }
  failRequest(503,
              "upstream connect error or disconnect/reset before headers. reset reason: "
              "connection failure",
              kUpstreamConnectionFailure | (rq_.retries > 0 ? kUpstreamRetryLimitExceeded : 0u),
              "upstream_reset_before_response_started{connection_failure}");
}

void HttpConnection::onUpstreamReset(bool response_bytes_seen) {
  Guard g(this);
  upstream_ = nullptr;
  upstream_write_inflight_ = false;
  wait_upstream_ = false;
  endAttempt(true);
  if (closed_) return;
  if (rq_.response_started) {
    // Mid-response: the client cannot be given a complete answer.
    rq_.flags |= kUpstreamConnectionTermination;
    recordRequest();
    close();
    return;
  }
  // A pooled connection closed by the server before it saw our request is not the host's fault.
  const bool stale_pooled = rq_.upstream_reused && !response_bytes_seen;
  if (!stale_pooled) noteOutcome(AttemptOutcome::kLocalFailure);
  if (rq_.upstream_reused && !response_bytes_seen && !rq_.silent_retry_done && replayOk() &&
      (rq_.body_bytes_forwarded == 0 || !replay_.empty() || !rq_.body_expected)) {
    // A pooled connection the server had closed: try once more on a fresh one. Not a retry.
    rq_.silent_retry_done = true;
    rq_.force_new_connection = true;
    startAttempt();
    return;
  }
  if (canRetry() && (rq_.retry->retry_on & (kRetry5xx | kRetryGatewayError | kRetryReset))) {
    scheduleRetry();
    return;
  }
  failRequest(503,
              "upstream connect error or disconnect/reset before headers. reset reason: "
              "connection termination",
              kUpstreamConnectionTermination | (rq_.retries > 0 ? kUpstreamRetryLimitExceeded : 0u),
              "upstream_reset_before_response_started{connection_termination}");
}

void HttpConnection::onUpstreamProtocolError(http::ParseError e) {
  Guard g(this);
  upstream_ = nullptr;
  upstream_write_inflight_ = false;
  wait_upstream_ = false;
  endAttempt(true);
  if (closed_) return;
  MESH_LOG("upstream", debug, "upstream protocol error: {}", http::parseErrorText(e));
  if (rq_.response_started) {
    rq_.flags |= kUpstreamProtocolError;
    recordRequest();
    close();
    return;
  }
  failRequest(502, "upstream protocol error", kUpstreamProtocolError, "upstream_protocol_error");
}

void HttpConnection::failRequest(uint16_t status, std::string_view body, uint32_t flags,
                                 const char* details) {
  route_timer_.cancel();
  attempt_timer_.cancel();
  sendLocalReply(status, body, flags, details);
}

// ---------------------------------------------------------------------------------------------
// Responses

void HttpConnection::noteOutcome(AttemptOutcome o) {
  if (rq_.cluster == nullptr || rq_.host_index < 0) return;
  reportOutcome(*rq_.cluster->info, static_cast<size_t>(rq_.host_index), o, worker_.stats());
}

void HttpConnection::onUpstreamHead(const http::ResponseHead& resp) {
  Guard g(this);
  attempt_timer_.cancel();
  noteOutcome(outcomeOfStatus(resp.status));
  // A trailers-only gRPC response carries its grpc-status in the headers (retriable, as Envoy).
  rq_.grpc_status = grpc::statusOf(resp.headers);
  if (rq_.retry != nullptr &&
      (rq_.retry->retriableStatus(resp.status) ||
       (rq_.grpc_status && rq_.retry->retriableGrpcStatus(*rq_.grpc_status)))) {
    if (canRetry()) {
      abortUpstream(true);
      scheduleRetry();
      return;
    }
    if (rq_.retries > 0) rq_.flags |= kUpstreamRetryLimitExceeded;
  }
  rq_.response_started = true;
  rq_.response_code = resp.status;
  rq_.upstream_keep_alive = resp.keep_alive;
  if (upstream_ != nullptr && rq_.listener->direction == Direction::kOutbound) {
    // Istio's source reporter over mTLS names both sides by the certificates' SPIFFE ids.
    const tls::TransportSocket* t = upstream_->transport();
    if (t != nullptr && t->secure() && t->peerCertified() && !t->peerPrincipal().empty() &&
        !t->localPrincipal().empty()) {
      rq_.upstream_principal = worker_.istio().peerWorkload(t->peerPrincipal());
      rq_.own_principal = worker_.istio().peerWorkload(t->localPrincipal());
    }
  }
  if (resp.status == 101 && rq_.upgrade) {
    startTunnel(resp);
    return;
  }
  rq_.upstream_service_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(TurnClock::now() - rq_.upstream_start)
          .count();
  buildResponseHead(resp);
  rq_.response_head_pending = true;
}

void HttpConnection::buildResponseHead(const http::ResponseHead& resp) {
  const HeaderOps& ops = rq_.route->response_ops;
  const HeaderOps* tops = rq_.target ? &rq_.target->response_ops : nullptr;
  // Framing towards the client: keep Content-Length; re-chunk otherwise for HTTP/1.1 clients;
  // HTTP/1.0 clients get the body delimited by the close.
  bool has_body =
      resp.framing == http::BodyFraming::kChunked || resp.framing == http::BodyFraming::kUntilClose;
  rq_.response_chunked = has_body && rq_.version == http::Version::kHttp11;
  if (has_body && !rq_.response_chunked) close_after_ = true;
  if (!rq_.keep_alive || !rq_.request_complete || worker_.draining()) close_after_ = true;

  HeadWriter out(response_head_, 512);
  out.put("HTTP/1.1 "sv);
  out.put(StatusDigits(resp.status));
  out.put(' ');
  out.put(resp.reason.empty() ? http::reasonPhrase(resp.status) : resp.reason);
  out.put(kCrlf);
  const bool extra_tokens = resp.connection_names_fields;
  for (const auto& h : resp.headers) {
    if (isHopByHop(h.name)) continue;
    if (!ops.empty() && ops.drops(h.name)) continue;
    if (tops != nullptr && !tops->empty() && tops->drops(h.name)) continue;
    if (extra_tokens && namedInConnection(resp.headers, h.name)) continue;
    out.header(h.name, h.value);
  }
  out.ops(ops);
  if (tops != nullptr) out.ops(*tops);
  if (!set_cookie_.empty()) out.header("set-cookie", set_cookie_);
  out.put(cors_headers_);
  if (rq_.response_chunked) out.put("transfer-encoding: chunked\r\n"sv);
  if (!rq_.tunnel) {
    if (close_after_) {
      out.put("connection: close\r\n"sv);
    } else if (rq_.version == http::Version::kHttp10) {
      out.put("connection: keep-alive\r\n"sv);
    }
  }
  std::string& head = out.done();
  if (rq_.tunnel) upgrade::appendUpgradeFields(head, resp.headers);
  head.append(kCrlf);
}

bool HttpConnection::onUpstreamBody(std::string_view data) {
  Guard g(this);
  if (closed_) return false;
  rq_.response_body_bytes += data.size();
  BufferList b;
  if (rq_.response_head_pending) {
    b.add(response_head_);
    rq_.response_head_pending = false;
  }
  if (rq_.response_chunked) {
    b.add(chunk_down_, formatChunkHeader(chunk_down_, data.size()));
    b.add(data);
    b.add(kCrlf);
  } else {
    b.add(data);
  }
  writeDownstream(b, WriteKind::kResponseBody);
  return true;
}

void HttpConnection::onUpstreamComplete(const http::HeaderList& trailers) {
  Guard g(this);
  if (rq_.tunnel) {
    onTunnelUpstreamEof();
    return;
  }
  if (auto status = grpc::statusOf(trailers)) rq_.grpc_status = status;
  BufferList b;
  if (rq_.response_head_pending) {
    b.add(response_head_);
    rq_.response_head_pending = false;
  }
  if (rq_.response_chunked) {
    if (trailers.empty()) {
      b.add(kLastChunk);
    } else {
      scratch_.assign("0\r\n");
      for (const auto& t : trailers) appendHeader(scratch_, t.name, t.value);
      scratch_.append(kCrlf);
      b.add(scratch_);
    }
  }
  route_timer_.cancel();
  rq_.upstream_done = true;
  // The completion of our last write may not have been reaped yet (the response can overtake
  // it): the connection is released, and the request finished, once it has.
  if (!upstream_write_inflight_) releaseUpstream();
  if (closed_) return;
  if (b.empty()) {
    finishRequest();
  } else {
    writeDownstream(b, WriteKind::kResponseEnd);
  }
}

void HttpConnection::releaseUpstream() {
  // Back to the pool only if both messages ended cleanly.
  bool reusable = rq_.upstream_keep_alive && rq_.request_complete;
  UpstreamRequest* u = upstream_;
  upstream_ = nullptr;
  endAttempt(rq_.response_code >= 500);
  if (u != nullptr) u->release(reusable);
}

void HttpConnection::sendLocalReply(uint16_t status, std::string_view body, uint32_t flags,
                                    const char* details, std::string_view location) {
  rq_.response_code = status;
  rq_.flags |= flags;
  rq_.details = details;
  rq_.response_started = true;
  if (rq_.body_expected && !rq_.request_complete) {
    // The rest of the request body will not be read: the connection cannot be reused.
    close_after_ = true;
    stop_parsing_ = true;
  }
  if (!rq_.keep_alive || worker_.draining()) close_after_ = true;
  // A gRPC client gets the proxy's own failures (flags set) as a gRPC status: HTTP 200,
  // trailers-only; so does any client of a fault that aborts with a gRPC status.
  const bool grpc_form = (rq_.grpc && flags != 0 && location.empty()) || rq_.grpc_reply_status;
  if (grpc_form) {
    rq_.grpc_status = rq_.grpc_reply_status
                          ? *rq_.grpc_reply_status
                          : grpc::localReplyStatus(status, (flags & kUpstreamRequestTimeout) != 0);
    std::string_view message = body.empty() ? std::string_view(details) : body;
    while (!message.empty() && message.back() == '\n') message.remove_suffix(1);
    scratch_.assign(message);  // body may point into scratch_ (onParseError)
    body = {};
    status = 200;
    rq_.response_code = 200;
  }
  std::string& out = response_head_;
  out.clear();
  out.append("HTTP/1.1 "sv);
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(http::reasonPhrase(status));
  out.append(kCrlf);
  if (grpc_form) {
    grpc::appendLocalReplyHeaders(out, *rq_.grpc_status, scratch_);
  } else {
    appendHeader(out, "content-length", std::to_string(body.size()));
  }
  if (!body.empty()) out.append("content-type: text/plain\r\n"sv);
  if (!location.empty()) appendHeader(out, "location", location);
  out.append(cors_headers_);  // a CORS-allowed origin sees local replies too
  if (rq_.route != nullptr) appendOps(out, rq_.route->response_ops);
  out.append("server: istio-envoy\r\n"sv);
  if (close_after_) out.append("connection: close\r\n"sv);
  out.append(kCrlf);
  rq_.response_body_bytes = rq_.head_request ? 0 : body.size();
  scratch_.assign(rq_.head_request ? std::string_view() : body);
  BufferList b;
  b.add(response_head_);
  b.add(scratch_);
  writeDownstream(b, WriteKind::kLocalReply);
}

void HttpConnection::finishRequest() {
  if (!rq_.active) return;
  if (rq_.upstream_done && upstream_ != nullptr) {
    rq_.finish_pending = true;  // after our last upstream write completes (releaseUpstream)
    return;
  }
  route_timer_.cancel();
  attempt_timer_.cancel();
  releaseRetryBudget();  // a retry that was waiting when the request ended
  recordRequest();
  abortUpstream(false);
  if (rq_.holder != nullptr) {
    worker_.release(rq_.holder);
    rq_.holder = nullptr;
  }
  bool request_done = rq_.request_complete || !rq_.body_expected;
  rq_.active = false;
  last_activity_ = TurnClock::now();
  if (close_after_ || worker_.draining() || !request_done) {
    close();
    return;
  }
  processInput();
}

void HttpConnection::copyForAccessLog(const http::RequestHead& req) {
  log_method_.assign(req.method);
  log_path_.assign(req.target);
  log_authority_.assign(req.host);
  log_user_agent_.assign(req.headers.get("user-agent"));
  log_request_id_.assign(req.headers.get("x-request-id"));
  log_xff_.assign(req.headers.get("x-forwarded-for"));
  log_traceparent_.clear();
  if (remote_address_.empty()) {
    boost::system::error_code ec;
    auto r = socket_.socket().remote_endpoint(ec);
    if (!ec) remote_address_ = r.address().to_string() + ":" + std::to_string(r.port());
    auto l = socket_.socket().local_endpoint(ec);
    if (!ec) local_address_ = l.address().to_string() + ":" + std::to_string(l.port());
  }
}

void HttpConnection::recordRequest() {
  if (rq_.listener == nullptr || rq_.holder == nullptr) return;
  const ListenerInfo& l = *rq_.listener;
  const Snapshot& snap = *rq_.holder->snapshot;
  uint16_t code = rq_.response_code;
  auto& ts = worker_.stats();
  if (code >= 200 && code < 600) {
    const stats::SeriesId xx[] = {l.stats.rq_2xx, l.stats.rq_3xx, l.stats.rq_4xx, l.stats.rq_5xx};
    ts.inc(xx[code / 100 - 2]);
  }
  auto elapsed = TurnClock::now() - rq_.start;
  double ms = std::chrono::duration<double, std::milli>(elapsed).count();
  if (snap.metrics_enabled) {
    RequestKey key;
    const ClusterInfo* cluster = rq_.cluster ? rq_.cluster->info.get() : nullptr;
    key.service = cluster ? cluster->service_id : 0;
    if (l.direction == Direction::kOutbound) {
      key.reporter = Reporter::kSource;
      key.source_workload = snap.node.workload_id;
      if (cluster != nullptr && rq_.host_index >= 0) {
        key.destination_workload = cluster->hosts[rq_.host_index].workload_id;
      }
      key.security = 0;
    } else {
      key.reporter = Reporter::kDestination;
      key.destination_workload = snap.node.workload_id;
      key.source_workload = rq_.peer_workload != 0 ? rq_.peer_workload : peer_workload_;
      key.security = mutual_tls_ ? 2 : 1;
    }
    key.response_code = code;
    key.flags = rq_.flags;
    key.protocol = rq_.grpc ? 1 : 0;
    key.grpc_status = grpc::telemetryStatus(rq_.grpc, rq_.grpc_status, code);
    key.source_principal = rq_.own_principal;
    key.destination_principal = rq_.upstream_principal;
    worker_.istio().record(ts, key, ms, rq_.request_body_bytes, rq_.response_body_bytes);
  }
  if (l.access_log) {
    AccessLogWriter& w = worker_.accessLog(l.access_log_path);
    AccessLogEntry e;
    e.start_time = rq_.start_wall;
    e.method = log_method_;
    e.path = log_path_;
    e.protocol = http2_                                  ? "HTTP/2"
                 : rq_.version == http::Version::kHttp10 ? "HTTP/1.0"
                                                         : "HTTP/1.1";
    e.response_code = code;
    e.response_flags = rq_.flags;
    e.response_code_details = rq_.details;
    e.bytes_received = rq_.request_body_bytes;
    e.bytes_sent = rq_.response_body_bytes;
    e.duration_ms = static_cast<int64_t>(ms);
    e.upstream_service_time_ms = rq_.upstream_service_ms;
    e.x_forwarded_for = log_xff_;
    e.user_agent = log_user_agent_;
    e.request_id = log_request_id_;
    e.authority = log_authority_;
    if (rq_.cluster != nullptr) {
      e.upstream_cluster = rq_.cluster->info->name;
      if (rq_.host_index >= 0) e.upstream_host = rq_.cluster->info->hosts[rq_.host_index].key;
    }
    e.downstream_local_address = local_address_;
    e.downstream_remote_address = remote_address_;
    if (rq_.route != nullptr) e.route_name = rq_.route->name;
    e.traceparent = log_traceparent_;
    e.grpc_status = grpc::telemetryStatus(rq_.grpc, rq_.grpc_status, code);
    w.write(e);
  }
}

}  // namespace mesh::proxy
