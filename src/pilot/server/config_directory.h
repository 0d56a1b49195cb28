// Pilot's file config store: every *.yaml, *.yml and *.json of one directory loaded as Istio
// networking resources plus the Kubernetes Service/Endpoints/Pod objects that feed the registry,
// and validated as a whole. A load either yields a usable config or the full list of errors.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/kubernetes.h"
#include "config/resource.h"
#include "core/validation_errors.h"

namespace mesh::pilot::server {

struct DirectoryConfig {
  std::vector<std::string> files;  // the files read, sorted by name
  std::vector<config::Resource> resources;
  std::vector<config::KubernetesObject> kube_objects;
  // Every load and validation error of every file; the config is usable only when empty.
  ValidationErrors errors;
  bool ok() const { return errors.empty(); }
};

// Reads the directory (not recursively; hidden files skipped). A missing directory is an error.
DirectoryConfig loadConfigDirectory(const std::string& dir);
// Several directories read as one config, in order (files sorted within each).
DirectoryConfig loadConfigDirectories(const std::vector<std::string>& dirs);

// Loads directories again and again (pilot's reloads), parsing again only the files whose
// content changed since the previous load: a change usually touches one file of many, and YAML
// parsing is most of a reload. The result equals loadConfigDirectories'. Not thread-safe.
class ConfigDirectoryLoader {
 public:
  explicit ConfigDirectoryLoader(std::vector<std::string> dirs) : dirs_(std::move(dirs)) {}
  DirectoryConfig load();
  // Files parsed by the last load (the others came from the previous one).
  size_t lastParsed() const { return last_parsed_; }

 private:
  struct ParsedFile {
    std::string text;
    std::vector<config::Resource> resources;
    std::vector<config::KubernetesObject> kube_objects;
    ValidationErrors errors;
  };
  const std::vector<std::string> dirs_;
  std::map<std::string, ParsedFile> files_;  // by path, as of the last load
  size_t last_parsed_ = 0;
};

// True for the names loadConfigDirectory reads.
bool isConfigFileName(const std::string& name);

}  // namespace mesh::pilot::server
