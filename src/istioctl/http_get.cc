#include "istioctl/http_get.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/http/http1_parser.h"
#include "core/net/address.h"

namespace mesh::istioctl {
namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Connects with a deadline; returns the socket or an error.
StatusOr<int> connectTo(const net::HostPort& hp, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(hp.port);
  int rc = ::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return unavailable("cannot resolve " + hp.host + ": " + ::gai_strerror(rc));
  std::string last = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof(err);
      if (::poll(&p, 1, remainingMs(deadline)) == 1 &&
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        ::freeaddrinfo(res);
        return fd;
      }
      last = err != 0 ? std::strerror(err) : "timed out";
    } else {
      last = std::strerror(errno);
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return unavailable("cannot connect to " + net::formatHostPort(hp.host, hp.port) + ": " + last);
}

}  // namespace

StatusOr<HttpResult> httpGet(const std::string& host_port, const std::string& path,
                             std::chrono::milliseconds timeout) {
  auto hp = net::parseHostPort(host_port);
  if (!hp.ok()) return invalidArgument("'" + host_port + "': expected host:port");
  const auto deadline = Clock::now() + timeout;
  auto fd = connectTo(*hp, deadline);
  if (!fd.ok()) return fd.status();
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{*fd};
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host_port +
                    "\r\nConnection: close\r\nUser-Agent: istioctl\r\n\r\n";
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = ::send(*fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    pollfd p{*fd, POLLOUT, 0};
    if (n < 0 && errno == EAGAIN && ::poll(&p, 1, remainingMs(deadline)) == 1) continue;
    return unavailable("cannot send to " + host_port);
  }
  http::Http1Parser parser(http::Http1Parser::Type::kResponse);
  HttpResult out;
  std::string buf;
  size_t pos = 0;
  bool eof = false;
  for (;;) {
    auto r =
        eof ? parser.finish(buf.size() - pos) : parser.parse(std::string_view(buf).substr(pos));
    if (!eof) pos += r.consumed;
    switch (r.event) {
      case http::Http1Parser::Event::kHead:
        out.status = parser.response().status;
        continue;
      case http::Http1Parser::Event::kBody:
        out.body.append(r.data);
        continue;
      case http::Http1Parser::Event::kMessageComplete:
        return out;
      case http::Http1Parser::Event::kError:
        return unavailable("bad response from " + host_port + ": " +
                           std::string(http::parseErrorText(parser.error())));
      case http::Http1Parser::Event::kNeedMore:
        break;
    }
    if (eof) return unavailable(host_port + " closed the connection before a full response");
    buf.erase(0, pos);
    pos = 0;
    pollfd p{*fd, POLLIN, 0};
    if (::poll(&p, 1, remainingMs(deadline)) != 1) {
      return unavailable("timed out waiting for " + host_port + path);
    }
    char chunk[16384];
    ssize_t n = ::recv(*fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno != EAGAIN)
      return unavailable("recv from " + host_port + ": " + std::strerror(errno));
    if (n == 0) eof = true;
    if (n > 0) buf.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace mesh::istioctl
