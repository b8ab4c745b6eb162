#include "agent/lb_state.h"

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>

#include "agent/log.h"
#include "agent/maglev.h"
#include "meshgate/abi/hash.h"

namespace meshgate::agent {
namespace {

constexpr uint32_t kNoRing = 0;

template <class T>
std::array<uint8_t, sizeof(T)> bytesOf(const T& v) {
  std::array<uint8_t, sizeof(T)> out;
  std::memcpy(out.data(), &v, sizeof(T));
  return out;
}

Result<std::vector<uint32_t>> readWholeArray(int fd, uint32_t entries, const std::string& what) {
  std::vector<uint32_t> keys(entries), values(entries);
  uint32_t out_batch = 0, count = entries;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_lookup_batch(fd, nullptr, &out_batch, keys.data(), values.data(), &count, &opts) !=
          0 &&
      errno != ENOENT) {
    return failErrno(what + ": batch lookup", errno);
  }
  values.resize(count);
  return values;
}

// Zeroes a per-CPU mg_traffic entry so a reused id starts from nothing.
Result<void> resetTraffic(int fd, uint32_t id, const char* map) {
  std::vector<mg_traffic> zeros(possibleCpus());
  return mapUpdate(fd, &id, zeros.data(), map);
}

}  // namespace

mg_vip_key vipKeyOf(const VipConfig& vip) {
  mg_vip_key key{};
  std::memcpy(key.addr, vip.address.words.data(), sizeof(key.addr));
  key.port = htons(vip.port);
  key.proto = vip.protocol;
  key.family = vip.address.family;
  return key;
}

std::string LbState::ringPin(uint32_t vip_id, int which) const {
  return pin_root_ + "/" MG_PIN_RINGS_DIR "/vip" + std::to_string(vip_id) + "_" +
         std::to_string(which);
}

Result<LbState> LbState::adopt(const std::string& pin_root) {
  auto maps = LbMaps::openPinned(pin_root);
  if (!maps) {
    return std::unexpected(maps.error());
  }
  if (auto dir = ensureBpffsDir(pin_root + "/" MG_PIN_RINGS_DIR); !dir) {
    return std::unexpected(dir.error());
  }
  LbState state(pin_root, std::move(*maps));

  state.filter_.assign(MG_VIP_FILTER_WORDS, 0);
  for (uint32_t w = 0; w < MG_VIP_FILTER_WORDS; w++) {
    bpf_map_lookup_elem(state.maps_.vip_filter.get(), &w, &state.filter_[w]);
  }
  {
    VipKeyBytes key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(state.maps_.vip_addrs.get(), prev, next.data()) == 0) {
      uint32_t count = 0;
      if (bpf_map_lookup_elem(state.maps_.vip_addrs.get(), next.data(), &count) == 0) {
        state.vip_addrs_[next] = count;
      }
      key = next;
      prev = key.data();
    }
  }

  auto used = readUsedBackends(state.maps_.backends.get());
  if (!used) {
    return std::unexpected(used.error());
  }
  // Ids go round-robin: the next one follows the id given out last, the one of the highest
  // generation, wrapping past the last id (ensureBackend() skips id 0 and the ids in use).
  for (const auto& b : *used) {
    if (b.backend.gen > state.max_backend_gen_) {
      state.max_backend_gen_ = b.backend.gen;
      state.next_backend_id_ = (b.id + 1) % MG_MAX_BACKENDS;
    }
  }
  auto backends = readLiveBackends(state.maps_.backends.get());
  if (!backends) {
    return std::unexpected(backends.error());
  }
  for (const auto& b : *backends) {
    IpAddr addr;
    addr.family = b.backend.family;
    std::memcpy(addr.words.data(), b.backend.addr, sizeof(b.backend.addr));
    state.backend_ids_[{b.backend.vip_id, addr}] = b.id;
    state.used_backend_ids_.insert(b.id);
  }

  for (auto [fd, by_vip] : {std::pair{state.maps_.quic_configs.get(), 0},
                            std::pair{state.maps_.quic_servers.get(), 1}}) {
    std::array<uint8_t, sizeof(mg_quic_server_key)> key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
      uint32_t vip = 0;
      std::memcpy(&vip, next.data(), sizeof(vip));  // both keys start with vip_id
      if (by_vip == 0) {
        std::array<uint8_t, sizeof(mg_quic_config_key)> k;
        std::memcpy(k.data(), next.data(), k.size());
        state.quic_configs_[vip].insert(k);
      } else {
        state.quic_servers_[vip].insert(next);
      }
      key = next;
      prev = key.data();
    }
  }

  auto vips = readVips(state.maps_.vips.get());
  if (!vips) {
    return std::unexpected(vips.error());
  }
  for (const auto& v : *vips) {
    state.vip_ids_[bytesOf(v.key)] = v.info.vip_id;
    RingPair& pair = state.rings_[v.info.vip_id];
    if (auto opened = state.openRingPair(v.info.vip_id, pair); !opened) {
      return std::unexpected(opened.error());
    }
  }
  return state;
}

