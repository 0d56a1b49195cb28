#include "proxy/telemetry/response_flags.h"

namespace mesh::proxy {

std::string formatResponseFlags(uint32_t flags) {
  static constexpr struct {
    uint32_t flag;
    const char* text;
  } kNames[] = {
      {kFailedLocalHealthCheck, "LH"},
      {kNoHealthyUpstream, "UH"},
      {kUpstreamRequestTimeout, "UT"},
      {kLocalReset, "LR"},
      {kUpstreamRemoteReset, "UR"},
      {kUpstreamConnectionFailure, "UF"},
      {kUpstreamConnectionTermination, "UC"},
      {kUpstreamOverflow, "UO"},
      {kNoRouteFound, "NR"},
      {kDelayInjected, "DI"},
      {kFaultInjected, "FI"},
      {kRateLimited, "RL"},
      {kUnauthorizedExternalService, "UAEX"},
      {kRateLimitServiceError, "RLSE"},
      {kDownstreamConnectionTermination, "DC"},
      {kUpstreamRetryLimitExceeded, "URX"},
      {kStreamIdleTimeout, "SI"},
      {kInvalidEnvoyRequestHeaders, "IH"},
      {kDownstreamProtocolError, "DPE"},
      {kUpstreamMaxStreamDurationReached, "UMSDR"},
      {kOverloadManager, "OM"},
      {kDnsResolutionFailed, "DF"},
      {kNoClusterFound, "NC"},
      {kUpstreamProtocolError, "UPE"},
      {kDurationTimeout, "DT"},
  };
  if (flags == 0) return "-";
  std::string out;
  for (const auto& n : kNames) {
    if (flags & n.flag) {
      if (!out.empty()) out += ',';
      out += n.text;
    }
  }
  return out;
}

}  // namespace mesh::proxy
