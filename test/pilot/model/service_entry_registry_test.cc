#include "pilot/model/service_entry_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/pilot/istio_yaml.h"

namespace mesh::pilot::model {
namespace {

using pilot::testing::meshService;
using pilot::testing::serviceEntry;
using pilot::testing::workloadEntry;
using pilot::testing::yamlStream;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::vector<config::Resource> load(const std::string& yaml) {
  config::LoadedConfig c = config::loadConfigStream(yaml, "registry.yaml");
  EXPECT_TRUE(c.errors.empty()) << c.errors.toString();
  return std::move(c.resources);
}

// A ServiceEntry `name` (no namespace: the loader's default) resolving `host` by DNS, one HTTP
// port.
std::string dnsEntry(const std::string& name, const std::string& host, uint32_t port = 80) {
  return serviceEntry(name, "",
                      "  hosts: [" + host + "]\n  resolution: DNS\n  ports: [{number: " +
                          std::to_string(port) + ", name: http, protocol: HTTP}]\n");
}

TEST(ServiceEntryRegistryTest, EveryHostIsAServiceWithTheEntrysPortsAndEndpoints) {
  ServiceEntryRegistry r;
  r.update(load(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: prod, labels: {team: a}}
spec:
  hosts: [api.prod.svc.cluster.local, api.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  exportTo: ["."]
  ports:
  - {number: 80, name: http-main, protocol: HTTP, targetPort: 8080}
  - {number: 9000, name: grpc-admin}
  endpoints:
  - address: 10.1.0.1
    ports: {grpc-admin: 9100}
    labels: {app: api, version: v1}
    locality: us-east1/b
    serviceAccount: api
    weight: 3
)"));
  auto services = r.services();
  ASSERT_THAT(services, SizeIs(2));
  const Service& ext = *services[0];  // sorted by hostname
  EXPECT_EQ(ext.hostname, "api.example.com");
  EXPECT_EQ(ext.name, "api.example.com");
  const Service& s = *services[1];
  EXPECT_EQ(s.hostname, "api.prod.svc.cluster.local");
  EXPECT_EQ(s.name, "api");
  EXPECT_EQ(s.namespace_name, "prod");
  EXPECT_EQ(s.labels.at("team"), "a");
  EXPECT_THAT(s.export_to, ElementsAre("."));
  EXPECT_EQ(s.resolution, Resolution::kStatic);
  EXPECT_FALSE(s.mesh_external);
  ASSERT_THAT(s.ports, SizeIs(2));
  EXPECT_EQ(s.ports[0].protocol, Protocol::kHttp);
  EXPECT_EQ(s.ports[0].target_port, 8080u);
  EXPECT_EQ(s.ports[1].protocol, Protocol::kGrpc);  // from the name
  const auto& eps = r.endpoints(s);
  ASSERT_THAT(eps, SizeIs(1));
  const Endpoint& e = eps[0];
  EXPECT_EQ(e.address, "10.1.0.1");
  EXPECT_EQ(e.portFor(s.ports[0]), 8080u);
  EXPECT_EQ(e.portFor(s.ports[1]), 9100u);
  EXPECT_EQ(e.labels.at("version"), "v1");
  EXPECT_EQ(e.locality, "us-east1/b");
  EXPECT_EQ(e.service_account, "api");
  EXPECT_EQ(e.namespace_name, "prod");
  EXPECT_EQ(e.weight, 3u);
  EXPECT_TRUE(e.healthy);
}

TEST(ServiceEntryRegistryTest, WorkloadSelectorPicksWorkloadEntriesOfTheSameNamespace) {
  ServiceEntryRegistry r;
  r.update(load(yamlStream(
      {meshService("reviews", "default",
                   "  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
                   "  workloadSelector: {labels: {app: reviews}}\n"),
       workloadEntry("reviews-v1", "default",
                     "{address: 10.0.3.1, labels: {app: reviews, version: v1}, serviceAccount: "
                     "reviews}"),
       workloadEntry("ratings-v1", "default", "{address: 10.0.2.1, labels: {app: ratings}}"),
       workloadEntry("reviews-elsewhere", "other",
                     "{address: 10.9.0.1, labels: {app: reviews}}")})));
  auto services = r.services();
  ASSERT_THAT(services, SizeIs(1));
  const auto& eps = r.endpoints(*services[0]);
  ASSERT_THAT(eps, SizeIs(1));
  EXPECT_EQ(eps[0].address, "10.0.3.1");
  EXPECT_EQ(eps[0].workload_name, "reviews-v1");
  EXPECT_EQ(eps[0].service_account, "reviews");
}

TEST(ServiceEntryRegistryTest, DnsWithoutEndpointsResolvesTheHostItself) {
  ServiceEntryRegistry r;
  r.update(load(dnsEntry("google", "www.google.com")));
  auto services = r.services();
  ASSERT_THAT(services, SizeIs(1));
  EXPECT_EQ(services[0]->resolution, Resolution::kDns);
  EXPECT_TRUE(services[0]->mesh_external);
  const auto& eps = r.endpoints(*services[0]);
  ASSERT_THAT(eps, SizeIs(1));
  EXPECT_EQ(eps[0].address, "www.google.com");
  EXPECT_EQ(eps[0].portFor(services[0]->ports[0]), 80u);
}

TEST(ServiceEntryRegistryTest, AHostDefinedTwiceInANamespaceKeepsTheFirst) {
  ServiceEntryRegistry r;
  r.update(
      load(yamlStream({dnsEntry("a", "api.example.com"), dnsEntry("b", "api.example.com", 8080)})));
  auto services = r.services();
  ASSERT_THAT(services, SizeIs(1));
  EXPECT_EQ(services[0]->ports[0].number, 80u);
  ASSERT_THAT(r.warnings(), SizeIs(1));
  EXPECT_THAT(r.warnings()[0], HasSubstr("already defined"));
}

TEST(ServiceEntryRegistryTest, UpdatesReplaceTheModelAndNotify) {
  ServiceEntryRegistry r;
  int changes = 0;
  r.onChange([&] { ++changes; });
  r.update(load(dnsEntry("a", "api.example.com")));
  EXPECT_EQ(changes, 1);
  EXPECT_THAT(r.services(), SizeIs(1));
  r.update({});
  EXPECT_EQ(changes, 2);
  EXPECT_THAT(r.services(), IsEmpty());
  Service unknown;
  unknown.hostname = "api.example.com";
  EXPECT_THAT(r.endpoints(unknown), IsEmpty());
}

}  // namespace
}  // namespace mesh::pilot::model
