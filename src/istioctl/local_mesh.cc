#include "istioctl/local_mesh.h"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "config/resource.h"
#include "core/config/yaml_proto.h"
#include "core/file_util.h"
#include "istioctl/pod_network.h"
#include "istioctl/v1/local_mesh.pb.h"
#include "security/certificate_authority.h"

namespace mesh::istioctl {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kStartTimeout{20000};
constexpr milliseconds kStopGrace{5000};

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// The number after "key": in a flat JSON text (the port files).
std::optional<uint64_t> jsonNumber(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\":";
  size_t pos = json.find(needle);
  if (pos == std::string::npos) return std::nullopt;
  pos += needle.size();
  uint64_t v = 0;
  bool any = false;
  while (pos < json.size() && json[pos] >= '0' && json[pos] <= '9') {
    v = v * 10 + static_cast<uint64_t>(json[pos++] - '0');
    any = true;
  }
  if (!any) return std::nullopt;
  return v;
}

std::string jsonString(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\":\"";
  size_t pos = json.find(needle);
  if (pos == std::string::npos) return "";
  pos += needle.size();
  return json.substr(pos, json.find('"', pos) - pos);
}

std::string jsonQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

// Where a child runs: in the caller's network namespace as the caller, or (--netns) in a pod's
// namespace (setns on its /run/netns path) and, for sidecars, as Istio's proxy uid/gid.
struct Placement {
  std::string netns_path;
  uid_t uid = 0;  // with gid: 0 keeps the caller's
  gid_t gid = 0;
};

// A child process started by `up`: its output goes to a log file; it gets SIGTERM if `up` dies.
class Child {
 public:
  Child(std::string name, std::vector<std::string> argv, const std::string& log_path,
        const Placement& where = {})
      : name_(std::move(name)), log_path_(log_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      if (!where.netns_path.empty()) {
        int ns = ::open(where.netns_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
          std::fprintf(stderr, "cannot enter %s: %s\n", where.netns_path.c_str(),
                       std::strerror(errno));
          ::_exit(126);
        }
      }
      if (where.uid != 0 &&
          (::setgroups(0, nullptr) != 0 || ::setresgid(where.gid, where.gid, where.gid) != 0 ||
           ::setresuid(where.uid, where.uid, where.uid) != 0)) {
        std::fprintf(stderr, "cannot become uid %u: %s\n", where.uid, std::strerror(errno));
        ::_exit(126);
      }
      // A credential change clears the parent-death signal: set it again.
      if (where.uid != 0) ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, 0);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
      ::_exit(127);
    }
    if (pid_ > 0) pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ~Child() {
    stop();
    if (pidfd_ >= 0) ::close(pidfd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }
  const std::string& logPath() const { return log_path_; }
  bool running() {
    if (exited_ || pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_status_ = status;
      return false;
    }
    return true;
  }
  // After running() turned false: the exit code, or -1 if killed by a signal.
  int exitCode() const { return WIFEXITED(exit_status_) ? WEXITSTATUS(exit_status_) : -1; }
  std::string exitText() const {
    if (WIFEXITED(exit_status_))
      return "exited with status " + std::to_string(WEXITSTATUS(exit_status_));
    if (WIFSIGNALED(exit_status_))
      return "killed by signal " + std::to_string(WTERMSIG(exit_status_));
    return "ended";
  }
  void signal(int sig) {
    if (running()) ::kill(pid_, sig);
  }
  // Waits until the process has exited or the deadline passes; true if it exited.
  bool waitUntil(Clock::time_point deadline) {
    while (running()) {
      pollfd p{pidfd_, POLLIN, 0};
      if (::poll(&p, pidfd_ >= 0 ? 1 : 0, std::min(remainingMs(deadline), 100)) < 0 &&
          errno != EINTR) {
        break;
      }
      if (Clock::now() >= deadline) return !running();
    }
    return true;
  }
  void stop() {
    if (!running()) return;
    ::kill(pid_, SIGTERM);
    if (!waitUntil(Clock::now() + kStopGrace)) {
      ::kill(pid_, SIGKILL);
      waitUntil(Clock::now() + kStopGrace);
    }
  }

 private:
  std::string name_;
  std::string log_path_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool exited_ = false;
  int exit_status_ = 0;
};

std::string lastLines(const std::string& path, size_t n) {
  std::string text = readFile(path);
  size_t pos = text.size();
  for (size_t i = 0; i <= n && pos != std::string::npos && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
  }
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

// Waits (inotify) until `path` satisfies `done`; fails when `child` exits, a stop signal arrives
// on `sigfd`, or the deadline passes.
bool waitForFile(const std::string& path, Child& child, int sigfd,
                 const std::function<bool(const std::string&)>& done, std::string* error) {
  const auto deadline = Clock::now() + kStartTimeout;
  int in = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in >= 0) {
    ::inotify_add_watch(in, fs::path(path).parent_path().c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
  }
  bool ok = false;
  for (;;) {
    if (done(readFile(path))) {
      ok = true;
      break;
    }
    if (!child.running()) {
      *error = child.name() + " " + child.exitText() + "; the end of its log (" + child.logPath() +
               "):\n" + lastLines(child.logPath(), 20);
      break;
    }
    if (Clock::now() >= deadline) {
      *error =
          "timed out waiting for " + child.name() + " (" + path + "); its log: " + child.logPath();
      break;
    }
    pollfd p[3] = {{in, POLLIN, 0}, {child.pidfd(), POLLIN, 0}, {sigfd, POLLIN, 0}};
    ::poll(p, 3, remainingMs(deadline));
    if (p[2].revents & POLLIN) {
      *error = "interrupted";
      break;
    }
    char buf[4096];
    while (in >= 0 && ::read(in, buf, sizeof(buf)) > 0) {
    }
  }
  if (in >= 0) ::close(in);
  return ok;
}

// Waits until something accepts connections on 127.0.0.1:port. The app has no readiness file;
// a refused connect is retried when the child's pidfd or the signal fd stays quiet for 20 ms.
bool waitForListener(uint16_t port, Child& child, int sigfd, std::string* error) {
  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    ::close(fd);
    if (rc == 0) return true;
    if (!child.running()) {
      *error = child.name() + " " + child.exitText() + "; the end of its log (" + child.logPath() +
               "):\n" + lastLines(child.logPath(), 20);
      return false;
    }
    if (Clock::now() >= deadline) {
      *error = child.name() + " does not listen on port " + std::to_string(port) +
               "; its log: " + child.logPath();
      return false;
    }
    pollfd p[2] = {{child.pidfd(), POLLIN, 0}, {sigfd, POLLIN, 0}};
    ::poll(p, 2, std::min(20, remainingMs(deadline)));
    if (p[1].revents & POLLIN) {
      *error = "interrupted";
      return false;
    }
  }
}

// True if a socket of `pid`'s network namespace listens on TCP `port` (/proc/PID/net/tcp and
// tcp6: state 0A is LISTEN).
bool listensInNamespaceOf(pid_t pid, uint16_t port) {
  char want[8];
  std::snprintf(want, sizeof(want), ":%04X", port);
  for (const char* file : {"/net/tcp", "/net/tcp6"}) {
    std::istringstream in(readFile("/proc/" + std::to_string(pid) + file));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      if (state == "0A" && local.ends_with(want)) return true;
    }
  }
  return false;
}

