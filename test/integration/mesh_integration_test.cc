// The control plane and the data plane together: the real `pilot` and two real `istio-proxy`
// processes started with --discovery, httpbin backends, all on 127.0.0.1 with OS-picked ports.
// A VirtualService change made while traffic flows moves the split with no failed request;
// traffic goes on while pilot is down; a restarted pilot resyncs the proxies (with a change made
// while it was away); an endpoint-only change made while traffic flows reaches the proxy as
// assignments only and moves the traffic with no failed request; a config the proxy cannot apply
// is NACKed, shown in pilot's syncz and in the proxy's config_dump, and the proxy keeps what it
// had.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "test/integration/harness.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;

constexpr milliseconds kWait{15000};

std::string httpbinConfig(uint16_t v1_port, uint16_t v2_port, uint32_t service_port) {
  auto endpoint = [](const char* version, uint16_t port) {
    return "  - {address: 127.0.0.1, ports: {http: " + std::to_string(port) +
           "}, labels: {app: httpbin, version: " + version + "}}\n";
  };
  return R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: )" +
         std::to_string(service_port) + R"(, name: http, protocol: HTTP}]
  endpoints:
)" + endpoint("v1", v1_port) +
         endpoint("v2", v2_port) + R"(---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
)";
}

std::string httpbinVirtualService(int v1_weight) {
  return R"(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts: [httpbin]
  http:
  - route:
    - destination: {host: httpbin, subset: v1}
      weight: )" +
         std::to_string(v1_weight) + R"(
    - destination: {host: httpbin, subset: v2}
      weight: )" +
         std::to_string(100 - v1_weight) + "\n";
}

// An istio-proxy fed by pilot.
struct MeshProxy {
  std::unique_ptr<Process> process;
  std::string port_file;
  uint16_t admin = 0;
  uint16_t outbound = 0;  // the outbound listener for the httpbin port

  std::string discoveryVersion() const {
    return jsonString(readFile(port_file), "discovery_version");
  }
};

class MeshIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_dir_ = tmp_.path() + "/config";
    ASSERT_EQ(::mkdir(config_dir_.c_str(), 0700), 0);
    v1_ = startHttpbin(tmp_, "httpbin-v1", "v1");
    v2_ = startHttpbin(tmp_, "httpbin-v2", "v2");
    writeFileAtomic(config_dir_ + "/httpbin.yaml", httpbinConfig(v1_.port, v2_.port, kPort));
    writeFileAtomic(config_dir_ + "/httpbin-vs.yaml", httpbinVirtualService(100));
    startPilot("127.0.0.1:0");
  }

  // Starts pilot (again) on `grpc_address`; fills the ports from its port file.
  void startPilot(const std::string& grpc_address) {
    const std::string port_file = tmp_.file("pilot.ports." + std::to_string(++pilot_starts_));
    pilot_ = std::make_unique<Process>(
        std::vector<std::string>{binPath("pilot"), "--config-dir", config_dir_, "--grpc-address",
                                 grpc_address, "--http-address", "127.0.0.1:0", "--port-file",
                                 port_file, "--debounce-ms", "20"},
        tmp_.file("pilot.log." + std::to_string(pilot_starts_)));
    std::string error;
    auto ports = waitForFile(port_file, *pilot_, kWait, &error);
    ASSERT_TRUE(ports.has_value()) << error;
    grpc_port_ = static_cast<uint16_t>(jsonNumber(*ports, "grpc").value_or(0));
    http_port_ = static_cast<uint16_t>(jsonNumber(*ports, "http").value_or(0));
    ASSERT_NE(grpc_port_, 0);
    ASSERT_NE(http_port_, 0);
  }

  // A proxy for workload `name`, outbound listeners on loopback ports the OS picks. Waits until
  // pilot's first config is applied (the port file appears only then).
  MeshProxy startMeshProxy(const std::string& name, const std::string& outbound_bind,
                           bool wait_ready = true) {
    MeshProxy p;
    p.port_file = tmp_.file(name + ".ports");
    const std::string config = tmp_.file(name + ".yaml");
    writeFileAtomic(config,
                    "admin: {address: \"127.0.0.1:0\", prometheusAddress: \"127.0.0.1:0\", "
                    "healthAddress: \"127.0.0.1:0\"}\n");
    p.process = std::make_unique<Process>(
        std::vector<std::string>{binPath("istio-proxy"), "--discovery",
                                 "127.0.0.1:" + std::to_string(grpc_port_), "--config", config,
                                 "--namespace", "default", "--workload", name, "--label",
                                 "app=" + name + ",version=v1", "--outbound-bind", outbound_bind,
                                 "--port-file", p.port_file, "--concurrency", "2"},
        tmp_.file(name + ".log"));
    // The port file appears once the admin API listens; discovery_version is set once pilot's
    // first config is applied.
    std::string error;
    auto content = waitForFileMatching(
        p.port_file, *p.process,
        [&](const std::string& c) {
          return !c.empty() && (!wait_ready || !jsonString(c, "discovery_version").empty());
        },
        kWait, &error);
    EXPECT_TRUE(content.has_value()) << error;
    if (!content) return p;
    p.admin = static_cast<uint16_t>(jsonNumber(*content, "admin").value_or(0));
    if (!wait_ready) return p;
    p.outbound =
        static_cast<uint16_t>(jsonNumber(*content, "0.0.0.0_" + std::to_string(kPort)).value_or(0));
    EXPECT_NE(p.outbound, 0) << *content;
    EXPECT_FALSE(p.discoveryVersion().empty()) << *content;
    return p;
  }

  // Waits until the proxy has applied a pilot version other than `old`; returns it.
  std::string waitForNewVersion(MeshProxy& p, const std::string& old) {
    std::string error;
    auto content = waitForFileMatching(
        p.port_file, *p.process,
        [&](const std::string& c) {
          std::string v = jsonString(c, "discovery_version");
          return !v.empty() && v != old;
        },
        kWait, &error);
    EXPECT_TRUE(content.has_value()) << error << "\npilot:\n" << pilot_->log();
    return content ? jsonString(*content, "discovery_version") : old;
  }

  static constexpr uint32_t kPort = 8000;
  TempDir tmp_;
  std::string config_dir_;
  Httpbin v1_, v2_;
  std::unique_ptr<Process> pilot_;
  int pilot_starts_ = 0;
  uint16_t grpc_port_ = 0;
  uint16_t http_port_ = 0;
};

// Keeps requests flowing through one proxy on one keep-alive connection, counting what answered.
class Load {
 public:
  explicit Load(uint16_t port) : thread_([this, port] { run(port); }) {}
  ~Load() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Marks a phase: counts from here on go to a fresh tally.
  void phase() {
    std::lock_guard<std::mutex> lock(mu_);
    current_.clear();
  }
  std::map<std::string, int> tally() {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  int failures() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  std::string firstFailure() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_failure_;
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }

 private:
  void run(uint16_t port) {
    HttpClient client(port);
    while (!stop_) {
      HttpResponse r = client.get("/", {}, "httpbin:8000");
      std::lock_guard<std::mutex> lock(mu_);
      ++total_;
      if (!r.ok || r.status != 200) {
        if (failures_++ == 0) {
          first_failure_ = r.ok ? "status " + std::to_string(r.status) + ": " + r.body : r.error;
        }
        client.close();
        continue;
      }
      ++current_[r.header("x-version")];
      if (!r.keep_alive) client.close();
    }
  }

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, int> current_;
  int failures_ = 0;
  int total_ = 0;
  std::string first_failure_;
  std::thread thread_;
};

