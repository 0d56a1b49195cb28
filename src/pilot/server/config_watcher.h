// Watches pilot's config directory with inotify and calls back once per burst of changes: after
// `debounce` without a further event (an editor's write-rename-chmod counts as one change), or
// 10 s after the first event of a burst that never goes quiet.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "core/status.h"

namespace mesh::pilot::server {

class ConfigWatcher {
 public:
  ConfigWatcher(std::string dir, std::chrono::milliseconds debounce,
                std::function<void()> onChange);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Starts watching (its own thread). The callback runs on that thread.
  Status start();
  // Stops and joins the thread. Idempotent.
  void stop();

 private:
  void run();

  const std::string dir_;
  const std::chrono::milliseconds debounce_;
  std::function<void()> on_change_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that wakes the thread to stop
  std::thread thread_;
};

}  // namespace mesh::pilot::server
