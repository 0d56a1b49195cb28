#include "test/testing/grpc_echo/echo_server.h"

#include <chrono>
#include <thread>

namespace mesh::testing::echo {

EchoReply EchoServiceImpl::reply(grpc::ServerContext* ctx, const std::string& message) const {
  EchoReply r;
  r.set_message(message);
  r.set_server(name_);
  // The call's deadline (sent as grpc-timeout) as milliseconds left, when it has one.
  const auto deadline = ctx->deadline();
  if (deadline != std::chrono::system_clock::time_point::max() &&
      deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::system_clock::now());
    r.set_deadline(std::to_string(left.count()) + "ms");
  }
  return r;
}

grpc::Status EchoServiceImpl::Unary(grpc::ServerContext* ctx, const EchoRequest* req,
                                    EchoReply* out) {
  *out = reply(ctx, req->message());
  return grpc::Status::OK;
}

grpc::Status EchoServiceImpl::ServerStream(grpc::ServerContext* ctx, const StreamRequest* req,
                                           grpc::ServerWriter<EchoReply>* writer) {
  if (req->count() > 1000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "count must be at most 1000");
  }
  for (uint32_t i = 0; i < req->count(); ++i) {
    if (!writer->Write(reply(ctx, req->message() + "-" + std::to_string(i)))) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    }
  }
  return grpc::Status::OK;
}

grpc::Status EchoServiceImpl::Bidi(grpc::ServerContext* ctx,
                                   grpc::ServerReaderWriter<EchoReply, EchoRequest>* stream) {
  EchoRequest req;
  while (stream->Read(&req)) {
    if (!stream->Write(reply(ctx, req.message()))) break;
  }
  return grpc::Status::OK;
}

grpc::Status EchoServiceImpl::FailFirst(grpc::ServerContext* ctx, const FailRequest* req,
                                        EchoReply* out) {
  uint32_t attempt;
  {
    std::lock_guard<std::mutex> lock(mu_);
    attempt = ++calls_[req->key()];
  }
  if (attempt <= req->failures()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "failing call " + std::to_string(attempt) + " of " +
                            std::to_string(req->failures()) + " for " + req->key());
  }
  *out = reply(ctx, req->key());
  out->set_attempt(attempt);
  return grpc::Status::OK;
}

grpc::Status EchoServiceImpl::Sleep(grpc::ServerContext* ctx, const SleepRequest* req,
                                    EchoReply* out) {
  if (req->milliseconds() > 60000) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "at most 60000 ms");
  }
  const auto end =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(req->milliseconds());
  // Being slow is this method's job (the deadline tests call it); it is not a wait for
  // readiness. gRPC's synchronous API has no cancellation callback, so it wakes every 5 ms to
  // notice a cancelled call (its deadline passed, or the client left).
  while (std::chrono::steady_clock::now() < end) {
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  *out = reply(ctx, "slept " + std::to_string(req->milliseconds()) + "ms");
  return grpc::Status::OK;
}

}  // namespace mesh::testing::echo
