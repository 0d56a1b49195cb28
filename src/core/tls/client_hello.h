// Reads the server name (SNI) from the first bytes of a TLS connection without terminating TLS,
// for routing passthrough traffic by name. Untrusted input: every length is checked against the
// bytes present and against the enclosing structure; nothing is allocated but the name.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mesh::tls {

enum class HelloResult {
  kNeedMore,  // a ClientHello may follow; call again with more bytes
  kFound,     // a ClientHello with a server name: *sni holds it (lowercase)
  kNoSni,     // a ClientHello without a server name
  kNotTls,    // not a TLS ClientHello (another protocol, or malformed)
};

// `data` holds every byte received so far from the client. Handles a ClientHello split over
// several handshake records; gives up (kNotTls) past kMaxHelloBytes.
HelloResult parseClientHello(std::string_view data, std::string* sni);

inline constexpr size_t kMaxHelloBytes = 64 * 1024;

}  // namespace mesh::tls