Result<void> LbState::openRingPair(uint32_t vip_id, RingPair& pair) {
  uint32_t active_id = 0;
  if (bpf_map_lookup_elem(maps_.rings.get(), &vip_id, &active_id) != 0) {
    active_id = kNoRing;
  }
  for (int i = 0; i < 2; i++) {
    auto fd = openPinned(ringPin(vip_id, i));
    if (!fd) {
      continue;  // never written
    }
    uint32_t zero = 0, size = 0;
    bpf_map_lookup_elem(fd->get(), &zero, &size);
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    bpf_obj_get_info_by_fd(fd->get(), &info, &len);
    auto content = readWholeArray(fd->get(), info.max_entries, ringPin(vip_id, i));
    if (!content) {
      return std::unexpected(content.error());
    }
    pair.shadow[i] = std::move(*content);
    if (info.id == active_id) {
      pair.active = i;
    }
    pair.fd[i] = std::move(*fd);
  }
  return {};
}

std::optional<uint32_t> LbState::backendId(uint32_t vip_id, const IpAddr& addr) const {
  auto it = backend_ids_.find({vip_id, addr});
  return it == backend_ids_.end() ? std::nullopt : std::optional(it->second);
}

std::optional<uint32_t> LbState::vipId(const VipConfig& vip) const {
  auto it = vip_ids_.find(bytesOf(vipKeyOf(vip)));
  return it == vip_ids_.end() ? std::nullopt : std::optional(it->second);
}

mg_lb_globals globalsOf(const AgentConfig& cfg) {
  mg_lb_globals g{};
  g.encap_src4 = cfg.encap_source_v4.addr.words[0];
  g.encap_src4_mask = cfg.encap_source_v4.hostMask().words[0];
  std::memcpy(g.encap_src6, cfg.encap_source_v6.addr.words.data(), sizeof(g.encap_src6));
  g.encap_src6_mask = cfg.encap_source_v6.hostMask().words[3];
  g.hash_seed = cfg.hash_seed;
  g.udp_idle_ns = static_cast<uint64_t>(cfg.udp_idle_seconds) * 1000000000ull;
  g.max_conn_rate = cfg.max_conn_rate;
  g.outer_ttl = cfg.encap_ttl;
  return g;
}

Result<void> LbState::writeGlobals(const AgentConfig& cfg) {
  const mg_lb_globals g = globalsOf(cfg);
  const uint32_t zero = 0;
  return mapUpdate(maps_.globals.get(), &zero, &g, MG_MAP_GLOBALS);
}

