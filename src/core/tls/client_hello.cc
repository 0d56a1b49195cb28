#include "core/tls/client_hello.h"

#include <cstdint>

namespace mesh::tls {
namespace {

// A bounds-checked reader over a byte span.
class Reader {
 public:
  explicit Reader(std::string_view d) : d_(d) {}
  bool u8(uint32_t* v) { return take(1, v); }
  bool u16(uint32_t* v) { return take(2, v); }
  bool u24(uint32_t* v) { return take(3, v); }
  bool skip(size_t n) {
    if (n > d_.size() - pos_) return false;
    pos_ += n;
    return true;
  }
  // A sub-reader over the next n bytes.
  bool sub(size_t n, Reader* out) {
    if (n > d_.size() - pos_) return false;
    *out = Reader(d_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool bytes(size_t n, std::string_view* out) {
    if (n > d_.size() - pos_) return false;
    *out = d_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool empty() const { return pos_ == d_.size(); }

 private:
  bool take(size_t n, uint32_t* v) {
    if (n > d_.size() - pos_) return false;
    uint32_t x = 0;
    for (size_t i = 0; i < n; ++i) x = (x << 8) | static_cast<uint8_t>(d_[pos_ + i]);
    pos_ += n;
    *v = x;
    return true;
  }
  std::string_view d_;
  size_t pos_ = 0;
};

constexpr uint32_t kHandshake = 22;
constexpr uint32_t kClientHello = 1;
constexpr uint32_t kServerNameExtension = 0;
constexpr uint32_t kHostName = 0;

// Parses a complete ClientHello body (after the 4-byte handshake header).
HelloResult parseHelloBody(std::string_view body, std::string* sni) {
  Reader r(body);
  uint32_t version = 0, len = 0;
  if (!r.u16(&version) || (version >> 8) != 3) return HelloResult::kNotTls;
  if (!r.skip(32)) return HelloResult::kNotTls;                              // random
  if (!r.u8(&len) || len > 32 || !r.skip(len)) return HelloResult::kNotTls;  // session id
  if (!r.u16(&len) || len < 2 || len % 2 != 0 || !r.skip(len)) return HelloResult::kNotTls;
  if (!r.u8(&len) || len < 1 || !r.skip(len)) return HelloResult::kNotTls;  // compression
  if (r.empty()) return HelloResult::kNoSni;                                // no extensions at all
  Reader exts(std::string_view{});
  if (!r.u16(&len) || !r.sub(len, &exts) || !r.empty()) return HelloResult::kNotTls;
  while (!exts.empty()) {
    uint32_t type = 0, ext_len = 0;
    Reader ext(std::string_view{});
    if (!exts.u16(&type) || !exts.u16(&ext_len) || !exts.sub(ext_len, &ext)) {
      return HelloResult::kNotTls;
    }
    if (type != kServerNameExtension) continue;
    uint32_t list_len = 0;
    Reader list(std::string_view{});
    if (!ext.u16(&list_len) || !ext.sub(list_len, &list) || !ext.empty()) {
      return HelloResult::kNotTls;
    }
    while (!list.empty()) {
      uint32_t name_type = 0, name_len = 0;
      std::string_view name;
      if (!list.u8(&name_type) || !list.u16(&name_len) || !list.bytes(name_len, &name)) {
        return HelloResult::kNotTls;
      }
      if (name_type != kHostName) continue;
      if (name.empty() || name.size() > 255) return HelloResult::kNotTls;
      sni->clear();
      for (char c : name) {
        unsigned char u = static_cast<unsigned char>(c);
        // A host name: letters, digits, '-', '.', '_' (seen in the wild); nothing else.
        bool ok = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
                  u == '-' || u == '.' || u == '_';
        if (!ok) return HelloResult::kNotTls;
        sni->push_back(static_cast<char>(u >= 'A' && u <= 'Z' ? u + 32 : u));
      }
      return HelloResult::kFound;
    }
    return HelloResult::kNoSni;
  }
  return HelloResult::kNoSni;
}

}  // namespace

HelloResult parseClientHello(std::string_view data, std::string* sni) {
  // Collect the handshake bytes from consecutive handshake records until the ClientHello's
  // declared length is present.
  std::string handshake;
  Reader r(data);
  size_t consumed = 0;
  while (true) {
    uint32_t type = 0, version = 0, len = 0;
    if (!r.u8(&type)) return HelloResult::kNeedMore;
    if (type != kHandshake) return HelloResult::kNotTls;
    if (!r.u16(&version)) return HelloResult::kNeedMore;
    if ((version >> 8) != 3) return HelloResult::kNotTls;
    if (!r.u16(&len)) return HelloResult::kNeedMore;
    if (len == 0 || len > 16384 + 2048) return HelloResult::kNotTls;
    if (consumed + 5 + len > kMaxHelloBytes) return HelloResult::kNotTls;
    std::string_view fragment;
    if (!r.bytes(len, &fragment)) return HelloResult::kNeedMore;
    consumed += 5 + len;
    handshake.append(fragment);
    if (handshake.size() >= 4) {
      Reader h(handshake);
      uint32_t msg_type = 0, msg_len = 0;
      h.u8(&msg_type);
      h.u24(&msg_len);
      if (msg_type != kClientHello) return HelloResult::kNotTls;
      if (msg_len + 4 > kMaxHelloBytes) return HelloResult::kNotTls;
      if (handshake.size() >= msg_len + 4) {
        return parseHelloBody(std::string_view(handshake).substr(4, msg_len), sni);
      }
    }
    if (consumed > kMaxHelloBytes) return HelloResult::kNotTls;
  }
}

}  // namespace mesh::tls
