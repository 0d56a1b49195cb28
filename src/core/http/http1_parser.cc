#include "core/http/http1_parser.h"

#include <array>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace mesh::http {
namespace {

// Character classes (RFC 9110 section 5.6.2 tchar, 5.5 field-value, RFC 3986 authority).
enum : uint8_t {
  kTchar = 1,
  kFieldValue = 2,  // VCHAR, SP, HTAB, obs-text
  kTarget = 4,      // visible ASCII allowed in a request-target
  kAuthority = 8,   // reg-name, IP-literal brackets, ':' port, pct-encoding
  kHex = 16,
};

constexpr std::array<uint8_t, 256> makeTable() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    bool digit = c >= '0' && c <= '9';
    if (alpha || digit) v |= kTchar;
    switch (c) {
      case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
      case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        v |= kTchar;
        break;
      default:
        break;
    }
    if ((c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || c >= 0x80) v |= kFieldValue;
    if (c >= 0x21 && c <= 0x7e && c != '#') v |= kTarget;
    if (alpha || digit) v |= kAuthority;
    switch (c) {
      case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'':
      case '(': case ')': case '*': case '+': case ',': case ';': case '=': case '%':
      case ':': case '[': case ']':
        v |= kAuthority;
        break;
      default:
        break;
    }
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    t[static_cast<size_t>(c)] = v;
  }
  return t;
}

constexpr std::array<uint8_t, 256> kTable = makeTable();

// Room for method, spaces and version in a request line judged against the URI limit.
constexpr size_t kRequestLineSlack = 64;
constexpr size_t kMaxLeadingEmptyLines = 4;

inline bool is(char c, uint8_t cls) { return kTable[static_cast<unsigned char>(c)] & cls; }

// The first byte in [p, end) that is not allowed in a field value (RFC 9110 5.5: VCHAR, SP,
// HTAB, obs-text), or end: 16 bytes at a time (SSE2, every x86-64 has it), so that a long value
// (a peer's metadata, a cookie, a JWT) costs a few instructions per 16 bytes, not per byte.
// Not allowed: 0x00-0x08, 0x0a-0x1f (CR, the usual stop, among them) and 0x7f.
const char* skipFieldValue(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i c1f = _mm_set1_epi8(0x1f);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v);  // v <= 0x1f, unsigned
    const __m128i bad =
        _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, tab), control), _mm_cmpeq_epi8(v, del));
    const int mask = _mm_movemask_epi8(bad);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p != end && is(*p, kFieldValue)) ++p;
  return p;
}

inline int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Classifies a byte that is not allowed in a field value or line.
ParseError badByte(char c) {
  if (c == '\r') return ParseError::kBareCr;
  if (c == '\n') return ParseError::kBareLf;
  return ParseError::kControlChar;
}

// The most specific error for a malformed line: a bare CR or control byte if there is one.
ParseError lineError(std::string_view line, ParseError fallback) {
  for (char c : line) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\r') return ParseError::kBareCr;
    if ((u < 0x20 && c != '\t') || u == 0x7f) return ParseError::kControlChar;
  }
  return fallback;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(token) for each non-empty element of a comma-separated list.
