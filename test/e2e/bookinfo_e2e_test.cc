// Istio's traffic-management tasks, end to end, on the local mesh: `istioctl local up
// samples/bookinfo` (pilot, every Bookinfo and httpbin pod beside its own istio-proxy, all on
// 127.0.0.1 with OS-picked ports), config changed with `istioctl local apply` as a user would,
// and checked from the outside: the product page, response times, the sidecars' metrics, and a
// real Prometheus server scraping every sidecar.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include "test/integration/harness.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

constexpr milliseconds kWait{20000};
const std::string kNetworking = std::string(MESH_SOURCE_DIR) + "/samples/bookinfo/networking/";

// One pod of the running mesh, from state.json.
struct Pod {
  std::string name, workload;
  uint16_t admin = 0, prometheus = 0, inbound = 0;
  std::map<std::string, uint16_t> outbound;  // by service port
};

class BookinfoE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    config_dir_ = tmp_->path() + "/config";
    state_dir_ = tmp_->path() + "/state";
    ::mkdir(config_dir_.c_str(), 0700);
    // What the mesh starts with (as mesh.yaml's config): the gateway's listener exists from the
    // start, so its port is in state.json. Each test then replaces the config (useConfig).
    for (const char* f :
         {"bookinfo-gateway.yaml", "destination-rule-all.yaml", "virtual-service-all-v1.yaml"}) {
      fs::copy_file(kNetworking + f, config_dir_ + "/" + f);
    }
    std::string bin = fs::path(binPath("istioctl")).parent_path().string();
    mesh_ = new Process(
        {binPath("istioctl"), "local", "up", std::string(MESH_SOURCE_DIR) + "/samples/bookinfo",
         "--state-dir", state_dir_, "--config-dir", config_dir_, "--bin-dir", bin},
        tmp_->file("local-up.log"));
    std::string error;
    auto state = waitForFileMatching(
        state_dir_ + "/state.json", *mesh_, [](const std::string& c) { return !c.empty(); },
        milliseconds(60000), &error);  // longer than istioctl's own 20 s per start-up step
    if (!state) {
      setup_error_ = "istioctl local up: " + error;
      return;
    }
    state_ = *state;
    pilot_http_ = static_cast<uint16_t>(jsonNumber(state_, "http").value_or(0));
    entry_ = jsonString(state_, "entry");
    // Pods: each {"name":...} object of the "pods" array.
    for (size_t pos = state_.find("{\"name\":"); pos != std::string::npos;
         pos = state_.find("{\"name\":", pos + 1)) {
      std::string obj = state_.substr(pos, state_.find("}}", pos) - pos + 2);
      Pod p;
      p.name = jsonString(obj, "name");
      p.workload = jsonString(obj, "workload");
      p.admin = static_cast<uint16_t>(jsonNumber(obj, "admin").value_or(0));
      p.prometheus = static_cast<uint16_t>(jsonNumber(obj, "prometheus").value_or(0));
      p.inbound = static_cast<uint16_t>(jsonNumber(obj, "http").value_or(0));
      for (const char* sp : {"9080", "8000", "8080"}) {
        if (auto port = jsonNumber(obj, sp)) p.outbound[sp] = static_cast<uint16_t>(*port);
      }
      pods_.push_back(p);
    }
  }
  static void TearDownTestSuite() {
    if (mesh_ != nullptr) {
      mesh_->signal(SIGINT);
      std::optional<int> rc = mesh_->wait(milliseconds(30000));
      EXPECT_EQ(rc, 0) << mesh_->log();
      // Everything `up` started is gone with it.
      for (const char* key : {"proxy_pid", "app_pid", "pilot_pid"}) {
        for (size_t pos = state_.find(key); pos != std::string::npos;
             pos = state_.find(key, pos + 1)) {
          pid_t pid = static_cast<pid_t>(jsonNumber(state_.substr(pos - 1), key).value_or(0));
          if (pid == 0) continue;  // the gateway has no app
          EXPECT_NE(::kill(pid, 0), 0) << key << " " << pid << " still runs";
        }
      }
    }
    delete mesh_;
    delete tmp_;
    mesh_ = nullptr;
    tmp_ = nullptr;
    pods_.clear();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_NE(pilot_http_, 0) << state_;
    ASSERT_EQ(pods_.size(), 9u) << state_;
  }

  static const Pod& pod(const std::string& workload) {
    for (const Pod& p : pods_) {
      if (p.workload == workload) return p;
    }
    throw std::runtime_error("no pod of " + workload);
  }

  // Replaces the live config with bookinfo's defaults (destination rules, all to v1) plus
  // `files`, applied in order with `istioctl local apply`, and waits until every sidecar has
  // ACKed pilot's resulting version.
  void useConfig(const std::vector<std::string>& files) {
    std::string before = pilotVersion();
    for (const auto& e : fs::directory_iterator(config_dir_)) fs::remove(e.path());
    std::vector<std::string> argv = {binPath("istioctl"),
                                     "local",
                                     "apply",
                                     "--state-dir",
                                     state_dir_,
                                     "-f",
                                     kNetworking + "bookinfo-gateway.yaml",
                                     kNetworking + "destination-rule-all.yaml",
                                     kNetworking + "virtual-service-all-v1.yaml"};
    for (const auto& f : files) argv.push_back(kNetworking + f);
    auto [rc, out] = runTool(*tmp_, argv);
    ASSERT_EQ(rc, 0) << out;
    waitSynced(before);
  }

  static std::string pilotVersion() {
    return jsonString(httpGet(pilot_http_, "/debug/configz").body, "version");
  }

  // Waits until pilot's config version differs from `before` and every sidecar ACKed it. The
  // debug pages have no event to block on; each request's round trip paces the polls.
  void waitSynced(const std::string& before) {
    const auto deadline = Clock::now() + kWait;
    std::string version, syncz;
    while (Clock::now() < deadline) {
      version = pilotVersion();
      if (version.empty() || version == before) continue;
      syncz = httpGet(pilot_http_, "/debug/syncz").body;
      if (countOf(syncz, "\"config_version\":\"" + version + "\"") == pods_.size() &&
          countOf(syncz, "\"status\":\"SYNCED\"") == pods_.size() && pilotVersion() == version) {
        return;
      }
    }
    FAIL() << "sidecars did not sync pilot's version " << version << " (was " << before << "):\n"
           << syncz << "\nconfigz: " << httpGet(pilot_http_, "/debug/configz").body;
  }

  // GET /productpage through the ingress gateway (Istio's GATEWAY_URL), optionally as a
  // logged-in user.
  static HttpResponse productPage(const std::string& user = "") {
    std::vector<std::string> headers;
    if (!user.empty()) headers.push_back("Cookie: user=" + user);
    return httpGet(pod("istio-ingressgateway").outbound.at("8080"), "/productpage", headers,
                   "bookinfo.example.com", milliseconds(15000));
  }

  // Which reviews pod served the page: "reviews-v1-0", ... or "" (reviews failed).
  static std::string reviewsPod(const std::string& html) {
    std::smatch m;
    if (std::regex_search(html, m, std::regex("reviews-v[123]-[0-9]+"))) return m.str();
    return "";
  }

  static std::string metrics(const Pod& p) {
    return httpGet(p.prometheus, "/stats/prometheus").body;
  }
  // istio_requests_total of a pod over `labels`, once it has reached `at_least` (a proxy records
  // a request when it ends, which can be just after its client read the response), or after
  // the wait's bound.
  static double requestsWhen(const Pod& p, const std::vector<std::string>& labels,
                             double at_least) {
    std::string page = waitForPage(p.prometheus, "/stats/prometheus", [&](const std::string& m) {
      return promSum(m, "istio_requests_total", labels) >= at_least;
    });
    return promSum(page, "istio_requests_total", labels);
  }

  static TempDir* tmp_;
  static Process* mesh_;
  static std::string setup_error_, state_, config_dir_, state_dir_, entry_;
  static uint16_t pilot_http_;
  static std::vector<Pod> pods_;
};

