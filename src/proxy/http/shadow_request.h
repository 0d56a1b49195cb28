// A mirrored ("shadow") copy of a request, sent fire-and-forget to a mirror cluster. It owns
// itself: it takes a connection from the worker's pool, writes the bytes it was given, reads
// and drops the answer, and deletes itself when the exchange ends, fails or times out. Nothing
// of it reaches the client, and the primary request never waits for it.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <string>

#include "proxy/upstream/upstream_connection.h"

namespace mesh::proxy {

class Worker;
struct SnapshotHolder;
struct ClusterRuntime;

class ShadowRequest final : public UpstreamCallbacks {
 public:
  // Sends `request` (a complete HTTP/1.1 request: head and body) to a host of cluster number
  // `cluster` of `holder`'s snapshot (the one the primary request routed with, which the
  // cluster index refers to); gives up after `timeout`.
  static void send(Worker& worker, SnapshotHolder* holder, uint32_t cluster, std::string request,
                   bool head_request, Millis timeout);

  void onUpstreamReady() override;
  void onUpstreamConnectFailure(bool timed_out) override;
  void onUpstreamHead(const http::ResponseHead& head) override;
  bool onUpstreamBody(std::string_view data) override;
  void onUpstreamComplete(const http::HeaderList& trailers) override;
  void onUpstreamReset(bool response_bytes_seen) override;
  void onUpstreamProtocolError(http::ParseError e) override;
  void onUpstreamWriteComplete() override {}

 private:
  ShadowRequest(Worker& worker, SnapshotHolder* holder, ClusterRuntime& cluster,
                std::string request);
  ~ShadowRequest() override;
  void start(bool head_request, Millis timeout);
  // Ends the exchange: the connection (if any) is closed or pooled; deletion follows once the
  // timer has returned.
  void finish(bool reuse);

  Worker& worker_;
  SnapshotHolder* holder_;  // keeps the cluster runtime alive
  ClusterRuntime& cluster_;
  std::string request_;
  boost::asio::steady_timer timer_;
  UpstreamRequest* upstream_ = nullptr;
  int host_ = -1;
  bool done_ = false;
  bool timer_pending_ = false;
  bool response_complete_ = false;
};

}  // namespace mesh::proxy
