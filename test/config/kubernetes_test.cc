#include "config/kubernetes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/resource.h"

namespace mesh::config {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr char kStream[] = R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews}
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: prod
spec:
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 9080
    targetPort: http-web
    appProtocol: http
---
apiVersion: v1
kind: Endpoints
metadata: {name: reviews, namespace: prod}
subsets:
- addresses: [{ip: 10.0.0.1, targetRef: {kind: Pod, name: reviews-1}}]
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
data: {a: b}
)";

TEST(KubernetesLoaderTest, LoadsServicesAndEndpointsWithLines) {
  LoadedKubernetes k = loadKubernetesStream(kStream, "mixed.yaml");
  EXPECT_TRUE(k.errors.empty()) << k.errors.toString();
  ASSERT_THAT(k.objects, SizeIs(2));
  const KubernetesObject& svc = k.objects[0];
  EXPECT_EQ(svc.name, "reviews");
  EXPECT_EQ(svc.namespace_name, "prod");
  EXPECT_EQ(svc.file, "mixed.yaml");
  EXPECT_EQ(svc.line, 7);
  const auto* s = svc.as<v1::KubernetesServiceObject>();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->spec().cluster_ip(), "10.96.0.10");
  ASSERT_EQ(s->spec().ports_size(), 1);
  EXPECT_EQ(s->spec().ports(0).target_port(), "http-web");
  EXPECT_EQ(s->spec().ports(0).app_protocol(), "http");
  EXPECT_EQ(svc.source_map.lineOf("spec.ports[0].port"), 15);
  const auto* e = k.objects[1].as<v1::KubernetesEndpointsObject>();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(k.objects[1].namespace_name, "prod");
  EXPECT_EQ(e->subsets(0).addresses(0).target_ref().name(), "reviews-1");
  EXPECT_EQ(e->subsets(0).ports(0).port(), 9080u);
}

TEST(KubernetesLoaderTest, TheIstioLoaderStillSkipsKubernetesKindsWithANote) {
  LoadedConfig c = loadConfigStream(kStream, "mixed.yaml");
  EXPECT_TRUE(c.errors.empty());
  ASSERT_THAT(c.resources, SizeIs(1));
  ASSERT_THAT(c.notes, SizeIs(3));
  EXPECT_THAT(c.notes[0], HasSubstr("skipped Service"));
}

TEST(KubernetesLoaderTest, WrongTypesAreErrorsWithTheirLine) {
  LoadedKubernetes k = loadKubernetesStream(R"(apiVersion: v1
kind: Service
metadata: {name: bad}
spec:
  ports:
  - port: not-a-number
)",
                                            "bad.yaml");
  EXPECT_THAT(k.objects, SizeIs(0));
  EXPECT_THAT(k.errors.toString(), HasSubstr("bad.yaml:6"));
}

}  // namespace
}  // namespace mesh::config
