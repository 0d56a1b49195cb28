// The server side of one HTTP/2 connection (nghttp2), as a codec between HTTP/2 frames and the
// HTTP/1.1 messages the router speaks: each request stream becomes an HTTP/1.1 request byte
// stream (":authority" -> Host, body chunked when its length is unknown, trailers as chunked
// trailers), and the router's HTTP/1.1 response bytes become HEADERS, DATA and trailers
// (connection-specific fields removed). No socket here: bytes in through receive(), frames out
// through send(), so tests and the fuzz target drive it directly.
//
// Flow control is end to end: request DATA is acknowledged (WINDOW_UPDATE) only once the
// router took the synthesized bytes (consumeRequest), and a response write is reported drained
// (Callbacks::onResponseDrained) only once its bytes went into frames, which the peer's window
// gates. So at most one window of request bytes and one write of response bytes wait per stream.
//
// Abuse limits end the connection with GOAWAY: header lists over the limit (decoded, or raw
// across CONTINUATION frames), streams refused over the concurrency limit again and again,
// premature stream resets (CVE-2023-44487), floods of empty DATA frames, and (nghttp2's own
// count) too many SETTINGS/PING acknowledgements queued for a peer that does not read.
//
// Single-threaded. Callbacks are never made from inside the caller's call to writeResponse().
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/http/http1_parser.h"
#include "proxy/http/http2_limits.h"

namespace mesh::proxy {

class Http2ServerSession {
 public:
  class Callbacks {
   public:
    virtual ~Callbacks() = default;
    // A request head is complete: pendingRequest(id) starts with its HTTP/1.1 head.
    virtual void onRequest(int32_t id) = 0;
    // More request bytes (body, trailers or end) are pending for the stream.
    virtual void onRequestData(int32_t id) = 0;
    // The stream is gone. `error_code` is NGHTTP2_NO_ERROR after a complete exchange, else the
    // reset's code (sent or received). No call names the id afterwards.
    virtual void onStreamClose(int32_t id, uint32_t error_code) = 0;
    // The bytes of the last writeResponse() are all in frames (made during send()).
    virtual void onResponseDrained(int32_t id) = 0;
  };

  Http2ServerSession(Callbacks& cb, const Http2Limits& limits);
  ~Http2ServerSession();
  Http2ServerSession(const Http2ServerSession&) = delete;
  Http2ServerSession& operator=(const Http2ServerSession&) = delete;

  // Bytes from the client, connection preface included. False once the connection must end
  // (a GOAWAY is queued; send() what is left, then close).
  bool receive(std::string_view bytes);
  // Appends frames to `out` while it is under `max_bytes`.
  void send(std::string& out, size_t max_bytes);
  // Nothing more to read or write: the connection can be closed.
  bool finished() const;
  bool wantsWrite() const;
  // Graceful: GOAWAY with the last stream id; streams in flight finish.
  void shutdown();
  // The error code of the GOAWAY this side sent for abuse or a protocol error (0 if none).
  uint32_t goawayCode() const { return goaway_code_; }
  size_t openStreams() const { return streams_.size(); }

  // Request bytes (HTTP/1.1) not yet taken; consumeRequest() takes a prefix.
  std::string_view pendingRequest(int32_t id) const;
  void consumeRequest(int32_t id, size_t n);
  // The request has been received in full (all of it is in pendingRequest).
  bool requestEnded(int32_t id) const;
  // The router's HTTP/1.1 response bytes for the stream (a head, body slices, the end).
  // Returns true when they are all framed already (nothing waits); false: onResponseDrained
  // follows once they are. An unparsable response resets the stream.
  bool writeResponse(int32_t id, std::string_view bytes);
  // The response was handed over in full (its last frame is queued or sent).
  bool responseComplete(int32_t id) const;
  void resetStream(int32_t id, uint32_t error_code);

 private:
  struct Stream;
  static int onBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud);
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nlen,
                      const uint8_t* value, size_t vlen, uint8_t flags, void* ud);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* ud);
  static int onInvalidFrameRecv(nghttp2_session*, const nghttp2_frame* f, int err, void* ud);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t id, const uint8_t* data,
                         size_t len, void* ud);
  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* ud);
  static ssize_t readResponseData(nghttp2_session*, int32_t id, uint8_t* buf, size_t len,
                                  uint32_t* flags, nghttp2_data_source* src, void* ud);

  Stream* find(int32_t id) const;
  int abuse(uint32_t code, const char* what);
  void finishRequestHead(Stream& s, bool end_stream);
  void endRequestBody(Stream& s);
  bool submitResponseHead(Stream& s, const http::ResponseHead& head);

  Callbacks& cb_;
  Http2Limits limits_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  mutable int32_t last_found_id_ = 0;  // find()'s one-entry cache
  mutable Stream* last_found_ = nullptr;
  static constexpr size_t kSpareStreams = 16;
  std::vector<std::unique_ptr<Stream>> spare_;  // closed streams kept for reuse
  std::string nv_names_;                        // submitResponseHead's scratch
  std::vector<nghttp2_nv> nv_;
  uint32_t goaway_code_ = 0;
  bool failed_ = false;
  size_t header_block_bytes_ = 0;
  uint32_t refused_streams_ = 0;
  uint32_t premature_resets_ = 0;
  uint32_t total_streams_ = 0;
  uint32_t empty_frames_ = 0;
};

}  // namespace mesh::proxy
