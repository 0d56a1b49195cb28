#include "proxy/http/grpc.h"

#include <algorithm>
#include <climits>

namespace mesh::proxy::grpc {
namespace {

constexpr std::string_view kGrpcType = "application/grpc";

std::string_view trimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

bool isGrpcContentType(std::string_view content_type) {
  std::string_view v = trimOws(content_type);
  if (v.size() < kGrpcType.size() ||
      !http::equalsIgnoreCase(v.substr(0, kGrpcType.size()), kGrpcType)) {
    return false;
  }
  if (v.size() == kGrpcType.size()) return true;
  const char next = v[kGrpcType.size()];
  return next == '+' || next == ';';
}

bool isGrpcRequest(const http::HeaderList& headers) {
  const http::Header* ct = headers.find("content-type");
  return ct != nullptr && isGrpcContentType(ct->value);
}

std::optional<Millis> parseTimeout(std::string_view value) {
  // TimeoutValue: at most 8 digits (so the product below cannot overflow int64).
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  int64_t ms;
  switch (value.back()) {
    case 'H':
      ms = n * 3600 * 1000;
      break;
    case 'M':
      ms = n * 60 * 1000;
      break;
    case 'S':
      ms = n * 1000;
      break;
    case 'm':
      ms = n;
      break;
    case 'u':
      ms = (n + 999) / 1000;
      break;
    case 'n':
      ms = (n + 999999) / 1000000;
      break;
    default:
      return std::nullopt;
  }
  // A zero deadline has already passed; 1 ms keeps "0" distinct from "no timeout".
  return Millis(ms < 1 ? 1 : ms);
}

Millis effectiveTimeout(Millis route_timeout, bool is_grpc, std::optional<Millis> grpc_timeout) {
  if (!is_grpc || !grpc_timeout) return route_timeout;
  if (route_timeout.count() > 0 && route_timeout < *grpc_timeout) return route_timeout;
  return *grpc_timeout;
}

std::optional<uint32_t> parseStatus(std::string_view value) {
  value = trimOws(value);
  if (value.empty() || value.size() > 10) return std::nullopt;
  uint64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(n);
}

std::optional<uint32_t> statusOf(const http::HeaderList& headers) {
  const http::Header* h = headers.find("grpc-status");
  if (h == nullptr) return std::nullopt;
  return parseStatus(h->value);
}

uint32_t statusFromHttp(uint16_t http_status) {
  switch (http_status) {
    case 400:
      return kInternal;
    case 401:
      return kUnauthenticated;
    case 403:
      return kPermissionDenied;
    case 404:
      return kUnimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return kUnavailable;
    default:
      return kUnknown;
  }
}

std::optional<uint32_t> statusFromName(std::string_view name) {
  std::optional<StatusCode> c = statusCodeFromName(name);
  if (!c) return std::nullopt;
  return codeOf(*c);
}

std::string_view statusName(uint32_t code) {
  return statusCodeName(code <= kMaxCode ? static_cast<StatusCode>(code) : StatusCode::kUnknown);
}

uint32_t localReplyStatus(uint16_t http_status, bool timed_out) {
  return timed_out ? kDeadlineExceeded : statusFromHttp(http_status);
}

int32_t telemetryStatus(bool is_grpc, std::optional<uint32_t> seen, uint16_t http_status) {
  if (!is_grpc) return -1;
  if (seen) return static_cast<int32_t>(std::min<uint32_t>(*seen, INT32_MAX));
  if (http_status == 0) return -1;
  return static_cast<int32_t>(statusFromHttp(http_status));
}

void appendPercentEncoded(std::string& out, std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
}

void appendLocalReplyHeaders(std::string& out, uint32_t code, std::string_view message) {
  out.append("content-type: application/grpc\r\n");
  out.append("grpc-status: ");
  out.append(std::to_string(code));
  out.append("\r\n");
  if (!message.empty()) {
    out.append("grpc-message: ");
    appendPercentEncoded(out, message);
    out.append("\r\n");
  }
  out.append("content-length: 0\r\n");
}

}  // namespace mesh::proxy::grpc