template <typename Fn>
void forEachListElement(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view elem = trimOws(list.substr(0, comma));
    if (!elem.empty()) fn(elem);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

bool parseVersion(std::string_view v, Version* out) {
  if (v == "HTTP/1.1") {
    *out = Version::kHttp11;
    return true;
  }
  if (v == "HTTP/1.0") {
    *out = Version::kHttp10;
    return true;
  }
  return false;
}

// authority without userinfo (RFC 3986 3.2): an IP-literal in brackets or a reg-name, then an
// optional ":" and port digits. `need_host` / `need_port`: that part must not be empty.
bool validAuthority(std::string_view a, bool need_host, bool need_port) {
  std::string_view host = a;
  std::string_view port;
  if (!a.empty() && a[0] == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : a.substr(1, close - 1)) {
      if (!is(c, kAuthority) || c == '[') return false;
    }
    host = a.substr(0, close + 1);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      port = rest.substr(1);
    }
  } else {
    size_t colon = a.find(':');
    if (colon != std::string_view::npos) {
      host = a.substr(0, colon);
      port = a.substr(colon + 1);
    }
    for (char c : host) {
      if (!is(c, kAuthority) || c == '[' || c == ']' || c == ':') return false;
    }
  }
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return !(need_host && host.empty()) && !(need_port && port.empty());
}

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 7.1.1),
// with chunk-ext-val = token / quoted-string. `s` is the rest of the size line after the digits.
bool validChunkExtensions(std::string_view s) {
  size_t i = 0;
  auto skipBws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  };
  auto skipToken = [&] {
    size_t from = i;
    while (i < s.size() && is(s[i], kTchar)) ++i;
    return i > from;
  };
  while (i < s.size()) {
    skipBws();
    if (i == s.size() || s[i] != ';') return false;
    ++i;
    skipBws();
    if (!skipToken()) return false;
    size_t after_name = i;
    skipBws();
    if (i == s.size() || s[i] != '=') {
      i = after_name;  // the whitespace belongs before the next ';'
      continue;
    }
    ++i;
    skipBws();
    if (i < s.size() && s[i] == '"') {
      for (++i;; ++i) {
        if (i == s.size()) return false;
        if (s[i] == '"') break;
        if (s[i] == '\\' && ++i == s.size()) return false;
        if (!is(s[i], kFieldValue)) return false;
      }
      ++i;
    } else if (!skipToken()) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string_view parseErrorText(ParseError e) {
  switch (e) {
    case ParseError::kNone: return "no error";
    case ParseError::kBadRequestLine: return "malformed request line";
    case ParseError::kBadVersion: return "unsupported HTTP version";
    case ParseError::kBadStatusLine: return "malformed status line";
    case ParseError::kUriTooLong: return "request URI too long";
    case ParseError::kHeadersTooLarge: return "header block too large";
    case ParseError::kTooManyHeaders: return "too many header fields";
    case ParseError::kBadHeaderName: return "invalid header field name";
    case ParseError::kWhitespaceBeforeColon: return "whitespace before colon in header field";
    case ParseError::kMissingColon: return "header field without colon";
    case ParseError::kObsFold: return "obsolete line folding";
    case ParseError::kBareCr: return "bare CR";
    case ParseError::kBareLf: return "bare LF";
    case ParseError::kControlChar: return "control character in message";
    case ParseError::kMissingHost: return "missing Host header";
    case ParseError::kDuplicateHost: return "duplicate Host header";
    case ParseError::kBadHost: return "invalid Host header";
    case ParseError::kBadContentLength: return "invalid Content-Length";
    case ParseError::kDuplicateContentLength: return "duplicate Content-Length";
    case ParseError::kContentLengthWithTransferEncoding:
      return "Content-Length with Transfer-Encoding";
    case ParseError::kBadTransferEncoding: return "chunked must be the only transfer coding";
    case ParseError::kUnknownTransferEncoding: return "unknown transfer coding";
    case ParseError::kTransferEncodingInHttp10: return "Transfer-Encoding in HTTP/1.0";
    case ParseError::kBadChunkSize: return "invalid chunk size";
    case ParseError::kBadChunkTerminator: return "chunk data not followed by CRLF";
    case ParseError::kChunkLineTooLong: return "chunk size line too long";
    case ParseError::kTrailersTooLarge: return "trailers too large";
    case ParseError::kUnexpectedEof: return "connection closed mid-message";
  }
  return "unknown error";
}

int parseErrorStatus(ParseError e) {
  switch (e) {
    case ParseError::kUriTooLong: return 414;
    case ParseError::kHeadersTooLarge:
    case ParseError::kTooManyHeaders:
    case ParseError::kTrailersTooLarge: return 431;
    case ParseError::kUnknownTransferEncoding: return 501;
    default: return 400;
  }
}

Http1Parser::Http1Parser(Type type, Limits limits) : type_(type), limits_(limits) {
  (type == Type::kRequest ? request_.headers : response_.headers).reserve(16);
}

Http1Parser::Http1Parser(Type type, const Limits& limits, NoReserve)
    : type_(type), limits_(limits) {}

void Http1Parser::reset(const Limits& limits) {
  Http1Parser fresh(type_, limits, NoReserve{});
  fresh.request_.headers.swap(request_.headers);
  fresh.response_.headers.swap(response_.headers);
  fresh.trailers_.swap(trailers_);
  fresh.request_.headers.clear();
  fresh.response_.headers.clear();
  fresh.trailers_.clear();
  *this = std::move(fresh);
}

bool Http1Parser::inBody() const {
  switch (state_) {
    case State::kBodyLength:
    case State::kChunkSize:
    case State::kChunkData:
    case State::kChunkDataEnd:
    case State::kTrailers:
    case State::kBodyUntilClose:
    case State::kDone:
      return true;
    default:
      return false;
  }
}

Http1Parser::Result Http1Parser::fail(ParseError e) {
  state_ = State::kError;
  error_ = e;
  return {Event::kError, 0, {}};
}

// Limits are judged on the bytes seen so far, the same way whether a line arrived whole or in
// pieces: a check on the bytes before a line's LF comes first, as a split delivery may have seen
// exactly those, and the check on a complete block covers its final CRLF.
bool Http1Parser::blockOverLimitSlow(size_t end, bool start_line) {
  const size_t len = end - block_begin_;
  if (start_line && !first_line_seen_ && type_ == Type::kRequest) {
    // An open request line longer than the URI limit plus room for method and version: 414,
    // unless the head limit is the tighter one and would have been hit first.
    const size_t cap = limits_.max_uri_bytes > SIZE_MAX - kRequestLineSlack
                           ? SIZE_MAX
                           : limits_.max_uri_bytes + kRequestLineSlack;
    if (cap <= limits_.max_head_bytes && len > cap) {
      fail(ParseError::kUriTooLong);
      return true;
    }
  }
  if (len > limits_.max_head_bytes) {
    fail(ParseError::kHeadersTooLarge);
    return true;
  }
  return false;
}

size_t Http1Parser::scanBlock(std::string_view in, bool start_line) {
  const char* d = in.data();
  const size_t n = in.size();
  size_t pos = scan_pos_;
  while (pos < n) {
    const void* hit = std::memchr(d + pos, '\n', n - pos);
    if (hit == nullptr) {
      pos = n;
      break;
    }
    const size_t nl = static_cast<const char*>(hit) - d;
    if (blockOverLimit(nl, start_line)) return 0;
    if (nl == line_start_ || d[nl - 1] != '\r') {
      fail(ParseError::kBareLf);
      return 0;
    }
    const bool empty = nl - 1 == line_start_;
    pos = nl + 1;
    line_start_ = pos;
    if (start_line && !first_line_seen_) {
      if (empty) {
        if (type_ == Type::kResponse) {
          fail(ParseError::kBadStatusLine);
          return 0;
        }
        // RFC 9112 2.2: ignore empty lines before a request line (a few, not a stream of them).
        if (++scan_lines_ > kMaxLeadingEmptyLines) {
          fail(ParseError::kBadRequestLine);
          return 0;
        }
        block_begin_ = pos;
        continue;
      }
      first_line_seen_ = true;
      scan_lines_ = 0;
      if (blockOverLimit(pos, start_line)) return 0;
      continue;
    }
    if (empty) {
      if (blockOverLimit(pos, start_line)) return 0;
      scan_pos_ = pos;
      return pos;  // end of block (including the empty line)
    }
    if (++scan_lines_ > limits_.max_headers) {
      fail(ParseError::kTooManyHeaders);
      return 0;
    }
    if (blockOverLimit(pos, start_line)) return 0;
  }
  scan_pos_ = pos;
  blockOverLimit(n, start_line);  // incomplete: enforce limits on what has arrived so far
  return 0;
}

// Every check on every line, in the order that decides which error a malformed line gets.
bool Http1Parser::parseFieldsChecked(std::string_view block, HeaderList& out, MessageHead* head) {
  while (!block.empty()) {
    size_t eol = block.find('\r');  // every line ends in CRLF (checked while scanning)
    std::string_view line = block.substr(0, eol);
    if (eol + 1 >= block.size() || block[eol + 1] != '\n') {
      fail(ParseError::kBareCr);
      return false;
    }
    block.remove_prefix(eol + 2);
    if (line.empty()) break;  // the terminating empty line
    if (line[0] == ' ' || line[0] == '\t') {
      fail(ParseError::kObsFold);
      return false;
    }
    size_t i = 0;
    while (i < line.size() && is(line[i], kTchar)) ++i;
    if (i == line.size()) {
      fail(ParseError::kMissingColon);
      return false;
    }
    if (line[i] != ':') {
      ParseError e = ParseError::kBadHeaderName;
      if (line[i] == ' ' || line[i] == '\t') {
        size_t j = i;
        while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
        if (j < line.size() && line[j] == ':') e = ParseError::kWhitespaceBeforeColon;
      }
      if (e == ParseError::kBadHeaderName && line.find(':') == std::string_view::npos) {
        e = ParseError::kMissingColon;
      }
      fail(lineError(line.substr(0, line.find(':')), e));
      return false;
    }
    if (i == 0) {
      fail(ParseError::kBadHeaderName);
      return false;
    }
    std::string_view name = line.substr(0, i);
    std::string_view raw = line.substr(i + 1);
    for (char c : raw) {
      if (!is(c, kFieldValue)) {
        fail(badByte(c));
        return false;
      }
    }
    std::string_view value = trimOws(raw);
    out.add(name, value);
    if (head != nullptr && !noteField(name, value, head)) return false;
  }
  return true;
}

// Fields that decide framing and connection handling (a field of a head, not a trailer).
bool Http1Parser::noteField(std::string_view name, std::string_view value, MessageHead* head) {
  switch (name.size()) {
    case 4:
      if (equalsIgnoreCase(name, "host") && type_ == Type::kRequest) {
        if (++host_count_ > 1) {
          fail(ParseError::kDuplicateHost);
          return false;
        }
        if (!validAuthority(value, false, false)) {
          fail(ParseError::kBadHost);
          return false;
        }
        auto* req = static_cast<RequestHead*>(head);
        req->has_host_header = true;
        if (!host_from_target_) req->host = value;
      }
      break;
    case 6:
      if (type_ == Type::kRequest && equalsIgnoreCase(name, "expect") &&
          equalsIgnoreCase(value, "100-continue")) {
        static_cast<RequestHead*>(head)->expect_continue = true;
      }
      break;
    case 7:
      if (equalsIgnoreCase(name, "upgrade") && !value.empty()) upgrade_field_ = true;
      break;
    case 10:
      if (equalsIgnoreCase(name, "connection")) {
        // Decided once all fields are seen: "close" wins over "keep-alive" in any order.
        forEachListElement(value, [&](std::string_view tok) {
          if (equalsIgnoreCase(tok, "close")) {
            conn_close_ = true;
          } else if (equalsIgnoreCase(tok, "keep-alive")) {
            conn_keep_alive_ = true;
          } else if (equalsIgnoreCase(tok, "upgrade")) {
            conn_upgrade_ = true;
          } else {
            head->connection_names_fields = true;
          }
        });
      }
      break;
    case 14:
      if (equalsIgnoreCase(name, "content-length")) {
        if (++content_length_count_ > 1) {
          fail(ParseError::kDuplicateContentLength);
          return false;
        }
        if (value.empty() || value.size() > 18) {
          fail(ParseError::kBadContentLength);
          return false;
        }
        uint64_t v = 0;
        for (char c : value) {
          if (c < '0' || c > '9') {
            fail(ParseError::kBadContentLength);
            return false;
          }
          v = v * 10 + static_cast<uint64_t>(c - '0');
        }
        head->content_length = v;
      }
      break;
    case 17:
      if (equalsIgnoreCase(name, "transfer-encoding")) {
        head->has_transfer_encoding = true;
        bool unknown = false;
        bool empty = true;
        forEachListElement(value, [&](std::string_view coding) {
          empty = false;
          size_t semi = coding.find(';');
          std::string_view token = trimOws(coding.substr(0, semi));
          ++te_codings_;
          if (equalsIgnoreCase(token, "chunked")) {
            te_chunked_last_ = true;
            // RFC 9112 7: chunked has no parameters; ignoring one invites disagreement.
            if (semi != std::string_view::npos) te_chunked_params_ = true;
            return;
          }
          te_chunked_last_ = false;
          if (!(equalsIgnoreCase(token, "gzip") || equalsIgnoreCase(token, "x-gzip") ||
                equalsIgnoreCase(token, "deflate") || equalsIgnoreCase(token, "compress") ||
                equalsIgnoreCase(token, "x-compress"))) {
            unknown = true;
          }
        });
        if (unknown) {
          fail(ParseError::kUnknownTransferEncoding);
          return false;
        }
        if (empty) {
          fail(ParseError::kBadTransferEncoding);
          return false;
        }
      }
      break;
    default:
      break;
  }
  return true;
}

// The common case in one pass per line: a token, ':', field-value bytes, CRLF. A line that is
// anything else (or an empty name) goes to parseFieldsChecked() from its start, which fails on
// it with the same error as always.
bool Http1Parser::parseFields(std::string_view block, HeaderList& out, MessageHead* head) {
  const char* p = block.data();
  const char* const end = p + block.size();
  while (p != end) {
    const char* line = p;
    if (*p == '\r' && p + 1 != end && p[1] == '\n') return true;  // the terminating empty line
    while (p != end && is(*p, kTchar)) ++p;
    if (p == line || p == end || *p != ':') {
      return parseFieldsChecked(std::string_view(line, static_cast<size_t>(end - line)), out, head);
    }
    const std::string_view name(line, static_cast<size_t>(p - line));
    ++p;
    while (p != end && (*p == ' ' || *p == '\t')) ++p;
    const char* value_begin = p;
    p = skipFieldValue(p, end);
    if (p == end || *p != '\r' || p + 1 == end || p[1] != '\n') {
      return parseFieldsChecked(std::string_view(line, static_cast<size_t>(end - line)), out, head);
    }
    const char* value_end = p;
    while (value_end != value_begin && (value_end[-1] == ' ' || value_end[-1] == '\t')) {
      --value_end;
    }
    p += 2;
    const std::string_view value(value_begin, static_cast<size_t>(value_end - value_begin));
    out.add(name, value);
    if (head != nullptr && !noteField(name, value, head)) return false;
  }
  return true;
}

void Http1Parser::applyConnectionOptions(MessageHead& head, bool is_request) {
  head.keep_alive = head.version == Version::kHttp11 || conn_keep_alive_;
  if (conn_close_) head.keep_alive = false;
  // RFC 9110 7.8: Upgrade needs the "upgrade" connection option, and a server ignores it in an
  // HTTP/1.0 request.
  head.upgrade =
      upgrade_field_ && conn_upgrade_ && !(is_request && head.version == Version::kHttp10);
}

bool Http1Parser::finishFraming(MessageHead& head, bool is_request) {
  applyConnectionOptions(head, is_request);
  if (head.has_transfer_encoding) {
    if (head.version == Version::kHttp10) {
      fail(ParseError::kTransferEncodingInHttp10);
      return false;
    }
    if (content_length_count_ > 0) {
      fail(ParseError::kContentLengthWithTransferEncoding);
      return false;
    }
    // Only "chunked", once, is accepted: a proxy that re-frames bodies must never pass on a
    // coding it does not decode, and "chunked" anywhere but last is a smuggling vector.
    if (te_codings_ != 1 || !te_chunked_last_ || te_chunked_params_) {
      fail(ParseError::kBadTransferEncoding);
      return false;
    }
    head.framing = BodyFraming::kChunked;
  } else if (content_length_count_ > 0) {
    head.framing = BodyFraming::kContentLength;
  } else {
    head.framing = is_request ? BodyFraming::kNone : BodyFraming::kUntilClose;
  }
  if (!is_request) {
    auto& resp = static_cast<ResponseHead&>(head);
    if (request_was_head_ || resp.status < 200 || resp.status == 204 || resp.status == 304) {
      head.framing = BodyFraming::kNone;
    }
  }
  if (head.framing == BodyFraming::kUntilClose) head.keep_alive = false;
  return true;
}

bool Http1Parser::parseRequestHead(std::string_view head) {
  RequestHead& r = request_;
  r.headers.clear();
  r.framing = BodyFraming::kNone;
  r.content_length = 0;
  r.upgrade = false;
  r.has_transfer_encoding = false;
  r.connection_names_fields = false;
  r.expect_continue = false;
  r.absolute_form = false;
  r.has_host_header = false;
  r.host = {};
  r.query = {};

  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  // method SP request-target SP HTTP-version
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) {
    return fail(lineError(line, ParseError::kBadRequestLine)), false;
  }
  r.method = line.substr(0, sp1);
  for (char c : r.method) {
    if (!is(c, kTchar)) return fail(lineError(line, ParseError::kBadRequestLine)), false;
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return fail(ParseError::kBadRequestLine), false;
  r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (r.target.empty()) return fail(ParseError::kBadRequestLine), false;
  if (r.target.size() > limits_.max_uri_bytes) return fail(ParseError::kUriTooLong), false;
  for (char c : r.target) {
    if (!is(c, kTarget)) return fail(lineError(r.target, ParseError::kBadRequestLine)), false;
  }
  std::string_view version = line.substr(sp2 + 1);
  if (!parseVersion(version, &r.version)) {
    return fail(lineError(version, version.substr(0, 5) == "HTTP/" ? ParseError::kBadVersion
                                                                   : ParseError::kBadRequestLine)),
           false;
  }
  // Request-target forms (RFC 9112 3.2).
  std::string_view t = r.target;
  host_from_target_ = false;
  if (r.method == "CONNECT") {
    // Only the authority-form, and the port is required (RFC 9112 3.2.3, RFC 9110 9.3.6). The
    // tunnel goes where the target says, whatever the Host field claims.
    if (!validAuthority(t, true, true)) return fail(ParseError::kBadRequestLine), false;
    r.host = t;
    r.path = {};
    host_from_target_ = true;
  } else if (t[0] == '/') {
    size_t q = t.find('?');
    r.path = t.substr(0, q);
    if (q != std::string_view::npos) r.query = t.substr(q + 1);
  } else if (t == "*") {
    if (r.method != "OPTIONS") return fail(ParseError::kBadRequestLine), false;
    r.path = t;
  } else {
    size_t scheme_end = t.find("://");
    if (scheme_end == std::string_view::npos ||
        !(equalsIgnoreCase(t.substr(0, scheme_end), "http") ||
          equalsIgnoreCase(t.substr(0, scheme_end), "https"))) {
      return fail(ParseError::kBadRequestLine), false;
    }
    std::string_view rest = t.substr(scheme_end + 3);
    size_t auth_end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, auth_end);
    // RFC 9110 4.2.1: an http(s) URI with an empty host is invalid.
    if (!validAuthority(authority, true, false)) return fail(ParseError::kBadRequestLine), false;
    r.absolute_form = true;
    host_from_target_ = true;
    r.host = authority;
    std::string_view path_query =
        auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
    size_t q = path_query.find('?');
    r.path = path_query.substr(0, q);
    if (r.path.empty()) r.path = "/";  // an empty path means "/" (RFC 9112 3.2.2)
    if (q != std::string_view::npos) r.query = path_query.substr(q + 1);
  }

  if (!parseFields(head.substr(eol + 2), r.headers, &r)) return false;
  if (r.version == Version::kHttp11 && !r.has_host_header) {
    return fail(ParseError::kMissingHost), false;
  }
  if (r.version == Version::kHttp10) r.expect_continue = false;
  return finishFraming(r, true);
}

