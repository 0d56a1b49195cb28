// Fuzz target for the gRPC header values the router reads from clients and upstreams
// (grpc-timeout, grpc-status, content-type) and the grpc-message it writes back: any bytes give
// a value or "absent", never a crash; a parsed timeout is at least 1 ms, and an encoded
// message never carries CR, LF or a non-printable byte into a header line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/http/grpc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace grpc = mesh::proxy::grpc;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto t = grpc::parseTimeout(in);
  if (t && t->count() < 1) std::abort();
  if (t && in.size() > 9) std::abort();
  auto s = grpc::parseStatus(in);
  if (s && in.find_first_not_of(" \t0123456789") != std::string_view::npos) std::abort();
  (void)grpc::isGrpcContentType(in);
  (void)grpc::statusFromName(in);
  std::string line;
  grpc::appendLocalReplyHeaders(line, s.value_or(grpc::kUnknown), in);
  for (unsigned char c : line) {
    if (c != '\r' && c != '\n' && (c < 0x20 || c > 0x7e)) std::abort();
  }
  // Exactly one CRLF per header line: content-type, grpc-status, grpc-message?, content-length.
  size_t lines = 0;
  for (size_t i = 0; (i = line.find("\r\n", i)) != std::string::npos; i += 2) ++lines;
  if (lines != (in.empty() ? 3u : 4u)) std::abort();
  return 0;
}
