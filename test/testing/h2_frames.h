// HTTP/2 frames written by hand (RFC 9113 section 4 and 6, HPACK literals of RFC 7541 6.2.2),
// for tests that must send what a well-behaved client library never would: floods, resets,
// oversized header blocks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mesh::testing::h2 {

inline constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum FrameType : uint8_t {
  kData = 0,
  kHeaders = 1,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoaway = 7,
  kWindowUpdate = 8,
  kContinuation = 9,
};
enum Flags : uint8_t { kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4 };
enum ErrorCode : uint32_t {
  kNoError = 0,
  kProtocolError = 1,
  kRefusedStream = 7,
  kCancel = 8,
  kEnhanceYourCalm = 0xb,
};

inline void put32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

inline std::string frame(uint8_t type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string out;
  const uint32_t len = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>(len >> 16));
  out.push_back(static_cast<char>(len >> 8));
  out.push_back(static_cast<char>(len));
  out.push_back(static_cast<char>(type));
  out.push_back(static_cast<char>(flags));
  put32(out, stream & 0x7fffffffu);
  out.append(payload);
  return out;
}

// HPACK integer with an N-bit prefix (RFC 7541 5.1); `first` holds the pattern bits.
inline void hpackInt(std::string& out, uint8_t first, int prefix_bits, uint64_t v) {
  const uint64_t max = (1u << prefix_bits) - 1;
  if (v < max) {
    out.push_back(static_cast<char>(first | v));
    return;
  }
  out.push_back(static_cast<char>(first | max));
  v -= max;
  while (v >= 128) {
    out.push_back(static_cast<char>((v % 128) + 128));
    v /= 128;
  }
  out.push_back(static_cast<char>(v));
}

// "Literal Header Field without Indexing -- New Name", no Huffman.
inline void hpackLiteral(std::string& out, std::string_view name, std::string_view value) {
  out.push_back(0);
  hpackInt(out, 0, 7, name.size());
  out.append(name);
  hpackInt(out, 0, 7, value.size());
  out.append(value);
}

inline std::string headerBlock(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [n, v] : fields) hpackLiteral(out, n, v);
  return out;
}

inline std::string requestBlock(std::string_view method, std::string_view path,
                                std::string_view authority = "test.local") {
  std::string out;
  hpackLiteral(out, ":method", method);
  hpackLiteral(out, ":scheme", "http");
  hpackLiteral(out, ":path", path);
  hpackLiteral(out, ":authority", authority);
  return out;
}

inline std::string settings(const std::vector<std::pair<uint16_t, uint32_t>>& entries = {}) {
  std::string p;
  for (const auto& [id, v] : entries) {
    p.push_back(static_cast<char>(id >> 8));
    p.push_back(static_cast<char>(id));
    put32(p, v);
  }
  return frame(kSettings, 0, 0, p);
}

inline std::string rstStream(uint32_t stream, uint32_t code) {
  std::string p;
  put32(p, code);
  return frame(kRstStream, 0, stream, p);
}

inline std::string windowUpdate(uint32_t stream, uint32_t increment) {
  std::string p;
  put32(p, increment);
  return frame(kWindowUpdate, 0, stream, p);
}

inline std::string ping(uint64_t data = 0) {
  std::string p;
  put32(p, static_cast<uint32_t>(data >> 32));
  put32(p, static_cast<uint32_t>(data));
  return frame(kPing, 0, 0, p);
}

struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream = 0;
  std::string payload;
  uint32_t u32(size_t at) const {
    auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(payload[i])); };
    return b(at) << 24 | b(at + 1) << 16 | b(at + 2) << 8 | b(at + 3);
  }
  // GOAWAY: the error code; RST_STREAM: the error code.
  uint32_t errorCode() const { return type == kGoaway ? u32(4) : u32(0); }
};

// Splits whole frames off the front of `buf`; true with `f` filled when one was complete.
inline bool nextFrame(std::string& buf, Frame& f) {
  if (buf.size() < 9) return false;
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(buf[i])); };
  const uint32_t len = b(0) << 16 | b(1) << 8 | b(2);
  if (buf.size() < 9 + len) return false;
  f.type = static_cast<uint8_t>(buf[3]);
  f.flags = static_cast<uint8_t>(buf[4]);
  f.stream = (b(5) << 24 | b(6) << 16 | b(7) << 8 | b(8)) & 0x7fffffffu;
  f.payload.assign(buf, 9, len);
  buf.erase(0, 9 + len);
  return true;
}

}  // namespace mesh::testing::h2
