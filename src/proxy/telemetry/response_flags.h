// Envoy response flags, as Istio's `response_flags` label and access log show them.
#pragma once

#include <cstdint>
#include <string>

namespace mesh::proxy {

enum ResponseFlag : uint32_t {
  kFailedLocalHealthCheck = 1u << 0,     // LH
  kNoHealthyUpstream = 1u << 1,          // UH
  kUpstreamRequestTimeout = 1u << 2,     // UT
  kLocalReset = 1u << 3,                 // LR
  kUpstreamRemoteReset = 1u << 4,        // UR
  kUpstreamConnectionFailure = 1u << 5,  // UF
  kUpstreamConnectionTermination = 1u << 6,  // UC
  kUpstreamOverflow = 1u << 7,           // UO
  kNoRouteFound = 1u << 8,               // NR
  kDelayInjected = 1u << 9,              // DI
  kFaultInjected = 1u << 10,             // FI
  kRateLimited = 1u << 11,               // RL
  kUnauthorizedExternalService = 1u << 12,  // UAEX
  kRateLimitServiceError = 1u << 13,     // RLSE
  kDownstreamConnectionTermination = 1u << 14,  // DC
  kUpstreamRetryLimitExceeded = 1u << 15,  // URX
  kStreamIdleTimeout = 1u << 16,         // SI
  kInvalidEnvoyRequestHeaders = 1u << 17,  // IH
  kDownstreamProtocolError = 1u << 18,   // DPE
  kUpstreamMaxStreamDurationReached = 1u << 19,  // UMSDR
  kOverloadManager = 1u << 20,           // OM
  kDnsResolutionFailed = 1u << 21,       // DF
  kNoClusterFound = 1u << 22,            // NC
  kUpstreamProtocolError = 1u << 23,     // UPE
  kDurationTimeout = 1u << 24,           // DT
};

// "UH,URX" in Envoy's order; "-" when no flag is set.
std::string formatResponseFlags(uint32_t flags);

}  // namespace mesh::proxy