TempDir* BookinfoE2eTest::tmp_ = nullptr;
Process* BookinfoE2eTest::mesh_ = nullptr;
std::string BookinfoE2eTest::setup_error_, BookinfoE2eTest::state_, BookinfoE2eTest::config_dir_,
    BookinfoE2eTest::state_dir_, BookinfoE2eTest::entry_;
uint16_t BookinfoE2eTest::pilot_http_ = 0;
std::vector<Pod> BookinfoE2eTest::pods_;

// https://istio.io/latest/docs/tasks/traffic-management/ingress/ingress-control/ and the entry
// URL `istioctl local up` prints.
TEST_F(BookinfoE2eTest, IngressGatewayServesTheProductPage) {
  useConfig({});
  const uint16_t gw = pod("istio-ingressgateway").outbound.at("8080");
  ASSERT_EQ(entry_, "http://127.0.0.1:" + std::to_string(gw) + "/productpage");
  // Only the paths bookinfo's VirtualService binds to the gateway are routed.
  EXPECT_EQ(httpGet(gw, "/headers", {}, "bookinfo.example.com").status, 404);
  EXPECT_EQ(httpGet(gw, "/api/v1/products", {}, "bookinfo.example.com").status, 200);
  EXPECT_GE(requestsWhen(pod("istio-ingressgateway"),
                         {"reporter=\"source\"", "source_workload=\"istio-ingressgateway\"",
                          "destination_service_name=\"productpage\"", "response_code=\"200\""},
                         1),
            1);
  HttpResponse r = productPage();
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_THAT(r.body, HasSubstr("William Shakespeare"));  // details
  EXPECT_THAT(r.body, HasSubstr("Reviewer1"));            // reviews
  // Both hops were seen by sidecars: productpage's inbound, and its outbound to reviews.
  EXPECT_GE(requestsWhen(pod("productpage-v1"),
                         {"reporter=\"source\"", "destination_service_name=\"reviews\""}, 1),
            1);
  // reviews' sidecar names its caller (Istio's metadata exchange), as Istio's dashboards expect.
  EXPECT_GE(requestsWhen(pod("reviews-v1"),
                         {"reporter=\"destination\"", "destination_workload=\"reviews-v1\"",
                          "destination_version=\"v1\"", "source_workload=\"productpage-v1\"",
                          "source_app=\"productpage\"", "source_version=\"v1\""},
                         1),
            1);
  EXPECT_GE(requestsWhen(pod("productpage-v1"),
                         {"reporter=\"source\"", "destination_workload=\"reviews-v1\""}, 1),
            1);
}

