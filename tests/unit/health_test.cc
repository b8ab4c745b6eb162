// Health checks of the balancer's backends (agent/health.h) against real sockets in a
// network namespace of the test's own: a listener answers, a closed port refuses, a
// backend behind a veth end without an address never answers. Time is given to run() explicitly, so
// the rise/fall counts and timeouts are exact; the test waits on the checker's epoll fd
// for connects to finish, never on a clock.
#include "agent/health.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "tests/lib/netns.h"

namespace meshgate::agent {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr uint16_t kPort = 8080;

IpAddr ip(const char* text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddr{});
}

// The one state change of a run() or round(): "" (and a failure) if there is not exactly one.
std::string onlyChange(const std::vector<std::string>& changes) {
  EXPECT_EQ(changes.size(), 1u);
  return changes.size() == 1 ? changes[0] : "";
}

UniqueFd listenOn(const char* addr) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(kPort);
  ::inet_pton(AF_INET, addr, &a.sin_addr);
  EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << addr;
  EXPECT_EQ(::listen(s.get(), 64), 0);
  return s;
}

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: a network namespace of its own";  // a failure in CI
    }
    auto ns = test::NetNs::create("health");
    ASSERT_TRUE(ns) << ns.error().message;
    ns_.emplace(std::move(*ns));
    // A backend that never answers: its SYNs leave through one end of a veth pair (to a
    // fixed neighbour, so no ARP either) and the other end, which has no address, drops them.
    for (std::vector<std::string> cmd :
         {std::vector<std::string>{"ip", "link", "add", "hc0", "type", "veth", "peer", "name",
                                   "hc1"},
          {"ip", "link", "set", "hc0", "up"},
          {"ip", "link", "set", "hc1", "up"},
          {"ip", "addr", "add", "198.18.220.1/24", "dev", "hc0"},
          {"ip", "neigh", "replace", "198.18.220.2", "lladdr", "02:00:00:00:00:02", "dev", "hc0",
           "nud", "permanent"}}) {
      auto r = ns_->run(cmd);
      ASSERT_TRUE(r) << r.error().message;
    }
    auto in = ns_->enter();
    ASSERT_TRUE(in) << in.error().message;
    in_.emplace(std::move(*in));
    auto hc = HealthChecker::create();
    ASSERT_TRUE(hc) << hc.error().message;
    hc_.emplace(std::move(*hc));
  }
  void TearDown() override {
    hc_.reset();
    in_.reset();
  }

  AgentConfig config(std::vector<const char*> backends, HealthCheckConfig check) {
    AgentConfig cfg;
    VipConfig vip;
    vip.name = "web";
    vip.address = ip("198.18.100.1");
    vip.port = kPort;
    vip.protocol = IPPROTO_TCP;
    vip.ring_size = 13;
    vip.health_check = check;
    for (const char* b : backends) {
      vip.backends.push_back({ip(b), 1, {}});
    }
    cfg.vips.push_back(vip);
    return cfg;
  }

  // One round at `now`: starts the due probes and waits (on the epoll fd) until each one
  // has finished, or has only its deadline left. Returns the state changes.
  std::vector<std::string> round(Clock::time_point now, bool expect_hang = false) {
    std::vector<std::string> changes = hc_->run(now);
    size_t hanging = expect_hang ? 1 : 0;
    while (hc_->probesInFlight() > hanging) {
      pollfd p{hc_->fd(), POLLIN, 0};
      EXPECT_EQ(::poll(&p, 1, 5000), 1) << "a loopback connect finishes at once";
      for (auto& c : hc_->run(now)) {
        changes.push_back(std::move(c));
      }
    }
    return changes;
  }

  // Configures `cfg` at t0 and runs its first probes at t0 + 1 s; the one to 198.18.220.2
  // hangs (its SYN goes into the veth and is dropped).
  void startWithHangingProbe(const AgentConfig& cfg, Clock::time_point t0) {
    hc_->configure(cfg, t0);
    EXPECT_TRUE(round(t0 + milliseconds(1000), /*expect_hang=*/true).empty());
    ASSERT_EQ(hc_->probesInFlight(), 1u) << "the probe of 198.18.220.2 hangs";
  }

  std::optional<test::NetNs> ns_;
  std::optional<test::ScopedNetnsEnter> in_;
  std::optional<HealthChecker> hc_;
};

