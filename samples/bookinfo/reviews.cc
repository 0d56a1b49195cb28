// reviews: two reviews of the book. v1 has no ratings and never calls ratings; v2 and v3 ask
// ratings for the stars and show them black (v2) or red (v3), as Istio's reviews (Java) does.
#include <boost/json.hpp>
#include <string>

#include "samples/bookinfo/services.h"

namespace mesh::bookinfo {
namespace {

struct Review {
  const char* reviewer;
  const char* text;
};
constexpr Review kReviews[] = {
    {"Reviewer1",
     "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
    {"Reviewer2",
     "Absolutely fun and entertaining. The play lacks thematic depth when compared to other "
     "plays by Shakespeare."},
};

// The stars per reviewer from ratings' answer; -1 where unknown (ratings failed).
void fetchStars(const ReviewsConfig& config, const ServerRequest& req, int id, int stars[2]) {
  stars[0] = stars[1] = -1;
  auto resp = httpGet(config.ratings, "/ratings/" + std::to_string(id), propagatedHeaders(req));
  if (!resp.ok() || resp->status != 200) return;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(resp->body, ec);
  const boost::json::object* root = ec ? nullptr : v.if_object();
  const boost::json::value* ratings = root ? root->if_contains("ratings") : nullptr;
  const boost::json::object* by_reviewer = ratings ? ratings->if_object() : nullptr;
  if (!by_reviewer) return;
  for (int i = 0; i < 2; ++i) {
    const boost::json::value* s = by_reviewer->if_contains(kReviews[i].reviewer);
    if (s && s->is_int64()) stars[i] = static_cast<int>(s->as_int64());
  }
}

ServerResponse reviewsOf(const ReviewsConfig& config, const ServerRequest& req, int id) {
  bool with_ratings = config.version != "v1";
  std::string color = config.version == "v3" ? "red" : "black";
  int stars[2] = {-1, -1};
  if (with_ratings) fetchStars(config, req, id, stars);
  std::string body = "{\"id\":\"" + std::to_string(id) +
                     "\",\"podname\":" + jsonQuote(config.podname) +
                     ",\"version\":" + jsonQuote(config.version) + ",\"reviews\":[";
  for (int i = 0; i < 2; ++i) {
    if (i > 0) body += ",";
    body += std::string("{\"reviewer\":\"") + kReviews[i].reviewer + "\",\"text\":\"" +
            kReviews[i].text + "\"";
    if (with_ratings) {
      if (stars[i] >= 0) {
        body +=
            ",\"rating\":{\"stars\":" + std::to_string(stars[i]) + ",\"color\":\"" + color + "\"}";
      } else {
        body += std::string(",\"rating\":{\"error\":\"") + kRatingServiceUnavailable + "\"}";
      }
    }
    body += "}";
  }
  body += "]}";
  return {200, "application/json", std::move(body), {}};
}

}  // namespace

Handler makeReviewsHandler(ReviewsConfig config) {
  return productRoutes("Reviews", "/reviews/",
                       [config = std::move(config)](const ServerRequest& req, int id) {
                         return reviewsOf(config, req, id);
                       });
}

}  // namespace mesh::bookinfo