// https://istio.io/latest/docs/tasks/traffic-management/request-routing/
TEST_F(BookinfoE2eTest, RequestRoutingAllToV1ThenJasonToV2) {
  useConfig({});
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = productPage();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(reviewsPod(r.body), "reviews-v1-0");
    EXPECT_THAT(r.body, Not(HasSubstr("glyphicon-star")));
  }
  useConfig({"virtual-service-reviews-test-v2.yaml"});
  for (int i = 0; i < 10; ++i) {
    HttpResponse jason = productPage("jason");
    ASSERT_EQ(jason.status, 200);
    EXPECT_EQ(reviewsPod(jason.body), "reviews-v2-0");
    EXPECT_THAT(jason.body, HasSubstr("color=\"black\""));
    HttpResponse anon = productPage();
    EXPECT_EQ(reviewsPod(anon.body), "reviews-v1-0");
  }
}

// https://istio.io/latest/docs/tasks/traffic-management/traffic-shifting/
TEST_F(BookinfoE2eTest, TrafficShifting50PercentToV3ThenAll) {
  useConfig({"virtual-service-reviews-50-v3.yaml"});
  std::map<std::string, int> seen;
  constexpr int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) ++seen[reviewsPod(productPage().body)];
  // 50/50 over 200: standard deviation 7.1; 5 sigma is 35.
  EXPECT_EQ(seen["reviews-v1-0"] + seen["reviews-v3-0"], kRequests);
  EXPECT_NEAR(seen["reviews-v1-0"], 100, 35);
  EXPECT_NEAR(seen["reviews-v3-0"], 100, 35);
  useConfig({"virtual-service-reviews-v3.yaml"});
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = productPage();
    EXPECT_EQ(reviewsPod(r.body), "reviews-v3-0");
    EXPECT_THAT(r.body, HasSubstr("color=\"red\""));
  }
}

// https://istio.io/latest/docs/tasks/traffic-management/fault-injection/ (delay)
TEST_F(BookinfoE2eTest, FaultInjectionDelayForJason) {
  useConfig({"virtual-service-reviews-test-v2.yaml", "virtual-service-ratings-test-delay.yaml"});
  auto t0 = Clock::now();
  HttpResponse jason = productPage("jason");
  auto took = Clock::now() - t0;
  ASSERT_EQ(jason.status, 200);
  // ratings answers reviews after 7 s; productpage gives up on reviews after 3 s, as Istio's
  // task documents: the page shows the reviews error.
  EXPECT_THAT(jason.body, HasSubstr("Sorry, product reviews are currently unavailable"));
  EXPECT_GE(took, milliseconds(2900));
  EXPECT_LT(took, milliseconds(7000));
  t0 = Clock::now();
  HttpResponse anon = productPage();
  EXPECT_LT(Clock::now() - t0, milliseconds(2900));
  EXPECT_EQ(reviewsPod(anon.body), "reviews-v1-0");
}

