#include "proxy/server/worker.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <optional>

#include "core/log.h"
#include "core/turn_clock.h"
#include "proxy/http/http_connection.h"
#include "proxy/tcp/tcp_proxy_connection.h"
#include "proxy/upstream/http2_upstream.h"
#include "proxy/upstream/upstream_connection.h"

namespace mesh::proxy {
namespace {

// getsockopt level SOL_IP / SOL_IPV6, option SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h), both 80; the kernel headers clash
// with the libc ones, so the value is spelled out here.
constexpr int kSoOriginalDst = 80;

// Where a connection redirected by the capture rules (iptables REDIRECT) was going. Empty when
// the kernel has no NAT record of it, or when it was not redirected (the original destination
// is this very socket): such a connection has no other destination to go to.
std::optional<boost::asio::ip::tcp::endpoint> originalDestination(
    boost::asio::ip::tcp::socket& socket) {
  boost::asio::ip::tcp::endpoint dst;
  socklen_t len = static_cast<socklen_t>(dst.capacity());
  boost::system::error_code ec;
  auto local = socket.local_endpoint(ec);
  if (ec) return std::nullopt;
  const bool v6 = local.address().is_v6();
  if (::getsockopt(socket.native_handle(), v6 ? SOL_IPV6 : SOL_IP, kSoOriginalDst, dst.data(),
                   &len) != 0) {
    return std::nullopt;
  }
  dst.resize(len);
  if (dst == local) return std::nullopt;
  return dst;
}

// Hands an accepted connection to the listener in `slot` (of the current snapshot): TLS first
// when `tls`, then its TCP proxy or HTTP connection manager.
void serve(Worker& worker, boost::asio::ip::tcp::socket socket, uint32_t slot,
           std::optional<boost::asio::ip::tcp::endpoint> dst, bool tls) {
  const ListenerInfo* l = worker.snapshot().listenerBySlot(slot);
  if (l == nullptr) return;  // the listener went away meanwhile: the socket closes
  tls::TransportSocket transport(std::move(socket));
  // TLS: the context current at accept; the connection runs the handshake.
  if (tls && l->tls && !transport.startTls(l->tls->current())) {
    worker.stats().inc(l->stats.ssl_connection_error);
    MESH_LOG("main", warn, "TLS: {}", transport.tlsError());
  } else if (l->tcp) {
    (new TcpProxyConnection(worker, std::move(transport), slot, dst))->start();
  } else {
    (new HttpConnection(worker, std::move(transport), slot, {}, dst))->start();
  }
}

// Istio's PERMISSIVE mTLS: waits (at most kTlsDetectionTimeout) for the client's first byte,
// peeks at it and serves the connection as TLS if it starts a handshake record (0x16), else as
// plaintext. Deletes itself once it has handed the socket on.
class TlsDetector {
 public:
  static constexpr std::chrono::milliseconds kTlsDetectionTimeout{100};
  static void start(Worker& worker, boost::asio::ip::tcp::socket socket, uint32_t slot,
                    std::optional<boost::asio::ip::tcp::endpoint> dst) {
    auto* d = new TlsDetector(worker, std::move(socket), slot, dst);
    d->timer_.expires_after(kTlsDetectionTimeout);
    // Expiry: a client that sends nothing first (a server-first protocol) is plaintext. Either
    // wait's completion (cancelled ones too) comes back through decide().
    d->timer_.async_wait([d](const boost::system::error_code&) { d->decide(false); });
    d->socket_.async_wait(boost::asio::ip::tcp::socket::wait_read,
                          [d](const boost::system::error_code& ec) { d->decide(!ec); });
  }

 private:
  TlsDetector(Worker& worker, boost::asio::ip::tcp::socket socket, uint32_t slot,
              std::optional<boost::asio::ip::tcp::endpoint> dst)
      : worker_(worker), socket_(std::move(socket)), timer_(worker.io()), slot_(slot), dst_(dst) {}
  // Called twice (the wait and the timer); the first call decides, the second deletes.
  void decide(bool readable) {
    if (!decided_) {
      decided_ = true;
      unsigned char first = 0;
      const bool tls =
          readable && ::recv(socket_.native_handle(), &first, 1, MSG_PEEK) == 1 && first == 0x16;
      boost::system::error_code ignored;
      timer_.cancel();
      socket_.cancel(ignored);
      // Handed on only after both waits returned: cancel() completes them with
      // operation_aborted, which comes back through decide() below.
      pending_tls_ = tls;
    }
    if (++calls_ < 2) return;
    serve(worker_, std::move(socket_), slot_, dst_, pending_tls_);
    delete this;
  }

