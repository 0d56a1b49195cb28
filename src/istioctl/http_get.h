// A blocking HTTP/1.1 GET for istioctl's commands that read pilot's debug pages and a proxy's
// admin API. One request per connection, bounded by a timeout.
#pragma once

#include <chrono>
#include <string>

#include "core/status.h"

namespace mesh::istioctl {

struct HttpResult {
  int status = 0;
  std::string body;
};

// GET http://<host_port><path>. `host_port` is "host:port" (an IP or a name).
StatusOr<HttpResult> httpGet(const std::string& host_port, const std::string& path,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace mesh::istioctl
