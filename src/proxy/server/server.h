// The istio-proxy process: loads the config, binds the listeners (one SO_REUSEPORT socket per
// worker), runs the workers, serves the admin, Prometheus and health endpoints on the main
// thread, re-resolves DNS clusters, reloads on SIGHUP or POST /reload, and drains on SIGTERM or
// POST /quitquitquit.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/stats/store.h"
#include "core/status.h"
#include "proxy/admin/admin_server.h"
#include "proxy/config/snapshot_builder.h"
#include "proxy/discovery/discovered_config.h"
#include "proxy/server/worker.h"
#include "proxy/v1/config.pb.h"

namespace mesh::proxy {

struct ServerOptions {
  // The config file; with `discovery` it is optional and gives only what pilot does not send
  // (node, admin addresses, telemetry).
  std::string config_path;
  // Listeners, routes and clusters come from pilot (applyDiscovered); the proxy is not ready
  // until the first of them has been applied. The port file carries pilot's version applied
  // ("discovery_version", "" until then).
  bool discovery = false;
  // Merged over the config file's node (set fields win): identity from the command line.
  v1::Node node_overrides;
  uint32_t concurrency = 0;  // 0: one worker per core
  std::string port_file;     // written (atomically) once every port is bound
  std::chrono::milliseconds drain_timeout{10000};
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();

  // Loads and validates the config, binds every port and starts the workers.
  Status start();
  // Serves until drained; returns the process exit code.
  int run();
  // Re-reads the config file. On any error the running config stays, and the error (file,
  // line, field) is returned, logged and shown in /config_dump.
  Status reload();
  void beginDrain();

  // From any thread: applies pilot's listeners, route configurations and clusters, with the
  // assignments' endpoints filling the `eds` clusters (mergeAssignments), merged into the local
  // config on the main thread, atomically, as a reload does. The future holds the result: an
  // error leaves the last good config serving. Fails if the server is draining.
  std::future<Status> applyDiscovered(DiscoveredConfig config);
  // After start(): the node as configured (file merged with overrides), and the admin API's
  // bound "host:port".
  v1::Node node() const;
  std::string adminAddress() const;

  // From any thread: the discovery stream's state, for /config_dump and /server_info.
  void setDiscoveryState(bool connected, std::string detail);

 private:
  struct BoundListener {
    std::string address;
    uint32_t slot = 0;
    uint16_t port = 0;
  };
  enum class State { kInitializing, kLive, kDraining };

  // The config file (if any) merged with `discovered` (if any).
  StatusOr<std::shared_ptr<const Snapshot>> loadSnapshot(const v1::Bootstrap* discovered);
  Status applyDiscoveredNow(const DiscoveredConfig& config);
  bool ready() const;
  Status applySnapshot(std::shared_ptr<const Snapshot> snapshot);
  void publish(const std::shared_ptr<const Snapshot>& snapshot,
               const std::vector<std::pair<uint32_t, std::vector<int>>>& adds,
               const std::vector<uint32_t>& removes);
  void installAdminHandlers();
  void writePortFile();
  void waitSignal();
  void finishDrain();
  void scheduleDns();
  void refreshDns(const std::string& cluster);
  void onDnsResult(const std::string& cluster, std::vector<std::vector<std::string>> addrs);

  AdminResponse handleConfigDump(const AdminRequest& req);
  AdminResponse handleClusters(const AdminRequest& req);
  AdminResponse handleStats(const AdminRequest& req);
  AdminResponse handleLogging(const AdminRequest& req);
  AdminResponse handleServerInfo(const AdminRequest& req);

  ServerOptions options_;
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer drain_timer_;
  stats::Store store_;
  stats::ThreadStats& main_stats_;
  IstioTelemetry telemetry_;
  SnapshotContext ctx_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const Snapshot> current_;
  uint64_t next_version_ = 1;
  std::string last_error_;
  // Discovery: the last applied config from pilot (merged: what runs), its parts and the newest
  // version of either type; the stream's state.
  std::shared_ptr<const v1::Bootstrap> discovered_;
  DiscoveredConfig discovered_parts_;
  std::string discovered_version_;
  bool discovery_connected_ = false;
  std::string discovery_detail_;
  std::map<std::string, BoundListener> listeners_;  // by listener name
  std::unique_ptr<AdminServer> admin_, prometheus_, health_;
  uint16_t admin_port_ = 0, prometheus_port_ = 0, health_port_ = 0;
  State state_ = State::kInitializing;
  bool healthcheck_failed_ = false;
  uint32_t drains_pending_ = 0;
  bool finished_ = false;
  std::chrono::system_clock::time_point started_at_;
  stats::SeriesId reload_ok_, reload_failed_;

  // DNS: resolved off the main thread, results posted back.
  boost::asio::io_context resolver_io_;
  std::thread resolver_thread_;
  std::map<std::string, std::unique_ptr<boost::asio::steady_timer>> dns_timers_;
};

}  // namespace mesh::proxy