Result<void> LbState::writeVipAddresses(const std::vector<const VipConfig*>& vips) {
  std::vector<uint64_t> want(MG_VIP_FILTER_WORDS, 0);
  std::set<VipKeyBytes> seen;
  std::map<VipKeyBytes, uint32_t> want_addrs;
  for (const VipConfig* v : vips) {
    const uint32_t bit =
        mg_addr_hash(v->address.words.data(), v->address.family) % MG_VIP_FILTER_BITS;
    want[bit / 64] |= 1ull << (bit % 64);
    mg_vip_key key = vipKeyOf(*v);
    if (seen.insert(bytesOf(key)).second) {
      key.port = 0;
      want_addrs[bytesOf(key)]++;
    }
  }
  // Entries go first, so that the map never holds more than `vips` (an apply that failed
  // half way leaves some behind). A fragment to an address whose entry is gone while its
  // filter bit is still set is passed, as before that VIP existed: nothing legitimate is
  // dropped. Entries are added before the filter lets their packets in.
  for (auto it = vip_addrs_.begin(); it != vip_addrs_.end();) {
    if (want_addrs.contains(it->first)) {
      ++it;
      continue;
    }
    if (bpf_map_delete_elem(maps_.vip_addrs.get(), it->first.data()) != 0 && errno != ENOENT) {
      return failErrno("map '" MG_MAP_VIP_ADDRS "': delete", errno);
    }
    it = vip_addrs_.erase(it);
  }
  for (const auto& [kb, count] : want_addrs) {
    auto have = vip_addrs_.find(kb);
    if (have == vip_addrs_.end() || have->second != count) {
      if (auto r = mapUpdate(maps_.vip_addrs.get(), kb.data(), &count, MG_MAP_VIP_ADDRS); !r) {
        return r;
      }
      vip_addrs_[kb] = count;
    }
  }
  for (uint32_t w = 0; w < MG_VIP_FILTER_WORDS; w++) {
    if (want[w] != filter_[w]) {
      if (auto r = mapUpdate(maps_.vip_filter.get(), &w, &want[w], MG_MAP_VIP_FILTER); !r) {
        return r;
      }
      filter_[w] = want[w];
    }
  }
  return {};
}

Result<uint32_t> LbState::ensureBackend(uint32_t vip_id, const IpAddr& addr, ApplyStats& stats) {
  if (auto id = backendId(vip_id, addr)) {
    return *id;
  }
  // Ids advance round-robin so a freed id is reused as late as possible: conntrack
  // entries that named the removed backend must not land on a new one.
  uint32_t id = next_backend_id_;
  for (uint32_t tries = 0; used_backend_ids_.contains(id) || id == 0; tries++) {
    if (tries >= MG_MAX_BACKENDS) {
      return fail("backends: all " + std::to_string(MG_MAX_BACKENDS) + " ids in use");
    }
    id = (id + 1) % MG_MAX_BACKENDS;
  }
  next_backend_id_ = (id + 1) % MG_MAX_BACKENDS;
  if (auto r = resetTraffic(maps_.backend_stats.get(), id, MG_MAP_BACKEND_STATS); !r) {
    return std::unexpected(r.error());
  }
  // A reused id must not inherit the old backend's cached next hop.
  std::vector<mg_nexthop> no_nexthop(possibleCpus());
  if (auto r = mapUpdate(maps_.nexthops.get(), &id, no_nexthop.data(), MG_MAP_NEXTHOPS); !r) {
    return std::unexpected(r.error());
  }
  mg_backend be{};
  std::memcpy(be.addr, addr.words.data(), sizeof(be.addr));
  be.vip_id = vip_id;
  be.gen = ++max_backend_gen_;
  be.family = addr.family;
  be.flags = MG_BACKEND_F_LIVE;
  if (auto r = mapUpdate(maps_.backends.get(), &id, &be, MG_MAP_BACKENDS); !r) {
    return std::unexpected(r.error());
  }
  backend_ids_[{vip_id, addr}] = id;
  used_backend_ids_.insert(id);
  stats.backends_added++;
  return id;
}

Result<void> LbState::removeBackend(uint32_t vip_id, const IpAddr& addr) {
  auto it = backend_ids_.find({vip_id, addr});
  if (it == backend_ids_.end()) {
    return {};
  }
  const uint32_t id = it->second;
  // Clear LIVE only: a packet reading the entry concurrently sees either the whole old
  // value or the same value without LIVE, never a half-zeroed address.
  mg_backend be{};
  if (bpf_map_lookup_elem(maps_.backends.get(), &id, &be) != 0) {
    return failErrno("map 'mg_backends': read " + std::to_string(id), errno);
  }
  be.flags &= ~MG_BACKEND_F_LIVE;
  if (auto r = mapUpdate(maps_.backends.get(), &id, &be, MG_MAP_BACKENDS); !r) {
    return std::unexpected(r.error());
  }
  backend_ids_.erase(it);
  used_backend_ids_.erase(id);
  return {};
}

