#include "samples/bookinfo/common.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/buffer.h"
#include "core/http/headers.h"
#include "core/http/http1_parser.h"
#include "core/http/status_codes.h"
#include "core/net/address.h"

namespace mesh::bookinfo {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using http::Http1Parser;

constexpr size_t kMaxRequestBody = 1 << 20;

// Everything the connections of one server share. Touched only on the I/O thread, except
// `options`, `handler` and `workers`, which are safe to use from any thread.
struct ServerState {
  const ServerOptions& options;
  const Handler& handler;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::thread_pool workers;
  int in_flight = 0;  // requests read and not yet answered
  bool draining = false;

  ServerState(const ServerOptions& o, const Handler& h)
      : options(o), handler(h), workers(std::max(1u, o.workers)) {}

  // The drain gate: once draining, the server stops when the last request is answered.
  void requestDone() {
    --in_flight;
    if (draining && in_flight == 0) io.stop();
  }
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, ServerState& state)
      : socket_(std::move(socket)), state_(state), parser_(Http1Parser::Type::kRequest) {}

  void start() {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    read();
  }

 private:
  void read() {
    auto [p, n] = in_.prepare(4096, 1 << 20);
    if (n == 0) return;  // a head over 1 MiB: the parser has failed it already
    socket_.async_read_some(asio::buffer(p, n),
                            [self = shared_from_this()](boost::system::error_code ec, size_t len) {
                              if (ec) return;
                              self->in_.commit(len);
                              self->process();
                            });
  }

  void process() {
    using Event = Http1Parser::Event;
    if (state_.draining) return;  // no new request on a kept-alive connection
    for (;;) {
      auto r = parser_.parse(in_.view());
      switch (r.event) {
        case Event::kNeedMore:
          in_.consume(r.consumed);
          read();
          return;
        case Event::kHead: {
          const auto& h = parser_.request();
          request_ = ServerRequest{};
          request_.method = std::string(h.method);
          request_.path = std::string(h.path);
          request_.query = std::string(h.query);
          for (const auto& f : h.headers) request_.headers.emplace_back(f.name, f.value);
          keep_alive_ = h.keep_alive;
          in_.consume(r.consumed);
          break;
        }
        case Event::kBody:
          if (request_.body.size() + r.data.size() > kMaxRequestBody) {
            keep_alive_ = false;
            ++state_.in_flight;
            started_ = Clock::now();
            write(ServerResponse{413, "text/plain", "request body too large\n", {}});
            return;
          }
          request_.body.append(r.data);
          in_.consume(r.consumed);
          break;
        case Event::kMessageComplete:
          in_.consume(r.consumed);
          dispatch();
          return;
        case Event::kError: {
          keep_alive_ = false;
          ++state_.in_flight;
          started_ = Clock::now();
          write(ServerResponse{http::parseErrorStatus(parser_.error()),
                               "text/plain",
                               std::string(http::parseErrorText(parser_.error())) + "\n",
                               {}});
          return;
        }
      }
    }
  }

  // Runs the handler on a worker; the response comes back to the I/O thread to be written.
  void dispatch() {
    ++state_.in_flight;
    started_ = Clock::now();
    asio::post(state_.workers, [self = shared_from_this()] {
      ServerResponse response;
      try {
        response = self->state_.handler(self->request_);
      } catch (const std::exception& e) {
        // Handlers return errors as responses; this is the last line before a worker dies.
        response =
            ServerResponse{500, "text/plain", std::string("internal error: ") + e.what(), {}};
      }
      asio::post(self->socket_.get_executor(), [self, response = std::move(response)]() mutable {
        self->write(std::move(response));
      });
    });
  }

  void write(ServerResponse response) {
    const ServerOptions& o = state_.options;
    if (state_.draining) keep_alive_ = false;
    if (o.access_log) {
      auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
      std::fprintf(stderr, "%s %s: %s %s -> %d (%lld ms)\n", o.service.c_str(), o.instance.c_str(),
                   request_.method.c_str(), request_.path.c_str(), response.status,
                   static_cast<long long>(ms));
    }
    out_ = "HTTP/1.1 " + std::to_string(response.status) + " " +
           std::string(http::reasonPhrase(response.status)) + "\r\n";
    out_ += "content-type: " + response.content_type + "\r\n";
    out_ += "content-length: " + std::to_string(response.body.size()) + "\r\n";
    out_ += "x-instance: " + o.instance + "\r\nx-version: " + o.version + "\r\n";
    for (const auto& [name, value] : response.headers) out_ += name + ": " + value + "\r\n";
    if (!keep_alive_) out_ += "connection: close\r\n";
    out_ += "\r\n";
    if (request_.method != "HEAD") out_ += response.body;
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        self->state_.requestDone();
                        if (ec) return;
                        if (!self->keep_alive_) {
                          boost::system::error_code ignored;
                          self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                          return;
                        }
                        self->process();  // a pipelined request may already be buffered
                      });
  }

  tcp::socket socket_;
  ServerState& state_;
  IoBuffer in_{8192};
  Http1Parser parser_;
  ServerRequest request_;
  std::string out_;
  bool keep_alive_ = true;
  Clock::time_point started_;
};

