#include "istioctl/pod_network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/file_util.h"

namespace mesh::istioctl {
namespace {

// 10.251.0.0/16: one /24 per run. (The capture integration test uses 10.250.0.0/30.)
constexpr uint32_t kPoolBase = (10u << 24) | (251u << 16);
// Serializes picking a subnet between runs (until the bridge holds the address).
constexpr const char* kLockFile = "/run/istio-local-netns.lock";

std::string findTool(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
    std::string p = std::string(dir) + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string ipString(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

bool overlaps(uint32_t a, int alen, uint32_t b, int blen) {
  int len = std::min(alen, blen);
  uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  return (a & mask) == (b & mask);
}

}  // namespace

std::vector<std::string> prefixesIn(const std::string& ip_output) {
  std::vector<std::string> out;
  std::istringstream in(ip_output);
  std::string word;
  while (in >> word) {
    size_t slash = word.find('/');
    in_addr a;
    if (::inet_pton(AF_INET, word.substr(0, slash).c_str(), &a) != 1) continue;
    if (slash == std::string::npos) {
      out.push_back(word + "/32");
      continue;
    }
    const std::string bits = word.substr(slash + 1);
    if (bits.empty() || bits.size() > 2 || bits.find_first_not_of("0123456789") != bits.npos ||
        std::stoi(bits) > 32) {
      continue;
    }
    out.push_back(word);
  }
  return out;
}

std::optional<std::string> pickFreeSubnet(const std::vector<std::string>& in_use, uint32_t start) {
  std::vector<std::pair<uint32_t, int>> used;
  for (const std::string& p : in_use) {
    size_t slash = p.find('/');
    in_addr a;
    if (slash == std::string::npos || ::inet_pton(AF_INET, p.substr(0, slash).c_str(), &a) != 1) {
      continue;
    }
    const int len = std::atoi(p.c_str() + slash + 1);
    // A default route (length 0) covers everything and makes no subnet "in use".
    if (len > 0 && len <= 32) used.emplace_back(ntohl(a.s_addr), len);
  }
  for (uint32_t i = 0; i < 256; ++i) {
    const uint32_t base = kPoolBase | (((start + i) % 256) << 8);
    bool taken = false;
    for (const auto& [addr, len] : used) taken = taken || overlaps(base, 24, addr, len);
    if (!taken) return ipString(base) + "/24";
  }
  return std::nullopt;
}

std::pair<int, std::string> runCommand(const std::vector<std::string>& argv_in) {
  std::vector<std::string> argv = argv_in;
  if (argv.empty()) return {-1, "no command"};
  argv[0] = findTool(argv[0]);
  if (argv[0].empty()) return {-1, argv_in[0] + ": not installed"};
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {-1, std::strerror(errno)};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return {-1, out};
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

StatusOr<std::unique_ptr<PodNetwork>> PodNetwork::create(const std::string& tag,
                                                         const std::string& record_file) {
  if (::geteuid() != 0) {
    return failedPrecondition(
        "--netns needs root (network namespaces, a bridge and iptables rules); run as root or "
        "without --netns");
  }
  for (const char* t : {"ip", "iptables", "iptables-restore"}) {
    if (findTool(t).empty()) {
      return failedPrecondition(std::string("--netns needs '") + t + "', which is not installed");
    }
  }
  std::unique_ptr<PodNetwork> net(new PodNetwork());
  net->tag_ = tag;
  net->record_file_ = record_file;
  net->bridge_ = "mbr" + tag;
  if (net->bridge_.size() > 15) net->bridge_ = net->bridge_.substr(0, 15);
  if (Status st = writeFileAtomic(record_file, ""); !st.ok()) return st;

  // Namespaces work here? (A container without CAP_SYS_ADMIN or a mounted /run/netns refuses.)
  const std::string probe = tag + "-probe";
  auto [rc, out] = runCommand({"ip", "netns", "add", probe});
  if (rc != 0) {
    return failedPrecondition(
        "--netns: network namespaces are not allowed here (`ip netns add` "
        "failed: " +
        out + ")");
  }
  runCommand({"ip", "netns", "del", probe});

  // A free /24, picked under a lock shared with other runs until the bridge holds it.
  int lock = ::open(kLockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  // Every IPv4 prefix routed or addressed in the root namespace (any routing table).
  std::vector<std::string> in_use =
      prefixesIn(runCommand({"ip", "-4", "-o", "route", "show", "table", "all"}).second);
  for (std::string& p : prefixesIn(runCommand({"ip", "-4", "-o", "addr"}).second)) {
    in_use.push_back(std::move(p));
  }
  auto subnet = pickFreeSubnet(in_use, static_cast<uint32_t>(::getpid()));
  Status st =
      subnet ? okStatus() : failedPrecondition("--netns: every /24 of 10.251.0.0/16 is in use");
  if (st.ok()) {
    in_addr a;
    ::inet_pton(AF_INET, subnet->substr(0, subnet->find('/')).c_str(), &a);
    net->base_ = ntohl(a.s_addr);
    net->subnet_ = *subnet;
    net->gateway_ip_ = ipString(net->base_ + 1);
    st = net->record("link " + net->bridge_);
    if (st.ok()) st = net->run({"ip", "link", "add", net->bridge_, "type", "bridge"});
    if (st.ok()) {
      st = net->run({"ip", "addr", "add", net->gateway_ip_ + "/24", "dev", net->bridge_});
    }
    if (st.ok()) st = net->run({"ip", "link", "set", net->bridge_, "up"});
  }
  if (lock >= 0) ::close(lock);
  // Pod to pod over the bridge passes the root namespace's FORWARD chain when bridged traffic
  // is filtered (br_netfilter): accept it whatever the chain's policy.
  if (st.ok())
    st = net->record("forward -i " + net->bridge_ + " -o " + net->bridge_ + " -j ACCEPT");
  if (st.ok()) {
    st = net->run({"iptables", "-w", "-I", "FORWARD", "-i", net->bridge_, "-o", net->bridge_, "-j",
                   "ACCEPT"});
  }
  if (!st.ok()) return st;  // the destructor removes what was made
  return net;
}

PodNetwork::~PodNetwork() { teardown(); }

Status PodNetwork::record(const std::string& line) {
  records_.push_back(line);
  std::string text;
  for (const auto& r : records_) text += r + "\n";
  return writeFileAtomic(record_file_, text);
}

Status PodNetwork::run(const std::vector<std::string>& argv) {
  auto [rc, out] = runCommand(argv);
  if (rc == 0) return okStatus();
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  return internalError("`" + cmd + "` failed: " + out);
}

StatusOr<std::string> PodNetwork::addPod(const std::string& pod) {
  if (next_pod_ >= next_vip_) return failedPrecondition("--netns: no address left in " + subnet_);
  const std::string ns = tag_ + "-" + pod;
  const std::string ip = ipString(base_ + next_pod_);
  const std::string veth = "mv" + tag_ + "x" + std::to_string(next_pod_);
  ++next_pod_;
  MESH_RETURN_IF_ERROR(record("netns " + ns));
  MESH_RETURN_IF_ERROR(run({"ip", "netns", "add", ns}));
  pods_.emplace_back(pod, ns);
  // The host end is deleted with the namespace (its peer goes, so does it).
  MESH_RETURN_IF_ERROR(
      run({"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns}));
  MESH_RETURN_IF_ERROR(run({"ip", "link", "set", veth, "master", bridge_, "up"}));
  MESH_RETURN_IF_ERROR(run({"ip", "-n", ns, "link", "set", "lo", "up"}));
  MESH_RETURN_IF_ERROR(run({"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"}));
  MESH_RETURN_IF_ERROR(run({"ip", "-n", ns, "link", "set", "eth0", "up"}));
  MESH_RETURN_IF_ERROR(run({"ip", "-n", ns, "route", "add", "default", "via", gateway_ip_}));
  return ip;
}

std::string PodNetwork::namespaceName(const std::string& pod) const {
  for (const auto& [p, ns] : pods_) {
    if (p == pod) return ns;
  }
  return "";
}

std::string PodNetwork::namespacePath(const std::string& pod) const {
  std::string ns = namespaceName(pod);
  return ns.empty() ? "" : "/run/netns/" + ns;
}

StatusOr<std::string> PodNetwork::allocateVip() {
  if (next_vip_ <= next_pod_) return failedPrecondition("--netns: no address left in " + subnet_);
  return ipString(base_ + next_vip_--);
}

std::vector<std::string> PodNetwork::created() const { return records_; }

namespace {

// Undoes one record line; what is already gone is fine.
void undo(const std::string& line) {
  std::istringstream in(line);
  std::string kind;
  in >> kind;
  std::vector<std::string> rest;
  for (std::string w; in >> w;) rest.push_back(w);
  if (rest.empty()) return;
  if (kind == "netns") {
    runCommand({"ip", "netns", "del", rest[0]});
  } else if (kind == "link") {
    runCommand({"ip", "link", "del", rest[0]});
  } else if (kind == "forward") {
    std::vector<std::string> argv = {"iptables", "-w", "-D", "FORWARD"};
    argv.insert(argv.end(), rest.begin(), rest.end());
    runCommand(argv);
  }
}

}  // namespace

void PodNetwork::teardown() {
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) undo(*it);
  records_.clear();
  pods_.clear();
  if (!record_file_.empty()) std::remove(record_file_.c_str());
}

Status PodNetwork::teardownRecorded(const std::string& record_file) {
  std::ifstream in(record_file);
  if (!in) return okStatus();
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) undo(*it);
  std::remove(record_file.c_str());
  return okStatus();
}

}  // namespace mesh::istioctl
