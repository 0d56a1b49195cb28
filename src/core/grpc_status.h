// gRPC's canonical status codes and their names ("UNAVAILABLE" <-> 14), shared by the proxy
// (grpc-status, local replies), pilot (Istio's fault.abort.grpcStatus) and config validation.
// Header-only so pilot and config need no proxy library for them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mesh::grpc_status {

// grpc/include/grpcpp/impl/codegen/status_code_enum.h
enum Code : uint32_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};
constexpr uint32_t kMaxCode = 16;

inline constexpr std::array<std::string_view, kMaxCode + 1> kNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

// Exact, upper-case names as Istio's HTTPFaultInjection.Abort.grpcStatus spells them.
constexpr std::optional<uint32_t> fromName(std::string_view name) {
  for (uint32_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return i;
  }
  return std::nullopt;
}

// "UNKNOWN" for codes above kMaxCode.
constexpr std::string_view name(uint32_t code) {
  return code < kNames.size() ? kNames[code] : std::string_view("UNKNOWN");
}

}  // namespace mesh::grpc_status