// Waits until `load` has answered at least `n` requests in its current phase.
std::map<std::string, int> waitForRequests(Load& load, int n) {
  const auto deadline = Clock::now() + kWait;
  std::map<std::string, int> t;
  while (Clock::now() < deadline) {
    t = load.tally();
    int sum = 0;
    for (const auto& [v, c] : t) sum += c;
    if (sum >= n) break;
    std::this_thread::yield();
  }
  return t;
}

TEST_F(MeshIntegrationTest, SplitFollowsChangesAndSurvivesPilotRestart) {
  MeshProxy a = startMeshProxy("client-a", "127.0.0.1:0");
  MeshProxy b = startMeshProxy("client-b", "127.0.0.1:0");
  ASSERT_NE(a.outbound, 0);
  ASSERT_NE(b.outbound, 0);
  std::string syncz = waitForPage(http_port_, "/debug/syncz", [](const std::string& s) {
    return countOf(s, "\"status\":\"SYNCED\"") == 2;
  });
  EXPECT_EQ(countOf(syncz, "\"status\":\"SYNCED\""), 2u) << syncz;
  EXPECT_THAT(syncz, HasSubstr("\"admin_address\":\"127.0.0.1:" + std::to_string(a.admin)));

  // The service model pilot pushes from.
  std::string registry = httpGet(http_port_, "/debug/registryz").body;
  EXPECT_THAT(registry, HasSubstr("\"hostname\":\"httpbin.default.svc.cluster.local\""));
  EXPECT_THAT(registry, HasSubstr("\"ports\":{\"http\":" + std::to_string(v2_.port) + "}"));

  // istioctl reads the same state: pilot's view, and each proxy's running config.
  const std::string pilot = "127.0.0.1:" + std::to_string(http_port_);
  auto [rc, status] = runTool(tmp_, {binPath("istioctl"), "proxy-status", "--pilot", pilot});
  EXPECT_EQ(rc, 0) << status;
  EXPECT_EQ(countOf(status, "SYNCED"), 2u) << status;
  EXPECT_THAT(status, HasSubstr("client-a.default"));
  EXPECT_THAT(status, HasSubstr("client-b.default"));
  auto [rc_c, clusters] = runTool(
      tmp_, {binPath("istioctl"), "proxy-config", "clusters", "client-a", "--pilot", pilot});
  EXPECT_EQ(rc_c, 0) << clusters;
  EXPECT_THAT(clusters,
              ::testing::ContainsRegex("httpbin.default.svc.cluster.local +8000 +v2 +outbound"));
  auto [rc_r, routes] = runTool(
      tmp_, {binPath("istioctl"), "proxy-config", "routes", "client-b.default", "--pilot", pilot});
  EXPECT_EQ(rc_r, 0) << routes;
  EXPECT_THAT(routes, HasSubstr("outbound|8000|v1|httpbin.default.svc.cluster.local 100%"));
  auto [rc_l, listeners] = runTool(tmp_, {binPath("istioctl"), "proxy-config", "listeners",
                                          "127.0.0.1:" + std::to_string(a.admin)});
  EXPECT_EQ(rc_l, 0) << listeners;
  EXPECT_THAT(listeners, ::testing::ContainsRegex("0.0.0.0_8000 +127.0.0.1:" +
                                                  std::to_string(a.outbound) + " +outbound +HTTP"));
  auto [rc_e, eps] = runTool(
      tmp_, {binPath("istioctl"), "proxy-config", "endpoints", "client-a", "--pilot", pilot});
  EXPECT_EQ(rc_e, 0) << eps;
  EXPECT_THAT(eps, HasSubstr("127.0.0.1:" + std::to_string(v2_.port)));
  auto [rc_x, missing] =
      runTool(tmp_, {binPath("istioctl"), "proxy-config", "clusters", "nosuch", "--pilot", pilot});
  EXPECT_EQ(rc_x, 1);
  EXPECT_THAT(missing, HasSubstr("no proxy 'nosuch'"));

  Load la(a.outbound), lb(b.outbound);
  // All to v1.
  for (Load* l : {&la, &lb}) {
    auto t = waitForRequests(*l, 100);
    EXPECT_GE(t["v1"], 100) << "v2: " << t["v2"];
    EXPECT_EQ(t["v2"], 0);
  }

  // Everything to v2, while traffic flows.
  std::string va = a.discoveryVersion(), vb = b.discoveryVersion();
  writeFileAtomic(config_dir_ + "/httpbin-vs.yaml", httpbinVirtualService(0));
  va = waitForNewVersion(a, va);
  vb = waitForNewVersion(b, vb);
  for (Load* l : {&la, &lb}) {
    l->phase();
    auto t = waitForRequests(*l, 100);
    EXPECT_GE(t["v2"], 100);
    EXPECT_EQ(t["v1"], 0);
  }

  // Pilot goes away: the proxies keep serving what they have.
  pilot_->stop();
  for (MeshProxy* p : {&a, &b}) {
    std::string dump = waitForPage(p->admin, "/config_dump", [](const std::string& s) {
      return s.find("\"connected\":false") != std::string::npos;
    });
    EXPECT_THAT(dump, HasSubstr("\"connected\":false"));
  }
  for (Load* l : {&la, &lb}) {
    l->phase();
    auto t = waitForRequests(*l, 100);
    EXPECT_GE(t["v2"], 100);
  }

  // A change made while pilot is away arrives when it is back (same address).
  writeFileAtomic(config_dir_ + "/httpbin-vs.yaml", httpbinVirtualService(100));
  startPilot("127.0.0.1:" + std::to_string(grpc_port_));
  waitForNewVersion(a, va);
  waitForNewVersion(b, vb);
  for (Load* l : {&la, &lb}) {
    l->phase();
    auto t = waitForRequests(*l, 100);
    EXPECT_GE(t["v1"], 100);
    EXPECT_EQ(t["v2"], 0);
  }
  syncz = waitForPage(http_port_, "/debug/syncz", [](const std::string& s) {
    return countOf(s, "\"status\":\"SYNCED\"") == 2;
  });
  EXPECT_EQ(countOf(syncz, "\"status\":\"SYNCED\""), 2u) << syncz;

  la.stop();
  lb.stop();
  EXPECT_EQ(la.failures(), 0) << la.firstFailure();
  EXPECT_EQ(lb.failures(), 0) << lb.firstFailure();
  EXPECT_GT(la.total(), 400);
  EXPECT_GT(lb.total(), 400);
  // The proxies saw every request too.
  for (MeshProxy* p : {&a, &b}) {
    std::string metrics = httpGet(p->admin, "/stats/prometheus").body;
    EXPECT_GE(promSum(metrics, "istio_requests_total",
                      {"destination_service=\"httpbin.default.svc.cluster.local\""}),
              400);
  }
}

