// Request ids and trace context propagation (W3C traceparent and B3), with a new span id per hop
// as a tracing sidecar does. Fixed-size buffers: no allocation per request.
#pragma once

#include <array>
#include <string_view>

#include "core/http/headers.h"
#include "core/random.h"

namespace mesh::proxy {

// A UUID v4 in its 36-character text form.
struct RequestId {
  std::array<char, 36> text;
  std::string_view view() const { return {text.data(), text.size()}; }
};
RequestId makeRequestId(Random& random);

// The trace headers a hop sends upstream.
struct TraceHeaders {
  std::array<char, 55> traceparent;  // 00-<32 hex>-<16 hex>-<2 hex>
  std::array<char, 32> trace_id;     // 128-bit trace id in hex
  size_t trace_id_len = 32;          // B3 ids may be 64-bit
  std::array<char, 16> span_id;      // this hop's span
  std::array<char, 16> parent_span_id;
  bool has_parent = false;
  bool sampled = false;

  std::string_view traceparentView() const { return {traceparent.data(), traceparent.size()}; }
  std::string_view traceIdView() const { return {trace_id.data(), trace_id_len}; }
  std::string_view spanIdView() const { return {span_id.data(), span_id.size()}; }
  std::string_view parentView() const { return {parent_span_id.data(), parent_span_id.size()}; }
  std::string_view sampledView() const { return sampled ? "1" : "0"; }
};

// Derives this hop's trace headers from the incoming request: continues a W3C or B3 trace
// (preferring traceparent), or starts one, sampled with probability sampling_percent/100.
void continueTrace(const http::HeaderList& headers, Random& random, double sampling_percent,
                   TraceHeaders* out);

// Whether a header is one that continueTrace() replaces.
bool isTraceHeader(std::string_view name);

}  // namespace mesh::proxy