// Waits until the app in a pod's namespace (--netns) listens on `port`, checked each time the
// child's pidfd or the signal fd stays quiet for 20 ms (the namespace is not ours to connect in).
bool waitForListenerInNamespace(uint16_t port, Child& child, int sigfd, std::string* error) {
  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    if (child.running() && listensInNamespaceOf(child.pid(), port)) return true;
    if (!child.running()) {
      *error = child.name() + " " + child.exitText() + "; the end of its log (" + child.logPath() +
               "):\n" + lastLines(child.logPath(), 20);
      return false;
    }
    if (Clock::now() >= deadline) {
      *error = child.name() + " does not listen on port " + std::to_string(port) +
               " in its namespace; its log: " + child.logPath();
      return false;
    }
    pollfd p[2] = {{child.pidfd(), POLLIN, 0}, {sigfd, POLLIN, 0}};
    ::poll(p, 2, std::min(20, remainingMs(deadline)));
    if (p[1].revents & POLLIN) {
      *error = "interrupted";
      return false;
    }
  }
}

// Ports the OS picks on 127.0.0.1, held (bound, not listening) until release() so that nothing
// else is given them meanwhile. With `shared`, the socket has SO_REUSEPORT: istio-proxy (which
// binds with SO_REUSEPORT too) can listen on the port while it is still held.
class PortPool {
 public:
  explicit PortPool(bool shared) : shared_(shared) {}
  ~PortPool() { release(); }
  std::optional<uint16_t> take() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0 && shared_) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      if (fd >= 0) ::close(fd);
      return std::nullopt;
    }
    socklen_t len = sizeof(sa);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    fds_.push_back(fd);
    return ntohs(sa.sin_port);
  }
  void release() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }

 private:
  bool shared_;
  std::vector<int> fds_;
};

struct Pod {
  const istioctl::v1::Workload* workload = nullptr;
  std::string name;  // "<workload>-<replica>"
  std::map<std::string, std::string> labels;
  std::map<std::string, uint16_t> app_ports;      // by port name
  std::map<std::string, uint16_t> inbound_ports;  // by port name: the endpoint port
  std::map<uint32_t, uint16_t> outbound;          // service port -> sidecar listener port
  uint16_t admin = 0, prometheus = 0;
  std::string ip = "127.0.0.1";  // --netns: the pod's own address
  std::string netns;             // --netns: its namespace's name
  std::string cert_dir;          // --netns: its workload certificates
  std::unique_ptr<Child> proxy, app;
};

// --netns: Istio's proxy uid and gid (the capture rules exempt them).
constexpr uid_t kProxyUid = 1337;
// The sidecar's admin port in its pod (not captured: `capture install -d`).
constexpr uint16_t kAdminPort = 15000, kPrometheusPort = 15090, kHealthPort = 15021;
// Label on mesh workloads' endpoints: auto mTLS sends them mTLS (Istio's sidecar injector sets it).
constexpr const char* kTlsModeLabel = "security.istio.io/tlsMode";

std::string protocolOf(const istioctl::v1::Port& p) {
  if (!p.protocol().empty()) return p.protocol();
  for (const char* pre : {"http2", "grpc", "https", "tls", "tcp", "http"}) {
    if (p.name().rfind(pre, 0) == 0) {
      std::string up = pre;
      for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return up;
    }
  }
  return "HTTP";
}

