// The four services of Istio's Bookinfo sample as request handlers: productpage (the HTML page
// and the JSON API), details, reviews (v1 without ratings, v2 black stars, v3 red stars) and
// ratings. Each handler may block on its upstream calls; see common.h for the server that runs it.
#pragma once

#include <string>

#include "samples/bookinfo/common.h"

namespace mesh::bookinfo {

struct ProductpageConfig {
  Upstream details;
  Upstream reviews;
  Upstream ratings;  // only for /api/v1/products/{id}/ratings, as Istio's productpage
};

struct ReviewsConfig {
  std::string version = "v1";  // v1: no ratings; v2: black stars; v3: red stars
  std::string podname;         // reported in the JSON, as Istio's reviews does
  Upstream ratings;
};

Handler makeProductpageHandler(ProductpageConfig config);
Handler makeDetailsHandler();
Handler makeReviewsHandler(ReviewsConfig config);
Handler makeRatingsHandler();

// The page's error texts, as Istio's productpage words them.
inline constexpr char kDetailsUnavailable[] =
    "Sorry, product details are currently unavailable for this book.";
inline constexpr char kReviewsUnavailable[] =
    "Sorry, product reviews are currently unavailable for this book.";
inline constexpr char kRatingsUnavailable[] =
    "Sorry, product ratings are currently unavailable for this book.";
// What reviews v2/v3 put in a review's rating when ratings cannot be reached.
inline constexpr char kRatingServiceUnavailable[] = "Ratings service is currently unavailable";

}  // namespace mesh::bookinfo
