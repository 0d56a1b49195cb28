#include "proxy/discovery/discovery_client.h"

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "core/log.h"
#include "discovery/v1/discovery.grpc.pb.h"

namespace mesh::proxy {

namespace dv1 = ::mesh::discovery::v1;

namespace {

constexpr char kBootstrapType[] = "type.mesh/proxy.v1.Bootstrap";
constexpr char kAssignmentType[] = "type.mesh/proxy.v1.ClusterLoadAssignment";

using Stream = grpc::ClientReaderWriter<dv1::DiscoveryRequest, dv1::DiscoveryResponse>;

// True if some `eds` cluster of `b` has no assignment in `a`.
bool lacksAssignments(const v1::Bootstrap& b, const Assignments& a) {
  for (const v1::Cluster& c : b.clusters()) {
    if (c.eds() && !a.contains(c.name())) return true;
  }
  return false;
}

// `a` without the assignments of clusters that are not `eds` clusters of `b`.
std::shared_ptr<const Assignments> prunedTo(const v1::Bootstrap& b,
                                            std::shared_ptr<const Assignments> a) {
  std::set<std::string_view> eds;
  for (const v1::Cluster& c : b.clusters()) {
    if (c.eds()) eds.insert(c.name());
  }
  bool all_used = true;
  for (const auto& [name, _] : *a) all_used = all_used && eds.contains(name);
  if (all_used) return a;
  auto out = std::make_shared<Assignments>();
  for (const auto& [name, assignment] : *a) {
    if (eds.contains(name)) out->emplace(name, assignment);
  }
  return out;
}

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
  out.set_interception_mode(n.interception_mode());
  out.set_cert_dir(n.cert_dir());
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

