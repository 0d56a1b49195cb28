#include "config/host_name.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>

namespace mesh::config {
namespace {

bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// One RFC 1123 label: letters, digits and inner hyphens, 1..63 characters.
bool isDnsLabel(std::string_view l) {
  if (l.empty() || l.size() > 63) return false;
  if (!isAlnum(l.front()) || !isAlnum(l.back())) return false;
  for (char c : l) {
    if (!isAlnum(c) && c != '-') return false;
  }
  return true;
}

template <typename LabelFn>
bool allLabels(std::string_view s, LabelFn&& fn) {
  while (true) {
    const size_t dot = s.find('.');
    if (!fn(s.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    s.remove_prefix(dot + 1);
  }
}

}  // namespace

std::string expandShortHostName(std::string_view host, std::string_view namespace_name,
                                std::string_view domain_suffix) {
  if (host.empty() || host.find('.') != std::string_view::npos ||
      host.find('*') != std::string_view::npos || host.find(':') != std::string_view::npos) {
    return std::string(host);
  }
  std::string out(host);
  out += '.';
  out += namespace_name;
  out += ".svc.";
  out += domain_suffix;
  return out;
}

bool isDnsName(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // rooted name
  if (host.empty() || host.size() > 255) return false;
  return allLabels(host, isDnsLabel);
}

bool isWildcardDnsName(std::string_view host) {
  if (host == "*") return true;
  if (host.substr(0, 2) == "*.") host.remove_prefix(2);
  return isDnsName(host);
}

bool isDns1123Label(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return isDnsLabel(s);
}

bool isDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  return allLabels(s, isDns1123Label);
}

bool isIpAddress(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return false;
  const std::string str(s);
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, str.c_str(), buf) == 1 || inet_pton(AF_INET6, str.c_str(), buf) == 1;
}

bool isIpOrCidr(std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return isIpAddress(s);
  const std::string_view ip = s.substr(0, slash);
  const std::string_view bits = s.substr(slash + 1);
  if (!isIpAddress(ip) || bits.empty()) return false;
  int n = -1;
  const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), n);
  if (ec != std::errc() || end != bits.data() + bits.size()) return false;
  const int max = ip.find(':') == std::string_view::npos ? 32 : 128;
  return n >= 0 && n <= max;
}

bool isLabelValue(std::string_view s) {
  if (s.empty()) return true;
  if (s.size() > 63 || !isAlnum(s.front()) || !isAlnum(s.back())) return false;
  for (char c : s) {
    if (!isAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool isLabelKey(std::string_view s) {
  const size_t slash = s.find('/');
  std::string_view name = s;
  if (slash != std::string_view::npos) {
    if (!isDns1123Subdomain(s.substr(0, slash))) return false;
    name = s.substr(slash + 1);
  }
  return !name.empty() && isLabelValue(name);
}

bool isHeaderName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (isAlnum(c)) continue;
    switch (c) {
      case '!':
      case '#':
      case '$':
      case '%':
      case '&':
      case '\'':
      case '*':
      case '+':
      case '-':
      case '.':
      case '^':
      case '_':
      case '`':
      case '|':
      case '~':
        continue;
      default:
        return false;
    }
  }
  return true;
}

}  // namespace mesh::config
