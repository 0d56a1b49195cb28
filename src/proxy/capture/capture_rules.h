// Transparent capture, as Istio's init container (istio-iptables, REDIRECT mode) sets it up: nat
// rules in the current network namespace send the workload's outbound TCP to the proxy's
// virtualOutbound port (15001) and inbound TCP to virtualInbound (15006), except the proxy's own
// traffic (its uid/gid) and the listed ports and CIDRs. The proxy then reads each connection's
// original destination (SO_ORIGINAL_DST) and routes by it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace mesh::proxy {

// Istio's flags; lists are comma-separated as on istio-iptables' command line.
struct CaptureOptions {
  uint16_t proxy_port = 15001;            // -p: where outbound traffic goes
  uint16_t inbound_capture_port = 15006;  // -z: where inbound traffic goes
  std::string proxy_uid = "1337";         // -u: uids whose traffic is never captured
  std::string proxy_gid;                  // -g: gids likewise; empty: the same as proxy_uid
  std::string include_cidrs = "*";        // -i: outbound destinations captured; "*" all
  std::string exclude_cidrs;              // -x: outbound destinations never captured
  std::string inbound_ports = "*";        // -b: inbound ports captured; "*" all, "" none
  std::string exclude_inbound_ports;      // -d: with "*", ports left alone
  std::string exclude_outbound_ports;     // -o: outbound ports never captured
};

// The chains install creates in the nat table, and remove deletes.
inline constexpr const char* kCaptureChains[] = {"ISTIO_INBOUND", "ISTIO_IN_REDIRECT",
                                                 "ISTIO_OUTPUT", "ISTIO_REDIRECT"};

// The iptables-restore input (for `iptables-restore --noflush`) that installs the rules, or every
// invalid flag at once (kInvalidArgument, naming the flag).
StatusOr<std::string> captureRules(const CaptureOptions& options);

// The iptables argument lists that remove what captureRules installs: the jumps from
// PREROUTING and OUTPUT, then the four chains. Each may fail when already gone.
std::vector<std::vector<std::string>> removeCommands();

// Runs `iptables-restore --noflush` with captureRules(options), after removing any earlier
// install (so installing twice leaves one set of rules).
Status installCapture(const CaptureOptions& options);
// Deletes the jumps and chains install created; what is already gone is skipped.
Status removeCapture();

}  // namespace mesh::proxy
