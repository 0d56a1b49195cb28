// istio-proxy: the sidecar. `istio-proxy --config proxy.yaml`.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "core/log.h"
#include "proxy/server/server.h"

int main(int argc, char** argv) {
  CLI::App app{"istio-proxy: the mesh's sidecar proxy"};
  mesh::proxy::ServerOptions opts;
  std::string log_level = "info";
  double drain_seconds = 10;
  app.add_option("-c,--config", opts.config_path, "proxy config file (YAML or JSON)")
      ->required();
  app.add_option("--concurrency", opts.concurrency, "worker threads (default: one per core)");
  app.add_option("--port-file", opts.port_file,
                 "write the bound ports as JSON to this file once ready");
  app.add_option("--drain-timeout", drain_seconds,
                 "seconds to let in-flight requests finish on SIGTERM or /quitquitquit");
  app.add_option("-l,--log-level", log_level, "trace, debug, info, warning, error, off");
  app.set_version_flag("--version", std::string("istio-proxy ") + MESH_VERSION);
  CLI11_PARSE(app, argc, argv);

  mesh::log::init(log_level);
  opts.drain_timeout = std::chrono::milliseconds(static_cast<int64_t>(drain_seconds * 1000));
  mesh::proxy::Server server(opts);
  mesh::Status st = server.start();
  if (!st.ok()) {
    std::fprintf(stderr, "istio-proxy: %s\n", st.message().c_str());
    return 1;
  }
  return server.run();
}