TEST_F(HealthTest, FallRiseAndDrainedWeights) {
  UniqueFd b1 = listenOn("127.0.0.1");
  const auto cfg = config({"127.0.0.1", "127.0.0.2"}, {kPort, 100, 100, 2, 2});
  const auto t0 = Clock::now();
  hc_->configure(cfg, t0);
  EXPECT_EQ(hc_->effective(cfg).vips, cfg.vips) << "every backend starts up";
  EXPECT_LE(hc_->msUntilNext(t0), 100) << "first probes within one interval";

  // 127.0.0.2 refuses: down after exactly `fall` (2) probes.
  EXPECT_TRUE(round(t0 + milliseconds(100)).empty()) << "one failure is not enough";
  EXPECT_FALSE(hc_->isDown(cfg.vips[0], ip("127.0.0.2")));
  EXPECT_EQ(onlyChange(round(t0 + milliseconds(200))),
            "vip 'web': backend 127.0.0.2 down (2 failed probes of :8080; last: Connection "
            "refused)");
  EXPECT_TRUE(hc_->isDown(cfg.vips[0], ip("127.0.0.2")));
  EXPECT_FALSE(hc_->isDown(cfg.vips[0], ip("127.0.0.1")));
  const AgentConfig eff = hc_->effective(cfg);
  EXPECT_EQ(eff.vips[0].backends[0].weight, 1u);
  EXPECT_EQ(eff.vips[0].backends[1].weight, 0u) << "a down backend is drained";
  EXPECT_NE(hc_->renderPrometheus(cfg).find(
                "meshgate_backend_healthy{vip=\"web\",backend=\"127.0.0.2\"} 0\n"),
            std::string::npos);
  EXPECT_NE(hc_->renderPrometheus(cfg).find("meshgate_vip_health_fail_open{vip=\"web\"} 0\n"),
            std::string::npos);

  // A reload with the same check keeps the verdict.
  hc_->configure(cfg, t0 + milliseconds(250));
  EXPECT_TRUE(hc_->isDown(cfg.vips[0], ip("127.0.0.2")));

  // It listens again: up after exactly `rise` (2) good probes.
  UniqueFd b2 = listenOn("127.0.0.2");
  EXPECT_TRUE(round(t0 + milliseconds(300)).empty());
  EXPECT_EQ(onlyChange(round(t0 + milliseconds(400))),
            "vip 'web': backend 127.0.0.2 up (2 good probes of :8080)");
  EXPECT_EQ(hc_->effective(cfg).vips, cfg.vips);

  // Both gone: the VIP fails open and keeps its weights.
  b1.reset();
  b2.reset();
  round(t0 + milliseconds(500));
  EXPECT_EQ(round(t0 + milliseconds(600)).size(), 2u);
  EXPECT_TRUE(hc_->isDown(cfg.vips[0], ip("127.0.0.1")));
  EXPECT_TRUE(hc_->isDown(cfg.vips[0], ip("127.0.0.2")));
  EXPECT_EQ(hc_->effective(cfg).vips, cfg.vips) << "all down: fail open";
  EXPECT_TRUE(hc_->failingOpen(cfg.vips[0]));
  EXPECT_NE(hc_->renderPrometheus(cfg).find("meshgate_vip_health_fail_open{vip=\"web\"} 1\n"),
            std::string::npos);
}

