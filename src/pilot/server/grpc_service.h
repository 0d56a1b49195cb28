// Pilot's gRPC listener serving the AggregatedDiscovery stream (api/discovery/v1) over a
// Discovery. gRPC's headers stay in grpc_service.cc: this header is cheap to include.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "pilot/server/discovery.h"

namespace mesh::pilot::server {

// gRPC's callback API: a stream costs no thread of its own. Each stream is a reactor with at most
// one write outstanding; a config change wakes it and a small pool of push workers (one per core)
// computes its next push, so a slow or dead proxy (whose write never completes) holds no thread
// and delays no other proxy. A bad first request ends the stream with its real status
// (INVALID_ARGUMENT and the reason); stop() ends open streams with UNAVAILABLE.
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
