// Collects every config error at once, each with its field path and, for files, the line, so a
// user fixes a file in one pass: "proxy.yaml:12: clusters[0].lbPolicy: unknown value 'RR'".
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace mesh {

struct ValidationError {
  std::string file;  // empty when the config did not come from a file
  int line = 0;      // 1-based; 0 = unknown
  std::string path;  // field path, e.g. "listeners[0].address"
  std::string message;

  std::string toString() const;
};

class ValidationErrors {
 public:
  void add(std::string file, int line, std::string path, std::string message) {
    errors_.push_back({std::move(file), line, std::move(path), std::move(message)});
  }
  void add(ValidationError e) { errors_.push_back(std::move(e)); }
  void append(const ValidationErrors& other) {
    errors_.insert(errors_.end(), other.errors_.begin(), other.errors_.end());
  }
  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  const std::vector<ValidationError>& errors() const { return errors_; }

  // One line per error; OK when empty.
  Status toStatus() const;
  std::string toString() const;

 private:
  std::vector<ValidationError> errors_;
};

}  // namespace mesh
