// Request ids and trace context propagation (W3C traceparent and B3), with a new span id per hop
// as a tracing sidecar does. Fixed-size buffers: no allocation per request.
#pragma once

#include <array>
#include <cstdint>
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

// The incoming trace context fields (first of each; empty when absent).
struct TraceContext {
  std::string_view traceparent;
  std::string_view b3_trace_id;
  std::string_view b3_span_id;
  std::string_view b3_sampled;
  std::string_view b3_flags;
  // Notes `h` if it is one of the fields above (the first of each counts, as HeaderList::get).
  // Returns whether it is a field continueTrace() replaces (traceparent, x-b3-traceid,
  // x-b3-spanid, x-b3-parentspanid, x-b3-sampled), so that a caller
  // walking the fields once both collects the context and drops what it replaces.
  bool take(const http::Header& h);

 private:
  uint8_t seen_ = 0;
};

// Derives this hop's trace headers from the incoming request: continues a W3C or B3 trace
// (preferring traceparent), or starts one, sampled with probability sampling_percent/100.
void continueTrace(const TraceContext& in, Random& random, double sampling_percent,
                   TraceHeaders* out);
void continueTrace(const http::HeaderList& headers, Random& random, double sampling_percent,
                   TraceHeaders* out);

}  // namespace mesh::proxy