TEST_F(HealthTest, AConnectThatFailsAtOnceCountsAndIsReported) {
  // No route to 10.9.9.9 in this namespace: connect() fails inside the call (ENETUNREACH),
  // before any event; run() must report the transition all the same.
  const auto cfg = config({"10.9.9.9"}, {kPort, 100, 100, 1, 1});
  const auto t0 = Clock::now();
  hc_->configure(cfg, t0);
  EXPECT_EQ(onlyChange(hc_->run(t0 + milliseconds(100))),
            "vip 'web': backend 10.9.9.9 down (1 failed probes of :8080; last: Network is "
            "unreachable)");
  EXPECT_EQ(hc_->probesInFlight(), 0u);
  EXPECT_EQ(hc_->effective(cfg).vips[0].backends[0].weight, 1u) << "its only backend: fail open";
}

TEST_F(HealthTest, AProbeInFlightSurvivesAReloadOfTheSameCheck) {
  const auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(
      startWithHangingProbe(config({"198.18.220.2"}, {kPort, 1000, 300, 1, 1}), t0));
  // Same check: the target (and its probe's epoll registration) moves to the new map.
  UniqueFd b1 = listenOn("127.0.0.1");
  hc_->configure(config({"198.18.220.2", "127.0.0.1"}, {kPort, 1000, 300, 1, 1}),
                 t0 + milliseconds(1100));
  EXPECT_EQ(hc_->probesInFlight(), 1u) << "the hanging probe is kept";
  const std::string change = onlyChange(hc_->run(t0 + milliseconds(1300)));
  EXPECT_NE(change.find("backend 198.18.220.2 down"), std::string::npos) << change;
}

TEST_F(HealthTest, AProbeWithoutAnswerFailsAtItsTimeout) {
  const auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(
      startWithHangingProbe(config({"198.18.220.2"}, {kPort, 1000, 300, 1, 1}), t0));
  EXPECT_TRUE(hc_->run(t0 + milliseconds(1299)).empty()) << "not before the timeout";
  EXPECT_EQ(onlyChange(hc_->run(t0 + milliseconds(1300))),
            "vip 'web': backend 198.18.220.2 down (1 failed probes of :8080; last: no answer "
            "within 300 ms)");
  EXPECT_EQ(hc_->probesInFlight(), 0u);
}

// At the cap on probes in flight, the due probes beyond it wait for a free slot, while the
// probes in flight still fail at their deadlines and free those slots: 30 backends that
// never answer, with room for 20 probes at a time.
TEST_F(HealthTest, AtTheCapDueProbesWaitWhileProbesInFlightStillTimeOut) {
  ASSERT_TRUE(ns_->run({"ip", "route", "add", "198.18.221.0/24", "via", "198.18.220.2"}));
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 40;  // the checker takes half: 20 in flight
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  auto hc = HealthChecker::create();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(hc) << hc.error().message;
  hc_.emplace(std::move(*hc));

  std::vector<std::string> addrs;
  for (int i = 1; i <= 30; i++) {
    addrs.push_back("198.18.221." + std::to_string(i));
  }
  std::vector<const char*> backends;
  for (const auto& a : addrs) {
    backends.push_back(a.c_str());
  }
  const auto t0 = Clock::now();
  hc_->configure(config(backends, {kPort, 1000, 300, 1, 1}), t0);
  // Every first probe falls in [t0, t0 + 1 s): all are due at t0 + 1 s.
  EXPECT_TRUE(hc_->run(t0 + milliseconds(1000)).empty());
  EXPECT_EQ(hc_->probesInFlight(), 20u) << "the cap";
  EXPECT_EQ(hc_->msUntilNext(t0 + milliseconds(1000)), 10) << "10 due, waiting for a slot";
  EXPECT_TRUE(hc_->run(t0 + milliseconds(1299)).empty()) << "nothing before the deadlines";
  EXPECT_EQ(hc_->probesInFlight(), 20u);
  // The 20 fail at their deadline, and the 10 that waited start in their slots.
  EXPECT_EQ(hc_->run(t0 + milliseconds(1300)).size(), 20u);
  EXPECT_EQ(hc_->probesInFlight(), 10u);
  EXPECT_EQ(hc_->run(t0 + milliseconds(1600)).size(), 10u) << "then those fail too";
  EXPECT_EQ(hc_->probesInFlight(), 0u);
  const VipConfig vip = config(backends, {kPort, 1000, 300, 1, 1}).vips[0];
  for (const auto& a : addrs) {
    EXPECT_TRUE(hc_->isDown(vip, ip(a.c_str()))) << a;
  }
  // Their next probes: an interval after each one started.
  EXPECT_EQ(hc_->msUntilNext(t0 + milliseconds(1600)), 400);
}

