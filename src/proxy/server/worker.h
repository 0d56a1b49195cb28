// A worker: one thread, one event loop, and everything a connection needs on the request path
// without locks: the current config snapshot, upstream pools, load-balancer state, stats and
// telemetry caches. Other threads reach a worker only through post().
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/random.h"
#include "core/stats/store.h"
#include "proxy/config/snapshot.h"
#include "proxy/telemetry/access_log.h"
#include "proxy/telemetry/istio_stats.h"
#include "proxy/upstream/load_balancer.h"

namespace mesh::proxy {

class DownstreamConnection;
class HttpConnection;
class UpstreamConnection;
class UpstreamCallbacks;
class UpstreamRequest;
class Http2Upstream;

// Per worker, per (cluster name, host address): the pool and the active request count. Lives
// across snapshots so keep-alive connections survive a reload.
struct HostState {
  std::string key;
  uint32_t active_requests = 0;
  uint32_t open_connections = 0;
  uint32_t runtimes = 0;  // cluster runtimes that list this host
  std::vector<UpstreamConnection*> idle;
  std::vector<Http2Upstream*> h2;  // HTTP/2 clusters: shared connections
  std::deque<UpstreamCallbacks*> waiters;  // requests held back by maxConnections
};

// Per worker, per ClusterInfo instance: host states aligned with info->hosts and LB state.
struct ClusterRuntime {
  std::shared_ptr<const ClusterInfo> info;
  std::vector<HostState*> hosts;
  std::vector<uint32_t> active;  // active requests per host index, for least request
  LbState lb;
  uint32_t holders = 0;  // snapshot holders that reference this runtime
};

// A snapshot as a worker holds it: requests count themselves in and out, so an old snapshot
// stays alive exactly as long as a request started on it is in flight. Single-threaded.
struct SnapshotHolder {
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<ClusterRuntime*> clusters;  // by snapshot cluster index
  uint32_t refs = 0;
};

class Worker {
 public:
  Worker(uint32_t index, stats::Store& store, IstioTelemetry& telemetry);
  ~Worker();

  uint32_t index() const { return index_; }
  boost::asio::io_context& io() { return io_; }
  void start();
  void join();
  // Runs fn on the worker thread.
  void post(std::function<void()> fn);
  // Runs h(ec, n) from this worker's loop after what runs now, as a post would; the ones
  // deferred before that run share one post (HTTP/2 stream completions, several per request,
  // each an allocated Asio handler otherwise). In the order deferred.
  using IoCompletion = std::function<void(const boost::system::error_code&, size_t)>;
  void deferCompletion(IoCompletion h, const boost::system::error_code& ec, size_t n);

  // --- Called on the worker thread ---
  void applySnapshot(std::shared_ptr<const Snapshot> snapshot);
  SnapshotHolder* retainCurrent() {
    ++current_->refs;
    return current_;
  }
  // One more reference to a snapshot already held (released with release()).
  void retain(SnapshotHolder* h) { ++h->refs; }
  void release(SnapshotHolder* h);
  const Snapshot& snapshot() const { return *current_->snapshot; }

  // Starts accepting on a listening socket (already bound and listening) for a listener slot.
  void addListener(uint32_t slot, int fd);
  void removeListener(uint32_t slot);
  // Stops accepting, closes idle connections, lets active requests finish; `done` runs on the
  // worker thread once no connection is left.
  void drain(std::function<void()> done);
  bool draining() const { return draining_; }

  // An upstream connection for a request: an idle pooled one (ready = true) or a new one that
  // is connecting (ready = false).
  UpstreamRequest* acquireConnection(ClusterRuntime& cluster, int host_index,
                                        UpstreamCallbacks* cb, bool allow_reuse, bool head,
                                        bool* ready);
  // Whether a request could get a connection to this host now: an idle one, or a new one within
  // the cluster's maxConnections (a worker with none to the host may always open one).
  bool connectionAvailable(const ClusterRuntime& cluster, int host_index) const;
  void enqueueWaiter(ClusterRuntime& cluster, int host_index, UpstreamCallbacks* w);
  void removeWaiter(HostState& host, UpstreamCallbacks* w);
  void onConnectionIdle(UpstreamConnection* c);
  void onUpstreamClosed(UpstreamConnection* c);
  // HTTP/2 upstream connections: one closed; one finished a stream (room for a queued request).
  void onHttp2Closed(Http2Upstream* c);
  void onHttp2StreamDone(Http2Upstream* c);

