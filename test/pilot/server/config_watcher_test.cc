// ConfigWatcher: a burst of changes is one callback after the quiet period; stop() joins.
#include "pilot/server/config_watcher.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "test/integration/harness.h"

namespace mesh::pilot::server {
namespace {

using std::chrono::milliseconds;

class Calls {
 public:
  void add() {
    std::lock_guard<std::mutex> lock(mu_);
    ++n_;
    cv_.notify_all();
  }
  // Waits (bounded) until at least `n` calls happened; returns the count.
  int waitFor(int n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return n_ >= n; });
    return n_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 0;
};

TEST(ConfigWatcherTest, BurstOfWritesIsOneCallback) {
  integration::TempDir dir;
  Calls calls;
  ConfigWatcher w(dir.path(), milliseconds(300), [&] { calls.add(); });
  ASSERT_TRUE(w.start().ok());
  integration::writeFileAtomic(dir.file("a.yaml"), "a: 1\n");
  integration::writeFileAtomic(dir.file("b.yaml"), "b: 1\n");
  integration::writeFileAtomic(dir.file("a.yaml"), "a: 2\n");
  EXPECT_EQ(calls.waitFor(1, milliseconds(10000)), 1);
  // Another change later is another callback.
  integration::writeFileAtomic(dir.file("c.yaml"), "c: 1\n");
  EXPECT_EQ(calls.waitFor(2, milliseconds(10000)), 2);
  w.stop();
}

TEST(ConfigWatcherTest, MissingDirectoryIsAnError) {
  ConfigWatcher w("/nonexistent/pilot-config", milliseconds(10), [] {});
  Status st = w.start();
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("/nonexistent/pilot-config"), std::string::npos);
}

}  // namespace
}  // namespace mesh::pilot::server
