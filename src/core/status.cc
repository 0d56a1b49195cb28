#include "core/status.h"

#include <cstdio>
#include <cstdlib>

namespace mesh {

std::optional<StatusCode> statusCodeFromName(std::string_view name) {
  for (uint32_t i = 0; i <= kMaxStatusCode; ++i) {
    if (statusCodeName(static_cast<StatusCode>(i)) == name) return static_cast<StatusCode>(i);
  }
  return std::nullopt;
}

std::string_view statusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

std::string Status::toString() const {
  if (ok()) return "OK";
  std::string out(statusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

void releaseAssertFailed(const char* cond, const char* msg, const char* file, int line) {
  std::fprintf(stderr, "fatal: assertion failed: %s (%s) at %s:%d\n", cond, msg, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace mesh
