// The proxy's side of pilot's discovery stream (api/discovery/v1): connects, sends the node and
// subscribes to both types (Bootstrap, ClusterLoadAssignment), applies each change of either
// through a callback (the last Bootstrap with the last assignments) and ACKs it, or NACKs it with
// the error and keeps the last good one; on a broken stream it keeps the running config,
// reconnects with jittered exponential backoff and resyncs. gRPC's headers stay in the .cc.
//
// A Bootstrap with an `eds` cluster that has no assignment yet is held (not applied, not yet
// ACKed) until the next assignments response, which pilot sends right after it: the two are then
// applied at once, so a new cluster starts with its endpoints (as Envoy warms a cluster) and the
// first config applied has both types.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>

#include "core/status.h"
#include "proxy/discovery/discovered_config.h"
#include "proxy/v1/config.pb.h"

namespace mesh::proxy {

struct DiscoveryClientOptions {
  std::string address;  // pilot's gRPC address, "host:port"
  v1::Node node;        // sent on the first request of every stream
  std::string admin_address;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

class DiscoveryClient {
 public:
  // Applies pilot's config (a new Bootstrap, new assignments or both); the future holds the
  // result. Called from the client's thread.
  using Apply = std::function<std::future<Status>(DiscoveredConfig config)>;
  // The stream's state changed: connected or not, and why (for /config_dump). Client thread.
  using StateChange = std::function<void(bool connected, std::string detail)>;

  DiscoveryClient(DiscoveryClientOptions options, Apply apply, StateChange state);
  ~DiscoveryClient();  // stop()s
  DiscoveryClient(const DiscoveryClient&) = delete;
  DiscoveryClient& operator=(const DiscoveryClient&) = delete;

  void start();
  // Ends the stream and joins the thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mesh::proxy
