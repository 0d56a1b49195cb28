// ratings: the stars each reviewer gave, as Istio's ratings service (Node.js, v1) answers them.
#include <string>

#include "samples/bookinfo/services.h"

namespace mesh::bookinfo {

Handler makeRatingsHandler() {
  return [](const ServerRequest& req) -> ServerResponse {
    std::string_view path = req.path;
    if (path == "/health")
      return {200, "application/json", "{\"status\":\"Ratings is healthy\"}", {}};
    if (!path.starts_with("/ratings/"))
      return {404, "application/json", "{\"error\":\"Not found\"}", {}};
    int id = 0;
    if (!parseProductId(path.substr(9), &id)) {
      return {400, "application/json", "{\"error\":\"please provide numeric product ID\"}", {}};
    }
    return {200,
            "application/json",
            "{\"id\":" + std::to_string(id) + ",\"ratings\":{\"Reviewer1\":5,\"Reviewer2\":4}}",
            {}};
  };
}

}  // namespace mesh::bookinfo
