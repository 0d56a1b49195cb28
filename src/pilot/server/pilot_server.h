// A running pilot: the config directory (loaded, validated, watched), the discovery stream on
// the gRPC address, and the monitoring/debug pages on the HTTP address. pilot_main.cc is a thin
// CLI around it; tests may run it in-process.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/stats/store.h"
#include "core/status.h"
#include "pilot/server/discovery.h"

namespace mesh::pilot::server {

class ConfigWatcher;
class GrpcDiscoveryServer;
class HttpServer;
struct HttpReply;

struct PilotOptions {
  std::vector<std::string> config_dirs;  // read as one config, each watched
  std::string grpc_address = "127.0.0.1:15010";
  std::string http_address = "127.0.0.1:15014";
  std::string port_file;  // {"grpc":N,"http":N}, written atomically once both listen
  std::string root_namespace = "istio-system";
  std::string domain_suffix = "cluster.local";
  // MeshConfig.outboundTrafficPolicy.mode for captured sidecars: unknown destinations pass
  // through (ALLOW_ANY, false) or are refused (REGISTRY_ONLY, true); a Sidecar may override it.
  bool registry_only = false;
  std::chrono::milliseconds debounce{100};
};

class PilotServer {
 public:
  explicit PilotServer(PilotOptions options);
  ~PilotServer();
  PilotServer(const PilotServer&) = delete;
  PilotServer& operator=(const PilotServer&) = delete;

  // Loads the config (a bad first load still starts: /ready stays 503 until a good one), starts
  // watching, listens, writes the port file. Errors: unreadable directory watch, bind failures.
  Status start();
  // Stops serving; idempotent.
  void stop();

  uint16_t grpcPort() const { return grpc_port_; }
  uint16_t httpPort() const { return http_port_; }
  Discovery& discovery() { return discovery_; }

  // Loads the directory now and applies it if it is good (what the watcher calls).
  void reload();

 private:
  HttpReply serveHttp(std::string_view path);
  Status writePortFile() const;

  const PilotOptions options_;
  stats::Store stats_;
  Discovery discovery_;
  std::mutex reload_mu_;          // one load at a time
  ConfigDirectoryLoader loader_;  // guarded by reload_mu_
  std::vector<std::unique_ptr<ConfigWatcher>> watchers_;
  std::unique_ptr<GrpcDiscoveryServer> grpc_;
  std::unique_ptr<HttpServer> http_;
  uint16_t grpc_port_ = 0;
  uint16_t http_port_ = 0;
};

}  // namespace mesh::pilot::server
