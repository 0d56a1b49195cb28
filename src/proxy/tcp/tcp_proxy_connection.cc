#include "proxy/tcp/tcp_proxy_connection.h"

#include <algorithm>
#include <boost/asio/write.hpp>

#include "core/log.h"
#include "core/tls/client_hello.h"
#include "proxy/http/http_connection.h"
#include "proxy/server/worker.h"
#include "proxy/telemetry/response_flags.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier_detection.h"

namespace mesh::proxy {

// Every entry point holds a Guard: the object deletes itself when the outermost call returns
// with the connection closed and no asynchronous operation outstanding.
struct TcpProxyConnection::Guard {
  explicit Guard(TcpProxyConnection* c) : c_(c) { ++c_->depth_; }
  ~Guard() {
    if (--c_->depth_ == 0 && c_->closed_ && c_->pending_ == 0) {
      Worker& worker = c_->worker_;
      if (c_->holder_ != nullptr) worker.release(c_->holder_);
      delete c_;
      worker.tcpConnectionEnded();  // a drain waits for TCP connections too
    }
  }
  TcpProxyConnection* c_;
};

TcpProxyConnection::TcpProxyConnection(Worker& worker, tls::TransportSocket socket,
                                       uint32_t listener_slot,
                                       std::optional<boost::asio::ip::tcp::endpoint> original_dst)
    : worker_(worker),
      downstream_(std::move(socket)),
      upstream_(worker.io()),
      timer_(worker.io()),
      detect_timer_(worker.io()),
      slot_(listener_slot),
      original_dst_(original_dst) {
  worker_.tcpConnectionStarted();
}

void TcpProxyConnection::start() {
  Guard g(this);
  holder_ = worker_.retainCurrent();
  listener_ = holder_->snapshot->listenerBySlot(slot_);
  if (listener_ == nullptr || !listener_->tcp) {
    listener_ = nullptr;  // removed, or no longer a TCP listener, by a reload
    close(0);
    return;
  }
  boost::system::error_code ec;
  downstream_.socket().set_option(boost::asio::ip::tcp::no_delay(true), ec);
  last_activity_ = std::chrono::steady_clock::now();
  if (!downstream_.secure()) {
    begin();
    return;
  }
  // Counted from the start, so the idle timer also bounds a client that stalls the handshake.
  countConnection();
  ++pending_;
  downstream_.asyncHandshake([this](const boost::system::error_code& e) {
    Guard g2(this);
    --pending_;
    if (closed_) return;
    if (e) {
      worker_.stats().inc(listener_->stats.ssl_connection_error);
      MESH_LOG("upstream", debug, "TLS handshake failed: {}", downstream_.tlsError());
      close(kDownstreamConnectionTermination);
      return;
    }
    worker_.stats().inc(listener_->stats.ssl_handshake);
    last_activity_ = std::chrono::steady_clock::now();
    mutual_tls_ = downstream_.peerCertified();
    const std::string& principal = downstream_.peerPrincipal();
    if (mutual_tls_ && !principal.empty()) {
      peer_workload_ = worker_.istio().peerWorkload(principal);
    }
    begin();
  });
}

bool TcpProxyConnection::serverFirst() const {
  const auto& ports = listener_->server_first_ports;
  if (ports.empty()) return false;
  uint16_t port = 0;
  if (original_dst_) {
    port = original_dst_->port();
  } else {
    boost::system::error_code ec;
    auto local = downstream_.socket().local_endpoint(ec);
    if (ec) return false;
    port = local.port();
  }
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

void TcpProxyConnection::begin() {
  if (listener_->detectsProtocol() && !serverFirst()) {
    // The first bytes decide between HTTP and TCP; a silent client is TCP (server-first).
    detecting_ = true;
    sniffing_ = true;
    sniff_deadline_ = last_activity_ + kSniffTimeout;
    ++pending_;
    detect_timer_.expires_after(listener_->detection_timeout);
    detect_timer_.async_wait([this](const boost::system::error_code& e) {
      Guard g2(this);
      --pending_;
      if (e || closed_ || !detecting_) return;
      // Undecided in time (nothing sent, or not yet a request line): TCP. The pending read
      // returns aborted, having consumed nothing; what was read so far goes upstream first.
      detect_timed_out_ = true;
      downstream_.cancelRead();
    });
    sniff();
    return;
  }
  if (!counted_) countConnection();
  if (downstream_.secure()) {
    // Terminated TLS: the handshake already gave the server name.
    const char* name = SSL_get_servername(downstream_.ssl(), TLSEXT_NAMETYPE_host_name);
    pickCluster(name != nullptr ? std::string_view(name) : std::string_view());
    return;
  }
  if (!listener_->tcp->sni_routes.empty()) {
    sniffing_ = true;
    sniff_deadline_ = last_activity_ + kSniffTimeout;
    sniff();
    return;
  }
  pickCluster({});
}

void TcpProxyConnection::countConnection() {
  counted_ = true;
  worker_.stats().inc(listener_->stats.cx_total);
  worker_.stats().add(listener_->stats.cx_active, 1);
  armIdleTimer();
}

// Protocol detection decided HTTP: the HTTP connection takes the socket and the bytes read.
void TcpProxyConnection::handOffToHttp() {
  detecting_ = false;
  sniffing_ = false;
  detect_timer_.cancel();
  if (counted_) {
    // Counted during a TLS handshake; from here the HTTP connection counts itself.
    worker_.stats().add(listener_->stats.cx_active, -1);
    counted_ = false;
  }
  (new HttpConnection(worker_, std::move(downstream_), slot_, sniffed_, original_dst_))->start();
  handed_off_ = true;
  close(0);
}

// Whether bytes seen so far are (or may still become) an HTTP/1.x request line: a method token
// of capital letters followed by a space.
static int looksLikeHttp(std::string_view b) {
  size_t i = 0;
  while (i < b.size() && i < 20 && b[i] >= 'A' && b[i] <= 'Z') ++i;
  if (i == b.size() && i < 20) return 0;  // undecided: need more
  return i > 0 && i < b.size() && b[i] == ' ' ? 1 : -1;
}

void TcpProxyConnection::pickCluster(std::string_view sni) {
  if (!counted_) countConnection();
  sniffing_ = false;
  const TcpProxyInfo& t = *listener_->tcp;
  for (const SniRoute& r : t.sni_routes) {
    if (!sni.empty() && r.matches(sni)) {
      cluster_ = holder_->clusters[r.cluster];
      connectUpstream();
      return;
    }
  }
  if (t.targets.empty()) {
    close(t.sni_routes.empty() ? kNoClusterFound : kNoRouteFound);
    return;
  }
  cluster_ =
      holder_
          ->clusters[t.targets[pickWeighted(t.targets, t.total_weight, worker_.random())].cluster];
  connectUpstream();
}

void TcpProxyConnection::sniff() {
  if (!up_.buf) up_.buf = std::make_unique_for_overwrite<char[]>(kBufferSize);
  ++pending_;
  downstream_.asyncReadSome(boost::asio::buffer(up_.buf.get(), kBufferSize),
                            [this](const boost::system::error_code& ec, size_t n) {
                              Guard g(this);
                              --pending_;
                              onSniffRead(ec, n);
                            });
}

void TcpProxyConnection::onSniffRead(const boost::system::error_code& ec, size_t n) {
  if (closed_ || !sniffing_) return;
  if (ec == boost::asio::error::operation_aborted && detect_timed_out_) {
    // Undecided within the detection timeout (e.g. a server-first protocol): TCP.
    detecting_ = false;
    if (!listener_->tcp->sni_routes.empty() && !downstream_.secure()) {
      if (!counted_) countConnection();
      sniff();  // an SNI listener still waits for a ClientHello (its 5 s limit applies)
      return;
    }
    pickCluster({});
    return;
  }
  if (ec) {
    if (!counted_) countConnection();
    close(kDownstreamConnectionTermination);
    return;
  }
  last_activity_ = std::chrono::steady_clock::now();
  sniffed_.append(up_.buf.get(), n);
  up_.bytes += n;
  if (detecting_) {
    int http = looksLikeHttp(sniffed_);
    if (http == 0) {
      sniff();
      return;
    }
    if (http > 0) {
      handOffToHttp();
      return;
    }
    detecting_ = false;
    detect_timer_.cancel();
    if (!counted_) countConnection();
    if (listener_->tcp->sni_routes.empty() || downstream_.secure()) {
      pickCluster({});
      return;
    }
  }
  std::string sni;
  switch (tls::parseClientHello(sniffed_, &sni)) {
    case tls::HelloResult::kNeedMore:
      sniff();
      return;
    case tls::HelloResult::kFound:
      pickCluster(sni);
      return;
    case tls::HelloResult::kNoSni:
    case tls::HelloResult::kNotTls:
      pickCluster({});
      return;
  }
}

void TcpProxyConnection::connectUpstream() {
  const ClusterInfo& info = *cluster_->info;
  if (info.original_dst) {
    // Istio's PassthroughCluster: where the app was going. A connection that was not captured
    // has nowhere else to go (connecting to ourselves would loop).
    if (!original_dst_) {
      worker_.stats().inc(info.stats.rq_no_host);
      close(kNoHealthyUpstream);
      return;
    }
    worker_.stats().inc(info.stats.cx_total);
    connector_.emplace(callbacks(), worker_.io(), worker_.stats(), upstream_, info.name,
                       *original_dst_, info);
    startConnector();
    return;
  }
  LbContext ctx;
  if (info.outlier.enabled) ctx.now_ms = outlierNowMs();
  host_ = chooseHost(info, cluster_->lb, cluster_->active, worker_.random(), ctx);
  if (host_ < 0) {
    worker_.stats().inc(info.stats.rq_no_host);
    close(kNoHealthyUpstream);
    return;
  }
  ++cluster_->active[host_];
  worker_.stats().inc(info.stats.cx_total);
  worker_.stats().inc(info.hosts[host_].stats.cx_total);
  const Host& h = info.hosts[host_];
  connector_.emplace(callbacks(), worker_.io(), worker_.stats(), upstream_, h.key, h, info);
  startConnector();
}

void TcpProxyConnection::startConnector() {
  connector_->setSourceAddress(cluster_->info->upstream_bind_address);
  connector_->connect();
}

void TcpProxyConnection::onConnectorOperationDone(UpstreamConnector::Operation op,
                                                  const boost::system::error_code& ec) {
  Guard g(this);
  --pending_;
  connector_->complete(op, ec);
}

void TcpProxyConnection::onTcpConnected() {
  tcp_connected_ = true;
  if (host_ >= 0) {
    reportOutcome(*cluster_->info, static_cast<size_t>(host_), AttemptOutcome::kSuccess,
                  worker_.stats());
  }
}

void TcpProxyConnection::onTransportReady() { startRelay(); }

// Envoy's TCP proxy: a connect failure or timeout closes the client with UF, and the host's
// failure goes to outlier detection. A TLS handshake the upstream refused after its TCP connect
// succeeded (already reported as a success) is a failure of the cluster only.
void TcpProxyConnection::onTransportFailed(bool timed_out) {
  const ClusterInfo& info = *cluster_->info;
  worker_.stats().inc(info.stats.cx_connect_fail);
  if (host_ >= 0 && (!tcp_connected_ || timed_out)) {
    worker_.stats().inc(info.hosts[host_].stats.cx_connect_fail);
    reportOutcome(info, static_cast<size_t>(host_), AttemptOutcome::kLocalFailure, worker_.stats());
  }
  close(kUpstreamConnectionFailure);
}

void TcpProxyConnection::startRelay() {
  if (upstream_.secure()) {
    if (!upstream_.localPrincipal().empty()) {
      own_principal_ = worker_.istio().peerWorkload(upstream_.localPrincipal());
    }
    if (!upstream_.peerPrincipal().empty()) {
      upstream_principal_ = worker_.istio().peerWorkload(upstream_.peerPrincipal());
    }
  }
  record(false);
  if (!up_.buf) up_.buf = std::make_unique_for_overwrite<char[]>(kBufferSize);
  down_.buf = std::make_unique_for_overwrite<char[]>(kBufferSize);
  pump(upstream_, downstream_, down_);
  if (sniffed_.empty()) {
    pump(downstream_, upstream_, up_);
    return;
  }
  // What was read while looking for the server name goes first.
  up_.writing = true;
  ++pending_;
  upstream_.asyncWrite(boost::asio::buffer(sniffed_),
                       [this](const boost::system::error_code& ec, size_t) {
                         Guard g(this);
                         --pending_;
                         up_.writing = false;
                         if (closed_) return;
                         if (ec) {
                           close(kUpstreamConnectionTermination);
                           return;
                         }
                         std::string().swap(sniffed_);
                         pump(downstream_, upstream_, up_);
                       });
}

// Reads from `from` when the pipe is idle, then writes everything read to `to`. EOF from `from`
// becomes a FIN (shutdown of sending) on `to`; when both pipes are done the connection closes.
void TcpProxyConnection::pump(tls::TransportSocket& from, tls::TransportSocket& to, Pipe& p) {
  if (closed_ || p.reading || p.writing || p.done) return;
  p.reading = true;
  ++pending_;
  from.asyncReadSome(
      boost::asio::buffer(p.buf.get(), kBufferSize),
      [this, &from, &to, &p](const boost::system::error_code& ec, size_t n) {
        Guard g(this);
        --pending_;
        p.reading = false;
        if (closed_) return;
        if (ec) {
          if (ec != boost::asio::error::eof) {
            close(&p == &down_ ? kUpstreamConnectionTermination : kDownstreamConnectionTermination);
            return;
          }
          p.done = true;
          to.shutdownSend();
          if (up_.done && down_.done) close(0);
          return;
        }
        last_activity_ = std::chrono::steady_clock::now();
        p.bytes += n;
        p.writing = true;
        ++pending_;
        to.asyncWrite(boost::asio::buffer(p.buf.get(), n),
                      [this, &from, &to, &p](const boost::system::error_code& wec, size_t) {
                        Guard g2(this);
                        --pending_;
                        p.writing = false;
                        if (closed_) return;
                        if (wec) {
                          close(&p == &down_ ? kDownstreamConnectionTermination
                                             : kUpstreamConnectionTermination);
                          return;
                        }
                        pump(from, to, p);
                      });
      });
}

void TcpProxyConnection::armIdleTimer() {
  ++pending_;
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    Guard g(this);
    --pending_;
    if (ec || closed_) return;
    if (downstream_.secure() && !downstream_.handshakeDone() &&
        std::chrono::steady_clock::now() - last_activity_ >= kHandshakeTimeout) {
      worker_.stats().inc(listener_->stats.ssl_connection_error);
      close(kDownstreamConnectionTermination);
      return;
    }
    if (sniffing_ && std::chrono::steady_clock::now() >= sniff_deadline_) {
      close(kNoRouteFound);  // nothing to route by in time (as Envoy's listener filter timeout)
      return;
    }
    if (std::chrono::steady_clock::now() - last_activity_ >= listener_->tcp->idle_timeout) {
      close(kStreamIdleTimeout);
      return;
    }
    armIdleTimer();
  });
}

