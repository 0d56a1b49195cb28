#include "istioctl/validate.h"

#include <algorithm>

#include "config/resource.h"
#include "config/validation.h"

namespace mesh::istioctl {

int runValidate(const std::vector<std::string>& files, std::ostream& out, std::ostream& err) {
  size_t errors = 0;
  size_t invalid_files = 0;
  for (const std::string& file : files) {
    config::LoadedConfig loaded = config::loadConfigFile(file);
    const std::vector<config::ValidationReport> reports =
        config::validateResources(loaded.resources);
    // Errors, then warnings, each in file order.
    std::vector<ValidationError> file_errors = loaded.errors.errors();
    std::vector<ValidationError> warnings = loaded.warnings;
    for (const config::ValidationReport& r : reports) {
      file_errors.insert(file_errors.end(), r.errors.errors().begin(), r.errors.errors().end());
      warnings.insert(warnings.end(), r.warnings.begin(), r.warnings.end());
    }
    const auto by_line = [](const ValidationError& a, const ValidationError& b) {
      return a.line < b.line;
    };
    std::stable_sort(file_errors.begin(), file_errors.end(), by_line);
    std::stable_sort(warnings.begin(), warnings.end(), by_line);
    for (const ValidationError& e : file_errors) err << e.toString() << "\n";
    for (const ValidationError& w : warnings) err << "Warning: " << w.toString() << "\n";
    for (const std::string& note : loaded.notes) err << "Note: " << note << "\n";
    for (size_t i = 0; i < reports.size(); ++i) {
      if (reports[i].ok()) out << loaded.resources[i].displayName() << " is valid\n";
    }
    if (loaded.resources.empty() && loaded.errors.empty() && loaded.failed_objects == 0) {
      err << "Warning: " << file << ": no Istio networking objects found\n";
    }
    errors += file_errors.size();
    if (!file_errors.empty()) ++invalid_files;
  }
  if (errors > 0) {
    err << "Error: " << errors << (errors == 1 ? " error" : " errors") << " in " << invalid_files
        << (invalid_files == 1 ? " file" : " files") << "\n";
    return 1;
  }
  return 0;
}

std::string versionString() { return std::string("istioctl version ") + MESH_VERSION; }

}  // namespace mesh::istioctl
