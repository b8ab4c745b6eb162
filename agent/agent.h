// The agent's lifecycle: open, configure, load, attach, serve, detach. start() loads the
// programs (reusing pinned maps), adopts what a previous agent installed, writes the
// config into the maps and then attaches, so a program never runs on half a config.
// serve() applies the config file again on SIGHUP, runs the backends' health checks (a down
// backend is applied as drained) and returns on SIGTERM/SIGINT, leaving everything
// attached: traffic keeps flowing while no agent runs.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "agent/config.h"
#include "agent/datapath.h"
#include "agent/health.h"
#include "agent/lb_state.h"
#include "agent/metrics.h"
#include "meshgate/result.h"

namespace meshgate::agent {

class Agent {
 public:
  static Result<Agent> start(ConfigPtr cfg);

  // Validates `next` against the running config and writes what changed. On error the
  // running config stays: what of `next` was already written is put back (and if even that
  // fails, it is retried every second, as a failed health apply is).
  Result<ApplyStats> reload(ConfigPtr next);

  // The agent's own metrics, in the Prometheus text format: reloads applied and rejected,
  // and whether the maps are behind the running config (a failed apply being retried).
  std::string renderMetrics() const;

  // Waits for signals (and serves metrics when configured). Returns the exit code.
  int serve(const std::string& config_path);

  const AgentConfig& config() const { return *cfg_; }

 private:
  Agent() = default;
  Result<void> attachAll();
  // Runs the health checks that are due and applies the backends' new states, if any.
  void checkHealth();

  ConfigPtr cfg_;
  std::optional<LoadedProgram> lb_;
  std::optional<LoadedProgram> decap_;
  std::optional<LbState> state_;
  std::optional<MetricsServer> metrics_;
  std::optional<HealthChecker> health_;
  bool health_unapplied_ = false;  // the maps are behind the running config: retry the apply
  uint64_t reloads_applied_ = 0;
  uint64_t reloads_rejected_ = 0;
  std::set<std::string> failing_open_;  // vipKeyString of the VIPs failing open (logged once)
};

std::string describe(const ApplyStats& s);

}  // namespace meshgate::agent
