// Fuzz target for the downstream HTTP/2 path: any bytes after the connection preface go into
// an Http2ServerSession whose "router" reads every request and answers each finished one with
// a chunked HTTP/1.1 response with trailers. Never a crash; the request bytes a stream holds
// stay within what its flow-control window allows (bounded memory), and frames drain.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http2_server_session.h"

namespace {

using mesh::proxy::Http2Limits;
using mesh::proxy::Http2ServerSession;

struct Router : Http2ServerSession::Callbacks {
  void onRequest(int32_t id) override { touched.push_back(id); }
  void onRequestData(int32_t id) override { touched.push_back(id); }
  void onStreamClose(int32_t id, uint32_t) override { closed.insert(id); }
  void onResponseDrained(int32_t) override {}
  std::vector<int32_t> touched;
  std::set<int32_t> closed, answered;
};

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n"
    "connection: keep-alive\r\n\r\n5\r\nhello\r\n0\r\nx-trailer: 1\r\n\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Router router;
  Http2Limits limits;
  Http2ServerSession session(router, limits);
  // The preface, then the input in pieces whose sizes the first byte picks (1..256 bytes), so
  // frames split across reads are covered too.
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t piece = in.empty() ? 1 : static_cast<uint8_t>(in[0]) + 1;
  if (!in.empty()) in.remove_prefix(1);
  bool more = session.receive(kPreface);
  std::string out;
  // Worst case per window byte: a 1-byte DATA frame is 6 bytes of chunked framing.
  const size_t max_pending = limits.max_header_list_bytes * 2 + 8 * limits.initial_stream_window;
  while (more && !in.empty()) {
    std::string_view p = in.substr(0, piece);
    in.remove_prefix(p.size());
    more = session.receive(p);
    std::vector<int32_t> touched;
    touched.swap(router.touched);
    for (int32_t id : touched) {
      if (router.closed.count(id)) continue;
      std::string_view pending = session.pendingRequest(id);
      if (pending.size() > max_pending) std::abort();
      session.consumeRequest(id, pending.size());
      if (session.requestEnded(id) && router.answered.insert(id).second) {
        session.writeResponse(id, kResponse);
      }
    }
    out.clear();
    session.send(out, 1 << 20);
  }
  out.clear();
  session.send(out, 1 << 20);
  if (session.openStreams() > limits.max_concurrent_streams + 1) std::abort();
  return 0;
}