Result<uint32_t> LbState::allocVipId() {
  for (uint32_t id = 0; id < MG_MAX_VIPS; id++) {
    if (!rings_.contains(id)) {
      rings_[id];  // reserve
      if (auto r = resetTraffic(maps_.vip_stats.get(), id, MG_MAP_VIP_STATS); !r) {
        return std::unexpected(r.error());
      }
      return id;
    }
  }
  return fail("vips: all " + std::to_string(MG_MAX_VIPS) + " ids in use");
}

std::set<IpAddr> LbState::slotlessBackends(const VipConfig& vip) const {
  std::set<IpAddr> out;
  const auto vip_id = vipId(vip);
  if (!vip_id) {
    return out;
  }
  auto ring = rings_.find(*vip_id);
  if (ring == rings_.end() || ring->second.active < 0) {
    return out;
  }
  const std::vector<uint32_t>& table = ring->second.shadow[ring->second.active];
  std::set<uint32_t> owners(table.begin() + std::min<size_t>(MG_RING_HEADER_SLOTS, table.size()),
                            table.end());
  for (auto it = backend_ids_.lower_bound({*vip_id, IpAddr{}});
       it != backend_ids_.end() && it->first.first == *vip_id; ++it) {
    if (!owners.contains(it->second)) {
      out.insert(it->first.second);
    }
  }
  return out;
}

Result<uint64_t> LbState::writeRing(uint32_t vip_id, std::span<const uint32_t> table) {
  RingPair& pair = rings_[vip_id];
  if (table.empty()) {
    if (bpf_map_delete_elem(maps_.rings.get(), &vip_id) != 0 && errno != ENOENT) {
      return failErrno("map 'mg_rings': remove table of vip " + std::to_string(vip_id), errno);
    }
    pair.active = -1;
    return 0;
  }
  const int target = pair.active == 0 ? 1 : 0;
  std::vector<uint32_t> want;
  want.reserve(table.size() + MG_RING_HEADER_SLOTS);
  want.push_back(static_cast<uint32_t>(table.size()));
  want.insert(want.end(), table.begin(), table.end());
  if (pair.active >= 0 && pair.shadow[pair.active] == want) {
    return 0;  // e.g. a restarted agent re-applying the config the maps already hold
  }

  if (!pair.fd[target].valid() || pair.shadow[target].size() != want.size()) {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
    const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "mg_ring", sizeof(uint32_t), sizeof(uint32_t),
                                  want.size(), &opts);
    if (fd < 0) {
      return failErrno("ring of vip " + std::to_string(vip_id) + ": create table of " +
                           std::to_string(table.size()) + " slots",
                       errno);
    }
    pair.fd[target].reset(fd);
    pair.shadow[target].assign(want.size(), 0);
    const std::string pin = ringPin(vip_id, target);
    ::unlink(pin.c_str());
    if (bpf_obj_pin(fd, pin.c_str()) != 0) {
      return failErrno("ring of vip " + std::to_string(vip_id) + ": pin at '" + pin + "'", errno);
    }
  }

  std::vector<uint32_t> keys, values;
  for (uint32_t i = 0; i < want.size(); i++) {
    if (pair.shadow[target][i] != want[i]) {
      keys.push_back(i);
      values.push_back(want[i]);
    }
  }
  if (!keys.empty()) {
    uint32_t count = keys.size();
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_update_batch(pair.fd[target].get(), keys.data(), values.data(), &count, &opts) !=
        0) {
      const int err = errno;
      pair.fd[target].reset();  // its content is unknown now: the next write starts afresh
      pair.shadow[target].clear();
      return failErrno("ring of vip " + std::to_string(vip_id) + ": batch write", err);
    }
  }
  pair.shadow[target] = std::move(want);
  const int fd = pair.fd[target].get();
  if (auto r = mapUpdate(maps_.rings.get(), &vip_id, &fd, MG_MAP_RINGS); !r) {
    return std::unexpected(r.error());
  }
  pair.active = target;
  return keys.size();
}

