// Host settings the agent changes outside bpffs (today: forwarding on balancer
// interfaces, which bpf_fib_lookup() needs), recorded in the pinned mg_host_settings map
// before the first change so that `meshgate-agent --detach` restores them, whatever
// happened to the agents in between. Only forwarding sysctls of an interface are ever
// recorded or written back, and only in the network namespace they were recorded in.
#pragma once

#include <string>
#include <vector>

#include "meshgate/result.h"

namespace meshgate::agent {

// "net/ipv4/conf/eth0/forwarding" or its ipv6 twin, for a valid interface name.
bool isForwardingSysctl(const std::string& sysctl);

// Sets /proc/sys/<sysctl> (a forwarding sysctl) to `value`. If it held something else,
// its old value is recorded under `pin_root` first (unless an earlier agent already
// recorded one: that is the host's own); a record this call made is dropped again if the
// write fails. Returns whether the setting changed.
Result<bool> changeSysctl(const std::string& pin_root, const std::string& sysctl,
                          const std::string& value);

struct RestoredSetting {
  std::string sysctl;  // below /proc/sys
  std::string value;   // written back
  std::string error;   // empty: restored
};

// The recorded settings of `pin_root` (none if it has no mg_host_settings map). Fails
// without side effects if a record is not a forwarding sysctl with a value 0..2, or was
// made in another network namespace than the caller's.
Result<std::vector<RestoredSetting>> recordedSysctls(const std::string& pin_root);

// Writes each recorded value back, filling in `error` for those that cannot be (an
// interface gone since, a read-only /proc/sys).
void restoreSysctls(std::vector<RestoredSetting>& settings);

}  // namespace meshgate::agent
