#include "istioctl/pod_network.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mesh::istioctl {
namespace {

using ::testing::ElementsAre;

TEST(PodNetworkTest, PrefixesFromIpOutput) {
  const std::string routes =
      "default via 192.0.2.1 dev eth0\n"
      "10.251.4.0/24 dev mbr1 proto kernel scope link src 10.251.4.1\n"
      "local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1\n"
      "broadcast 10.0.0.0/33 dev x\n";  // not a prefix
  // Every address in the text counts (a gateway's too); "default" is not an address.
  EXPECT_THAT(prefixesIn(routes), ElementsAre("192.0.2.1/32", "10.251.4.0/24", "10.251.4.1/32",
                                              "127.0.0.1/32", "127.0.0.1/32"));
  EXPECT_THAT(prefixesIn("2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0"),
              ElementsAre("192.0.2.2/24", "192.0.2.255/32"));
}

TEST(PodNetworkTest, PicksASubnetNothingRoutesOrAddresses) {
  // The start wraps modulo 256; a default route takes nothing.
  EXPECT_EQ(pickFreeSubnet({"0.0.0.0/0", "192.0.2.0/24"}, 7), "10.251.7.0/24");
  EXPECT_EQ(pickFreeSubnet({}, 256 + 3), "10.251.3.0/24");
  // Taken by an exact route, by an address inside it, by a covering prefix: the next one.
  EXPECT_EQ(pickFreeSubnet({"10.251.7.0/24", "10.251.8.9/32"}, 7), "10.251.9.0/24");
  EXPECT_EQ(pickFreeSubnet({"10.251.0.0/20"}, 0), "10.251.16.0/24");
  EXPECT_EQ(pickFreeSubnet({"10.251.255.0/24"}, 255), "10.251.0.0/24");
  // All of 10.251.0.0/16 (or a wider prefix) in use: none.
  EXPECT_EQ(pickFreeSubnet({"10.0.0.0/8"}, 0), std::nullopt);
}

}  // namespace
}  // namespace mesh::istioctl
