// The oracle behind the HTTP/1.1 fuzz targets. One input is replayed through Http1Parser the
// way a connection drives it (unconsumed bytes kept, new bytes appended) under several read
// splits, and every replay must tell the same story: the same heads, the same body bytes and
// trailers per message, the same error, the same bytes left over. Each event is also checked
// against the parser's contract (consumption, views, limits, framing rules) as it happens.
// Any disagreement aborts with both transcripts, so libFuzzer keeps the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/http/http1_parser.h"

namespace mesh::http::fuzz {

[[noreturn]] inline void oracleFailure(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "http1 fuzz oracle: %s\n%s\n", what, detail.c_str());
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) oracleFailure(what);
}

// How the reads are cut: whole, a byte at a time, or sizes taken from the input's own bytes.
enum class Split : uint8_t { kWhole, kByteAtATime, kFromInput };

struct Plan {
  Http1Parser::Type type = Http1Parser::Type::kRequest;
  Limits limits;
  uint64_t head_requests = 0;  // responses: bit i set = the request of message i was HEAD
};

inline uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Small limits, picked from the input so that every limit is reachable with short inputs.
inline Limits smallLimits(uint64_t h) {
  Limits l;
  l.max_head_bytes = 16 + h % 200;
  l.max_headers = (h >> 8) % 8;
  l.max_uri_bytes = (h >> 16) % 80;
  l.max_chunk_line_bytes = 2 + (h >> 24) % 24;
  return l;
}

inline void appendField(std::string& out, std::string_view s) {
  out += std::to_string(s.size());
  out += ':';
  out.append(s);
  out += ' ';
}

inline bool isTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

inline bool within(std::string_view v, const char* begin, size_t len) {
  return v.empty() || (v.data() >= begin && v.data() + v.size() <= begin + len);
}

// Checks that hold for every field line an accepted head or trailer block carries.
inline void checkFields(const HeaderList& fields, const char* begin, size_t len) {
  for (const Header& h : fields) {
    check(!h.name.empty(), "empty field name accepted");
    for (char c : h.name) check(isTchar(c), "field name with a non-token byte accepted");
    for (char c : h.value) {
      auto u = static_cast<unsigned char>(c);
      check(u >= 0x20 || c == '\t', "control byte in an accepted field value");
      check(u != 0x7f, "DEL in an accepted field value");
    }
    if (!h.value.empty()) {
      check(h.value.front() != ' ' && h.value.front() != '\t', "field value not trimmed");
      check(h.value.back() != ' ' && h.value.back() != '\t', "field value not trimmed");
    }
    check(within(h.name, begin, len) && within(h.value, begin, len),
          "field view outside the consumed bytes");
  }
}

inline size_t countFields(const HeaderList& fields, std::string_view name) {
  size_t n = 0;
  for (const Header& h : fields) n += equalsIgnoreCase(h.name, name) ? 1 : 0;
  return n;
}