TEST_F(MeshIntegrationTest, EndpointOnlyChangeMovesTrafficWithAssignmentsOnly) {
  MeshProxy a = startMeshProxy("client-a", "127.0.0.1:0");
  ASSERT_NE(a.outbound, 0);
  std::string dump = httpGet(a.admin, "/config_dump").body;
  const std::string bootstrap_version = jsonString(dump, "bootstrap_version_info");
  EXPECT_FALSE(bootstrap_version.empty()) << dump;
  EXPECT_EQ(jsonString(dump, "assignments_version_info"), bootstrap_version) << dump;

  Load load(a.outbound);
  auto t = waitForRequests(load, 100);
  EXPECT_GE(t["v1"], 100);

  // Subset v1's endpoint moves to another server (same labels): only the registry changes.
  Httpbin moved = startHttpbin(tmp_, "httpbin-v1-moved", "v1-moved");
  std::string version = a.discoveryVersion();
  writeFileAtomic(config_dir_ + "/httpbin.yaml", httpbinConfig(moved.port, v2_.port, kPort));
  version = waitForNewVersion(a, version);
  load.phase();
  t = waitForRequests(load, 100);
  EXPECT_GE(t["v1-moved"], 100);
  EXPECT_EQ(t["v1"], 0);
  load.stop();
  EXPECT_EQ(load.failures(), 0) << load.firstFailure();

  // The proxy applied assignments only: the Bootstrap's version is the first one.
  dump = httpGet(a.admin, "/config_dump").body;
  EXPECT_EQ(jsonString(dump, "bootstrap_version_info"), bootstrap_version) << dump;
  EXPECT_EQ(jsonString(dump, "assignments_version_info"), version) << dump;
  EXPECT_THAT(dump, HasSubstr("\"port\":" + std::to_string(moved.port)));
  EXPECT_THAT(a.process->log(), HasSubstr("pilot's endpoints version " + version +
                                          " applied (cluster load assignments only)"));
  // And pilot sent it one Bootstrap.
  std::string syncz = waitForPage(http_port_, "/debug/syncz", [&](const std::string& s) {
    return s.find("\"eds_acked_version\":\"" + version + "\"") != std::string::npos;
  });
  EXPECT_THAT(syncz, HasSubstr("\"pushes\":1,")) << syncz;
  EXPECT_THAT(syncz, HasSubstr("\"eds_pushes\":2")) << syncz;
  EXPECT_THAT(syncz, HasSubstr("\"status\":\"SYNCED\"")) << syncz;
}

