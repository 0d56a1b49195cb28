// HttpConnection's upgrade tunnel: after the upstream answered an Upgrade request with 101, the
// downstream connection and its upstream connection relay bytes both ways until both sides have
// closed (a FIN from one side is passed on as a FIN to the other: half-close), either side
// fails, or the tunnel is idle longer than the listener's idleTimeout. Backpressure: each side
// reads again only once what it read has been written to the other. The request is recorded in
// telemetry once, when the tunnel ends, with status 101 and the bytes each way.
#include "core/log.h"
#include "core/turn_clock.h"
#include "proxy/http/http_connection.h"
#include "proxy/server/worker.h"
#include "proxy/telemetry/response_flags.h"

namespace mesh::proxy {

void HttpConnection::startTunnel(const http::ResponseHead& resp) {
  rq_.tunnel = true;
  route_timer_.cancel();
  attempt_timer_.cancel();
  buildResponseHead(resp);  // with the upgrade fields (rq_.tunnel)
  rq_.response_head_pending = false;
  BufferList b;
  b.add(response_head_);
  writeDownstream(b, WriteKind::kTunnelHead);
  // Bytes the client sent after its request (allowed once it has the 101) go up now.
  tunnelToUpstream();
}

void HttpConnection::tunnelToUpstream() {
  if (closed_ || upstream_ == nullptr || upstream_write_inflight_) return;
  if (!in_.empty()) {
    rq_.tunnel_inflight = in_.size();
    rq_.request_body_bytes += in_.size();
    BufferList b;
    b.add(in_.view());
    upstream_write_inflight_ = true;  // startRead waits: the write points into in_
    upstream_->write(b);
    return;
  }
  if (peer_eof_) {
    if (!rq_.tunnel_down_eof) {
      rq_.tunnel_down_eof = true;
      upstream_->shutdownSend();
    }
    if (rq_.tunnel_up_eof) endTunnel(0);
    return;
  }
  startRead();
}

void HttpConnection::onTunnelUpstreamWritten() {
  in_.consume(rq_.tunnel_inflight);
  rq_.tunnel_inflight = 0;
  last_activity_ = TurnClock::now();
  tunnelToUpstream();
}

void HttpConnection::onTunnelDownstreamEof(const boost::system::error_code& ec) {
  peer_eof_ = true;
  if (ec != boost::asio::error::eof) {
    endTunnel(kDownstreamConnectionTermination);
    return;
  }
  tunnelToUpstream();
}

void HttpConnection::onTunnelUpstreamEof() {
  // Everything the server sent has been written to the client (reads wait for each write).
  rq_.tunnel_up_eof = true;
  socket_.shutdownSend();
  if (rq_.tunnel_down_eof) endTunnel(0);
}

void HttpConnection::endTunnel(uint32_t flags) {
  if (closed_) return;
  rq_.flags |= flags;
  recordRequest();
  close();
}

}  // namespace mesh::proxy
