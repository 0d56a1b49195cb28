#include "core/proxy_id.h"

namespace mesh {

std::string podNameFromProxyId(std::string_view id, std::string_view namespace_name) {
  size_t a = id.find('~');
  size_t b = a == std::string_view::npos ? a : id.find('~', a + 1);
  size_t c = b == std::string_view::npos ? b : id.find('~', b + 1);
  if (c == std::string_view::npos) return "";
  std::string_view pod = id.substr(b + 1, c - b - 1);
  if (!namespace_name.empty() && pod.size() > namespace_name.size() + 1 &&
      pod.ends_with(namespace_name) && pod[pod.size() - namespace_name.size() - 1] == '.') {
    pod.remove_suffix(namespace_name.size() + 1);
  }
  return std::string(pod);
}

}  // namespace mesh
