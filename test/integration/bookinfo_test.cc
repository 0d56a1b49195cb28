// The Bookinfo sample's four services as real processes on 127.0.0.1 (OS-picked ports, port
// files): the page and its sections, the reviews versions, sign-in and end-user, header
// propagation, and how each service degrades when its upstream is down or slow. Where a test
// must see what a service sent upstream, the upstream is httpbin, whose /last answers with the
// previous request's headers.
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "samples/bookinfo/services.h"
#include "test/integration/harness.h"
#include "test/testing/loopback_socket.h"

namespace mesh::integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Service {
  std::unique_ptr<Process> process;
  uint16_t port = 0;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

using mesh::testing::LoopbackSocket;

class BookinfoSampleTest : public ::testing::Test {
 protected:
  Service start(const std::string& service, const std::string& instance,
                std::vector<std::string> args = {}) {
    Service s;
    std::string port_file = dir_.file(instance + ".port");
    std::vector<std::string> argv = {
        binPath("bookinfo"), "--service", service,       "--listen", "127.0.0.1:0",
        "--instance",        instance,    "--port-file", port_file};
    argv.insert(argv.end(), args.begin(), args.end());
    s.process = std::make_unique<Process>(argv, dir_.file(instance + ".log"));
    std::string error;
    auto content = waitForFile(port_file, *s.process, milliseconds(10000), &error);
    if (!content) throw std::runtime_error(instance + ": " + error);
    auto port = jsonNumber(*content, "port");
    if (!port) throw std::runtime_error(instance + ": bad port file " + *content);
    s.port = static_cast<uint16_t>(*port);
    return s;
  }

  // The whole application with one version of reviews. An upstream given in `options` is used
  // in place of starting that service.
  struct AppOptions {
    std::string details, ratings, reviews;  // addresses
    std::vector<std::string> reviews_args, productpage_args;
  };
  struct App {
    Service details, ratings, reviews, productpage;
  };
  App startApp(const std::string& reviews_version, AppOptions options = {}) {
    App app;
    if (options.details.empty()) {
      app.details = start("details", "details-v1");
      options.details = app.details.address();
    }
    if (options.ratings.empty()) {
      app.ratings = start("ratings", "ratings-v1");
      options.ratings = app.ratings.address();
    }
    if (options.reviews.empty()) {
      std::vector<std::string> args = {"--version", reviews_version, "--ratings", options.ratings};
      args.insert(args.end(), options.reviews_args.begin(), options.reviews_args.end());
      app.reviews = start("reviews", "reviews-" + reviews_version, args);
      options.reviews = app.reviews.address();
    }
    std::vector<std::string> args = {"--details",     options.details, "--reviews",
                                     options.reviews, "--ratings",     options.ratings};
    args.insert(args.end(), options.productpage_args.begin(), options.productpage_args.end());
    app.productpage = start("productpage", "productpage-v1", args);
    return app;
  }

  TempDir dir_;
};

constexpr char kStar[] = "glyphicon-star\"";

TEST_F(BookinfoSampleTest, ProductpageShowsDetailsAndReviewsWithoutStarsForV1) {
  App app = startApp("v1");
  HttpResponse r = httpGet(app.productpage.port, "/productpage");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.header("content-type"), HasSubstr("text/html"));
  EXPECT_EQ(r.header("x-instance"), "productpage-v1");
  EXPECT_EQ(r.header("x-version"), "v1");
  EXPECT_THAT(r.body, HasSubstr("The Comedy of Errors"));
  EXPECT_THAT(r.body, HasSubstr("<dt>Publisher:</dt><dd>PublisherA</dd>"));
  EXPECT_THAT(r.body, HasSubstr("<dt>ISBN-13:</dt><dd>123-1234567890</dd>"));
  EXPECT_THAT(r.body, HasSubstr("<dt>Pages:</dt><dd>200</dd>"));
  EXPECT_THAT(r.body, HasSubstr("An extremely entertaining play by Shakespeare."));
  EXPECT_THAT(r.body, HasSubstr("<small>Reviewer2</small>"));
  EXPECT_THAT(r.body, HasSubstr("<u>reviews-v1</u>"));
  EXPECT_THAT(r.body, Not(HasSubstr(kStar)));
  EXPECT_THAT(r.body, Not(HasSubstr("Sorry")));
}