  void serveWaiters(const std::string& host_key);
  // TCP proxy connections alive on this worker: a drain ends when they and the HTTP connections
  // have (or at the drain timeout).
  void tcpConnectionStarted() { ++tcp_connections_; }
  void tcpConnectionEnded() {
    --tcp_connections_;
    maybeFinishDrain();
  }
  // Downstream HTTP connections (HTTP/1.x, HTTP/2, and the routers of HTTP/2 streams).
  void addConnection(DownstreamConnection* c);
  void removeConnection(DownstreamConnection* c);
  // Routers of finished HTTP/2 streams, kept for the next streams so that a stream allocates no
  // router, parser, buffer or timer (HttpConnection::forStream). take: null when none is kept.
  // keep: false when enough are kept (the caller deletes it). Freed by the tick after a second
  // with no new stream.
  HttpConnection* takeStreamRouter();
  bool keepStreamRouter(HttpConnection* c);

  // ORIGINAL_DST for HTTP: a runtime like `base` (an ORIGINAL_DST cluster of the current or an
  // older snapshot) whose one host is `destination`, with its own connection pool. Kept while
  // its base cluster is in use or it has requests or connections; then collected by the tick.
  ClusterRuntime* originalDstRuntime(const ClusterRuntime& base,
                                     const boost::asio::ip::tcp::endpoint& destination);

  stats::ThreadStats& stats() { return stats_; }
  IstioTelemetry::WorkerCache& istio() { return istio_; }
  Random& random() { return random_; }
  // The access log writer for a listener's path (opened on first use; "" is stdout). Each
  // listener's requests go to its own file.
  AccessLogWriter& accessLog(const std::string& path);
  // Coarse clock, updated once per loop turn of the tick; for idle bookkeeping only.
  std::chrono::steady_clock::time_point now() const { return std::chrono::steady_clock::now(); }

 private:
  struct Acceptor;
  void tick();
  void collectGarbage();
  ClusterRuntime* runtimeFor(const std::shared_ptr<const ClusterInfo>& info);
  void maybeFinishDrain();
  void freeStreamRouters();
  void collectOriginalDst();
  struct OriginalDstEntry {
    std::shared_ptr<const ClusterInfo> base;  // keeps the base's address unique while cached
    ClusterRuntime* runtime = nullptr;        // holds one reference (holders) for the cache
  };

  uint32_t index_;
  boost::asio::io_context io_;
  std::thread thread_;
  stats::ThreadStats& stats_;
  IstioTelemetry::WorkerCache istio_;
  FastRandom random_;
  // By path; a handful at most (one per listener with an access log).
  std::vector<std::pair<std::string, std::unique_ptr<AccessLogWriter>>> access_logs_;
  boost::asio::steady_timer tick_timer_;

  std::list<SnapshotHolder> holders_;
  SnapshotHolder* current_ = nullptr;
  std::unordered_map<const ClusterInfo*, std::unique_ptr<ClusterRuntime>> runtimes_;
  std::unordered_map<std::string, std::unique_ptr<HostState>> hosts_;  // "cluster|host"
  std::unordered_map<std::string, OriginalDstEntry> original_dst_;     // "<base>|ip:port"

  std::vector<Acceptor*> acceptors_;  // by slot; each deletes itself when closed
  std::vector<DownstreamConnection*> connections_;
  static constexpr size_t kSpareStreamRouters = 32;
  std::vector<HttpConnection*> spare_stream_routers_;
  bool stream_router_wanted_ = false;  // a stream asked for a router since the last tick
  size_t tcp_connections_ = 0;
  bool draining_ = false;
  std::function<void()> drain_done_;
  struct Deferred {
    IoCompletion h;
    boost::system::error_code ec;
    size_t n;
  };
  std::vector<Deferred> deferred_;          // waiting for the posted runDeferred()
  std::vector<Deferred> running_deferred_;  // being run (kept for its capacity)
  bool deferred_posted_ = false;
  void runDeferred();
};

}  // namespace mesh::proxy
