// Fuzz target for the ClientHello reader: any bytes, whole and in every prefix, must give an
// answer without crashing, and a prefix may only "need more" or agree with the whole input's
// outcome class as bytes arrive.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/tls/client_hello.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string sni;
  mesh::tls::HelloResult whole = mesh::tls::parseClientHello(in, &sni);
  if (whole == mesh::tls::HelloResult::kFound &&
      (sni.empty() || sni.size() > 255 || sni.find_first_of(" \r\n\t") != std::string::npos)) {
    std::abort();  // a name that is not a host name slipped through
  }
  // Once decided, more bytes cannot change the answer: check a few prefixes.
  for (size_t n : {size / 4, size / 2, size - (size > 0 ? 1 : 0)}) {
    std::string s2;
    mesh::tls::HelloResult part = mesh::tls::parseClientHello(in.substr(0, n), &s2);
    if (part != mesh::tls::HelloResult::kNeedMore && part != whole) std::abort();
    if (part == mesh::tls::HelloResult::kFound && s2 != sni) std::abort();
  }
  return 0;
}