Result<void> LbState::setQuicKey(uint32_t vip_id, uint8_t config_rotation,
                                 const std::optional<std::array<uint8_t, 16>>& key) {
  mg_quic_config_key ck{};
  ck.vip_id = vip_id;
  ck.config_rotation = config_rotation;
  const auto kb = bytesOf(ck);
  auto installed = quic_keys_.find(kb);
  if (key && installed != quic_keys_.end() && installed->second == *key) {
    return {};  // a new context would only make every cached CID miss once
  }
  // Never name the key itself: errors and logs carry the codepoint only.
  const std::string what = "quic-lb key of vip " + std::to_string(vip_id) + " config_rotation " +
                           std::to_string(config_rotation);
  if (quic_key_prog_fd_ < 0) {
    if (key && !warned_no_key_prog_) {
      logWarn(what + ": no mg_quic_set_key program: encrypted CIDs fall back to the 4-tuple");
      warned_no_key_prog_ = true;
    }
    return {};
  }
  mg_quic_key_args args{};
  args.vip_id = vip_id;
  args.config_rotation = config_rotation;
  args.clear = key ? 0 : 1;
  if (key) {
    std::memcpy(args.key, key->data(), sizeof(args.key));
  }
  // A SYSCALL program takes ctx_in only; the kernel copies the ctx back into `args`.
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.ctx_in = &args;
  opts.ctx_size_in = sizeof(args);
  const int rc = bpf_prog_test_run_opts(quic_key_prog_fd_, &opts);
  const int err = rc != 0 ? errno : -args.err;
  explicit_bzero(args.key, sizeof(args.key));
  if (rc != 0 || args.err != 0) {
    return failErrno(what + (key ? ": install" : ": clear") + " (program mg_quic_set_key)", err);
  }
  if (key) {
    quic_keys_[kb] = *key;
  } else {
    quic_keys_.erase(kb);
  }
  return {};
}

Result<void> LbState::writeQuic(uint32_t vip_id, const VipConfig& vip,
                                const std::map<IpAddr, uint32_t>& backend_ids) {
  std::set<std::array<uint8_t, sizeof(mg_quic_config_key)>> configs;
  std::set<std::array<uint8_t, sizeof(mg_quic_server_key)>> servers;
  for (const auto& c : vip.quic_lb) {
    mg_quic_config_key ck{};
    ck.vip_id = vip_id;
    ck.config_rotation = c.config_rotation;
    mg_quic_config cv{};
    cv.server_id_len = c.server_id_len;
    cv.nonce_len = c.nonce_len;
    cv.flags = c.self_encoded_length ? MG_QUIC_CFG_F_SELF_ENCODED_LEN : 0;
    cv.algorithm = !c.key                                ? MG_QUIC_ALG_PLAINTEXT
                   : c.server_id_len + c.nonce_len == 16 ? MG_QUIC_ALG_SINGLE_PASS
                                                         : MG_QUIC_ALG_FOUR_PASS;
    // The key is in place before the config that needs it; a config that lost its key
    // (now plaintext) has the old one cleared.
    if (auto r = setQuicKey(vip_id, c.config_rotation, c.key); !r) {
      return r;
    }
    if (auto r = mapUpdate(maps_.quic_configs.get(), &ck, &cv, MG_MAP_QUIC_CONFIGS); !r) {
      return r;
    }
    configs.insert(bytesOf(ck));
    for (const auto& b : vip.backends) {
      if (b.quic_server_id.empty()) {
        continue;
      }
      mg_quic_server_key sk{};
      sk.vip_id = vip_id;
      sk.config_rotation = c.config_rotation;
      sk.server_id_len = static_cast<uint8_t>(b.quic_server_id.size());
      std::memcpy(sk.server_id, b.quic_server_id.data(),
                  std::min(b.quic_server_id.size(), sizeof(sk.server_id)));
      const uint32_t id = backend_ids.at(b.address);
      if (auto r = mapUpdate(maps_.quic_servers.get(), &sk, &id, MG_MAP_QUIC_SERVERS); !r) {
        return r;
      }
      servers.insert(bytesOf(sk));
    }
  }
  for (const auto& k : quic_servers_[vip_id]) {
    if (!servers.contains(k)) {
      bpf_map_delete_elem(maps_.quic_servers.get(), k.data());
    }
  }
  for (const auto& k : quic_configs_[vip_id]) {
    if (!configs.contains(k)) {
      bpf_map_delete_elem(maps_.quic_configs.get(), k.data());
      if (auto r =
              setQuicKey(vip_id, k[offsetof(mg_quic_config_key, config_rotation)], std::nullopt);
          !r) {
        return r;
      }
    }
  }
  quic_configs_[vip_id] = std::move(configs);
  quic_servers_[vip_id] = std::move(servers);
  return {};
}

