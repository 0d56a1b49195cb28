// Tests of the strict HTTP/1.1 parser. Every input is delivered twice, whole and one byte at a
// time, the way a connection would see it (unconsumed bytes kept, new bytes appended), and both
// deliveries must give the same messages or the same error.
#include "core/http/http1_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace mesh::http {

// So that failures print "kBareCr (bare CR)" rather than a number.
void PrintTo(ParseError e, std::ostream* os) {
  *os << static_cast<int>(e) << " (" << parseErrorText(e) << ")";
}

namespace {

using namespace std::string_literals;
using Event = Http1Parser::Event;
using Type = Http1Parser::Type;

enum class Delivery { kWhole, kByteAtATime };

const char* deliveryName(Delivery d) { return d == Delivery::kWhole ? "whole" : "byte at a time"; }

struct Message {
  RequestHead request;
  ResponseHead response;
  std::string body;
  size_t body_events = 0;
  std::vector<std::pair<std::string, std::string>> trailers;
  bool complete = false;
};

struct Outcome {
  std::vector<Message> messages;
  std::vector<Event> events;  // every event but kNeedMore
  bool failed = false;
  ParseError error = ParseError::kNone;
  bool stays_failed = false;  // parse() and finish() kept answering kError after the error
  size_t unconsumed = 0;      // bytes never consumed when the input ran out
  bool upgraded = false;
  Event finish_event = Event::kNeedMore;
};

struct Options {
  Limits limits;
  bool finish = false;  // call finish() once every byte is delivered (the peer closed)
  // Responses: whether the request answered by message i was HEAD.
  std::vector<bool> head_requests;
};

// Drives a parser like a connection: `wire` stays put and the parser sees [start, end), so views
// stay valid for the checks after the run.
Outcome drive(Type type, std::string_view wire, Delivery delivery, const Options& opt = {}) {
  Http1Parser p(type, opt.limits);
  Outcome out;
  const size_t step = delivery == Delivery::kWhole ? wire.size() : 1;
  size_t start = 0;
  size_t end = 0;
  size_t calls = 0;
  for (;;) {
    end = std::min(wire.size(), end + step);
    for (;;) {
      if (type == Type::kResponse) {
        size_t i =
            out.messages.size() - (out.messages.empty() || out.messages.back().complete ? 0 : 1);
        p.setRequestWasHead(i < opt.head_requests.size() && opt.head_requests[i]);
      }
      std::string_view avail = wire.substr(start, end - start);
      Http1Parser::Result r = p.parse(avail);
      if (++calls > 4 * wire.size() + 64) {
        ADD_FAILURE() << "parser makes no progress";
        return out;
      }
      EXPECT_LE(r.consumed, avail.size());
      switch (r.event) {
        case Event::kNeedMore:
          break;
        case Event::kHead:
          EXPECT_GT(r.consumed, 0u);
          out.messages.push_back({});
          out.messages.back().request = p.request();
          out.messages.back().response = p.response();
          break;
        case Event::kBody:
          EXPECT_FALSE(r.data.empty());
          EXPECT_EQ(r.data.data() + r.data.size(), avail.data() + r.consumed);
          if (out.messages.empty()) {
            ADD_FAILURE() << "body before head";
            return out;
          }
          out.messages.back().body.append(r.data);
          ++out.messages.back().body_events;
          break;
        case Event::kMessageComplete:
          if (out.messages.empty()) {
            ADD_FAILURE() << "message complete before head";
            return out;
          }
          for (const Header& h : p.trailers()) {
            out.messages.back().trailers.emplace_back(h.name, h.value);
          }
          out.messages.back().complete = true;
          break;
        case Event::kError:
          EXPECT_EQ(r.consumed, 0u);
          break;
      }
      if (r.event != Event::kNeedMore) out.events.push_back(r.event);
      start += r.consumed;
      if (r.event == Event::kError) {
        out.failed = true;
        out.error = p.error();
        // Nothing after a framing error is parsed, not even a well-formed message.
        Http1Parser::Result again = p.parse(wire.substr(start, end - start));
        Http1Parser::Result fresh = p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        Http1Parser::Result closed = p.finish(0);
        out.stays_failed = again.event == Event::kError && again.consumed == 0 &&
                           fresh.event == Event::kError && fresh.consumed == 0 &&
                           closed.event == Event::kError && p.error() == out.error;
        return out;
      }
      if (r.event == Event::kNeedMore) break;
    }
    if (end == wire.size()) break;
  }
  out.unconsumed = end - start;
  out.upgraded = p.upgraded();
  if (opt.finish) {
    Http1Parser::Result r = p.finish(out.unconsumed);
    out.finish_event = r.event;
    if (r.event == Event::kMessageComplete && !out.messages.empty()) {
      out.messages.back().complete = true;
      out.events.push_back(r.event);
    }
    if (r.event == Event::kError) {
      out.failed = true;
      out.error = p.error();
      Http1Parser::Result again = p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
      out.stays_failed = again.event == Event::kError && p.finish(0).event == Event::kError;
    }
  }
  return out;
}

// Both deliveries, each must end in `error` with `status` and stay failed.
void expectRejected(Type type, std::string_view wire, ParseError error, int status,
                    const Options& opt = {}) {
  for (Delivery d : {Delivery::kWhole, Delivery::kByteAtATime}) {
    SCOPED_TRACE(deliveryName(d));
    Outcome out = drive(type, wire, d, opt);
    EXPECT_TRUE(out.failed);
    EXPECT_EQ(out.error, error);
    EXPECT_EQ(parseErrorStatus(out.error), status);
    EXPECT_TRUE(out.stays_failed);
  }
}

void expectRequestRejected(std::string_view wire, ParseError error, int status,
                           const Options& opt = {}) {
  expectRejected(Type::kRequest, wire, error, status, opt);
}

void expectResponseRejected(std::string_view wire, ParseError error, int status,
                            const Options& opt = {}) {
  expectRejected(Type::kResponse, wire, error, status, opt);
}

// Both deliveries must succeed with the same messages; returns the whole-delivery outcome.
Outcome parseOk(Type type, std::string_view wire, const Options& opt = {}) {
  Outcome whole = drive(type, wire, Delivery::kWhole, opt);
  Outcome bytes = drive(type, wire, Delivery::kByteAtATime, opt);
  EXPECT_FALSE(whole.failed) << parseErrorText(whole.error);
  EXPECT_FALSE(bytes.failed) << parseErrorText(bytes.error);
  EXPECT_EQ(whole.messages.size(), bytes.messages.size());
  for (size_t i = 0; i < std::min(whole.messages.size(), bytes.messages.size()); ++i) {
    EXPECT_EQ(whole.messages[i].body, bytes.messages[i].body) << "message " << i;
    EXPECT_EQ(whole.messages[i].complete, bytes.messages[i].complete) << "message " << i;
    EXPECT_EQ(whole.messages[i].trailers, bytes.messages[i].trailers) << "message " << i;
    EXPECT_EQ(whole.messages[i].request.target, bytes.messages[i].request.target);
    EXPECT_EQ(whole.messages[i].request.keep_alive, bytes.messages[i].request.keep_alive);
    EXPECT_EQ(whole.messages[i].response.status, bytes.messages[i].response.status);
  }
  EXPECT_EQ(whole.unconsumed, bytes.unconsumed);
  EXPECT_EQ(whole.finish_event, bytes.finish_event);
  return whole;
}

Outcome parseRequests(std::string_view wire, const Options& opt = {}) {
  return parseOk(Type::kRequest, wire, opt);
}
Outcome parseResponses(std::string_view wire, const Options& opt = {}) {
  return parseOk(Type::kResponse, wire, opt);
}

bool within(std::string_view view, std::string_view wire) {
  return view.data() >= wire.data() && view.data() + view.size() <= wire.data() + wire.size();
}

std::string requestWithHeaders(size_t count) {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (size_t i = 1; i < count; ++i) s += "X-H" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

// ---------------------------------------------------------------------------------------------
// Requests that must be rejected, one case per test.

TEST(Http1RequestRejectTest, ContentLengthWithTransferEncodingIs400) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      ParseError::kContentLengthWithTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, TransferEncodingThenContentLengthIs400) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      ParseError::kContentLengthWithTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, DuplicateContentLengthSameValueIsDuplicateContentLength) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      ParseError::kDuplicateContentLength, 400);
}

