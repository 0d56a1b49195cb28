#include "core/validation_errors.h"

namespace mesh {

std::string ValidationError::toString() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    out += ':';
    if (line > 0) {
      out += std::to_string(line);
      out += ':';
    }
    out += ' ';
  } else if (line > 0) {
    out += "line " + std::to_string(line) + ": ";
  }
  if (!path.empty()) {
    out += path;
    out += ": ";
  }
  out += message;
  return out;
}

std::string ValidationErrors::toString() const {
  std::string out;
  for (const auto& e : errors_) {
    if (!out.empty()) out += '\n';
    out += e.toString();
  }
  return out;
}

Status ValidationErrors::toStatus() const {
  if (errors_.empty()) return okStatus();
  return invalidArgument(toString());
}

}  // namespace mesh
