#include "proxy/router/route_table.h"

#include <re2/re2.h>

#include <algorithm>

#include "core/random.h"

namespace mesh::proxy {
namespace {

bool startsWithIgnoreCase(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i) {
    if (http::toLowerAscii(s[i]) != lower_prefix[i]) return false;
  }
  return true;
}

bool endsWithIgnoreCase(std::string_view s, std::string_view lower_suffix) {
  if (s.size() < lower_suffix.size()) return false;
  return startsWithIgnoreCase(s.substr(s.size() - lower_suffix.size()), lower_suffix);
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = http::toLowerAscii(c);
  return out;
}

// Value of a query parameter (raw, not percent-decoded); nullopt when absent.
std::optional<std::string_view> queryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    if (key == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace

StringMatch::StringMatch() = default;
StringMatch::StringMatch(StringMatch&&) noexcept = default;
StringMatch& StringMatch::operator=(StringMatch&&) noexcept = default;
StringMatch::~StringMatch() = default;

std::optional<StringMatch> StringMatch::create(Kind kind, std::string value, bool ignore_case,
                                               std::string* error) {
  StringMatch m;
  m.kind_ = kind;
  m.ignore_case_ = ignore_case && kind != Kind::kRegex;
  if (kind == Kind::kRegex) {
    RE2::Options opts;
    opts.set_log_errors(false);
    m.regex_ = std::make_unique<RE2>(value, opts);
    if (!m.regex_->ok()) {
      *error = "invalid regex '" + value + "': " + m.regex_->error();
      return std::nullopt;
    }
  }
  m.value_ = m.ignore_case_ ? toLower(value) : std::move(value);
  return m;
}

bool StringMatch::matches(std::string_view v) const {
  switch (kind_) {
    case Kind::kExact:
      return ignore_case_ ? http::equalsIgnoreCase(v, value_) : v == value_;
    case Kind::kPrefix:
      return ignore_case_ ? startsWithIgnoreCase(v, value_) : v.starts_with(value_);
    case Kind::kSuffix:
      return ignore_case_ ? endsWithIgnoreCase(v, value_) : v.ends_with(value_);
    case Kind::kRegex:
      return RE2::FullMatch(re2::StringPiece(v.data(), v.size()), *regex_);
  }
  return false;
}

bool HeaderOps::drops(std::string_view name) const {
  for (const auto& [n, v] : set) {
    if (http::equalsIgnoreCase(n, name)) return true;
  }
  for (const auto& n : remove) {
    if (http::equalsIgnoreCase(n, name)) return true;
  }
  return false;
}

bool RetryPolicy::retriableStatus(uint16_t status) const {
  if ((retry_on & kRetry5xx) && status >= 500) return true;
  if ((retry_on & kRetryGatewayError) && (status == 502 || status == 503 || status == 504)) {
    return true;
  }
  if ((retry_on & kRetryRetriable4xx) && status == 409) return true;
  if (retry_on & kRetryRetriableStatusCodes) {
    return std::find(status_codes.begin(), status_codes.end(), status) != status_codes.end();
  }
  return false;
}

bool RetryPolicy::retriableGrpcStatus(uint32_t grpc_status) const {
  switch (grpc_status) {
    case 1:
      return (retry_on & kRetryGrpcCancelled) != 0;
    case 4:
      return (retry_on & kRetryGrpcDeadlineExceeded) != 0;
    case 8:
      return (retry_on & kRetryGrpcResourceExhausted) != 0;
    case 13:
      return (retry_on & kRetryGrpcInternal) != 0;
    case 14:
      return (retry_on & kRetryGrpcUnavailable) != 0;
    default:
      return false;
  }
}

Millis RetryPolicy::backoff(uint32_t retry, uint64_t random) const {
  // Envoy: uniformly random in [0, (2^(n) - 1) * base], capped at max.
  uint64_t base = static_cast<uint64_t>(base_interval.count());
  uint64_t cap = static_cast<uint64_t>(max_interval.count());
  uint32_t shift = retry > 20 ? 20 : retry;
  uint64_t ceiling = ((uint64_t{1} << shift) - 1) * base;
  if (ceiling > cap) ceiling = cap;
  if (ceiling == 0) return Millis(0);
  return Millis(static_cast<int64_t>(random % (ceiling + 1)));
}

void parseRetryOn(std::string_view text, RetryPolicy* policy, std::vector<std::string>* unknown) {
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view tok = text.substr(0, comma);
    while (!tok.empty() && tok.front() == ' ') tok.remove_prefix(1);
    while (!tok.empty() && tok.back() == ' ') tok.remove_suffix(1);
    if (!tok.empty()) {
      if (tok == "5xx") {
        policy->retry_on |= kRetry5xx;
      } else if (tok == "gateway-error") {
        policy->retry_on |= kRetryGatewayError;
      } else if (tok == "connect-failure") {
        policy->retry_on |= kRetryConnectFailure;
      } else if (tok == "reset" || tok == "reset-before-request") {
        policy->retry_on |= kRetryReset;
      } else if (tok == "retriable-status-codes") {
        policy->retry_on |= kRetryRetriableStatusCodes;
      } else if (tok == "retriable-4xx") {
        policy->retry_on |= kRetryRetriable4xx;
      } else if (tok == "refused-stream") {
        policy->retry_on |= kRetryRefusedStream;
      } else if (tok == "cancelled") {
        policy->retry_on |= kRetryGrpcCancelled;
      } else if (tok == "deadline-exceeded") {
        policy->retry_on |= kRetryGrpcDeadlineExceeded;
      } else if (tok == "resource-exhausted") {
        policy->retry_on |= kRetryGrpcResourceExhausted;
      } else if (tok == "internal") {
        policy->retry_on |= kRetryGrpcInternal;
      } else if (tok == "unavailable") {
        policy->retry_on |= kRetryGrpcUnavailable;
      } else if (tok == "envoy-ratelimited" || tok == "retriable-headers") {
        // Accepted (valid in Istio); no rate-limit service or retriable headers here.
      } else if (tok.size() == 3 && tok[0] >= '1' && tok[0] <= '5' && tok[1] >= '0' &&
                 tok[1] <= '9' && tok[2] >= '0' && tok[2] <= '9') {
        // Istio accepts bare status codes in retryOn.
        policy->retry_on |= kRetryRetriableStatusCodes;
        policy->status_codes.push_back(
            static_cast<uint16_t>((tok[0] - '0') * 100 + (tok[1] - '0') * 10 + (tok[2] - '0')));
      } else {
        unknown->emplace_back(tok);
      }
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
}

Route::Route() = default;
Route::Route(Route&&) noexcept = default;
Route::~Route() = default;

bool Route::matches(const http::RequestHead& req) const {
  switch (path_kind) {
    case PathKind::kAny:
      break;
    case PathKind::kPrefix:
      if (ignore_case ? !startsWithIgnoreCase(req.path, path) : !req.path.starts_with(path)) {
        return false;
      }
      break;
    case PathKind::kExact:
      if (ignore_case ? !http::equalsIgnoreCase(req.path, path) : req.path != path) return false;
      break;
    case PathKind::kRegex:
      if (!RE2::FullMatch(re2::StringPiece(req.path.data(), req.path.size()), *path_regex)) {
        return false;
      }
      break;
  }
  if (method && !method->matches(req.method)) return false;
  for (const auto& hm : headers) {
    std::string_view value;
    bool present;
    if (hm.name[0] == ':') {
      present = true;
      if (hm.name == ":authority") {
        value = req.host;
      } else if (hm.name == ":method") {
        value = req.method;
      } else if (hm.name == ":path") {
        value = req.target;
      } else if (hm.name == ":scheme") {
        value = "http";
      } else {
        present = false;
      }
    } else {
      const http::Header* h = req.headers.find(hm.name);
      present = h != nullptr;
      if (present) value = h->value;
    }
    bool ok = hm.presence_only ? present : (present && hm.value.matches(value));
    if (ok == hm.invert) return false;
  }
  for (const auto& qm : query) {
    auto v = queryParam(req.query, qm.name);
    if (!v) return false;
    if (!qm.presence_only && !qm.value.matches(*v)) return false;
  }
  return true;
}

size_t pickWeighted(const std::vector<WeightedTarget>& targets, uint64_t total_weight,
                    Random& random) {
  size_t pick = 0;
  if (targets.size() > 1) {
    uint64_t r = random.uniform(total_weight);
    while (pick + 1 < targets.size() && r >= targets[pick].weight) {
      r -= targets[pick].weight;
      ++pick;
    }
  }
  return pick;
}

bool Route::rewritePath(const http::RequestHead& req, std::string* out) const {
  if (prefix_rewrite && path_kind != PathKind::kRegex) {
    out->assign(*prefix_rewrite);
    std::string_view rest = req.path.substr(std::min(path.size(), req.path.size()));
    // Avoid "//" when both the rewrite ends and the rest starts with a slash.
    if (!out->empty() && out->back() == '/' && !rest.empty() && rest.front() == '/') {
      rest.remove_prefix(1);
    }
    out->append(rest);
    if (out->empty()) out->push_back('/');
  } else if (regex_rewrite) {
    std::string p(req.path);
    RE2::GlobalReplace(&p, *regex_rewrite, regex_substitution);
    *out = std::move(p);
  } else {
    return false;
  }
  if (!req.query.empty()) {
    out->push_back('?');
    out->append(req.query);
  }
  return true;
}

std::string Route::redirectLocation(const http::RequestHead& req, bool tls) const {
  std::string scheme = redirect_scheme.empty() ? (tls ? "https" : "http") : redirect_scheme;
  std::string host;
  std::string scratch;
  std::string_view authority = req.host;
  if (!redirect_host.empty()) {
    host = redirect_host;
  } else {
    host = std::string(authorityHost(authority, &scratch));
  }
  std::string out = scheme + "://" + host;
  if (redirect_port != 0) {
    out += ':' + std::to_string(redirect_port);
  } else if (redirect_host.empty()) {
    // Keep the request's explicit port unless the scheme changes.
    size_t colon = authority.rfind(':');
    bool has_port =
        colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos;
    if (has_port && redirect_scheme.empty()) out += authority.substr(colon);
  }
  if (!redirect_path.empty()) {
    out += redirect_path;
  } else if (!redirect_prefix.empty() && path_kind == PathKind::kPrefix) {
    out += redirect_prefix;
    out += req.path.substr(std::min(path.size(), req.path.size()));
  } else {
    out += req.path;
  }
  if (!strip_query && !req.query.empty()) {
    out += '?';
    out += req.query;
  }
  return out;
}

std::string_view authorityHost(std::string_view authority, std::string* scratch) {
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) host = host.substr(0, colon);
  }
  for (char c : host) {
    if (c >= 'A' && c <= 'Z') {
      *scratch = toLower(host);
      return *scratch;
    }
  }
  return host;
}

std::optional<std::string> RouteTable::addVirtualHost(VirtualHost vh) {
  auto owned = std::make_unique<VirtualHost>(std::move(vh));
  const VirtualHost* p = owned.get();
  for (const std::string& raw : p->domains) {
    std::string d = toLower(raw);
    // A domain may carry a port ("reviews:9080"); routing ignores ports, so strip it.
    std::string scratch;
    if (d != "*" && d.find(':') != std::string::npos && d.front() != '[') {
      d = std::string(authorityHost(d, &scratch));
    }
    if (d == "*") {
      if (default_ != nullptr) return raw;
      default_ = p;
    } else if (d.starts_with("*")) {
      std::string suffix = d.substr(1);
      for (const auto& [s, v] : suffixes_) {
        if (s == suffix) return raw;
      }
      suffixes_.emplace_back(suffix, p);
    } else if (d.ends_with("*")) {
      std::string prefix = d.substr(0, d.size() - 1);
      for (const auto& [s, v] : prefixes_) {
        if (s == prefix) return raw;
      }
      prefixes_.emplace_back(prefix, p);
    } else {
      if (!exact_.emplace(d, p).second) return raw;
    }
  }
  auto longer = [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); };
  std::stable_sort(suffixes_.begin(), suffixes_.end(), longer);
  std::stable_sort(prefixes_.begin(), prefixes_.end(), longer);
  vhosts_.push_back(std::move(owned));
  return std::nullopt;
}

const VirtualHost* RouteTable::findVirtualHost(std::string_view authority) const {
  std::string scratch;
  std::string_view host = authorityHost(authority, &scratch);
  if (!exact_.empty()) {
    auto it = exact_.find(host);
    if (it != exact_.end()) return it->second;
  }
  for (const auto& [suffix, vh] : suffixes_) {
    if (host.size() > suffix.size() && host.ends_with(suffix)) return vh;
  }
  for (const auto& [prefix, vh] : prefixes_) {
    if (host.size() > prefix.size() && host.starts_with(prefix)) return vh;
  }
  return default_;
}

const Route* RouteTable::findRoute(const http::RequestHead& req) const {
  const VirtualHost* vh = findVirtualHost(req.host);
  if (vh == nullptr) return nullptr;
  for (const Route& r : vh->routes) {
    if (r.matches(req)) return &r;
  }
  return nullptr;
}

}  // namespace mesh::proxy
