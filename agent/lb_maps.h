// The xdp_lb maps as the agent, meshgatectl and tests see them: file descriptors opened
// from the pins under the pin root (names from include/meshgate/abi/lb.h), plus typed
// readers that sum per-CPU values.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "agent/bpf_util.h"
#include "meshgate/abi/lb.h"
#include "meshgate/abi/quic.h"
#include "meshgate/result.h"

namespace meshgate::agent {

struct LbMaps {
  UniqueFd vips, vip_filter, vip_addrs, rings, nexthops, quic_configs, quic_servers, backends,
      conntrack, frags, globals, conn_rate, lb_stats, lb_drops, vip_stats, backend_stats;

  // Opens every map pinned at <pin_root>/<name>. Fails naming the first missing pin.
  static Result<LbMaps> openPinned(const std::string& pin_root);
};

struct VipEntry {
  mg_vip_key key;
  mg_vip_info info;
};

struct BackendEntry {
  uint32_t id;
  mg_backend backend;
};

struct CounterValue {
  std::string name;  // lower-case ABI name: "ct_hit", "no_ring"
  std::string help;
  uint64_t value;
};

Result<std::vector<VipEntry>> readVips(int vips_fd);
// Every backend slot with MG_BACKEND_F_LIVE.
Result<std::vector<BackendEntry>> readLiveBackends(int backends_fd);
// Every backend slot ever used (gen != 0), live or not.
Result<std::vector<BackendEntry>> readUsedBackends(int backends_fd);
// Sum over CPUs of one mg_traffic entry.
Result<mg_traffic> readTraffic(int fd, uint32_t id, const char* map_name);
// mg_lb_stats / mg_lb_drops by name, summed over CPUs, in enum order.
Result<std::vector<CounterValue>> readLbCounters(int lb_stats_fd);
Result<std::vector<CounterValue>> readLbDrops(int lb_drops_fd);
// The Maglev table of a VIP as installed (slots 1..M; empty if none), via mg_rings.
Result<std::vector<uint32_t>> readRing(int rings_fd, uint32_t vip_id);

// Printable name of a VIP key: "198.18.100.1:80/tcp", "[fd00::1]:*/udp".
std::string vipKeyName(const mg_vip_key& key);
// Printable address of a backend: "198.18.1.10".
std::string addressText(const __be32* words, uint8_t family);

// Lower-case names of the ABI enums, indexed by enum value.
const std::vector<std::pair<std::string, std::string>>& lbCounterNames();
const std::vector<std::pair<std::string, std::string>>& lbDropNames();
const std::vector<std::pair<std::string, std::string>>& decapCounterNames();
// mg_decap_stats by name, summed over CPUs, in enum order.
Result<std::vector<CounterValue>> readDecapCounters(int decap_stats_fd);

}  // namespace meshgate::agent
