// The Echo test service (echo.proto) with gRPC's synchronous API. Thread-safe: gRPC calls it
// from its own pool.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "testing/grpc_echo/echo.grpc.pb.h"  // generated, build/gen/

namespace mesh::testing::echo {

class EchoServiceImpl final : public Echo::Service {
 public:
  explicit EchoServiceImpl(std::string name) : name_(std::move(name)) {}

  grpc::Status Unary(grpc::ServerContext* ctx, const EchoRequest* req, EchoReply* out) override;
  grpc::Status ServerStream(grpc::ServerContext* ctx, const StreamRequest* req,
                            grpc::ServerWriter<EchoReply>* writer) override;
  grpc::Status Bidi(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<EchoReply, EchoRequest>* stream) override;
  grpc::Status FailFirst(grpc::ServerContext* ctx, const FailRequest* req, EchoReply* out) override;
  grpc::Status Sleep(grpc::ServerContext* ctx, const SleepRequest* req, EchoReply* out) override;

 private:
  EchoReply reply(grpc::ServerContext* ctx, const std::string& message) const;

  const std::string name_;
  std::mutex mu_;
  std::map<std::string, uint32_t> calls_;  // FailFirst calls per key
};

}  // namespace mesh::testing::echo
