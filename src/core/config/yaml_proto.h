// Loads YAML (and JSON, which is YAML) into any protobuf message through reflection, collecting
// every error with its file, line and field path ("proxy.yaml:7: clusters[0].connectTimeout: ..."),
// and records where each field was written so that later semantic checks can report lines too.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/validation_errors.h"

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace mesh::config {

// Line of each field path seen while loading: "listeners[0].address" -> 12 (1-based). Paths use
// the keys as written in the file; where a key was written as the proto name (snake_case), the
// path spelled with json_names (lowerCamelCase) is recorded as well, so code that builds paths
// from descriptors finds the line whichever spelling the user chose.
class SourceMap {
 public:
  void set(std::string path, int line);
  // 0 if unknown. If the exact path is unknown, the line of the longest known prefix path
  // ("a[0].b.c" -> "a[0].b" -> "a[0]" -> "a").
  int lineOf(std::string_view path) const;
  bool empty() const { return lines_.empty(); }
  size_t size() const { return lines_.size(); }

 private:
  std::map<std::string, int, std::less<>> lines_;
};

// Every member has an initializer so that designated initializers may name only some of them
// ({.file = "proxy.yaml"}) under -Wextra.
struct LoadOptions {
  std::string file{};                     // for messages: "proxy.yaml"
  bool unknown_fields_are_errors = true;  // false: reported as warnings
  std::string path_prefix{};              // prepended to every field path (e.g. "spec")
  // Line in `file` of the first line of the text, for a document cut out of a larger stream
  // (YamlDocument::first_line).
  int first_line = 1;
};

struct LoadResult {
  ValidationErrors errors;
  std::vector<ValidationError> warnings;
  SourceMap source_map;
  bool ok() const { return errors.empty(); }
};

// Parses text (a single YAML document) into *msg, which is cleared first. Collects every error,
// not just the first; when there are errors, *msg holds whatever could be loaded and must not be
// used. Empty text (or only comments) loads an empty message.
LoadResult loadYaml(std::string_view text, google::protobuf::Message* msg, const LoadOptions& opts);
// opts.file defaults to path; an unreadable file is one error.
LoadResult loadYamlFile(const std::string& path, google::protobuf::Message* msg, LoadOptions opts);

// One document of a multi-document stream. `text` starts with the document's own "---" line
// when it has one; `first_line` is the line of that first line in the stream (1-based).
struct YamlDocument {
  std::string text;
  int first_line;
};

// Splits a YAML stream at its "---" / "..." markers into documents, dropping empty ones (only
// comments or blank lines), so that a config store can load each with correct line numbers
// (pass first_line in LoadOptions). Every document is parsed once: unparsable YAML is
// INVALID_ARGUMENT with one "file:line: message" line per broken document.
StatusOr<std::vector<YamlDocument>> splitYamlDocuments(std::string_view text,
                                                       const std::string& file);

// The message as JSON with json_name keys, for /config_dump. If the message cannot be
// represented in JSON, returns {"error": "..."} instead.
std::string toJson(const google::protobuf::Message& msg, bool pretty);

}  // namespace mesh::config