TEST(Http1RequestRejectTest, DuplicateContentLengthDifferentValuesIsDuplicateContentLength) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 4\r\n\r\nabcd",
      ParseError::kDuplicateContentLength, 400);
}

TEST(Http1RequestRejectTest, ContentLengthListIsBadContentLength) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
                        ParseError::kBadContentLength, 400);
}

TEST(Http1RequestRejectTest, NegativeContentLengthIsBadContentLength) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                        ParseError::kBadContentLength, 400);
}

TEST(Http1RequestRejectTest, SignedContentLengthIsBadContentLength) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx",
                        ParseError::kBadContentLength, 400);
}

TEST(Http1RequestRejectTest, HexContentLengthIsBadContentLength) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
                        ParseError::kBadContentLength, 400);
}

TEST(Http1RequestRejectTest, EmptyContentLengthIsBadContentLength) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
                        ParseError::kBadContentLength, 400);
}

TEST(Http1RequestRejectTest, ContentLengthWithInnerSpaceIsBadContentLength) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
                        ParseError::kBadContentLength, 400);
}

TEST(Http1RequestRejectTest, OverflowingContentLengthIsBadContentLength) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551617\r\n\r\n",
      ParseError::kBadContentLength, 400);
}

TEST(Http1RequestRejectTest, ChunkedNotLastIsBadTransferEncoding) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                        ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, CodingBeforeChunkedIsBadTransferEncoding) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                        ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, ChunkedTwiceIsBadTransferEncoding) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                        ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, ChunkedOnTwoFieldLinesIsBadTransferEncoding) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
      "\r\n",
      ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, ChunkedThenGzipFieldLineIsBadTransferEncoding) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
      ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, GzipWithoutChunkedIsBadTransferEncoding) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                        ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, EmptyTransferEncodingIsBadTransferEncoding) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
                        ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, ChunkedWithParameterIsBadTransferEncoding) {
  // RFC 9112 7: chunked defines no parameters; a recipient that ignores one is a smuggling risk.
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
      ParseError::kBadTransferEncoding, 400);
}

TEST(Http1RequestRejectTest, UnknownTransferCodingIs501) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n\r\n",
                        ParseError::kUnknownTransferEncoding, 501);
}

TEST(Http1RequestRejectTest, UnknownCodingBeforeChunkedIs501) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: br, chunked\r\n\r\n",
                        ParseError::kUnknownTransferEncoding, 501);
}

TEST(Http1RequestRejectTest, MisspelledChunkedIs501) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n",
                        ParseError::kUnknownTransferEncoding, 501);
}

TEST(Http1RequestRejectTest, TransferEncodingInHttp10IsRejected) {
  expectRequestRejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                        ParseError::kTransferEncodingInHttp10, 400);
}

TEST(Http1RequestRejectTest, ObsFoldIsObsFold) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", ParseError::kObsFold,
                        400);
}

TEST(Http1RequestRejectTest, TabObsFoldIsObsFold) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", ParseError::kObsFold,
                        400);
}

TEST(Http1RequestRejectTest, WhitespaceBeforeFirstFieldIsObsFold) {
  expectRequestRejected("GET / HTTP/1.1\r\n Host: a\r\n\r\n", ParseError::kObsFold, 400);
}

TEST(Http1RequestRejectTest, BareCrInFieldValueIsBareCr) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", ParseError::kBareCr, 400);
}

TEST(Http1RequestRejectTest, BareCrBeforeCrlfIsBareCr) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\r\n\r\n", ParseError::kBareCr, 400);
}

TEST(Http1RequestRejectTest, BareCrInRequestLineIsBareCr) {
  expectRequestRejected("GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBareCr, 400);
}

TEST(Http1RequestRejectTest, BareCrAfterVersionIsBareCr) {
  expectRequestRejected("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", ParseError::kBareCr, 400);
}

TEST(Http1RequestRejectTest, BareCrInFieldNameIsBareCr) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX\rA: b\r\n\r\n", ParseError::kBareCr, 400);
}

TEST(Http1RequestRejectTest, BareLfEndingFieldLineIsBareLf) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", ParseError::kBareLf, 400);
}

TEST(Http1RequestRejectTest, BareLfEndingRequestLineIsBareLf) {
  expectRequestRejected("GET / HTTP/1.1\nHost: a\r\n\r\n", ParseError::kBareLf, 400);
}

TEST(Http1RequestRejectTest, BareLfEndingHeadIsBareLf) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\n\n", ParseError::kBareLf, 400);
}

TEST(Http1RequestRejectTest, BareLfAsLeadingEmptyLineIsBareLf) {
  expectRequestRejected("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBareLf, 400);
}

TEST(Http1RequestRejectTest, NulInFieldValueIsControlChar) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"s, ParseError::kControlChar,
                        400);
}

TEST(Http1RequestRejectTest, NulInFieldNameIsControlChar) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n"s, ParseError::kControlChar,
                        400);
}

TEST(Http1RequestRejectTest, DelInFieldValueIsControlChar) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n", ParseError::kControlChar,
                        400);
}

TEST(Http1RequestRejectTest, EscapeInFieldValueIsControlChar) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[0m\r\n\r\n",
                        ParseError::kControlChar, 400);
}

TEST(Http1RequestRejectTest, ControlCharInTargetIsControlChar) {
  expectRequestRejected("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kControlChar, 400);
}

TEST(Http1RequestRejectTest, NulInMethodIsControlChar) {
  expectRequestRejected("GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n"s, ParseError::kControlChar, 400);
}

TEST(Http1RequestRejectTest, FieldWithoutColonIsMissingColon) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n", ParseError::kMissingColon,
                        400);
}

TEST(Http1RequestRejectTest, FieldNameOnlyIsMissingColon) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", ParseError::kMissingColon, 400);
}

TEST(Http1RequestRejectTest, SpaceBeforeColonIsWhitespaceBeforeColon) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\nabc",
                        ParseError::kWhitespaceBeforeColon, 400);
}

