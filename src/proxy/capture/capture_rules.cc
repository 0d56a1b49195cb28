#include "proxy/capture/capture_rules.h"

#include <arpa/inet.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string_view>

#include "core/log.h"

namespace mesh::proxy {
namespace {

std::vector<std::string> splitList(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

bool isPort(const std::string& s) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  int v = std::stoi(s);
  return v >= 1 && v <= 65535;
}

bool isId(const std::string& s) {
  if (s.empty() || s.size() > 10) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return std::stoull(s) <= 0xffffffffULL;
}

bool isCidr(const std::string& s, int family) {
  size_t slash = s.find('/');
  std::string ip = s.substr(0, slash);
  unsigned char a[16];
  if (inet_pton(family, ip.c_str(), a) != 1) return false;
  if (slash == std::string::npos) return true;
  std::string bits = s.substr(slash + 1);
  if (bits.empty() || bits.size() > 3) return false;
  for (char c : bits) {
    if (c < '0' || c > '9') return false;
  }
  return std::stoi(bits) <= (family == AF_INET ? 32 : 128);
}
bool isIpv4Cidr(const std::string& s) { return isCidr(s, AF_INET); }
bool isIpv6Cidr(const std::string& s) { return isCidr(s, AF_INET6); }
// Either family: each family's rules take the CIDRs of their own.
bool isIpCidr(const std::string& s) { return isIpv4Cidr(s) || isIpv6Cidr(s); }

// Checks one list flag; each bad item is an error naming the flag.
std::vector<std::string> checkList(const std::string& value, const char* flag,
                                   bool (*valid)(const std::string&), const char* what,
                                   std::vector<std::string>* errors, bool allow_star = false) {
  std::vector<std::string> items = splitList(value);
  for (const std::string& item : items) {
    if (allow_star && item == "*") continue;
    if (!valid(item)) errors->push_back(std::string(flag) + ": '" + item + "' is not " + what);
  }
  return items;
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  for (const auto& x : v) {
    if (x == s) return true;
  }
  return false;
}

// Runs a command through the shell; every argument here comes from validated flags or
// constants. Returns the exit status (-1 if it could not run).
int run(const std::string& command, const std::string* input) {
  FILE* p = ::popen(command.c_str(), input != nullptr ? "w" : "r");
  if (p == nullptr) return -1;
  if (input != nullptr) std::fwrite(input->data(), 1, input->size(), p);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace

StatusOr<std::string> captureRules(const CaptureOptions& o, IpFamily family) {
  std::vector<std::string> errors;
  if (o.proxy_port == 0) errors.push_back("-p: must be 1..65535");
  if (o.inbound_capture_port == 0) errors.push_back("-z: must be 1..65535");
  auto uids = checkList(o.proxy_uid, "-u", isId, "a uid", &errors);
  auto gids =
      checkList(o.proxy_gid.empty() ? o.proxy_uid : o.proxy_gid, "-g", isId, "a gid", &errors);
  auto include = checkList(o.include_cidrs, "-i", isIpCidr, "an IP CIDR", &errors, true);
  auto exclude = checkList(o.exclude_cidrs, "-x", isIpCidr, "an IP CIDR", &errors);
  auto inbound = checkList(o.inbound_ports, "-b", isPort, "a port", &errors, true);
  auto exclude_in = checkList(o.exclude_inbound_ports, "-d", isPort, "a port", &errors);
  auto exclude_out = checkList(o.exclude_outbound_ports, "-o", isPort, "a port", &errors);
  if (uids.empty()) errors.push_back("-u: at least one uid is required");
  if (!errors.empty()) {
    std::string msg = "invalid capture flags:";
    for (const auto& e : errors) msg += "\n  " + e;
    return invalidArgument(msg);
  }

  // Only this family's CIDRs ("*" stays); its loopback and passthrough source addresses.
  const bool v6 = family == IpFamily::kIpv6;
  auto own_family = [v6](std::vector<std::string>& cidrs) {
    std::erase_if(cidrs, [v6](const std::string& c) {
      return c != "*" && (v6 ? !isIpv6Cidr(c) : !isIpv4Cidr(c));
    });
  };
  own_family(include);
  own_family(exclude);
  const std::string localhost = v6 ? "::1/128" : "127.0.0.1/32";
  const std::string passthrough_source = v6 ? "::6/128" : "127.0.0.6/32";

  std::string out = "*nat\n";
  for (const char* chain : kCaptureChains) out += std::string(":") + chain + " - [0:0]\n";
  auto rule = [&out](const std::string& r) { out += "-A " + r + "\n"; };
  const std::string in_port = std::to_string(o.inbound_capture_port);
  rule("ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports " + in_port);
  rule("ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports " + std::to_string(o.proxy_port));

  // Inbound: the mesh's own ports stay with whoever listens on them.
  const bool capture_inbound = !inbound.empty();
  if (capture_inbound) {
    rule("PREROUTING -p tcp -j ISTIO_INBOUND");
    rule("ISTIO_INBOUND -p tcp --dport 15008 -j RETURN");  // HBONE
    if (contains(inbound, "*")) {
      for (const char* p : {"22", "15090", "15021", "15020"}) {
        rule(std::string("ISTIO_INBOUND -p tcp --dport ") + p + " -j RETURN");
      }
      for (const auto& p : exclude_in) rule("ISTIO_INBOUND -p tcp --dport " + p + " -j RETURN");
      rule("ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT");
    } else {
      for (const auto& p : inbound) {
        rule("ISTIO_INBOUND -p tcp --dport " + p + " -j ISTIO_IN_REDIRECT");
      }
    }
  }

  // Outbound, in Istio's order.
  rule("OUTPUT -p tcp -j ISTIO_OUTPUT");
  for (const auto& p : exclude_out) rule("ISTIO_OUTPUT -p tcp --dport " + p + " -j RETURN");
  // Envoy's inbound passthrough connects from 127.0.0.6: never recaptured.
  rule("ISTIO_OUTPUT -o lo -s " + passthrough_source + " -j RETURN");
  auto owner = [&](const std::vector<std::string>& ids, const char* match) {
    for (const auto& id : ids) {
      // The app calling itself through its service IP: the proxy's outbound side sent it to
      // lo; it is inbound traffic for this pod.
      if (capture_inbound) {
        rule("ISTIO_OUTPUT -o lo ! -d " + localhost + " -m owner --" + std::string(match) +
             "-owner " + id + " -j ISTIO_IN_REDIRECT");
      }
      // The app talking to itself on loopback, not through the proxy.
      rule("ISTIO_OUTPUT -o lo -m owner ! --" + std::string(match) + "-owner " + id + " -j RETURN");
      // The proxy's own traffic is never captured again.
      rule("ISTIO_OUTPUT -m owner --" + std::string(match) + "-owner " + id + " -j RETURN");
    }
  };
  owner(uids, "uid");
  owner(gids, "gid");
  rule("ISTIO_OUTPUT -d " + localhost + " -j RETURN");
  for (const auto& c : exclude) rule("ISTIO_OUTPUT -d " + c + " -j RETURN");
  if (contains(include, "*")) {
    rule("ISTIO_OUTPUT -j ISTIO_REDIRECT");
  } else {
    for (const auto& c : include) rule("ISTIO_OUTPUT -d " + c + " -j ISTIO_REDIRECT");
  }
  out += "COMMIT\n";
  return out;
}

std::vector<std::vector<std::string>> removeCommands() {
  std::vector<std::vector<std::string>> out;
  out.push_back({"-t", "nat", "-D", "PREROUTING", "-p", "tcp", "-j", "ISTIO_INBOUND"});
  out.push_back({"-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-j", "ISTIO_OUTPUT"});
  for (const char* chain : kCaptureChains) out.push_back({"-t", "nat", "-F", chain});
  for (const char* chain : kCaptureChains) out.push_back({"-t", "nat", "-X", chain});
  return out;
}

namespace {

// `ip6tables` when IPv6 is on in this namespace and its nat table can be read; false (and why)
// otherwise: a kernel without IPv6, IPv6 disabled, or no ip6tables nat support.
bool ipv6Usable(std::string* why) {
  if (::access("/proc/net/if_inet6", F_OK) != 0) {
    *why = "the kernel has no IPv6";
    return false;
  }
  FILE* f = std::fopen("/proc/sys/net/ipv6/conf/all/disable_ipv6", "r");
  int disabled = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%d", &disabled) != 1) disabled = 0;
    std::fclose(f);
  }
  if (disabled != 0) {
    *why = "IPv6 is disabled in this network namespace";
    return false;
  }
  if (run("ip6tables -w -t nat -S >/dev/null 2>&1", nullptr) != 0) {
    *why = "ip6tables cannot read the nat table";
    return false;
  }
  return true;
}

Status removeFamily(const char* tool) {
  for (const auto& args : removeCommands()) {
    std::string cmd = std::string(tool) + " -w";
    for (const auto& a : args) cmd += " " + a;
    cmd += " 2>/dev/null";
    // A jump added twice by hand is deleted as often as it is there (bounded).
    const bool jump = args[2] == "-D";
    for (int i = 0; i < (jump ? 16 : 1); ++i) {
      if (run(cmd, nullptr) != 0) break;
    }
  }
  // Whatever is left now was not ours to delete, or the table is not reachable.
  for (const char* chain : kCaptureChains) {
    if (run(std::string(tool) + " -w -t nat -S " + chain + " >/dev/null 2>&1", nullptr) == 0) {
      return internalError(std::string(tool) + ": chain " + chain +
                           " is still there (referenced by a rule not created by install?)");
    }
  }
  return okStatus();
}

}  // namespace

Status removeCapture() {
  MESH_RETURN_IF_ERROR(removeFamily("iptables"));
  std::string why;
  if (ipv6Usable(&why)) MESH_RETURN_IF_ERROR(removeFamily("ip6tables"));
  return okStatus();
}

Status installCapture(const CaptureOptions& options) {
  auto rules = captureRules(options, IpFamily::kIpv4);
  if (!rules.ok()) return rules.status();
  auto rules6 = captureRules(options, IpFamily::kIpv6);
  if (!rules6.ok()) return rules6.status();
  if (run("iptables -w -t nat -S >/dev/null 2>&1", nullptr) != 0) {
    return failedPrecondition(
        "cannot read the nat table with iptables (not root, or no iptables?)");
  }
  Status removed = removeCapture();
  if (!removed.ok()) return removed;
  if (run("iptables-restore --noflush", &*rules) != 0) {
    return internalError("iptables-restore refused the rules:\n" + *rules);
  }
  // The same chains for IPv6 where the namespace has it; skipped (said once) where not.
  std::string why;
  if (!ipv6Usable(&why)) {
    MESH_LOG("main", info, "capture: IPv6 rules skipped: {}", why);
    return okStatus();
  }
  if (run("ip6tables-restore --noflush", &*rules6) != 0) {
    return internalError("ip6tables-restore refused the rules:\n" + *rules6);
  }
  return okStatus();
}

}  // namespace mesh::proxy
