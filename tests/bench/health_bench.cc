// The agent's health checks at scale: CPU of the checking thread per probe, for 10,000
// backends probed together (HealthChecker: non-blocking connects through one epoll fd,
// a bounded number in flight), against a plain blocking connect() + close() per backend
// in the same run, which pays the same TCP handshake (on loopback both ends run in the
// caller's softirq) and nothing else. The ratio is the checker's own overhead.
//
// A second case is the steady state at a larger scale: 50,000 backends probed every 10 s,
// their probes spread over the interval, run() and msUntilNext() called every 10 ms (the
// agent's wakeup floor) for three intervals: what a wakeup costs beyond its due probes
// shows there, since only about 50 probes are due per wakeup.
//
// Everything in a network namespace of the benchmark's own: addresses of 127.0.0.0/8 (all
// local), one listener on port 8080 whose accepting thread is not counted. Time is given
// to run() explicitly; the rounds wait on the checker's epoll fd.
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

#include "agent/health.h"
#include "tests/lib/bench.h"
#include "tests/lib/netns.h"

namespace {

namespace ma = meshgate::agent;
namespace mt = meshgate::test;
using Clock = std::chrono::steady_clock;
constexpr int kBackends = 10000;
constexpr int kSpreadBackends = 50000;
constexpr uint16_t kPort = 8080;
constexpr int kRounds = 7;

double threadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& what);

ma::IpAddr backend(int i) {
  // 127.1.0.0 + i, distinct for every i: the whole /8 is local on lo.
  const int j = i + 65536;
  auto a = ma::IpAddr::parse("127." + std::to_string(j >> 16) + "." + std::to_string(j >> 8 & 255) +
                             "." + std::to_string(j & 255));
  return a.value_or(ma::IpAddr{});
}

ma::AgentConfig config(int backends, ma::HealthCheckConfig check) {
  ma::AgentConfig cfg;
  ma::VipConfig vip;
  vip.name = "bench";
  vip.address = *ma::IpAddr::parse("198.18.100.1");
  vip.port = kPort;
  vip.protocol = IPPROTO_TCP;
  vip.ring_size = 65537;
  vip.health_check = check;
  for (int i = 0; i < backends; i++) {
    vip.backends.push_back({backend(i), 1, {}});
  }
  cfg.vips.push_back(vip);
  return cfg;
}

// CPU of the calling thread per backend for `backends` blocking connect() + close().
double blockingConnects(int backends) {
  const double b0 = threadCpuNs();
  for (int i = 0; i < backends; i++) {
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const linger lg{1, 0};
    ::setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kPort);
    std::memcpy(&a.sin_addr, backend(i).words.data(), 4);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      die("baseline connect failed");
    }
    ::close(s);
  }
  return (threadCpuNs() - b0) / backends;
}

void die(const std::string& what) {
  std::fprintf(stderr, "health_bench: %s\n", what.c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;  // the checker caps probes at half of it
  setrlimit(RLIMIT_NOFILE, &nofile);
  auto ns = mt::NetNs::create("hbench");
  if (!ns) {
    die(ns.error().message);
  }
  auto in = ns->enter();
  if (!in) {
    die(in.error().message);
  }

  // The listener: accepted and closed by a thread of its own (not counted).
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_port = htons(kPort);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 || ::listen(lfd, 65535)) {
    die("listen");
  }
  std::atomic<bool> stop{false};
  std::thread acceptor([&] {
    while (!stop) {
      pollfd p{lfd, POLLIN, 0};
      if (::poll(&p, 1, 100) == 1) {
        const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          ::close(c);
        }
      }
    }
  });

  const ma::AgentConfig cfg = config(kBackends, ma::HealthCheckConfig{kPort, 1000, 1000, 2, 3});
  auto hc = ma::HealthChecker::create();
  if (!hc) {
    die(hc.error().message);
  }
  const auto t0 = Clock::now();
  hc->configure(cfg, t0);

  std::vector<double> ours, bare;
  for (int r = 1; r <= kRounds; r++) {
    // Ours: every backend is due at the round's time; probes start as slots free up.
    const auto now = t0 + std::chrono::seconds(r);
    const double c0 = threadCpuNs();
    auto changes = hc->run(now);
    // Done when nothing is in flight and nothing is due: the next probes are then an
    // interval away (msUntilNext() says at least its 10 ms floor while any is still due).
    while (hc->probesInFlight() > 0 || hc->msUntilNext(now) <= 10) {
      if (hc->probesInFlight() > 0) {
        pollfd p{hc->fd(), POLLIN, 0};
        ::poll(&p, 1, 1000);
      }
      for (auto& c : hc->run(now)) {
        changes.push_back(std::move(c));
      }
    }
    ours.push_back((threadCpuNs() - c0) / kBackends);
    if (!changes.empty()) {
      die("a backend changed state: " + changes.front());
    }
    // Baseline: the same handshakes, one blocking connect at a time.
    bare.push_back(blockingConnects(kBackends));
  }

  // Steady state: probes spread over a 10 s interval, a wakeup every 10 ms.
  constexpr int kIntervalMs = 10000, kWakeMs = 10, kIntervals = 3;

  auto spread = ma::HealthChecker::create();
  if (!spread) {
    die(spread.error().message);
  }
  const auto s0 = Clock::now();
  spread->configure(config(kSpreadBackends, ma::HealthCheckConfig{kPort, kIntervalMs, 1000, 2, 3}),
                    s0);
  std::vector<double> steady, steady_bare;
  uint64_t wakeups = 0;
  for (int r = 0; r < kIntervals; r++) {
    const double c0 = threadCpuNs();
    for (int step = 1; step <= kIntervalMs / kWakeMs; step++) {
      const auto now = s0 + std::chrono::milliseconds(r * kIntervalMs + step * kWakeMs);
      auto changes = spread->run(now);
      while (spread->probesInFlight() > 0) {
        pollfd p{spread->fd(), POLLIN, 0};
        ::poll(&p, 1, 1000);
        for (auto& c : spread->run(now)) {
          changes.push_back(std::move(c));
        }
      }
      if (!changes.empty()) {
        die("a backend changed state: " + changes.front());
      }
      spread->msUntilNext(now);
      wakeups++;
    }
    steady.push_back((threadCpuNs() - c0) / kSpreadBackends);
    steady_bare.push_back(blockingConnects(kSpreadBackends));
  }
  stop = true;
  acceptor.join();
  ::close(lfd);

  mt::BenchReport out("health");
  char note[256];
  std::snprintf(note, sizeof note,
                "%d backends per round, %d rounds, median (ours %.0f-%.0f ns); every probe "
                "succeeded; CPU of the probing thread (CLOCK_THREAD_CPUTIME_ID)",
                kBackends, kRounds, mt::minOf(ours), mt::maxOf(ours));
  out.add({"tcp_probe_10k_backends", "cpu_ns_per_probe", "ns", mt::median(ours), mt::median(bare),
           "blocking connect() + close() per backend", true, note});
  std::snprintf(note, sizeof note,
                "%d backends, 10 s interval, a wakeup every 10 ms (%llu in all), %d intervals, "
                "median (ours %.0f-%.0f ns); CPU of the probing thread per probe, wakeups "
                "included",
                kSpreadBackends, static_cast<unsigned long long>(wakeups), kIntervals,
                mt::minOf(steady), mt::maxOf(steady));
  out.add({"tcp_probe_50k_backends_spread", "cpu_ns_per_probe", "ns", mt::median(steady),
           mt::median(steady_bare), "blocking connect() + close() per backend", true, note});
  return out.finish(argc, argv);
}