TEST(Http1RequestRejectTest, TabBeforeColonIsWhitespaceBeforeColon) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", ParseError::kWhitespaceBeforeColon,
                        400);
}

TEST(Http1RequestRejectTest, EmptyFieldNameIsBadHeaderName) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", ParseError::kBadHeaderName,
                        400);
}

TEST(Http1RequestRejectTest, SeparatorInFieldNameIsBadHeaderName) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", ParseError::kBadHeaderName,
                        400);
}

TEST(Http1RequestRejectTest, NonAsciiFieldNameIsBadHeaderName) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n",
                        ParseError::kBadHeaderName, 400);
}

TEST(Http1RequestRejectTest, MissingTargetIsBadRequestLine) {
  expectRequestRejected("GET HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, DoubleSpaceIsBadRequestLine) {
  expectRequestRejected("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, LeadingSpaceIsBadRequestLine) {
  expectRequestRejected(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, TabSeparatorIsBadRequestLine) {
  expectRequestRejected("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, BadMethodCharIsBadRequestLine) {
  expectRequestRejected("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, SpaceInTargetIsBadRequestLine) {
  expectRequestRejected("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, FragmentInTargetIsBadRequestLine) {
  expectRequestRejected("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, NonAsciiTargetIsBadRequestLine) {
  expectRequestRejected("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine,
                        400);
}

TEST(Http1RequestRejectTest, AsteriskFormForGetIsBadRequestLine) {
  expectRequestRejected("GET * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, AuthorityFormForGetIsBadRequestLine) {
  expectRequestRejected("GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine,
                        400);
}

TEST(Http1RequestRejectTest, OriginFormForConnectIsBadRequestLine) {
  // RFC 9112 3.2.3: CONNECT takes the authority-form only.
  expectRequestRejected("CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, ConnectWithoutPortIsBadRequestLine) {
  expectRequestRejected("CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
                        ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, ConnectIpLiteralWithoutPortIsBadRequestLine) {
  expectRequestRejected("CONNECT [::1] HTTP/1.1\r\nHost: [::1]\r\n\r\n",
                        ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, UnsupportedSchemeIsBadRequestLine) {
  expectRequestRejected("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine,
                        400);
}

TEST(Http1RequestRejectTest, AbsoluteFormWithUserinfoIsBadRequestLine) {
  expectRequestRejected("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine,
                        400);
}

TEST(Http1RequestRejectTest, AbsoluteFormWithEmptyHostIsBadRequestLine) {
  // RFC 9110 4.2.1: an http URI with an empty host must be rejected.
  expectRequestRejected("GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine,
                        400);
}

TEST(Http1RequestRejectTest, TooManyLeadingEmptyLinesIsBadRequestLine) {
  expectRequestRejected("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
                        ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, EmptyRequestLineIsBadRequestLine) {
  expectRequestRejected("\r\n\r\n\r\n\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, Http12IsBadVersion) {
  expectRequestRejected("GET / HTTP/1.2\r\nHost: a\r\n\r\n", ParseError::kBadVersion, 400);
}

TEST(Http1RequestRejectTest, Http2IsBadVersion) {
  expectRequestRejected("GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::kBadVersion, 400);
}

TEST(Http1RequestRejectTest, Http09StyleRequestIsBadRequestLine) {
  expectRequestRejected("GET /\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, TrailingSpaceAfterVersionIsBadVersion) {
  expectRequestRejected("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", ParseError::kBadVersion, 400);
}

TEST(Http1RequestRejectTest, LowercaseHttpNameIsBadRequestLine) {
  expectRequestRejected("GET / http/1.1\r\nHost: a\r\n\r\n", ParseError::kBadRequestLine, 400);
}

TEST(Http1RequestRejectTest, MissingHostIsMissingHost) {
  expectRequestRejected("GET / HTTP/1.1\r\nX-A: b\r\n\r\n", ParseError::kMissingHost, 400);
}

TEST(Http1RequestRejectTest, AbsoluteFormWithoutHostIsMissingHost) {
  // RFC 9112 3.2: an HTTP/1.1 client sends Host even with an absolute-form target.
  expectRequestRejected("GET http://a/ HTTP/1.1\r\n\r\n", ParseError::kMissingHost, 400);
}

TEST(Http1RequestRejectTest, DuplicateHostIsDuplicateHost) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", ParseError::kDuplicateHost,
                        400);
}

TEST(Http1RequestRejectTest, HostWithSpaceIsBadHost) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ParseError::kBadHost, 400);
}

TEST(Http1RequestRejectTest, HostWithUserinfoIsBadHost) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", ParseError::kBadHost, 400);
}

TEST(Http1RequestRejectTest, HostWithNonNumericPortIsBadHost) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n", ParseError::kBadHost, 400);
}

TEST(Http1RequestRejectTest, HostWithUnclosedBracketIsBadHost) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", ParseError::kBadHost, 400);
}

TEST(Http1RequestRejectTest, ChunkSizeOverflowIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, ChunkSizeAllOnesIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, NegativeChunkSizeIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, PlusSignedChunkSizeIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, HexPrefixedChunkSizeIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, ChunkSizeTrailingJunkIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1g\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, ChunkSizeSpaceJunkIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 2\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, EmptyChunkSizeIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, ChunkExtensionWithoutNameIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, ChunkExtensionBadValueIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b c\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, ChunkExtensionUnterminatedQuoteIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"b\r\nx\r\n0\r\n\r\n",
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, BareLfAfterChunkSizeIsBareLf) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
      ParseError::kBareLf, 400);
}

TEST(Http1RequestRejectTest, BareCrAfterChunkSizeIsBareCr) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\r\nx\r\n0\r\n\r\n",
      ParseError::kBareCr, 400);
}

TEST(Http1RequestRejectTest, NulInChunkExtensionIsBadChunkSize) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a\0\r\nx\r\n0\r\n\r\n"s,
      ParseError::kBadChunkSize, 400);
}

TEST(Http1RequestRejectTest, ChunkDataWithoutCrlfIsBadChunkTerminator) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
      ParseError::kBadChunkTerminator, 400);
}

TEST(Http1RequestRejectTest, ChunkDataWithBareLfIsBadChunkTerminator) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n",
      ParseError::kBadChunkTerminator, 400);
}

TEST(Http1RequestRejectTest, ChunkDataWithCrOnlyIsBadChunkTerminator) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\rX0\r\n\r\n",
      ParseError::kBadChunkTerminator, 400);
}

TEST(Http1RequestRejectTest, LongChunkLineIsChunkLineTooLong) {
  std::string wire = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=" +
                     std::string(4100, 'b') + "\r\nx\r\n0\r\n\r\n";
  expectRequestRejected(wire, ParseError::kChunkLineTooLong, 400);
}

TEST(Http1RequestRejectTest, ObsFoldInTrailerIsObsFold) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n",
      ParseError::kObsFold, 400);
}

TEST(Http1RequestRejectTest, BareLfInTrailerIsBareLf) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\n\r\n",
      ParseError::kBareLf, 400);
}

TEST(Http1RequestRejectTest, OversizedHeaderBlockIs431) {
  std::string wire =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(61 * 1024, 'x') + "\r\n\r\n";
  expectRequestRejected(wire, ParseError::kHeadersTooLarge, 431);
}