TEST_F(BookinfoSampleTest, ReviewsV2ShowsBlackStars) {
  App app = startApp("v2");
  HttpResponse r = httpGet(app.productpage.port, "/productpage");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("<font color=\"black\">"));
  EXPECT_THAT(r.body, Not(HasSubstr("color=\"red\"")));
  // Reviewer1 gave 5 stars, Reviewer2 4: nine full stars and one empty.
  size_t full = 0;
  for (size_t p = r.body.find(kStar); p != std::string::npos; p = r.body.find(kStar, p + 1)) {
    ++full;
  }
  EXPECT_EQ(full, 9u);
  EXPECT_THAT(r.body, HasSubstr("glyphicon-star-empty"));
  EXPECT_THAT(r.body, HasSubstr("<u>reviews-v2</u>"));
}

TEST_F(BookinfoSampleTest, ReviewsV3ShowsRedStars) {
  App app = startApp("v3");
  HttpResponse r = httpGet(app.productpage.port, "/productpage");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr("<font color=\"red\">"));
  EXPECT_THAT(r.body, Not(HasSubstr("color=\"black\"")));
  EXPECT_THAT(r.body, HasSubstr(kStar));
}

TEST_F(BookinfoSampleTest, ServicesAnswerWithIstiosJson) {
  App app = startApp("v2");
  HttpResponse d = httpGet(app.details.port, "/details/0");
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.status, 200);
  EXPECT_EQ(d.body,
            "{\"id\":0,\"author\":\"William Shakespeare\",\"year\":1595,\"type\":\"paperback\","
            "\"pages\":200,\"publisher\":\"PublisherA\",\"language\":\"English\","
            "\"ISBN-10\":\"1234567890\",\"ISBN-13\":\"123-1234567890\"}");
  EXPECT_EQ(d.header("x-instance"), "details-v1");
  EXPECT_EQ(httpGet(app.details.port, "/details/abc").status, 400);

  HttpResponse ra = httpGet(app.ratings.port, "/ratings/0");
  EXPECT_EQ(ra.status, 200);
  EXPECT_EQ(ra.body, "{\"id\":0,\"ratings\":{\"Reviewer1\":5,\"Reviewer2\":4}}");

  HttpResponse rv = httpGet(app.reviews.port, "/reviews/0");
  EXPECT_EQ(rv.status, 200);
  EXPECT_EQ(rv.header("x-version"), "v2");
  EXPECT_THAT(rv.body, HasSubstr("\"version\":\"v2\""));
  EXPECT_THAT(rv.body, HasSubstr("\"podname\":\"reviews-v2\""));
  EXPECT_THAT(rv.body, HasSubstr("\"reviewer\":\"Reviewer1\""));
  EXPECT_THAT(rv.body, HasSubstr("\"rating\":{\"stars\":5,\"color\":\"black\"}"));
  EXPECT_THAT(rv.body, HasSubstr("\"rating\":{\"stars\":4,\"color\":\"black\"}"));

  for (const Service* s : {&app.details, &app.ratings, &app.reviews, &app.productpage}) {
    HttpResponse h = httpGet(s->port, "/health");
    EXPECT_EQ(h.status, 200) << s->address();
    EXPECT_THAT(h.body, HasSubstr("healthy"));
  }

  uint16_t pp = app.productpage.port;
  EXPECT_THAT(httpGet(pp, "/").body, HasSubstr("href=\"/productpage\""));
  HttpResponse products = httpGet(pp, "/api/v1/products");
  EXPECT_EQ(products.status, 200);
  EXPECT_THAT(products.body, HasSubstr("[{\"id\":0,\"title\":\"The Comedy of Errors\""));
  HttpResponse product = httpGet(pp, "/api/v1/products/0");
  EXPECT_EQ(product.status, 200);
  EXPECT_THAT(product.body, HasSubstr("\"publisher\":\"PublisherA\""));
  HttpResponse reviews = httpGet(pp, "/api/v1/products/0/reviews");
  EXPECT_EQ(reviews.status, 200);
  EXPECT_THAT(reviews.body, HasSubstr("\"color\":\"black\""));
  HttpResponse ratings = httpGet(pp, "/api/v1/products/0/ratings");
  EXPECT_EQ(ratings.status, 200);
  EXPECT_THAT(ratings.body, HasSubstr("\"Reviewer2\":4"));
  EXPECT_EQ(httpGet(pp, "/api/v1/products/x").status, 400);
}

