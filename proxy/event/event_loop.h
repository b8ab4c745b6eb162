// One event loop per worker thread: epoll in edge-triggered mode, a timer wheel, and a
// queue of deferred calls. Everything a worker owns (listeners, connections, upstream
// pools) lives on its loop's thread; the only cross-thread entry is post(), which wakes the
// loop through an eventfd.
//
// Edge-triggered means a handler is told once that a socket became readable or writable
// and must then read or write until EAGAIN, or remember that it stopped early (a full
// buffer) and come back to it: see net/connection.h, which does this for every socket.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "meshgate/result.h"
#include "proxy/event/timer_wheel.h"

namespace meshgate::proxy {

// Receives the epoll events of one fd. The loop never owns handlers. Owners destroy
// handlers through EventLoop::defer(), never inside a dispatch: one batch of events can
// hold several for the same handler, and a handler that closed its fd earlier in the
// batch must still be alive to ignore the rest.
class IoHandler {
 public:
  virtual ~IoHandler() = default;
  // `events`: EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP / EPOLLRDHUP bits.
  virtual void onIo(uint32_t events) = 0;
};

class EventLoop {
 public:
  static Result<EventLoop> create();
  EventLoop(EventLoop&& other) noexcept;
  EventLoop& operator=(EventLoop&&) = delete;
  EventLoop(const EventLoop&) = delete;
  ~EventLoop();

  // Registers fd for `events` (EPOLLET is added); handler must outlive the registration.
  Result<void> add(int fd, uint32_t events, IoHandler* handler);
  Result<void> modify(int fd, uint32_t events, IoHandler* handler);
  // Unregisters fd (events already collected in this batch are still delivered).
  void remove(int fd);

  // Runs until stop(). Each iteration: wait for events (at most until the next armed
  // timer, or not at all while busy polling), dispatch them, advance the timer wheel, run
  // deferred calls.
  Result<void> run();
  // Busy polling: for `window` after an iteration has handled events, run() polls without
  // sleeping instead of blocking in epoll_wait. A loop that sleeps between events must be
  // woken by whoever sends it the next one, a cross-CPU wakeup the sender pays for (on a VM,
  // an IPI and often a VM exit); a busy loop is not asleep. It costs CPU while the window
  // lasts and nothing on an idle loop. 0 (the default) turns it off. Loop thread only.
  void setBusyPoll(std::chrono::microseconds window) { busy_poll_ = window; }
  // How long the next wait of run() may block, in ms: 0 inside the busy-poll window, else
  // until the next armed timer (-1: none).
  int waitTimeout() const;
  // One iteration of run(): waits at most `timeout_ms` (-1: until an event) for events,
  // handles them, fires due timers and runs deferred calls. Returns the number of events.
  // For tests and fuzzers that drive a loop step by step on their own thread.
  Result<int> runOnce(int timeout_ms);
  // Thread-safe: the loop returns from run() after its current iteration.
  void stop();
  // Thread-safe: `fn` runs on the loop's thread after the current iteration's events.
  void post(std::function<void()> fn);
  // Loop thread only: `fn` runs after the current iteration's events. Use it to destroy
  // an object whose handler is on the stack.
  void defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
  // Loop thread only: destroys `p` after the current iteration's events and deferred calls,
  // like defer() of a lambda owning it, without allocating (no shared_ptr, no closure).
  template <class T>
  void deferDelete(std::unique_ptr<T> p) {
    if (p) {
      doomed_.push_back({p.release(), [](void* q) { delete static_cast<T*>(q); }});
    }
  }

  TimerWheel& timers() { return timers_; }
  // The loop's clock, read once per iteration.
  std::chrono::steady_clock::time_point now() const { return timers_.now(); }

 private:
  EventLoop(int epfd, int wakefd);
  void drainPosted();
  void runDeferred();

  int epfd_ = -1;
  int wakefd_ = -1;  // eventfd: post() and stop() from other threads
  bool stopping_ = false;
  std::chrono::microseconds busy_poll_{0};
  // When the last iteration with events had handled them.
  std::chrono::steady_clock::time_point last_active_ = std::chrono::steady_clock::time_point::min();
  TimerWheel timers_;
  std::vector<std::function<void()>> deferred_;
  std::vector<std::function<void()>> running_;  // the deferred calls being run
  struct Doomed {
    void* object;
    void (*destroy)(void*);
  };
  std::vector<Doomed> doomed_;  // deferDelete()'s objects, destroyed in the order given
  std::vector<Doomed> dying_;   // the ones being destroyed
  std::mutex posted_mu_;
  std::vector<std::function<void()>> posted_;
  bool stop_requested_ = false;  // guarded by posted_mu_
};

}  // namespace meshgate::proxy