  Worker& worker_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  uint32_t slot_;
  std::optional<boost::asio::ip::tcp::endpoint> dst_;
  bool decided_ = false;
  bool pending_tls_ = false;
  int calls_ = 0;
};

void detectTls(Worker& worker, boost::asio::ip::tcp::socket socket, uint32_t slot,
               std::optional<boost::asio::ip::tcp::endpoint> dst) {
  TlsDetector::start(worker, std::move(socket), slot, dst);
}

}  // namespace

// Accepts on one listening socket. Deletes itself once closed and its accept has returned.
struct Worker::Acceptor {
  Acceptor(Worker& w, uint32_t slot, int fd) : worker(w), slot(slot), acceptor(w.io()) {
    boost::system::error_code ec;
    acceptor.assign(boost::asio::ip::tcp::v6(), fd, ec);  // the family is not checked
    if (ec) MESH_LOG("main", error, "cannot adopt listening socket: {}", ec.message());
  }
  void accept() {
    ++pending;
    acceptor.async_accept(
        [this](const boost::system::error_code& ec, boost::asio::ip::tcp::socket socket) {
          --pending;
          if (closed) {
            delete this;
            return;
          }
          if (!ec) {
            const ListenerInfo* l = worker.snapshot().listenerBySlot(slot);
            uint32_t target = slot;
            std::optional<boost::asio::ip::tcp::endpoint> dst;
            if (l != nullptr && l->use_original_dst) {
              // Envoy's use_original_dst: the listener for the original destination serves it.
              dst = originalDestination(socket);
              const ListenerInfo* found =
                  dst ? worker.snapshot().findByDestination(dst->address().to_string(), dst->port(),
                                                            l->direction)
                      : nullptr;
              if (found != nullptr) {
                l = found;
                target = found->slot;
              }
            }
            if (l != nullptr && l->tls && l->tls_permissive) {
              detectTls(worker, std::move(socket), target, dst);
            } else {
              serve(worker, std::move(socket), target, dst, l != nullptr && l->tls);
            }
          } else if (ec == boost::asio::error::no_descriptors ||
                     ec == boost::asio::error::no_buffer_space) {
            MESH_LOG("main", warn, "accept: {}", ec.message());
          }
          accept();
        });
  }
  // Stops accepting; the object is gone when this returns or once the pending accept returns.
  void close() {
    closed = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    if (pending == 0) delete this;
  }

