// DestinationRule traffic policies applied to proxy clusters: the merge Istio performs (subset
// over rule, port-level over destination-level, one category replaced as a whole) and the
// mapping of each category to the proxy's Cluster and route HashPolicy fields.
#pragma once

#include <string>
#include <vector>

#include "config/resource.h"
#include "proxy/v1/config.pb.h"

namespace mesh::pilot::translate {

namespace networking = config::networking;

// The policy in force for one port of one (subset of a) destination. Each pointer is null when
// nothing configures that category.
struct EffectivePolicy {
  const networking::LoadBalancerSettings* load_balancer = nullptr;
  const networking::ConnectionPoolSettings* connection_pool = nullptr;
  const networking::OutlierDetection* outlier_detection = nullptr;
  const networking::ClientTLSSettings* tls = nullptr;
};

// Merges the rule's policy, its port-level settings for `port`, the subset's policy and the
// subset's port-level settings, later ones replacing a whole category. `dr` and `subset` may be
// null.
EffectivePolicy effectivePolicy(const networking::DestinationRule* dr,
                                const networking::Subset* subset, uint32_t port);

// Sets lbPolicy, ring/maglev sizes, connectTimeout, idleTimeout, circuitBreakers,
// maxRequestsPerConnection and outlierDetection on `cluster`. Unsupported settings are named in
// `warnings` with `where` (e.g. "DestinationRule default/reviews").
void applyPolicy(const EffectivePolicy& policy, mesh::proxy::v1::Cluster* cluster,
                 const std::string& where, std::vector<std::string>* warnings);

// The route hash policy a consistentHash load balancer needs (empty otherwise).
std::vector<mesh::proxy::v1::HashPolicy> hashPolicies(const EffectivePolicy& policy);

}  // namespace mesh::pilot::translate
