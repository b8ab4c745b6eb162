// The proxy's timer wheel fires every timer once, never before its deadline, in deadline
// order across ticks, and never after it was cancelled or its owner destroyed.
#include "proxy/event/timer_wheel.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace meshgate::proxy {
namespace {

using std::chrono::milliseconds;

class TimerWheelTest : public ::testing::Test {
 protected:
  std::chrono::steady_clock::time_point at(int ms) { return t0_ + milliseconds(ms); }
  TimerWheel wheel_;
  std::chrono::steady_clock::time_point t0_ = wheel_.now();
};

TEST_F(TimerWheelTest, FiresOnceAtOrAfterItsDeadlineNeverBefore) {
  int fired = 0;
  Timer t(wheel_, [&] { fired++; });
  t.arm(milliseconds(95));
  wheel_.advance(at(90));
  EXPECT_EQ(fired, 0) << "not before the deadline";
  wheel_.advance(at(100));
  EXPECT_EQ(fired, 1) << "at the first tick after the deadline";
  wheel_.advance(at(500));
  EXPECT_EQ(fired, 1) << "only once";
  EXPECT_FALSE(t.armed());
}

// Armed in the middle of a tick, a timer still waits its whole time (review finding: it
// counted from the start of the tick and could fire up to 10 ms early).
TEST_F(TimerWheelTest, ATimerArmedMidTickNeverFiresEarly) {
  int fired = 0;
  Timer t(wheel_, [&] { fired++; });
  wheel_.advance(at(7));
  t.arm(milliseconds(10));  // due at 17 ms
  wheel_.advance(at(16));
  EXPECT_EQ(fired, 0) << "6 ms early at 10 ms into the timer";
  wheel_.advance(at(20));
  EXPECT_EQ(fired, 1) << "the first tick at or after 17 ms";
}

TEST_F(TimerWheelTest, FiresInDeadlineOrderAcrossTicks) {
  std::vector<int> order;
  std::vector<std::unique_ptr<Timer>> timers;
  for (int ms : {300, 20, 150, 70, 20}) {
    timers.push_back(std::make_unique<Timer>(wheel_, [&order, ms] { order.push_back(ms); }));
    timers.back()->arm(milliseconds(ms));
  }
  wheel_.advance(at(1000));
  EXPECT_EQ(order, (std::vector<int>{20, 20, 70, 150, 300}));
}

TEST_F(TimerWheelTest, CancelledAndDestroyedTimersNeverFire) {
  int fired = 0;
  Timer cancelled(wheel_, [&] { fired++; });
  cancelled.arm(milliseconds(50));
  cancelled.cancel();
  {
    Timer destroyed(wheel_, [&] { fired++; });
    destroyed.arm(milliseconds(50));
  }
  EXPECT_EQ(wheel_.armedCount(), 0u);
  wheel_.advance(at(200));
  EXPECT_EQ(fired, 0);
}

TEST_F(TimerWheelTest, RearmingMovesTheDeadline) {
  int fired = 0;
  Timer t(wheel_, [&] { fired++; });
  t.arm(milliseconds(50));
  wheel_.advance(at(40));
  t.arm(milliseconds(50));  // now due at 90
  wheel_.advance(at(60));
  EXPECT_EQ(fired, 0);
  wheel_.advance(at(100));
  EXPECT_EQ(fired, 1);
}

TEST_F(TimerWheelTest, TimersLongerThanOneLapWaitForTheirLap) {
  int fired = 0;
  Timer t(wheel_, [&] { fired++; });
  const auto lap = TimerWheel::kTick * static_cast<int>(TimerWheel::kSlots);
  t.arm(lap + milliseconds(30));
  wheel_.advance(t0_ + lap);
  EXPECT_EQ(fired, 0) << "a full lap is not the deadline";
  wheel_.advance(t0_ + lap + milliseconds(40));
  EXPECT_EQ(fired, 1);
}

TEST_F(TimerWheelTest, ACallbackMayCancelAnotherDueTimerOrRearmItself) {
  int a_fired = 0, b_fired = 0;
  Timer* a_ptr = nullptr;
  Timer* b_ptr = nullptr;
  Timer a(wheel_, [&] {
    a_fired++;
    b_ptr->cancel();
  });
  Timer b(wheel_, [&] {
    b_fired++;
    a_ptr->cancel();
  });
  a_ptr = &a;
  b_ptr = &b;
  a.arm(milliseconds(20));
  b.arm(milliseconds(20));
  int self_fired = 0;
  Timer* self_ptr = nullptr;
  Timer self(wheel_, [&] {
    if (++self_fired < 3) {
      self_ptr->arm(milliseconds(10));
    }
  });
  self_ptr = &self;
  self.arm(milliseconds(10));
  wheel_.advance(at(30));
  EXPECT_EQ(a_fired + b_fired, 1) << "whichever fired first cancelled the other";
  // Re-arming counts from the wheel's time (30 ms): due at 40, then at 110 from there.
  wheel_.advance(at(100));
  EXPECT_EQ(self_fired, 2) << "a re-armed timer fires again on a later advance";
  wheel_.advance(at(200));
  EXPECT_EQ(self_fired, 3);
  EXPECT_EQ(a_fired + b_fired, 1);
}

// The loop sleeps until the next armed timer, not one tick: an idle worker holding
// connections with 60 s idle timeouts used to wake 100 times a second.
TEST_F(TimerWheelTest, EpollTimeoutIsTheTimeToTheNextArmedTimer) {
  EXPECT_EQ(wheel_.msUntilNext(), -1) << "nothing armed: sleep until an event";
  Timer late(wheel_, [] {});
  late.arm(milliseconds(5000));
  EXPECT_GE(wheel_.msUntilNext(), 5000);
  EXPECT_LE(wheel_.msUntilNext(), 5000 + TimerWheel::kTick.count() + 1);
  {
    Timer soon(wheel_, [] {});
    soon.arm(milliseconds(100));
    EXPECT_GE(wheel_.msUntilNext(), 100);
    EXPECT_LE(wheel_.msUntilNext(), 100 + TimerWheel::kTick.count() + 1);
  }
  EXPECT_GE(wheel_.msUntilNext(), 5000) << "the sooner one is gone";
  wheel_.advance(at(4990));
  EXPECT_GE(wheel_.msUntilNext(), 0);
  EXPECT_LE(wheel_.msUntilNext(), TimerWheel::kTick.count() + 1);
}

TEST_F(TimerWheelTest, EpollTimeoutFindsASlotBehindTheCurrentOneAndTimersLapsAway) {
  wheel_.advance(at(700));  // tick 70: the next slot to look at is 71
  Timer wrapped(wheel_, [] {});
  wrapped.arm(milliseconds(40910));  // tick 4161: slot 65, before 71 in the wheel's array
  EXPECT_GE(wheel_.msUntilNext(), 40910);
  EXPECT_LE(wheel_.msUntilNext(), 40910 + TimerWheel::kTick.count() + 1);
  wrapped.cancel();

  int fired = 0;
  Timer far(wheel_, [&] { fired++; });
  far.arm(milliseconds(60000));  // 6000 ticks: more than one lap (4096)
  const int first = wheel_.msUntilNext();
  EXPECT_GE(first, 60000 - 40960) << "its slot comes up after 1904 ticks, a lap early";
  EXPECT_LE(first, 60000 - 40960 + TimerWheel::kTick.count() + 1);
  wheel_.advance(at(700 + first));
  EXPECT_EQ(fired, 0) << "a lap early is not the deadline";
  EXPECT_GE(wheel_.msUntilNext(), 40000) << "then it sleeps a whole lap";
  wheel_.advance(at(700 + 60000 + 10));
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(wheel_.msUntilNext(), -1);
}

}  // namespace
}  // namespace meshgate::proxy
