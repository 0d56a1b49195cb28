// Socket addresses as users write them: "127.0.0.1:8080", "[::1]:80", "0.0.0.0:15001".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mesh::net {

struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
};

// Splits "host:port" / "[v6]:port". The port is required and must be 0..65535.
StatusOr<HostPort> parseHostPort(std::string_view text);
// Whether host is a literal IPv4 or IPv6 address.
bool isIpLiteral(std::string_view host);
// "host:port", with brackets for IPv6.
std::string formatHostPort(std::string_view host, uint16_t port);

}  // namespace mesh::net