// Framing rules every accepted head must satisfy, whatever path the parser took to accept it.
inline void checkHead(const Plan& plan, const MessageHead& m, const char* begin, size_t consumed) {
  checkFields(m.headers, begin, consumed);
  check(m.headers.size() <= plan.limits.max_headers, "more fields than max_headers accepted");
  size_t cl = countFields(m.headers, "content-length");
  size_t te = countFields(m.headers, "transfer-encoding");
  check(cl <= 1, "duplicate Content-Length accepted");
  check(!(cl > 0 && te > 0), "Content-Length with Transfer-Encoding accepted");
  check((te > 0) == m.has_transfer_encoding, "has_transfer_encoding disagrees with the fields");
  check(te == 0 || m.version == Version::kHttp11, "Transfer-Encoding in HTTP/1.0 accepted");
  if (cl == 1) {
    std::string_view v = m.headers.get("content-length");
    uint64_t n = 0;
    check(!v.empty(), "empty Content-Length accepted");
    for (char c : v) {
      check(c >= '0' && c <= '9', "non-digit Content-Length accepted");
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    check(n == m.content_length, "content_length differs from the field");
  }
  if (m.framing == BodyFraming::kContentLength) check(cl == 1, "length framing without the field");
  if (m.framing == BodyFraming::kChunked) check(te > 0, "chunked framing without the field");
  if (m.framing == BodyFraming::kUntilClose) check(!m.keep_alive, "close-delimited keep-alive");
}

inline void checkRequest(const Plan& plan, const RequestHead& r, const char* begin,
                         size_t consumed) {
  checkHead(plan, r, begin, consumed);
  check(!r.method.empty() && !r.target.empty(), "empty method or target accepted");
  for (char c : r.method) check(isTchar(c), "method with a non-token byte accepted");
  for (char c : r.target) {
    auto u = static_cast<unsigned char>(c);
    check(u > 0x20 && u < 0x7f && c != '#', "bad byte in an accepted request-target");
  }
  check(r.target.size() <= plan.limits.max_uri_bytes, "target over max_uri_bytes accepted");
  // The head from its request line to its final CRLF is what max_head_bytes bounds.
  check(r.method.data() >= begin, "method view before the input");
  check(static_cast<size_t>(begin + consumed - r.method.data()) <= plan.limits.max_head_bytes,
        "head over max_head_bytes accepted");
  size_t hosts = countFields(r.headers, "host");
  check(hosts <= 1, "duplicate Host accepted");
  check(r.version != Version::kHttp11 || hosts == 1, "HTTP/1.1 request without Host accepted");
  check(r.framing != BodyFraming::kUntilClose, "close-delimited request body");
  check(within(r.method, begin, consumed) && within(r.target, begin, consumed) &&
            within(r.host, begin, consumed) && within(r.query, begin, consumed),
        "request view outside the consumed bytes");
  check(!r.upgrade || r.version == Version::kHttp11, "upgrade in an HTTP/1.0 request");
}

inline void checkResponse(const Plan& plan, const ResponseHead& r, const char* begin,
                          size_t consumed) {
  checkHead(plan, r, begin, consumed);
  check(r.status >= 100 && r.status <= 599, "status out of range accepted");
  check(consumed <= plan.limits.max_head_bytes, "head over max_head_bytes accepted");
  check(within(r.reason, begin, consumed), "reason view outside the consumed bytes");
  bool bodiless = r.status < 200 || r.status == 204 || r.status == 304;
  if (bodiless) check(r.framing == BodyFraming::kNone, "body framing on a bodiless status");
}

// Replays `input` under `split` and returns a transcript of everything the parser reported.
inline std::string replay(const Plan& plan, std::string_view input, Split split) {
  Http1Parser p(plan.type, plan.limits);
  std::string transcript;
  std::string buf;  // what a connection holds: unconsumed bytes, new ones appended
  std::string body;
  bool in_message = false;
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  size_t messages = 0;
  size_t fed = 0;
  size_t reads = 0;
  size_t calls = 0;
  bool zero_progress = false;  // the last event consumed nothing

  auto endMessage = [&] {
    if (framing == BodyFraming::kContentLength) {
      check(body.size() == content_length, "length-framed body size differs from content_length");
    }
    if (framing == BodyFraming::kNone) check(body.empty(), "body bytes on a bodiless message");
    transcript += "body ";
    appendField(transcript, body);
    transcript += '\n';
    body.clear();
    in_message = false;
    ++messages;
  };

  for (;;) {
    // One read.
    size_t want = input.size() - fed;
    if (split == Split::kByteAtATime) {
      want = want > 0 ? 1 : 0;
    } else if (split == Split::kFromInput && !input.empty()) {
      size_t k = 1 + static_cast<unsigned char>(input[(reads * 7) % input.size()]) % 17;
      want = want < k ? want : k;
    }
    buf.append(input.substr(fed, want));
    fed += want;
    ++reads;

    for (;;) {
      if (plan.type == Http1Parser::Type::kResponse) {
        p.setRequestWasHead((plan.head_requests >> (messages % 64)) & 1);
      }
      check(++calls <= 8 * input.size() + 64, "too many parse() calls: no progress");
      const char* base = buf.data();
      Http1Parser::Result r = p.parse(buf);
      check(r.consumed <= buf.size(), "consumed more than given");
      if (r.event == Http1Parser::Event::kNeedMore) {
        buf.erase(0, r.consumed);
        zero_progress = false;
        break;
      }
      if (r.event == Http1Parser::Event::kError) {
        check(r.consumed == 0, "error consumed bytes");
        check(p.error() != ParseError::kNone, "error without a reason");
        const int status = parseErrorStatus(p.error());
        check(status == 400 || status == 414 || status == 431 || status == 501,
              "error status is not 400, 414, 431 or 501");
        check(!parseErrorText(p.error()).empty(), "error without a text");
        transcript += "error " + std::to_string(static_cast<int>(p.error())) + "\n";
        check(p.parse(buf).event == Http1Parser::Event::kError, "parse() after an error");
        check(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").event == Http1Parser::Event::kError,
              "parse() after an error");
        check(p.finish(buf.size()).event == Http1Parser::Event::kError, "finish() after an error");
        return transcript;
      }
      if (r.consumed == 0) {
        check(!zero_progress, "two events in a row without consuming anything");
        zero_progress = true;
      } else {
        zero_progress = false;
      }
      switch (r.event) {
        case Http1Parser::Event::kHead: {
          check(!in_message, "head inside a message");
          check(r.consumed > 0, "head consumed nothing");
          in_message = true;
          std::string head;
          const MessageHead* m;
          if (plan.type == Http1Parser::Type::kRequest) {
            const RequestHead& q = p.request();
            checkRequest(plan, q, base, r.consumed);
            m = &q;
            head += "request ";
            appendField(head, q.method);
            appendField(head, q.target);
            appendField(head, q.path);
            appendField(head, q.query);
            appendField(head, q.host);
            head += std::to_string(q.expect_continue) + std::to_string(q.absolute_form) +
                    std::to_string(q.has_host_header);
          } else {
            const ResponseHead& s = p.response();
            checkResponse(plan, s, base, r.consumed);
            m = &s;
            head += "response " + std::to_string(s.status) + ' ';
            appendField(head, s.reason);
          }
          head += " v" + std::to_string(static_cast<int>(m->version)) + " f" +
                  std::to_string(static_cast<int>(m->framing)) + " cl" +
                  std::to_string(m->content_length) + " ka" + std::to_string(m->keep_alive) +
                  " up" + std::to_string(m->upgrade) + " te" +
                  std::to_string(m->has_transfer_encoding) + " consumed" +
                  std::to_string(r.consumed) + "\n";
          for (const Header& h : m->headers) {
            head += "  ";
            appendField(head, h.name);
            appendField(head, h.value);
            head += '\n';
          }
          transcript += head;
          framing = m->framing;
          content_length = m->content_length;
          check(p.inBody() != p.upgraded(), "after a head: neither in a body nor upgraded");
          check(!p.idle(), "idle right after a head");
          if (p.upgraded()) transcript += "upgraded\n";
          break;
        }
        case Http1Parser::Event::kBody:
          check(in_message, "body outside a message");
          check(!r.data.empty(), "empty body event");
          check(r.data.data() >= base && r.data.data() + r.data.size() == base + r.consumed,
                "body slice does not end at the consumed bytes");
          body.append(r.data);
          break;
        case Http1Parser::Event::kMessageComplete:
          check(in_message, "message complete outside a message");
          checkFields(p.trailers(), base, r.consumed);
          check(p.trailers().size() <= plan.limits.max_headers, "too many trailers accepted");
          for (const Header& h : p.trailers()) {
            transcript += "  trailer ";
            appendField(transcript, h.name);
            appendField(transcript, h.value);
            transcript += '\n';
          }
          endMessage();
          check(!p.inBody() && p.idle(), "not idle after a complete message");
          break;
        default:
          oracleFailure("unknown event");
      }
      buf.erase(0, r.consumed);
    }
    if (fed == input.size()) break;
  }

  // The peer closes.
  transcript += "left " + std::to_string(buf.size()) + (p.upgraded() ? " upgraded" : "") + '\n';
  Http1Parser::Result r = p.finish(buf.size());
  check(r.consumed == 0, "finish() consumed bytes");
  switch (r.event) {
    case Http1Parser::Event::kMessageComplete:
      check(in_message, "finish() completed no message");
      check(framing == BodyFraming::kUntilClose, "finish() completed a self-delimited message");
      endMessage();
      transcript += "closed\n";
      break;
    case Http1Parser::Event::kNeedMore:
      check(!in_message || p.upgraded(), "finish() left a message open");
      transcript += "clean close\n";
      break;
    case Http1Parser::Event::kError:
      check(p.error() == ParseError::kUnexpectedEof, "finish() error is not kUnexpectedEof");
      if (!in_message) check(!buf.empty(), "kUnexpectedEof between messages");
      transcript += "eof error\n";
      break;
    default:
      oracleFailure("finish() returned a head or body");
  }
  return transcript;
}

inline void compareSplits(const Plan& plan, std::string_view input) {
  const std::string whole = replay(plan, input, Split::kWhole);
  for (Split s : {Split::kByteAtATime, Split::kFromInput}) {
    std::string other = replay(plan, input, s);
    if (other != whole) {
      oracleFailure(s == Split::kByteAtATime ? "byte-at-a-time replay differs from whole"
                                             : "split replay differs from whole",
                    "--- whole:\n" + whole + "--- split:\n" + other);
    }
  }
}

// One input, default limits and small limits, for one parser type.
inline int fuzzOne(Http1Parser::Type type, const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const uint64_t h = fnv1a(input);
  Plan plan;
  plan.type = type;
  plan.head_requests = h >> 32;
  compareSplits(plan, input);
  plan.limits = smallLimits(h);
  compareSplits(plan, input);
  return 0;
}

}  // namespace mesh::http::fuzz