Result<void> LbState::removeVip(const VipKeyBytes& key, uint32_t vip_id) {
  if (bpf_map_delete_elem(maps_.vips.get(), key.data()) != 0 && errno != ENOENT) {
    return failErrno("map 'mg_vips': delete vip " + std::to_string(vip_id), errno);
  }
  if (bpf_map_delete_elem(maps_.rings.get(), &vip_id) != 0 && errno != ENOENT) {
    return failErrno("map 'mg_rings': delete vip " + std::to_string(vip_id), errno);
  }
  for (int i = 0; i < 2; i++) {
    ::unlink(ringPin(vip_id, i).c_str());
  }
  std::vector<IpAddr> backends;
  for (auto it = backend_ids_.lower_bound({vip_id, IpAddr{}});
       it != backend_ids_.end() && it->first.first == vip_id; ++it) {
    backends.push_back(it->first.second);
  }
  for (const auto& addr : backends) {
    if (auto r = removeBackend(vip_id, addr); !r) {
      return r;
    }
  }
  for (const auto& k : quic_servers_[vip_id]) {
    bpf_map_delete_elem(maps_.quic_servers.get(), k.data());
  }
  for (const auto& k : quic_configs_[vip_id]) {
    bpf_map_delete_elem(maps_.quic_configs.get(), k.data());
    if (auto r = setQuicKey(vip_id, k[offsetof(mg_quic_config_key, config_rotation)], std::nullopt);
        !r) {
      return r;
    }
  }
  quic_servers_.erase(vip_id);
  quic_configs_.erase(vip_id);
  rings_.erase(vip_id);
  vip_ids_.erase(key);
  applied_.erase(key);
  return {};
}

Result<void> LbState::removeBackendsNotIn(uint32_t vip_id, const std::set<IpAddr>& wanted,
                                          ApplyStats& stats) {
  std::vector<IpAddr> stale;
  for (auto it = backend_ids_.lower_bound({vip_id, IpAddr{}});
       it != backend_ids_.end() && it->first.first == vip_id; ++it) {
    if (!wanted.contains(it->first.second)) {
      stale.push_back(it->first.second);
    }
  }
  for (const auto& addr : stale) {
    if (auto r = removeBackend(vip_id, addr); !r) {
      return r;
    }
    stats.backends_removed++;
  }
  return {};
}

// A changed VIP gets its new backends before it lets go of the ones it no longer names, so
// that no table ever names a backend that is not live. With few ids left that order can run
// out half way through a config the validator accepted (old and new backends of a VIP held
// at once): then every VIP's stale backends go first. Packets that the old table of a
// changed VIP still sends to one of them are dropped as no_backend until its new table is
// written, a moment later; their flows were moving anyway.
Result<void> LbState::freeStaleBackendsIfShort(const AgentConfig& cfg, ApplyStats& stats) {
  // Only VIPs that change take ids or hold stale backends: an unchanged one (every VIP but
  // one, say, in a health check's apply) costs a comparison.
  std::vector<std::pair<uint32_t, const VipConfig*>> changed;  // known VIPs only
  size_t needed = 0;
  for (const auto& vip : cfg.vips) {
    const VipKeyBytes kb = bytesOf(vipKeyOf(vip));
    const auto applied = applied_.find(kb);
    if (applied != applied_.end() && applied->second == vip) {
      continue;
    }
    const auto known = vip_ids_.find(kb);
    if (known == vip_ids_.end()) {
      needed += vip.backends.size();
      continue;
    }
    changed.emplace_back(known->second, &vip);
    for (const auto& b : vip.backends) {
      needed += !backend_ids_.contains({known->second, b.address});
    }
  }
  if (used_backend_ids_.size() + needed <= MG_MAX_BACKENDS - 1) {  // id 0 is never used
    return {};
  }
  for (const auto& [vip_id, vip] : changed) {
    std::set<IpAddr> wanted;
    for (const auto& b : vip->backends) {
      wanted.insert(b.address);
    }
    if (auto r = removeBackendsNotIn(vip_id, wanted, stats); !r) {
      return r;
    }
  }
  return {};
}

