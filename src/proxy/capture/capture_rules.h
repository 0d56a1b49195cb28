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
  std::string include_cidrs = "*";        // -i: outbound destinations captured; "*" all (v4, v6)
  std::string exclude_cidrs;              // -x: outbound destinations never captured (v4, v6)
  std::string inbound_ports = "*";        // -b: inbound ports captured; "*" all, "" none
  std::string exclude_inbound_ports;      // -d: with "*", ports left alone
  std::string exclude_outbound_ports;     // -o: outbound ports never captured
};

// The chains install creates in the nat table, and remove deletes.
inline constexpr const char* kCaptureChains[] = {"ISTIO_INBOUND", "ISTIO_IN_REDIRECT",
                                                 "ISTIO_OUTPUT", "ISTIO_REDIRECT"};

enum class IpFamily { kIpv4, kIpv6 };

// The iptables-restore input (for `iptables-restore --noflush`, or ip6tables-restore for kIpv6)
// that installs the rules, or every invalid flag at once (kInvalidArgument, naming the flag).
// The two families have the same chains; each takes the CIDRs (-i, -x) of its own family, and
// IPv6 uses ::1 and ::6 where IPv4 uses 127.0.0.1 and 127.0.0.6.
StatusOr<std::string> captureRules(const CaptureOptions& options,
                                   IpFamily family = IpFamily::kIpv4);

// The iptables argument lists that remove what captureRules installs: the jumps from
// PREROUTING and OUTPUT, then the four chains. Each may fail when already gone.
std::vector<std::vector<std::string>> removeCommands();

// Runs `iptables-restore --noflush` with captureRules(options), after removing any earlier
// install (so installing twice leaves one set of rules); then the same with ip6tables-restore
// when the namespace has IPv6 and ip6tables can use its nat table (else IPv6 is skipped, logged).
Status installCapture(const CaptureOptions& options);
// Deletes the jumps and chains install created; what is already gone is skipped.
Status removeCapture();

}  // namespace mesh::proxy