  // What was last applied (and ACKed) of each type; the Bootstrap's bytes, to skip a resync of
  // the same one.
  std::shared_ptr<const v1::Bootstrap> bootstrap;
  std::string bootstrap_version;
  std::string bootstrap_bytes;
  std::shared_ptr<const Assignments> assignments = std::make_shared<const Assignments>();
  std::string assignments_version;
  // A Bootstrap waiting for the assignments of its new clusters (see the header).
  struct Pending {
    std::shared_ptr<const v1::Bootstrap> bootstrap;
    std::string version;
    std::string bytes;
    std::string nonce;
  };
  std::optional<Pending> pending;

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
    first.set_version_info(bootstrap_version);
    dv1::DiscoveryRequest subscribe;
    subscribe.set_type_url(kAssignmentType);
    subscribe.set_version_info(assignments_version);
    pending.reset();
    bool got_any = false;
    if (stream->Write(first) && stream->Write(subscribe)) {
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
        MESH_LOG("discovery", warn,
                 "pilot at {}: {}; keeping config version '{}' (endpoints version '{}')",
                 options.address, why, bootstrap_version, assignments_version);
      } else {
        MESH_LOG("discovery", debug, "pilot at {}: {}", options.address, why);
      }
    }
    return got_any;
  }

  // Sends the ACK (error ok) or NACK of the response `nonce` of `type`. False if the stream broke.
  bool reply(Stream* stream, const char* type, const std::string& nonce, const Status& result) {
    dv1::DiscoveryRequest r;
    r.set_type_url(type);
    r.set_response_nonce(nonce);
    if (!result.ok()) {
      r.mutable_error_detail()->set_code(static_cast<int32_t>(grpc::StatusCode::INVALID_ARGUMENT));
      r.mutable_error_detail()->set_message(result.message());
    }
    r.set_version_info(std::string_view(type) == kBootstrapType ? bootstrap_version
                                                                : assignments_version);
    return stream->Write(r);
  }

  // Applies a Bootstrap with assignments, on behalf of a response of `version`; on success they
  // become the last good ones. Nullopt if the client is stopping.
  std::optional<Status> applyBoth(std::shared_ptr<const v1::Bootstrap> b,
                                  const std::string& b_version, const std::string& b_bytes,
                                  std::shared_ptr<const Assignments> a,
                                  const std::string& a_version, const std::string& version) {
    DiscoveredConfig config{b, a, b_version, a_version, version};
    std::future<Status> f = apply(std::move(config));
    std::optional<Status> result = await(f);
    if (result && result->ok()) {
      bootstrap = std::move(b);
      bootstrap_version = b_version;
      bootstrap_bytes = b_bytes;
      assignments = std::move(a);
      assignments_version = a_version;
    }
    return result;
  }

  // ACKs or NACKs one response (a held Bootstrap: later). False if the stream should end.
  bool handle(const dv1::DiscoveryResponse& resp, Stream* stream) {
    if (resp.type_url() == kAssignmentType) return handleAssignments(resp, stream);
    if (resp.type_url() != kBootstrapType || resp.resources_size() != 1 ||
        !resp.resources(0).Is<v1::Bootstrap>()) {
      return nack(stream, kBootstrapType, resp,
                  invalidArgument("expected one " + std::string(kBootstrapType) +
                                  " resource, got " + std::to_string(resp.resources_size()) +
                                  " of type '" + resp.type_url() + "'"));
    }
    const std::string& bytes = resp.resources(0).value();
    if (bytes == bootstrap_bytes) {
      // A resync with what already runs: nothing to apply (and a held one is superseded).
      pending.reset();
      bootstrap_version = resp.version_info();
      return reply(stream, kBootstrapType, resp.nonce(), okStatus());
    }
    auto config = std::make_shared<v1::Bootstrap>();
    if (!resp.resources(0).UnpackTo(config.get())) {
      return nack(stream, kBootstrapType, resp,
                  invalidArgument("the Bootstrap resource does not parse"));
    }
    if (lacksAssignments(*config, *assignments)) {
      // A held one that was not applied is superseded: its nonce stays unanswered, as pilot
      // ignores answers to any but the last nonce of a type anyway.
      pending = Pending{config, resp.version_info(), bytes, resp.nonce()};
      return true;
    }
    pending.reset();
    std::shared_ptr<const Assignments> a = prunedTo(*config, assignments);
    std::optional<Status> result =
        applyBoth(config, resp.version_info(), bytes, a, assignments_version, resp.version_info());
    if (!result) return false;  // stopping
    if (!result->ok()) return nack(stream, kBootstrapType, resp, *result);
    return reply(stream, kBootstrapType, resp.nonce(), okStatus());
  }

  bool handleAssignments(const dv1::DiscoveryResponse& resp, Stream* stream) {
    // The new ones replace those of the same clusters; the others stay (EDS in the state of the
    // world variant sends only what changed).
    auto next = std::make_shared<Assignments>(*assignments);
    bool changed = false;
    std::optional<Status> bad;
    for (const auto& any : resp.resources()) {
      v1::ClusterLoadAssignment a;
      if (!any.Is<v1::ClusterLoadAssignment>() || !any.UnpackTo(&a)) {
        bad = invalidArgument("resource of type '" + any.type_url() + "' is not a parsable " +
                              std::string(kAssignmentType));
        break;
      }
      auto it = next->find(a.cluster_name());
      if (it != next->end() && google::protobuf::util::MessageDifferencer::Equals(it->second, a)) {
        continue;  // a resync of what runs
      }
      changed = true;
      std::string name = a.cluster_name();
      (*next)[std::move(name)] = std::move(a);
    }
    std::optional<Status> result = okStatus();
    if (pending) {
      // The held Bootstrap goes in now, with these assignments (or, if they are bad, with the
      // ones it has).
      Pending p = std::move(*pending);
      pending.reset();
      result =
          bad ? applyBoth(p.bootstrap, p.version, p.bytes, prunedTo(*p.bootstrap, assignments),
                          assignments_version, p.version)
              : applyBoth(p.bootstrap, p.version, p.bytes, prunedTo(*p.bootstrap, std::move(next)),
                          resp.version_info(), resp.version_info());
      if (!result) return false;  // stopping
      if (!reply(stream, kBootstrapType, p.nonce, *result)) return false;
    } else if (!bad && (bootstrap == nullptr || !changed)) {
      // Nothing runs that they change: kept (for the Bootstrap to come).
      assignments = std::move(next);
      assignments_version = resp.version_info();
    } else if (!bad) {
      result = applyBoth(bootstrap, bootstrap_version, bootstrap_bytes, std::move(next),
                         resp.version_info(), resp.version_info());
      if (!result) return false;
    }
    if (bad) return nack(stream, kAssignmentType, resp, *bad);
    if (!result->ok()) return nack(stream, kAssignmentType, resp, *result);
    return reply(stream, kAssignmentType, resp.nonce(), okStatus());
  }

  bool nack(Stream* stream, const char* type, const dv1::DiscoveryResponse& resp,
            const Status& error) {
    MESH_LOG("discovery", warn, "NACK of pilot's {} version {}: {}", type, resp.version_info(),
             error.message());
    return reply(stream, type, resp.nonce(), error);
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
