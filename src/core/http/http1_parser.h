// A strict, zero-copy, pull-style HTTP/1.1 parser for requests and responses.
//
// The caller owns the bytes. It passes every unconsumed byte it holds; the parser returns one
// event and how many bytes it consumed. Views in the returned head, body slice and trailers point
// into the caller's bytes and stay valid until the caller moves or overwrites them. Until a head
// (or a trailer block) is complete the parser consumes nothing, so the caller always presents the
// head from its first byte; scanning resumes where it stopped, so a slowly arriving head is never
// rescanned.
//
// Anything that could make two parties disagree on where a message ends is an error, after which
// the parser stays in the error state: nothing after a framing error is parsed.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/http/headers.h"

namespace mesh::http {

enum class Version : uint8_t { kHttp10, kHttp11 };

enum class BodyFraming : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

enum class ParseError : uint8_t {
  kNone,
  kBadRequestLine,
  kBadVersion,
  kBadStatusLine,
  kUriTooLong,
  kHeadersTooLarge,
  kTooManyHeaders,
  kBadHeaderName,
  kWhitespaceBeforeColon,
  kMissingColon,
  kObsFold,
  kBareCr,
  kBareLf,
  kControlChar,
  kMissingHost,
  kDuplicateHost,
  kBadHost,
  kBadContentLength,
  kDuplicateContentLength,
  kContentLengthWithTransferEncoding,
  kBadTransferEncoding,
  kUnknownTransferEncoding,
  kTransferEncodingInHttp10,
  kBadChunkSize,
  kBadChunkTerminator,
  kChunkLineTooLong,
  kTrailersTooLarge,
  kUnexpectedEof,
};

// Human-readable reason, also used as the local reply body.
std::string_view parseErrorText(ParseError e);
// The status a server answers with: 414, 431, 501 or 400.
int parseErrorStatus(ParseError e);

struct Limits {
  size_t max_head_bytes = 60 * 1024;  // request/status line + header block (also trailers)
  size_t max_headers = 100;           // header fields (also trailer fields)
  size_t max_uri_bytes = 16 * 1024;   // request-target; 414 also for a request line over this + 64
  size_t max_chunk_line_bytes = 4096; // chunk-size line with extensions
};

struct MessageHead {
  Version version = Version::kHttp11;
  HeaderList headers;
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;  // for kContentLength
  bool keep_alive = true;       // the sender allows another message on this connection
  bool upgrade = false;         // "Connection: upgrade" with an Upgrade field
  bool has_transfer_encoding = false;
  // Connection names a token other than close, keep-alive and upgrade: the fields it names
  // are hop-by-hop for this message too (RFC 9110 7.6.1).
  bool connection_names_fields = false;
};

struct RequestHead : MessageHead {
  std::string_view method;
  std::string_view target;  // as sent
  std::string_view path;    // target without the query (for absolute-form: the path part)
  std::string_view query;   // after '?', without it; empty when absent
  std::string_view host;    // authority: from the target when it has one (absolute-form, or
                            // CONNECT's authority-form), else the Host field
  bool expect_continue = false;
  bool absolute_form = false;
  bool has_host_header = false;
};

struct ResponseHead : MessageHead {
  uint16_t status = 0;
  std::string_view reason;
};

class Http1Parser {
 public:
  enum class Type : uint8_t { kRequest, kResponse };
  enum class Event : uint8_t {
    kNeedMore,         // consumed may be > 0 (framing bytes); give more bytes
    kHead,             // request() / response() is ready
    kBody,             // data is a body slice (chunk framing removed)
    kMessageComplete,  // trailers() holds any chunked trailers
    kError,            // error() says why; the connection must be closed
  };
  struct Result {
    Event event;
    size_t consumed;
    std::string_view data;
  };

  explicit Http1Parser(Type type, Limits limits = {});

