// Compiled routing: virtual hosts by authority, then the first matching route. Built once per
// config snapshot on the main thread and shared read-only by every worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/http/http1_parser.h"

namespace re2 {
class RE2;
}

namespace mesh {
class Random;
}  // namespace mesh

namespace mesh::proxy {

using Millis = std::chrono::milliseconds;

// Hash for heterogeneous (string_view) lookup in string-keyed maps: no allocation per lookup.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class StringMatch {
 public:
  enum class Kind : uint8_t { kExact, kPrefix, kSuffix, kRegex };
  StringMatch();
  StringMatch(StringMatch&&) noexcept;
  StringMatch& operator=(StringMatch&&) noexcept;
  ~StringMatch();

  // Builds a matcher; on a bad regex returns nullopt and sets *error.
  static std::optional<StringMatch> create(Kind kind, std::string value, bool ignore_case,
                                           std::string* error);
  bool matches(std::string_view v) const;
  Kind kind() const { return kind_; }
  const std::string& value() const { return value_; }

 private:
  Kind kind_ = Kind::kExact;
  bool ignore_case_ = false;
  std::string value_;
  std::unique_ptr<re2::RE2> regex_;
};

struct HeaderMatch {
  std::string name;  // lowercase; ":authority", ":method", ":path" address the request line
  bool presence_only = false;
  bool invert = false;
  StringMatch value;
};

struct QueryMatch {
  std::string name;
  bool presence_only = false;
  StringMatch value;
};

struct HeaderOps {
  std::vector<std::pair<std::string, std::string>> set;  // names lowercase
  std::vector<std::pair<std::string, std::string>> add;
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
  // Whether a header of this name is replaced or removed by these ops.
  bool drops(std::string_view name) const;
};

// Retry conditions (Envoy's x-envoy-retry-on names; Istio's retryOn).
enum RetryOn : uint32_t {
  kRetry5xx = 1 << 0,
  kRetryGatewayError = 1 << 1,
  kRetryConnectFailure = 1 << 2,
  kRetryReset = 1 << 3,
  kRetryRetriableStatusCodes = 1 << 4,
  kRetryRetriable4xx = 1 << 5,
  kRetryRefusedStream = 1 << 6,
  // gRPC: the response's grpc-status (in the headers of a trailers-only response, as Envoy).
  kRetryGrpcCancelled = 1 << 7,          // 1
  kRetryGrpcDeadlineExceeded = 1 << 8,   // 4
  kRetryGrpcResourceExhausted = 1 << 9,  // 8
  kRetryGrpcInternal = 1 << 10,          // 13
  kRetryGrpcUnavailable = 1 << 11,       // 14
};

struct RetryPolicy {
  uint32_t num_retries = 0;
  uint32_t retry_on = 0;
  std::vector<uint16_t> status_codes;
  Millis per_try_timeout{0};  // 0 = none
  Millis base_interval{25};
  Millis max_interval{250};
  uint32_t max_replay_body_bytes = 64 * 1024;

  bool retriableStatus(uint16_t status) const;
  // Whether a gRPC status (from a response's headers) is one the policy retries.
  bool retriableGrpcStatus(uint32_t grpc_status) const;
  // Fully jittered exponential backoff before retry number `retry` (1-based).
  Millis backoff(uint32_t retry, uint64_t random) const;
};

// Parses Istio/Envoy retryOn text into a policy's conditions; unknown tokens go to *unknown.
void parseRetryOn(std::string_view text, RetryPolicy* policy, std::vector<std::string>* unknown);

struct HashPolicy {
  enum class Kind : uint8_t { kHeader, kCookie, kSourceIp };
  Kind kind = Kind::kHeader;
  std::string name;
  Millis cookie_ttl{0};
  bool generate_cookie = false;
  std::string cookie_path;
};

// Fault injection on a route; fractions are per million requests.
struct FaultPolicy {
  Millis delay{0};
  uint32_t delay_per_million = 0;
  uint16_t abort_status = 0;  // 0: no abort; with abort_grpc_status, 200
  // Istio's abort.grpcStatus: the reply is a gRPC one (HTTP 200, grpc-status) with this code.
  std::optional<uint32_t> abort_grpc_status;
  uint32_t abort_per_million = 0;
};