Status loadMesh(const std::string& path, istioctl::v1::LocalMesh* mesh) {
  config::LoadOptions o;
  o.file = path;
  config::LoadResult r = config::loadYamlFile(path, mesh, o);
  if (!r.ok()) return r.errors.toStatus();
  if (mesh->namespace_().empty()) mesh->set_namespace_("default");
  ValidationErrors errors;
  auto line = [&](const std::string& field) { return r.source_map.lineOf(field); };
  std::set<std::string> names;
  for (int i = 0; i < mesh->workloads_size(); ++i) {
    auto* w = mesh->mutable_workloads(i);
    std::string at = "workloads[" + std::to_string(i) + "]";
    if (w->name().empty()) errors.add(path, line(at), at + ".name", "required");
    if (!names.insert(w->name()).second) {
      errors.add(path, line(at + ".name"), at + ".name", "duplicate workload '" + w->name() + "'");
    }
    if (w->service().empty() && !w->gateway()) {
      errors.add(path, line(at), at + ".service", "required");
    }
    if (w->command_size() == 0 && !w->gateway()) {
      errors.add(path, line(at), at + ".command", "required");
    }
    if (w->gateway() && w->service().empty()) w->set_service(w->name());
    if (w->replicas() == 0) w->set_replicas(1);
    if (w->replicas() > 20) {
      errors.add(path, line(at + ".replicas"), at + ".replicas", "at most 20 on one machine");
    }
    if (!w->labels().count("app")) (*w->mutable_labels())["app"] = w->service();
    for (int j = 0; j < w->ports_size(); ++j) {
      std::string pat = at + ".ports[" + std::to_string(j) + "]";
      if (w->ports(j).name().empty()) errors.add(path, line(pat), pat + ".name", "required");
      if (w->ports(j).number() == 0 || w->ports(j).number() > 65535) {
        errors.add(path, line(pat), pat + ".number", "must be 1..65535");
      }
    }
  }
  if (mesh->workloads_size() == 0) errors.add(path, 1, "workloads", "at least one is required");
  if (!errors.empty()) return errors.toStatus();
  return okStatus();
}

// The registry the mesh's workloads make: a ServiceEntry per service, a WorkloadEntry per pod.
// `vips` (--netns): each service's virtual IP, written as its ServiceEntry's address.
std::string registryYaml(const istioctl::v1::LocalMesh& mesh, const std::vector<Pod>& pods,
                         const std::map<std::string, std::string>& vips, bool netns) {
  std::map<std::string, std::map<uint32_t, istioctl::v1::Port>> services;
  for (const auto& w : mesh.workloads()) {
    if (w.gateway()) continue;
    for (const auto& p : w.ports()) services[w.service()].emplace(p.number(), p);
  }
  std::string out = "# Generated by istioctl local up: the mesh's services and pods.\n";
  const std::string& ns = mesh.namespace_();
  for (const auto& [svc, ports] : services) {
    out += "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: " + svc +
           ", namespace: " + ns + "}\nspec:\n  hosts: [" + svc + "." + ns +
           ".svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n";
    if (auto vip = vips.find(svc); vip != vips.end()) out += "  addresses: [" + vip->second + "]\n";
    out += "  ports:\n";
    for (const auto& [num, p] : ports) {
      out += "  - {number: " + std::to_string(num) + ", name: " + p.name() +
             ", protocol: " + protocolOf(p) + "}\n";
    }
    out += "  workloadSelector: {labels: {app: " + svc + "}}\n";
  }
  for (const Pod& pod : pods) {
    if (pod.workload->gateway()) continue;
    if (pod.labels.at("app") != pod.workload->service()) continue;  // not selected: no endpoint
    out += "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: " +
           pod.name + ", namespace: " + ns + "}\nspec:\n  address: " + pod.ip + "\n  ports: {";
    bool first = true;
    for (const auto& [name, port] : pod.inbound_ports) {
      out += std::string(first ? "" : ", ") + name + ": " + std::to_string(port);
      first = false;
    }
    // Telemetry names the workload (reviews-v2), not the pod (reviews-v2-0), as in Kubernetes.
    out += "}\n  labels: {\"service.istio.io/workload-name\": " + jsonQuote(pod.workload->name());
    first = false;
    for (const auto& [k, v] : pod.labels) {
      out += std::string(first ? "" : ", ") + k + ": " + jsonQuote(v);
      first = false;
    }
    // Its sidecar has a workload certificate: clients use mTLS (auto mTLS).
    if (netns) out += std::string(", \"") + kTlsModeLabel + "\": istio";
    out += "}\n";
    if (!pod.workload->service_account().empty()) {
      out += "  serviceAccount: " + pod.workload->service_account() + "\n";
    }
  }
  return out;
}

