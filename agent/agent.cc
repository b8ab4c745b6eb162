#include "agent/agent.h"

#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>

#include "agent/host_settings.h"
#include "agent/log.h"

namespace meshgate::agent {
namespace {

// bpf_fib_lookup() refuses to route for an interface with forwarding off
// (BPF_FIB_LKUP_RET_FWD_DISABLED), so a balancer interface must forward. What it was
// before is recorded in the pins, for --detach to restore.
void enableForwarding(const std::string& pin_root, const std::string& ifname) {
  for (const char* family : {"ipv4", "ipv6"}) {
    const std::string sysctl = std::string("net/") + family + "/conf/" + ifname + "/forwarding";
    auto changed = changeSysctl(pin_root, sysctl, "1");
    if (!changed) {
      logWarn("interface '" + ifname + "': cannot enable " + family +
              " forwarding: " + changed.error().message +
              "; packets to backends will be dropped as fib_fwd_disabled");
    } else if (*changed) {
      logInfo("interface '" + ifname + "': enabled " + family + " forwarding (/proc/sys/" + sysctl +
              "; --detach restores it)");
    }
  }
}

std::vector<std::string> names(const std::vector<InterfaceConfig>& ifs) {
  std::vector<std::string> out;
  for (const auto& i : ifs) {
    out.push_back(i.name);
  }
  return out;
}

// What the config names on this host but its validator cannot see: the interfaces must
// exist. Checked before anything is written, so that a typo leaves the installed state alone.
Result<void> checkInterfacesExist(const AgentConfig& c) {
  for (const auto& [key, list] : {std::pair{"interfaces", &c.interfaces},
                                  std::pair{"decap_interfaces", &c.decap_interfaces}}) {
    for (size_t i = 0; i < list->size(); i++) {
      const std::string& name = (*list)[i].name;
      if (::if_nametoindex(name.c_str()) == 0) {
        return failErrno(
            c.source + ": " + key + "[" + std::to_string(i) + "].name: interface '" + name + "'",
            errno);
      }
    }
  }
  return {};
}

}  // namespace

std::string describe(const ApplyStats& s) {
  return "vips +" + std::to_string(s.vips_added) + " ~" + std::to_string(s.vips_changed) + " -" +
         std::to_string(s.vips_removed) + " =" + std::to_string(s.vips_unchanged) + ", backends +" +
         std::to_string(s.backends_added) + " -" + std::to_string(s.backends_removed) +
         ", table slots written " + std::to_string(s.ring_slots_written);
}

Result<Agent> Agent::start(ConfigPtr cfg) {
  Agent agent;
  agent.cfg_ = std::move(cfg);
  const AgentConfig& c = *agent.cfg_;
  // Whatever can fail on this host's account fails before the pinned state is touched: a
  // failed start leaves the previous agent's config serving.
  if (auto r = checkInterfacesExist(c); !r) {
    return std::unexpected(r.error());
  }
  if (c.metrics_listen) {
    auto m = MetricsServer::listen(*c.metrics_listen, c.pin_root);
    if (!m) {
      return fail(c.source + ": " + m.error().message);
    }
    agent.metrics_.emplace(std::move(*m));
  }
  if (auto dir = ensureBpffsDir(c.pin_root); !dir) {
    return std::unexpected(dir.error());
  }

  auto lb = LoadedProgram::load(XdpProgram::kLoadBalancer, {c.pin_root, c.conntrack_size});
  if (!lb) {
    return std::unexpected(lb.error());
  }
  agent.lb_.emplace(std::move(*lb));
  auto state = LbState::adopt(c.pin_root);
  if (!state) {
    return std::unexpected(state.error());
  }
  agent.state_.emplace(std::move(*state));
  agent.state_->setQuicKeyProgram(agent.lb_->quicKeyProgFd());
  auto health = HealthChecker::create();
  if (!health) {
    return std::unexpected(health.error());
  }
  agent.health_.emplace(std::move(*health));
  // A backend that the installed table gives no slot although its weight is above 0 was
  // drained by the previous agent's health check: it starts down, and takes traffic again
  // once it passes `rise` probes, rather than at once.
  std::map<std::string, std::set<IpAddr>> slotless;
  for (const auto& vip : c.vips) {
    if (vip.health_check) {
      slotless[vip.name] = agent.state_->slotlessBackends(vip);
    }
  }
  agent.health_->configure(
      c, std::chrono::steady_clock::now(), [&](const VipConfig& vip, const IpAddr& addr) {
        const auto it = slotless.find(vip.name);
        const bool weighted =
            std::any_of(vip.backends.begin(), vip.backends.end(),
                        [&](const auto& b) { return b.address == addr && b.weight > 0; });
        const bool down = weighted && it != slotless.end() && it->second.contains(addr);
        if (down) {
          logInfo("vip '" + vip.name + "': backend " + addr.toString() +
                  " starts down (drained in the installed table)");
        }
        return down;
      });
  const auto t0 = std::chrono::steady_clock::now();
  auto applied = agent.state_->apply(agent.health_->effective(c));
  if (!applied) {
    return std::unexpected(applied.error());
  }
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
  logInfo(c.source + ": applied in " + std::to_string(ms.count()) + " ms: " + describe(*applied));

  if (!c.decap_interfaces.empty()) {
    auto decap = LoadedProgram::load(XdpProgram::kDecap, {c.pin_root, 0});
    if (!decap) {
      return std::unexpected(decap.error());
    }
    agent.decap_.emplace(std::move(*decap));
  }
  if (auto r = agent.attachAll(); !r) {
    return std::unexpected(r.error());
  }
  if (c.metrics_listen) {
    logInfo("metrics on http://" + *c.metrics_listen + "/metrics");
  }
  return agent;
}

Result<void> Agent::attachAll() {
  const AgentConfig& c = *cfg_;
  for (const auto& ifc : c.interfaces) {
    enableForwarding(c.pin_root, ifc.name);
    auto r = lb_->attach(ifc.name, ifc.generic);
    if (!r) {
      return std::unexpected(r.error());
    }
    logInfo(*r);
  }
  if (auto r = detachOtherLinks(c.pin_root, XdpProgram::kLoadBalancer, names(c.interfaces)); !r) {
    return r;
  }
  for (const auto& ifc : c.decap_interfaces) {
    auto r = decap_->attach(ifc.name, ifc.generic);
    if (!r) {
      return std::unexpected(r.error());
    }
    logInfo(*r);
  }
  return detachOtherLinks(c.pin_root, XdpProgram::kDecap, names(c.decap_interfaces));
}

Result<ApplyStats> Agent::reload(ConfigPtr next) {
  if (auto ok = checkReloadable(*cfg_, *next); !ok) {
    reloads_rejected_++;
    return std::unexpected(ok.error());
  }
  // The health verdicts of backends that stay carry over; new backends start up. The
  // checker takes the new config only once it is applied: a rejected one changes nothing.
  auto applied = state_->apply(health_->effective(*next));
  if (!applied) {
    reloads_rejected_++;
    // Part of `next` may be in the maps already: apply the running config over it.
    if (auto restored = state_->apply(health_->effective(*cfg_)); !restored) {
      health_unapplied_ = true;
      return fail(applied.error().message + "; putting the running config back failed too (" +
                  restored.error().message + "), retrying every second");
    }
    return std::unexpected(applied.error());
  }
  reloads_applied_++;
  health_->configure(*next, std::chrono::steady_clock::now());
  health_unapplied_ = false;
  cfg_ = std::move(next);
  return applied;
}

std::string Agent::renderMetrics() const {
  return "# HELP meshgate_agent_config_reloads_total Config reloads (SIGHUP), by result.\n"
         "# TYPE meshgate_agent_config_reloads_total counter\n"
         "meshgate_agent_config_reloads_total{result=\"applied\"} " +
         std::to_string(reloads_applied_) +
         "\n"
         "meshgate_agent_config_reloads_total{result=\"rejected\"} " +
         std::to_string(reloads_rejected_) +
         "\n"
         "# HELP meshgate_agent_apply_pending 1 while the maps are behind the running config "
         "(an apply failed and is retried every second).\n"
         "# TYPE meshgate_agent_apply_pending gauge\n"
         "meshgate_agent_apply_pending " +
         (health_unapplied_ ? "1\n" : "0\n") + health_->renderPrometheus(*cfg_);
}

void Agent::checkHealth() {
  const auto changes = health_->run(std::chrono::steady_clock::now());
  if (changes.empty() && !health_unapplied_) {
    return;
  }
  for (const auto& line : changes) {
    logInfo(line);
  }
  // Rebuilt from the running VIPs, known as the checker knows them (a renamed VIP is the
  // same VIP; a removed one leaves the set).
  std::set<std::string> failing_open;
  for (const auto& vip : cfg_->vips) {
    const std::string key = vipKeyString(vip);
    const bool open = health_->failingOpen(vip);
    if (open) {
      failing_open.insert(key);
    }
    if (open != failing_open_.contains(key)) {
      if (open) {
        logWarn("vip '" + vip.name +
                "': every backend is failing its health check; all keep their weights "
                "(fail open) until one passes");
      } else {
        logInfo("vip '" + vip.name + "': a backend passes its health check again");
      }
    }
  }
  failing_open_ = std::move(failing_open);
  auto applied = state_->apply(health_->effective(*cfg_));
  if (!applied) {
    health_unapplied_ = true;  // retried at the next wakeup, within a second
    logError("health: cannot apply the backends' new states, retrying: " + applied.error().message);
    return;
  }
  health_unapplied_ = false;
  logInfo("health: applied: " + describe(*applied));
}

int Agent::serve(const std::string& config_path) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    logError(std::string("sigprocmask: ") + std::strerror(errno));
    return 1;
  }
  UniqueFd sfd(signalfd(-1, &mask, SFD_CLOEXEC));
  if (!sfd.valid()) {
    logError(std::string("signalfd: ") + std::strerror(errno));
    return 1;
  }
  logInfo("serving; SIGHUP reloads " + config_path + ", SIGTERM exits (XDP stays attached)");
  std::vector<pollfd> fds;
  for (;;) {
    fds.assign({{sfd.get(), POLLIN, 0}, {health_->fd(), POLLIN, 0}});
    const auto now = std::chrono::steady_clock::now();
    int timeout = health_->msUntilNext(now);
    if (health_unapplied_ && (timeout < 0 || timeout > 1000)) {
      timeout = 1000;  // retry a failed apply even with nothing to probe
    }
    if (metrics_) {
      metrics_->pollFds(fds);  // from fds[2] on
      const int client = metrics_->msUntilDeadline(now);
      timeout = client >= 0 && (timeout < 0 || client < timeout) ? client : timeout;
    }
    if (::poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno == EINTR) {
        continue;
      }
      logError(std::string("poll: ") + std::strerror(errno));
      return 1;
    }
    checkHealth();
    if (metrics_) {
      metrics_->handle(fds, 2, std::chrono::steady_clock::now(),
                       [this] { return renderMetrics(); });
    }
    if (!(fds[0].revents & POLLIN)) {
      continue;
    }
    signalfd_siginfo si{};
    if (::read(sfd.get(), &si, sizeof(si)) != sizeof(si)) {
      continue;
    }
    if (si.ssi_signo != SIGHUP) {
      logInfo("exiting on signal " + std::to_string(si.ssi_signo) +
              "; the data path stays attached (meshgate-agent --detach removes it)");
      return 0;
    }
    auto next = loadConfigFile(config_path);
    if (!next) {
      reloads_rejected_++;
      logError("config rejected, keeping the running one: " + next.error().message);
      continue;
    }
    auto applied = reload(*next);
    if (!applied) {
      logError("config rejected, keeping the running one: " + applied.error().message);
      continue;
    }
    logInfo(config_path + ": reloaded: " + describe(*applied));
  }
}

}  // namespace meshgate::agent
