#include "pilot/server/pilot_server.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/file_util.h"
#include "core/log.h"
#include "pilot/server/config_directory.h"
#include "pilot/server/config_watcher.h"
#include "pilot/server/grpc_service.h"
#include "pilot/server/http_server.h"

namespace mesh::pilot::server {

namespace {

translate::PushOptions pushOptions(const PilotOptions& o) {
  translate::PushOptions p;
  p.root_namespace = o.root_namespace;
  p.domain_suffix = o.domain_suffix;
  p.registry_only = o.registry_only;
  return p;
}

}  // namespace

PilotServer::PilotServer(PilotOptions options)
    : options_(std::move(options)),
      discovery_(stats_, pushOptions(options_)),
      loader_(options_.config_dirs) {}

PilotServer::~PilotServer() { stop(); }

void PilotServer::reload() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  const auto start = std::chrono::steady_clock::now();
  DirectoryConfig loaded = loader_.load();
  const auto parsed = std::chrono::steady_clock::now();
  discovery_.applyConfig(std::move(loaded));
  using ms = std::chrono::duration<double, std::milli>;
  MESH_LOG("pilot", debug, "reload: {} files parsed in {:.1f} ms, applied in {:.1f} ms",
           loader_.lastParsed(), ms(parsed - start).count(),
           ms(std::chrono::steady_clock::now() - parsed).count());
}

Status PilotServer::start() {
  reload();
  for (const std::string& dir : options_.config_dirs) {
    watchers_.push_back(
        std::make_unique<ConfigWatcher>(dir, options_.debounce, [this] { reload(); }));
    MESH_RETURN_IF_ERROR(watchers_.back()->start());
  }

  grpc_ = std::make_unique<GrpcDiscoveryServer>(discovery_);
  auto grpc_port = grpc_->start(options_.grpc_address);
  if (!grpc_port.ok()) return grpc_port.status();
  grpc_port_ = *grpc_port;

  http_ = std::make_unique<HttpServer>([this](std::string_view path) { return serveHttp(path); });
  auto http_port = http_->start(options_.http_address);
  if (!http_port.ok()) return http_port.status();
  http_port_ = *http_port;

  MESH_RETURN_IF_ERROR(writePortFile());
  MESH_LOG("pilot", info, "pilot serving discovery on port {}, monitoring on port {}", grpc_port_,
           http_port_);
  return okStatus();
}

void PilotServer::stop() {
  for (auto& w : watchers_) w->stop();
  if (http_) http_->stop();
  if (grpc_) grpc_->stop();
}

HttpReply PilotServer::serveHttp(std::string_view path) {
  HttpReply r;
  if (path == "/ready") {
    if (discovery_.ready()) {
      r.body = "ready\n";
    } else {
      r.status = 503;
      r.body = "no good config loaded yet\n";
    }
  } else if (path == "/debug/syncz") {
    r.content_type = "application/json";
    r.body = discovery_.syncz();
  } else if (path == "/debug/configz") {
    r.content_type = "application/json";
    r.body = discovery_.configz();
  } else if (path == "/debug/registryz") {
    r.content_type = "application/json";
    r.body = discovery_.registryz();
  } else if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4";
    r.body = discovery_.metrics();
  } else {
    r.status = 404;
    r.body = "not found; try /ready, /metrics, /debug/syncz, /debug/configz, /debug/registryz\n";
  }
  return r;
}

Status PilotServer::writePortFile() const {
  if (options_.port_file.empty()) return okStatus();
  return writeFileAtomic(options_.port_file, "{\"grpc\":" + std::to_string(grpc_port_) +
                                                 ",\"http\":" + std::to_string(http_port_) + "}\n");
}

}  // namespace mesh::pilot::server
