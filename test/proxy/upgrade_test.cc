#include "proxy/http/upgrade.h"

#include <gtest/gtest.h>

#include "test/proxy/test_util.h"

namespace mesh::proxy::upgrade {
namespace {

bool forwards(const std::string& headers, bool grpc = false, const std::string& method = "GET") {
  testing::ParsedRequest req(testing::get("h", "/ws", headers, method));
  EXPECT_TRUE(req.ok());
  return forwardable(req.head(), grpc);
}

TEST(UpgradeTest, WebSocketAndOtherTokensAreForwarded) {
  EXPECT_TRUE(forwards("Upgrade: websocket\r\nConnection: Upgrade\r\n"));
  EXPECT_TRUE(forwards("Upgrade: websocket\r\nConnection: keep-alive, upgrade\r\n"));
  EXPECT_TRUE(forwards("Upgrade: foo/2\r\nConnection: upgrade\r\n"));
}

TEST(UpgradeTest, IncompleteH2cGrpcAndBodiesAreNot) {
  EXPECT_FALSE(forwards("Upgrade: websocket\r\n"));   // no Connection: upgrade
  EXPECT_FALSE(forwards("Connection: upgrade\r\n"));  // no Upgrade
  EXPECT_FALSE(forwards("Upgrade: h2c\r\nConnection: Upgrade\r\n"));
  EXPECT_FALSE(forwards("Upgrade: websocket, H2C\r\nConnection: Upgrade\r\n"));
  EXPECT_FALSE(forwards("Upgrade: websocket\r\nConnection: Upgrade\r\n", true));
  EXPECT_FALSE(forwards("Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 3\r\n", false,
                        "POST"));
  EXPECT_TRUE(forwards("Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 0\r\n", false,
                       "POST"));
}

TEST(UpgradeTest, FieldsCarryTheRequestedProtocol) {
  testing::ParsedRequest req(
      testing::get("h", "/", "Upgrade: websocket\r\nConnection: Upgrade\r\n"));
  ASSERT_TRUE(req.ok());
  std::string out;
  appendUpgradeFields(out, req.head().headers);
  EXPECT_EQ(out, "connection: upgrade\r\nupgrade: websocket\r\n");
}

}  // namespace
}  // namespace mesh::proxy::upgrade
