// Fuzzes the HTTP/1.1 response parser: every input is replayed under several read splits, with
// default and small limits and with some responses answering HEAD, and all replays must agree
// (see http1_fuzz_oracle.h).
#include <cstddef>
#include <cstdint>

#include "test/fuzz/http1_fuzz_oracle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return mesh::http::fuzz::fuzzOne(mesh::http::Http1Parser::Type::kResponse, data, size);
}
