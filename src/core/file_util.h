// Small file helpers shared by the binaries (port files, state files, generated config).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace mesh {

// Writes `content` to a sibling temporary file and renames it over `path`, so that a reader
// (inotify watchers, tests, scripts) sees the old content or the new, never a part.
Status writeFileAtomic(const std::string& path, std::string_view content);

}  // namespace mesh
