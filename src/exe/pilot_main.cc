// pilot: the control plane's discovery server.
// `pilot --config-dir DIR... [--grpc-address 127.0.0.1:15010] [--http-address 127.0.0.1:15014]`.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "core/log.h"
#include "pilot/server/pilot_server.h"

int main(int argc, char** argv) {
  CLI::App app{"pilot: serves each proxy its config over the discovery stream"};
  mesh::pilot::server::PilotOptions opts;
  std::string log_level = "info";
  int debounce_ms = 100;
  app.add_option("--config-dir", opts.config_dirs,
                 "directory of Istio config and Kubernetes Service/Endpoints/Pod files "
                 "(*.yaml, *.yml, *.json), watched for changes; repeatable: the directories "
                 "are read as one config")
      ->required();
  app.add_option("--grpc-address", opts.grpc_address, "discovery stream (plaintext gRPC)")
      ->capture_default_str();
  app.add_option("--http-address", opts.http_address, "/ready, /metrics and /debug/*")
      ->capture_default_str();
  app.add_option("--port-file", opts.port_file,
                 "write {\"grpc\":N,\"http\":N} to this file once listening");
  app.add_option("--root-namespace", opts.root_namespace, "the mesh's config root namespace")
      ->capture_default_str();
  app.add_option("--domain-suffix", opts.domain_suffix, "the cluster's DNS suffix")
      ->capture_default_str();
  std::string outbound_policy = "ALLOW_ANY";
  app.add_option("--outbound-traffic-policy", outbound_policy,
                 "MeshConfig outboundTrafficPolicy.mode for captured sidecars: ALLOW_ANY "
                 "(unknown destinations pass through) or REGISTRY_ONLY")
      ->check(CLI::IsMember({"ALLOW_ANY", "REGISTRY_ONLY"}))
      ->capture_default_str();
  app.add_option("--debounce-ms", debounce_ms,
                 "quiet time after a config file change before reloading")
      ->capture_default_str()
      ->check(CLI::Range(0, 60000));
  app.add_option("-l,--log-level", log_level, "trace, debug, info, warning, error, off");
  app.set_version_flag("--version", std::string("pilot ") + MESH_VERSION);
  CLI11_PARSE(app, argc, argv);

  mesh::log::init(log_level);
  opts.debounce = std::chrono::milliseconds(debounce_ms);
  opts.registry_only = outbound_policy == "REGISTRY_ONLY";

  // Block the stop signals before any thread starts, so that only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  mesh::pilot::server::PilotServer server(opts);
  mesh::Status st = server.start();
  if (!st.ok()) {
    std::fprintf(stderr, "pilot: %s\n", st.message().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  MESH_LOG("pilot", info, "signal {}: stopping", sig);
  server.stop();
  return 0;
}
