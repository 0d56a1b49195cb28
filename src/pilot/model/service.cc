#include "pilot/model/service.h"

#include <algorithm>
#include <cctype>

namespace mesh::pilot::model {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Protocol parseProtocol(std::string_view name) {
  const std::string p = lower(name);
  if (p == "http") return Protocol::kHttp;
  if (p == "http2" || p == "kubernetes.io/h2c") return Protocol::kHttp2;
  if (p == "grpc" || p == "grpc-web") return Protocol::kGrpc;
  if (p == "tcp") return Protocol::kTcp;
  if (p == "tls") return Protocol::kTls;
  if (p == "https") return Protocol::kHttps;
  return Protocol::kUnknown;
}

Protocol protocolFromPortName(std::string_view port_name) {
  const std::string n = lower(port_name);
  // "grpc-web" is a protocol of its own before the suffix rule applies.
  if (n == "grpc-web" || n.starts_with("grpc-web-")) return Protocol::kGrpc;
  return parseProtocol(std::string_view(n).substr(0, n.find('-')));
}

Protocol resolveProtocol(std::string_view protocol, std::string_view port_name) {
  if (!protocol.empty()) return parseProtocol(protocol);
  return protocolFromPortName(port_name);
}

std::string_view protocolName(Protocol p) {
  switch (p) {
    case Protocol::kHttp:
      return "HTTP";
    case Protocol::kHttp2:
      return "HTTP2";
    case Protocol::kGrpc:
      return "GRPC";
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kTls:
      return "TLS";
    case Protocol::kHttps:
      return "HTTPS";
    case Protocol::kUnknown:
      break;
  }
  return "UNKNOWN";
}

bool isHttp(Protocol p) {
  return p == Protocol::kHttp || p == Protocol::kHttp2 || p == Protocol::kGrpc ||
         p == Protocol::kUnknown;
}

const ServicePort* Service::port(uint32_t number) const {
  for (const ServicePort& p : ports) {
    if (p.number == number) return &p;
  }
  return nullptr;
}

bool Service::visibleFrom(std::string_view proxy_namespace) const {
  if (export_to.empty()) return true;
  return std::any_of(export_to.begin(), export_to.end(), [&](const std::string& e) {
    return e == "*" || (e == "." && namespace_name == proxy_namespace) || e == proxy_namespace;
  });
}

uint32_t Endpoint::portFor(const ServicePort& sp) const {
  auto it = ports.find(sp.name);
  if (it != ports.end() && it->second != 0) return it->second;
  return sp.target_port != 0 ? sp.target_port : sp.number;
}

bool labelsMatch(const std::map<std::string, std::string>& selector,
                 const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace mesh::pilot::model
