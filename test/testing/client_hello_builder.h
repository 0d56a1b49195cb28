// Builds TLS ClientHello bytes for tests of code that reads them (SNI routing): a fixed TLS
// 1.2-style hello with chosen extensions, wrapped in handshake records of a chosen size.
#pragma once

#include <string>

namespace mesh::testing {

inline std::string u16(size_t v) {
  return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
}
inline std::string u24(size_t v) {
  return {static_cast<char>(v >> 16), static_cast<char>((v >> 8) & 0xff),
          static_cast<char>(v & 0xff)};
}

// The ClientHello body with the given extensions block content (none at all if !with_extensions).
inline std::string helloBody(const std::string& extensions, bool with_extensions = true) {
  std::string b = "\x03\x03";
  b += std::string(32, 'r');                           // random
  b += std::string(1, '\x20') + std::string(32, 's');  // session id
  b += u16(4) + std::string("\x13\x01\x13\x02", 4);    // two cipher suites
  b += std::string("\x01\x00", 2);                     // compression: null
  if (with_extensions) b += u16(extensions.size()) + extensions;
  return b;
}

inline std::string sniExtension(const std::string& name) {
  std::string list = std::string(1, '\0') + u16(name.size()) + name;
  std::string data = u16(list.size()) + list;
  return u16(0) + u16(data.size()) + data;
}

inline std::string otherExtension() {
  return u16(0x002b) + u16(3) + std::string("\x02\x03\x04", 3);
}

// A handshake body wrapped in records of at most `fragment` bytes each.
inline std::string helloRecords(const std::string& body, size_t fragment = 16384) {
  std::string hs = std::string(1, '\x01') + u24(body.size()) + body;
  std::string out;
  for (size_t i = 0; i < hs.size(); i += fragment) {
    std::string part = hs.substr(i, fragment);
    out += std::string("\x16\x03\x01", 3) + u16(part.size()) + part;
  }
  return out;
}

inline std::string clientHello(const std::string& sni) {
  return helloRecords(helloBody(otherExtension() + sniExtension(sni)));
}

}  // namespace mesh::testing
