// Turns an AgentConfig into xdp_lb map entries and keeps them in sync, writing only what
// changed. It owns the id spaces (VIP ids index mg_rings and mg_vip_stats; backend ids
// index mg_backends and mg_backend_stats, one per VIP and address) and the double-buffered Maglev
// tables: every VIP has two inner tables pinned at <pin_root>/rings/vip<id>_<0|1>; an update writes
// the changed slots into the spare one (batched), then swaps the mg_rings entry, so a packet never
// sees half of an old table and half of a new one.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/bpf_util.h"
#include "agent/config.h"
#include "agent/lb_maps.h"
#include "agent/maglev.h"
#include "meshgate/result.h"

namespace meshgate::agent {

struct ApplyStats {
  uint32_t vips_added = 0, vips_changed = 0, vips_removed = 0, vips_unchanged = 0;
  uint32_t backends_added = 0, backends_removed = 0;
  uint64_t ring_slots_written = 0;  // table slots written into the kernel
};

class LbState {
 public:
  // Adopts what is installed under pin_root (after the maps were loaded and pinned):
  // VIP and backend ids, and both tables of every VIP, so a restarted agent continues
  // exactly where the previous one stopped.
  static Result<LbState> adopt(const std::string& pin_root);

  // Writes `cfg` into the maps. On error the maps may hold part of the new config; the
  // agent reports it and the next apply converges.
  Result<ApplyStats> apply(const AgentConfig& cfg);

  // The fd of xdp_lb's mg_quic_set_key program (LoadedProgram::quicKeyProgFd), not owned:
  // apply() runs it to install the AES keys of encrypted QUIC-LB configs and to clear the
  // keys of configs that lose theirs or go away. Without it (-1, the default) encrypted
  // configs are written but stay undecodable in the kernel (counted as quic_no_decoder).
  void setQuicKeyProgram(int fd) { quic_key_prog_fd_ = fd; }

  const LbMaps& maps() const { return maps_; }
  // Backend id of an address behind a VIP, if installed.
  std::optional<uint32_t> backendId(uint32_t vip_id, const IpAddr& addr) const;
  // VIP id of a configured VIP, if installed.
  std::optional<uint32_t> vipId(const VipConfig& vip) const;
  // The installed backends of `vip` that own no slot of its active table (drained by
  // weight 0 or by a failed health check, by whichever agent wrote it last). Empty when the
  // VIP or its table is not installed. A restarted agent reads its health verdicts here.
  std::set<IpAddr> slotlessBackends(const VipConfig& vip) const;

 private:
  struct RingPair {
    std::array<UniqueFd, 2> fd;
    std::array<std::vector<uint32_t>, 2> shadow;  // kernel content, header slot included
    int active = -1;                              // which one mg_rings points at
  };
  using VipKeyBytes = std::array<uint8_t, sizeof(mg_vip_key)>;

  explicit LbState(std::string pin_root, LbMaps maps)
      : pin_root_(std::move(pin_root)), maps_(std::move(maps)) {}

  Result<void> writeGlobals(const AgentConfig& cfg);
  // Sets exactly the filter bits of these VIPs' addresses, writing only changed words, and
  // exactly their (address, protocol) entries in mg_vip_addrs.
  Result<void> writeVipAddresses(const std::vector<const VipConfig*>& vips);
  Result<uint32_t> ensureBackend(uint32_t vip_id, const IpAddr& addr, ApplyStats& stats);
  Result<void> removeBackend(uint32_t vip_id, const IpAddr& addr);
  // Removes the backends of `vip_id` whose address is not in `wanted`.
  Result<void> removeBackendsNotIn(uint32_t vip_id, const std::set<IpAddr>& wanted,
                                   ApplyStats& stats);
  Result<void> freeStaleBackendsIfShort(const AgentConfig& cfg, ApplyStats& stats);
  Result<uint32_t> allocVipId();
  Result<uint64_t> writeRing(uint32_t vip_id, std::span<const uint32_t> table);
  Result<void> removeVip(const VipKeyBytes& key, uint32_t vip_id);
  // Writes the VIP's QUIC-LB configs and server IDs, deleting the ones it no longer has.
  Result<void> writeQuic(uint32_t vip_id, const VipConfig& vip,
                         const std::map<IpAddr, uint32_t>& backend_ids);
  // Runs mg_quic_set_key: installs `key` at (vip id, config rotation), or clears it.
  Result<void> setQuicKey(uint32_t vip_id, uint8_t config_rotation,
                          const std::optional<std::array<uint8_t, 16>>& key);
  Result<void> openRingPair(uint32_t vip_id, RingPair& pair);
  std::string ringPin(uint32_t vip_id, int which) const;

  std::string pin_root_;
  LbMaps maps_;
  std::map<VipKeyBytes, uint32_t> vip_ids_;
  std::map<VipKeyBytes, VipConfig> applied_;                     // last VIP config written per key
  std::map<std::pair<uint32_t, IpAddr>, uint32_t> backend_ids_;  // (vip id, address)
  std::set<uint32_t> used_backend_ids_;
  uint32_t next_backend_id_ = 1;  // id 0 is never used: an unset slot must not route
  uint32_t max_backend_gen_ = 0;  // generations only grow, across restarts too
  std::map<uint32_t, RingPair> rings_;
  MaglevBuilder maglev_;          // one for all VIPs: it keeps its working memory between builds
  std::vector<uint64_t> filter_;  // kernel content of mg_vip_filter
  std::map<VipKeyBytes, uint32_t> vip_addrs_;  // kernel content of mg_vip_addrs
  // Keys written into mg_quic_configs / mg_quic_servers, per VIP id.
  std::map<uint32_t, std::set<std::array<uint8_t, sizeof(mg_quic_config_key)>>> quic_configs_;
  std::map<uint32_t, std::set<std::array<uint8_t, sizeof(mg_quic_server_key)>>> quic_servers_;
  // Keys installed in mg_quic_keys by this agent (the kernel's copy cannot be read back);
  // empty after adopt(), so the first apply installs every key again.
  std::map<std::array<uint8_t, sizeof(mg_quic_config_key)>, std::array<uint8_t, 16>> quic_keys_;
  int quic_key_prog_fd_ = -1;
  bool warned_no_key_prog_ = false;
};

// The ABI key of a configured VIP.
mg_vip_key vipKeyOf(const VipConfig& vip);

// mg_globals as `cfg` sets it: encapsulation sources and TTL (which xdp_decap also reads
// to know a balancer's packets), hash seed, UDP idle time, flood guard.
mg_lb_globals globalsOf(const AgentConfig& cfg);

}  // namespace meshgate::agent
