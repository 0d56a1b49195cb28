// One logging facade for every binary. Loggers are named by area ("main", "http", "upstream",
// "admin", "config", "pilot", ...) so their levels can be changed at runtime (/logging).
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>
#include <vector>

namespace mesh::log {

// Returns the logger for an area, creating it at the default level on first use.
// Thread-safe; callers on hot paths should keep the returned reference.
spdlog::logger& get(std::string_view area);

// Sets the level of one area, or of all areas when area is empty. Returns false for an unknown
// level name. Levels: trace, debug, info, warning (warn), error, critical, off.
bool setLevel(std::string_view area, std::string_view level);
// "area: level" for every known area.
std::vector<std::pair<std::string, std::string>> levels();
// Default level for areas created later, and the output format; call once from main().
void init(std::string_view default_level);

}  // namespace mesh::log

#define MESH_LOG(area, level, ...) ::mesh::log::get(area).level(__VA_ARGS__)