// https://istio.io/latest/docs/tasks/traffic-management/fault-injection/ (abort)
TEST_F(BookinfoE2eTest, FaultInjectionAbortForJason) {
  useConfig({"virtual-service-reviews-test-v2.yaml", "virtual-service-ratings-test-abort.yaml"});
  HttpResponse jason = productPage("jason");
  ASSERT_EQ(jason.status, 200);
  EXPECT_EQ(reviewsPod(jason.body), "reviews-v2-0");
  EXPECT_THAT(jason.body, HasSubstr("Ratings service is currently unavailable"));
  // reviews-v2's sidecar answered the call to ratings itself, with the abort status and FI.
  EXPECT_GE(requestsWhen(pod("reviews-v2"),
                         {"reporter=\"source\"", "destination_service_name=\"ratings\"",
                          "response_code=\"500\"", "response_flags=\"FI\""},
                         1),
            1);
  EXPECT_THAT(productPage().body, HasSubstr("Reviewer1"));
}

// https://istio.io/latest/docs/tasks/traffic-management/request-timeouts/
TEST_F(BookinfoE2eTest, RequestTimeoutOnReviews) {
  useConfig({"virtual-service-ratings-delay-2s.yaml", "virtual-service-reviews-timeout.yaml"});
  auto t0 = Clock::now();
  HttpResponse r = productPage();
  auto took = Clock::now() - t0;
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("Sorry, product reviews are currently unavailable"));
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(1900));
  EXPECT_GE(requestsWhen(pod("productpage-v1"),
                         {"reporter=\"source\"", "destination_service_name=\"reviews\"",
                          "response_code=\"504\"", "response_flags=\"UT\""},
                         1),
            1);
}

// Retries (VirtualService retries on 5xx): each failing call is tried 1 + 3 times.
TEST_F(BookinfoE2eTest, RetriesOnHttpbin5xx) {
  useConfig({"virtual-service-httpbin-retry.yaml"});
  auto inbound503 = [] {
    double n = 0;
    for (const char* w : {"httpbin-v1", "httpbin-v2"}) {
      n += promSum(metrics(pod(w)), "istio_requests_total",
                   {"reporter=\"destination\"", "response_code=\"503\""});
    }
    return n;
  };
  const double before = inbound503();
  const uint16_t out = pod("productpage-v1").outbound.at("8000");
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = httpGet(out, "/status/503", {}, "httpbin:8000");
    EXPECT_EQ(r.status, 503);
  }
  EXPECT_EQ(inbound503() - before, 20);  // 5 calls x (1 try + 3 retries)
}

