#include "agent/health.h"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>

namespace meshgate::agent {
namespace {

using std::chrono::milliseconds;

// Where in [0, interval) a new target's first probe falls: the same for the same target
// on every start, different across targets.
milliseconds firstProbeOffset(const std::string& vip_key, const IpAddr& addr,
                              uint32_t interval_ms) {
  const size_t h = std::hash<std::string>{}(vip_key + "/" + addr.toString());
  return milliseconds(h % interval_ms);
}

std::string probeName(const std::string& vip, const IpAddr& addr) {
  return "vip '" + vip + "': backend " + addr.toString();
}

}  // namespace

Result<HealthChecker> HealthChecker::create() {
  UniqueFd epfd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epfd.valid()) {
    return fail(std::string("health checks: epoll_create1: ") + std::strerror(errno));
  }
  // Half the open-file limit at most, so that probes never starve the agent of descriptors
  // (map and link fds, the metrics listener); 4096 at most, plenty for LAN round trips.
  rlimit nofile{};
  size_t cap = 4096;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    cap = std::clamp<size_t>(nofile.rlim_cur / 2, 16, cap);
  }
  return HealthChecker(std::move(epfd), cap);
}

void HealthChecker::configure(
    const AgentConfig& cfg, Clock::time_point now,
    const std::function<bool(const VipConfig&, const IpAddr&)>& starts_down) {
  std::map<Key, Target> next;
  for (const auto& vip : cfg.vips) {
    if (!vip.health_check) {
      continue;
    }
    const std::string vip_key = vipKeyString(vip);
    for (const auto& b : vip.backends) {
      Key key{vip_key, b.address};
      auto old = targets_.find(key);
      if (old != targets_.end() && old->second.check == *vip.health_check) {
        // The node moves (epoll must follow); the VIP may have been renamed.
        next.emplace(key, std::move(old->second)).first->second.vip = vip.name;
        continue;
      }
      Target t;
      t.vip = vip.name;
      t.address = b.address;
      t.check = *vip.health_check;
      if (old != targets_.end()) {
        t.up = old->second.up;  // a changed check keeps the verdict until it says otherwise
      } else if (starts_down && starts_down(vip, b.address)) {
        t.up = false;
      }
      t.next = now + firstProbeOffset(vip_key, b.address, t.check.interval_ms);
      next.emplace(std::move(key), std::move(t));
    }
  }
  // Targets no longer configured close their probes (which leaves epoll); the kept ones
  // are re-registered with their new node's address.
  targets_ = std::move(next);
  in_flight_ = 0;
  deadlines_ = {};
  starts_ = {};
  for (auto& [key, t] : targets_) {
    in_flight_ += t.probe.valid();
    if (t.probe.valid()) {
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.ptr = &t;
      ::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, t.probe.get(), &ev);
    }
    schedule(t);
  }
}

void HealthChecker::schedule(Target& t) {
  t.timer = ++timers_;
  if (t.probe.valid()) {
    deadlines_.push({t.deadline, t.timer, &t});
  } else {
    starts_.push({t.next, t.timer, &t});
  }
}

void HealthChecker::skipOutdated(DueQueue& q) {
  while (!q.empty() && q.top().timer != q.top().target->timer) {
    q.pop();
  }
}

std::string HealthChecker::start(Target& t, Clock::time_point now) {
  t.probes++;
  t.next = now + milliseconds(t.check.interval_ms);
  const int family = t.address.isV4() ? AF_INET : AF_INET6;
  UniqueFd s(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.valid()) {
    return finish(t, false, std::string("socket: ") + std::strerror(errno));
  }
  sockaddr_storage ss{};
  socklen_t len;
  if (t.address.isV4()) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(t.check.port);
    std::memcpy(&a->sin_addr, t.address.words.data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(t.check.port);
    std::memcpy(&a->sin6_addr, t.address.words.data(), 16);
    len = sizeof(sockaddr_in6);
  }
  // No lingering half-open state on the backend: a completed connect is reset at close.
  const linger lg{1, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    return finish(t, true, "");
  }
  if (errno != EINPROGRESS) {
    return finish(t, false, std::strerror(errno));  // no route, refused at once, no port
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = &t;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, s.get(), &ev) != 0) {
    return finish(t, false, std::string("epoll_ctl: ") + std::strerror(errno));
  }
  t.probe = std::move(s);
  t.deadline = now + milliseconds(t.check.timeout_ms);
  in_flight_++;
  return "";
}

std::string HealthChecker::finish(Target& t, bool ok, std::string error) {
  if (t.probe.valid()) {
    t.probe.reset();
    in_flight_--;
  }
  if (!ok) {
    t.failures++;
    t.last_error = std::move(error);
  }
  if (ok == t.up) {
    t.streak = 0;
    return "";
  }
  t.streak++;
  if (t.streak < (t.up ? t.check.fall : t.check.rise)) {
    return "";
  }
  t.up = ok;
  t.streak = 0;
  const std::string probes = std::to_string(ok ? t.check.rise : t.check.fall);
  if (ok) {
    t.ups++;
    return probeName(t.vip, t.address) + " up (" + probes +
           " good probes of :" + std::to_string(t.check.port) + ")";
  }
  t.downs++;
  return probeName(t.vip, t.address) + " down (" + probes +
         " failed probes of :" + std::to_string(t.check.port) + "; last: " + t.last_error + ")";
}