TEST(Http1RequestRejectTest, UnterminatedHugeHeaderIs431) {
  std::string wire = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(61 * 1024, 'x');
  expectRequestRejected(wire, ParseError::kHeadersTooLarge, 431);
}

TEST(Http1RequestRejectTest, TooManyHeadersIs431) {
  expectRequestRejected(requestWithHeaders(101), ParseError::kTooManyHeaders, 431);
}

TEST(Http1RequestRejectTest, OversizedUriIs414) {
  std::string wire = "GET /" + std::string(16 * 1024, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  expectRequestRejected(wire, ParseError::kUriTooLong, 414);
}

TEST(Http1RequestRejectTest, HugeUnterminatedRequestLineIs414) {
  std::string wire = "GET /" + std::string(20 * 1024, 'a');
  expectRequestRejected(wire, ParseError::kUriTooLong, 414);
}

TEST(Http1RequestRejectTest, HugeMethodIs414) {
  // The request line is judged by its length while it is open; a complete one must get the same
  // answer, or the outcome would depend on how the bytes were split.
  std::string wire = std::string(20 * 1024, 'G') + " / HTTP/1.1\r\nHost: a\r\n\r\n";
  expectRequestRejected(wire, ParseError::kUriTooLong, 414);
}

TEST(Http1RequestRejectTest, OversizedTrailersAre431) {
  std::string wire = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " +
                     std::string(61 * 1024, 't') + "\r\n\r\n";
  expectRequestRejected(wire, ParseError::kTrailersTooLarge, 431);
}

TEST(Http1RequestRejectTest, TooManyTrailersAre431) {
  std::string wire = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 101; ++i) wire += "X-T" + std::to_string(i) + ": v\r\n";
  expectRequestRejected(wire + "\r\n", ParseError::kTooManyHeaders, 431);
}

TEST(Http1RequestRejectTest, ErrorInSecondPipelinedRequestStopsParsing) {
  std::string wire =
      "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
      "GET /b HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: a\r\n\r\n";
  expectRequestRejected(wire, ParseError::kObsFold, 400);
  Outcome out = drive(Type::kRequest, wire, Delivery::kWhole);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.target, "/a");
}

TEST(Http1RequestRejectTest, TruncatedContentLengthBodyIsUnexpectedEof) {
  Options opt;
  opt.finish = true;
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc",
                        ParseError::kUnexpectedEof, 400, opt);
}

TEST(Http1RequestRejectTest, TruncatedChunkedBodyIsUnexpectedEof) {
  Options opt;
  opt.finish = true;
  expectRequestRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
                        ParseError::kUnexpectedEof, 400, opt);
}

TEST(Http1RequestRejectTest, TruncatedHeadIsUnexpectedEof) {
  Options opt;
  opt.finish = true;
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\n", ParseError::kUnexpectedEof, 400, opt);
}

TEST(Http1RequestRejectTest, CloseBeforeTrailersEndIsUnexpectedEof) {
  Options opt;
  opt.finish = true;
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n",
      ParseError::kUnexpectedEof, 400, opt);
}

// ---------------------------------------------------------------------------------------------
// Limits are configurable, and a head exactly at a limit passes.

TEST(Http1LimitsTest, SmallHeadLimitGivesHeadersTooLarge) {
  std::string wire = "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + std::string(40, 'x') + "\r\n\r\n";
  Options opt;
  opt.limits.max_head_bytes = wire.size() - 1;
  expectRequestRejected(wire, ParseError::kHeadersTooLarge, 431, opt);
  opt.limits.max_head_bytes = wire.size();
  Outcome out = parseRequests(wire, opt);
  ASSERT_EQ(out.messages.size(), 1u);
}

TEST(Http1LimitsTest, HeadOneByteOverLimitIsHeadersTooLargeInEveryDelivery) {
  // The limit counts the final CRLF; a whole head must not slip through where a split one fails.
  std::string wire = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Options opt;
  opt.limits.max_head_bytes = wire.size() - 1;
  expectRequestRejected(wire, ParseError::kHeadersTooLarge, 431, opt);
  opt.limits.max_head_bytes = wire.size() - 2;
  expectRequestRejected(wire, ParseError::kHeadersTooLarge, 431, opt);
}

TEST(Http1LimitsTest, LongRequestLineCountsTowardHeadLimit) {
  std::string wire = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  Options opt;
  opt.limits.max_head_bytes = 64;
  opt.limits.max_uri_bytes = 1000;
  expectRequestRejected(wire, ParseError::kHeadersTooLarge, 431, opt);
}

TEST(Http1LimitsTest, SmallFieldCountGivesTooManyHeaders) {
  Options opt;
  opt.limits.max_headers = 3;
  parseRequests(requestWithHeaders(3), opt);
  expectRequestRejected(requestWithHeaders(4), ParseError::kTooManyHeaders, 431, opt);
}

TEST(Http1LimitsTest, DefaultFieldCountAllowsExactlyOneHundred) {
  Outcome out = parseRequests(requestWithHeaders(100));
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.headers.size(), 100u);
}

TEST(Http1LimitsTest, ResponseFieldCountExcludesStatusLine) {
  Options opt;
  opt.limits.max_headers = 2;
  Outcome out = parseResponses("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: b\r\n\r\n", opt);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].response.headers.size(), 2u);
  expectResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: b\r\nX-B: c\r\n\r\n",
                         ParseError::kTooManyHeaders, 431, opt);
}

TEST(Http1LimitsTest, SmallUriLimitGivesUriTooLong) {
  Options opt;
  opt.limits.max_uri_bytes = 8;
  parseRequests("GET /2345678 HTTP/1.1\r\nHost: a\r\n\r\n", opt);
  expectRequestRejected("GET /23456789 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::kUriTooLong, 414,
                        opt);
}

TEST(Http1LimitsTest, UriLimitAboveHeadLimitGivesHeadersTooLarge) {
  // With a head limit tighter than the URI limit, an open request line hits the head limit
  // first, however the bytes are split.
  Options opt;
  opt.limits.max_uri_bytes = 64;
  opt.limits.max_head_bytes = 32;
  expectRequestRejected("GET /" + std::string(200, 'a'), ParseError::kHeadersTooLarge, 431, opt);
  expectRequestRejected("GET /" + std::string(200, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n",
                        ParseError::kHeadersTooLarge, 431, opt);
}

TEST(Http1LimitsTest, SmallChunkLineLimitGivesChunkLineTooLong) {
  Options opt;
  opt.limits.max_chunk_line_bytes = 8;
  std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  Outcome out = parseRequests(head + "1;a=bcd\r\nx\r\n0\r\n\r\n", opt);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].body, "x");
  expectRequestRejected(head + "1;a=bcde\r\nx\r\n0\r\n\r\n", ParseError::kChunkLineTooLong, 400,
                        opt);
}

TEST(Http1LimitsTest, SmallHeadLimitAppliesToTrailers) {
  Options opt;
  opt.limits.max_head_bytes = 64;
  std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  parseRequests(head + "0\r\nX-T: " + std::string(40, 't') + "\r\n\r\n", opt);
  expectRequestRejected(head + "0\r\nX-T: " + std::string(80, 't') + "\r\n\r\n",
                        ParseError::kTrailersTooLarge, 431, opt);
}

