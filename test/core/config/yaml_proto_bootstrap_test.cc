// The loader on the proxy's real schema (api/proxy/v1/config.proto), and multi-document streams
// cut by splitYamlDocuments keeping the stream's line numbers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/config/yaml_proto.h"
#include "proxy/v1/config.pb.h"

namespace mesh::config {
namespace {

using proxy::v1::Bootstrap;
using proxy::v1::Cluster;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::vector<std::string> errorLines(const LoadResult& r) {
  std::vector<std::string> out;
  for (const ValidationError& e : r.errors.errors()) out.push_back(e.toString());
  return out;
}

TEST(YamlProtoBootstrapTest, LoadsRealisticProxyFile) {
  Bootstrap b;
  LoadResult r = loadYamlFile(MESH_TESTDATA_DIR "/proxy.yaml", &b, {.file = "proxy.yaml"});
  ASSERT_TRUE(r.ok()) << r.errors.toString();
  EXPECT_TRUE(r.warnings.empty());

  EXPECT_EQ(b.node().workload_name(), "reviews-v1");
  EXPECT_THAT(b.node().labels(),
              UnorderedElementsAre(Pair("app", "reviews"), Pair("version", "v1")));
  ASSERT_EQ(b.listeners_size(), 2);
  EXPECT_EQ(b.listeners(0).direction(), proxy::v1::INBOUND);
  const auto& inbound_route = b.listeners(0).http().route_config().virtual_hosts(0).routes(0);
  EXPECT_EQ(inbound_route.match().prefix(), "/");
  EXPECT_EQ(inbound_route.route().cluster(), "inbound|9080||");
  const auto& outbound = b.listeners(1).http();
  EXPECT_EQ(outbound.route_config_name(), "outbound");
  EXPECT_EQ(outbound.idle_timeout().seconds(), 3600);
  EXPECT_TRUE(outbound.has_generate_request_id());
  EXPECT_FALSE(outbound.generate_request_id().value());
  EXPECT_TRUE(outbound.access_log().enabled());
  EXPECT_DOUBLE_EQ(outbound.tracing().random_sampling().value(), 0.5);

  const auto& canary = b.route_configs(0).virtual_hosts(0).routes(0);
  EXPECT_EQ(canary.match().headers(0).string_match().exact(), "jason");
  EXPECT_EQ(canary.route().weighted_clusters().clusters(1).weight(), 10u);
  EXPECT_EQ(canary.route().timeout().seconds(), 2);
  EXPECT_EQ(canary.route().timeout().nanos(), 500'000'000);
  EXPECT_EQ(canary.route().retry_policy().per_try_timeout().nanos(), 500'000'000);
  EXPECT_THAT(canary.route().retry_policy().retriable_status_codes(), ElementsAre(503u, 504u));
  EXPECT_EQ(b.route_configs(0).virtual_hosts(0).routes(1).direct_response().body(), "ok");

  ASSERT_EQ(b.clusters_size(), 3);
  EXPECT_EQ(b.clusters(0).connect_timeout().seconds(), 1);
  const Cluster& ratings = b.clusters(1);
  EXPECT_EQ(ratings.type(), Cluster::STRICT_DNS);
  EXPECT_EQ(ratings.lb_policy(), Cluster::LEAST_REQUEST);
  EXPECT_EQ(ratings.connect_timeout().nanos(), 250'000'000);
  EXPECT_EQ(ratings.endpoints(0).workload().labels().at("version"), "v1");
  EXPECT_EQ(b.clusters(2).ring_hash_minimum_ring_size(), 2048u);
  EXPECT_TRUE(b.telemetry().metrics().value());

  // Lines for later semantic checks ("cluster 'x' not found" at a route).
  EXPECT_EQ(r.source_map.lineOf("route_configs[0].virtualHosts[0].routes[0].route"), 46);
  EXPECT_EQ(r.source_map.lineOf("routeConfigs[0].virtualHosts[0].routes[0].route.timeout"), 51);
  EXPECT_EQ(r.source_map.lineOf("clusters[1].connectTimeout"), 67);
  EXPECT_EQ(r.source_map.lineOf("clusters[1].endpoints[0].workload.labels[app]"), 77);
}

TEST(YamlProtoBootstrapTest, ReportsEveryErrorOfAFileAtOnce) {
  constexpr std::string_view kText =
      "node:\n"                               // 1
      "  id: a\n"                             // 2
      "  labels: [app]\n"                     // 3
      "admin: {adress: x}\n"                  // 4
      "listeners:\n"                          // 5
      "- name: in\n"                          // 6
      "  direction: SIDEWAYS\n"               // 7
      "  http:\n"                             // 8
      "    idleTimeout: 1 hour\n"             // 9
      "    generateRequestId: 1\n"            // 10
      "clusters:\n"                           // 11
      "- name: c\n"                           // 12
      "  connectTimeout: fast\n"              // 13
      "  lbPolicy: RR\n"                      // 14
      "  endpoints:\n"                        // 15
      "  - {address: 10.0.0.1, port: 80}\n"   // 16
      "  - {address: 10.0.0.2, port: abc}\n"  // 17
      "  - {address: 10.0.0.3, port: -1}\n"   // 18
      "route_configs:\n"                      // 19
      "- name: r\n"                           // 20
      "  virtualHosts:\n"                     // 21
      "  - routes:\n"                         // 22
      "    - route: {cluster: c}\n"           // 23
      "      redirect: {host: x}\n";          // 24
  Bootstrap b;
  LoadResult r = loadYaml(kText, &b, {.file = "proxy.yaml"});
  EXPECT_THAT(
      errorLines(r),
      ElementsAre(
          "proxy.yaml:3: node.labels: expected a mapping, got a list",
          "proxy.yaml:4: admin: unknown field 'adress' (did you mean 'address'?)",
          "proxy.yaml:7: listeners[0].direction: unknown value 'SIDEWAYS'; expected one of "
          "OUTBOUND, INBOUND",
          "proxy.yaml:9: listeners[0].http.idleTimeout: invalid duration '1 hour'; expected e.g. "
          "'1.5s', '250ms', '2h45m'",
          "proxy.yaml:10: listeners[0].http.generateRequestId: expected true or false, got '1'",
          "proxy.yaml:13: clusters[0].connectTimeout: invalid duration 'fast'; expected e.g. "
          "'1.5s', '250ms', '2h45m'",
          "proxy.yaml:14: clusters[0].lbPolicy: unknown value 'RR'; expected one of ROUND_ROBIN, "
          "LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV",
          "proxy.yaml:17: clusters[0].endpoints[1].port: expected an unsigned integer, got 'abc'",
          "proxy.yaml:18: clusters[0].endpoints[2].port: expected an unsigned integer, got a "
          "negative value '-1'",
          "proxy.yaml:24: route_configs[0].virtualHosts[0].routes[0]: fields 'route' and "
          "'redirect' are both in oneof 'action'; set only one"));
  // The rest of the file was still read.
  EXPECT_EQ(b.clusters(0).endpoints(0).port(), 80u);
  EXPECT_EQ(r.errors.toStatus().code(), StatusCode::kInvalidArgument);
}

constexpr std::string_view kClusterStream =
    "# clusters of the reviews service\n"  // 1
    "---\n"                                // 2
    "name: a\n"                            // 3
    "connectTimeout: 1s\n"                 // 4
    "---\n"                                // 5
    "# nothing but a comment\n"            // 6
    "---\n"                                // 7
    "name: b\n"                            // 8
    "endpoints:\n"                         // 9
    "- {address: x, port: -1}\n"           // 10
    "...\n"                                // 11
    "--- # the last one\n"                 // 12
    "name: c\n"                            // 13
    "lbPolicy: RR\n";                      // 14

TEST(YamlProtoBootstrapTest, SplitDocumentsKeepStreamLines) {
  StatusOr<std::vector<YamlDocument>> docs = splitYamlDocuments(kClusterStream, "clusters.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status().toString();
  ASSERT_EQ(docs->size(), 3u);  // the comment-only document is dropped
  EXPECT_EQ((*docs)[0].first_line, 2);
  EXPECT_EQ((*docs)[0].text, "---\nname: a\nconnectTimeout: 1s\n");
  EXPECT_EQ((*docs)[1].first_line, 7);
  EXPECT_EQ((*docs)[2].first_line, 12);

  std::vector<std::string> errors;
  std::vector<Cluster> clusters;
  for (const YamlDocument& doc : *docs) {
    Cluster c;
    LoadResult r = loadYaml(doc.text, &c, {.file = "clusters.yaml", .first_line = doc.first_line});
    for (const ValidationError& e : r.errors.errors()) errors.push_back(e.toString());
    if (c.name() == "a") {
      EXPECT_EQ(r.source_map.lineOf("connectTimeout"), 4);
    }
    clusters.push_back(c);
  }
  EXPECT_THAT(errors,
              ElementsAre("clusters.yaml:10: endpoints[0].port: expected an unsigned integer, got "
                          "a negative value '-1'",
                          "clusters.yaml:14: lbPolicy: unknown value 'RR'; expected one of "
                          "ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV"));
  EXPECT_EQ(clusters[0].connect_timeout().seconds(), 1);
  EXPECT_EQ(clusters[1].name(), "b");
  EXPECT_EQ(clusters[2].name(), "c");
}

TEST(YamlProtoBootstrapTest, SplitBareFirstDocumentAndCrLf) {
  StatusOr<std::vector<YamlDocument>> docs =
      splitYamlDocuments("name: a\r\n---\r\nname: b\r\n---\r\n", "c.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status().toString();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[0].first_line, 1);
  EXPECT_EQ((*docs)[0].text, "name: a\r\n");
  EXPECT_EQ((*docs)[1].first_line, 2);

  // "---" inside a block scalar is indented, so it is content, not a marker.
  docs = splitYamlDocuments("body: |\n  ---\n  text\n---\nname: b\n", "c.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status().toString();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[1].first_line, 4);

  docs = splitYamlDocuments("# only comments\n---\n\n", "c.yaml");
  ASSERT_TRUE(docs.ok()) << docs.status().toString();
  EXPECT_TRUE(docs->empty());
}

TEST(YamlProtoBootstrapTest, SplitReportsEveryBrokenDocumentWithStreamLine) {
  StatusOr<std::vector<YamlDocument>> docs = splitYamlDocuments(
      "name: a\n"      // 1
      "---\n"          // 2
      "name: [b\n"     // 3
      "port: 2\n"      // 4
      "---\n"          // 5
      "name: c\n"      // 6
      "---\n"          // 7
      "name: d: e\n",  // 8
      "c.yaml");
  ASSERT_FALSE(docs.ok());
  EXPECT_EQ(docs.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(docs.status().message(),
              HasSubstr("c.yaml:4: invalid YAML: end of sequence flow not found\n"
                        "c.yaml:8: invalid YAML: illegal map value"));
}

}  // namespace
}  // namespace mesh::config
