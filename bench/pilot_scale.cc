// pilot at scale (a benchmark, not a test): the real `pilot` binary on a generated config
// directory of N Kubernetes services x M endpoints plus a few VirtualServices and
// DestinationRules, and P simulated proxies on gRPC's callback client API (no thread per
// stream), each with its own connection and node, ACKing every response of
// both types (Bootstrap, ClusterLoadAssignment). Measures the initial
// connect-to-all-ACKed time and, for a routing change and an endpoint-only change written by this
// process (atomic rename into the directory), the time until each proxy received and ACKed the
// new version; pilot's RSS and CPU seconds around it. Prints a Markdown table.
//   pilot_scale --pilot build/bin/pilot [--services 1000] [--endpoints 10] [--proxies 1000]
//               [--namespaces 10] [--debounce-ms 100] [--rounds 3]
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "discovery/v1/discovery.grpc.pb.h"
#include "test/integration/harness.h"

namespace {

namespace dv1 = ::mesh::discovery::v1;
using mesh::integration::Clock;
using mesh::integration::milliseconds;

constexpr char kBootstrapType[] = "type.mesh/proxy.v1.Bootstrap";
constexpr char kAssignmentType[] = "type.mesh/proxy.v1.ClusterLoadAssignment";

struct Options {
  std::string pilot;
  int services = 1000;
  int endpoints = 10;
  int proxies = 1000;
  int namespaces = 10;
  int debounce_ms = 100;
  int rounds = 3;
  int timeout_s = 120;
  std::string pilot_log_level = "warning";
  std::string keep_log;  // copy pilot's log here at the end
  bool sidecar = false;  // a Sidecar per namespace: proxies see their own namespace only
};

std::string ns(int i, const Options& o) { return "ns-" + std::to_string(i % o.namespaces); }
std::string svc(int i) { return "svc-" + std::to_string(i); }
// Endpoint k of service i; proxy i has the address of endpoint 0 of service i.
std::string endpointIp(int service, int k) {
  return "10." + std::to_string(k) + "." + std::to_string(service / 256) + "." +
         std::to_string(service % 256);
}

std::string serviceYaml(int i, const Options& o) {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + svc(i) +
         "\n  namespace: " + ns(i, o) +
         "\nspec:\n  ports:\n  - {port: 8080, name: http, targetPort: 8080}\n" +
         "  selector: {app: " + svc(i) + "}\n---\n";
}

std::string endpointsYaml(int i, const Options& o, int generation) {
  std::string y = "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: " + svc(i) +
                  "\n  namespace: " + ns(i, o) + "\nsubsets:\n- addresses:\n";
  for (int k = 0; k < o.endpoints; ++k) {
    // A new generation moves the last endpoint: an endpoint-only change.
    int kk = (k == o.endpoints - 1) ? k + generation * o.endpoints : k;
    y += "  - ip: " + endpointIp(i, kk % 250) + "\n";
  }
  y += "  ports:\n  - {name: http, port: 8080, protocol: TCP}\n---\n";
  return y;
}

constexpr int kRoutedServices = 5;

// VirtualService i splits svc-i's traffic between svc-i and svc-(i+1).
std::string virtualServiceYaml(int i, const Options& o, int weight) {
  std::string host = svc(i) + "." + ns(i, o) + ".svc.cluster.local";
  std::string other = svc(i + 1) + "." + ns(i + 1, o) + ".svc.cluster.local";
  return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: vs-" +
         std::to_string(i) + "\n  namespace: " + ns(i, o) + "\nspec:\n  hosts: [" + host +
         "]\n  http:\n  - route:\n    - destination: {host: " + host +
         "}\n      weight: " + std::to_string(weight) + "\n    - destination: {host: " + other +
         "}\n      weight: " + std::to_string(100 - weight) + "\n";
}

std::string destinationRuleYaml(int i, const Options& o) {
  return "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: dr-" +
         std::to_string(i) + "\n  namespace: " + ns(i, o) + "\nspec:\n  host: " + svc(i) + "." +
         ns(i, o) + ".svc.cluster.local\n  trafficPolicy:\n    loadBalancer: {simple: " +
         "LEAST_REQUEST}\n---\n";
}

void writeFile(const std::string& path, const std::string& content) {
  mesh::integration::writeFileAtomic(path, content);
}

void generate(const std::string& dir, const Options& o) {
  // Services and Endpoints in files of 100 services each; the Endpoints of svc-0 alone in a
  // file, the one the endpoint-only change rewrites.
  constexpr int kPerFile = 100;
  for (int f = 0; f * kPerFile < o.services; ++f) {
    std::string services, endpoints;
    for (int i = f * kPerFile; i < std::min(o.services, (f + 1) * kPerFile); ++i) {
      services += serviceYaml(i, o);
      if (i != 0) endpoints += endpointsYaml(i, o, 0);
    }
    writeFile(dir + "/services-" + std::to_string(f) + ".yaml", services);
    writeFile(dir + "/endpoints-" + std::to_string(f) + ".yaml", endpoints);
  }
  writeFile(dir + "/endpoints-svc-0.yaml", endpointsYaml(0, o, 0));
  std::string rules;
  for (int i = 0; i < kRoutedServices; ++i) {
    writeFile(dir + "/vs-" + std::to_string(i) + ".yaml", virtualServiceYaml(i, o, 50));
    rules += destinationRuleYaml(i, o);
  }
  writeFile(dir + "/destination-rules.yaml", rules);
  if (!o.sidecar) return;
  std::string sidecars;
  for (int n = 0; n < o.namespaces; ++n) {
    sidecars +=
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\n"
        "  namespace: " +
        ns(n, o) + "\nspec:\n  egress:\n  - hosts: [\"./*\"]\n---\n";
  }
  writeFile(dir + "/sidecars.yaml", sidecars);
}

// ---- pilot's resource use, from /proc

struct Usage {
  double rss_mb = 0;
  double hwm_mb = 0;
  double cpu_s = 0;
};

Usage usageOf(pid_t pid) {
  Usage u;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %ld kB", &kb) == 1) u.rss_mb = kb / 1024.0;
    if (std::sscanf(line.c_str(), "VmHWM: %ld kB", &kb) == 1) u.hwm_mb = kb / 1024.0;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the ")" of the command name: state is field 3; utime, stime are 14 and 15.
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::vector<std::string> fields;
  std::string f;
  while (rest >> f) fields.push_back(f);
  if (fields.size() > 12) {
    u.cpu_s = (std::stod(fields[11]) + std::stod(fields[12])) / ::sysconf(_SC_CLK_TCK);
  }
  return u;
}

// CPU seconds of this process (the simulated proxies), for comparison on a shared machine.
double selfCpu() {
  rusage r{};
  ::getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

// ---- the simulated proxies

// Progress of all proxies, waited on by the main thread.
struct Board {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t target_version = 0;  // a proxy counts as arrived once it ACKed >= this
  Clock::time_point since;
  std::vector<double> arrivals_ms;  // one per proxy that reached target_version
  int failed = 0;
  uint64_t responses = 0;
  uint64_t bytes = 0;
};

class SimProxy final
    : public grpc::ClientBidiReactor<dv1::DiscoveryRequest, dv1::DiscoveryResponse> {
 public:
  SimProxy(dv1::AggregatedDiscovery::Stub& stub, dv1::Node node, Board& board) : board_(board) {
    stub.async()->StreamResources(&ctx_, this);
    dv1::DiscoveryRequest first;
    *first.mutable_node() = std::move(node);
    first.set_type_url(kBootstrapType);
    send(std::move(first));
    dv1::DiscoveryRequest assignments;
    assignments.set_type_url(kAssignmentType);
    send(std::move(assignments));
    StartRead(&response_);
    StartCall();
  }

  void cancel() { ctx_.TryCancel(); }
  // Waits for OnDone (after cancel()).
  void waitDone() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    uint64_t version = std::strtoull(response_.version_info().c_str(), nullptr, 10);
    {
      std::lock_guard<std::mutex> lock(board_.mu);
      ++board_.responses;
      board_.bytes += response_.ByteSizeLong();
    }
    // A proxy has converged on a version once it ACKed a response of either type with it: an
    // endpoint-only change sends only assignments, a routing change only a Bootstrap.
    dv1::DiscoveryRequest ack;
    ack.set_type_url(response_.type_url());
    ack.set_version_info(response_.version_info());
    ack.set_response_nonce(response_.nonce());
    send(std::move(ack));
    {
      std::lock_guard<std::mutex> lock(board_.mu);
      if (version >= board_.target_version && version > acked_version_) {
        if (acked_version_ < board_.target_version) {
          std::chrono::duration<double, std::milli> d = Clock::now() - board_.since;
          board_.arrivals_ms.push_back(d.count());
          board_.cv.notify_all();
        }
      }
      acked_version_ = std::max(acked_version_, version);
    }
    StartRead(&response_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) return;
    writes_.pop_front();
    if (!writes_.empty()) {
      writing_ = true;
      StartWrite(&writes_.front());
    }
  }

  void OnDone(const grpc::Status& s) override {
    if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
      std::lock_guard<std::mutex> lock(board_.mu);
      ++board_.failed;
      std::fprintf(stderr, "stream ended: %d %s\n", s.error_code(), s.error_message().c_str());
      board_.cv.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

 private:
  // One write outstanding at a time; ACKs queue behind it (a deque keeps addresses stable).
  void send(dv1::DiscoveryRequest req) {
    std::lock_guard<std::mutex> lock(mu_);
    writes_.push_back(std::move(req));
    if (!writing_) {
      writing_ = true;
      StartWrite(&writes_.front());
    }
  }

  Board& board_;
  grpc::ClientContext ctx_;
  dv1::DiscoveryResponse response_;
  uint64_t acked_version_ = 0;  // guarded by board_.mu
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<dv1::DiscoveryRequest> writes_;
  bool writing_ = false;
  bool done_ = false;
};

dv1::Node nodeFor(int i, const Options& o) {
  int service = i % o.services;
  dv1::Node n;
  std::string ip = endpointIp(service, 0);
  std::string pod = svc(service) + "-" + std::to_string(i);
  n.set_id("sidecar~" + ip + "~" + pod + "." + ns(service, o) + "~" + ns(service, o) +
           ".svc.cluster.local");
  n.set_namespace_(ns(service, o));
  n.set_workload_name(svc(service));
  (*n.mutable_labels())["app"] = svc(service);
  n.set_service_account(svc(service));
  n.set_ip(ip);
  return n;
}

struct Latency {
  double p50 = 0, p99 = 0, max = 0;
  size_t count = 0;
};

Latency summarize(std::vector<double> v) {
  Latency l;
  l.count = v.size();
  if (v.empty()) return l;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  l.p50 = at(0.50);
  l.p99 = at(0.99);
  l.max = v.back();
  return l;
}

// Waits until every proxy reached board.target_version (or failed, or timeout).
bool waitAll(Board& board, int proxies, std::chrono::seconds timeout) {
  std::unique_lock<std::mutex> lock(board.mu);
  return board.cv.wait_for(lock, timeout, [&] {
    return static_cast<int>(board.arrivals_ms.size()) + board.failed >= proxies;
  });
}

// The config version pilot reports on /debug/configz.
uint64_t configVersion(uint16_t http_port) {
  std::string body = mesh::integration::httpGet(http_port, "/debug/configz").body;
  auto pos = body.find("\"version\":\"");
  if (pos == std::string::npos) return 0;
  return std::strtoull(body.c_str() + pos + 11, nullptr, 10);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"pilot_scale: push latency and resource use of pilot with many proxies"};
  app.add_option("--pilot", o.pilot, "the pilot binary")->required();
  app.add_option("--services", o.services)->capture_default_str();
  app.add_option("--endpoints", o.endpoints, "per service (at most 250)")->capture_default_str();
  app.add_option("--proxies", o.proxies)->capture_default_str();
  app.add_option("--namespaces", o.namespaces)->capture_default_str();
  app.add_option("--debounce-ms", o.debounce_ms, "pilot's --debounce-ms")->capture_default_str();
  app.add_option("--rounds", o.rounds, "changes of each kind")->capture_default_str();
  app.add_option("--timeout-s", o.timeout_s, "per phase")->capture_default_str();
  app.add_option("--pilot-log-level", o.pilot_log_level)->capture_default_str();
  app.add_option("--keep-log", o.keep_log, "copy pilot's log to this file at the end");
  app.add_flag("--sidecar", o.sidecar,
               "a Sidecar per namespace limiting egress to it (smaller config per proxy)");
  CLI11_PARSE(app, argc, argv);
  o.services = std::max(o.services, kRoutedServices + 1);

  mesh::integration::TempDir tmp;
  const std::string dir = tmp.file("config");
  ::mkdir(dir.c_str(), 0700);
  auto t0 = Clock::now();
  generate(dir, o);
  const std::string port_file = tmp.file("pilot.ports");
  mesh::integration::Process pilot(
      {o.pilot, "--config-dir", dir, "--grpc-address", "127.0.0.1:0", "--http-address",
       "127.0.0.1:0", "--port-file", port_file, "--debounce-ms", std::to_string(o.debounce_ms),
       "--log-level", o.pilot_log_level},
      tmp.file("pilot.log"));
  std::string error;
  auto ports = mesh::integration::waitForFile(port_file, pilot, milliseconds(60000), &error);
  if (!ports) {
    std::fprintf(stderr, "pilot did not start: %s\n%s\n", error.c_str(), pilot.log().c_str());
    return 1;
  }
  std::chrono::duration<double, std::milli> startup = Clock::now() - t0;
  const uint16_t grpc_port = mesh::integration::jsonNumber(*ports, "grpc").value_or(0);
  const uint16_t http_port = mesh::integration::jsonNumber(*ports, "http").value_or(0);
  const Usage idle = usageOf(pilot.pid());
  const double client_cpu0 = selfCpu();

  // One channel (one TCP connection) per proxy, as real sidecars have.
  Board board;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<dv1::AggregatedDiscovery::Stub>> stubs;
  std::vector<std::unique_ptr<SimProxy>> proxies;
  const std::string target = "127.0.0.1:" + std::to_string(grpc_port);
  {
    std::lock_guard<std::mutex> lock(board.mu);
    board.target_version = 1;
    board.since = Clock::now();
  }
  for (int i = 0; i < o.proxies; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(-1);
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(dv1::AggregatedDiscovery::NewStub(channels.back()));
    proxies.push_back(std::make_unique<SimProxy>(*stubs.back(), nodeFor(i, o), board));
  }
  const std::chrono::seconds timeout(o.timeout_s);
  bool ok = waitAll(board, o.proxies, timeout);
  Latency connect = summarize(board.arrivals_ms);
  double first_bytes = 0, first_kib = 0;
  {
    std::lock_guard<std::mutex> lock(board.mu);
    first_bytes = board.responses ? static_cast<double>(board.bytes) / board.responses : 0;
    first_kib = static_cast<double>(board.bytes) / 1024;
  }
  const Usage connected = usageOf(pilot.pid());
  const double connect_client_cpu = selfCpu() - client_cpu0;

  // A change: rewrite one file atomically, wait for every proxy it concerns to ACK the next
  // version: all of them, or with --sidecar those of svc-0's namespace (the others see no
  // change and get no push).
  int concerned = 0;
  for (int i = 0; i < o.proxies; ++i) {
    if (!o.sidecar || ns(i % o.services, o) == ns(0, o)) ++concerned;
  }
  std::vector<std::vector<double>> phase_ms(2);
  std::vector<Usage> phase_usage(2);
  std::vector<double> phase_client_cpu(2);
  std::vector<double> phase_kib(2);  // response bytes received by all proxies
  for (int round = 1; round <= o.rounds && ok; ++round) {
    for (int kind = 0; kind < 2 && ok; ++kind) {
      const uint64_t before = configVersion(http_port);
      const Usage u0 = usageOf(pilot.pid());
      const double c0 = selfCpu();
      uint64_t bytes0 = 0;
      {
        std::lock_guard<std::mutex> lock(board.mu);
        bytes0 = board.bytes;
        board.target_version = before + 1;
        board.arrivals_ms.clear();
        board.since = Clock::now();
      }
      if (kind == 0) {
        writeFile(dir + "/vs-0.yaml", virtualServiceYaml(0, o, 50 + round * 7 % 50));
      } else {
        writeFile(dir + "/endpoints-svc-0.yaml", endpointsYaml(0, o, round));
      }
      ok = waitAll(board, concerned, timeout);
      std::lock_guard<std::mutex> lock(board.mu);
      if (board.failed > 0) ok = false;
      phase_ms[kind].insert(phase_ms[kind].end(), board.arrivals_ms.begin(),
                            board.arrivals_ms.end());
      const Usage u1 = usageOf(pilot.pid());
      phase_usage[kind].cpu_s += u1.cpu_s - u0.cpu_s;
      phase_client_cpu[kind] += selfCpu() - c0;
      phase_kib[kind] += static_cast<double>(board.bytes - bytes0) / 1024;
    }
  }
  const Usage after = usageOf(pilot.pid());

  for (auto& p : proxies) p->cancel();
  for (auto& p : proxies) p->waitDone();
  pilot.stop();
  if (!o.keep_log.empty()) writeFile(o.keep_log, pilot.log());

  std::printf(
      "\n### pilot_scale: %d services x %d endpoints, %d proxies in %d namespaces, "
      "debounce %d ms, %d rounds%s\n\n",
      o.services, o.endpoints, o.proxies, o.namespaces, o.debounce_ms, o.rounds,
      o.sidecar
          ? "; a Sidecar per namespace (egress ./*): a change concerns one namespace's proxies"
          : "");
  std::printf(
      "pilot started (config generated, loaded, listening) in %.0f ms; "
      "mean response %.0f KiB\n\n",
      startup.count(), first_bytes / 1024);
  std::printf(
      "| phase | proxies done | p50 ms | p99 ms | max ms | pilot CPU s | proxies' CPU s | "
      "KiB sent (all proxies) |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  std::printf(
      "| initial connect → all ACKed | %zu/%d | %.1f | %.1f | %.1f | %.2f | %.2f | %.0f |\n",
      connect.count, o.proxies, connect.p50, connect.p99, connect.max, connected.cpu_s - idle.cpu_s,
      connect_client_cpu, first_kib);
  const char* names[2] = {"(a) routing change (VirtualService weight)",
                          "(b) endpoint-only change (one Endpoints file)"};
  for (int kind = 0; kind < 2; ++kind) {
    Latency l = summarize(phase_ms[kind]);
    std::printf(
        "| %s | %zu/%d | %.1f | %.1f | %.1f | %.2f per change | %.2f per change | %.0f per "
        "change |\n",
        names[kind], l.count, concerned * o.rounds, l.p50, l.p99, l.max,
        o.rounds ? phase_usage[kind].cpu_s / o.rounds : 0.0,
        o.rounds ? phase_client_cpu[kind] / o.rounds : 0.0,
        o.rounds ? phase_kib[kind] / o.rounds : 0.0);
  }
  std::printf("\n| pilot | RSS MB | peak RSS (VmHWM) MB | CPU s (total) |\n|---|---|---|---|\n");
  std::printf("| idle, config loaded | %.1f | %.1f | %.2f |\n", idle.rss_mb, idle.hwm_mb,
              idle.cpu_s);
  std::printf("| all proxies connected | %.1f | %.1f | %.2f |\n", connected.rss_mb,
              connected.hwm_mb, connected.cpu_s);
  std::printf("| after the changes | %.1f | %.1f | %.2f |\n", after.rss_mb, after.hwm_mb,
              after.cpu_s);
  if (!ok) {
    std::printf("\nNOT ALL PROXIES CONVERGED (failed streams: %d); pilot log tail:\n",
                board.failed);
    std::string log = pilot.log();
    std::printf("%s\n", log.substr(log.size() > 4000 ? log.size() - 4000 : 0).c_str());
    return 1;
  }
  return 0;
}
