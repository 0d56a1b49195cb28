#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <map>
#include <mutex>

namespace mesh::log {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
  spdlog::level::level_enum default_level = spdlog::level::info;
  std::shared_ptr<spdlog::sinks::stderr_color_sink_mt> sink =
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::never);
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: loggers outlive static teardown
  return *r;
}

bool parseLevel(std::string_view name, spdlog::level::level_enum* out) {
  if (name == "warning") name = "warn";
  if (name == "critical") name = "critical";
  for (int i = 0; i < spdlog::level::n_levels; ++i) {
    auto lvl = static_cast<spdlog::level::level_enum>(i);
    auto lvl_name = spdlog::level::to_string_view(lvl);
    if (std::string_view(lvl_name.data(), lvl_name.size()) == name) {
      *out = lvl;
      return true;
    }
  }
  return false;
}

}  // namespace

spdlog::logger& get(std::string_view area) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.loggers.find(area);
  if (it != r.loggers.end()) return *it->second;
  auto logger = std::make_shared<spdlog::logger>(std::string(area), r.sink);
  logger->set_level(r.default_level);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ [%n] %v", spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::warn);
  auto& ref = *logger;
  r.loggers.emplace(std::string(area), std::move(logger));
  return ref;
}

bool setLevel(std::string_view area, std::string_view level) {
  spdlog::level::level_enum lvl;
  if (!parseLevel(level, &lvl)) return false;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (area.empty()) {
    r.default_level = lvl;
    for (auto& [name, logger] : r.loggers) logger->set_level(lvl);
    return true;
  }
  auto it = r.loggers.find(area);
  if (it == r.loggers.end()) return false;
  it->second->set_level(lvl);
  return true;
}

std::vector<std::pair<std::string, std::string>> levels() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [name, logger] : r.loggers) {
    auto sv = spdlog::level::to_string_view(logger->level());
    out.emplace_back(name, std::string(sv.data(), sv.size()));
  }
  return out;
}

void init(std::string_view default_level) {
  spdlog::level::level_enum lvl = spdlog::level::info;
  parseLevel(default_level, &lvl);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.default_level = lvl;
  for (auto& [name, logger] : r.loggers) logger->set_level(lvl);
}

}  // namespace mesh::log
