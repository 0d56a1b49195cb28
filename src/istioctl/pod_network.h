// The network of `istioctl local up --netns`: one Linux bridge in the root network namespace on a
// private /24 the run picks (10.251.X.0/24, one not routed or addressed on this machine yet), and
// per pod a network namespace joined to it by a veth pair, with an address of its own and a
// default route through the bridge (where pilot listens). Service VIPs come from the same /24;
// they are never answered by anyone: a pod's capture rules redirect connections to them before
// they leave the pod.
//
// Everything created is written to a record file first, so that teardown (the destructor, or
// `istioctl local down` after a crash) removes exactly that: namespaces (with their veth ends and
// nat rules), the bridge and the root namespace's FORWARD rules for it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace mesh::istioctl {

class PodNetwork {
 public:
  // Fails (kFailedPrecondition, saying why) without root or without `ip netns` support.
  // `tag` makes names unique per run (e.g. the pid); `record_file` lists what is created.
  static StatusOr<std::unique_ptr<PodNetwork>> create(const std::string& tag,
                                                      const std::string& record_file);
  ~PodNetwork();  // teardown()
  PodNetwork(const PodNetwork&) = delete;
  PodNetwork& operator=(const PodNetwork&) = delete;

  // The bridge's address: the root namespace as the pods see it (pilot listens here).
  const std::string& gatewayIp() const { return gateway_ip_; }
  const std::string& subnet() const { return subnet_; }  // "10.251.7.0/24"
  const std::string& bridge() const { return bridge_; }

  // A new namespace for `pod` on the bridge; its IP. Names are "<tag>-<pod>".
  StatusOr<std::string> addPod(const std::string& pod);
  // The namespace's path for setns(2) ("/run/netns/<name>"), "" for an unknown pod.
  std::string namespacePath(const std::string& pod) const;
  std::string namespaceName(const std::string& pod) const;
  // An address of the subnet for a service VIP (from the top of the /24 down).
  StatusOr<std::string> allocateVip();

  // Removes everything created, in reverse order; safe to call twice.
  void teardown();
  // What teardown removes for a record file left by a run that could not clean up (killed):
  // the same steps; a missing file is nothing to do.
  static Status teardownRecorded(const std::string& record_file);
  // Names of namespaces, links and rules created so far (tests check they are gone).
  std::vector<std::string> created() const;

 private:
  PodNetwork() = default;
  Status record(const std::string& line);
  Status run(const std::vector<std::string>& argv);

  std::string tag_, record_file_;
  std::string bridge_, subnet_, gateway_ip_;
  uint32_t base_ = 0;  // the subnet's first address, host order
  uint32_t next_pod_ = 2, next_vip_ = 254;
  std::vector<std::pair<std::string, std::string>> pods_;  // (pod, namespace name)
  std::vector<std::string> records_;                       // "netns NAME", "link NAME", ...
};

// The IPv4 prefixes ("a.b.c.d/len"; a bare address is /32) in the output of `ip -4 -o route`
// or `ip -4 -o addr`.
std::vector<std::string> prefixesIn(const std::string& ip_output);
// The first /24 of 10.251.0.0/16, from the (start % 256)th on and wrapping, that overlaps none of
// `in_use` (a default route, /0, does not count); nullopt if every one does.
std::optional<std::string> pickFreeSubnet(const std::vector<std::string>& in_use, uint32_t start);

// Runs argv (argv[0] a path or a name looked up in /usr/sbin, /sbin, /usr/bin, /bin); its exit
// status and combined output. -1 if it could not run.
std::pair<int, std::string> runCommand(const std::vector<std::string>& argv);

}  // namespace mesh::istioctl
