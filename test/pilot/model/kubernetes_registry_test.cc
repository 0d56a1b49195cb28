#include "pilot/model/kubernetes_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace mesh::pilot::model {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

std::vector<config::KubernetesObject> bookinfo() {
  std::ifstream in(std::string(MESH_PILOT_TESTDATA) + "/bookinfo-kube.yaml");
  std::stringstream ss;
  ss << in.rdbuf();
  config::LoadedKubernetes k = config::loadKubernetesStream(ss.str(), "bookinfo-kube.yaml");
  EXPECT_TRUE(k.errors.empty()) << k.errors.toString();
  return std::move(k.objects);
}

TEST(KubernetesRegistryTest, ServicesFromKubernetesServices) {
  KubernetesRegistry r;
  r.update(bookinfo());
  auto services = r.services();
  ASSERT_THAT(services, SizeIs(2));
  const Service& ratings = *services[0];
  EXPECT_EQ(ratings.hostname, "ratings.default.svc.cluster.local");
  EXPECT_EQ(ratings.name, "ratings");
  EXPECT_EQ(ratings.namespace_name, "default");
  EXPECT_THAT(ratings.export_to, ElementsAre(".", "istio-system"));
  ASSERT_THAT(ratings.ports, SizeIs(2));
  EXPECT_EQ(ratings.ports[0].protocol, Protocol::kHttp);
  EXPECT_EQ(ratings.ports[0].target_port, 8080u);
  EXPECT_EQ(ratings.ports[1].protocol, Protocol::kTls);
  const Service& reviews = *services[1];
  EXPECT_EQ(reviews.labels.at("service"), "reviews");
  EXPECT_THAT(reviews.export_to, IsEmpty());
}

TEST(KubernetesRegistryTest, EndpointsTakeLabelsAndAccountsFromTheirPods) {
  KubernetesRegistry r;
  r.update(bookinfo());
  const Service& reviews = *r.services()[1];
  const auto& eps = r.endpoints(reviews);
  ASSERT_THAT(eps, SizeIs(3));
  EXPECT_EQ(eps[0].address, "10.0.3.1");
  EXPECT_EQ(eps[0].labels.at("version"), "v1");
  EXPECT_EQ(eps[0].service_account, "bookinfo-reviews");
  EXPECT_EQ(eps[0].workload_name, "reviews-v1-5b8f7c7d9-abcde");
  EXPECT_EQ(eps[0].portFor(reviews.ports[0]), 9080u);
  EXPECT_TRUE(eps[0].healthy);
  EXPECT_EQ(eps[2].address, "10.0.3.3");
  EXPECT_FALSE(eps[2].healthy);  // notReadyAddresses
  const Service& ratings = *r.services()[0];
  const auto& reps = r.endpoints(ratings);
  ASSERT_THAT(reps, SizeIs(1));
  EXPECT_EQ(reps[0].portFor(ratings.ports[0]), 8080u);
  EXPECT_EQ(reps[0].portFor(ratings.ports[1]), 8443u);
  EXPECT_THAT(reps[0].labels, IsEmpty());  // no Pod
}

}  // namespace
}  // namespace mesh::pilot::model
