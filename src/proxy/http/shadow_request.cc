#include "proxy/http/shadow_request.h"

#include "core/random.h"
#include "proxy/server/worker.h"
#include "proxy/upstream/load_balancer.h"
#include "proxy/upstream/outlier_detection.h"

namespace mesh::proxy {

void ShadowRequest::send(Worker& worker, SnapshotHolder* holder, uint32_t cluster,
                         std::string request, bool head_request, Millis timeout) {
  if (cluster >= holder->clusters.size()) return;
  worker.retain(holder);
  auto* s = new ShadowRequest(worker, holder, *holder->clusters[cluster], std::move(request));
  s->start(head_request, timeout);
}

ShadowRequest::ShadowRequest(Worker& worker, SnapshotHolder* holder, ClusterRuntime& cluster,
                             std::string request)
    : worker_(worker),
      holder_(holder),
      cluster_(cluster),
      request_(std::move(request)),
      timer_(worker.io()) {}

ShadowRequest::~ShadowRequest() { worker_.release(holder_); }

void ShadowRequest::start(bool head_request, Millis timeout) {
  LbContext ctx;
  if (cluster_.info->outlier.enabled) ctx.now_ms = outlierNowMs();
  host_ = chooseHost(*cluster_.info, cluster_.lb, cluster_.active, worker_.random(), ctx);
  if (host_ < 0) {
    worker_.stats().inc(cluster_.info->stats.rq_no_host);
    delete this;
    return;
  }
  worker_.stats().inc(cluster_.info->stats.rq_total);
  worker_.stats().inc(cluster_.info->hosts[host_].stats.rq_total);
  ++cluster_.hosts[host_]->active_requests;
  ++cluster_.active[host_];
  timer_pending_ = true;
  timer_.expires_after(timeout);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    timer_pending_ = false;
    if (!done_) {
      if (!ec) worker_.stats().inc(cluster_.info->stats.rq_timeout);
      finish(false);  // deletes this: the timer is no longer pending
      return;
    }
    delete this;  // finished earlier and waited for this handler
  });
  bool ready = false;
  upstream_ = worker_.acquireConnection(cluster_, host_, this, true, head_request, &ready);
  if (ready) onUpstreamReady();
}

void ShadowRequest::finish(bool reuse) {
  if (done_) return;
  done_ = true;
  if (host_ >= 0) {
    --cluster_.hosts[host_]->active_requests;
    --cluster_.active[host_];
  }
  if (upstream_ != nullptr) {
    UpstreamRequest* u = upstream_;
    upstream_ = nullptr;
    if (reuse) {
      u->release(true);
    } else {
      u->abort();
    }
  }
  if (timer_pending_) {
    timer_.cancel();  // the timer's handler deletes this object
  } else {
    delete this;
  }
}

void ShadowRequest::onUpstreamReady() {
  if (done_ || upstream_ == nullptr) return;
  BufferList b;
  b.add(request_);
  upstream_->write(b);
}

void ShadowRequest::onUpstreamConnectFailure(bool) {
  upstream_ = nullptr;  // terminal: the connection is gone
  worker_.stats().inc(cluster_.info->stats.cx_connect_fail);
  finish(false);
}

void ShadowRequest::onUpstreamHead(const http::ResponseHead&) {}

bool ShadowRequest::onUpstreamBody(std::string_view) { return false; }  // dropped as it comes

void ShadowRequest::onUpstreamComplete(const http::HeaderList&) { finish(true); }

void ShadowRequest::onUpstreamReset(bool) {
  upstream_ = nullptr;
  finish(false);
}

void ShadowRequest::onUpstreamProtocolError(http::ParseError) {
  upstream_ = nullptr;
  finish(false);
}

}  // namespace mesh::proxy
