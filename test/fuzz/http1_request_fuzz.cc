// Fuzzes the HTTP/1.1 request parser: every input is replayed under several read splits and with
// default and small limits, and all replays must agree (see http1_fuzz_oracle.h).
#include <cstddef>
#include <cstdint>

#include "test/fuzz/http1_fuzz_oracle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return mesh::http::fuzz::fuzzOne(mesh::http::Http1Parser::Type::kRequest, data, size);
}
