// `istioctl local up|down|apply|delete`: a whole mesh on one machine, without Kubernetes.
//
// `up DIR` reads DIR/mesh.yaml (api/istioctl/v1/local_mesh.proto), starts pilot, then for every
// pod of every workload an istio-proxy (config from pilot) and the app, all on 127.0.0.1 with
// ports the OS picks: the app listens on a private port, its sidecar owns the endpoint port
// that other sidecars call (registered as a WorkloadEntry), and the app's outbound calls go to
// its sidecar's outbound listeners (passed in its command line). It waits until every proxy
// applied pilot's config and every app listens, writes STATE/state.json, prints the URLs, and
// supervises until SIGINT/SIGTERM (or `down`), then stops everything it started, by process id.
//
// The Istio config is live: pilot watches STATE/config, seeded with mesh.yaml's config files;
// `apply` and `delete` change it resource by resource, as `kubectl apply` would. With --config-dir,
// pilot watches that directory instead (nothing copied).
//
// With --netns, each pod instead gets its own network namespace (istioctl/pod_network.h): the
// app listens on its real service port, the sidecar runs as uid 1337 beside it with Istio's
// capture rules, apps call each other by service VIP with no proxy settings, and sidecars talk
// mTLS with SPIFFE certificates from a root made for the run.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace mesh::istioctl {

struct LocalUpOptions {
  std::string dir;         // holds mesh.yaml
  std::string state_dir;   // default: defaultLocalStateDir()
  std::string config_dir;  // optional: pilot watches this directly
  std::string bin_dir;     // pilot and istio-proxy; default: this executable's directory
  // Each pod in its own network namespace on a bridge (istioctl/pod_network.h), its traffic
  // captured by its sidecar (running as uid 1337) and mTLS between sidecars; apps call services by
  // VIP. Needs root and `ip netns`; fails saying so otherwise.
  bool netns = false;
};

// "/tmp/istio-local-<uid>".
std::string defaultLocalStateDir();

int runLocalUp(const LocalUpOptions& opts, std::ostream& out, std::ostream& err);
// Stops a running `up` (by the pid it recorded) and waits for it to finish.
int runLocalDown(const std::string& state_dir, std::ostream& out, std::ostream& err);
// Writes (or, with remove, deletes) each Istio resource of the files in the live config
// directory as STATE/config/<kind>-<namespace>-<name>.yaml.
int runLocalApply(const std::vector<std::string>& files, const std::string& state_dir, bool remove,
                  std::ostream& out, std::ostream& err);

}  // namespace mesh::istioctl
