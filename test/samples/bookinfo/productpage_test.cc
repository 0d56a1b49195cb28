// productpage's handler without upstreams: sign-in, escaping, and the page when every upstream
// call fails.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "samples/bookinfo/services.h"

namespace mesh::bookinfo {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

ServerRequest request(std::string method, std::string path, HeaderVector headers = {},
                      std::string body = "") {
  ServerRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

// No upstream addresses: every call fails at once.
Handler productpage() { return makeProductpageHandler(ProductpageConfig{}); }

TEST(ProductpageTest, LoginDecodesTheFormAndEncodesTheCookie) {
  ServerResponse r =
      productpage()(request("POST", "/login", {}, "passwd=x&username=Jason+M%21&x=1"));
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(findHeader(r.headers, "location"), "/productpage");
  EXPECT_EQ(findHeader(r.headers, "set-cookie"), "user=Jason%20M%21; Path=/");

  EXPECT_EQ(productpage()(request("GET", "/login")).status, 405);
  ServerResponse anonymous = productpage()(request("POST", "/login", {}, "username="));
  EXPECT_THAT(findHeader(anonymous.headers, "set-cookie"), HasSubstr("Max-Age=0"));
}

TEST(ProductpageTest, PageShowsBothErrorsAndEscapesTheUser) {
  ServerResponse r =
      productpage()(request("GET", "/productpage", {{"Cookie", "theme=dark; user=%3Cscript%3Ex"}}));
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr(kDetailsUnavailable));
  EXPECT_THAT(r.body, HasSubstr(kReviewsUnavailable));
  EXPECT_THAT(r.body, HasSubstr("Signed in as <b>&lt;script&gt;x</b>"));
  EXPECT_THAT(r.body, Not(HasSubstr("<script>")));
}

TEST(ProductpageTest, ApiReportsUnavailableUpstreamsAs500) {
  ServerResponse r = productpage()(request("GET", "/api/v1/products/0/ratings"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, std::string("{\"error\":\"") + kRatingsUnavailable + "\"}");
  EXPECT_EQ(productpage()(request("GET", "/api/v1/products/0/other")).status, 404);
  EXPECT_EQ(productpage()(request("GET", "/nothing")).status, 404);
}

}  // namespace
}  // namespace mesh::bookinfo