// Replaces the command's placeholders for one pod; an unknown one is an error.
// {service.NAME:PORT} is where the app calls a service: its VIP (--netns, captured) or the
// sidecar's outbound listener for the port (on loopback).
StatusOr<std::vector<std::string>> expandCommand(const Pod& pod, const std::string& ns,
                                                 const std::string& bin_dir,
                                                 const std::map<std::string, std::string>& vips,
                                                 bool netns) {
  std::vector<std::string> out;
  for (const std::string& arg : pod.workload->command()) {
    std::string s;
    size_t pos = 0;
    while (pos < arg.size()) {
      size_t open = arg.find('{', pos);
      if (open == std::string::npos) {
        s += arg.substr(pos);
        break;
      }
      size_t close = arg.find('}', open);
      if (close == std::string::npos) return invalidArgument("unclosed '{' in '" + arg + "'");
      s += arg.substr(pos, open - pos);
      std::string key = arg.substr(open + 1, close - open - 1);
      std::optional<std::string> value;
      if (key == "bin") value = bin_dir;
      if (key == "pod") value = pod.name;
      if (key == "namespace") value = ns;
      if (key.rfind("port.", 0) == 0) {
        auto it = pod.app_ports.find(key.substr(5));
        if (it != pod.app_ports.end()) value = std::to_string(it->second);
      }
      if (key.rfind("label.", 0) == 0) {
        auto it = pod.labels.find(key.substr(6));
        if (it != pod.labels.end()) value = it->second;
      }
      if (key.rfind("outbound.", 0) == 0 && !netns) {
        uint32_t port = static_cast<uint32_t>(std::strtoul(key.c_str() + 9, nullptr, 10));
        auto it = pod.outbound.find(port);
        if (it != pod.outbound.end()) value = "127.0.0.1:" + std::to_string(it->second);
      }
      if (key.rfind("service.", 0) == 0) {
        size_t colon = key.rfind(':');
        std::string svc = key.substr(8, colon == std::string::npos ? 0 : colon - 8);
        uint32_t port =
            colon == std::string::npos
                ? 0
                : static_cast<uint32_t>(std::strtoul(key.c_str() + colon + 1, nullptr, 10));
        if (netns) {
          auto vip = vips.find(svc);
          if (vip != vips.end() && port != 0) value = vip->second + ":" + std::to_string(port);
        } else {
          auto it = pod.outbound.find(port);
          if (it != pod.outbound.end()) value = "127.0.0.1:" + std::to_string(it->second);
        }
      }
      if (!value) {
        return invalidArgument("workload " + pod.workload->name() + ": unknown placeholder {" +
                               key + "} (or no such port / service / outbound listener" +
                               (netns ? "; with --netns use {service.NAME:PORT}" : "") + ")");
      }
      s += *value;
      pos = close + 1;
    }
    out.push_back(s);
  }
  if (!out.empty() && out[0].find('/') == std::string::npos) {
    return invalidArgument("workload " + pod.workload->name() +
                           ": command[0] must be a path (use {bin}/name for the mesh's binaries)");
  }
  return out;
}

std::string selfDir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

// Every Istio resource of `file`, each as (file name in the live directory, its text).
StatusOr<std::vector<std::pair<std::string, std::string>>> splitResources(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return notFound("cannot read " + file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  auto docs = config::splitYamlDocuments(text, file);
  if (!docs.ok()) return docs.status();
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& d : *docs) {
    config::LoadedConfig loaded = config::loadConfigStream(d.text, file);
    if (!loaded.errors.empty()) {
      // Report with the document's real line numbers.
      config::LoadedConfig again = config::loadConfigStream(text, file);
      return invalidArgument(again.errors.empty() ? loaded.errors.toString()
                                                  : again.errors.toString());
    }
    for (const auto& r : loaded.resources) {
      std::string kind(config::kindName(r.kind));
      for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string body = d.text;
      if (body.rfind("---", 0) == 0) body = body.substr(body.find('\n') + 1);
      out.emplace_back(kind + "-" + r.namespace_name + "-" + r.name + ".yaml", body);
    }
  }
  return out;
}

int applyFiles(const std::vector<std::string>& files, const std::string& config_dir, bool remove,
               std::ostream& out, std::ostream& err) {
  int rc = 0;
  for (const std::string& f : files) {
    auto resources = splitResources(f);
    if (!resources.ok()) {
      err << "error: " << resources.status().message() << "\n";
      rc = 1;
      continue;
    }
    for (const auto& [name, text] : *resources) {
      std::string path = config_dir + "/" + name;
      std::string what = name.substr(0, name.size() - 5);
      if (remove) {
        if (std::remove(path.c_str()) == 0) {
          out << what << " deleted\n";
        } else {
          err << "error: " << what << " not found\n";
          rc = 1;
        }
      } else if (Status st = writeFileAtomic(path, "# from " + f + "\n" + text); st.ok()) {
        out << what << " applied\n";
      } else {
        err << "error: " << st.message() << "\n";
        rc = 1;
      }
    }
  }
  return rc;
}

}  // namespace

std::string defaultLocalStateDir() { return "/tmp/istio-local-" + std::to_string(::getuid()); }

int runLocalApply(const std::vector<std::string>& files, const std::string& state_dir, bool remove,
                  std::ostream& out, std::ostream& err) {
  std::string live = readFile(state_dir + "/config.path");
  if (live.empty()) {
    err << "error: no local mesh is running with state in " << state_dir
        << " (start one with `istioctl local up DIR`)\n";
    return 1;
  }
  return applyFiles(files, live, remove, out, err);
}

