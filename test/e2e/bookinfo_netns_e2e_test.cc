// `istioctl local up samples/bookinfo --netns` end to end: every pod in its own network namespace
// on a bridge, its traffic captured by its sidecar (uid 1337, Istio's nat rules), mTLS between
// sidecars with certificates made for the run, pilot in the root namespace. Checked from the root
// namespace as a user would: the product page through the ingress gateway, both sidecars'
// metrics for reviews -> ratings (mTLS, the client's SPIFFE id), a routing rule applied live, and
// that `istioctl local down` leaves no namespace, link, rule or process behind.
//
// Needs root and `ip netns` (as test/integration/capture_integration_test.cc); skips saying why
// otherwise. Names are unique per run (the `up` pid; a /24 of 10.251.0.0/16 that is free), so
// parallel runs and the capture test's 10.250.0.0/30 do not collide.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <regex>

#include "test/integration/harness.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

constexpr milliseconds kWait{20000};
const std::string kNetworking = std::string(MESH_SOURCE_DIR) + "/samples/bookinfo/networking/";

std::string tool(const std::string& name) { return systemTool(name); }

struct Pod {
  std::string name, workload, ip, netns;
  uint16_t prometheus = 0;
  pid_t proxy_pid = 0, app_pid = 0;
};

class BookinfoNetnsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "netns e2e skipped: needs root (network namespaces)";
    for (const char* t : {"ip", "iptables", "iptables-restore", "curl"}) {
      if (tool(t).empty()) GTEST_SKIP() << "netns e2e skipped: '" << t << "' is not installed";
    }
    const std::string probe = "meshe2e-probe-" + std::to_string(::getpid());
    auto [rc, out] = runTool(dir_, {tool("ip"), "netns", "add", probe});
    if (rc != 0) {
      GTEST_SKIP() << "netns e2e skipped: 'ip netns add' is not allowed here: " << out;
    }
    runTool(dir_, {tool("ip"), "netns", "del", probe});
    ::chmod(dir_.path().c_str(), 0755);  // the sidecars run as uid 1337
  }

  void TearDown() override {
    if (mesh_ && mesh_->running()) {
      mesh_->signal(SIGINT);
      mesh_->wait(milliseconds(30000));
    }
  }

  // Starts `istioctl local up samples/bookinfo --netns` and returns its state.json once written
  // (bounded); nullopt, with the reason and the runner's log as a test failure, if it is not.
  std::optional<std::string> startMesh() {
    std::string bin = fs::path(binPath("istioctl")).parent_path().string();
    mesh_ = std::make_unique<Process>(
        std::vector<std::string>{binPath("istioctl"), "local", "up",
                                 std::string(MESH_SOURCE_DIR) + "/samples/bookinfo", "--netns",
                                 "--state-dir", state_dir_, "--bin-dir", bin},
        dir_.file("local-up.log"));
    std::string error;
    auto state = waitForFileMatching(
        state_dir_ + "/state.json", *mesh_, [](const std::string& c) { return !c.empty(); },
        milliseconds(90000), &error);
    if (!state) ADD_FAILURE() << "istioctl local up --netns: " << error << "\n" << mesh_->log();
    return state;
  }

  std::pair<int, std::string> istioctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {binPath("istioctl"), "local"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--state-dir", state_dir_});
    return runTool(dir_, argv);
  }

  // curl from the root namespace (the pods' addresses are on the bridge); status line + body.
  std::pair<int, std::string> curl(const std::string& url, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {tool("curl"), "-sS", "--max-time", "15", "--noproxy", "*"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(url);
    return runTool(dir_, argv);
  }

  const Pod& pod(const std::string& workload) {
    for (const Pod& p : pods_) {
      if (p.workload == workload) return p;
    }
    throw std::runtime_error("no pod of " + workload);
  }

  std::string productPage(const std::string& user = "") {
    std::vector<std::string> extra = {"-H", "Host: bookinfo.example.com"};
    if (!user.empty()) extra.insert(extra.end(), {"-H", "Cookie: user=" + user});
    auto [rc, body] = curl(entry_, extra);
    EXPECT_EQ(rc, 0) << body;
    return body;
  }

  std::string metrics(const Pod& p) {
    return curl("http://" + p.ip + ":" + std::to_string(p.prometheus) + "/stats/prometheus").second;
  }

  // The sidecar's metrics once `metric{labels}` sums to at least `want` (bounded).
  std::string metricsWhen(const Pod& p, const std::string& metric,
                          const std::vector<std::string>& labels, double want) {
    const auto deadline = Clock::now() + kWait;
    std::string text;
    while (Clock::now() < deadline) {
      text = metrics(p);
      if (promSum(text, metric, labels) >= want) break;
    }
    return text;
  }

  // Waits until pilot's version differs from `before` and every sidecar ACKed it.
  void waitSynced(const std::string& before) {
    const auto deadline = Clock::now() + kWait;
    std::string version, syncz;
    while (Clock::now() < deadline) {
      version = jsonString(httpGet(pilot_http_, "/debug/configz").body, "version");
      if (version.empty() || version == before) continue;
      syncz = httpGet(pilot_http_, "/debug/syncz").body;
      if (countOf(syncz, "\"config_version\":\"" + version + "\"") == pods_.size() &&
          countOf(syncz, "\"status\":\"SYNCED\"") == pods_.size()) {
        return;
      }
    }
    FAIL() << "sidecars did not sync pilot's version " << version << ":\n" << syncz;
  }

  TempDir dir_;
  std::string state_dir_ = dir_.path() + "/state";
  std::unique_ptr<Process> mesh_;
  std::string state_, entry_;
  uint16_t pilot_http_ = 0;
  std::vector<Pod> pods_;
};