Result<ApplyStats> LbState::apply(const AgentConfig& cfg) {
  ApplyStats stats;

  // The filter lets through old and new VIP addresses while entries change, then only
  // the new ones.
  std::vector<const VipConfig*> filter_vips;
  for (const auto& [kb, vip] : applied_) {
    filter_vips.push_back(&vip);
  }
  for (const auto& vip : cfg.vips) {
    filter_vips.push_back(&vip);
  }
  if (auto r = writeVipAddresses(filter_vips); !r) {
    return std::unexpected(r.error());
  }

  // VIPs that go away go first: their ids are free for the ones that come, so a
  // config the validator accepted cannot run out of ids half way.
  std::set<VipKeyBytes> wanted_vips;
  for (const auto& vip : cfg.vips) {
    wanted_vips.insert(bytesOf(vipKeyOf(vip)));
  }
  std::vector<std::pair<VipKeyBytes, uint32_t>> gone;
  for (const auto& [kb, id] : vip_ids_) {
    if (!wanted_vips.contains(kb)) {
      gone.emplace_back(kb, id);
    }
  }
  for (const auto& [kb, id] : gone) {
    if (auto r = removeVip(kb, id); !r) {
      return std::unexpected(r.error());
    }
    stats.vips_removed++;
  }
  if (auto r = freeStaleBackendsIfShort(cfg, stats); !r) {
    return std::unexpected(r.error());
  }

  for (const auto& vip : cfg.vips) {
    const mg_vip_key key = vipKeyOf(vip);
    const VipKeyBytes kb = bytesOf(key);
    auto known = vip_ids_.find(kb);
    auto applied = applied_.find(kb);
    if (known != vip_ids_.end() && applied != applied_.end() && applied->second == vip) {
      stats.vips_unchanged++;
      continue;
    }
    uint32_t vip_id;
    if (known != vip_ids_.end()) {
      vip_id = known->second;
      stats.vips_changed++;
    } else {
      auto id = allocVipId();
      if (!id) {
        return std::unexpected(id.error());
      }
      vip_id = *id;
      stats.vips_added++;
    }

    // Backends exist before the table names them; the table exists before the VIP entry.
    std::vector<MaglevBackend> input;
    input.reserve(vip.backends.size());
    std::set<IpAddr> wanted;
    std::map<IpAddr, uint32_t> ids;
    for (const auto& b : vip.backends) {
      auto id = ensureBackend(vip_id, b.address, stats);
      if (!id) {
        return std::unexpected(id.error());
      }
      input.push_back({b.address.toString(), *id, b.weight});
      wanted.insert(b.address);
      ids[b.address] = *id;
    }
    if (auto r = writeQuic(vip_id, vip, ids); !r) {
      return std::unexpected(r.error());
    }
    auto table = maglev_.build(input, vip.ring_size);
    if (!table) {
      return fail("vip '" + vip.name + "': " + table.error().message);
    }
    auto written = writeRing(vip_id, *table);
    if (!written) {
      return std::unexpected(written.error());
    }
    stats.ring_slots_written += *written;
    mg_vip_info info{vip_id, (vip.port == 0 ? MG_VIP_F_PORTLESS : 0u) |
                                 (vip.quic_lb.empty() ? 0u : MG_VIP_F_QUIC)};
    if (auto r = mapUpdate(maps_.vips.get(), &key, &info, MG_MAP_VIPS); !r) {
      return std::unexpected(r.error());
    }
    vip_ids_[kb] = vip_id;
    applied_[kb] = vip;

    // Backends this VIP no longer names: no table points at them now, and clearing LIVE
    // makes their tracked flows choose again.
    if (auto r = removeBackendsNotIn(vip_id, wanted, stats); !r) {
      return std::unexpected(r.error());
    }
  }

  filter_vips.clear();
  for (const auto& vip : cfg.vips) {
    filter_vips.push_back(&vip);
  }
  if (auto r = writeVipAddresses(filter_vips); !r) {
    return std::unexpected(r.error());
  }
  // Settings last: until here the running config's hash seed and encap source hold.
  if (auto r = writeGlobals(cfg); !r) {
    return std::unexpected(r.error());
  }
  return stats;
}

}  // namespace meshgate::agent
