#include "proxy/event/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace meshgate::proxy {

Result<EventLoop> EventLoop::create() {
  const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    return failErrno("epoll_create1", errno);
  }
  const int wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    const int err = errno;
    ::close(epfd);
    return failErrno("eventfd", err);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the wake fd is the only registration without a handler
  if (::epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0) {
    const int err = errno;
    ::close(wakefd);
    ::close(epfd);
    return failErrno("epoll_ctl(eventfd)", err);
  }
  return EventLoop(epfd, wakefd);
}

EventLoop::EventLoop(int epfd, int wakefd) : epfd_(epfd), wakefd_(wakefd) {}

EventLoop::EventLoop(EventLoop&& other) noexcept
    : epfd_(std::exchange(other.epfd_, -1)),
      wakefd_(std::exchange(other.wakefd_, -1)),
      busy_poll_(other.busy_poll_),
      last_active_(other.last_active_),
      timers_(std::move(other.timers_)),
      deferred_(std::move(other.deferred_)),
      running_(std::move(other.running_)),
      doomed_(std::move(other.doomed_)) {}

EventLoop::~EventLoop() {
  for (const Doomed& d : doomed_) {
    d.destroy(d.object);
  }
  if (wakefd_ >= 0) {
    ::close(wakefd_);
  }
  if (epfd_ >= 0) {
    ::close(epfd_);
  }
}

Result<void> EventLoop::add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return failErrno("epoll_ctl(ADD, fd " + std::to_string(fd) + ")", errno);
  }
  return {};
}

Result<void> EventLoop::modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.ptr = handler;
  if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return failErrno("epoll_ctl(MOD, fd " + std::to_string(fd) + ")", errno);
  }
  return {};
}

void EventLoop::remove(int fd) {
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::stop() {
  {
    std::lock_guard lock(posted_mu_);
    stop_requested_ = true;
  }
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakefd_, &one, sizeof one);
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mu_);
    posted_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakefd_, &one, sizeof one);
}

void EventLoop::drainPosted() {
  uint64_t count;
  [[maybe_unused]] auto n = ::read(wakefd_, &count, sizeof count);
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lock(posted_mu_);
    fns.swap(posted_);
    stopping_ = stopping_ || stop_requested_;
  }
  for (auto& fn : fns) {
    fn();
  }
}

void EventLoop::runDeferred() {
  // Deferred calls may defer more; run until none is left. Both vectors keep their
  // capacity, so deferring allocates nothing once the loop has warmed up.
  // A destructor may defer more of either kind.
  while (!deferred_.empty() || !doomed_.empty()) {
    running_.swap(deferred_);
    for (auto& fn : running_) {
      fn();
    }
    running_.clear();
    dying_.swap(doomed_);
    for (const Doomed& d : dying_) {
      d.destroy(d.object);
    }
    dying_.clear();
  }
}

int EventLoop::waitTimeout() const {
  if (busy_poll_.count() > 0 && std::chrono::steady_clock::now() < last_active_ + busy_poll_) {
    return 0;
  }
  return timers_.msUntilNext();
}

Result<void> EventLoop::run() {
  while (!stopping_) {
    if (auto n = runOnce(waitTimeout()); !n) {
      return std::unexpected(n.error());
    }
  }
  return {};
}

Result<int> EventLoop::runOnce(int timeout_ms) {
  std::array<epoll_event, 256> events;
  const int n = ::epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
  if (n < 0 && errno != EINTR) {
    return failErrno("epoll_wait", errno);
  }
  // The clock first: timers armed by handlers count from now, not from the last wakeup
  // (which may be long ago on an idle worker).
  timers_.advance(std::chrono::steady_clock::now());
  for (int i = 0; i < n; i++) {
    auto* handler = static_cast<IoHandler*>(events[i].data.ptr);
    if (handler) {
      handler->onIo(events[i].events);
    } else {
      drainPosted();
    }
  }
  timers_.advance(std::chrono::steady_clock::now());
  runDeferred();
  if (n > 0 && busy_poll_.count() > 0) {
    // The window counts from the end of the iteration's work, deferred calls included.
    last_active_ = std::chrono::steady_clock::now();
  }
  return std::max(n, 0);
}

}  // namespace meshgate::proxy