TEST_F(BookinfoNetnsE2eTest, CapturedMeshWithMtlsAndCleanTeardown) {
  std::optional<std::string> state = startMesh();
  ASSERT_TRUE(state);
  state_ = *state;
  EXPECT_THAT(state_, HasSubstr("\"netns\":true"));
  const std::string bridge = jsonString(state_, "bridge");
  const std::string subnet = jsonString(state_, "subnet");
  EXPECT_THAT(subnet, ::testing::StartsWith("10.251."));
  pilot_http_ = static_cast<uint16_t>(jsonNumber(state_, "http").value_or(0));
  entry_ = jsonString(state_, "entry");
  for (size_t pos = state_.find("{\"name\":"); pos != std::string::npos;
       pos = state_.find("{\"name\":", pos + 1)) {
    std::string obj = state_.substr(pos, state_.find("}}", pos) - pos + 2);
    Pod p;
    p.name = jsonString(obj, "name");
    p.workload = jsonString(obj, "workload");
    p.ip = jsonString(obj, "ip");
    p.netns = jsonString(obj, "netns");
    p.prometheus = static_cast<uint16_t>(jsonNumber(obj, "prometheus").value_or(0));
    p.proxy_pid = static_cast<pid_t>(jsonNumber(obj, "proxy_pid").value_or(0));
    p.app_pid = static_cast<pid_t>(jsonNumber(obj, "app_pid").value_or(0));
    pods_.push_back(p);
  }
  ASSERT_EQ(pods_.size(), 9u) << state_;
  const pid_t pilot_pid = static_cast<pid_t>(jsonNumber(state_, "pilot_pid").value_or(0));
  EXPECT_EQ(entry_, "http://" + pod("istio-ingressgateway").ip + ":8080/productpage");

  // Each pod in its own namespace, with Istio's capture rules (not the gateway: not captured).
  auto [rc_rules, rules] = runTool(dir_, {tool("ip"), "netns", "exec", pod("ratings-v1").netns,
                                          tool("iptables"), "-t", "nat", "-S"});
  ASSERT_EQ(rc_rules, 0) << rules;
  EXPECT_THAT(rules, HasSubstr("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"));
  EXPECT_THAT(rules, HasSubstr("-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"));

  // The product page through the ingress gateway: productpage calls details and reviews by their
  // VIPs, with no proxy settings; its sidecar captured both calls.
  std::string page = productPage();
  EXPECT_THAT(page, HasSubstr("William Shakespeare"));  // details
  EXPECT_THAT(page, HasSubstr("reviews-v1-0"));         // all traffic to v1
  EXPECT_THAT(page, Not(HasSubstr("glyphicon-star")));

  // A routing rule applied live: jason goes to reviews v2, which calls ratings.
  std::string before = jsonString(httpGet(pilot_http_, "/debug/configz").body, "version");
  auto [rc_apply, applied] =
      istioctl({"apply", "-f", kNetworking + "virtual-service-reviews-test-v2.yaml"});
  ASSERT_EQ(rc_apply, 0) << applied;
  waitSynced(before);
  const int kJason = 5;
  for (int i = 0; i < kJason; ++i) {
    std::string jason = productPage("jason");
    EXPECT_THAT(jason, HasSubstr("reviews-v2-0"));
    EXPECT_THAT(jason, HasSubstr("color=\"black\""));  // ratings answered
  }
  EXPECT_THAT(productPage(), HasSubstr("reviews-v1-0"));

  // reviews -> ratings, seen by both sidecars: reviews-v2's outbound (reporter=source) over an
  // mTLS upstream, ratings' inbound (reporter=destination) with the client's SPIFFE id.
  const std::string reviews_id = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews";
  const std::vector<std::string> dst_labels = {
      "reporter=\"destination\"", "source_workload=\"reviews-v2\"", "response_code=\"200\"",
      "connection_security_policy=\"mutual_tls\"", "source_principal=\"" + reviews_id + "\""};
  std::string ratings = metricsWhen(pod("ratings-v1"), "istio_requests_total", dst_labels, kJason);
  EXPECT_EQ(promSum(ratings, "istio_requests_total", dst_labels), kJason) << ratings;
  const std::vector<std::string> src_labels = {
      "reporter=\"source\"", "destination_service=\"ratings.default.svc.cluster.local\"",
      "response_code=\"200\""};
  std::string reviews = metricsWhen(pod("reviews-v2"), "istio_requests_total", src_labels, kJason);
  EXPECT_EQ(promSum(reviews, "istio_requests_total", src_labels), kJason) << reviews;
  EXPECT_GE(promSum(reviews, "envoy_cluster_ssl_handshake",
                    {"cluster_name=\"outbound|9080|v1|ratings.default.svc.cluster.local\""}),
            1)
      << reviews;

  // A port the mesh does not know, on a pod: inbound passthrough (virtualInbound ->
  // InboundPassthroughCluster, connecting from 127.0.0.6 so that it is not captured again).
  const Pod& ratings_pod = pod("ratings-v1");
  {
    const std::string pf = dir_.file("extra.port");
    Process extra(
        {tool("ip"), "netns", "exec", ratings_pod.netns, binPath("httpbin"), "--listen",
         "0.0.0.0:9999", "--instance", "unlisted-app", "--port-file", pf, "--threads", "1"},
        dir_.file("extra.log"));
    std::string error;
    ASSERT_TRUE(waitForFile(pf, extra, kWait, &error)) << error << extra.log();
    auto [rc_pass, pass] = curl("http://" + ratings_pod.ip + ":9999/headers");
    EXPECT_EQ(rc_pass, 0) << pass;
    EXPECT_THAT(pass, HasSubstr("unlisted-app"));
    std::string m = metricsWhen(ratings_pod, "envoy_cluster_upstream_cx_total",
                                {"cluster_name=\"InboundPassthroughCluster\""}, 1);
    EXPECT_GE(promSum(m, "envoy_cluster_upstream_cx_total",
                      {"cluster_name=\"InboundPassthroughCluster\""}),
              1)
        << m;
    extra.stop();
  }

  // PeerAuthentication: PERMISSIVE (the default) takes plaintext from outside the mesh; STRICT
  // refuses it while the sidecars' mTLS calls go on.
  const std::string ratings_url = "http://" + ratings_pod.ip + ":9080/ratings/0";
  auto [rc_plain, plain] = curl(ratings_url);
  EXPECT_EQ(rc_plain, 0) << plain;
  EXPECT_THAT(plain, HasSubstr("ratings"));
  const std::string strict = dir_.file("strict.yaml");
  writeFileAtomic(strict, R"(apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
)");
  before = jsonString(httpGet(pilot_http_, "/debug/configz").body, "version");
  std::tie(rc_apply, applied) = istioctl({"apply", "-f", strict});
  ASSERT_EQ(rc_apply, 0) << applied;
  waitSynced(before);
  auto [rc_refused, refused] = curl(ratings_url);
  EXPECT_NE(rc_refused, 0) << refused;
  EXPECT_THAT(refused, Not(HasSubstr("ratings")));
  EXPECT_THAT(productPage("jason"), HasSubstr("color=\"black\""));  // mTLS all the way

  // `down`: every namespace, link, rule and process of the run is gone.
  auto [rc_down, down] = istioctl({"down"});
  EXPECT_EQ(rc_down, 0) << down;
  EXPECT_EQ(mesh_->wait(milliseconds(30000)), 0) << mesh_->log();
  auto [rc_ns, netns] = runTool(dir_, {tool("ip"), "netns", "list"});
  for (const Pod& p : pods_) {
    EXPECT_THAT(netns, Not(HasSubstr(p.netns))) << p.name;
    EXPECT_NE(::kill(p.proxy_pid, 0), 0) << p.name << " sidecar still runs";
    if (p.app_pid != 0) {
      EXPECT_NE(::kill(p.app_pid, 0), 0) << p.name << " still runs";
    }
  }
  EXPECT_NE(::kill(pilot_pid, 0), 0) << "pilot still runs";
  auto [rc_link, link] = runTool(dir_, {tool("ip"), "link", "show", bridge});
  EXPECT_NE(rc_link, 0) << link;
  auto [rc_addr, addrs] = runTool(dir_, {tool("ip"), "-4", "addr"});
  EXPECT_THAT(addrs, Not(HasSubstr(subnet.substr(0, subnet.size() - 4)))) << addrs;
  auto [rc_fwd, forward] = runTool(dir_, {tool("iptables"), "-S", "FORWARD"});
  EXPECT_THAT(forward, Not(HasSubstr(bridge))) << forward;
  EXPECT_FALSE(fs::exists(state_dir_ + "/netns.record"));
}

