#include "pilot/server/grpc_service.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

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
  p.interception_mode = node.interception_mode();
  p.cert_dir = node.cert_dir();
  p.admin_address = node.admin_address();
  return p;
}

class Service;

using translate::appendBytesField;
using translate::appendVarint;
using translate::varintSize;

// The DiscoveryResponse for a push, serialized by hand so that the shared bytes go out by
// reference (a slice that holds the shared_ptr) rather than being copied per proxy: the same
// bytes DiscoveryResponse::SerializeAsString gives for version_info, the resources, type_url,
// nonce. A Bootstrap is one Any (type_url, value = shared + own); assignments are their
// `resources` entries as they are (translate::AssignmentSet).
grpc::ByteBuffer responseOf(const Push& push) {
  static_assert(dv1::DiscoveryResponse::kResourcesFieldNumber == 2,
                "translate::AssignmentSet frames its entries as field 2");
  static const std::string kAnyType =
      "type.googleapis.com/" + mesh::proxy::v1::Bootstrap::descriptor()->full_name();
  std::string head;
  appendBytesField(&head, dv1::DiscoveryResponse::kVersionInfoFieldNumber, push.version);
  std::string tail;
  if (push.type == Push::Type::kBootstrap) {
    const size_t value_size = push.size();
    const size_t any_size =
        1 + varintSize(kAnyType.size()) + kAnyType.size() + 1 + varintSize(value_size) + value_size;
    head.push_back(static_cast<char>(dv1::DiscoveryResponse::kResourcesFieldNumber << 3 | 2));
    appendVarint(&head, any_size);
    appendBytesField(&head, 1, kAnyType);           // google.protobuf.Any.type_url
    head.push_back(static_cast<char>(2 << 3 | 2));  // google.protobuf.Any.value
    appendVarint(&head, value_size);
    tail = push.own_bytes;
  }
  appendBytesField(&tail, dv1::DiscoveryResponse::kTypeUrlFieldNumber, push.typeUrl());
  appendBytesField(&tail, dv1::DiscoveryResponse::kNonceFieldNumber, push.nonce);

  auto* shared = new std::shared_ptr<const std::string>(push.shared_bytes);
  grpc::Slice slices[3] = {
      grpc::Slice(head),
      grpc::Slice(
          const_cast<char*>((*shared)->data()), (*shared)->size(),
          [](void* p) { delete static_cast<std::shared_ptr<const std::string>*>(p); }, shared),
      grpc::Slice(tail)};
  return grpc::ByteBuffer(slices, 3);
}

// One proxy's stream. gRPC owns the reactor's callbacks until OnDone; the object itself is
// shared (self_, the push queue, the wake callback's weak_ptr) so that a wake or a queued push
// racing with the end of the stream finds a live object that knows it is done.
//
// State machine, guarded by mu_: `wanted_` (a wake arrived since the last computation),
// `queued_` (in the push queue), `busy_` (pushes are being computed or written: at most one write
// is outstanding; the responses of one computation, a Bootstrap then its assignments, are written
// in order from `pending_`). A wake during busy_ only sets wanted_; when the write completes the
// stream is queued again and nextPush computes from the then-current config, so the latest config
// wins and intermediate ones are skipped.
class Stream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                     public std::enable_shared_from_this<Stream> {
 public:
  Stream(Service& service, Discovery& discovery) : service_(service), discovery_(discovery) {}

  // Called once by the service after construction: begins reading.
  void begin(std::shared_ptr<Stream> self) {
    self_ = std::move(self);
    StartRead(&request_);
  }

  // Push worker: computes the next push and starts its write (or goes idle).
  void push();

  // Ends the stream with `status` (after an outstanding write completes). Idempotent.
  void end(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    endLocked(status);
  }

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  void wake();
  // Requires mu_. Puts the stream in the push queue if it wants a push and is idle.
  void scheduleLocked();
  // Requires mu_. Records the status to end with (the first one wins) and finishes unless a push
  // is being computed or written: then push() or OnWriteDone finishes.
  void endLocked(const grpc::Status& status) {
    if (!finish_requested_) {
      finish_requested_ = true;
      final_status_ = status;
    }
    if (!busy_) finishLocked();
  }
  void finishLocked() {
    if (finished_ || done_) return;
    finished_ = true;
    Finish(final_status_);
  }

  Service& service_;
  Discovery& discovery_;
  std::shared_ptr<Stream> self_;          // released in OnDone
  grpc::ByteBuffer request_;              // only touched by the read chain
  std::deque<grpc::ByteBuffer> pending_;  // front: the outstanding write's message

  std::mutex mu_;
  uint64_t conn_ = 0;  // Discovery connection; 0 until the first request
  bool wanted_ = false;
  bool queued_ = false;
  bool busy_ = false;
  bool finish_requested_ = false;
  bool finished_ = false;  // Finish called (exactly once per stream)
  bool done_ = false;      // OnDone ran: no reactor call may follow
  grpc::Status final_status_;
};

