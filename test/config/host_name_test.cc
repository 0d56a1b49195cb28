#include "config/host_name.h"

#include <gtest/gtest.h>

namespace mesh::config {
namespace {

TEST(HostNameTest, ExpandsShortNamesWithTheRuleNamespace) {
  EXPECT_EQ(expandShortHostName("reviews", "default"), "reviews.default.svc.cluster.local");
  EXPECT_EQ(expandShortHostName("reviews", "foo"), "reviews.foo.svc.cluster.local");
  EXPECT_EQ(expandShortHostName("reviews", "foo", "corp.internal"),
            "reviews.foo.svc.corp.internal");
}

TEST(HostNameTest, LeavesQualifiedNamesWildcardsAndAddressesAlone) {
  EXPECT_EQ(expandShortHostName("reviews.prod", "foo"), "reviews.prod");
  EXPECT_EQ(expandShortHostName("reviews.prod.svc.cluster.local", "foo"),
            "reviews.prod.svc.cluster.local");
  EXPECT_EQ(expandShortHostName("*", "foo"), "*");
  EXPECT_EQ(expandShortHostName("*.example.com", "foo"), "*.example.com");
  EXPECT_EQ(expandShortHostName("10.0.0.1", "foo"), "10.0.0.1");
  EXPECT_EQ(expandShortHostName("::1", "foo"), "::1");
  EXPECT_EQ(expandShortHostName("", "foo"), "");
}

TEST(HostNameTest, DnsNames) {
  EXPECT_TRUE(isWildcardDnsName("reviews"));
  EXPECT_TRUE(isWildcardDnsName("*"));
  EXPECT_TRUE(isWildcardDnsName("*.example.com"));
  EXPECT_TRUE(isWildcardDnsName("Example.COM"));
  EXPECT_FALSE(isWildcardDnsName("a.*.com"));
  EXPECT_FALSE(isWildcardDnsName("*example.com"));
  EXPECT_FALSE(isWildcardDnsName("-bad.com"));
  EXPECT_FALSE(isWildcardDnsName("a..b"));
  EXPECT_FALSE(isWildcardDnsName(""));
  EXPECT_FALSE(isWildcardDnsName(std::string(64, 'a') + ".com"));
  EXPECT_FALSE(isDnsName("*.example.com"));
}

TEST(HostNameTest, KubernetesNames) {
  EXPECT_TRUE(isDns1123Label("v2-mysql"));
  EXPECT_FALSE(isDns1123Label("V1"));
  EXPECT_FALSE(isDns1123Label("v1."));
  EXPECT_TRUE(isDns1123Subdomain("bookinfo.gateway"));
  EXPECT_FALSE(isDns1123Subdomain("bookinfo_gateway"));
  EXPECT_TRUE(isLabelKey("app"));
  EXPECT_TRUE(isLabelKey("example.com/tier"));
  EXPECT_FALSE(isLabelKey("/tier"));
  EXPECT_TRUE(isLabelValue(""));
  EXPECT_TRUE(isLabelValue("v1.2_beta"));
  EXPECT_FALSE(isLabelValue("a b"));
}

TEST(HostNameTest, AddressesAndHeaders) {
  EXPECT_TRUE(isIpAddress("10.0.0.1"));
  EXPECT_TRUE(isIpAddress("2001:db8::1"));
  EXPECT_FALSE(isIpAddress("10.0.0.256"));
  EXPECT_TRUE(isIpOrCidr("10.0.0.0/8"));
  EXPECT_TRUE(isIpOrCidr("2001:db8::/32"));
  EXPECT_FALSE(isIpOrCidr("10.0.0.0/33"));
  EXPECT_FALSE(isIpOrCidr("10.0.0.0/"));
  EXPECT_TRUE(isHeaderName("end-user"));
  EXPECT_FALSE(isHeaderName("end user"));
  EXPECT_FALSE(isHeaderName(""));
}

}  // namespace
}  // namespace mesh::config
