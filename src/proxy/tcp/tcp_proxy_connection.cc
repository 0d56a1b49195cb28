#include "proxy/tcp/tcp_proxy_connection.h"

#include <boost/asio/write.hpp>
#include <cstring>

#include "core/log.h"
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
      if (c_->holder_ != nullptr) c_->worker_.release(c_->holder_);
      delete c_;
    }
  }
  TcpProxyConnection* c_;
};

TcpProxyConnection::TcpProxyConnection(Worker& worker, boost::asio::ip::tcp::socket socket,
                                       uint32_t listener_slot)
    : worker_(worker),
      downstream_(std::move(socket)),
      upstream_(worker.io()),
      timer_(worker.io()),
      slot_(listener_slot) {}

void TcpProxyConnection::start() {
  Guard g(this);
  holder_ = worker_.retainCurrent();
  listener_ = holder_->snapshot->listenerBySlot(slot_);
  if (listener_ == nullptr || !listener_->tcp) {
    listener_ = nullptr;  // removed, or no longer a TCP listener, by a reload
    close(0);
    return;
  }
  worker_.stats().inc(listener_->stats.cx_total);
  worker_.stats().add(listener_->stats.cx_active, 1);
  const TcpProxyInfo& t = *listener_->tcp;
  if (t.targets.empty()) {
    close(kNoClusterFound);
    return;
  }
  size_t pick = 0;
  if (t.targets.size() > 1) {
    uint64_t r = worker_.random().uniform(t.total_weight);
    while (pick + 1 < t.targets.size() && r >= t.targets[pick].weight) {
      r -= t.targets[pick].weight;
      ++pick;
    }
  }
  cluster_ = holder_->clusters[t.targets[pick].cluster];
  boost::system::error_code ec;
  downstream_.set_option(boost::asio::ip::tcp::no_delay(true), ec);
  last_activity_ = std::chrono::steady_clock::now();
  armIdleTimer();
  connectUpstream();
}

void TcpProxyConnection::connectUpstream() {
  const ClusterInfo& info = *cluster_->info;
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
  boost::asio::ip::tcp::endpoint ep;
  std::memcpy(ep.data(), &h.sockaddr, h.sockaddr_len);
  ep.resize(h.sockaddr_len);
  ++pending_;
  upstream_.async_connect(ep, [this](const boost::system::error_code& e) {
    Guard g(this);
    --pending_;
    onConnect(e);
  });
}

void TcpProxyConnection::onConnect(const boost::system::error_code& ec) {
  if (closed_) return;
  const ClusterInfo& info = *cluster_->info;
  if (ec) {
    worker_.stats().inc(info.stats.cx_connect_fail);
    worker_.stats().inc(info.hosts[host_].stats.cx_connect_fail);
    if (info.outlier.enabled) {
      recordOutcome(info, static_cast<size_t>(host_), AttemptOutcome::kLocalFailure,
                    outlierNowMs());
    }
    close(kUpstreamConnectionFailure);
    return;
  }
  if (info.outlier.enabled) {
    recordOutcome(info, static_cast<size_t>(host_), AttemptOutcome::kSuccess, outlierNowMs());
  }
  boost::system::error_code ignored;
  upstream_.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  record(false);
  up_.buf = std::make_unique<char[]>(kBufferSize);
  down_.buf = std::make_unique<char[]>(kBufferSize);
  pump(downstream_, upstream_, up_);
  pump(upstream_, downstream_, down_);
}

// Reads from `from` when the pipe is idle, then writes everything read to `to`. EOF from `from`
// becomes a FIN (shutdown of sending) on `to`; when both pipes are done the connection closes.
void TcpProxyConnection::pump(boost::asio::ip::tcp::socket& from, boost::asio::ip::tcp::socket& to,
                              Pipe& p) {
  if (closed_ || p.reading || p.writing || p.done) return;
  p.reading = true;
  ++pending_;
  from.async_read_some(
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
          boost::system::error_code ignored;
          to.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
          if (up_.done && down_.done) close(0);
          return;
        }
        last_activity_ = std::chrono::steady_clock::now();
        p.bytes += n;
        p.writing = true;
        ++pending_;
        boost::asio::async_write(
            to, boost::asio::buffer(p.buf.get(), n),
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
    key.security = 1;
  } else {
    key.reporter = Reporter::kSource;
    key.source_workload = snap.node.workload_id;
    if (info != nullptr && host_ >= 0) key.destination_workload = info->hosts[host_].workload_id;
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
  if (listener_ != nullptr && listener_->tcp) {
    worker_.stats().add(listener_->stats.cx_active, -1);
    record(true);
  }
  if (cluster_ != nullptr && host_ >= 0) --cluster_->active[host_];
  boost::system::error_code ignored;
  downstream_.close(ignored);
  upstream_.close(ignored);
  timer_.cancel();
}

}  // namespace mesh::proxy