// The callback service plus the push workers: a few threads translate for every stream (no
// thread per stream), taking streams from one FIFO queue so that a burst of wakes is served
// in order and one slow proxy (whose write does not complete) holds no worker.
class Service final : public dv1::AggregatedDiscovery::WithRawCallbackMethod_StreamResources<
                          dv1::AggregatedDiscovery::Service> {
 public:
  Service(Discovery& discovery, unsigned workers) : discovery_(discovery) {
    for (unsigned i = 0; i < workers; ++i) workers_.emplace_back([this] { runWorker(); });
  }
  ~Service() override { stopWorkers(); }

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamResources(
      grpc::CallbackServerContext* /*ctx*/) override {
    auto stream = std::make_shared<Stream>(*this, discovery_);
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      stream->begin(stream);
      stream->end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "pilot is stopping"));
      return stream.get();
    }
    streams_.insert(stream.get());
    lock.unlock();
    stream->begin(stream);
    return stream.get();
  }

  void enqueue(std::shared_ptr<Stream> s) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(s));
    cv_.notify_one();
  }

  void forget(Stream* s) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.erase(s);
  }

  // Ends every open stream (UNAVAILABLE) and refuses new ones.
  void shutdown() {
    std::vector<std::shared_ptr<Stream>> open;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (Stream* s : streams_) {
        // A stream in streams_ has not run OnDone (which erases it first), so it is alive.
        open.push_back(s->shared_from_this());
      }
    }
    for (auto& s : open) s->end(grpc::Status(grpc::StatusCode::UNAVAILABLE, "pilot is stopping"));
  }

  void stopWorkers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      workers_stopping_ = true;
      cv_.notify_all();
    }
    for (auto& t : workers_) t.join();
    workers_.clear();
    queue_.clear();
  }

 private:
  void runWorker() {
    while (true) {
      std::shared_ptr<Stream> s;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return workers_stopping_ || !queue_.empty(); });
        if (workers_stopping_) return;
        s = std::move(queue_.front());
        queue_.pop_front();
      }
      s->push();
    }
  }

  Discovery& discovery_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool workers_stopping_ = false;
  std::set<Stream*> streams_;  // open streams (OnDone not yet run)
  std::deque<std::shared_ptr<Stream>> queue_;
  std::vector<std::thread> workers_;
};

void Stream::OnReadDone(bool ok) {
  if (!ok) {
    // The proxy half-closed or the stream broke: end it as the sync version did.
    end(grpc::Status::OK);
    return;
  }
  dv1::DiscoveryRequest req;
  grpc::Status parsed =
      grpc::SerializationTraits<dv1::DiscoveryRequest>::Deserialize(&request_, &req);
  if (!parsed.ok()) {
    end(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     "cannot parse DiscoveryRequest: " + parsed.error_message()));
    return;
  }
  if (!req.type_url().empty() && req.type_url() != kBootstrapType &&
      req.type_url() != kAssignmentType) {
    std::string why = "unknown type_url '" + req.type_url() + "'; this pilot serves " +
                      kBootstrapType + " and " + kAssignmentType;
    MESH_LOG("pilot", warn, "ending stream: {}", why);
    end(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
    return;
  }
  uint64_t conn = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    conn = conn_;
  }
  if (conn == 0) {
    if (req.node().id().empty()) {
      MESH_LOG("pilot", warn, "ending stream: first request without node.id");
      end(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first request must carry node.id"));
      return;
    }
    std::weak_ptr<Stream> weak = weak_from_this();
    conn = discovery_.connect(identityOf(req.node()), [weak] {
      if (auto s = weak.lock()) s->wake();
    });
    if (req.type_url() == kAssignmentType) discovery_.subscribeAssignments(conn);
    std::lock_guard<std::mutex> lock(mu_);
    conn_ = conn;
    wanted_ = true;
    scheduleLocked();
  } else if (req.type_url() == kAssignmentType && req.response_nonce().empty()) {
    discovery_.subscribeAssignments(conn);  // wakes the stream
  } else {
    std::optional<std::pair<int, std::string>> error;
    if (req.has_error_detail()) {
      error = std::make_pair(req.error_detail().code(), req.error_detail().message());
    }
    const std::string& type = req.type_url().empty() ? kBootstrapType : req.type_url();
    discovery_.onResponse(conn, type, req.version_info(), req.response_nonce(), std::move(error));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!finish_requested_) StartRead(&request_);
}

void Stream::wake() {
  std::lock_guard<std::mutex> lock(mu_);
  wanted_ = true;
  scheduleLocked();
}

void Stream::scheduleLocked() {
  if (!wanted_ || queued_ || busy_ || finish_requested_ || done_ || conn_ == 0) return;
  queued_ = true;
  service_.enqueue(shared_from_this());
}

void Stream::push() {
  uint64_t conn = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued_ = false;
    if (finish_requested_ || done_ || busy_) return;
    busy_ = true;
    wanted_ = false;
    conn = conn_;
  }
  std::vector<Push> next = discovery_.nextPushes(conn);
  std::lock_guard<std::mutex> lock(mu_);
  if (!next.empty() && !finish_requested_ && !done_) {
    for (const Push& p : next) pending_.push_back(responseOf(p));
    StartWrite(&pending_.front());  // busy_ until OnWriteDone of the last
    return;
  }
  busy_ = false;
  if (finish_requested_) {
    finishLocked();
    return;
  }
  scheduleLocked();
}

void Stream::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.pop_front();
  if (ok && !finish_requested_ && !pending_.empty()) {
    StartWrite(&pending_.front());
    return;
  }
  pending_.clear();
  busy_ = false;
  // Not ok: the stream broke (the proxy went away, or the server cancelled it on shutdown).
  if (!ok || finish_requested_) {
    endLocked(grpc::Status::OK);
    return;
  }
  scheduleLocked();
}

void Stream::OnDone() {
  service_.forget(this);
  uint64_t conn = 0;
  std::shared_ptr<Stream> self;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    conn = conn_;
    self = std::move(self_);
  }
  if (conn != 0) discovery_.disconnect(conn);
  // `self` may be the last reference: the object goes with it.
}

}  // namespace

struct GrpcDiscoveryServer::Impl {
  explicit Impl(Discovery& d) : service(d, std::max(2u, std::thread::hardware_concurrency())) {}
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
  impl_->service.stopWorkers();
}

}  // namespace mesh::pilot::server
