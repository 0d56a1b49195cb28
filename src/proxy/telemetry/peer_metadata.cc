#include "proxy/telemetry/peer_metadata.h"

#include <google/protobuf/struct.pb.h>

#include <array>

namespace mesh::proxy {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string stringField(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  if (it == s.fields().end() || !it->second.has_string_value()) return "";
  return it->second.string_value();
}

}  // namespace

std::string base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v =
        (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view in) {
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int8_t v = table[static_cast<uint8_t>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string encodePeerMetadata(const std::string& pod_name, const std::string& workload_name,
                               const std::string& namespace_name,
                               const std::map<std::string, std::string>& labels,
                               const std::string& service_account, const std::string& cluster_id) {
  google::protobuf::Struct s;
  auto& f = *s.mutable_fields();
  f["NAME"].set_string_value(pod_name);
  f["NAMESPACE"].set_string_value(namespace_name);
  f["WORKLOAD_NAME"].set_string_value(workload_name);
  f["CLUSTER_ID"].set_string_value(cluster_id);
  f["SERVICE_ACCOUNT"].set_string_value(service_account);
  auto& l = *f["LABELS"].mutable_struct_value()->mutable_fields();
  for (const auto& [k, v] : labels) l[k].set_string_value(v);
  std::string bytes;
  s.SerializeToString(&bytes);
  return base64Encode(bytes);
}

std::optional<WorkloadLabels> decodePeerMetadata(std::string_view value,
                                                 const std::string& principal) {
  if (value.empty() || value.size() > kMaxPeerMetadataBytes) return std::nullopt;
  auto bytes = base64Decode(value);
  if (!bytes) return std::nullopt;
  google::protobuf::Struct s;
  if (!s.ParseFromString(*bytes)) return std::nullopt;
  WorkloadLabels w;
  w.name = stringField(s, "WORKLOAD_NAME");
  w.namespace_ = stringField(s, "NAMESPACE");
  if (w.name.empty() || w.namespace_.empty()) return std::nullopt;
  std::map<std::string, std::string> labels;
  auto lit = s.fields().find("LABELS");
  if (lit != s.fields().end() && lit->second.has_struct_value()) {
    for (const auto& [k, v] : lit->second.struct_value().fields()) {
      if (v.has_string_value()) labels[k] = v.string_value();
    }
  }
  w = workloadFromLabels(w.name, w.namespace_, labels, stringField(s, "SERVICE_ACCOUNT"),
                         "cluster.local", stringField(s, "CLUSTER_ID"));
  // What identifies the peer is the certificate, not what it says of itself.
  w.principal = principal.empty() ? "unknown" : principal;
  return w;
}

uint32_t IstioTelemetry::WorkerCache::peerFromMetadata(std::string_view header,
                                                       const std::string& principal) {
  std::string key = principal;
  key += '|';
  key += header;
  auto it = metadata_peers_.find(key);
  if (it != metadata_peers_.end()) return it->second;
  if (metadata_peers_.size() >= kMaxPeers) return 0;
  auto w = decodePeerMetadata(header, principal);
  uint32_t id = w ? telemetry_.internWorkload(*w) : 0;
  metadata_peers_.emplace(std::move(key), id);
  return id;
}

}  // namespace mesh::proxy