struct CorsPolicy {
  std::vector<StringMatch> allow_origins;
  // Pre-formatted header lines for a matching request: preflight answers, and responses.
  std::string preflight_headers;  // allow-methods, -headers, -max-age, -credentials
  std::string response_headers;   // expose-headers, -credentials
  bool allowsOrigin(std::string_view origin) const {
    for (const auto& m : allow_origins) {
      if (m.matches(origin)) return true;
    }
    return false;
  }
};

struct MirrorPolicy {
  uint32_t cluster = 0;  // index into Snapshot::clusters
  uint32_t per_million = 1000000;
};

struct WeightedTarget {
  uint32_t cluster = 0;  // index into Snapshot::clusters
  uint32_t weight = 1;
  std::string cluster_name;
  HeaderOps request_ops;
  HeaderOps response_ops;
};

// Index of a target picked at random in proportion to the weights (which sum to total_weight);
// 0 when there is only one.
size_t pickWeighted(const std::vector<WeightedTarget>& targets, uint64_t total_weight,
                    Random& random);

struct Route {
  enum class PathKind : uint8_t { kAny, kPrefix, kExact, kRegex };
  enum class Action : uint8_t { kCluster, kRedirect, kDirectResponse };

  std::string name;
  PathKind path_kind = PathKind::kAny;
  std::string path;  // lowercased when ignore_case
  bool ignore_case = false;
  std::unique_ptr<re2::RE2> path_regex;
  std::vector<HeaderMatch> headers;
  std::vector<QueryMatch> query;
  std::optional<StringMatch> method;

  Action action = Action::kCluster;
  std::vector<WeightedTarget> targets;
  uint64_t total_weight = 0;
  std::optional<std::string> prefix_rewrite;
  std::unique_ptr<re2::RE2> regex_rewrite;
  std::string regex_substitution;
  std::string host_rewrite;
  Millis timeout{0};
  std::optional<RetryPolicy> retry;
  std::vector<HashPolicy> hash_policies;
  std::optional<FaultPolicy> fault;
  std::vector<MirrorPolicy> mirrors;
  std::optional<CorsPolicy> cors;
  HeaderOps request_ops;
  HeaderOps response_ops;

  // Redirect.
  std::string redirect_scheme, redirect_host, redirect_path, redirect_prefix;
  uint32_t redirect_port = 0;
  uint16_t redirect_code = 301;
  bool strip_query = false;
  // Direct response.
  uint16_t direct_status = 200;
  std::string direct_body;

  Route();
  Route(Route&&) noexcept;
  ~Route();

  bool matches(const http::RequestHead& req) const;
  // The upstream path (and query) after prefix/regex rewrite; returns false when unchanged.
  bool rewritePath(const http::RequestHead& req, std::string* out) const;
  // Location for a redirect.
  std::string redirectLocation(const http::RequestHead& req, bool tls) const;
};

struct VirtualHost {
  std::string name;
  std::vector<std::string> domains;
  std::vector<Route> routes;
};

class RouteTable {
 public:
  explicit RouteTable(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }

  // Adds a virtual host; returns a domain already claimed by another virtual host, if any.
  std::optional<std::string> addVirtualHost(VirtualHost vh);

  // The most specific virtual host for an authority (port ignored, case-insensitive).
  const VirtualHost* findVirtualHost(std::string_view authority) const;
  // First matching route of the virtual host for the request's authority.
  const Route* findRoute(const http::RequestHead& req) const;
  const std::vector<std::unique_ptr<VirtualHost>>& virtualHosts() const { return vhosts_; }

 private:
  std::string name_;
  std::vector<std::unique_ptr<VirtualHost>> vhosts_;
  std::unordered_map<std::string, const VirtualHost*, StringViewHash, std::equal_to<>> exact_;
  std::vector<std::pair<std::string, const VirtualHost*>> suffixes_;  // "*.x.com" -> ".x.com"
  std::vector<std::pair<std::string, const VirtualHost*>> prefixes_;  // "x.*" -> "x."
  const VirtualHost* default_ = nullptr;
};

// "Host:port" -> "host" (lowercase into *scratch only when needed).
std::string_view authorityHost(std::string_view authority, std::string* scratch);

}  // namespace mesh::proxy
