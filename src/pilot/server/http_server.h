// Pilot's monitoring port (15014): a tiny HTTP/1.1 server for /ready, /metrics and /debug/*.
// One request per connection (answered with "Connection: close"), GET only, parsed with the
// project's own HTTP/1.1 parser; Asio stays in http_server.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mesh::pilot::server {

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // Called on the server's thread with the request path (query removed).
  using Handler = std::function<HttpReply(std::string_view path)>;

  explicit HttpServer(Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Listens on "host:port" (port 0: the OS picks) and serves on a thread of its own.
  StatusOr<uint16_t> start(const std::string& address);
  // Stops listening, drops open connections and joins the thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mesh::pilot::server
