#include "proxy/discovery/discovery_client.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "core/log.h"
#include "discovery/v1/discovery.grpc.pb.h"

namespace mesh::proxy {

namespace dv1 = ::mesh::discovery::v1;

namespace {

constexpr char kBootstrapType[] = "type.mesh/proxy.v1.Bootstrap";

dv1::Node toDiscoveryNode(const v1::Node& n, const std::string& admin_address) {
  dv1::Node out;
  out.set_id(n.id());
  out.set_namespace_(n.namespace_());
  out.set_workload_name(n.workload_name());
  out.mutable_labels()->insert(n.labels().begin(), n.labels().end());
  out.set_service_account(n.service_account());
  out.set_ip(n.ip());
  out.mutable_app_ports()->insert(n.app_ports().begin(), n.app_ports().end());
  out.set_outbound_bind(n.outbound_bind());
  out.set_admin_address(admin_address);
  return out;
}

}  // namespace

struct DiscoveryClient::Impl {
  DiscoveryClientOptions options;
  Apply apply;
  StateChange state;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<dv1::AggregatedDiscovery::Stub> stub;
  std::thread thread;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  grpc::ClientContext* current = nullptr;  // the live stream's context, for TryCancel

  // What was last applied (and ACKed): its version and the bytes of the resource.
  std::string applied_version;
  std::string applied_bytes;

  bool isStopping() {
    std::lock_guard<std::mutex> lock(mu);
    return stopping;
  }

  // Waits for an apply to finish, giving up when the client stops (the server may have stopped
  // running the loop that would finish it).
  std::optional<Status> await(std::future<Status>& f) {
    while (f.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
      if (isStopping()) return std::nullopt;
    }
    return f.get();
  }

  // One stream, from connect to its end. Returns true if any response arrived on it.
  bool runStream() {
    grpc::ClientContext ctx;
    // Queue the stream until the channel is connected rather than failing at once: the channel
    // reconnects with its own backoff (bounded as set below) and the stream starts the moment
    // pilot is back.
    ctx.set_wait_for_ready(true);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return false;
      current = &ctx;
    }
    auto stream = stub->StreamResources(&ctx);
    dv1::DiscoveryRequest first;
    *first.mutable_node() = toDiscoveryNode(options.node, options.admin_address);
    first.set_type_url(kBootstrapType);
    first.set_version_info(applied_version);
    bool got_any = false;
    if (stream->Write(first)) {
      dv1::DiscoveryResponse resp;
      while (stream->Read(&resp)) {
        if (!got_any) {
          got_any = true;
          state(true, "connected to " + options.address);
          MESH_LOG("discovery", info, "connected to pilot at {}", options.address);
        }
        if (!handle(resp, stream.get())) break;
      }
      stream->WritesDone();
    }
    grpc::Status st = stream->Finish();
    {
      std::lock_guard<std::mutex> lock(mu);
      current = nullptr;
    }
    std::string why =
        st.ok() ? std::string("stream ended by pilot")
                : "stream ended: " + std::to_string(st.error_code()) + " " + st.error_message();
    if (!isStopping()) {
      state(false, why);
      if (got_any) {
        MESH_LOG("discovery", warn, "pilot at {}: {}; keeping config version '{}'", options.address,
                 why, applied_version);
      } else {
        MESH_LOG("discovery", debug, "pilot at {}: {}", options.address, why);
      }
    }
    return got_any;
  }

  // ACKs or NACKs one response. False if the stream should end.
  bool handle(const dv1::DiscoveryResponse& resp,
              grpc::ClientReaderWriter<dv1::DiscoveryRequest, dv1::DiscoveryResponse>* stream) {
    dv1::DiscoveryRequest reply;
    reply.set_type_url(kBootstrapType);
    reply.set_response_nonce(resp.nonce());
    std::optional<Status> result;
    if (resp.type_url() != kBootstrapType || resp.resources_size() != 1 ||
        !resp.resources(0).Is<v1::Bootstrap>()) {
      result = invalidArgument("expected one " + std::string(kBootstrapType) + " resource, got " +
                               std::to_string(resp.resources_size()) + " of type '" +
                               resp.type_url() + "'");
    } else if (resp.resources(0).value() == applied_bytes) {
      result = okStatus();  // a resync with what already runs: nothing to apply
    } else {
      auto config = std::make_shared<v1::Bootstrap>();
      if (!resp.resources(0).UnpackTo(config.get())) {
        result = invalidArgument("the Bootstrap resource does not parse");
      } else {
        std::future<Status> f = apply(config, resp.version_info());
        result = await(f);
        if (!result) return false;  // stopping
      }
    }
    if (result->ok()) {
      applied_version = resp.version_info();
      applied_bytes = resp.resources(0).value();
    } else {
      reply.mutable_error_detail()->set_code(
          static_cast<int32_t>(grpc::StatusCode::INVALID_ARGUMENT));
      reply.mutable_error_detail()->set_message(result->message());
      MESH_LOG("discovery", warn, "NACK of pilot's version {}: {}", resp.version_info(),
               result->message());
    }
    reply.set_version_info(applied_version);
    return stream->Write(reply);
  }

  void loop() {
    std::mt19937_64 rng(std::random_device{}());
    auto backoff = options.initial_backoff;
    while (!isStopping()) {
      if (runStream()) backoff = options.initial_backoff;
      // Full jitter over the upper half: many proxies losing pilot at once do not return at once.
      auto lo = backoff.count() / 2;
      std::uniform_int_distribution<int64_t> pick(lo, std::max<int64_t>(lo, backoff.count()));
      std::chrono::milliseconds delay(pick(rng));
      {
        std::unique_lock<std::mutex> lock(mu);
        if (cv.wait_for(lock, delay, [this] { return stopping; })) break;
      }
      backoff = std::min(options.max_backoff, backoff * 2);
    }
  }
};

DiscoveryClient::DiscoveryClient(DiscoveryClientOptions options, Apply apply, StateChange state)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->apply = std::move(apply);
  impl_->state = std::move(state);
  grpc::ChannelArguments args;
  // Notice a pilot that went away without closing (a dead host, a cut network).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Our own backoff decides when to retry; gRPC's reconnect backoff must not exceed it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(impl_->options.initial_backoff.count()));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(impl_->options.initial_backoff.count()));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(impl_->options.max_backoff.count()));
  args.SetMaxReceiveMessageSize(64 << 20);
  impl_->channel =
      grpc::CreateCustomChannel(impl_->options.address, grpc::InsecureChannelCredentials(), args);
  impl_->stub = dv1::AggregatedDiscovery::NewStub(impl_->channel);
}

DiscoveryClient::~DiscoveryClient() { stop(); }

void DiscoveryClient::start() {
  impl_->thread = std::thread([this] { impl_->loop(); });
}

void DiscoveryClient::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    if (impl_->current != nullptr) impl_->current->TryCancel();
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace mesh::proxy