// A run killed before it could clean up (SIGKILL: its children stop on their parent-death
// signal, its network stays) is cleaned up by `down` from what the run recorded. Without root,
// --netns is refused before anything is made.
TEST_F(BookinfoNetnsE2eTest, KilledRunIsCleanedUpByDownAndNonRootIsRefused) {
  if (!tool("setpriv").empty()) {
    auto [rc, out] = runTool(dir_, {tool("setpriv"), "--reuid=65534", "--regid=65534",
                                    "--clear-groups", binPath("istioctl"), "local", "up",
                                    std::string(MESH_SOURCE_DIR) + "/samples/bookinfo", "--netns",
                                    "--state-dir", dir_.path() + "/nobody"});
    EXPECT_EQ(rc, 1) << out;
    EXPECT_THAT(out, HasSubstr("--netns needs root"));
  }
  std::optional<std::string> state = startMesh();
  ASSERT_TRUE(state);
  const std::string bridge = jsonString(*state, "bridge");
  std::vector<std::string> namespaces;
  std::vector<pid_t> pids;
  for (size_t pos = state->find("\"netns\":\""); pos != std::string::npos;
       pos = state->find("\"netns\":\"", pos + 1)) {
    namespaces.push_back(jsonString(state->substr(pos), "netns"));
  }
  for (const char* key : {"proxy_pid", "app_pid", "pilot_pid"}) {
    for (size_t pos = state->find(key); pos != std::string::npos; pos = state->find(key, pos + 1)) {
      pid_t pid = static_cast<pid_t>(jsonNumber(state->substr(pos - 1), key).value_or(0));
      if (pid != 0) pids.push_back(pid);
    }
  }
  ASSERT_EQ(namespaces.size(), 9u) << *state;
  mesh_->signal(SIGKILL);
  mesh_->wait(milliseconds(10000));
  // Its children go on their parent-death signal (bounded by their drain time): wait on each
  // one's pidfd.
  for (pid_t pid : pids) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) continue;  // already gone
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 30000), 1) << "pid " << pid << " of the killed run still runs";
    ::close(fd);
  }
  auto [rc_link_before, link_before] = runTool(dir_, {tool("ip"), "link", "show", bridge});
  EXPECT_EQ(rc_link_before, 0) << "the killed run's bridge should still be there: " << link_before;

  auto [rc_down, down] = istioctl({"down"});
  EXPECT_EQ(rc_down, 1) << down;  // nothing was running
  EXPECT_THAT(down, HasSubstr("removed the network namespaces and bridge it left behind"));
  auto [rc_ns, netns] = runTool(dir_, {tool("ip"), "netns", "list"});
  for (const std::string& ns : namespaces) EXPECT_THAT(netns, Not(HasSubstr(ns)));
  auto [rc_link, link] = runTool(dir_, {tool("ip"), "link", "show", bridge});
  EXPECT_NE(rc_link, 0) << link;
  auto [rc_fwd, forward] = runTool(dir_, {tool("iptables"), "-S", "FORWARD"});
  EXPECT_THAT(forward, Not(HasSubstr(bridge))) << forward;
}

}  // namespace
}  // namespace mesh::integration