// ---------------------------------------------------------------------------------------------
// Requests that parse.

TEST(Http1RequestTest, SimpleGetViewsPointIntoInput) {
  std::string wire = "GET /p/q?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nAccept:  */* \r\n\r\n";
  Outcome out = parseRequests(wire);
  ASSERT_EQ(out.messages.size(), 1u);
  const RequestHead& r = out.messages[0].request;
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/p/q?x=1&y");
  EXPECT_EQ(r.path, "/p/q");
  EXPECT_EQ(r.query, "x=1&y");
  EXPECT_EQ(r.host, "example.com:8080");
  EXPECT_EQ(r.version, Version::kHttp11);
  EXPECT_EQ(r.framing, BodyFraming::kNone);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.upgrade);
  EXPECT_FALSE(r.expect_continue);
  EXPECT_FALSE(r.absolute_form);
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[1].name, "Accept");
  EXPECT_EQ(r.headers[1].value, "*/*");
  EXPECT_EQ(r.headers.get("accept"), "*/*");
  for (const Header& h : r.headers) {
    EXPECT_TRUE(within(h.name, wire));
    EXPECT_TRUE(within(h.value, wire));
  }
  EXPECT_TRUE(within(r.method, wire));
  EXPECT_TRUE(within(r.path, wire));
  EXPECT_TRUE(within(r.query, wire));
  EXPECT_EQ(out.events, (std::vector<Event>{Event::kHead, Event::kMessageComplete}));
  EXPECT_EQ(out.unconsumed, 0u);
}

TEST(Http1RequestTest, HeadSplitBetweenCrAndLf) {
  // A read that ends between a line's CR and LF: the scan resumes mid-line and must still see
  // the empty line that ends the head.
  std::string buf = "GET / HTTP/1.1\r\nHost: a\r\n\r";
  Http1Parser p(Type::kRequest);
  EXPECT_EQ(p.parse(buf).event, Event::kNeedMore);
  buf += "\n";
  Http1Parser::Result r = p.parse(buf);
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(r.consumed, buf.size());
  EXPECT_EQ(p.request().headers.get("host"), "a");
}

TEST(Http1RequestTest, ConsumedCountsWholeHead) {
  std::string wire = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET";
  Http1Parser p(Type::kRequest);
  Http1Parser::Result r = p.parse(wire);
  EXPECT_EQ(r.event, Event::kHead);
  EXPECT_EQ(r.consumed, wire.size() - 3);
  r = p.parse(std::string_view(wire).substr(r.consumed));
  EXPECT_EQ(r.event, Event::kMessageComplete);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_TRUE(p.idle());
  r = p.parse("GET");
  EXPECT_EQ(r.event, Event::kNeedMore);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_FALSE(p.idle());
}

TEST(Http1RequestTest, PipelinedRequestsInOneBuffer) {
  std::string wire =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
      "DELETE /d HTTP/1.1\r\nHost: y\r\nConnection: close\r\n\r\n";
  Outcome out = parseRequests(wire);
  EXPECT_EQ(out.events,
            (std::vector<Event>{Event::kHead, Event::kMessageComplete, Event::kHead, Event::kBody,
                                Event::kMessageComplete, Event::kHead, Event::kBody,
                                Event::kMessageComplete, Event::kHead, Event::kMessageComplete}));
  ASSERT_EQ(out.messages.size(), 4u);
  EXPECT_EQ(out.messages[0].request.method, "GET");
  EXPECT_EQ(out.messages[0].request.path, "/a");
  EXPECT_EQ(out.messages[0].body, "");
  EXPECT_EQ(out.messages[1].request.method, "POST");
  EXPECT_EQ(out.messages[1].request.path, "/b");
  EXPECT_EQ(out.messages[1].request.query, "q=1");
  EXPECT_EQ(out.messages[1].request.framing, BodyFraming::kContentLength);
  EXPECT_EQ(out.messages[1].request.content_length, 5u);
  EXPECT_EQ(out.messages[1].body, "hello");
  EXPECT_EQ(out.messages[2].request.method, "PUT");
  EXPECT_EQ(out.messages[2].request.framing, BodyFraming::kChunked);
  EXPECT_EQ(out.messages[2].body, "abc");
  EXPECT_EQ(out.messages[3].request.method, "DELETE");
  EXPECT_EQ(out.messages[3].request.host, "y");
  EXPECT_FALSE(out.messages[3].request.keep_alive);
  for (const Message& m : out.messages) {
    EXPECT_TRUE(m.complete);
    EXPECT_TRUE(within(m.request.method, wire));
    EXPECT_TRUE(within(m.request.host, wire));
  }
}

TEST(Http1RequestTest, PipelinedHeadsKeepTheirOwnHostAndLength) {
  // Per-message framing facts must not leak into the next message.
  std::string wire =
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"
      "POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nyz";
  Outcome out = parseRequests(wire);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[1].request.host, "b");
  EXPECT_EQ(out.messages[1].body, "yz");
}

TEST(Http1RequestTest, ContentLengthZeroHasNoBodyEvent) {
  Outcome out = parseRequests("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.framing, BodyFraming::kContentLength);
  EXPECT_EQ(out.messages[0].body_events, 0u);
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_EQ(out.events, (std::vector<Event>{Event::kHead, Event::kMessageComplete}));
}

TEST(Http1RequestTest, ContentLengthWithLeadingZeros) {
  Outcome out = parseRequests("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n\r\nabc");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].body, "abc");
}

TEST(Http1RequestTest, ContentLengthBodyIsStreamed) {
  std::string wire = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
  Outcome bytes = drive(Type::kRequest, wire, Delivery::kByteAtATime);
  ASSERT_EQ(bytes.messages.size(), 1u);
  EXPECT_EQ(bytes.messages[0].body, "0123456789");
  EXPECT_EQ(bytes.messages[0].body_events, 10u);
}

TEST(Http1RequestTest, ChunkedWithExtensionsUppercaseHexLeadingZerosAndTrailers) {
  std::string wire =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value;flag\r\nhello\r\n"
      "0A ; q=\"x;y\\\"z\"\r\n0123456789\r\n"
      "00000001\r\n!\r\n"
      "0;last\r\nX-Sum: abc\r\nX-Other:  d \r\n\r\n";
  Outcome out = parseRequests(wire);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].body, "hello0123456789!");
  EXPECT_EQ(out.messages[0].trailers,
            (std::vector<std::pair<std::string, std::string>>{{"X-Sum", "abc"}, {"X-Other", "d"}}));
  EXPECT_TRUE(out.messages[0].complete);
}

TEST(Http1RequestTest, TrailersPointIntoInputAtMessageComplete) {
  std::string wire =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: v\r\n\r\n";
  Http1Parser p(Type::kRequest);
  std::string_view in = wire;
  Http1Parser::Result r = p.parse(in);
  ASSERT_EQ(r.event, Event::kHead);
  in.remove_prefix(r.consumed);
  r = p.parse(in);
  ASSERT_EQ(r.event, Event::kMessageComplete);
  EXPECT_EQ(r.consumed, in.size());
  ASSERT_EQ(p.trailers().size(), 1u);
  EXPECT_EQ(p.trailers()[0].value, "v");
  EXPECT_TRUE(within(p.trailers()[0].value, in.substr(0, r.consumed)));
}

