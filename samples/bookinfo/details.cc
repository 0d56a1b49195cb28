// details: the book's facts, as Istio's details service (Ruby) answers them.
#include <string>

#include "samples/bookinfo/services.h"

namespace mesh::bookinfo {

Handler makeDetailsHandler() {
  return [](const ServerRequest& req) -> ServerResponse {
    std::string_view path = req.path;
    if (path == "/health")
      return {200, "application/json", "{\"status\":\"Details is healthy\"}", {}};
    if (!path.starts_with("/details/"))
      return {404, "application/json", "{\"error\":\"Not found\"}", {}};
    int id = 0;
    if (!parseProductId(path.substr(9), &id)) {
      return {400, "application/json", "{\"error\":\"please provide numeric product ID\"}", {}};
    }
    return {200,
            "application/json",
            "{\"id\":" + std::to_string(id) +
                ",\"author\":\"William Shakespeare\",\"year\":1595,\"type\":\"paperback\","
                "\"pages\":200,\"publisher\":\"PublisherA\",\"language\":\"English\","
                "\"ISBN-10\":\"1234567890\",\"ISBN-13\":\"123-1234567890\"}",
            {}};
  };
}

}  // namespace mesh::bookinfo
