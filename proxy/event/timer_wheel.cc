#include "proxy/event/timer_wheel.h"

#include <algorithm>
#include <bit>

namespace meshgate::proxy {

void Timer::arm(std::chrono::milliseconds after) {
  cancel();
  // The first tick that starts at or after now + after: a timer never fires early, also
  // when armed in the middle of a tick (review finding: it could fire up to a tick early).
  const auto due = wheel_->now_ + std::max(after, std::chrono::milliseconds(0));
  const uint64_t tick = wheel_->tickOf(due);
  const bool on_boundary = wheel_->origin_ + TimerWheel::kTick * static_cast<int64_t>(tick) == due;
  deadline_tick_ = std::max(tick + (on_boundary ? 0 : 1), wheel_->tickOf(wheel_->now_) + 1);
  wheel_->link(this);
}

void Timer::cancel() {
  if (slot_ >= 0) {
    wheel_->unlink(this);
  }
}

TimerWheel::TimerWheel()
    : origin_(std::chrono::steady_clock::now()), now_(origin_), slots_(kSlots, nullptr) {}

TimerWheel::TimerWheel(TimerWheel&& other) noexcept
    : origin_(other.origin_),
      now_(other.now_),
      current_tick_(other.current_tick_),
      slots_(std::move(other.slots_)),
      occupied_(other.occupied_),
      armed_(other.armed_) {
  other.armed_ = 0;
  other.occupied_ = {};
}

uint64_t TimerWheel::tickOf(std::chrono::steady_clock::time_point t) const {
  return static_cast<uint64_t>((t - origin_) / kTick);
}

void TimerWheel::link(Timer* t) {
  const size_t slot = t->deadline_tick_ % kSlots;
  t->slot_ = static_cast<int>(slot);
  t->prev_ = nullptr;
  t->next_ = slots_[slot];
  if (t->next_) {
    t->next_->prev_ = t;
  }
  slots_[slot] = t;
  occupied_[slot / 64] |= uint64_t{1} << (slot % 64);
  armed_++;
}

void TimerWheel::unlink(Timer* t) {
  if (t->prev_) {
    t->prev_->next_ = t->next_;
  } else {
    const auto slot = static_cast<size_t>(t->slot_);
    slots_[slot] = t->next_;
    if (!t->next_) {
      occupied_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
    }
  }
  if (t->next_) {
    t->next_->prev_ = t->prev_;
  }
  t->prev_ = t->next_ = nullptr;
  t->slot_ = -1;
  armed_--;
}

void TimerWheel::advance(std::chrono::steady_clock::time_point now) {
  now_ = std::max(now_, now);
  const uint64_t target = tickOf(now_);
  while (current_tick_ < target && armed_ > 0) {
    current_tick_++;
    const size_t slot = current_tick_ % kSlots;
    // One due timer at a time, from the head: a callback may cancel, re-arm or destroy any
    // timer, including others in this slot. A re-armed timer lands at a later tick.
    for (;;) {
      Timer* t = slots_[slot];
      while (t && t->deadline_tick_ > current_tick_) {
        t = t->next_;
      }
      if (!t) {
        break;
      }
      unlink(t);
      t->on_fire_();
    }
  }
  current_tick_ = std::max(current_tick_, target);
}

int TimerWheel::msUntilNext() const {
  if (armed_ == 0) {
    return -1;
  }
  // The first occupied slot after the current tick, in wheel order (wrapping once).
  const size_t start = (current_tick_ + 1) % kSlots;
  uint64_t ahead = kSlots;  // ticks after current_tick_, 1..kSlots
  for (size_t i = 0; i <= occupied_.size(); i++) {
    const size_t word = (start / 64 + i) % occupied_.size();
    uint64_t bits = occupied_[word];
    if (i == 0) {
      bits &= ~uint64_t{0} << (start % 64);  // slots before `start` in its word come last
    }
    if (bits != 0) {
      const size_t slot = word * 64 + static_cast<size_t>(std::countr_zero(bits));
      ahead = (slot + kSlots - start) % kSlots + 1;
      break;
    }
  }
  const auto next = origin_ + kTick * static_cast<int64_t>(current_tick_ + ahead);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(next - now_).count() + 1;
  return static_cast<int>(std::clamp<int64_t>(ms, 0, kTick.count() * static_cast<int64_t>(kSlots)));
}

}  // namespace meshgate::proxy
