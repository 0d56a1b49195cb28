#include "pilot/server/grpc_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "core/log.h"
#include "discovery/v1/discovery.grpc.pb.h"

namespace mesh::pilot::server {

namespace dv1 = ::mesh::discovery::v1;

namespace {

translate::ProxyIdentity identityOf(const dv1::Node& node) {
  translate::ProxyIdentity p;
  p.id = node.id();
  if (!node.namespace_().empty()) p.namespace_name = node.namespace_();
  p.workload_name = node.workload_name();
  p.labels.insert(node.labels().begin(), node.labels().end());
  p.service_account = node.service_account();
  p.ip = node.ip();
  p.app_ports.insert(node.app_ports().begin(), node.app_ports().end());
  p.outbound_bind = node.outbound_bind();
  p.admin_address = node.admin_address();
  return p;
}

// The events one stream's writer thread waits for.
struct StreamEvents {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<dv1::DiscoveryRequest> requests;
  bool config_changed = false;
  bool reader_done = false;
};

class Service final : public dv1::AggregatedDiscovery::Service {
 public:
  explicit Service(Discovery& discovery) : discovery_(discovery) {}

  void shutdown() {
    stopping_ = true;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto* ctx : contexts_) ctx->TryCancel();
  }

  grpc::Status StreamResources(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<dv1::DiscoveryResponse, dv1::DiscoveryRequest>* stream) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "pilot is stopping");
      contexts_.insert(ctx);
    }
    auto events = std::make_shared<StreamEvents>();
    // Reads and writes of one sync stream may run concurrently, one thread each.
    std::thread reader([stream, events] {
      dv1::DiscoveryRequest req;
      while (stream->Read(&req)) {
        std::lock_guard<std::mutex> lock(events->mu);
        events->requests.push_back(std::move(req));
        events->cv.notify_one();
      }
      std::lock_guard<std::mutex> lock(events->mu);
      events->reader_done = true;
      events->cv.notify_one();
    });
    grpc::Status status = serve(ctx, stream, events);
    // Unblocks the reader if the stream ended from this side. Known limitation: the proxy then
    // sees CANCELLED rather than `status` (e.g. INVALID_ARGUMENT for an unknown type_url); the
    // reason is in pilot's log. The callback API will let the status through.
    if (!status.ok()) MESH_LOG("pilot", warn, "ending stream: {}", status.error_message());
    ctx->TryCancel();
    reader.join();
    std::lock_guard<std::mutex> lock(mu_);
    contexts_.erase(ctx);
    return status;
  }

 private:
  grpc::Status serve(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<dv1::DiscoveryResponse, dv1::DiscoveryRequest>* stream,
      const std::shared_ptr<StreamEvents>& events) {
    uint64_t conn = 0;
    struct Registration {
      Discovery& d;
      uint64_t& conn;
      ~Registration() {
        if (conn != 0) d.disconnect(conn);
      }
    } registration{discovery_, conn};

    while (true) {
      std::deque<dv1::DiscoveryRequest> requests;
      bool changed = false;
      {
        std::unique_lock<std::mutex> lock(events->mu);
        events->cv.wait(lock, [&] {
          return !events->requests.empty() || events->config_changed || events->reader_done;
        });
        requests.swap(events->requests);
        changed = events->config_changed;
        events->config_changed = false;
        if (requests.empty() && !changed && events->reader_done) break;
      }
      bool push = changed && conn != 0;
      for (const dv1::DiscoveryRequest& req : requests) {
        if (!req.type_url().empty() && req.type_url() != kBootstrapType) {
          return grpc::Status(
              grpc::StatusCode::INVALID_ARGUMENT,
              "unknown type_url '" + req.type_url() + "'; this pilot serves " + kBootstrapType);
        }
        if (conn == 0) {
          if (req.node().id().empty()) {
            return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "the first request must carry node.id");
          }
          std::weak_ptr<StreamEvents> weak = events;
          conn = discovery_.connect(identityOf(req.node()), [weak] {
            if (auto e = weak.lock()) {
              std::lock_guard<std::mutex> lock(e->mu);
              e->config_changed = true;
              e->cv.notify_one();
            }
          });
          push = true;
          continue;
        }
        std::optional<std::pair<int, std::string>> error;
        if (req.has_error_detail()) {
          error = std::make_pair(req.error_detail().code(), req.error_detail().message());
        }
        discovery_.onResponse(conn, req.version_info(), req.response_nonce(), std::move(error));
      }
      if (!push || ctx->IsCancelled()) continue;
      std::optional<Push> next = discovery_.nextPush(conn);
      if (!next) continue;
      dv1::DiscoveryResponse resp;
      resp.set_version_info(next->version);
      resp.set_nonce(next->nonce);
      resp.set_type_url(kBootstrapType);
      resp.add_resources()->PackFrom(next->bootstrap);
      if (!stream->Write(resp)) break;
    }
    return grpc::Status::OK;
  }

  Discovery& discovery_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::set<grpc::ServerContext*> contexts_;
};

}  // namespace

struct GrpcDiscoveryServer::Impl {
  explicit Impl(Discovery& d) : service(d) {}
  Service service;
  std::unique_ptr<grpc::Server> server;
};

GrpcDiscoveryServer::GrpcDiscoveryServer(Discovery& discovery)
    : impl_(std::make_unique<Impl>(discovery)) {}

GrpcDiscoveryServer::~GrpcDiscoveryServer() { stop(); }

StatusOr<uint16_t> GrpcDiscoveryServer::start(const std::string& address) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&impl_->service);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || port == 0) {
    impl_->server.reset();
    return unavailable("cannot listen for gRPC on " + address);
  }
  return static_cast<uint16_t>(port);
}

void GrpcDiscoveryServer::stop() {
  if (!impl_->server) return;
  impl_->service.shutdown();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace mesh::pilot::server
