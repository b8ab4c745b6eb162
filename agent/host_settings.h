// Host settings the agent changes outside bpffs (today: forwarding on balancer
// interfaces, which bpf_fib_lookup() needs), recorded in the pinned mg_host_settings map
// before the first change so that `meshgate-agent --detach` restores them, whatever
// happened to the agents in between.
#pragma once

#include <string>
#include <vector>

#include "meshgate/result.h"

namespace meshgate::agent {

// Sets /proc/sys/<sysctl> to `value`. If it held something else, its old value is
// recorded under `pin_root` first (unless an earlier agent already recorded one: that
// is the host's own). Returns whether the setting changed.
Result<bool> changeSysctl(const std::string& pin_root, const std::string& sysctl,
                          const std::string& value);

struct RestoredSetting {
  std::string sysctl;  // below /proc/sys
  std::string value;   // written back
  std::string error;   // empty: restored
};

// The recorded settings of `pin_root` (none if it has no mg_host_settings map).
Result<std::vector<RestoredSetting>> recordedSysctls(const std::string& pin_root);

// Writes each recorded value back, filling in `error` for those that cannot be (an
// interface gone since).
void restoreSysctls(std::vector<RestoredSetting>& settings);

}  // namespace meshgate::agent
