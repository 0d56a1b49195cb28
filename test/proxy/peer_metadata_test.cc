#include "proxy/telemetry/peer_metadata.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mesh::proxy {
namespace {

TEST(PeerMetadataTest, Base64RoundTripsAndRefusesOtherBytes) {
  const std::vector<std::string> samples = {
      "", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\0\xff\x10", 3)};
  for (const std::string& s : samples) {
    auto d = base64Decode(base64Encode(s));
    ASSERT_TRUE(d.has_value()) << s;
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(*base64Decode("Zm8"), "fo");  // padding optional
  EXPECT_FALSE(base64Decode("Zm9v!").has_value());
  EXPECT_FALSE(base64Decode("Z").has_value());
}

TEST(PeerMetadataTest, TheDestinationLearnsTheSourceWorkload) {
  std::string header =
      encodePeerMetadata("reviews-v2-0", "reviews-v2", "default",
                         {{"app", "reviews"}, {"version", "v2"}}, "bookinfo-reviews", "Kubernetes");
  auto w = decodePeerMetadata(header, "");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->name, "reviews-v2");
  EXPECT_EQ(w->namespace_, "default");
  EXPECT_EQ(w->app, "reviews");
  EXPECT_EQ(w->version, "v2");
  EXPECT_EQ(w->canonical_service, "reviews");
  EXPECT_EQ(w->cluster, "Kubernetes");
  // Without mTLS the principal is not taken from what the peer says of itself.
  EXPECT_EQ(w->principal, "unknown");
  auto m = decodePeerMetadata(header, "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->principal, "spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
}

TEST(PeerMetadataTest, MalformedOrOversizedHeadersNameNobody) {
  EXPECT_FALSE(decodePeerMetadata("", "").has_value());
  EXPECT_FALSE(decodePeerMetadata("not base64 !", "").has_value());
  EXPECT_FALSE(decodePeerMetadata(base64Encode("\xff\xff\xff garbage"), "").has_value());
  // A valid Struct without a workload name or namespace.
  EXPECT_FALSE(
      decodePeerMetadata(encodePeerMetadata("p", "", "default", {}, "", ""), "").has_value());
  std::string big = encodePeerMetadata("p", "w", "ns", {{"x", std::string(5000, 'a')}}, "", "");
  EXPECT_GT(big.size(), kMaxPeerMetadataBytes);
  EXPECT_FALSE(decodePeerMetadata(big, "").has_value());
}

}  // namespace
}  // namespace mesh::proxy
