// What the proxy holds from pilot's two resource types: the last Bootstrap (whose `eds` clusters
// carry no endpoints) and the last ClusterLoadAssignment of each cluster, with their versions.
// The discovery client builds one when either changes; the server merges it into the config it
// runs. Immutable once built, shared between the client's and the main thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "proxy/v1/config.pb.h"

namespace mesh::proxy {

using Assignments = std::map<std::string, v1::ClusterLoadAssignment>;

struct DiscoveredConfig {
  std::shared_ptr<const v1::Bootstrap> bootstrap;
  std::shared_ptr<const Assignments> assignments;  // by cluster name; never null
  std::string bootstrap_version;
  std::string assignments_version;  // "" until the first assignments
  // The version of the response that made this change (the newest pilot sent): what the proxy
  // reports as applied.
  std::string version;
};

// The Bootstrap the proxy runs: `config.bootstrap` with each `eds` cluster's endpoints taken from
// its assignment (none while it has none, as Envoy's EDS cluster before its first assignment).
v1::Bootstrap mergeAssignments(const DiscoveredConfig& config);

}  // namespace mesh::proxy