// Signing in sets the cookie; the next page's call to reviews carries end-user (and the cookie);
// signing out clears it. reviews is httpbin here, so its /last shows what productpage sent.
TEST_F(BookinfoSampleTest, LoginSetsCookieAndEndUserReachesReviews) {
  Httpbin reviews = startHttpbin(dir_, "reviews-httpbin", "v1");
  AppOptions options;
  options.reviews = "127.0.0.1:" + std::to_string(reviews.port);
  App app = startApp("v1", options);
  const Service& pp = app.productpage;

  std::string form = "username=jason&passwd=x";
  HttpClient client(pp.port);
  HttpResponse login = client.roundTrip(
      "POST /login HTTP/1.1\r\nHost: bookinfo\r\nConnection: close\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
          std::to_string(form.size()) + "\r\n\r\n" + form,
      milliseconds(5000));
  ASSERT_TRUE(login.ok) << login.error;
  EXPECT_EQ(login.status, 302);
  EXPECT_EQ(login.header("location"), "/productpage");
  EXPECT_THAT(login.header("set-cookie"), HasSubstr("user=jason"));

  HttpResponse page = httpGet(pp.port, "/productpage", {"Cookie: user=jason"});
  ASSERT_TRUE(page.ok) << page.error;
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("Signed in as <b>jason</b>"));
  // httpbin has no /reviews/0: the section shows the error, the rest of the page is there.
  EXPECT_THAT(page.body, HasSubstr(bookinfo::kReviewsUnavailable));
  EXPECT_THAT(page.body, HasSubstr("PublisherA"));
  std::string seen = httpGet(reviews.port, "/last").body;
  EXPECT_THAT(seen, HasSubstr("\"path\":\"/reviews/0\""));
  EXPECT_THAT(seen, HasSubstr("\"end-user\":\"jason\""));
  EXPECT_THAT(seen, HasSubstr("\"Host\":\"reviews:9080\""));
  EXPECT_THAT(seen, HasSubstr("\"Cookie\":\"user=jason\""));

  HttpResponse logout = httpGet(pp.port, "/logout", {"Cookie: user=jason"});
  EXPECT_EQ(logout.status, 302);
  EXPECT_THAT(logout.header("set-cookie"), HasSubstr("Max-Age=0"));
  HttpResponse anonymous = httpGet(pp.port, "/productpage");
  EXPECT_THAT(anonymous.body, HasSubstr("action=\"/login\""));
  EXPECT_THAT(httpGet(reviews.port, "/last").body, Not(HasSubstr("end-user")));
}

// Tracing context, x-request-id and user-agent travel on every hop; other headers do not.
TEST_F(BookinfoSampleTest, TracingHeadersAreForwardedToUpstreams) {
  Httpbin details = startHttpbin(dir_, "details-httpbin", "v1");
  Httpbin ratings = startHttpbin(dir_, "ratings-httpbin", "v1");
  AppOptions options;
  options.details = "127.0.0.1:" + std::to_string(details.port);
  options.ratings = "127.0.0.1:" + std::to_string(ratings.port);
  options.reviews_args = {"--ratings-authority", "ratings.default.svc:9080"};
  options.productpage_args = {"--details-authority", "details.default:9080"};
  App app = startApp("v2", options);
  const Service& pp = app.productpage;

  std::vector<std::string> incoming = {
      "x-request-id: 8c4f1a2e-request",
      "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
      "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7",
      "x-datadog-trace-id: 1234",
      "user-agent: bookinfo-test",
      "end-user: jason",
      "x-private: not-forwarded"};
  HttpResponse page = httpGet(pp.port, "/productpage", incoming);
  ASSERT_TRUE(page.ok) << page.error;
  EXPECT_EQ(page.status, 200);
  // ratings is httpbin (no /ratings/0), so the reviews show the rating error.
  EXPECT_THAT(page.body, HasSubstr(bookinfo::kRatingServiceUnavailable));

  for (const auto& [name, port] :
       {std::pair<std::string, uint16_t>{"details", details.port}, {"ratings", ratings.port}}) {
    std::string seen = httpGet(port, "/last").body;
    SCOPED_TRACE(name + " saw " + seen);
    EXPECT_THAT(seen, HasSubstr("\"x-request-id\":\"8c4f1a2e-request\""));
    EXPECT_THAT(seen, HasSubstr("\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-"));
    EXPECT_THAT(seen, HasSubstr("\"b3\":\"80f198ee56343ba864fe8b2a57d3eff7-"));
    EXPECT_THAT(seen, HasSubstr("\"x-b3-traceid\":\"80f198ee56343ba864fe8b2a57d3eff7\""));
    EXPECT_THAT(seen, HasSubstr("\"x-datadog-trace-id\":\"1234\""));
    EXPECT_THAT(seen, HasSubstr("\"user-agent\":\"bookinfo-test\""));
    EXPECT_THAT(seen, HasSubstr("\"end-user\":\"jason\""));
    EXPECT_THAT(seen, Not(HasSubstr("x-private")));
  }
  EXPECT_THAT(httpGet(details.port, "/last").body, HasSubstr("\"Host\":\"details.default:9080\""));
  EXPECT_THAT(httpGet(ratings.port, "/last").body,
              HasSubstr("\"Host\":\"ratings.default.svc:9080\""));
}