  Worker& worker;
  uint32_t slot;
  boost::asio::ip::tcp::acceptor acceptor;
  bool closed = false;
  uint32_t pending = 0;
};

Worker::Worker(uint32_t index, stats::Store& store, IstioTelemetry& telemetry)
    : index_(index),
      io_(1),
      stats_(store.createThreadStats()),
      istio_(telemetry),
      tick_timer_(io_) {}

Worker::~Worker() {
  // Connections delete themselves as their operations finish; whatever is left when the loop
  // stopped is dropped with the process. Kept routers have nothing in flight.
  freeStreamRouters();
}

void Worker::start() {
  thread_ = std::thread([this] {
    tick();
    auto guard = boost::asio::make_work_guard(io_);
    io_.run();
  });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::post(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

void Worker::deferCompletion(IoCompletion h, const boost::system::error_code& ec, size_t n) {
  deferred_.push_back({std::move(h), ec, n});
  if (deferred_posted_) return;
  deferred_posted_ = true;
  boost::asio::post(io_, [this] { runDeferred(); });
}

void Worker::runDeferred() {
  deferred_posted_ = false;
  TurnClock::Batch batch;             // the stream routers' handlers below share one clock reading
  running_deferred_.swap(deferred_);  // what these completions defer goes to the next post
  for (Deferred& d : running_deferred_) {
    IoCompletion h = std::move(d.h);
    h(d.ec, d.n);
  }
  running_deferred_.clear();
}

void Worker::tick() {
  tick_timer_.expires_after(std::chrono::seconds(1));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    auto now = std::chrono::steady_clock::now();
    // Idle downstream connections.
    std::vector<DownstreamConnection*> conns = connections_;
    for (DownstreamConnection* c : conns) c->closeIfIdle(now);
    // Idle upstream connections past their cluster's idle timeout.
    if (current_ != nullptr) {
      for (auto& [info, rt] : runtimes_) {
        Millis timeout = info->idle_timeout;
        if (timeout.count() == 0) continue;
        for (HostState* h : rt->hosts) {
          std::vector<UpstreamConnection*> idle = h->idle;
          for (UpstreamConnection* u : idle) {
            if (now - u->idleSince() > timeout) u->closeIdle();
          }
          std::vector<Http2Upstream*> h2 = h->h2;
          for (Http2Upstream* u : h2) {
            if (u->activeStreams() == 0 && now - u->idleSince() > timeout) u->closeIfIdle();
          }
        }
      }
    }
    collectOriginalDst();
    // Kept stream routers (each with its read buffer) are freed after a second without a new
    // HTTP/2 stream: an idle worker holds none.
    if (!stream_router_wanted_) freeStreamRouters();
    stream_router_wanted_ = false;
    collectGarbage();
    if (!io_.stopped()) tick();
  });
}

void Worker::applySnapshot(std::shared_ptr<const Snapshot> snapshot) {
  holders_.emplace_back();
  SnapshotHolder& h = holders_.back();
  h.snapshot = std::move(snapshot);
  h.clusters.reserve(h.snapshot->clusters.size());
  for (const auto& c : h.snapshot->clusters) {
    ClusterRuntime* rt = runtimeFor(c);
    ++rt->holders;
    h.clusters.push_back(rt);
  }
  current_ = &h;
  for (const auto& l : h.snapshot->listeners) {
    if (l.access_log) accessLog(l.access_log_path);  // a path that cannot be opened is logged now
  }
  collectGarbage();
}

ClusterRuntime* Worker::runtimeFor(const std::shared_ptr<const ClusterInfo>& info) {
  auto it = runtimes_.find(info.get());
  if (it != runtimes_.end()) return it->second.get();
  auto rt = std::make_unique<ClusterRuntime>();
  rt->info = info;
  rt->active.assign(info->hosts.size(), 0);
  for (const Host& host : info->hosts) {
    std::string key = info->name + "|" + host.key + info->pool_tag;
    auto& hs = hosts_[key];
    if (!hs) {
      hs = std::make_unique<HostState>();
      hs->key = key;
    }
    ++hs->runtimes;
    rt->hosts.push_back(hs.get());
  }
  ClusterRuntime* p = rt.get();
  runtimes_.emplace(info.get(), std::move(rt));
  return p;
}

ClusterRuntime* Worker::originalDstRuntime(const ClusterRuntime& base,
                                           const boost::asio::ip::tcp::endpoint& destination) {
  std::string address = destination.address().to_string();
  std::string key = destination.address().is_v6()
                        ? "[" + address + "]:" + std::to_string(destination.port())
                        : address + ":" + std::to_string(destination.port());
  std::string cache_key = std::to_string(reinterpret_cast<uintptr_t>(base.info.get())) + "|" + key;
  auto it = original_dst_.find(cache_key);
  if (it != original_dst_.end()) return it->second.runtime;
  auto info = std::make_shared<ClusterInfo>(*base.info);
  Host& h = info->hosts.at(0);  // the placeholder: its stats, the destination's address
  h.address = std::move(address);
  h.port = destination.port();
  h.key = std::move(key);
  std::memcpy(&h.sockaddr, destination.data(), destination.size());
  h.sockaddr_len = static_cast<socklen_t>(destination.size());
  ClusterRuntime* rt = runtimeFor(info);
  ++rt->holders;
  original_dst_.emplace(cache_key, OriginalDstEntry{base.info, rt});
  return rt;
}

// A cached destination goes once nothing uses it: its base cluster left every snapshot this
// worker holds (or the cache holds more than kMaxIdle), no request is on or waiting for its
// host, and every connection to it is idle (collectGarbage closes those).
void Worker::collectOriginalDst() {
  constexpr size_t kMaxIdle = 256;
  for (auto it = original_dst_.begin(); it != original_dst_.end();) {
    ClusterRuntime* rt = it->second.runtime;
    const HostState& hs = *rt->hosts.at(0);
    const bool base_gone = runtimes_.find(it->second.base.get()) == runtimes_.end();
    const bool busy = hs.active_requests > 0 || !hs.waiters.empty() ||
                      (!base_gone && original_dst_.size() <= kMaxIdle);
    if (busy || (hs.open_connections > hs.idle.size())) {
      ++it;
      continue;
    }
    --rt->holders;  // collectGarbage drops the runtime, then closes the host's idle connections
    it = original_dst_.erase(it);
  }
}

void Worker::release(SnapshotHolder* h) {
  --h->refs;
  if (h->refs == 0 && h != current_) collectGarbage();
}

void Worker::collectGarbage() {
  // Snapshots nobody uses any more.
  for (auto it = holders_.begin(); it != holders_.end();) {
    if (&*it != current_ && it->refs == 0) {
      for (ClusterRuntime* rt : it->clusters) --rt->holders;
      it = holders_.erase(it);
    } else {
      ++it;
    }
  }
  // Cluster runtimes no snapshot lists, then hosts no runtime lists.
  for (auto it = runtimes_.begin(); it != runtimes_.end();) {
    if (it->second->holders == 0) {
      for (HostState* hs : it->second->hosts) --hs->runtimes;
      it = runtimes_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = hosts_.begin(); it != hosts_.end();) {
    HostState& hs = *it->second;
    if (hs.runtimes == 0) {
      std::vector<UpstreamConnection*> idle = hs.idle;
      for (UpstreamConnection* u : idle) u->closeIdle();
      if (hs.open_connections == 0 && hs.active_requests == 0 && hs.waiters.empty()) {
        it = hosts_.erase(it);
        continue;
      }
    }
    ++it;
  }
}

void Worker::addListener(uint32_t slot, int fd) {
  if (acceptors_.size() <= slot) acceptors_.resize(slot + 1, nullptr);
  if (acceptors_[slot] != nullptr) acceptors_[slot]->close();
  acceptors_[slot] = new Acceptor(*this, slot, fd);
  if (!draining_) acceptors_[slot]->accept();
}

void Worker::removeListener(uint32_t slot) {
  if (slot < acceptors_.size() && acceptors_[slot] != nullptr) {
    acceptors_[slot]->close();
    acceptors_[slot] = nullptr;
  }
}

UpstreamRequest* Worker::acquireConnection(ClusterRuntime& cluster, int host_index,
                                              UpstreamCallbacks* cb, bool allow_reuse, bool head,
                                              bool* ready) {
  HostState& hs = *cluster.hosts[host_index];
  if (cluster.info->http2) {
    // Streams share connections: the first with room, else a new one.
    if (allow_reuse) {
      for (Http2Upstream* c : hs.h2) {
        if (!c->hasCapacity()) continue;
        *ready = c->connected();
        return c->newStream(cb, head);
      }
    }
    const Host& host = cluster.info->hosts[host_index];
    auto* c = new Http2Upstream(*this, hs, host, *cluster.info);
    hs.h2.push_back(c);
    ++hs.open_connections;
    stats_.inc(cluster.info->stats.cx_total);
    stats_.inc(host.stats.cx_total);
    *ready = false;
    UpstreamRequest* s = c->newStream(cb, head);
    c->connect();
    return s;
  }
  if (allow_reuse) {
    while (!hs.idle.empty()) {
      UpstreamConnection* c = hs.idle.back();
      hs.idle.pop_back();
      if (c->idle()) {
        c->assign(cb, head);
        *ready = true;
        return c;
      }
    }
  }
  const Host& host = cluster.info->hosts[host_index];
  auto* c = new UpstreamConnection(*this, hs, host, *cluster.info);
  ++hs.open_connections;
  stats_.inc(cluster.info->stats.cx_total);
  stats_.inc(host.stats.cx_total);
  *ready = false;
  c->connect(cb, head);
  return c;
}

bool Worker::connectionAvailable(const ClusterRuntime& cluster, int host_index) const {
  const HostState& hs = *cluster.hosts[host_index];
  if (!hs.idle.empty() || hs.open_connections == 0) return true;
  for (const Http2Upstream* c : hs.h2) {
    if (c->hasCapacity()) return true;
  }
  return cluster.info->breaker->connections.load(std::memory_order_relaxed) <
         cluster.info->limits.max_connections;
}

void Worker::enqueueWaiter(ClusterRuntime& cluster, int host_index, UpstreamCallbacks* w) {
  cluster.hosts[host_index]->waiters.push_back(w);
}

void Worker::removeWaiter(HostState& host, UpstreamCallbacks* w) {
  auto it = std::find(host.waiters.begin(), host.waiters.end(), w);
  if (it != host.waiters.end()) host.waiters.erase(it);
}

void Worker::serveWaiters(const std::string& host_key) {
  auto it = hosts_.find(host_key);
  if (it == hosts_.end()) return;
  HostState& hs = *it->second;
  while (!hs.waiters.empty()) {
    UpstreamCallbacks* w = hs.waiters.front();
    if (!w->onConnectionAvailable()) break;
    if (!hs.waiters.empty() && hs.waiters.front() == w) hs.waiters.pop_front();
  }
}

// A connection freed or closed lets the first queued request go. Served from the loop, not from
// inside the connection's own callback, so no request starts in the middle of another's.
void Worker::onConnectionIdle(UpstreamConnection* c) {
  HostState& hs = c->host();
  hs.idle.push_back(c);
  if (!hs.waiters.empty()) post([this, key = hs.key] { serveWaiters(key); });
}

void Worker::onUpstreamClosed(UpstreamConnection* c) {
  HostState& hs = c->host();
  --hs.open_connections;
  auto it = std::find(hs.idle.begin(), hs.idle.end(), c);
  if (it != hs.idle.end()) hs.idle.erase(it);
  if (!hs.waiters.empty()) post([this, key = hs.key] { serveWaiters(key); });
}

void Worker::onHttp2Closed(Http2Upstream* c) {
  HostState& hs = c->host();
  auto it = std::find(hs.h2.begin(), hs.h2.end(), c);
  if (it == hs.h2.end()) return;
  hs.h2.erase(it);
  --hs.open_connections;
  if (!hs.waiters.empty()) post([this, key = hs.key] { serveWaiters(key); });
}

void Worker::onHttp2StreamDone(Http2Upstream* c) {
  HostState& hs = c->host();
  if (!hs.waiters.empty()) post([this, key = hs.key] { serveWaiters(key); });
}

void Worker::addConnection(DownstreamConnection* c) { connections_.push_back(c); }

AccessLogWriter& Worker::accessLog(const std::string& path) {
  for (auto& [p, w] : access_logs_) {
    if (p == path) {
      // A path that could not be opened is tried again (its warning was logged once).
      if (!w->isOpen()) static_cast<void>(w->open(path));
      return *w;
    }
  }
  auto& [p, w] = access_logs_.emplace_back(path, std::make_unique<AccessLogWriter>());
  Status st = w->open(path);
  if (!st.ok()) MESH_LOG("main", warn, "{}", st.message());
  return *w;
}

HttpConnection* Worker::takeStreamRouter() {
  stream_router_wanted_ = true;
  if (spare_stream_routers_.empty()) return nullptr;
  HttpConnection* c = spare_stream_routers_.back();
  spare_stream_routers_.pop_back();
  return c;
}

void Worker::freeStreamRouters() {
  for (HttpConnection* c : spare_stream_routers_) delete c;
  spare_stream_routers_.clear();
}

bool Worker::keepStreamRouter(HttpConnection* c) {
  if (draining_ || spare_stream_routers_.size() >= kSpareStreamRouters) return false;
  spare_stream_routers_.push_back(c);
  return true;
}

void Worker::removeConnection(DownstreamConnection* c) {
  auto it = std::find(connections_.begin(), connections_.end(), c);
  if (it != connections_.end()) {
    *it = connections_.back();
    connections_.pop_back();
  }
  maybeFinishDrain();
}

void Worker::drain(std::function<void()> done) {
  draining_ = true;
  drain_done_ = std::move(done);
  for (Acceptor*& a : acceptors_) {
    if (a != nullptr) a->close();
    a = nullptr;
  }
  std::vector<DownstreamConnection*> conns = connections_;
  for (DownstreamConnection* c : conns) c->drain();
  for (auto& [key, hs] : hosts_) {
    std::vector<UpstreamConnection*> idle = hs->idle;
    for (UpstreamConnection* u : idle) u->closeIdle();
    std::vector<Http2Upstream*> h2 = hs->h2;
    for (Http2Upstream* u : h2) u->closeIfIdle();
  }
  maybeFinishDrain();
}

void Worker::maybeFinishDrain() {
  if (draining_ && connections_.empty() && tcp_connections_ == 0 && drain_done_) {
    auto done = std::move(drain_done_);
    drain_done_ = nullptr;
    done();
  }
}

}  // namespace mesh::proxy
