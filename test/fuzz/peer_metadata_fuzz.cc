// Fuzz target for Istio's x-envoy-peer-metadata header as a destination sidecar reads it: any
// bytes give a workload or nothing, never a crash; a workload always has a name and namespace.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/telemetry/peer_metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto w = mesh::proxy::decodePeerMetadata(in, "");
  if (w && (w->name.empty() || w->namespace_.empty() || w->principal != "unknown")) std::abort();
  // The same bytes as the decoded payload (the base64 layer skipped).
  auto w2 = mesh::proxy::decodePeerMetadata(mesh::proxy::base64Encode(in), "");
  if (w2 && (w2->name.empty() || w2->namespace_.empty())) std::abort();
  return 0;
}