// A VIP is known by its address, port and protocol, as the maps know it: renamed, it keeps
// its backends' verdicts (a down backend must not get traffic back until a probe passes);
// on another port it is another VIP, whose backends start up.
TEST_F(HealthTest, ARenamedVipKeepsItsBackendsVerdicts) {
  UniqueFd b1 = listenOn("127.0.0.1");
  const auto t0 = Clock::now();
  const AgentConfig cfg = config({"127.0.0.1", "127.0.0.2"}, {kPort, 100, 100, 1, 1});
  hc_->configure(cfg, t0);
  EXPECT_EQ(onlyChange(round(t0 + milliseconds(100))),
            "vip 'web': backend 127.0.0.2 down (1 failed probes of :8080; last: Connection "
            "refused)");

  // The agent's reload order: the table from effective(next), then configure(next).
  AgentConfig renamed = cfg;
  renamed.vips[0].name = "shop";
  EXPECT_EQ(hc_->effective(renamed).vips[0].backends[1].weight, 0u) << "still drained";
  hc_->configure(renamed, t0 + milliseconds(150));
  EXPECT_TRUE(hc_->isDown(renamed.vips[0], ip("127.0.0.2")));
  EXPECT_EQ(hc_->effective(renamed).vips[0].backends[1].weight, 0u);
  EXPECT_NE(hc_->renderPrometheus(renamed).find(
                "meshgate_backend_healthy{vip=\"shop\",backend=\"127.0.0.2\"} 0\n"),
            std::string::npos)
      << hc_->renderPrometheus(renamed);
  UniqueFd b2 = listenOn("127.0.0.2");
  EXPECT_EQ(onlyChange(round(t0 + milliseconds(200))),
            "vip 'shop': backend 127.0.0.2 up (1 good probes of :8080)");

  // On another port it is another VIP: its backends start up, whatever the old verdicts.
  b2.reset();
  EXPECT_EQ(onlyChange(round(t0 + milliseconds(300))),
            "vip 'shop': backend 127.0.0.2 down (1 failed probes of :8080; last: Connection "
            "refused)");
  AgentConfig moved = renamed;
  moved.vips[0].port = kPort + 1;
  EXPECT_EQ(hc_->effective(moved).vips[0].backends[1].weight, 1u);
  hc_->configure(moved, t0 + milliseconds(350));
  EXPECT_FALSE(hc_->isDown(moved.vips[0], ip("127.0.0.2")));
}

TEST_F(HealthTest, RemovedBackendsAreNoLongerProbed) {
  UniqueFd b1 = listenOn("127.0.0.1");
  const auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(
      startWithHangingProbe(config({"127.0.0.1", "198.18.220.2"}, {kPort, 1000, 500, 1, 1}), t0));
  // The hanging one leaves the config: its probe is closed, nothing is reported for it.
  hc_->configure(config({"127.0.0.1"}, {kPort, 1000, 500, 1, 1}), t0 + milliseconds(1100));
  EXPECT_EQ(hc_->probesInFlight(), 0u);
  EXPECT_TRUE(hc_->run(t0 + milliseconds(1600)).empty());
  EXPECT_EQ(
      hc_->renderPrometheus(config({"127.0.0.1"}, {kPort, 1000, 500, 1, 1})).find("198.18.220.2"),
      std::string::npos);
  // No health_check at all: nothing to probe.
  AgentConfig none = config({"127.0.0.1"}, {});
  none.vips[0].health_check.reset();
  hc_->configure(none, t0 + milliseconds(1700));
  EXPECT_EQ(hc_->msUntilNext(t0 + milliseconds(1700)), -1);
}

}  // namespace
}  // namespace meshgate::agent