bool Http1Parser::parseResponseHead(std::string_view head) {
  ResponseHead& r = response_;
  r.headers.clear();
  r.framing = BodyFraming::kNone;
  r.content_length = 0;
  r.upgrade = false;
  r.has_transfer_encoding = false;
  r.connection_names_fields = false;

  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  // HTTP-version SP 3DIGIT SP [reason-phrase]
  if (line.size() < 12 || line[8] != ' ' || !parseVersion(line.substr(0, 8), &r.version)) {
    return fail(ParseError::kBadStatusLine), false;
  }
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return fail(ParseError::kBadStatusLine), false;
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) return fail(ParseError::kBadStatusLine), false;
  r.status = static_cast<uint16_t>(status);
  if (line.size() > 12) {
    if (line[12] != ' ') return fail(ParseError::kBadStatusLine), false;
    r.reason = line.substr(13);
    for (char c : r.reason) {
      if (!is(c, kFieldValue)) return fail(badByte(c)), false;
    }
  } else {
    r.reason = {};
  }
  if (!parseFields(head.substr(eol + 2), r.headers, &r)) return false;
  return finishFraming(r, false);
}

void Http1Parser::startBody(const MessageHead& head) {
  switch (head.framing) {
    case BodyFraming::kNone:
      state_ = State::kDone;
      break;
    case BodyFraming::kContentLength:
      remaining_ = head.content_length;
      state_ = remaining_ == 0 ? State::kDone : State::kBodyLength;
      break;
    case BodyFraming::kChunked:
      state_ = State::kChunkSize;
      break;
    case BodyFraming::kUntilClose:
      state_ = State::kBodyUntilClose;
      break;
  }
}