TEST_F(BookinfoSampleTest, DetailsDownStillRendersThePage) {
  LoopbackSocket refused(LoopbackSocket::Mode::kBoundOnly);
  ASSERT_TRUE(connectRefused(refused.port()));
  AppOptions options;
  options.details = refused.address();
  App app = startApp("v3", options);
  const Service& pp = app.productpage;
  HttpResponse page = httpGet(pp.port, "/productpage");
  ASSERT_TRUE(page.ok) << page.error;
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr(bookinfo::kDetailsUnavailable));
  EXPECT_THAT(page.body, Not(HasSubstr("PublisherA")));
  EXPECT_THAT(page.body, HasSubstr("<font color=\"red\">"));

  HttpResponse api = httpGet(pp.port, "/api/v1/products/0");
  EXPECT_EQ(api.status, 500);
  EXPECT_THAT(api.body, HasSubstr(bookinfo::kDetailsUnavailable));
}

TEST_F(BookinfoSampleTest, RatingsDownShowsTheRatingError) {
  LoopbackSocket refused(LoopbackSocket::Mode::kBoundOnly);
  AppOptions options;
  options.ratings = refused.address();
  App app = startApp("v2", options);
  const Service& reviews = app.reviews;
  const Service& pp = app.productpage;

  HttpResponse rv = httpGet(reviews.port, "/reviews/0");
  ASSERT_TRUE(rv.ok) << rv.error;
  EXPECT_EQ(rv.status, 200);
  EXPECT_THAT(rv.body,
              HasSubstr("\"rating\":{\"error\":\"Ratings service is currently unavailable\"}"));
  EXPECT_THAT(rv.body, Not(HasSubstr("stars")));

  HttpResponse page = httpGet(pp.port, "/productpage");
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("<i>Ratings service is currently unavailable</i>"));
  EXPECT_THAT(page.body, HasSubstr("An extremely entertaining play"));
  EXPECT_THAT(page.body, Not(HasSubstr(kStar)));
}

// reviews hangs: productpage gives up after its timeout, shows the reviews error, and keeps
// answering other requests while the call is pending.
TEST_F(BookinfoSampleTest, HungReviewsTimeOutWhileOtherRequestsAreServed) {
  LoopbackSocket hung(LoopbackSocket::Mode::kListening);
  AppOptions options;
  options.reviews = hung.address();
  options.productpage_args = {"--reviews-timeout-ms", "2000"};
  App app = startApp("v1", options);
  const Service& pp = app.productpage;

  auto started = Clock::now();
  auto page = std::async(std::launch::async, [&] {
    return httpGet(pp.port, "/productpage", {}, "bookinfo", milliseconds(10000));
  });
  // productpage is now waiting on reviews, for 2 s; /health must be answered meanwhile.
  ASSERT_TRUE(hung.waitForConnection(milliseconds(5000)));
  HttpResponse health = httpGet(pp.port, "/health", {}, "bookinfo", milliseconds(900));
  EXPECT_TRUE(health.ok) << health.error;
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(page.wait_for(std::chrono::seconds(0)), std::future_status::timeout);

  HttpResponse r = page.get();
  auto elapsed = Clock::now() - started;
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, HasSubstr(bookinfo::kReviewsUnavailable));
  EXPECT_THAT(r.body, HasSubstr("PublisherA"));
  EXPECT_GE(elapsed, milliseconds(2000));
  EXPECT_LT(elapsed, milliseconds(6000));
}

// reviews' call to ratings has its own timeout; when it passes, the rating error is shown.
TEST_F(BookinfoSampleTest, HungRatingsTimeOutInReviews) {
  LoopbackSocket hung(LoopbackSocket::Mode::kListening);
  Service reviews =
      start("reviews", "reviews-v3",
            {"--version", "v3", "--ratings", hung.address(), "--ratings-timeout-ms", "300"});
  HttpResponse rv = httpGet(reviews.port, "/reviews/0");
  ASSERT_TRUE(rv.ok) << rv.error;
  EXPECT_EQ(rv.status, 200);
  EXPECT_THAT(rv.body, HasSubstr(bookinfo::kRatingServiceUnavailable));
}

TEST_F(BookinfoSampleTest, BadFlagsAreRefused) {
  Process p({binPath("bookinfo"), "--service", "reviews", "--version", "v9"}, dir_.file("bad.log"));
  EXPECT_EQ(p.wait(milliseconds(5000)), 2);
  EXPECT_THAT(p.log(), HasSubstr("v1, v2 and v3"));
}

}  // namespace
}  // namespace mesh::integration
