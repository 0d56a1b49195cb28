// details: the book's facts, as Istio's details service (Ruby) answers them.
#include <string>

#include "samples/bookinfo/services.h"

namespace mesh::bookinfo {

Handler makeDetailsHandler() {
  return productRoutes("Details", "/details/", [](const ServerRequest&, int id) {
    return ServerResponse{
        200,
        "application/json",
        "{\"id\":" + std::to_string(id) +
            ",\"author\":\"William Shakespeare\",\"year\":1595,\"type\":\"paperback\","
            "\"pages\":200,\"publisher\":\"PublisherA\",\"language\":\"English\","
            "\"ISBN-10\":\"1234567890\",\"ISBN-13\":\"123-1234567890\"}",
        {}};
  });
}

}  // namespace mesh::bookinfo
