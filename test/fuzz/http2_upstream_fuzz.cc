// Fuzz target for the upstream HTTP/2 path: the bytes an upstream server sends, into the
// response conversion Http2Upstream runs (Http2Response on an nghttp2 client session with the
// upstream's settings, through test/testing/h2_upstream_driver.h; the socket is not part of it).
// Input: byte 0 picks 1..4 requests (bits 0-1), which of them are HEAD (bits 2-5) and whether
// the router holds each body slice until the next read (bit 6); byte 1 the read size
// (1..256); then the server's bytes, after a valid server SETTINGS (and ACK) given here.
// Oracle: no crash or hang; a stream's buffered response body never exceeds its receive
// window (bounded memory); a stream nghttp2 closed has its terminal callback due at once
// unless the router holds a body slice; no stream ever gets two terminal callbacks, none
// after the router let go, and each ends with exactly one once the connection is gone; a head
// handed to the router has a final status (200..599), as an HTTP/1.1 upstream's must.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "test/testing/h2_frames.h"
#include "test/testing/h2_upstream_driver.h"

namespace {

namespace h2 = mesh::testing::h2;

void check(const h2::UpstreamDriver& d) {
  for (const auto& s : d.streams()) {
    if (s->completes + s->resets > 1) std::abort();
    if (s->body_.size() + s->body_next_.size() > mesh::proxy::kHttp2UpstreamStreamWindow) {
      std::abort();
    }
    if (s->got_head && (s->status < 200 || s->status > 599)) std::abort();
    if (s->closed_ && !s->router_done && !s->holding) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.size() < 2) return 0;
  const uint8_t mode = static_cast<uint8_t>(in[0]);
  const size_t piece = static_cast<uint8_t>(in[1]) + 1;
  in.remove_prefix(2);

  h2::UpstreamDriver d;
  const int n = (mode & 3) + 1;
  for (int i = 0; i < n; ++i) {
    auto* s = d.request((mode >> (2 + i)) & 1, "/" + std::to_string(i));
    if (s == nullptr) std::abort();
    s->hold_body = (mode & 0x40) != 0;
  }
  bool more = d.receive(h2::settings() + h2::frame(h2::kSettings, h2::kAck, 0, ""));
  check(d);
  while (more && !in.empty()) {
    std::string_view p = in.substr(0, piece);
    in.remove_prefix(p.size());
    more = d.receive(p);
    check(d);
    d.sent().clear();
    // The router lets go of what it held before the next read.
    for (const auto& s : d.streams()) d.release(s.get());
    check(d);
  }
  d.closeConnection();
  for (const auto& s : d.streams()) {
    if (s->completes + s->resets != 1) std::abort();
  }
  return 0;
}
