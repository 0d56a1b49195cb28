#include "core/turn_clock.h"

#include <gtest/gtest.h>

namespace mesh {
namespace {

using Steady = TurnClock::Steady;
using Wall = TurnClock::Wall;

// Waits (bounded, no sleep) until the real clock has moved past `t`.
void untilAfter(Steady::time_point t) {
  for (int i = 0; i < 100000000 && Steady::now() <= t; ++i) {
  }
  ASSERT_GT(Steady::now(), t);
}
void untilAfter(Wall::time_point t) {
  for (int i = 0; i < 100000000 && Wall::now() <= t; ++i) {
  }
  ASSERT_GT(Wall::now(), t);
}

TEST(TurnClockTest, OutsideABatchEveryCallReadsTheClock) {
  Steady::time_point a = TurnClock::now();
  untilAfter(a);
  EXPECT_GT(TurnClock::now(), a);
  Wall::time_point w = TurnClock::wallNow();
  untilAfter(w);
  EXPECT_GT(TurnClock::wallNow(), w);
}

TEST(TurnClockTest, ABatchReadsOnceAndTheNextBatchReadsAgain) {
  Steady::time_point before = Steady::now();
  Steady::time_point first;
  Wall::time_point first_wall;
  {
    TurnClock::Batch batch;
    first = TurnClock::now();
    first_wall = TurnClock::wallNow();
    EXPECT_GE(first, before);
    untilAfter(first);
    untilAfter(first_wall);
    EXPECT_EQ(TurnClock::now(), first);
    EXPECT_EQ(TurnClock::wallNow(), first_wall);
    {
      TurnClock::Batch nested;  // an inner batch does not start over
      EXPECT_EQ(TurnClock::now(), first);
    }
    EXPECT_EQ(TurnClock::now(), first);
  }
  EXPECT_GT(TurnClock::now(), first);  // after the batch: the real clock again
  TurnClock::Batch next;
  EXPECT_GT(TurnClock::now(), first);
  EXPECT_GT(TurnClock::wallNow(), first_wall);
}

}  // namespace
}  // namespace mesh
