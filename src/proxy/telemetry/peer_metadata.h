// Istio's HTTP metadata exchange: a sidecar sends its workload's identity to the next hop in
// `x-envoy-peer-metadata` (base64 of a serialized google.protobuf.Struct: NAME, NAMESPACE,
// WORKLOAD_NAME, CLUSTER_ID, SERVICE_ACCOUNT, LABELS{app, version, ...}) and its node id in
// `x-envoy-peer-metadata-id`, so that the destination's telemetry can name the source
// (source_workload, source_app, source_version, ...). The header is untrusted input: decoding
// is bounded and never fails hard; anything malformed is simply "no metadata".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/telemetry/istio_stats.h"

namespace mesh::proxy {

inline constexpr std::string_view kPeerMetadataHeader = "x-envoy-peer-metadata";
inline constexpr std::string_view kPeerMetadataIdHeader = "x-envoy-peer-metadata-id";
// Larger values are ignored (Istio's are a few hundred bytes).
inline constexpr size_t kMaxPeerMetadataBytes = 4096;

// The header value for this workload.
std::string encodePeerMetadata(const std::string& pod_name, const std::string& workload_name,
                               const std::string& namespace_name,
                               const std::map<std::string, std::string>& labels,
                               const std::string& service_account, const std::string& cluster_id);

// The source workload a header names; nullopt if it is absent from the value, malformed or too
// large. `principal` is the peer's SPIFFE id when mTLS proved one, else "unknown".
std::optional<WorkloadLabels> decodePeerMetadata(std::string_view value,
                                                 const std::string& principal);

std::string base64Encode(std::string_view in);
// Standard alphabet, padding optional; nullopt on any other byte.
std::optional<std::string> base64Decode(std::string_view in);

}  // namespace mesh::proxy