// https://istio.io/latest/docs/tasks/traffic-management/circuit-breaking/
TEST_F(BookinfoE2eTest, CircuitBreakingUnderConcurrentLoad) {
  useConfig({"destination-rule-httpbin-circuit-breaker.yaml"});
  const uint16_t out = pod("productpage-v1").outbound.at("8000");
  std::atomic<int> ok{0}, overflow{0}, other{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        HttpResponse r = httpGet(out, "/delay/20", {}, "httpbin:8000");
        if (r.status == 200) {
          ++ok;
        } else if (r.status == 503) {
          ++overflow;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(overflow.load(), 0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(requestsWhen(pod("productpage-v1"),
                         {"reporter=\"source\"", "destination_service_name=\"httpbin\"",
                          "response_flags=\"UO\""},
                         overflow.load()),
            overflow.load());
}

// https://istio.io/latest/docs/tasks/traffic-management/mirroring/
TEST_F(BookinfoE2eTest, MirroringV1ToV2) {
  useConfig({"destination-rule-httpbin.yaml", "virtual-service-httpbin-mirror.yaml"});
  auto v2_inbound = [] {
    return promSum(metrics(pod("httpbin-v2")), "istio_requests_total",
                   {"reporter=\"destination\""});
  };
  const double before = v2_inbound();
  const uint16_t out = pod("productpage-v1").outbound.at("8000");
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = httpGet(out, "/headers", {}, "httpbin:8000");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-version"), "v1");  // the caller sees only the primary
  }
  // The copies are fire and forget: wait (bounded) for v2's sidecar to have seen all 20.
  const auto deadline = Clock::now() + kWait;
  while (v2_inbound() - before < 20 && Clock::now() < deadline) {
  }
  EXPECT_EQ(v2_inbound() - before, 20)
      << "productpage's sidecar:\n"
      << httpGet(pod("productpage-v1").admin, "/stats?filter=httpbin").body
      << "\nhttpbin-v2's sidecar:\n"
      << httpGet(pod("httpbin-v2").admin, "/stats?filter=inbound").body;
  // The copy's Host is suffixed "-shadow" (httpbin's /last shows the request before it).
  std::string last = httpGet(pod("httpbin-v2").inbound, "/last", {}, "httpbin:8000").body;
  EXPECT_THAT(last, HasSubstr("httpbin-shadow"));
}

// A real Prometheus scrapes every sidecar; istio_requests_total by destination_version agrees
// with what the sidecars count.
TEST_F(BookinfoE2eTest, PrometheusSeesRequestsByDestinationVersion) {
  if (!fs::exists("/usr/bin/prometheus")) GTEST_SKIP() << "prometheus is not installed";
  useConfig({"virtual-service-reviews-50-v3.yaml"});
  for (int i = 0; i < 40; ++i) ASSERT_EQ(productPage().status, 200);

  // The sidecars' own totals for reviews, by version, as the destination reports them.
  std::map<std::string, double> want;
  for (const char* v : {"v1", "v2", "v3"}) {
    for (const Pod& p : pods_) {
      want[v] += promSum(metrics(p), "istio_requests_total",
                         {"reporter=\"destination\"", "destination_service_name=\"reviews\"",
                          std::string("destination_version=\"") + v + "\""});
    }
  }
  ASSERT_GE(want["v1"] + want["v3"], 40);

  TempDir dir;
  std::string targets;
  for (const Pod& p : pods_) {
    targets += std::string(targets.empty() ? "" : ", ") +
               "'127.0.0.1:" + std::to_string(p.prometheus) + "'";
  }
  writeFileAtomic(dir.file("prometheus.yml"),
                  "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                  "scrape_configs:\n"
                  "- job_name: sidecars\n"
                  "  metrics_path: /stats/prometheus\n"
                  "  static_configs: [{targets: [" +
                      targets + "]}]\n");
  Process prom({"/usr/bin/prometheus", "--config.file=" + dir.file("prometheus.yml"),
                "--storage.tsdb.path=" + dir.path() + "/data", "--web.listen-address=127.0.0.1:0",
                "--log.level=info"},
               dir.file("prometheus.log"));
  // Prometheus logs the address it bound (msg="Listening on" address=127.0.0.1:PORT).
  std::string error;
  auto log = waitForFileMatching(
      dir.file("prometheus.log"), prom,
      [](const std::string& c) {
        return c.find("Server is ready to receive web requests") != c.npos;
      },
      kWait, &error);
  ASSERT_TRUE(log.has_value()) << error;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*log, m,
                                std::regex("Listening on\" address=127\\.0\\.0\\.1:([1-9][0-9]*)")))
      << *log;
  const uint16_t port = static_cast<uint16_t>(std::stoi(m[1].str()));

  const std::string query =
      "/api/v1/query?query=sum%20by%20(destination_version)%20(istio_requests_total%7B"
      "reporter%3D%22destination%22%2Cdestination_service_name%3D%22reviews%22%7D)";
  auto valueOf = [](const std::string& body, const std::string& version) -> double {
    std::smatch vm;
    std::regex re("\"destination_version\":\"" + version +
                  "\"\\},\"value\":\\[[0-9.]+,\"([0-9.]+)\"");
    return std::regex_search(body, vm, re) ? std::stod(vm[1].str()) : -1;
  };
  // Scrapes happen every second: wait (bounded) until Prometheus has the sidecars' totals.
  const auto deadline = Clock::now() + kWait;
  std::string body;
  while (Clock::now() < deadline) {
    body = httpGet(port, query).body;
    if (valueOf(body, "v1") == want["v1"] && valueOf(body, "v3") == want["v3"]) break;
  }
  EXPECT_EQ(valueOf(body, "v1"), want["v1"]) << body;
  EXPECT_EQ(valueOf(body, "v3"), want["v3"]) << body;
  EXPECT_GT(want["v1"], 0);
  EXPECT_GT(want["v3"], 0);
}

}  // namespace
}  // namespace mesh::integration
