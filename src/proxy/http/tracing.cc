#include "proxy/http/tracing.h"

#include <array>
#include <cstring>

namespace mesh::proxy {
namespace {

// "00".."ff" for each byte value: a 64-bit id is eight table reads, not sixteen shifts.
constexpr std::array<char, 512> makeHexPairs() {
  constexpr char kDigits[] = "0123456789abcdef";
  std::array<char, 512> t{};
  for (int b = 0; b < 256; ++b) {
    t[static_cast<size_t>(2 * b)] = kDigits[b >> 4];
    t[static_cast<size_t>(2 * b + 1)] = kDigits[b & 0xf];
  }
  return t;
}
constexpr std::array<char, 512> kHexPairs = makeHexPairs();

// The 16 lower-case hex digits of v, most significant first.
void writeHex64(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) {
    std::memcpy(out + 2 * i, &kHexPairs[(v & 0xff) * 2], 2);
    v >>= 8;
  }
}

constexpr std::array<bool, 256> makeLowerHex() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[static_cast<size_t>(c)] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  return t;
}
constexpr std::array<bool, 256> kLowerHex = makeLowerHex();

// Branch-free over the whole id (ids are 2 to 32 characters).
bool isLowerHex(std::string_view s) {
  bool ok = true;
  for (char c : s) ok &= kLowerHex[static_cast<unsigned char>(c)];
  return ok;
}

bool allZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

}  // namespace

RequestId makeRequestId(Random& random) {
  RequestId id;
  uint64_t hi = random.next();
  uint64_t lo = random.next();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char raw[32];
  writeHex64(hi, raw);
  writeHex64(lo, raw + 16);
  // 8-4-4-4-12
  char* o = id.text.data();
  std::memcpy(o, raw, 8);
  o[8] = '-';
  std::memcpy(o + 9, raw + 8, 4);
  o[13] = '-';
  std::memcpy(o + 14, raw + 12, 4);
  o[18] = '-';
  std::memcpy(o + 19, raw + 16, 4);
  o[23] = '-';
  std::memcpy(o + 24, raw + 20, 12);
  return id;
}

bool TraceContext::take(const http::Header& h) {
  const std::string_view n = h.name;
  auto note = [&](std::string_view& slot, uint8_t bit) {
    if ((seen_ & bit) == 0) slot = h.value;
    seen_ |= bit;
  };
  switch (n.size()) {
    case 10:
      if (http::equalsIgnoreCase(n, "x-b3-flags")) note(b3_flags, 1);
      return false;  // forwarded as it came
    case 11:
      if (http::equalsIgnoreCase(n, "traceparent")) {
        note(traceparent, 2);
        return true;
      }
      if (http::equalsIgnoreCase(n, "x-b3-spanid")) {
        note(b3_span_id, 4);
        return true;
      }
      return false;
    case 12:
      if (http::equalsIgnoreCase(n, "x-b3-traceid")) {
        note(b3_trace_id, 8);
        return true;
      }
      if (http::equalsIgnoreCase(n, "x-b3-sampled")) {
        note(b3_sampled, 16);
        return true;
      }
      return false;
    case 17:
      return http::equalsIgnoreCase(n, "x-b3-parentspanid");
    default:
      return false;
  }
}

void continueTrace(const http::HeaderList& headers, Random& random, double sampling_percent,
                   TraceHeaders* out) {
  TraceContext in;
  for (const auto& h : headers) in.take(h);
  continueTrace(in, random, sampling_percent, out);
}

void continueTrace(const TraceContext& in, Random& random, double sampling_percent,
                   TraceHeaders* out) {
  out->has_parent = false;
  out->trace_id_len = 32;
  bool continued = false;
  // W3C: version "00", 32 hex trace id, 16 hex parent id, 2 hex flags; all-zero ids invalid.
  std::string_view tp = in.traceparent;
  if (tp.size() >= 55 && tp[2] == '-' && tp[35] == '-' && tp[52] == '-' &&
      isLowerHex(tp.substr(0, 2)) && tp.substr(0, 2) != "ff" && isLowerHex(tp.substr(3, 32)) &&
      !allZero(tp.substr(3, 32)) && isLowerHex(tp.substr(36, 16)) && !allZero(tp.substr(36, 16)) &&
      isLowerHex(tp.substr(53, 2)) && (tp.size() == 55 || tp[55] == '-')) {
    tp.substr(3, 32).copy(out->trace_id.data(), 32);
    tp.substr(36, 16).copy(out->parent_span_id.data(), 16);
    out->has_parent = true;
    int flags = (tp[54] >= 'a' ? tp[54] - 'a' + 10 : tp[54] - '0');
    out->sampled = flags & 1;
    continued = true;
  }
  if (!continued) {
    std::string_view b3_trace = in.b3_trace_id;
    if ((b3_trace.size() == 32 || b3_trace.size() == 16) && isLowerHex(b3_trace) &&
        !allZero(b3_trace)) {
      b3_trace.copy(out->trace_id.data(), b3_trace.size());
      out->trace_id_len = b3_trace.size();
      std::string_view b3_span = in.b3_span_id;
      if (b3_span.size() == 16 && isLowerHex(b3_span)) {
        b3_span.copy(out->parent_span_id.data(), 16);
        out->has_parent = true;
      }
      std::string_view s = in.b3_sampled;
      out->sampled = s == "1" || s == "true" || in.b3_flags == "1";
      continued = true;
    }
  }
  if (!continued) {
    writeHex64(random.next(), out->trace_id.data());
    writeHex64(random.next(), out->trace_id.data() + 16);
    out->sampled = random.chance(sampling_percent);
  }
  uint64_t span = random.next();
  if (span == 0) span = 1;
  writeHex64(span, out->span_id.data());

  // traceparent needs a 128-bit id: pad a 64-bit B3 id on the left with zeros.
  char* t = out->traceparent.data();
  t[0] = '0';
  t[1] = '0';
  t[2] = '-';
  if (out->trace_id_len == 16) {
    for (int i = 0; i < 16; ++i) t[3 + i] = '0';
    std::copy(out->trace_id.begin(), out->trace_id.begin() + 16, t + 19);
  } else {
    std::copy(out->trace_id.begin(), out->trace_id.end(), t + 3);
  }
  t[35] = '-';
  std::copy(out->span_id.begin(), out->span_id.end(), t + 36);
  t[52] = '-';
  t[53] = '0';
  t[54] = out->sampled ? '1' : '0';
}

}  // namespace mesh::proxy
