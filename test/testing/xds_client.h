// A proxy's end of pilot's discovery stream, for tests: the synchronous gRPC client with a reader
// thread queuing responses; next() waits, bounded. Each client has a connection of its own.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "discovery/v1/discovery.grpc.pb.h"
#include "pilot/server/discovery.h"

namespace mesh::testing {

class XdsTestClient {
 public:
  // `read` false: never reads responses, and without BDP probing the stream's flow-control
  // window stays small, so pilot's writes to it stall after a response or two.
  explicit XdsTestClient(uint16_t port, bool read = true)
      : channel_(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                           grpc::InsecureChannelCredentials(), channelArgs(read))),
        stub_(discovery::v1::AggregatedDiscovery::NewStub(channel_)) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    stream_ = stub_->StreamResources(&ctx_);
    if (!read) return;
    reader_ = std::thread([this] {
      discovery::v1::DiscoveryResponse r;
      while (stream_->Read(&r)) {
        std::lock_guard<std::mutex> lock(mu_);
        responses_.push_back(r);
        cv_.notify_all();
      }
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
    });
  }
  ~XdsTestClient() {
    if (!finished_) stream_->WritesDone();
    ctx_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }
  XdsTestClient(const XdsTestClient&) = delete;
  XdsTestClient& operator=(const XdsTestClient&) = delete;

  bool send(const discovery::v1::DiscoveryRequest& req) { return stream_->Write(req); }
  bool subscribe(const discovery::v1::Node& node,
                 const std::string& type = pilot::server::kBootstrapType) {
    discovery::v1::DiscoveryRequest req;
    *req.mutable_node() = node;
    req.set_type_url(type);
    return send(req);
  }
  // The second subscription of a stream: assignments (ClusterLoadAssignment) from now on.
  bool subscribeAssignments() {
    discovery::v1::DiscoveryRequest req;
    req.set_type_url(pilot::server::kAssignmentType);
    return send(req);
  }
  // ACKs or NACKs a response of either type.
  bool ack(const discovery::v1::DiscoveryResponse& r) {
    discovery::v1::DiscoveryRequest req;
    req.set_type_url(r.type_url());
    req.set_version_info(r.version_info());
    req.set_response_nonce(r.nonce());
    return send(req);
  }
  bool nack(const discovery::v1::DiscoveryResponse& r, const std::string& last_good,
            const std::string& message) {
    discovery::v1::DiscoveryRequest req;
    req.set_type_url(r.type_url());
    req.set_version_info(last_good);
    req.set_response_nonce(r.nonce());
    req.mutable_error_detail()->set_code(3);
    req.mutable_error_detail()->set_message(message);
    return send(req);
  }

  std::optional<discovery::v1::DiscoveryResponse> next(
      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !responses_.empty() || done_; });
    if (responses_.empty()) return std::nullopt;
    discovery::v1::DiscoveryResponse r = std::move(responses_.front());
    responses_.pop_front();
    return r;
  }
  // Reads and ACKs responses until one with `version` arrives: how many came, or nullopt.
  std::optional<int> untilVersion(const std::string& version) {
    int n = 0;
    while (auto r = next()) {
      ++n;
      ack(*r);
      if (r->version_info() == version) return n;
    }
    return std::nullopt;
  }
  // Once the server ended the stream (next() gave nullopt): the status it ended with.
  grpc::Status finish() {
    if (reader_.joinable()) reader_.join();
    finished_ = true;
    return stream_->Finish();
  }

 private:
  static grpc::ChannelArguments channelArgs(bool read) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    if (!read) args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    return args;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<discovery::v1::AggregatedDiscovery::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<
      grpc::ClientReaderWriter<discovery::v1::DiscoveryRequest, discovery::v1::DiscoveryResponse>>
      stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<discovery::v1::DiscoveryResponse> responses_;
  bool done_ = false;
  bool finished_ = false;
};

}  // namespace mesh::testing
