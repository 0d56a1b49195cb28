#include "core/net/address.h"

#include <arpa/inet.h>

#include <charconv>

namespace mesh::net {

StatusOr<HostPort> parseHostPort(std::string_view text) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalidArgument("expected [ipv6]:port, got '" + std::string(text) + "'");
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return invalidArgument("expected host:port, got '" + std::string(text) + "'");
    }
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos) {
      return invalidArgument("IPv6 addresses need brackets: '" + std::string(text) + "'");
    }
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) return invalidArgument("missing host in '" + std::string(text) + "'");
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || ptr != port_text.data() + port_text.size() ||
      port > 65535) {
    return invalidArgument("invalid port in '" + std::string(text) + "'");
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

bool isIpLiteral(std::string_view host) {
  std::string h(host);
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

std::string formatHostPort(std::string_view host, uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    out += '[';
    out += host;
    out += ']';
  } else {
    out += host;
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

}  // namespace mesh::net
