#include "core/proxy_id.h"

#include <gtest/gtest.h>

namespace mesh {
namespace {

TEST(ProxyIdTest, PodNameIsTheThirdPartWithoutTheNamespace) {
  EXPECT_EQ(podNameFromProxyId("sidecar~10.0.0.1~reviews-v2-0.default~default.svc.cluster.local",
                               "default"),
            "reviews-v2-0");
  EXPECT_EQ(
      podNameFromProxyId("router~127.0.0.1~istio-ingressgateway-0.default~default.svc", "default"),
      "istio-ingressgateway-0");
  // Another namespace's suffix stays; a bare pod name is kept; too few parts give "".
  EXPECT_EQ(podNameFromProxyId("sidecar~ip~web.a~a.svc.cluster.local", "b"), "web.a");
  EXPECT_EQ(podNameFromProxyId("sidecar~ip~web~x", "default"), "web");
  EXPECT_EQ(podNameFromProxyId("sidecar~ip~.default~x", "default"), ".default");
  EXPECT_EQ(podNameFromProxyId("sidecar~ip", "default"), "");
  EXPECT_EQ(podNameFromProxyId("", ""), "");
}

}  // namespace
}  // namespace mesh
