// bookinfo: Istio's Bookinfo sample application; one binary, the service picked by --service.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "samples/bookinfo/common.h"
#include "samples/bookinfo/services.h"

namespace {

using mesh::bookinfo::Upstream;
using std::chrono::milliseconds;

// --NAME, --NAME-authority and --NAME-timeout-ms for one upstream.
void addUpstream(CLI::App& app, const std::string& name, Upstream& upstream, int& timeout_ms,
                 const std::string& timeout_default) {
  upstream.authority = name + ":9080";
  app.add_option("--" + name, upstream.address,
                 "host:port to connect to for " + name + " (e.g. the sidecar's outbound listener)");
  app.add_option("--" + name + "-authority", upstream.authority, "Host header for " + name)
      ->capture_default_str();
  app.add_option("--" + name + "-timeout-ms", timeout_ms,
                 "timeout of a call to " + name + " (default: " + timeout_default + ")")
      ->check(CLI::Range(1, 600000));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bookinfo: Istio's Bookinfo sample (productpage, details, reviews, ratings)"};
  mesh::bookinfo::ServerOptions server;
  std::string service;
  bool quiet = false;
  app.add_option("--service", service, "which service to run")
      ->required()
      ->check(CLI::IsMember({"productpage", "details", "reviews", "ratings"}));
  app.add_option("--listen", server.listen, "address to listen on (port 0: the OS picks)")
      ->capture_default_str();
  app.add_option("--port-file", server.port_file, "write {\"port\":N} here once listening");
  app.add_option("--instance", server.instance, "instance name (x-instance; reviews' podname)");
  app.add_option("--version", server.version, "service version (x-version; reviews: v1|v2|v3)")
      ->capture_default_str();
  app.add_option("--workers", server.workers, "requests handled at once")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  app.add_flag("--quiet", quiet, "no log line per request");

  // productpage calls details and reviews (3 s, as Istio's productpage); reviews calls ratings
  // (10 s, so that with Istio's "7s delay for jason" fault on ratings the page shows the reviews
  // error, as Istio's fault-injection task documents).
  mesh::bookinfo::ProductpageConfig productpage;
  mesh::bookinfo::ReviewsConfig reviews;
  int details_ms = 3000, reviews_ms = 3000, ratings_ms = 0;  // 0: the service's default
  addUpstream(app, "details", productpage.details, details_ms, "3000");
  addUpstream(app, "reviews", productpage.reviews, reviews_ms, "3000");
  addUpstream(app, "ratings", reviews.ratings, ratings_ms, "reviews 10000, productpage 3000");
  CLI11_PARSE(app, argc, argv);

  if (service == "reviews" && server.version != "v1" && server.version != "v2" &&
      server.version != "v3") {
    std::fprintf(stderr, "bookinfo: --version: reviews has v1, v2 and v3, not %s\n",
                 server.version.c_str());
    return 2;
  }
  if (server.instance.empty()) server.instance = mesh::bookinfo::defaultInstanceName(service);
  server.service = service;
  server.access_log = !quiet;

  mesh::bookinfo::Handler handler;
  if (service == "productpage") {
    productpage.ratings = reviews.ratings;  // for /api/v1/products/{id}/ratings
    productpage.details.timeout = milliseconds(details_ms);
    productpage.reviews.timeout = milliseconds(reviews_ms);
    productpage.ratings.timeout = milliseconds(ratings_ms > 0 ? ratings_ms : 3000);
    handler = mesh::bookinfo::makeProductpageHandler(std::move(productpage));
  } else if (service == "details") {
    handler = mesh::bookinfo::makeDetailsHandler();
  } else if (service == "reviews") {
    reviews.version = server.version;
    reviews.podname = server.instance;
    reviews.ratings.timeout = milliseconds(ratings_ms > 0 ? ratings_ms : 10000);
    handler = mesh::bookinfo::makeReviewsHandler(std::move(reviews));
  } else {
    handler = mesh::bookinfo::makeRatingsHandler();
  }
  return mesh::bookinfo::runServer(server, std::move(handler));
}