  // As newly made with `limits` (same type), keeping the capacity of its header lists: a parser
  // reused for a new exchange (a pooled HTTP/2 stream) allocates nothing.
  void reset(const Limits& limits);

  Result parse(std::string_view input);
  // The peer closed its side. `unconsumed` is how many bytes the caller still holds unparsed.
  // kMessageComplete ends a body delimited by close; kNeedMore means a clean close between
  // messages; kError means a message was cut short.
  Result finish(size_t unconsumed);

  // Responses: whether the request being answered was HEAD (its response has no body).
  void setRequestWasHead(bool head) { request_was_head_ = head; }

  const RequestHead& request() const { return request_; }
  const ResponseHead& response() const { return response_; }
  const HeaderList& trailers() const { return trailers_; }
  ParseError error() const { return error_; }
  // Between messages, nothing of the next one seen.
  bool idle() const { return state_ == State::kHeadStart && scan_pos_ == 0; }
  // In a message body (head done, message not complete).
  bool inBody() const;
  // After a 101 response: the bytes that follow belong to another protocol.
  bool upgraded() const { return state_ == State::kUpgraded; }
  const Limits& limits() const { return limits_; }

 private:
  enum class State : uint8_t {
    kHeadStart,
    kBodyLength,
    kChunkSize,
    kChunkData,
    kChunkDataEnd,
    kTrailers,
    kBodyUntilClose,
    kDone,
    kUpgraded,
    kError,
  };

  struct NoReserve {};
  Http1Parser(Type type, const Limits& limits, NoReserve);

  Result fail(ParseError e);
  // Finds the end of a header block starting at input[0]; resumes at scan_pos_. `start_line`:
  // the block opens with a request or status line (a head, not trailers).
  // Returns 0 while incomplete (or on error, with state_ == kError).
  size_t scanBlock(std::string_view in, bool start_line);
  // Fails (and returns true) when the block's bytes up to `end` already break a size limit.
  // Whether the head so far (up to `end`) breaks a limit; called for every line, so the common
  // case (within both limits below) is answered here.
  bool blockOverLimit(size_t end, bool start_line) {
    const size_t len = end - block_begin_;
    if (len <= limits_.max_head_bytes && len <= limits_.max_uri_bytes) return false;
    return blockOverLimitSlow(end, start_line);
  }
  bool blockOverLimitSlow(size_t end, bool start_line);
  bool parseRequestHead(std::string_view head);
  bool parseResponseHead(std::string_view head);
  // Parses "name: value" lines of [begin,end) into `out`; `head` gets framing info when non-null.
  bool parseFields(std::string_view block, HeaderList& out, MessageHead* head);
  bool parseFieldsChecked(std::string_view block, HeaderList& out, MessageHead* head);
  bool noteField(std::string_view name, std::string_view value, MessageHead* head);
  bool finishFraming(MessageHead& head, bool is_request);
  void applyConnectionOptions(MessageHead& head, bool is_request);
  void startBody(const MessageHead& head);

  Type type_;
  Limits limits_;
  State state_ = State::kHeadStart;
  ParseError error_ = ParseError::kNone;
  bool request_was_head_ = false;

  // Block scanning (head or trailers), relative to the block's first byte.
  size_t scan_pos_ = 0;     // where the search for the next LF resumes
  size_t line_start_ = 0;   // first byte of the line being scanned
  size_t block_begin_ = 0;  // skipped leading empty lines before a request line
  size_t scan_lines_ = 0;
  bool first_line_seen_ = false;

  uint64_t remaining_ = 0;

  // Per-message framing facts collected while parsing fields.
  int host_count_ = 0;
  int content_length_count_ = 0;
  bool te_chunked_last_ = false;
  bool te_chunked_params_ = false;
  int te_codings_ = 0;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
  bool conn_upgrade_ = false;
  bool upgrade_field_ = false;
  bool host_from_target_ = false;

  RequestHead request_;
  ResponseHead response_;
  HeaderList trailers_;
};

}  // namespace mesh::http
