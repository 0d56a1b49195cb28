#include "pilot/server/config_directory.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "config/validation.h"

namespace mesh::pilot::server {

namespace fs = std::filesystem;

namespace {

// loadConfigStream reports YAML syntax errors as "file:line: message" text with no file set;
// give them their file and line so that /debug/configz can show them like any other error.
void appendWithFile(const ValidationErrors& from, const std::string& file, ValidationErrors* to) {
  for (ValidationError e : from.errors()) {
    if (e.file.empty()) {
      e.file = file;
      const std::string prefix = file + ":";
      if (e.message.compare(0, prefix.size(), prefix) == 0) {
        std::string rest = e.message.substr(prefix.size());
        size_t colon = rest.find(':');
        int line = 0;
        bool digits = colon != std::string::npos && colon > 0;
        for (size_t i = 0; digits && i < colon; ++i) {
          if (rest[i] < '0' || rest[i] > '9' || line > 10'000'000)
            digits = false;
          else
            line = line * 10 + (rest[i] - '0');
        }
        if (digits) {
          e.line = line;
          size_t start = rest.find_first_not_of(' ', colon + 1);
          e.message = start == std::string::npos ? "" : rest.substr(start);
        }
      }
    }
    to->add(std::move(e));
  }
}

}  // namespace

bool isConfigFileName(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  auto endsWith = [&](std::string_view suffix) {
    return name.size() > suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return endsWith(".yaml") || endsWith(".yml") || endsWith(".json");
}

DirectoryConfig loadConfigDirectory(const std::string& dir) {
  return ConfigDirectoryLoader({dir}).load();
}

DirectoryConfig loadConfigDirectories(const std::vector<std::string>& dirs) {
  return ConfigDirectoryLoader(dirs).load();
}

DirectoryConfig ConfigDirectoryLoader::load() {
  DirectoryConfig out;
  last_parsed_ = 0;
  for (const std::string& dir : dirs_) {
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      out.errors.add(dir, 0, "", "cannot read config directory: " + ec.message());
      return out;
    }
    std::vector<std::string> files;
    for (const auto& entry : it) {
      std::error_code type_ec;
      if (!entry.is_regular_file(type_ec)) continue;
      std::string name = entry.path().filename().string();
      if (isConfigFileName(name)) files.push_back(entry.path().string());
    }
    std::sort(files.begin(), files.end());
    out.files.insert(out.files.end(), files.begin(), files.end());
  }

  std::map<std::string, ParsedFile> files;
  for (const std::string& path : out.files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      out.errors.add(path, 0, "", "cannot read file");
      continue;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    ParsedFile parsed;
    auto old = files_.find(path);
    if (old != files_.end() && old->second.text == text) {
      parsed = std::move(old->second);
    } else {
      ++last_parsed_;
      parsed.text = std::move(text);
      config::LoadedConfig loaded = config::loadConfigStream(parsed.text, path);
      appendWithFile(loaded.errors, path, &parsed.errors);
      parsed.resources = std::move(loaded.resources);
      config::LoadedKubernetes kube = config::loadKubernetesStream(parsed.text, path);
      // A YAML syntax error is reported by both loaders: keep it once.
      if (loaded.errors.empty()) appendWithFile(kube.errors, path, &parsed.errors);
      parsed.kube_objects = std::move(kube.objects);
    }
    out.errors.append(parsed.errors);
    out.resources.insert(out.resources.end(), parsed.resources.begin(), parsed.resources.end());
    out.kube_objects.insert(out.kube_objects.end(), parsed.kube_objects.begin(),
                            parsed.kube_objects.end());
    files.emplace(path, std::move(parsed));
  }
  files_ = std::move(files);
  std::vector<config::ValidationReport> reports = config::validateResources(out.resources);
  for (const auto& report : reports) out.errors.append(report.errors);
  return out;
}

}  // namespace mesh::pilot::server
