#include "pilot/model/aggregate_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "pilot/model/kubernetes_registry.h"
#include "pilot/model/service_entry_registry.h"

namespace mesh::pilot::model {
namespace {

using ::testing::SizeIs;

std::vector<config::KubernetesObject> bookinfo() {
  std::ifstream in(std::string(MESH_PILOT_TESTDATA) + "/bookinfo-kube.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  config::LoadedKubernetes k = config::loadKubernetesStream(ss.str(), "bookinfo-kube.yaml");
  EXPECT_TRUE(k.errors.empty()) << k.errors.toString();
  return std::move(k.objects);
}

TEST(AggregateRegistryTest, MergesRegistriesAndRoutesEndpointQueriesToTheOwner) {
  KubernetesRegistry kube;
  ServiceEntryRegistry entries;
  AggregateRegistry all({&kube, &entries});
  int changes = 0;
  all.onChange([&] { ++changes; });
  kube.update(bookinfo());
  config::LoadedConfig c = config::loadConfigStream(R"(apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.1.1}]
)",
                                                    "se.yaml");
  entries.update(c.resources);
  EXPECT_EQ(changes, 2);
  auto services = all.services();
  ASSERT_THAT(services, SizeIs(3));
  EXPECT_EQ(services[0]->hostname, "details.default.svc.cluster.local");
  EXPECT_EQ(services[1]->hostname, "ratings.default.svc.cluster.local");
  ASSERT_THAT(all.endpoints(*services[0]), SizeIs(1));
  EXPECT_EQ(all.endpoints(*services[0])[0].address, "10.0.1.1");
  EXPECT_THAT(all.endpoints(*services[2]), SizeIs(3));
}

}  // namespace
}  // namespace mesh::pilot::model