Http1Parser::Result Http1Parser::parse(std::string_view in) {
  const char* d = in.data();
  const size_t n = in.size();
  size_t off = 0;
  for (;;) {
    switch (state_) {
      case State::kHeadStart: {
        if (off == 0 && scan_pos_ == 0) {
          host_count_ = 0;
          content_length_count_ = 0;
          te_chunked_last_ = false;
          te_chunked_params_ = false;
          te_codings_ = 0;
          conn_close_ = false;
          conn_keep_alive_ = false;
          conn_upgrade_ = false;
          upgrade_field_ = false;
          first_line_seen_ = false;
          scan_lines_ = 0;
          line_start_ = 0;
          block_begin_ = 0;
          trailers_.clear();
        }
        size_t end = scanBlock(in, true);
        if (state_ == State::kError) return {Event::kError, 0, {}};
        if (end == 0) return {Event::kNeedMore, 0, {}};
        std::string_view block = in.substr(block_begin_, end - block_begin_);
        scan_pos_ = 0;
        bool ok = type_ == Type::kRequest ? parseRequestHead(block) : parseResponseHead(block);
        if (!ok) return {Event::kError, 0, {}};
        if (type_ == Type::kResponse && response_.status == 101) {
          state_ = State::kUpgraded;
        } else {
          startBody(type_ == Type::kRequest ? static_cast<const MessageHead&>(request_)
                                            : static_cast<const MessageHead&>(response_));
        }
        return {Event::kHead, end, {}};
      }
      case State::kBodyLength: {
        size_t avail = n - off;
        if (avail == 0) return {Event::kNeedMore, off, {}};
        size_t take = avail < remaining_ ? avail : static_cast<size_t>(remaining_);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDone;
        return {Event::kBody, off + take, std::string_view(d + off, take)};
      }
      case State::kChunkSize: {
        const void* hit = std::memchr(d + off, '\n', n - off);
        if (hit == nullptr) {
          if (n - off > limits_.max_chunk_line_bytes) return fail(ParseError::kChunkLineTooLong);
          return {Event::kNeedMore, off, {}};
        }
        size_t nl = static_cast<const char*>(hit) - d;
        if (nl - off > limits_.max_chunk_line_bytes) return fail(ParseError::kChunkLineTooLong);
        if (nl == off || d[nl - 1] != '\r') return fail(ParseError::kBareLf);
        std::string_view line(d + off, nl - 1 - off);
        size_t i = 0;
        uint64_t size = 0;
        while (i < line.size() && is(line[i], kHex)) {
          if (size > (uint64_t{1} << 56)) return fail(ParseError::kBadChunkSize);
          size = (size << 4) | static_cast<uint64_t>(hexValue(line[i]));
          ++i;
        }
        if (i == 0) return fail(ParseError::kBadChunkSize);
        std::string_view ext = line.substr(i);
        if (!validChunkExtensions(ext)) {
          return fail(ext.find('\r') != std::string_view::npos ? ParseError::kBareCr
                                                               : ParseError::kBadChunkSize);
        }
        off = nl + 1;
        if (size == 0) {
          state_ = State::kTrailers;
          scan_pos_ = 0;
          line_start_ = 0;
          scan_lines_ = 0;
          block_begin_ = 0;
          first_line_seen_ = true;
        } else {
          remaining_ = size;
          state_ = State::kChunkData;
        }
        continue;
      }
      case State::kChunkData: {
        size_t avail = n - off;
        if (avail == 0) return {Event::kNeedMore, off, {}};
        size_t take = avail < remaining_ ? avail : static_cast<size_t>(remaining_);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kChunkDataEnd;
        return {Event::kBody, off + take, std::string_view(d + off, take)};
      }
      case State::kChunkDataEnd: {
        size_t avail = n - off;
        if (avail >= 1 && d[off] != '\r') return fail(ParseError::kBadChunkTerminator);
        if (avail < 2) return {Event::kNeedMore, off, {}};
        if (d[off + 1] != '\n') return fail(ParseError::kBadChunkTerminator);
        off += 2;
        state_ = State::kChunkSize;
        continue;
      }
      case State::kTrailers: {
        std::string_view rest = in.substr(off);
        size_t end = scanBlock(rest, false);
        if (state_ == State::kError) {
          if (error_ == ParseError::kHeadersTooLarge) error_ = ParseError::kTrailersTooLarge;
          return {Event::kError, 0, {}};
        }
        if (end == 0) return {Event::kNeedMore, off, {}};
        scan_pos_ = 0;
        trailers_.clear();
        if (!parseFields(rest.substr(0, end), trailers_, nullptr)) return {Event::kError, 0, {}};
        off += end;
        state_ = State::kDone;
        continue;
      }
      case State::kBodyUntilClose: {
        size_t avail = n - off;
        if (avail == 0) return {Event::kNeedMore, off, {}};
        return {Event::kBody, n, std::string_view(d + off, avail)};
      }
      case State::kDone:
        state_ = State::kHeadStart;
        scan_pos_ = 0;
        return {Event::kMessageComplete, off, {}};
      case State::kUpgraded:
        return {Event::kNeedMore, off, {}};
      case State::kError:
        return {Event::kError, 0, {}};
    }
  }
}

Http1Parser::Result Http1Parser::finish(size_t unconsumed) {
  switch (state_) {
    case State::kBodyUntilClose:
      state_ = State::kHeadStart;
      scan_pos_ = 0;
      return {Event::kMessageComplete, 0, {}};
    case State::kHeadStart:
      if (unconsumed == 0) return {Event::kNeedMore, 0, {}};
      return fail(ParseError::kUnexpectedEof);
    case State::kDone:
      state_ = State::kHeadStart;
      scan_pos_ = 0;
      return {Event::kMessageComplete, 0, {}};
    case State::kUpgraded:
      return {Event::kNeedMore, 0, {}};
    case State::kError:
      return {Event::kError, 0, {}};
    default:
      return fail(ParseError::kUnexpectedEof);
  }
}

}  // namespace mesh::http