TEST(Http1RequestTest, ChunkSplitAcrossReads) {
  std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string buf = head + "a\r\n01234";
  Http1Parser p(Type::kRequest);
  Http1Parser::Result r = p.parse(buf);
  ASSERT_EQ(r.event, Event::kHead);
  buf.erase(0, r.consumed);
  r = p.parse(buf);
  ASSERT_EQ(r.event, Event::kBody);
  EXPECT_EQ(r.data, "01234");
  EXPECT_EQ(r.consumed, buf.size());
  buf.erase(0, r.consumed);
  buf += "56789\r\n0\r\n\r\n";
  r = p.parse(buf);
  ASSERT_EQ(r.event, Event::kBody);
  EXPECT_EQ(r.data, "56789");
  buf.erase(0, r.consumed);
  r = p.parse(buf);
  EXPECT_EQ(r.event, Event::kMessageComplete);
  EXPECT_EQ(r.consumed, buf.size());
}

TEST(Http1RequestTest, ChunkSizeLineSplitAcrossReads) {
  std::string buf = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1";
  Http1Parser p(Type::kRequest);
  Http1Parser::Result r = p.parse(buf);
  ASSERT_EQ(r.event, Event::kHead);
  buf.erase(0, r.consumed);
  r = p.parse(buf);
  EXPECT_EQ(r.event, Event::kNeedMore);
  EXPECT_EQ(r.consumed, 0u);  // the partial size line stays with the caller
  buf += "0;ext=v\r";
  r = p.parse(buf);
  EXPECT_EQ(r.event, Event::kNeedMore);
  EXPECT_EQ(r.consumed, 0u);
  buf += "\n" + std::string(16, 'z');
  r = p.parse(buf);
  ASSERT_EQ(r.event, Event::kBody);
  EXPECT_EQ(r.data, std::string(16, 'z'));
}

TEST(Http1RequestTest, ChunkTerminatorSplitAcrossReads) {
  std::string buf = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r";
  Http1Parser p(Type::kRequest);
  Http1Parser::Result r = p.parse(buf);
  buf.erase(0, r.consumed);
  r = p.parse(buf);
  ASSERT_EQ(r.event, Event::kBody);
  buf.erase(0, r.consumed);
  r = p.parse(buf);
  EXPECT_EQ(r.event, Event::kNeedMore);
  EXPECT_EQ(r.consumed, 0u);
  buf += "\n0\r\n\r\n";
  r = p.parse(buf);
  EXPECT_EQ(r.event, Event::kMessageComplete);
  EXPECT_EQ(r.consumed, buf.size());
}

TEST(Http1RequestTest, EmptyChunkedBody) {
  Outcome out =
      parseRequests("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].body_events, 0u);
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_TRUE(out.messages[0].trailers.empty());
}

TEST(Http1RequestTest, TransferEncodingCaseAndEmptyListElements) {
  Outcome out = parseRequests(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , CHUNKED ,\r\n\r\n1\r\nx\r\n0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].request.has_transfer_encoding);
  EXPECT_EQ(out.messages[0].body, "x");
}