std::vector<std::string> HealthChecker::run(Clock::time_point now) {
  std::vector<std::string> changes;
  auto note = [&](std::string line) {
    if (!line.empty()) {
      changes.push_back(std::move(line));
    }
  };
  std::array<epoll_event, 256> events;
  int n;
  while ((n = ::epoll_wait(epfd_.get(), events.data(), static_cast<int>(events.size()), 0)) > 0) {
    for (int i = 0; i < n; i++) {
      auto* t = static_cast<Target*>(events[i].data.ptr);
      int err = 0;
      socklen_t len = sizeof(err);
      if (::getsockopt(t->probe.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
      }
      std::string line = finish(*t, err == 0, err ? std::strerror(err) : "");
      schedule(*t);
      note(std::move(line));
    }
    if (n < static_cast<int>(events.size())) {
      break;
    }
  }
  // Only the targets that are due are visited: the cost of a wakeup does not grow with the
  // number of backends.
  for (skipOutdated(deadlines_); !deadlines_.empty() && deadlines_.top().at <= now;
       skipOutdated(deadlines_)) {
    Target& t = *deadlines_.top().target;
    deadlines_.pop();
    std::string line =
        finish(t, false, "no answer within " + std::to_string(t.check.timeout_ms) + " ms");
    schedule(t);  // before anything that may throw: a target must never lose its entry
    note(std::move(line));
  }
  // At the cap, a due probe starts at a later wakeup.
  for (skipOutdated(starts_);
       !starts_.empty() && starts_.top().at <= now && in_flight_ < max_in_flight_;
       skipOutdated(starts_)) {
    Target& t = *starts_.top().target;
    starts_.pop();
    std::string line = start(t, now);
    schedule(t);
    note(std::move(line));
  }
  return changes;
}

int HealthChecker::msUntilNext(Clock::time_point now) const {
  if (targets_.empty()) {
    return -1;
  }
  Clock::time_point soonest = Clock::time_point::max();
  for (DueQueue* q : {&deadlines_, &starts_}) {
    skipOutdated(*q);
    if (!q->empty()) {
      soonest = std::min(soonest, q->top().at);
    }
  }
  // Rounded up, so that the wakeup finds the probe due rather than 1 ms early.
  const auto ms = soonest <= now ? 0 : std::chrono::ceil<milliseconds>(soonest - now).count();
  return static_cast<int>(std::clamp<int64_t>(ms, kMinWakeMs, 60'000));
}

bool HealthChecker::isDown(const VipConfig& vip, const IpAddr& backend) const {
  return isDown(vipKeyString(vip), backend);
}

bool HealthChecker::isDown(const std::string& vip_key, const IpAddr& backend) const {
  auto it = targets_.find(Key{vip_key, backend});
  return it != targets_.end() && !it->second.up;
}

size_t HealthChecker::probesInFlight() const {
  return in_flight_;
}

bool HealthChecker::failingOpen(const VipConfig& vip) const {
  if (!vip.health_check) {
    return false;
  }
  const std::string vip_key = vipKeyString(vip);
  bool any_weighted = false;
  for (const auto& b : vip.backends) {
    if (b.weight > 0) {
      any_weighted = true;
      if (!isDown(vip_key, b.address)) {
        return false;
      }
    }
  }
  return any_weighted;
}

AgentConfig HealthChecker::effective(const AgentConfig& cfg) const {
  AgentConfig out = cfg;
  for (auto& vip : out.vips) {
    if (!vip.health_check) {
      continue;
    }
    if (failingOpen(vip)) {
      continue;  // every weighted backend is down: keep them all
    }
    const std::string vip_key = vipKeyString(vip);
    for (auto& b : vip.backends) {
      if (isDown(vip_key, b.address)) {
        b.weight = 0;
      }
    }
  }
  return out;
}

std::string HealthChecker::renderPrometheus(const AgentConfig& cfg) const {
  if (targets_.empty()) {
    return "";
  }
  std::string out =
      "# HELP meshgate_vip_health_fail_open 1 while every weighted backend of the VIP is down "
      "and all keep their weights.\n"
      "# TYPE meshgate_vip_health_fail_open gauge\n";
  for (const auto& vip : cfg.vips) {
    if (vip.health_check) {
      out += "meshgate_vip_health_fail_open{vip=\"" + vip.name + "\"} " +
             (failingOpen(vip) ? "1\n" : "0\n");
    }
  }
  out +=
      "# HELP meshgate_backend_healthy 1 while the backend passes its health check.\n"
      "# TYPE meshgate_backend_healthy gauge\n";
  auto labels = [](const Target& t) {
    return "{vip=\"" + t.vip + "\",backend=\"" + t.address.toString() + "\"}";
  };
  for (const auto& [_, t] : targets_) {
    out += "meshgate_backend_healthy" + labels(t) + (t.up ? " 1\n" : " 0\n");
  }
  out +=
      "# HELP meshgate_backend_health_probes_total Health-check probes started.\n"
      "# TYPE meshgate_backend_health_probes_total counter\n";
  for (const auto& [_, t] : targets_) {
    out +=
        "meshgate_backend_health_probes_total" + labels(t) + " " + std::to_string(t.probes) + "\n";
  }
  out +=
      "# HELP meshgate_backend_health_failures_total Health-check probes that failed.\n"
      "# TYPE meshgate_backend_health_failures_total counter\n";
  for (const auto& [_, t] : targets_) {
    out += "meshgate_backend_health_failures_total" + labels(t) + " " + std::to_string(t.failures) +
           "\n";
  }
  out +=
      "# HELP meshgate_backend_health_transitions_total Times the backend went down or up.\n"
      "# TYPE meshgate_backend_health_transitions_total counter\n";
  for (const auto& [_, t] : targets_) {
    std::string l = labels(t);
    l.pop_back();
    out += "meshgate_backend_health_transitions_total" + l + ",to=\"down\"} " +
           std::to_string(t.downs) + "\n";
    out += "meshgate_backend_health_transitions_total" + l + ",to=\"up\"} " +
           std::to_string(t.ups) + "\n";
  }
  return out;
}

}  // namespace meshgate::agent
