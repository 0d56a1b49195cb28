// A JSON access log, one object per request per line, with the fields of Istio's JSON access
// log format. Off by default. Each worker writes whole lines with one write(2) on an O_APPEND
// descriptor, so lines from different workers never interleave.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace mesh::proxy {

struct AccessLogEntry {
  std::chrono::system_clock::time_point start_time;
  std::string_view method;
  std::string_view path;
  std::string_view protocol;
  uint16_t response_code = 0;
  uint32_t response_flags = 0;
  std::string_view response_code_details;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  int64_t duration_ms = 0;
  int64_t upstream_service_time_ms = -1;  // -1: no upstream response
  std::string_view x_forwarded_for;
  std::string_view user_agent;
  std::string_view request_id;
  std::string_view authority;
  std::string_view upstream_host;
  std::string_view upstream_cluster;
  std::string_view downstream_local_address;
  std::string_view downstream_remote_address;
  std::string_view route_name;
  std::string_view traceparent;
  // The gRPC status of a gRPC request (Envoy's %GRPC_STATUS_NUMBER%); -1: not gRPC (null).
  int64_t grpc_status = -1;
};

// Appends the JSON line (with '\n') for an entry.
void formatAccessLog(const AccessLogEntry& e, std::string* out);

class AccessLogWriter {
 public:
  AccessLogWriter() = default;
  ~AccessLogWriter();
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  // Opens (or reopens, when the path changed) the destination.
  Status open(const std::string& path);
  bool isOpen() const { return fd_ >= 0; }
  void write(const AccessLogEntry& e);

 private:
  int fd_ = -1;
  bool owned_ = false;
  std::string path_;
  std::string line_;
};

}  // namespace mesh::proxy
