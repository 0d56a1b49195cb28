#include "proxy/server/worker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "core/stats/store.h"
#include "core/turn_clock.h"
#include "proxy/telemetry/istio_stats.h"

namespace mesh::proxy {
namespace {

TEST(WorkerTest, DeferredCompletionsRunInOrderAndShareOneClockReading) {
  stats::Store store;
  IstioTelemetry telemetry{store};
  Worker worker(0, store, telemetry);
  std::vector<size_t> order;
  std::vector<TurnClock::Steady::time_point> seen;
  auto handler = [&](const boost::system::error_code& ec, size_t n) {
    EXPECT_FALSE(ec);
    order.push_back(n);
    seen.push_back(TurnClock::now());
    // Until the clock has moved on, so that a second reading of its own would differ.
    while (std::chrono::steady_clock::now() == seen.back()) {
    }
  };
  worker.deferCompletion(handler, {}, 1);
  worker.deferCompletion(handler, {}, 2);
  worker.io().poll();
  ASSERT_EQ(order, (std::vector<size_t>{1, 2}));
  EXPECT_EQ(seen[0], seen[1]);  // one run of deferred completions, one reading

  worker.deferCompletion(handler, {}, 3);
  worker.io().restart();
  worker.io().poll();
  ASSERT_EQ(order.size(), 3u);
  EXPECT_GT(seen[2], seen[1]);  // the next run reads the clock again
}

}  // namespace
}  // namespace mesh::proxy
