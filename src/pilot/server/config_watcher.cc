#include "pilot/server/config_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.h"

namespace mesh::pilot::server {

namespace {
constexpr std::chrono::seconds kMaxDelay{10};
}  // namespace

ConfigWatcher::ConfigWatcher(std::string dir, std::chrono::milliseconds debounce,
                             std::function<void()> onChange)
    : dir_(std::move(dir)), debounce_(debounce), on_change_(std::move(onChange)) {}

ConfigWatcher::~ConfigWatcher() { stop(); }

Status ConfigWatcher::start() {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) return unavailable(std::string("inotify_init1: ") + std::strerror(errno));
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                        IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
  if (::inotify_add_watch(inotify_fd_, dir_.c_str(), mask) < 0) {
    Status st = unavailable("cannot watch " + dir_ + ": " + std::strerror(errno));
    ::close(inotify_fd_);
    inotify_fd_ = -1;
    return st;
  }
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    ::close(inotify_fd_);
    inotify_fd_ = -1;
    return unavailable(std::string("eventfd: ") + std::strerror(errno));
  }
  thread_ = std::thread([this] { run(); });
  return okStatus();
}

void ConfigWatcher::stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
  inotify_fd_ = stop_fd_ = -1;
}

void ConfigWatcher::run() {
  using Clock = std::chrono::steady_clock;
  bool pending = false;
  Clock::time_point due;
  Clock::time_point first_event;
  alignas(struct inotify_event) char buf[8192];
  while (true) {
    int timeout_ms = -1;
    if (pending) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(due - Clock::now());
      timeout_ms = left.count() > 0 ? static_cast<int>(left.count()) : 0;
    }
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) {
      MESH_LOG("pilot", error, "config watcher: poll: {}", std::strerror(errno));
      return;
    }
    if (n > 0 && (fds[1].revents & POLLIN)) return;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      while (::read(inotify_fd_, buf, sizeof buf) > 0) {
      }
      const Clock::time_point now = Clock::now();
      if (!pending) first_event = now;
      pending = true;
      // The quiet period restarts with every event, but a directory that never stays quiet
      // is still reloaded every kMaxDelay (Istio: 100 ms quiet, 10 s at most).
      due = std::min(now + debounce_, first_event + kMaxDelay);
      continue;
    }
    if (pending && Clock::now() >= due) {
      pending = false;
      on_change_();
    }
  }
}

}  // namespace mesh::pilot::server
