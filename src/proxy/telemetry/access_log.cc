#include "proxy/telemetry/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "proxy/telemetry/response_flags.h"

namespace mesh::proxy {
namespace {

void appendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 0xf]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void field(std::string* out, const char* name, std::string_view value, bool first = false) {
  if (!first) out->push_back(',');
  out->push_back('"');
  out->append(name);
  out->append("\":");
  if (value.empty()) {
    out->append("null");
  } else {
    appendJsonString(out, value);
  }
}

void field(std::string* out, const char* name, int64_t value) {
  out->append(",\"");
  out->append(name);
  out->append("\":");
  out->append(std::to_string(value));
}

}  // namespace

void formatAccessLog(const AccessLogEntry& e, std::string* out) {
  char ts[40];
  auto since = e.start_time.time_since_epoch();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since - secs).count();
  std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm;
  gmtime_r(&t, &tm);
  size_t n = std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(ts + n, sizeof(ts) - n, ".%03dZ", static_cast<int>(ms));

  out->push_back('{');
  field(out, "start_time", ts, true);
  field(out, "method", e.method);
  field(out, "path", e.path);
  field(out, "protocol", e.protocol);
  field(out, "response_code", e.response_code);
  field(out, "response_flags", formatResponseFlags(e.response_flags));
  field(out, "response_code_details", e.response_code_details);
  field(out, "bytes_received", static_cast<int64_t>(e.bytes_received));
  field(out, "bytes_sent", static_cast<int64_t>(e.bytes_sent));
  field(out, "duration", e.duration_ms);
  if (e.upstream_service_time_ms >= 0) {
    field(out, "upstream_service_time", e.upstream_service_time_ms);
  } else {
    out->append(",\"upstream_service_time\":null");
  }
  field(out, "x_forwarded_for", e.x_forwarded_for);
  field(out, "user_agent", e.user_agent);
  field(out, "request_id", e.request_id);
  field(out, "authority", e.authority);
  field(out, "upstream_host", e.upstream_host);
  field(out, "upstream_cluster", e.upstream_cluster);
  field(out, "downstream_local_address", e.downstream_local_address);
  field(out, "downstream_remote_address", e.downstream_remote_address);
  field(out, "route_name", e.route_name);
  field(out, "traceparent", e.traceparent);
  if (e.grpc_status >= 0) {
    field(out, "grpc_status", e.grpc_status);
  } else {
    out->append(",\"grpc_status\":null");
  }
  out->append("}\n");
}

AccessLogWriter::~AccessLogWriter() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

Status AccessLogWriter::open(const std::string& path) {
  std::string p = path.empty() ? "/dev/stdout" : path;
  if (fd_ >= 0 && p == path_) return okStatus();
  if (owned_ && fd_ >= 0) ::close(fd_);
  fd_ = -1;
  owned_ = false;
  if (p == "/dev/stdout") {
    fd_ = STDOUT_FILENO;
  } else if (p == "/dev/stderr") {
    fd_ = STDERR_FILENO;
  } else {
    fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return unavailable("cannot open access log '" + p + "': " + std::strerror(errno));
    owned_ = true;
  }
  path_ = p;
  return okStatus();
}

void AccessLogWriter::write(const AccessLogEntry& e) {
  if (fd_ < 0) return;
  line_.clear();
  formatAccessLog(e, &line_);
  const char* p = line_.data();
  size_t left = line_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // a full disk or closed pipe must not stop traffic
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace mesh::proxy
