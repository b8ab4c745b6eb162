#include "tests/lib/open_loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "proxy/http1/parser.h"

namespace meshgate::test {
namespace {

namespace h1 = meshgate::http1;
using Clock = std::chrono::steady_clock;

struct Tally {
  std::vector<double> latency_ms;
  uint64_t sent = 0, completed = 0, errors = 0;
  double lag_us_sum = 0;
};

// One keep-alive connection: requests go out one at a time; those that fall due while
// one is outstanding wait here, with their due times.
class Conn : public h1::Sink {
 public:
  Conn(int fd, std::string_view request, Tally& tally)
      : fd_(fd), request_(request), tally_(tally), parser_(h1::Mode::kResponse, *this) {}
  ~Conn() override {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int fd() const { return fd_; }
  bool idle() const { return due_.empty(); }
  size_t outstanding() const { return due_.size(); }

  void due(Clock::time_point t) {
    due_.push_back(t);
    if (due_.size() == 1) {
      send();
    }
  }

  // Reads what arrived; false once the connection is unusable (its requests are errors).
  bool readable() {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
      }
      if (n <= 0) {
        return fail();
      }
      if (!parser_.feed(std::span<const char>(buf, static_cast<size_t>(n)))) {
        return fail();
      }
      if (dead_) {
        return false;
      }
    }
  }

  // Requests still waiting or outstanding when the run ends, or on a connection that
  // died: errors, and in the latencies with what they have waited so far, so that a
  // server that stalls or drops connections cannot look faster than one that answers.
  void abandon() {
    const auto now = Clock::now();
    for (const auto& due : due_) {
      tally_.latency_ms.push_back(std::chrono::duration<double, std::milli>(now - due).count());
    }
    tally_.errors += due_.size();
    due_.clear();
  }

 private:
  void onStatusLine(h1::Version, uint16_t status, std::string_view) override { status_ = status; }
  void onMessageComplete() override {
    const auto now = Clock::now();
    if (due_.empty()) {
      tally_.errors++;  // an answer nobody asked for
      return;
    }
    if (status_ == 200) {
      tally_.completed++;
      tally_.latency_ms.push_back(
          std::chrono::duration<double, std::milli>(now - due_.front()).count());
    } else {
      tally_.errors++;
    }
    due_.pop_front();
    if (!due_.empty()) {
      send();
    }
  }

  void send() {
    tally_.lag_us_sum +=
        std::chrono::duration<double, std::micro>(Clock::now() - due_.front()).count();
    tally_.sent++;
    if (::send(fd_, request_.data(), request_.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request_.size())) {
      dead_ = true;
    }
  }

  bool fail() {
    dead_ = true;
    abandon();
    return false;
  }

  int fd_;
  std::string_view request_;
  Tally& tally_;
  h1::Parser parser_;
  std::deque<Clock::time_point> due_;
  uint16_t status_ = 0;
  bool dead_ = false;
};

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) {
    return 0;
  }
  const size_t i =
      std::min(sorted.size() - 1,
               static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size()))) - 1);
  return sorted[i];
}

Result<OpenLoopResult> generate(const OpenLoopOptions& o) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(o.cpu, &set);
  if (int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set); err != 0) {
    return failErrno("pin the load generator to CPU " + std::to_string(o.cpu), err);
  }
  ::prctl(PR_SET_TIMERSLACK, 1UL);  // wake when a request falls due, not up to 50 us later
  const std::string request = "GET " + o.path + " HTTP/1.1\r\nHost: bench\r\n\r\n";
  Tally tally;
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    return failErrno("epoll_create1", errno);
  }
  std::vector<std::unique_ptr<Conn>> conns;
  auto cleanup = [&] {
    conns.clear();
    ::close(ep);
  };
  for (int i = 0; i < o.connections; i++) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(o.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const int err = errno;
      if (fd >= 0) {
        ::close(fd);
      }
      cleanup();
      return failErrno("connect to port " + std::to_string(o.port), err);
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conns.push_back(std::make_unique<Conn>(fd, request, tally));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = conns.back().get();
    ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }

  const auto interval = std::chrono::duration<double>(1.0 / o.rate);
  const uint64_t total =
      static_cast<uint64_t>(o.rate * std::chrono::duration<double>(o.duration).count());
  const auto start = Clock::now() + std::chrono::milliseconds(10);
  const auto give_up = start + o.duration + std::chrono::seconds(2);
  auto dueAt = [&](uint64_t k) {
    return start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(k));
  };
  uint64_t next = 0;
  epoll_event events[64];
  for (;;) {
    auto now = Clock::now();
    for (; next < total && dueAt(next) <= now; next++) {
      conns[next % conns.size()]->due(dueAt(next));
    }
    const bool outstanding =
        std::any_of(conns.begin(), conns.end(), [](const auto& c) { return !c->idle(); });
    if ((next == total && !outstanding) || now >= give_up) {
      break;
    }
    const auto wait = next < total ? dueAt(next) - now : give_up - now;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    const int n = ::epoll_pwait2(ep, events, 64, &ts, nullptr);
    if (n < 0 && errno != EINTR) {
      const int err = errno;
      cleanup();
      return failErrno("epoll_pwait2", err);
    }
    for (int i = 0; i < n; i++) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (!c->readable()) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, c->fd(), nullptr);
      }
    }
  }
  for (auto& c : conns) {
    c->abandon();
  }
  cleanup();

  std::sort(tally.latency_ms.begin(), tally.latency_ms.end());
  OpenLoopResult r;
  r.sent = tally.sent;
  r.completed = tally.completed;
  r.errors = tally.errors + (total - next);
  r.p50_ms = percentile(tally.latency_ms, 0.50);
  r.p99_ms = percentile(tally.latency_ms, 0.99);
  r.p999_ms = percentile(tally.latency_ms, 0.999);
  r.max_ms = tally.latency_ms.empty() ? 0 : tally.latency_ms.back();
  r.mean_send_lag_us = tally.sent ? tally.lag_us_sum / static_cast<double>(tally.sent) : 0;
  return r;
}

}  // namespace

Result<OpenLoopResult> runOpenLoop(const NetNs& ns, const OpenLoopOptions& opts) {
  if (opts.rate <= 0 || opts.connections <= 0) {
    return fail("open loop: rate and connections must be positive");
  }
  Result<OpenLoopResult> out = fail("open loop: generator did not run");
  std::thread t([&] {
    auto in = ns.enter();  // this thread only
    if (!in) {
      out = std::unexpected(in.error());
      return;
    }
    out = generate(opts);
  });
  t.join();
  return out;
}

}  // namespace meshgate::test