void acceptLoop(ServerState& state) {
  state.acceptor.async_accept([&state](boost::system::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<Connection>(std::move(socket), state)->start();
    if (state.acceptor.is_open()) acceptLoop(state);
  });
}

bool writePortFile(const std::string& path, uint16_t port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << "{\"port\":" << port << "}\n";
    if (!f) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// ---- client ----

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

// Rounded up, so that a wait never ends before the deadline.
int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error.
int waitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    int left = remainingMs(deadline);
    if (left == 0) return 0;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, left);
    if (r > 0) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

Status timedOut(const Upstream& upstream, std::string_view what) {
  return Status(StatusCode::kDeadlineExceeded,
                std::string(what) + " " + upstream.address + " timed out after " +
                    std::to_string(upstream.timeout.count()) + " ms");
}

// A header field we may put on the wire: nothing that could end the line early.
bool safeField(std::string_view name, std::string_view value) {
  auto bad = [](char c) { return c == '\r' || c == '\n' || c == '\0'; };
  if (name.empty()) return false;
  for (char c : name) {
    if (bad(c) || c == ':' || c == ' ') return false;
  }
  for (char c : value) {
    if (bad(c)) return false;
  }
  return true;
}

// Headers that Istio's Bookinfo services copy from the incoming request onto their calls
// (productpage.py's getForwardHeaders, reviews' LibertyRestEndpoint); x-datadog-* by prefix.
constexpr std::array<std::string_view, 17> kPropagatedHeaders = {
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
    "cookie",
    "end-user",
    "authorization",
};

}  // namespace

std::string_view findHeader(const HeaderVector& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (http::equalsIgnoreCase(n, name)) return v;
  }
  return {};
}

int runServer(const ServerOptions& options, Handler handler) {
  auto hp = net::parseHostPort(options.listen);
  if (!hp.ok()) {
    std::fprintf(stderr, "%s: --listen: %s\n", options.service.c_str(),
                 hp.status().message().c_str());
    return 2;
  }
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(hp->host, ec);
  if (ec) {
    std::fprintf(stderr, "%s: --listen: %s is not an IP address\n", options.service.c_str(),
                 hp->host.c_str());
    return 2;
  }
  ServerState state(options, handler);
  tcp::endpoint ep(ip, hp->port);
  state.acceptor.open(ep.protocol(), ec);
  if (!ec) state.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) state.acceptor.bind(ep, ec);
  if (!ec) state.acceptor.listen(1024, ec);
  if (ec) {
    std::fprintf(stderr, "%s: cannot listen on %s: %s\n", options.service.c_str(),
                 options.listen.c_str(), ec.message().c_str());
    return 1;
  }
  uint16_t port = state.acceptor.local_endpoint().port();
  acceptLoop(state);
  asio::signal_set signals(state.io, SIGTERM, SIGINT);
  signals.async_wait([&state](boost::system::error_code, int) {
    state.draining = true;
    boost::system::error_code ignored;
    state.acceptor.close(ignored);
    if (state.in_flight == 0) state.io.stop();
  });
  if (!options.port_file.empty() && !writePortFile(options.port_file, port)) {
    std::fprintf(stderr, "%s: cannot write %s\n", options.service.c_str(),
                 options.port_file.c_str());
    return 1;
  }
  std::fprintf(stderr, "%s %s (%s) listening on %s\n", options.service.c_str(),
               options.instance.c_str(), options.version.c_str(),
               net::formatHostPort(hp->host, port).c_str());
  state.io.run();
  state.workers.join();
  return 0;
}

