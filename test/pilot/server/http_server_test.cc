// The monitoring port's tiny HTTP server: routing to the handler, GET only, malformed requests
// answered with the parser's status, one request per connection.
#include "pilot/server/http_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "test/integration/harness.h"

namespace mesh::pilot::server {
namespace {

using ::testing::HasSubstr;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto port = server_.start("127.0.0.1:0");
    ASSERT_TRUE(port.ok()) << port.status().toString();
    port_ = *port;
  }

  HttpServer server_{[](std::string_view path) {
    HttpReply r;
    if (path == "/hello") {
      r.body = "hi\n";
    } else {
      r.status = 404;
      r.body = "no\n";
    }
    return r;
  }};
  uint16_t port_ = 0;
};

TEST_F(HttpServerTest, GetIsRoutedByPathWithoutQuery) {
  integration::HttpResponse r = integration::httpGet(port_, "/hello?x=1");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "hi\n");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(integration::httpGet(port_, "/other").status, 404);
}

TEST_F(HttpServerTest, OnlyGet) {
  integration::HttpResponse r = integration::httpPost(port_, "/hello", "x");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 405);
}

TEST_F(HttpServerTest, MalformedRequestGetsTheParsersStatus) {
  integration::HttpClient c(port_);
  integration::HttpResponse r =
      c.roundTrip("GET /hello HTTP/1.1\r\n\r\n", integration::milliseconds(5000));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("Host"));
}

TEST(HttpServerStartTest, BadAddressIsAnError) {
  HttpServer s([](std::string_view) { return HttpReply{}; });
  auto port = s.start("not-an-ip:0");
  ASSERT_FALSE(port.ok());
  EXPECT_THAT(port.status().message(), HasSubstr("not an IP address"));
}

}  // namespace
}  // namespace mesh::pilot::server
