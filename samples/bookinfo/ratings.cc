// ratings: the stars each reviewer gave, as Istio's ratings service (Node.js, v1) answers them.
#include <string>

#include "samples/bookinfo/services.h"

namespace mesh::bookinfo {

Handler makeRatingsHandler() {
  return productRoutes("Ratings", "/ratings/", [](const ServerRequest&, int id) {
    return ServerResponse{
        200,
        "application/json",
        "{\"id\":" + std::to_string(id) + ",\"ratings\":{\"Reviewer1\":5,\"Reviewer2\":4}}",
        {}};
  });
}

}  // namespace mesh::bookinfo
