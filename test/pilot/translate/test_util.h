// Helpers for translation tests: Istio YAML in (validated, as pilot would only translate valid
// config), a registry and push context built from it, proxy resources out, each result checked
// by the proxy's own snapshot builder.
#pragma once

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "config/kubernetes.h"
#include "config/resource.h"
#include "config/validation.h"
#include "core/config/yaml_proto.h"
#include "core/stats/store.h"
#include "pilot/model/aggregate_registry.h"
#include "pilot/model/kubernetes_registry.h"
#include "pilot/model/service_entry_registry.h"
#include "pilot/translate/push_context.h"
#include "pilot/translate/translator.h"
#include "proxy/config/snapshot_builder.h"
#include "proxy/telemetry/istio_stats.h"
#include "proxy/v1/config.pb.h"
#include "test/pilot/istio_yaml.h"

// Translation tests live in this namespace too, so they use these helpers without a using-list.
namespace mesh::pilot::translate::testing {

namespace v1 = mesh::proxy::v1;

using pilot::testing::destinationRule;
using pilot::testing::meshService;
using pilot::testing::peerAuthentication;
using pilot::testing::serviceEntry;
using pilot::testing::sidecar;
using pilot::testing::virtualService;
using pilot::testing::workloadEntry;
using pilot::testing::yamlStream;

inline std::string readFile(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string sample(const std::string& name) {
  return readFile(std::string(MESH_SOURCE_DIR) + "/samples/bookinfo/networking/" + name);
}

inline std::string testdata(const std::string& name) {
  return readFile(std::string(MESH_PILOT_TESTDATA) + "/" + name);
}

// The proxy accepts the resources: every translation result must pass this.
inline ::testing::AssertionResult proxyAccepts(const v1::Bootstrap& bootstrap) {
  stats::Store store;
  mesh::proxy::IstioTelemetry telemetry{store};
  mesh::proxy::SnapshotContext ctx{store, telemetry,
                                   [](const std::string&) -> StatusOr<std::vector<std::string>> {
                                     return std::vector<std::string>{"10.99.0.1"};
                                   }};
  mesh::proxy::BuildInput in;
  in.config = std::make_shared<v1::Bootstrap>(bootstrap);
  in.file = "translated";
  auto snap = mesh::proxy::buildSnapshot(in, ctx);
  if (snap.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << snap.status().toString() << "\n"
                                       << bootstrap.DebugString();
}

// YAML in, translations out.
class Mesh {
 public:
  // Every document must load and validate; a test with broken input is a broken test.
  explicit Mesh(const std::vector<std::string>& yaml_docs, PushOptions options = {},
                TranslateOptions topts = {}) {
    for (size_t i = 0; i < yaml_docs.size(); ++i) {
      config::LoadedConfig loaded =
          config::loadConfigStream(yaml_docs[i], "input" + std::to_string(i) + ".yaml");
      EXPECT_TRUE(loaded.errors.empty()) << loaded.errors.toStatus().toString();
      for (auto& r : loaded.resources) resources_.push_back(std::move(r));
      config::LoadedKubernetes kube =
          config::loadKubernetesStream(yaml_docs[i], "input" + std::to_string(i) + ".yaml");
      EXPECT_TRUE(kube.errors.empty()) << kube.errors.toStatus().toString();
      for (auto& o : kube.objects) kube_objects_.push_back(std::move(o));
    }
    auto reports = config::validateResources(resources_);
    for (size_t i = 0; i < reports.size(); ++i) {
      EXPECT_TRUE(reports[i].ok())
          << resources_[i].displayName() << ": " << reports[i].errors.toStatus().toString();
    }
    service_entries_.update(resources_);
    kubernetes_.update(kube_objects_);
    push_ = std::make_unique<PushContext>(registry_, resources_, options);
    translator_ = std::make_unique<Translator>(*push_, std::move(topts));
  }

  // Translates and checks that the proxy accepts the result.
  Translation translate(const ProxyIdentity& proxy) {
    Translation t = translator_->translate(proxy);
    EXPECT_TRUE(proxyAccepts(t.bootstrap));
    return t;
  }

  PushContext& push() { return *push_; }
  Translator& translator() { return *translator_; }

 private:
  std::vector<config::Resource> resources_;
  std::vector<config::KubernetesObject> kube_objects_;
  model::ServiceEntryRegistry service_entries_;
  model::KubernetesRegistry kubernetes_;
  model::AggregateRegistry registry_{{&kubernetes_, &service_entries_}};
  std::unique_ptr<PushContext> push_;
  std::unique_ptr<Translator> translator_;
};

// One mesh, one proxy: for the tests that translate once.
inline Translation translateOnce(const std::vector<std::string>& yaml_docs,
                                 const ProxyIdentity& proxy, PushOptions options = {}) {
  Mesh mesh(yaml_docs, options);
  return mesh.translate(proxy);
}

inline ProxyIdentity proxyIn(const std::string& ns, std::map<std::string, std::string> labels = {},
                             const std::string& ip = "") {
  ProxyIdentity p;
  p.id = "sidecar~" + ip + "~test." + ns + "~" + ns + ".svc.cluster.local";
  p.namespace_name = ns;
  p.workload_name = "test";
  p.labels = std::move(labels);
  p.ip = ip;
  return p;
}

inline const v1::Cluster* findCluster(const v1::Bootstrap& b, const std::string& name) {
  for (const auto& c : b.clusters()) {
    if (c.name() == name) return &c;
  }
  return nullptr;
}

inline const v1::RouteConfiguration* findRouteConfig(const v1::Bootstrap& b,
                                                     const std::string& name) {
  for (const auto& rc : b.route_configs()) {
    if (rc.name() == name) return &rc;
  }
  return nullptr;
}

inline const v1::VirtualHost* findVirtualHost(const v1::Bootstrap& b, const std::string& rc_name,
                                              const std::string& vh_name) {
  const v1::RouteConfiguration* rc = findRouteConfig(b, rc_name);
  if (rc == nullptr) return nullptr;
  for (const auto& vh : rc->virtual_hosts()) {
    if (vh.name() == vh_name) return &vh;
  }
  return nullptr;
}

inline const v1::Listener* findListener(const v1::Bootstrap& b, const std::string& name) {
  for (const auto& l : b.listeners()) {
    if (l.name() == name) return &l;
  }
  return nullptr;
}

inline std::vector<std::string> clusterNames(const v1::Bootstrap& b) {
  std::vector<std::string> out;
  for (const auto& c : b.clusters()) out.push_back(c.name());
  return out;
}

// A message of the proxy schema from YAML, with the proxy's own loader.
template <typename Message>
Message fromYaml(const std::string& yaml) {
  Message m;
  config::LoadOptions opts;
  opts.file = "expected.yaml";
  config::LoadResult r = config::loadYaml(yaml, &m, opts);
  EXPECT_TRUE(r.ok()) << r.errors.toStatus().toString();
  return m;
}

// `expected` and `actual` are the same message; if not, the differences and the actual message.
template <typename Message>
::testing::AssertionResult sameMessage(const Message& expected, const Message& actual) {
  std::string diff;
  google::protobuf::util::MessageDifferencer d;
  d.ReportDifferencesToString(&diff);
  if (d.Compare(expected, actual)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff << "\nactual:\n" << actual.DebugString();
}

// `actual` is the message that `yaml` describes (in the proxy schema).
template <typename Message>
::testing::AssertionResult equalsYaml(const Message& actual, const std::string& yaml) {
  return sameMessage(fromYaml<Message>(yaml), actual);
}

// Istio's default retry policy as every HTTP route without `retries` carries it, as a line of a
// Route's RouteAction in YAML.
constexpr char kDefaultRetryYaml[] =
    "retryPolicy: {retryOn: \"connect-failure,refused-stream,unavailable,cancelled,"
    "retriable-status-codes\", numRetries: 2, retriableStatusCodes: [503]}";

// Service web in namespace a: HTTP ports 80 (http) and 81 (http-admin), endpoints 10.1.0.1
// (version v1) and 10.1.0.2 (version v2).
inline std::string webInA() {
  return meshService("web", "a", R"(  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 81, name: http-admin, protocol: HTTP}
  endpoints:
  - {address: 10.1.0.1, labels: {version: v1}}
  - {address: 10.1.0.2, labels: {version: v2}}
)");
}

}  // namespace mesh::pilot::translate::testing