RequestKey TcpProxyConnection::telemetryKey() const {
  const Snapshot& snap = *holder_->snapshot;
  RequestKey key;
  key.protocol = 2;
  key.flags = flags_;
  const ClusterInfo* info = cluster_ != nullptr ? cluster_->info.get() : nullptr;
  key.service = info != nullptr ? info->service_id : 0;
  if (listener_ != nullptr && listener_->direction == Direction::kInbound) {
    key.reporter = Reporter::kDestination;
    key.destination_workload = snap.node.workload_id;
    key.source_workload = peer_workload_;
    key.security = mutual_tls_ ? 2 : 1;
  } else {
    key.reporter = Reporter::kSource;
    key.source_workload = snap.node.workload_id;
    if (info != nullptr && host_ >= 0) key.destination_workload = info->hosts[host_].workload_id;
    // Over (m)TLS to the upstream, the identities of both ends of that hop, as the HTTP side
    // reports them; connection_security_policy stays "unknown" on this side, as in Istio.
    key.source_principal = own_principal_;
    key.destination_principal = upstream_principal_;
  }
  return key;
}

void TcpProxyConnection::record(bool closing) {
  if (!holder_->snapshot->metrics_enabled) return;
  stats::ThreadStats& ts = worker_.stats();
  if (!closing) {
    opened_recorded_ = true;
    ts.inc(worker_.istio().tcp(telemetryKey()).opened);
    return;
  }
  // A connection that never reached its upstream is still reported, with its flags.
  const TcpSeries& s = worker_.istio().tcp(telemetryKey());
  if (!opened_recorded_) ts.inc(s.opened);
  ts.inc(s.closed);
  ts.inc(s.sent, down_.bytes);
  ts.inc(s.received, up_.bytes);
}

void TcpProxyConnection::close(uint32_t flags) {
  if (closed_) return;
  closed_ = true;
  flags_ |= flags;
  if (listener_ != nullptr && listener_->tcp && counted_) {
    worker_.stats().add(listener_->stats.cx_active, -1);
    record(true);
  }
  detect_timer_.cancel();
  if (cluster_ != nullptr && host_ >= 0) --cluster_->active[host_];
  if (!handed_off_) downstream_.close();
  if (connector_) connector_->cancel();
  upstream_.close();
  timer_.cancel();
}

}  // namespace mesh::proxy
