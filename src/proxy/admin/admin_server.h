// A small HTTP/1.1 server for the admin API, the Prometheus endpoint and the health endpoint.
// Runs on the main thread's event loop, never on a worker; uses the same strict parser.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace mesh::proxy {

struct AdminRequest {
  std::string method;
  std::string path;
  std::string raw_query;
  std::vector<std::pair<std::string, std::string>> params;  // decoded, in order
  std::string body;

  bool has(std::string_view name) const;
  std::string get(std::string_view name, std::string_view fallback = {}) const;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=UTF-8";
  std::string body;
};

class AdminServer {
 public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;

  explicit AdminServer(boost::asio::io_context& io, std::string name);
  ~AdminServer();

  // `mutating` endpoints require POST (GET is answered with 400, as Envoy's admin does).
  void addHandler(std::string path, std::string help, bool mutating, Handler handler);
  // Binds and starts serving; returns the bound port.
  StatusOr<uint16_t> listen(const std::string& address);
  void stop();
  // "path: help" lines for the index page.
  std::string helpText() const;

 private:
  class Connection;
  struct Entry {
    std::string help;
    bool mutating;
    Handler handler;
  };
  void accept();
  AdminResponse dispatch(const AdminRequest& req) const;

  boost::asio::io_context& io_;
  std::string name_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::map<std::string, Entry> handlers_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Percent-decodes a query component ('+' is a space).
std::string urlDecode(std::string_view s);

}  // namespace mesh::proxy