TEST(Http1RequestTest, Http10DefaultsToClose) {
  Outcome out = parseRequests("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.version, Version::kHttp10);
  EXPECT_FALSE(out.messages[0].request.keep_alive);
  EXPECT_FALSE(out.messages[0].request.has_host_header);
}

TEST(Http1RequestTest, Http10KeepAlive) {
  Outcome out = parseRequests("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].request.keep_alive);
}

TEST(Http1RequestTest, Http10CloseWinsOverKeepAliveInAnyOrder) {
  for (const char* wire :
       {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n"}) {
    SCOPED_TRACE(wire);
    Outcome out = parseRequests(wire);
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_FALSE(out.messages[0].request.keep_alive);
  }
}

TEST(Http1RequestTest, Http11ConnectionClose) {
  Outcome out = parseRequests("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_FALSE(out.messages[0].request.keep_alive);
}

TEST(Http1RequestTest, Http11KeepAliveTokenChangesNothing) {
  Outcome out = parseRequests("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].request.keep_alive);
}

TEST(Http1RequestTest, ConnectionNamingAFieldIsMarkedPerMessage) {
  Outcome out = parseRequests(
      "GET /1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Private\r\n\r\n"
      "GET /2 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-Private: 1\r\n\r\n"
      "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nConnection: x-a\r\n\r\n"
      "GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close, UPGRADE, Keep-Alive\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 4u);
  EXPECT_TRUE(out.messages[0].request.connection_names_fields);
  EXPECT_FALSE(out.messages[1].request.connection_names_fields);
  EXPECT_TRUE(out.messages[2].request.connection_names_fields);
  EXPECT_FALSE(out.messages[3].request.connection_names_fields);
  Outcome resp = parseResponses(
      "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nContent-Length: 0\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(resp.messages.size(), 2u);
  EXPECT_TRUE(resp.messages[0].response.connection_names_fields);
  EXPECT_FALSE(resp.messages[1].response.connection_names_fields);
}

TEST(Http1RequestTest, ExpectContinueHeadComesBeforeBody) {
  std::string wire =
      "PUT /up HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n";
  Http1Parser p(Type::kRequest);
  Http1Parser::Result r = p.parse(wire);
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_TRUE(p.request().expect_continue);
  EXPECT_TRUE(p.inBody());
  r = p.parse("");
  EXPECT_EQ(r.event, Event::kNeedMore);  // waits for the body the client holds back
  r = p.parse("data");
  ASSERT_EQ(r.event, Event::kBody);
  EXPECT_EQ(r.data, "data");
  EXPECT_EQ(p.parse("").event, Event::kMessageComplete);
}

TEST(Http1RequestTest, ExpectContinueIgnoredInHttp10) {
  Outcome out =
      parseRequests("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_FALSE(out.messages[0].request.expect_continue);
}

TEST(Http1RequestTest, UpgradeNeedsConnectionUpgrade) {
  Outcome out = parseRequests(
      "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
      "\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].request.upgrade);
  EXPECT_EQ(out.messages[0].request.headers.get("upgrade"), "websocket");
}

TEST(Http1RequestTest, UpgradeWithoutConnectionOptionIsNotUpgrade) {
  // RFC 9110 7.8: Upgrade is a hop-by-hop request only with the "upgrade" connection option.
  Outcome out = parseRequests("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_FALSE(out.messages[0].request.upgrade);
}

TEST(Http1RequestTest, UpgradeIgnoredInHttp10) {
  Outcome out =
      parseRequests("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_FALSE(out.messages[0].request.upgrade);
}

TEST(Http1RequestTest, AbsoluteFormTargetOverridesHost) {
  Outcome out =
      parseRequests("GET http://Example.com:8080/p?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  const RequestHead& r = out.messages[0].request;
  EXPECT_TRUE(r.absolute_form);
  EXPECT_EQ(r.host, "Example.com:8080");
  EXPECT_EQ(r.path, "/p");
  EXPECT_EQ(r.query, "q=1");
  EXPECT_TRUE(r.has_host_header);
}

TEST(Http1RequestTest, AbsoluteFormWithoutPath) {
  Outcome out = parseRequests("GET https://a.example?x HTTP/1.1\r\nHost: a.example\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.path, "/");
  EXPECT_EQ(out.messages[0].request.query, "x");
  EXPECT_EQ(out.messages[0].request.host, "a.example");
}

TEST(Http1RequestTest, AbsoluteFormIpv6) {
  Outcome out = parseRequests("GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.host, "[::1]:80");
}

TEST(Http1RequestTest, AsteriskFormForOptions) {
  Outcome out = parseRequests("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.target, "*");
  EXPECT_EQ(out.messages[0].request.path, "*");
}

TEST(Http1RequestTest, ConnectAuthorityFormHostComesFromTarget) {
  // The tunnel goes where the target says; a different Host field must not redirect routing.
  Outcome out = parseRequests("CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.host, "a.example:443");
  EXPECT_TRUE(out.messages[0].request.path.empty());
}

TEST(Http1RequestTest, EmptyHostIsAllowed) {
  Outcome out = parseRequests("GET / HTTP/1.1\r\nHost:\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].request.has_host_header);
  EXPECT_EQ(out.messages[0].request.host, "");
}

TEST(Http1RequestTest, LeadingEmptyLinesAreSkipped) {
  std::string wire = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Outcome out = parseRequests(wire);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.method, "GET");
  EXPECT_EQ(out.unconsumed, 0u);
}

TEST(Http1RequestTest, EmptyLineBetweenPipelinedRequests) {
  Outcome out = parseRequests(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\nGET / HTTP/1.1\r\nHost: "
      "a\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[1].request.method, "GET");
}

TEST(Http1RequestTest, FieldValueKeepsInnerWhitespaceAndObsText) {
  Outcome out = parseRequests("GET / HTTP/1.1\r\nHost: a\r\nX-A:\t b \t c\xff\t \r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].request.headers.get("x-a"), "b \t c\xff");
}

TEST(Http1RequestTest, FinishBetweenMessagesIsCleanClose) {
  Options opt;
  opt.finish = true;
  Outcome out = parseRequests("GET / HTTP/1.1\r\nHost: a\r\n\r\n", opt);
  EXPECT_EQ(out.finish_event, Event::kNeedMore);
  EXPECT_FALSE(out.failed);
}

TEST(Http1RequestTest, ErrorTextAndStatusCoverEveryError) {
  for (int i = 0; i <= static_cast<int>(ParseError::kUnexpectedEof); ++i) {
    auto e = static_cast<ParseError>(i);
    EXPECT_NE(parseErrorText(e), "unknown error") << i;
    int status = parseErrorStatus(e);
    EXPECT_TRUE(status == 400 || status == 414 || status == 431 || status == 501) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Responses.

TEST(Http1ResponseRejectTest, MissingStatusCodeIsBadStatusLine) {
  expectResponseRejected("HTTP/1.1 OK\r\n\r\n", ParseError::kBadStatusLine, 400);
}

TEST(Http1ResponseRejectTest, TwoDigitStatusIsBadStatusLine) {
  expectResponseRejected("HTTP/1.1 20 OK\r\n\r\n", ParseError::kBadStatusLine, 400);
}

TEST(Http1ResponseRejectTest, FourDigitStatusIsBadStatusLine) {
  expectResponseRejected("HTTP/1.1 2000 OK\r\n\r\n", ParseError::kBadStatusLine, 400);
}

TEST(Http1ResponseRejectTest, StatusAbove599IsBadStatusLine) {
  expectResponseRejected("HTTP/1.1 600 Odd\r\n\r\n", ParseError::kBadStatusLine, 400);
}

TEST(Http1ResponseRejectTest, BadVersionIsBadStatusLine) {
  expectResponseRejected("HTTP/2 200 OK\r\n\r\n", ParseError::kBadStatusLine, 400);
}

TEST(Http1ResponseRejectTest, LeadingEmptyLineIsBadStatusLine) {
  expectResponseRejected("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                         ParseError::kBadStatusLine, 400);
}

TEST(Http1ResponseRejectTest, ControlCharInReasonIsControlChar) {
  expectResponseRejected("HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
                         ParseError::kControlChar, 400);
}

TEST(Http1ResponseRejectTest, BareCrInReasonIsBareCr) {
  expectResponseRejected("HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n", ParseError::kBareCr,
                         400);
}

TEST(Http1ResponseRejectTest, ContentLengthWithTransferEncodingIs400) {
  expectResponseRejected(
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      ParseError::kContentLengthWithTransferEncoding, 400);
}

TEST(Http1ResponseRejectTest, DuplicateContentLengthIsDuplicateContentLength) {
  expectResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                         ParseError::kDuplicateContentLength, 400);
}

TEST(Http1ResponseRejectTest, UnknownTransferCodingIs501) {
  expectResponseRejected("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
                         ParseError::kUnknownTransferEncoding, 501);
}

TEST(Http1ResponseRejectTest, ObsFoldIsObsFold) {
  expectResponseRejected("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
                         ParseError::kObsFold, 400);
}

TEST(Http1ResponseRejectTest, BadChunkSizeIsBadChunkSize) {
  expectResponseRejected("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
                         ParseError::kBadChunkSize, 400);
}

TEST(Http1ResponseRejectTest, TruncatedBodyIsUnexpectedEof) {
  Options opt;
  opt.finish = true;
  expectResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                         ParseError::kUnexpectedEof, 400, opt);
}

TEST(Http1ResponseRejectTest, TruncatedChunkedBodyIsUnexpectedEof) {
  Options opt;
  opt.finish = true;
  expectResponseRejected("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
                         ParseError::kUnexpectedEof, 400, opt);
}

TEST(Http1ResponseRejectTest, TruncatedStatusLineIsUnexpectedEof) {
  Options opt;
  opt.finish = true;
  expectResponseRejected("HTTP/1.1 200 O", ParseError::kUnexpectedEof, 400, opt);
}

TEST(Http1ResponseTest, ContentLengthResponse) {
  std::string wire = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";
  Outcome out = parseResponses(wire);
  ASSERT_EQ(out.messages.size(), 1u);
  const ResponseHead& r = out.messages[0].response;
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.reason, "Not Found");
  EXPECT_TRUE(within(r.reason, wire));
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(out.messages[0].body, "abc");
  EXPECT_TRUE(out.messages[0].complete);
}

TEST(Http1ResponseTest, EmptyReasonPhrase) {
  Outcome out = parseResponses("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\nHTTP/1.1 204\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[0].response.reason, "");
  EXPECT_EQ(out.messages[1].response.status, 204);
}

TEST(Http1ResponseTest, ResponseToHeadHasNoBody) {
  Options opt;
  opt.head_requests = {true, false};
  Outcome out = parseResponses(
      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      opt);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[0].response.content_length, 10u);
  EXPECT_EQ(out.messages[0].response.framing, BodyFraming::kNone);
  EXPECT_EQ(out.messages[0].body, "");
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_EQ(out.messages[1].body, "ok");
}

TEST(Http1ResponseTest, ChunkedResponseToHeadHasNoBody) {
  Options opt;
  opt.head_requests = {true};
  Outcome out = parseResponses("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", opt);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_TRUE(out.messages[0].response.keep_alive);
}

TEST(Http1ResponseTest, NoContentAndNotModifiedHaveNoBody) {
  Outcome out = parseResponses(
      "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz");
  ASSERT_EQ(out.messages.size(), 3u);
  EXPECT_EQ(out.messages[0].body, "");
  EXPECT_EQ(out.messages[1].body, "");
  EXPECT_EQ(out.messages[2].body, "z");
  EXPECT_TRUE(out.messages[1].response.keep_alive);
}

TEST(Http1ResponseTest, InterimResponsesHaveNoBody) {
  Outcome out = parseResponses(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_EQ(out.messages.size(), 3u);
  EXPECT_EQ(out.messages[0].response.status, 100);
  EXPECT_EQ(out.messages[1].response.status, 103);
  EXPECT_EQ(out.messages[1].body, "");
  EXPECT_EQ(out.messages[2].body, "ok");
}

TEST(Http1ResponseTest, SwitchingProtocolsUpgrades) {
  std::string wire =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
      "\x81\x05hello";
  Options opt;
  opt.finish = true;
  Outcome out = parseResponses(wire, opt);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].response.status, 101);
  EXPECT_TRUE(out.messages[0].response.upgrade);
  EXPECT_TRUE(out.upgraded);
  EXPECT_EQ(out.unconsumed, 7u);  // the other protocol's bytes stay with the caller
  EXPECT_EQ(out.finish_event, Event::kNeedMore);
  EXPECT_EQ(out.events, (std::vector<Event>{Event::kHead}));
}

TEST(Http1ResponseTest, CloseDelimitedBodyEndsWithFinish) {
  Options opt;
  opt.finish = true;
  Outcome out = parseResponses("HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nsome body", opt);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].response.framing, BodyFraming::kUntilClose);
  EXPECT_FALSE(out.messages[0].response.keep_alive);
  EXPECT_EQ(out.messages[0].body, "some body");
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_EQ(out.finish_event, Event::kMessageComplete);
}

TEST(Http1ResponseTest, CloseDelimitedEmptyBodyEndsWithFinish) {
  Options opt;
  opt.finish = true;
  Outcome out = parseResponses("HTTP/1.0 200 OK\r\n\r\n", opt);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_EQ(out.finish_event, Event::kMessageComplete);
}

TEST(Http1ResponseTest, Http10KeepAliveWithLength) {
  Outcome out = parseResponses(
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"
      "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\ny");
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_TRUE(out.messages[0].response.keep_alive);
  EXPECT_FALSE(out.messages[1].response.keep_alive);
}

TEST(Http1ResponseTest, ConnectionCloseResponse) {
  Outcome out = parseResponses("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_FALSE(out.messages[0].response.keep_alive);
}

TEST(Http1ResponseTest, ChunkedResponseWithTrailers) {
  Outcome out = parseResponses(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5\r\npedia\r\n0\r\ngrpc-status: 0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].body, "Wikipedia");
  EXPECT_EQ(out.messages[0].trailers,
            (std::vector<std::pair<std::string, std::string>>{{"grpc-status", "0"}}));
}

TEST(Http1ResponseTest, ResponseHostFieldsAreNotChecked) {
  Outcome out =
      parseResponses("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(out.messages.size(), 1u);
}

// Every byte value at every position of a field value is accepted or refused exactly as RFC 9110
// 5.5 says: HTAB, SP, VCHAR and obs-text only (leading and trailing whitespace is trimmed, not
// refused).
TEST(Http1FieldValueTest, EveryByteAtEveryPosition) {
  for (int b = 0; b < 256; ++b) {
    if (b == '\r' || b == '\n') continue;  // line structure, tested elsewhere
    const bool allowed = b == '\t' || b == ' ' || (b >= 0x21 && b <= 0x7e) || b >= 0x80;
    // 40 bytes: positions in and across the 16-byte blocks the parser checks at once.
    for (size_t pos = 0; pos < 40; ++pos) {
      std::string value(40, 'v');
      value[pos] = static_cast<char>(b);
      Http1Parser p(Type::kResponse);
      auto r = p.parse("HTTP/1.1 200 OK\r\nx-v: " + value + "\r\ncontent-length: 0\r\n\r\n");
      if (allowed) {
        ASSERT_EQ(r.event, Event::kHead) << "byte " << b << " at " << pos;
      } else {
        ASSERT_EQ(r.event, Event::kError) << "byte " << b << " at " << pos;
      }
    }
  }
}

// reset(): a parser left in the middle of anything (a chunked body, trailers, an error) parses
// the next message as a new parser would, under the limits it was reset with.
TEST(Http1ParserResetTest, LeavesNothingOfTheLastExchangeAndTakesTheNewLimits) {
  Http1Parser p(Type::kResponse);
  std::string first =
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n5\r\nhello\r\n0\r\n"
      "x-trailer: t\r\n";  // cut inside the trailers
  std::string_view in = first;
  std::vector<Event> events;
  for (;;) {
    auto r = p.parse(in);
    in.remove_prefix(r.consumed);
    if (r.event == Event::kNeedMore) break;
    ASSERT_NE(r.event, Event::kError);
    events.push_back(r.event);
  }
  EXPECT_EQ(events, (std::vector<Event>{Event::kHead, Event::kBody}));
  EXPECT_TRUE(p.inBody());
  p.setRequestWasHead(true);  // for the next answer: reset forgets it
  p.reset(Limits{});
  std::string second = "HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc";
  auto r = p.parse(second);
  ASSERT_EQ(r.event, Event::kHead);
  EXPECT_EQ(p.response().status, 404);
  ASSERT_EQ(p.response().headers.size(), 1u);
  EXPECT_EQ(p.response().headers[0].name, "content-length");
  std::string_view rest = std::string_view(second).substr(r.consumed);
  r = p.parse(rest);
  ASSERT_EQ(r.event, Event::kBody);  // not a HEAD answer any more
  EXPECT_EQ(r.data, "abc");
  r = p.parse(rest.substr(r.consumed));
  EXPECT_EQ(r.event, Event::kMessageComplete);
  EXPECT_TRUE(p.trailers().empty());

  // After an error, and with tighter limits: two fields are one too many.
  auto bad = p.parse("HTTP/1.1 200 OK\r\nbad header\r\n\r\n");
  ASSERT_EQ(bad.event, Event::kError);
  Limits tight;
  tight.max_headers = 1;
  p.reset(tight);
  EXPECT_TRUE(p.idle());
  EXPECT_EQ(p.error(), ParseError::kNone);
  r = p.parse("HTTP/1.1 200 OK\r\na: 1\r\nb: 2\r\n\r\n");
  EXPECT_EQ(r.event, Event::kError);
  EXPECT_EQ(p.error(), ParseError::kTooManyHeaders);
}

}  // namespace
}  // namespace mesh::http