TEST_F(MeshIntegrationTest, ConfigTheProxyCannotApplyIsNackedAndShown) {
  MeshProxy a = startMeshProxy("client-a", "127.0.0.1:0");
  ASSERT_NE(a.outbound, 0);
  // A port held by the test: a proxy binding its outbound listeners on the service port itself
  // (interception mode NONE) cannot bind it.
  int held = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(held, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(held, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  ASSERT_EQ(::listen(held, 1), 0);
  socklen_t len = sizeof(sa);
  ::getsockname(held, reinterpret_cast<sockaddr*>(&sa), &len);
  const uint16_t port = ntohs(sa.sin_port);
  writeFileAtomic(config_dir_ + "/busy.yaml", R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: busy
spec:
  hosts: [busy.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: )" + std::to_string(port) + R"(, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
)");
  // client-a binds on port 0 and takes the new config; client-c cannot.
  waitForNewVersion(a, a.discoveryVersion());
  MeshProxy c = startMeshProxy("client-c", "127.0.0.1", false);
  ASSERT_NE(c.admin, 0);
  std::string syncz = waitForPage(http_port_, "/debug/syncz", [](const std::string& s) {
    return s.find("REJECTED") != std::string::npos;
  });
  EXPECT_THAT(syncz, HasSubstr("\"status\":\"REJECTED\""));
  EXPECT_THAT(syncz, HasSubstr("client-c"));
  EXPECT_THAT(syncz,
              HasSubstr("127.0.0.1:" + std::to_string(port)));      // the address it could not bind
  EXPECT_EQ(countOf(syncz, "\"status\":\"SYNCED\""), 1u) << syncz;  // client-a
  // The proxy runs, is not ready (nothing good from pilot yet) and says why.
  ASSERT_TRUE(c.process->running()) << c.process->log();
  HttpResponse ready = httpGet(c.admin, "/ready");
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.body, HasSubstr("WAITING_FOR_PILOT"));
  std::string dump = httpGet(c.admin, "/config_dump").body;
  EXPECT_THAT(dump, HasSubstr("last_rejected_config"));
  EXPECT_THAT(dump, HasSubstr("127.0.0.1:" + std::to_string(port)));
  EXPECT_TRUE(c.discoveryVersion().empty());
  // client-a still serves.
  EXPECT_EQ(httpGet(a.outbound, "/", {}, "httpbin:8000").status, 200);
  ::close(held);
}

}  // namespace
}  // namespace mesh::integration
