// The event loop's busy polling: inside the window after an iteration that handled events
// run() does not block (wait timeout 0, whatever timers are armed), outside it or with the
// window off it blocks until the next timer; and a loop fed one event at a time inside the
// window does not sleep between them.
#include "proxy/event/event_loop.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <future>
#include <thread>

namespace meshgate::proxy {
namespace {

using std::chrono::microseconds;

EventLoop makeLoop() {
  auto loop = EventLoop::create();
  EXPECT_TRUE(loop) << (loop ? "" : loop.error().message);
  return std::move(*loop);
}

// One iteration that handles exactly the posted call.
void handleOneEvent(EventLoop& loop) {
  bool ran = false;
  loop.post([&] { ran = true; });
  auto n = loop.runOnce(-1);
  ASSERT_TRUE(n) << n.error().message;
  ASSERT_EQ(*n, 1);
  ASSERT_TRUE(ran);
}

TEST(EventLoopBusyPoll, OffByDefaultTheWaitBlocksUntilTheNextTimer) {
  EventLoop loop = makeLoop();
  handleOneEvent(loop);
  EXPECT_EQ(loop.waitTimeout(), -1);  // no timer armed: block until an event
  Timer t(loop.timers(), [] {});
  t.arm(std::chrono::milliseconds(500));
  EXPECT_GT(loop.waitTimeout(), 0);
  EXPECT_EQ(loop.waitTimeout(), loop.timers().msUntilNext());
}

TEST(EventLoopBusyPoll, InsideTheWindowAfterEventsTheWaitDoesNotBlock) {
  EventLoop loop = makeLoop();
  loop.setBusyPoll(std::chrono::hours(1));
  EXPECT_EQ(loop.waitTimeout(), -1) << "no events handled yet: nothing to poll for";
  handleOneEvent(loop);
  EXPECT_EQ(loop.waitTimeout(), 0);
  Timer t(loop.timers(), [] {});
  t.arm(std::chrono::milliseconds(500));
  EXPECT_EQ(loop.waitTimeout(), 0);
  // An iteration without events keeps the window where the last events left it.
  auto n = loop.runOnce(0);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(loop.waitTimeout(), 0);
  loop.setBusyPoll(microseconds(0));
  EXPECT_EQ(loop.waitTimeout(), loop.timers().msUntilNext());
  EXPECT_GT(loop.waitTimeout(), 0);
}

TEST(EventLoopBusyPoll, AfterTheWindowTheWaitBlocksAgain) {
  EventLoop loop = makeLoop();
  loop.setBusyPoll(microseconds(1));
  handleOneEvent(loop);
  // Let the clock pass the 1 µs window (nothing else is waited for).
  const auto past = std::chrono::steady_clock::now() + microseconds(2);
  while (std::chrono::steady_clock::now() < past) {
  }
  EXPECT_EQ(loop.waitTimeout(), -1);
}

// Work done in deferred calls counts as the iteration's work: the window starts after it
// (review finding: it started before, so a long iteration went straight back to sleep).
TEST(EventLoopBusyPoll, TheWindowCountsFromTheEndOfTheIterationsWork) {
  EventLoop loop = makeLoop();
  loop.setBusyPoll(std::chrono::milliseconds(200));
  loop.post([&] {
    loop.defer([] {
      // 250 ms of work, longer than the window.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(250);
      while (std::chrono::steady_clock::now() < until) {
      }
    });
  });
  auto n = loop.runOnce(-1);
  ASSERT_TRUE(n);
  ASSERT_EQ(*n, 1);
  EXPECT_EQ(loop.waitTimeout(), 0) << "the window must start once the deferred work is done";
}

// Voluntary context switches of the calling thread (blocking in epoll_wait is one).
long voluntarySwitches() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_nvcsw;
}

// Runs a loop on its own thread and sends it `events` posted calls one at a time, each
// after the previous one ran; returns how often the loop's thread slept meanwhile.
long sleepsOverEvents(microseconds busy_poll, int events) {
  EventLoop loop = makeLoop();
  loop.setBusyPoll(busy_poll);
  std::thread thread([&] {
    auto r = loop.run();
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
  });
  auto on_loop = [&](auto fn) {
    std::promise<decltype(fn())> done;
    auto f = done.get_future();
    loop.post([&] { done.set_value(fn()); });
    return f.get();
  };
  const long before = on_loop(voluntarySwitches);
  for (int i = 0; i < events; i++) {
    on_loop([] { return 0; });
  }
  const long after = on_loop(voluntarySwitches);
  loop.stop();
  thread.join();
  return after - before;
}

TEST(EventLoopBusyPoll, ALoopFedInsideItsWindowNeverSleeps) {
  constexpr int kEvents = 200;
  // The window (10 s) is far longer than any gap between two posts.
  const long busy = sleepsOverEvents(std::chrono::seconds(10), kEvents);
  // A futex wait on the post queue's mutex, if the two threads meet on it, also counts.
  // (Without the window the count depends on who is ahead: the loop sleeps whenever it
  // reaches epoll_wait before the next post, from none to every time; so no bound there.)
  EXPECT_LT(busy, kEvents / 10) << "busy polling: the loop slept between events";
}

}  // namespace
}  // namespace meshgate::proxy
