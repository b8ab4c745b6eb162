// A hashed timer wheel for the proxy's timeouts (idle, header, connect, upstream response):
// arming, re-arming and cancelling are O(1) and allocation-free, which matters because
// every request re-arms two or three timers. Resolution is one tick (kTick); a timer
// fires on the first advance() at or after its deadline, never before.
//
// Timers are intrusive: a Timer object lives inside its owner (a connection) and unlinks
// itself when destroyed, so a freed connection can never fire.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace meshgate::proxy {

class TimerWheel;

class Timer {
 public:
  explicit Timer(TimerWheel& wheel, std::function<void()> on_fire)
      : wheel_(&wheel), on_fire_(std::move(on_fire)) {}
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  ~Timer() { cancel(); }

  // (Re)arms the timer to fire `after` from the wheel's current time.
  void arm(std::chrono::milliseconds after);
  void cancel();
  bool armed() const { return slot_ >= 0; }

 private:
  friend class TimerWheel;
  TimerWheel* wheel_;
  std::function<void()> on_fire_;
  uint64_t deadline_tick_ = 0;
  int slot_ = -1;
  Timer* prev_ = nullptr;
  Timer* next_ = nullptr;
};

class TimerWheel {
 public:
  static constexpr std::chrono::milliseconds kTick{10};
  static constexpr size_t kSlots = 4096;  // one lap = 40.96 s; longer timers wait for laps

  TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;
  // Moving is only allowed while no timer is armed (the loop is moved before it runs).
  TimerWheel(TimerWheel&& other) noexcept;

  // Sets the wheel's clock (the loop does this once per iteration) and fires every timer
  // whose deadline has passed. A timer re-armed by its own callback fires again only on a
  // later advance().
  void advance(std::chrono::steady_clock::time_point now);
  std::chrono::steady_clock::time_point now() const { return now_; }
  // Milliseconds until the next tick whose slot holds an armed timer (at most one lap; a
  // timer more than a lap away wakes the loop once per lap), or -1 when nothing is armed:
  // the loop's epoll timeout. An idle worker sleeps until its next timeout.
  int msUntilNext() const;
  size_t armedCount() const { return armed_; }

 private:
  friend class Timer;
  void link(Timer* t);
  void unlink(Timer* t);
  uint64_t tickOf(std::chrono::steady_clock::time_point t) const;

  std::chrono::steady_clock::time_point origin_;
  std::chrono::steady_clock::time_point now_;
  uint64_t current_tick_ = 0;                     // every tick <= current_tick_ has been processed
  std::vector<Timer*> slots_;                     // list heads
  std::array<uint64_t, kSlots / 64> occupied_{};  // bit per slot: its list is not empty
  size_t armed_ = 0;
};

}  // namespace meshgate::proxy
