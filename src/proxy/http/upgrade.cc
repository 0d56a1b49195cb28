#include "proxy/http/upgrade.h"

namespace mesh::proxy::upgrade {
namespace {

bool isH2c(std::string_view value) {
  // The Upgrade field is a list; h2c anywhere in it is refused as a whole.
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view tok = value.substr(0, comma);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (http::equalsIgnoreCase(tok, "h2c")) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

bool forwardable(const http::RequestHead& req, bool is_grpc) {
  if (!req.upgrade || is_grpc) return false;
  if (req.framing == http::BodyFraming::kChunked ||
      (req.framing == http::BodyFraming::kContentLength && req.content_length > 0)) {
    return false;
  }
  const http::Header* u = req.headers.find("upgrade");
  return u != nullptr && !u->value.empty() && !isH2c(u->value);
}

void appendUpgradeFields(std::string& out, const http::HeaderList& headers) {
  out.append("connection: upgrade\r\nupgrade: ");
  out.append(headers.get("upgrade"));
  out.append("\r\n");
}

}  // namespace mesh::proxy::upgrade
