// The time of a batch of I/O completions, read once per batch instead of once per use.
//
// A request reads the clock about ten times (activity stamps for idle timeouts, its start,
// the upstream attempt's start, the upstream service time, its duration); on one core shared
// with client and backend those reads were 2-3% of the proxy's CPU. Inside a batch
// (net::IoBatcher runs every socket completion of a loop turn in one, the worker every HTTP/2
// stream completion deferred to one run of them), now() returns the time
// of its first call in that batch; outside a batch it reads the clock every time. So a stamp
// is late or early by at most the batch's own run time (microseconds; Envoy's dispatcher
// "approximate monotonic time" makes the same trade over a whole loop iteration), and never
// stale across a wait for I/O. Timers keep their own exact clock (Asio's).
//
// Per thread; nothing to set up.
#pragma once

#include <chrono>

namespace mesh {

class TurnClock {
 public:
  using Steady = std::chrono::steady_clock;
  using Wall = std::chrono::system_clock;

  static Steady::time_point now() {
    State& s = state();
    return read<Steady>(s.depth, s.steady_valid, s.steady);
  }
  // Wall-clock time (access-log start times), cached the same way.
  static Wall::time_point wallNow() {
    State& s = state();
    return read<Wall>(s.depth, s.wall_valid, s.wall);
  }

  // Marks a batch of completions (nestable): the outermost one starts with no cached time.
  class Batch {
   public:
    Batch() {
      State& s = state();
      if (s.depth++ == 0) s.steady_valid = s.wall_valid = false;
    }
    ~Batch() { --state().depth; }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
  };

 private:
  template <typename C>
  static typename C::time_point read(unsigned depth, bool& valid, typename C::time_point& cached) {
    if (depth == 0) return C::now();
    if (!valid) {
      cached = C::now();
      valid = true;
    }
    return cached;
  }
  struct State {
    unsigned depth = 0;
    bool steady_valid = false;
    bool wall_valid = false;
    Steady::time_point steady;
    Wall::time_point wall;
  };
  static State& state() {
    static thread_local State s;
    return s;
  }
};

}  // namespace mesh
