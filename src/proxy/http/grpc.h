// gRPC semantics the router needs on top of HTTP: recognising a gRPC request, its deadline
// (grpc-timeout), the call's status (grpc-status in headers or trailers), and answering a gRPC
// client in its own terms when the proxy replies itself.
//
// Every function here reads bytes a client or an upstream sent: malformed values are reported
// as "absent" (nullopt), never an error that could fail the request, as the gRPC spec asks
// (PROTOCOL-HTTP2.md: a malformed grpc-timeout is ignored). Stateless and thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/http/headers.h"
#include "core/status.h"

namespace mesh::proxy::grpc {

using Millis = std::chrono::milliseconds;

// grpc-status values are numbers on the wire (any number; 0..16 are mesh::StatusCode's). The
// ones the router itself produces or tests:
constexpr uint32_t codeOf(StatusCode c) { return static_cast<uint32_t>(c); }
constexpr uint32_t kUnknown = codeOf(StatusCode::kUnknown);
constexpr uint32_t kDeadlineExceeded = codeOf(StatusCode::kDeadlineExceeded);
constexpr uint32_t kPermissionDenied = codeOf(StatusCode::kPermissionDenied);
constexpr uint32_t kUnimplemented = codeOf(StatusCode::kUnimplemented);
constexpr uint32_t kInternal = codeOf(StatusCode::kInternal);
constexpr uint32_t kUnavailable = codeOf(StatusCode::kUnavailable);
constexpr uint32_t kUnauthenticated = codeOf(StatusCode::kUnauthenticated);
constexpr uint32_t kMaxCode = kMaxStatusCode;

// "application/grpc", "application/grpc+proto", "application/grpc;charset=..." (any case), but
// not "application/grpc-web..." (a different protocol that Envoy translates, not proxied here).
bool isGrpcContentType(std::string_view content_type);
// A request is gRPC when its content-type says so (what Envoy's Grpc::Common::isGrpcRequest
// checks).
bool isGrpcRequest(const http::HeaderList& headers);

// grpc-timeout: 1 to 8 ASCII digits then one unit of H M S m u n. Returns the deadline in
// milliseconds, rounded up (a sub-millisecond deadline is 1 ms: the proxy's timers are in ms and
// a deadline must never be stretched to "none"). nullopt when malformed (ignored, per spec).
std::optional<Millis> parseTimeout(std::string_view value);

// The timeout the router applies to a request. Istio sets Envoy's grpc_timeout_header_max to
// the route's timeout: a gRPC request's grpc-timeout is used, capped by the route timeout when
// the route has one (0 = no route timeout = no cap). Requests that are not gRPC, or carry no
// valid grpc-timeout, keep the route timeout. 0 = none.
Millis effectiveTimeout(Millis route_timeout, bool is_grpc, std::optional<Millis> grpc_timeout);

// A grpc-status value: decimal digits only, at most 10 of them, fitting in 32 bits (any such
// number is a status; unknown numbers are kept, as gRPC maps them to UNKNOWN only when it
// interprets them). nullopt when malformed.
std::optional<uint32_t> parseStatus(std::string_view value);
// grpc-status from a header block: a trailers-only response's headers, or a response's
// trailers. nullopt when absent or malformed.
std::optional<uint32_t> statusOf(const http::HeaderList& headers);

// The gRPC status of an HTTP status the proxy answers with (gRPC's doc/http-grpc-status-
// mapping.md, as Envoy's Grpc::Utility::httpToGrpcStatus): 400 INTERNAL, 401 UNAUTHENTICATED,
// 403 PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
uint32_t statusFromHttp(uint16_t http_status);

// "UNAVAILABLE" <-> 14, as Istio's HTTPFaultInjection.Abort.grpcStatus spells them.
std::optional<uint32_t> statusFromName(std::string_view name);
std::string_view statusName(uint32_t code);  // "UNKNOWN" above kMaxCode

// The gRPC status of a gRPC local reply: DEADLINE_EXCEEDED for a timeout (the call's deadline,
// or the route's, ran out: what a gRPC client would report itself), else statusFromHttp.
uint32_t localReplyStatus(uint16_t http_status, bool timed_out);

// grpc_response_status for telemetry (Envoy's response.grpc_status, which Istio's stats
// report): the grpc-status seen (trailers, else headers, else a local reply's), else the HTTP
// status mapped. -1 ("-") when the request is not gRPC or no response was sent.
int32_t telemetryStatus(bool is_grpc, std::optional<uint32_t> seen, uint16_t http_status);

// grpc-message: percent-encodes every byte outside 0x20..0x7E and '%' (PROTOCOL-HTTP2.md).
void appendPercentEncoded(std::string& out, std::string_view message);

// The header lines (each ending CRLF, no status line, no final CRLF) of a gRPC local reply in
// trailers-only form: content-type application/grpc, grpc-status, grpc-message (when not
// empty), content-length 0. The reply is HTTP 200, as gRPC requires for any call outcome.
void appendLocalReplyHeaders(std::string& out, uint32_t code, std::string_view message);

}  // namespace mesh::proxy::grpc
