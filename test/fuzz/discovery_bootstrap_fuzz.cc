// Fuzz target for what istio-proxy --discovery does with the bytes of a pushed Bootstrap:
// parse them, merge the assignments of its `eds` clusters (here: each such cluster's own endpoints
// on the wire, moved into a ClusterLoadAssignment of its name) and build a snapshot. Any bytes end
// in a snapshot or a list of errors, never a crash or a hang. DNS names are not resolved (the
// resolver refuses), and file paths in TLS settings are read only when they are small regular
// files.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/stats/store.h"
#include "proxy/config/snapshot_builder.h"
#include "proxy/discovery/discovered_config.h"
#include "proxy/telemetry/istio_stats.h"
#include "proxy/v1/config.pb.h"

namespace {

struct Env {
  mesh::stats::Store store;
  mesh::proxy::IstioTelemetry telemetry{store};
  mesh::proxy::SnapshotContext ctx{
      store, telemetry, [](const std::string& host) -> mesh::StatusOr<std::vector<std::string>> {
        return mesh::unavailable("no DNS while fuzzing: " + host);
      }};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env* env = new Env();
  auto pushed = std::make_shared<mesh::proxy::v1::Bootstrap>();
  if (!pushed->ParseFromArray(data, static_cast<int>(size))) return 0;
  auto assignments = std::make_shared<mesh::proxy::Assignments>();
  for (auto& c : *pushed->mutable_clusters()) {
    if (!c.eds()) continue;
    mesh::proxy::v1::ClusterLoadAssignment& a = (*assignments)[c.name()];
    a.set_cluster_name(c.name());
    a.mutable_endpoints()->Swap(c.mutable_endpoints());
  }
  mesh::proxy::DiscoveredConfig discovered{pushed, assignments, "1", "1", "1"};
  auto config =
      std::make_shared<mesh::proxy::v1::Bootstrap>(mesh::proxy::mergeAssignments(discovered));
  mesh::proxy::BuildInput in;
  in.config = config;
  in.file = "pilot";
  (void)mesh::proxy::buildSnapshot(in, env->ctx);
  return 0;
}