StatusOr<ClientResponse> httpGet(const Upstream& upstream, std::string_view path,
                                 const HeaderVector& headers) {
  auto deadline = Clock::now() + upstream.timeout;
  if (upstream.address.empty()) return failedPrecondition("no upstream address configured");
  auto hp = net::parseHostPort(upstream.address);
  if (!hp.ok()) return failedPrecondition(hp.status().message());

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = net::isIpLiteral(hp->host) ? AI_NUMERICHOST : 0;
  addrinfo* ai = nullptr;
  std::string port = std::to_string(hp->port);
  if (int rc = ::getaddrinfo(hp->host.c_str(), port.c_str(), &hints, &ai); rc != 0 || !ai) {
    return unavailable("cannot resolve " + hp->host + ": " + ::gai_strerror(rc));
  }
  int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  FdCloser closer(fd);
  if (fd < 0) {
    ::freeaddrinfo(ai);
    return unavailable("socket: " + std::string(std::strerror(errno)));
  }
  int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
  ::freeaddrinfo(ai);
  if (rc != 0 && errno != EINPROGRESS) {
    return unavailable("connect to " + upstream.address + ": " + std::strerror(errno));
  }
  if (rc != 0) {
    int w = waitFd(fd, POLLOUT, deadline);
    if (w == 0) return timedOut(upstream, "connect to");
    int err = 0;
    socklen_t len = sizeof(err);
    if (w < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      return unavailable("connect to " + upstream.address + ": " +
                         std::strerror(err != 0 ? err : errno));
    }
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  std::string raw =
      "GET " + std::string(path) + " HTTP/1.1\r\nHost: " + upstream.authority + "\r\n";
  for (const auto& [name, value] : headers) {
    if (safeField(name, value)) raw += name + ": " + value + "\r\n";
  }
  raw += "Connection: close\r\n\r\n";
  for (size_t off = 0; off < raw.size();) {
    ssize_t n = ::send(fd, raw.data() + off, raw.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      int w = waitFd(fd, POLLOUT, deadline);
      if (w == 0) return timedOut(upstream, "request to");
      if (w > 0) continue;
    }
    return unavailable("send to " + upstream.address + ": " + std::strerror(errno));
  }

  ClientResponse response;
  Http1Parser parser(Http1Parser::Type::kResponse);
  std::string buf;
  size_t pos = 0;
  bool eof = false;
  for (;;) {
    Http1Parser::Result r =
        eof ? parser.finish(buf.size() - pos) : parser.parse(std::string_view(buf).substr(pos));
    if (!eof) pos += r.consumed;
    switch (r.event) {
      case Http1Parser::Event::kHead: {
        const auto& h = parser.response();
        if (h.status >= 100 && h.status < 200) continue;  // interim responses
        response.status = h.status;
        for (const auto& f : h.headers) response.headers.emplace_back(f.name, f.value);
        continue;
      }
      case Http1Parser::Event::kBody:
        response.body.append(r.data);
        continue;
      case Http1Parser::Event::kMessageComplete:
        return response;
      case Http1Parser::Event::kError:
        if (eof) return unavailable(upstream.address + " closed before a complete response");
        return internalError("bad response from " + upstream.address + ": " +
                             std::string(http::parseErrorText(parser.error())));
      case Http1Parser::Event::kNeedMore:
        break;
    }
    if (eof) return unavailable(upstream.address + " closed before a complete response");
    buf.erase(0, pos);
    pos = 0;
    int w = waitFd(fd, POLLIN, deadline);
    if (w == 0) return timedOut(upstream, "response from");
    char chunk[16384];
    ssize_t n = w > 0 ? ::recv(fd, chunk, sizeof(chunk), 0) : -1;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return unavailable("recv from " + upstream.address + ": " + std::strerror(errno));
    }
    if (n == 0) {
      eof = true;
      continue;
    }
    buf.append(chunk, static_cast<size_t>(n));
  }
}

HeaderVector propagatedHeaders(const ServerRequest& request) {
  HeaderVector out;
  for (const auto& [name, value] : request.headers) {
    bool keep = name.size() > 10 && http::equalsIgnoreCase(name.substr(0, 10), "x-datadog-");
    for (std::string_view p : kPropagatedHeaders) keep = keep || http::equalsIgnoreCase(name, p);
    if (keep) out.emplace_back(name, value);
  }
  return out;
}

std::string jsonQuote(std::string_view s) {
  return boost::json::serialize(boost::json::string_view(s.data(), s.size()));
}

std::string htmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool parseProductId(std::string_view s, int* id) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *id);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty() && *id >= 0;
}

Handler productRoutes(std::string name, std::string prefix,
                      std::function<ServerResponse(const ServerRequest&, int id)> product) {
  return [name = std::move(name), prefix = std::move(prefix),
          product = std::move(product)](const ServerRequest& req) -> ServerResponse {
    std::string_view path = req.path;
    if (path == "/health") {
      return {200, "application/json", "{\"status\":\"" + name + " is healthy\"}", {}};
    }
    if (!path.starts_with(prefix))
      return {404, "application/json", "{\"error\":\"Not found\"}", {}};
    int id = 0;
    if (!parseProductId(path.substr(prefix.size()), &id)) {
      return {400, "application/json", "{\"error\":\"please provide numeric product ID\"}", {}};
    }
    return product(req, id);
  };
}

std::string defaultInstanceName(std::string_view service) {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return std::string(service) + "-" + host + "-" + std::to_string(::getpid());
}

}  // namespace mesh::bookinfo
