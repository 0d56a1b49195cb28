// Fuzzes loading and validating Istio config streams (the text `istioctl validate` and pilot's
// file store read): any bytes must load and validate without crashing, and every problem must
// name the file it came from.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/resource.h"
#include "config/validation.h"
#include "core/status.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const mesh::config::LoadedConfig loaded = mesh::config::loadConfigStream(text, "f.yaml");
  for (const mesh::ValidationError& e : loaded.errors.errors()) {
    MESH_RELEASE_ASSERT(e.toString().rfind("f.yaml", 0) == 0, "error without its file");
  }
  const auto reports = mesh::config::validateResources(loaded.resources);
  MESH_RELEASE_ASSERT(reports.size() == loaded.resources.size(), "one report per resource");
  for (const auto& report : reports) {
    for (const mesh::ValidationError& e : report.errors.errors()) {
      MESH_RELEASE_ASSERT(e.file == "f.yaml" && e.line > 0, "error without file and line");
    }
  }
  return 0;
}
