// Pilot's gRPC listener serving the AggregatedDiscovery stream (api/discovery/v1) over a
// Discovery. gRPC's headers stay in grpc_service.cc: this header is cheap to include.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "pilot/server/discovery.h"

namespace mesh::pilot::server {

// Synchronous gRPC API: each stream is served by one gRPC thread writing responses plus one
// reader thread of its own, i.e. two threads per connected proxy. Fine for tens of proxies in
// this first slice; the callback API is the path to thousands.
class GrpcDiscoveryServer {
 public:
  explicit GrpcDiscoveryServer(Discovery& discovery);
  ~GrpcDiscoveryServer();
  GrpcDiscoveryServer(const GrpcDiscoveryServer&) = delete;
  GrpcDiscoveryServer& operator=(const GrpcDiscoveryServer&) = delete;

  // Listens (plaintext) on "host:port"; port 0 lets the OS pick. Returns the bound port.
  StatusOr<uint16_t> start(const std::string& address);
  // Ends every stream and stops listening. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mesh::pilot::server