int runLocalDown(const std::string& state_dir, std::ostream& out, std::ostream& err) {
  std::string text = readFile(state_dir + "/up.pid");
  pid_t pid = static_cast<pid_t>(std::atoi(text.c_str()));
  if (pid <= 0) {
    err << "error: no local mesh is running with state in " << state_dir << "\n";
    return 1;
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  // A --netns run that was killed leaves its network behind: what it recorded is removed here.
  const std::string netns_record = state_dir + "/netns.record";
  if (pidfd < 0 || ::kill(pid, SIGTERM) != 0) {
    err << "error: the local mesh (pid " << pid << ") is not running\n";
    std::remove((state_dir + "/up.pid").c_str());
    if (pidfd >= 0) ::close(pidfd);
    if (fs::exists(netns_record)) {
      (void)PodNetwork::teardownRecorded(netns_record);
      err << "removed the network namespaces and bridge it left behind\n";
    }
    return 1;
  }
  pollfd p{pidfd, POLLIN, 0};
  int rc = ::poll(&p, 1, 60000);
  ::close(pidfd);
  if (rc != 1) {
    err << "error: the local mesh (pid " << pid << ") did not stop within 60 s\n";
    return 1;
  }
  (void)PodNetwork::teardownRecorded(netns_record);  // nothing left after a clean stop
  out << "local mesh stopped\n";
  return 0;
}

int runLocalUp(const LocalUpOptions& in, std::ostream& out, std::ostream& err) {
  LocalUpOptions opts = in;
  if (opts.state_dir.empty()) opts.state_dir = defaultLocalStateDir();
  if (opts.bin_dir.empty()) opts.bin_dir = selfDir();
  const std::string mesh_file = opts.dir + "/mesh.yaml";
  istioctl::v1::LocalMesh mesh;
  if (Status st = loadMesh(mesh_file, &mesh); !st.ok()) {
    err << "error: " << st.message() << "\n";
    return 1;
  }
  if (opts.netns && ::geteuid() != 0) {
    err << "error: --netns needs root (network namespaces, a bridge and iptables rules); run as "
           "root or without --netns\n";
    return 1;
  }
  const std::string ns = mesh.namespace_();
  const std::string state = opts.state_dir;

  // One mesh per state directory.
  std::error_code ec;
  fs::create_directories(state, ec);
  if (ec) {
    err << "error: cannot create " << state << ": " << ec.message() << "\n";
    return 1;
  }
  pid_t other = static_cast<pid_t>(std::atoi(readFile(state + "/up.pid").c_str()));
  if (other > 0 && ::kill(other, 0) == 0) {
    err << "error: a local mesh (pid " << other << ") already runs with state in " << state
        << "; stop it with `istioctl local down`\n";
    return 1;
  }
  for (const char* sub : {"registry", "proxies", "logs", "config", "certs"}) {
    fs::remove_all(state + "/" + sub, ec);
    fs::create_directories(state + "/" + sub, ec);
  }
  std::remove((state + "/state.json").c_str());
  // Every file `up` writes is needed by what it starts or by `down`: a failed write stops it.
  auto write = [&err](const std::string& path, std::string_view content) {
    Status st = writeFileAtomic(path, content);
    if (!st.ok()) err << "error: " << st.message() << "\n";
    return st.ok();
  };
  if (!write(state + "/up.pid", std::to_string(::getpid()) + "\n")) return 1;

  // Stop signals are read from a signalfd, during start-up and while supervising.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  int sigfd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);

  std::vector<Pod> pods;
  std::unique_ptr<Child> pilot;
  std::unique_ptr<PodNetwork> network;  // --netns
  const std::string netns_record = state + "/netns.record";
  auto cleanup = [&](int rc) {
    // Apps first (their sidecars still route their last calls), then sidecars, then pilot; then
    // the pods' network (namespaces, with their rules and veth ends; the bridge).
    for (auto& pod : pods) pod.app.reset();
    for (auto& pod : pods) pod.proxy.reset();
    pilot.reset();
    network.reset();
    std::remove((state + "/state.json").c_str());
    std::remove((state + "/up.pid").c_str());
    std::remove((state + "/config.path").c_str());
    if (sigfd >= 0) ::close(sigfd);
    ::sigprocmask(SIG_UNBLOCK, &stop_signals, nullptr);
    return rc;
  };

  // Live Istio config: the given directory, or STATE/config seeded from DIR/<configDir>.
  std::string live = opts.config_dir;
  if (live.empty()) {
    live = fs::absolute(state + "/config").string();
    std::vector<std::string> seed;
    for (const std::string& f : mesh.config()) seed.push_back((fs::path(opts.dir) / f).string());
    std::ostringstream applied;
    if (applyFiles(seed, live, false, applied, err) != 0) return cleanup(1);
  }
  if (!write(state + "/config.path", fs::absolute(live).string())) return cleanup(1);

  // --netns: a bridge and namespaces (what a run killed before its cleanup left goes first).
  if (opts.netns) {
    // The sidecars run as uid 1337: the state directory (config, certificates, port files) and
    // the binaries must be reachable by anyone.
    for (const std::string& dir : {fs::absolute(state).string(), opts.bin_dir}) {
      for (fs::path p = dir; !p.empty() && p != p.root_path(); p = p.parent_path()) {
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
          err << "error: --netns: the sidecars run as uid " << kProxyUid << " and cannot reach "
              << p.string() << " (mode " << std::oct << (st.st_mode & 07777) << std::dec
              << "): make it searchable (chmod o+x) or use another --state-dir\n";
          return cleanup(1);
        }
      }
    }
    (void)PodNetwork::teardownRecorded(netns_record);
    auto net = PodNetwork::create(std::to_string(::getpid()), netns_record);
    if (!net.ok()) {
      err << "error: " << net.status().message() << "\n";
      return cleanup(1);
    }
    network = std::move(*net);
  }

  // Ports: for each pod and port, one for the app and one for its sidecar's inbound listener.
  // The sidecars' stay held for the mesh's life; the apps' until just before the apps start.
  PortPool app_ports(false);
  PortPool inbound_ports(true);
  for (const auto& w : mesh.workloads()) {
    for (uint32_t r = 0; r < w.replicas(); ++r) {
      Pod pod;
      pod.workload = &w;
      pod.name = w.name() + "-" + std::to_string(r);
      pod.labels.insert(w.labels().begin(), w.labels().end());
      if (network) {
        // Its own namespace: the app listens on the service port, as in a Kubernetes pod.
        auto ip = network->addPod(pod.name);
        if (!ip.ok()) {
          err << "error: " << ip.status().message() << "\n";
          return cleanup(1);
        }
        pod.ip = *ip;
        pod.netns = network->namespaceName(pod.name);
      }
      for (const auto& p : w.ports()) {
        if (w.gateway()) break;  // its listeners bind ports the OS picks, read once ready
        if (network) {
          pod.app_ports[p.name()] = static_cast<uint16_t>(p.number());
          pod.inbound_ports[p.name()] = static_cast<uint16_t>(p.number());
          continue;
        }
        auto app = app_ports.take(), inbound = inbound_ports.take();
        if (!app || !inbound) {
          err << "error: cannot get a free port on 127.0.0.1\n";
          return cleanup(1);
        }
        pod.app_ports[p.name()] = *app;
        pod.inbound_ports[p.name()] = *inbound;
      }
      pods.push_back(std::move(pod));
    }
  }
  // --netns: a VIP per service, and the workload certificates: a root made for this run and a
  // SPIFFE certificate per pod (Istio's file names), readable by the proxy's uid only.
  std::map<std::string, std::string> vips;
  if (network) {
    for (const auto& w : mesh.workloads()) {
      if (w.gateway() || vips.count(w.service())) continue;
      auto vip = network->allocateVip();
      if (!vip.ok()) {
        err << "error: " << vip.status().message() << "\n";
        return cleanup(1);
      }
      vips[w.service()] = *vip;
    }
    auto ca = security::CertificateAuthority::create("istioctl local root " + state);
    if (!ca.ok()) {
      err << "error: " << ca.status().message() << "\n";
      return cleanup(1);
    }
    long serial = 2;
    for (Pod& pod : pods) {
      const std::string sa =
          pod.workload->service_account().empty() ? "default" : pod.workload->service_account();
      auto issued = (*ca)->issue({security::spiffeId("cluster.local", ns, sa)}, serial++);
      if (!issued.ok()) {
        err << "error: " << issued.status().message() << "\n";
        return cleanup(1);
      }
      pod.cert_dir = fs::absolute(state + "/certs/" + pod.name).string();
      fs::create_directories(pod.cert_dir, ec);
      ::chmod(pod.cert_dir.c_str(), 0700);  // the key is never readable by others, even briefly
      if (!write(pod.cert_dir + "/cert-chain.pem", issued->cert_pem) ||
          !write(pod.cert_dir + "/key.pem", issued->key_pem) ||
          !write(pod.cert_dir + "/root-cert.pem", (*ca)->certPem())) {
        return cleanup(1);
      }
      for (const char* f : {"", "/cert-chain.pem", "/key.pem", "/root-cert.pem"}) {
        if (::chown((pod.cert_dir + f).c_str(), kProxyUid, kProxyUid) != 0) {
          err << "error: chown " << pod.cert_dir << f << ": " << std::strerror(errno) << "\n";
          return cleanup(1);
        }
      }
      ::chmod((pod.cert_dir + "/key.pem").c_str(), 0600);
    }
  }
  if (!write(state + "/registry/mesh.yaml", registryYaml(mesh, pods, vips, network != nullptr))) {
    return cleanup(1);
  }

  // pilot.
  const std::string pilot_ports = state + "/pilot.ports";
  std::remove(pilot_ports.c_str());
  pilot = std::make_unique<Child>(
      "pilot",
      std::vector<std::string>{opts.bin_dir + "/pilot", "--config-dir", live, "--config-dir",
                               state + "/registry", "--grpc-address",
                               (network ? network->gatewayIp() : "127.0.0.1") + ":0",
                               "--http-address", "127.0.0.1:0", "--port-file", pilot_ports},
      state + "/logs/pilot.log");
  std::string error;
  if (!waitForFile(
          pilot_ports, *pilot, sigfd, [](const std::string& c) { return !c.empty(); }, &error)) {
    err << "error: pilot: " << error << "\n";
    return cleanup(1);
  }
  std::string pilot_json = readFile(pilot_ports);
  const uint16_t grpc = static_cast<uint16_t>(jsonNumber(pilot_json, "grpc").value_or(0));
  const uint16_t http = static_cast<uint16_t>(jsonNumber(pilot_json, "http").value_or(0));

  // Sidecars, all at once; then wait for each to apply pilot's first config.
  std::set<uint32_t> service_ports;
  for (const auto& w : mesh.workloads()) {
    for (const auto& p : w.ports()) service_ports.insert(p.number());
  }
  // --netns: the sidecars run as the proxy uid, which writes its port file here.
  if (network && ::chown((state + "/proxies").c_str(), kProxyUid, kProxyUid) != 0) {
    err << "error: chown " << state << "/proxies: " << std::strerror(errno) << "\n";
    return cleanup(1);
  }
  const std::string pilot_grpc =
      (network ? network->gatewayIp() : "127.0.0.1") + ":" + std::to_string(grpc);
  for (Pod& pod : pods) {
    const std::string base = state + "/proxies/" + pod.name;
    // --netns: admin, metrics and health on the pod's IP (not captured), reachable from the root
    // namespace as a Kubernetes pod's are from the node.
    const std::string admin_yaml =
        network ? "admin: {address: \"" + pod.ip + ":" + std::to_string(kAdminPort) +
                      "\", prometheusAddress: \"" + pod.ip + ":" + std::to_string(kPrometheusPort) +
                      "\", healthAddress: \"" + pod.ip + ":" + std::to_string(kHealthPort) + "\"}\n"
                : "admin: {address: \"127.0.0.1:0\", prometheusAddress: \"127.0.0.1:0\", "
                  "healthAddress: \"127.0.0.1:0\"}\n";
    if (!write(base + ".yaml", admin_yaml)) return cleanup(1);
    std::vector<std::string> argv = {opts.bin_dir + "/istio-proxy",
                                     "--discovery",
                                     pilot_grpc,
                                     "--config",
                                     base + ".yaml",
                                     "--node-id",
                                     std::string(pod.workload->gateway() ? "router" : "sidecar") +
                                         "~" + pod.ip + "~" + pod.name + "." + ns + "~" + ns +
                                         ".svc.cluster.local",
                                     "--namespace",
                                     ns,
                                     "--workload",
                                     pod.workload->name(),
                                     "--ip",
                                     pod.ip,
                                     "--port-file",
                                     base + ".ports",
                                     "--concurrency",
                                     "1"};
    if (!network) {
      argv.insert(argv.end(), {"--outbound-bind", "127.0.0.1:0"});
    } else if (pod.workload->gateway()) {
      // Not captured: the gateway's servers listen on their ports on every address of its pod.
      argv.insert(argv.end(), {"--outbound-bind", "0.0.0.0", "--cert-dir", pod.cert_dir});
    } else {
      argv.insert(argv.end(), {"--interception-mode", "REDIRECT", "--cert-dir", pod.cert_dir});
    }
    if (!pod.workload->service_account().empty()) {
      argv.insert(argv.end(), {"--service-account", pod.workload->service_account()});
    }
    for (const auto& [k, v] : pod.labels) argv.insert(argv.end(), {"--label", k + "=" + v});
    for (const auto& [name, port] : pod.inbound_ports) {
      if (network) break;  // the app listens on the service port itself
      argv.insert(argv.end(),
                  {"--app-port", std::to_string(port) + "=" + std::to_string(pod.app_ports[name])});
    }
    Placement where;
    if (network) where = {network->namespacePath(pod.name), kProxyUid, kProxyUid};
    pod.proxy = std::make_unique<Child>(pod.name + " sidecar", argv,
                                        state + "/logs/" + pod.name + ".proxy.log", where);
  }
  for (Pod& pod : pods) {
    const std::string port_file = state + "/proxies/" + pod.name + ".ports";
    if (!waitForFile(
            port_file, *pod.proxy, sigfd,
            [](const std::string& c) { return !jsonString(c, "discovery_version").empty(); },
            &error)) {
      err << "error: " << error << "\n";
      return cleanup(1);
    }
    std::string json = readFile(port_file);
    pod.admin = static_cast<uint16_t>(jsonNumber(json, "admin").value_or(0));
    pod.prometheus = static_cast<uint16_t>(jsonNumber(json, "prometheus").value_or(0));
    for (uint32_t sp : service_ports) {
      auto port = jsonNumber(json, "0.0.0.0_" + std::to_string(sp));
      if (port) pod.outbound[sp] = static_cast<uint16_t>(*port);
    }
  }

  // --netns: Istio's capture rules in each sidecar's pod (as its init container would), once
  // the sidecar is ready; the admin port is left alone (metrics and health are by default).
  for (Pod& pod : pods) {
    if (!network || pod.workload->gateway()) continue;
    const std::string uid = std::to_string(kProxyUid);
    Child capture(pod.name + " capture install",
                  {opts.bin_dir + "/istio-proxy", "capture", "install", "-u", uid, "-g", uid, "-d",
                   std::to_string(kAdminPort)},
                  state + "/logs/" + pod.name + ".capture.log",
                  {network->namespacePath(pod.name), 0, 0});
    if (!capture.waitUntil(Clock::now() + kStartTimeout) || capture.exitCode() != 0) {
      err << "error: " << capture.name() << " " << capture.exitText() << ": "
          << lastLines(capture.logPath(), 20) << "\n";
      return cleanup(1);
    }
  }

  // Apps, once their sidecars are ready.
  app_ports.release();
  for (Pod& pod : pods) {
    if (pod.workload->gateway()) continue;
    auto argv = expandCommand(pod, ns, opts.bin_dir, vips, network != nullptr);
    if (!argv.ok()) {
      err << "error: " << argv.status().message() << "\n";
      return cleanup(1);
    }
    Placement where;
    if (network) where.netns_path = network->namespacePath(pod.name);
    pod.app = std::make_unique<Child>(pod.name, *argv, state + "/logs/" + pod.name + ".log", where);
  }
  for (Pod& pod : pods) {
    for (const auto& [name, port] : pod.app_ports) {
      if (network ? !waitForListenerInNamespace(port, *pod.app, sigfd, &error)
                  : !waitForListener(port, *pod.app, sigfd, &error)) {
        err << "error: " << error << "\n";
        return cleanup(1);
      }
    }
  }

  // Entry URL: the entry workload's sidecar (its first pod).
  std::string entry;
  const auto& e = mesh.entry();
  for (const Pod& pod : pods) {
    if (e.workload().empty() || pod.workload->name() != e.workload() || !entry.empty()) continue;
    std::string port_name = e.port().empty() && pod.workload->ports_size() > 0
                                ? pod.workload->ports(0).name()
                                : e.port();
    if (pod.workload->gateway()) {
      for (const auto& p : pod.workload->ports()) {
        auto out_port = pod.outbound.find(p.number());
        if (p.name() == port_name && out_port != pod.outbound.end()) {
          entry = "http://" + (network ? pod.ip : "127.0.0.1") + ":" +
                  std::to_string(out_port->second) + e.path();
        }
      }
      continue;
    }
    auto it = pod.inbound_ports.find(port_name);
    if (it != pod.inbound_ports.end()) {
      entry = "http://" + pod.ip + ":" + std::to_string(it->second) + e.path();
    }
  }

  // state.json: what tests and scripts read.
  std::string json = "{\"pilot\":{\"grpc\":" + std::to_string(grpc) +
                     ",\"http\":" + std::to_string(http) + "},\"entry\":" + jsonQuote(entry) +
                     ",\"config_dir\":" + jsonQuote(fs::absolute(live).string()) +
                     ",\"netns\":" + (network ? "true" : "false") +
                     ",\"subnet\":" + jsonQuote(network ? network->subnet() : "") +
                     ",\"bridge\":" + jsonQuote(network ? network->bridge() : "") + ",\"pods\":[";
  for (size_t i = 0; i < pods.size(); ++i) {
    const Pod& pod = pods[i];
    json += std::string(i ? "," : "") + "{\"name\":" + jsonQuote(pod.name) +
            ",\"workload\":" + jsonQuote(pod.workload->name()) +
            ",\"service\":" + jsonQuote(pod.workload->service()) + ",\"ip\":" + jsonQuote(pod.ip) +
            ",\"netns\":" + jsonQuote(pod.netns) + ",\"admin\":" + std::to_string(pod.admin) +
            ",\"prometheus\":" + std::to_string(pod.prometheus) +
            ",\"proxy_pid\":" + std::to_string(pod.proxy->pid()) +
            ",\"app_pid\":" + std::to_string(pod.app ? pod.app->pid() : 0) +
            ",\"gateway\":" + (pod.workload->gateway() ? "true" : "false") + ",\"inbound\":{";
    bool first = true;
    for (const auto& [name, port] : pod.inbound_ports) {
      json += std::string(first ? "" : ",") + jsonQuote(name) + ":" + std::to_string(port);
      first = false;
    }
    json += "},\"outbound\":{";
    first = true;
    for (const auto& [sp, port] : pod.outbound) {
      json +=
          std::string(first ? "" : ",") + "\"" + std::to_string(sp) + "\":" + std::to_string(port);
      first = false;
    }
    json += "}}";
  }
  json += "],\"pilot_pid\":" + std::to_string(pilot->pid()) + "}\n";
  if (!write(state + "/state.json", json)) return cleanup(1);

  const std::string pilot_http = "127.0.0.1:" + std::to_string(http);
  out << "Local mesh up: " << pods.size() << " pods, each with its istio-proxy; pilot on "
      << pilot_http << ".\n";
  if (network) {
    out << "Each pod in its own network namespace on " << network->subnet() << " (bridge "
        << network->bridge() << "), its traffic captured by its sidecar; mTLS between sidecars.\n";
  }
  out << "\n";
  if (!entry.empty()) out << "  Open:      " << entry << "\n";
  out << "  pilot:     http://" << pilot_http << "/debug/syncz  (metrics: /metrics)\n";
  out << "  config:    " << fs::absolute(live).string()
      << "  (live: edit, or istioctl local apply -f FILE)\n";
  out << "  logs:      " << state << "/logs\n";
  out << "  sidecars:\n";
  for (const Pod& pod : pods) {
    out << "    " << pod.name << std::string(pod.name.size() < 18 ? 18 - pod.name.size() : 1, ' ')
        << "admin http://" << pod.ip << ":" << pod.admin << "   metrics http://" << pod.ip << ":"
        << pod.prometheus << "/stats/prometheus\n";
  }
  out << "\nTry:\n"
      << "  istioctl proxy-status --pilot " << pilot_http << "\n"
      << "  istioctl proxy-config routes " << pods[0].name << " --pilot " << pilot_http << "\n"
      << "  istioctl local apply -f FILE        # a VirtualService, DestinationRule, ...\n"
      << "\nCtrl-C (or `istioctl local down`) stops everything.\n";
  out.flush();

  // Supervise: until a stop signal. A child that exits is reported, once.
  std::set<const Child*> reported;
  for (;;) {
    std::vector<pollfd> fds = {{sigfd, POLLIN, 0}};
    std::vector<Child*> watched;
    auto watch = [&](Child* c) {
      if (c != nullptr && !reported.count(c) && c->pidfd() >= 0) {
        fds.push_back({c->pidfd(), POLLIN, 0});
        watched.push_back(c);
      }
    };
    watch(pilot.get());
    for (Pod& pod : pods) {
      watch(pod.proxy.get());
      watch(pod.app.get());
    }
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si;
      (void)::read(sigfd, &si, sizeof(si));
      out << "\nstopping (signal " << si.ssi_signo << ") ...\n";
      out.flush();
      break;
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if ((fds[i].revents & POLLIN) && !watched[i - 1]->running()) {
        err << "warning: " << watched[i - 1]->name() << " " << watched[i - 1]->exitText()
            << "; see " << watched[i - 1]->logPath() << "\n";
        reported.insert(watched[i - 1]);
      }
    }
  }
  int rc = cleanup(0);
  out << "local mesh stopped.\n";
  return rc;
}

}  // namespace mesh::istioctl
