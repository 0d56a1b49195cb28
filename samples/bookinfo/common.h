// Plumbing the four Bookinfo services share: a small HTTP/1.1 server whose handlers may block
// (one I/O thread parses and writes; each request's handler runs on a worker thread, so a slow
// upstream call holds one worker and nothing else), and a blocking HTTP/1.1 client with a
// deadline for the calls a service makes to its upstreams.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace mesh::bookinfo {

// Header fields in arrival order; names as the peer sent them.
using HeaderVector = std::vector<std::pair<std::string, std::string>>;

// The value of the first field named `name` (ASCII case-insensitive), or "".
std::string_view findHeader(const HeaderVector& headers, std::string_view name);

struct ServerRequest {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', without it
  HeaderVector headers;
  std::string body;

  std::string_view header(std::string_view name) const { return findHeader(headers, name); }
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  HeaderVector headers;  // added to the standard ones (set-cookie, location)
};

// Called on a worker thread, possibly on several at once; may block.
using Handler = std::function<ServerResponse(const ServerRequest&)>;

struct ServerOptions {
  std::string service;  // for the log lines
  std::string listen = "127.0.0.1:0";
  std::string port_file;       // {"port":N} written atomically once listening
  std::string instance;        // x-instance on every response
  std::string version = "v1";  // x-version on every response
  unsigned workers = 16;       // requests handled at once
  bool access_log = true;      // one line per request to stderr
};

// Listens, then serves until SIGTERM or SIGINT: stops accepting, lets the handlers in flight
// finish (their upstream calls are bounded by timeouts), and returns the process exit code.
int runServer(const ServerOptions& options, Handler handler);

// An upstream as a service calls it: where to connect and what to name in Host. In a mesh the
// address is the sidecar's outbound listener and the authority picks the route.
struct Upstream {
  std::string address;    // host:port; empty means not configured (every call fails)
  std::string authority;  // Host header, e.g. "reviews:9080"
  std::chrono::milliseconds timeout{3000};  // for the whole call: connect, send, receive
};

struct ClientResponse {
  int status = 0;
  HeaderVector headers;
  std::string body;
};

// GET `path` on a new connection. Content-Length, chunked and close-delimited bodies are read.
// Errors: kDeadlineExceeded when the timeout passes, kUnavailable when the upstream cannot be
// reached or closes early, kInternal for a malformed response, kFailedPrecondition when
// `upstream.address` is empty or bad.
StatusOr<ClientResponse> httpGet(const Upstream& upstream, std::string_view path,
                                 const HeaderVector& headers);

// The incoming headers a call to an upstream carries, as Istio's Bookinfo services forward them
// (tracing context, x-request-id, user-agent, cookie, end-user, ...).
HeaderVector propagatedHeaders(const ServerRequest& request);

// A JSON string literal, quotes included.
std::string jsonQuote(std::string_view s);
std::string htmlEscape(std::string_view s);
// A product id as the services accept it: a non-negative decimal integer.
bool parseProductId(std::string_view s, int* id);
// The routes details, ratings and reviews share: GET /health ("<Name> is healthy") and
// GET <prefix><id>, answered by `product`; Istio's answers for a non-numeric id and other paths.
Handler productRoutes(std::string name, std::string prefix,
                      std::function<ServerResponse(const ServerRequest&, int id)> product);
// "service-host-pid": the default --instance.
std::string defaultInstanceName(std::string_view service);

}  // namespace mesh::bookinfo
