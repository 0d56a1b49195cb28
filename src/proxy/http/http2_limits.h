// The limits of a downstream HTTP/2 connection, from the listener's `http.http2` options.
#pragma once

#include <cstdint>

namespace mesh::proxy {

// Envoy-like defaults (its http2_protocol_options and overload knobs).
struct Http2Limits {
  uint32_t max_concurrent_streams = 100;
  uint32_t initial_stream_window = 64 * 1024;
  uint32_t initial_connection_window = 1024 * 1024;
  uint32_t max_header_list_bytes = 60 * 1024;  // decoded (RFC 9113 6.5.2 accounting)
  uint32_t max_outbound_control_frames = 1000;  // queued SETTINGS/PING acks
  uint32_t max_continuations = 8;  // at least; more when the header limit needs them
  uint32_t max_refused_streams = 100;  // streams refused over the concurrency limit
  uint32_t max_premature_resets = 100;  // and at least half of all streams
  uint32_t max_consecutive_empty_frames = 100;
};

}  // namespace mesh::proxy
