// Active health checks of the balancer's backends: a TCP connect to each backend of every
// VIP with a health_check (agent/config.h), one probe in flight per backend, all driven
// from the agent's serve loop through one epoll fd. A backend goes down after `fall`
// failed probes in a row and up after `rise` good ones; effective() then gives the config
// with its weight at 0 (drained), which LbState applies like any other change: only the
// down backend's slots move, and its tracked flows stay where they are.
//
// Every balancer behind ECMP probes for itself. They agree when the backend is really down
// or up; while one balancer sees a failure the others do not, their tables differ in that
// backend's slots only, and each keeps its tracked flows.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "agent/bpf_util.h"
#include "agent/config.h"
#include "meshgate/result.h"

namespace meshgate::agent {

class HealthChecker {
 public:
  using Clock = std::chrono::steady_clock;

  // At most min(4096, half the open-file limit) probes are in flight at once; a due probe
  // beyond that starts at a later wakeup.
  static Result<HealthChecker> create();

  // Probes the backends of cfg's VIPs that have a health_check. A backend probed before
  // (same address under the same VIP, a VIP being known by its address, port and protocol
  // as the maps know it, so a renamed VIP is the same VIP) keeps its state and streak; a
  // new one starts up, its first probe spread over the interval so that a large config
  // does not probe all at once.
  // `starts_down` (optional) gives a new backend's first verdict instead: the agent uses it
  // at start-up for the backends the previous agent had drained.
  void configure(const AgentConfig& cfg, Clock::time_point now,
                 const std::function<bool(const VipConfig&, const IpAddr&)>& starts_down = {});

  // Poll it for POLLIN, then call run().
  int fd() const { return epfd_.get(); }
  // Finishes the probes that completed or timed out and starts the ones that are due.
  // Returns one line per backend that changed state ("vip 'web': backend 10.0.0.2 down
  // (2 failed probes of :8080; last: connection refused)"); empty when none did.
  std::vector<std::string> run(Clock::time_point now);
  // Milliseconds until run() has something to do (-1: nothing is probed), at least
  // kMinWakeMs: wakeups are batched (100 per second at most whatever the number of
  // backends; probes start up to kMinWakeMs late).
  // Const for its callers, but it drops outdated queue entries: call it from the thread
  // that calls run(), as everything else here.
  int msUntilNext(Clock::time_point now) const;

  // `cfg` with every down backend at weight 0. A VIP whose weighted backends are all down
  // keeps its weights (fail open: a wrong probe must not black-hole a whole service).
  AgentConfig effective(const AgentConfig& cfg) const;
  bool isDown(const VipConfig& vip, const IpAddr& backend) const;
  // Every backend of `vip` with weight > 0 is down, so effective() keeps their weights.
  bool failingOpen(const VipConfig& vip) const;
  size_t probesInFlight() const;

  // Prometheus lines: meshgate_backend_healthy{vip,backend} 0/1, the probe and transition
  // counts, and meshgate_vip_health_fail_open{vip} for cfg's VIPs with a health_check.
  std::string renderPrometheus(const AgentConfig& cfg) const;

 private:
  struct Target {
    std::string vip;  // its name, for log lines and labels
    IpAddr address;
    HealthCheckConfig check;
    bool up = true;
    uint32_t streak = 0;  // consecutive results that disagree with `up`
    uint64_t downs = 0, ups = 0, probes = 0, failures = 0;
    Clock::time_point next;      // when the next probe starts (no probe in flight)
    Clock::time_point deadline;  // when the probe in flight fails
    UniqueFd probe;              // the connecting socket, registered in epfd_
    std::string last_error;
    uint64_t timer = 0;  // the one live entry of this target in deadlines_ or starts_
  };
  using Key = std::pair<std::string, IpAddr>;  // vipKeyString(VIP), backend

  bool isDown(const std::string& vip_key, const IpAddr& backend) const;

  // When a target next needs run(): its probe's deadline, or its next start. Entries are
  // never removed but outdated: one whose `timer` is not its target's is skipped.
  struct Due {
    Clock::time_point at;
    uint64_t timer;
    Target* target;
    bool operator>(const Due& o) const { return at > o.at; }
  };
  using DueQueue = std::priority_queue<Due, std::vector<Due>, std::greater<>>;

  HealthChecker(UniqueFd epfd, size_t max_in_flight)
      : epfd_(std::move(epfd)), max_in_flight_(max_in_flight) {}
  // Starts a probe; a connect that fails at once is a result too. Returns the log line
  // when the backend changed state.
  [[nodiscard]] std::string start(Target& t, Clock::time_point now);
  // Records one probe's result; returns the log line when the backend changed state.
  [[nodiscard]] std::string finish(Target& t, bool ok, std::string error);
  // Queues t's next time (its deadline while a probe is in flight, else its next start),
  // outdating the entry it had.
  void schedule(Target& t);
  // Drops outdated entries from the top of q.
  static void skipOutdated(DueQueue& q);

  static constexpr int kMinWakeMs = 10;
  UniqueFd epfd_;
  size_t max_in_flight_;
  size_t in_flight_ = 0;
  std::map<Key, Target> targets_;  // nodes are stable: epoll events and queues point at them
  // Two queues, so that deadlines are met while starts wait for a free slot (at the cap).
  // Mutable: msUntilNext() drops outdated entries as it looks.
  mutable DueQueue deadlines_, starts_;
  uint64_t timers_ = 0;
};

}  // namespace meshgate::agent
