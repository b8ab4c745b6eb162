#include "agent/lb_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include "meshgate/abi/decap.h"

namespace meshgate::agent {
namespace {

std::string lower(const char* s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

Result<std::vector<CounterValue>> readCounters(
    int fd, const std::vector<std::pair<std::string, std::string>>& names, const char* map) {
  std::vector<CounterValue> out;
  out.reserve(names.size());
  for (uint32_t i = 0; i < names.size(); i++) {
    auto v = sumPerCpuU64(fd, i, map);
    if (!v) {
      return std::unexpected(v.error());
    }
    out.push_back({names[i].first, names[i].second, *v});
  }
  return out;
}

}  // namespace

Result<LbMaps> LbMaps::openPinned(const std::string& pin_root) {
  LbMaps m;
  const std::pair<UniqueFd*, const char*> all[] = {
      {&m.vips, MG_MAP_VIPS},
      {&m.vip_filter, MG_MAP_VIP_FILTER},
      {&m.vip_addrs, MG_MAP_VIP_ADDRS},
      {&m.rings, MG_MAP_RINGS},
      {&m.nexthops, MG_MAP_NEXTHOPS},
      {&m.quic_configs, MG_MAP_QUIC_CONFIGS},
      {&m.quic_servers, MG_MAP_QUIC_SERVERS},
      {&m.backends, MG_MAP_BACKENDS},
      {&m.conntrack, MG_MAP_CONNTRACK},
      {&m.frags, MG_MAP_FRAGS},
      {&m.globals, MG_MAP_GLOBALS},
      {&m.conn_rate, MG_MAP_CONN_RATE},
      {&m.lb_stats, MG_MAP_LB_STATS},
      {&m.lb_drops, MG_MAP_LB_DROPS},
      {&m.vip_stats, MG_MAP_VIP_STATS},
      {&m.backend_stats, MG_MAP_BACKEND_STATS},
  };
  for (auto& [fd, name] : all) {
    auto opened = agent::openPinned(pin_root + "/" + name);
    if (!opened) {
      return std::unexpected(opened.error());
    }
    *fd = std::move(*opened);
  }
  return m;
}

std::string addressText(const __be32* words, uint8_t family) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == MG_AF_INET ? AF_INET : AF_INET6, words, buf, sizeof(buf));
  return buf;
}

std::string vipKeyName(const mg_vip_key& key) {
  std::string addr = addressText(key.addr, key.family);
  if (key.family == MG_AF_INET6) {
    addr = "[" + addr + "]";
  }
  const std::string port = key.port == 0 ? "*" : std::to_string(ntohs(key.port));
  const std::string proto = key.proto == IPPROTO_TCP   ? "tcp"
                            : key.proto == IPPROTO_UDP ? "udp"
                                                       : std::to_string(key.proto);
  return addr + ":" + port + "/" + proto;
}

const std::vector<std::pair<std::string, std::string>>& lbCounterNames() {
  static const std::vector<std::pair<std::string, std::string>> names = {
#define MG_X_NAME(name, help) {lower(#name), help},
      MG_LB_COUNTERS(MG_X_NAME)
#undef MG_X_NAME
  };
  return names;
}

const std::vector<std::pair<std::string, std::string>>& lbDropNames() {
  static const std::vector<std::pair<std::string, std::string>> names = {
#define MG_X_NAME(name, help) {lower(#name), help},
      MG_LB_DROPS(MG_X_NAME)
#undef MG_X_NAME
  };
  return names;
}

const std::vector<std::pair<std::string, std::string>>& decapCounterNames() {
  static const std::vector<std::pair<std::string, std::string>> names = {
#define MG_X_NAME(name, help) {lower(#name), help},
      MG_DECAP_COUNTERS(MG_X_NAME)
#undef MG_X_NAME
  };
  return names;
}

Result<std::vector<CounterValue>> readDecapCounters(int decap_stats_fd) {
  return readCounters(decap_stats_fd, decapCounterNames(), MG_MAP_DECAP_STATS);
}

Result<std::vector<VipEntry>> readVips(int vips_fd) {
  std::vector<VipEntry> out;
  mg_vip_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(vips_fd, prev, &next) == 0) {
    VipEntry e{next, {}};
    if (bpf_map_lookup_elem(vips_fd, &next, &e.info) == 0) {
      out.push_back(e);
    }
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) {
    return failErrno("map 'mg_vips': iterate", errno);
  }
  return out;
}

Result<std::vector<BackendEntry>> readLiveBackends(int backends_fd) {
  auto used = readUsedBackends(backends_fd);
  if (!used) {
    return used;
  }
  std::erase_if(*used,
                [](const BackendEntry& b) { return !(b.backend.flags & MG_BACKEND_F_LIVE); });
  return used;
}

Result<std::vector<BackendEntry>> readUsedBackends(int backends_fd) {
  // One batched read of the whole array instead of 262144 syscalls.
  std::vector<uint32_t> keys(MG_MAX_BACKENDS);
  std::vector<mg_backend> values(MG_MAX_BACKENDS);
  uint32_t out_batch = 0;
  uint32_t count = MG_MAX_BACKENDS;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_lookup_batch(backends_fd, nullptr, &out_batch, keys.data(), values.data(), &count,
                           &opts) != 0 &&
      errno != ENOENT) {
    return failErrno("map 'mg_backends': batch lookup", errno);
  }
  std::vector<BackendEntry> out;
  for (uint32_t i = 0; i < count; i++) {
    if (values[i].gen != 0 || (values[i].flags & MG_BACKEND_F_LIVE)) {
      out.push_back({keys[i], values[i]});
    }
  }
  return out;
}

Result<mg_traffic> readTraffic(int fd, uint32_t id, const char* map_name) {
  std::vector<mg_traffic> values(possibleCpus());
  if (bpf_map_lookup_elem(fd, &id, values.data()) != 0) {
    return failErrno(std::string("map '") + map_name + "': lookup " + std::to_string(id), errno);
  }
  mg_traffic sum{};
  for (const auto& v : values) {
    sum.packets += v.packets;
    sum.bytes += v.bytes;
  }
  return sum;
}

Result<std::vector<CounterValue>> readLbCounters(int lb_stats_fd) {
  return readCounters(lb_stats_fd, lbCounterNames(), MG_MAP_LB_STATS);
}

Result<std::vector<CounterValue>> readLbDrops(int lb_drops_fd) {
  return readCounters(lb_drops_fd, lbDropNames(), MG_MAP_LB_DROPS);
}

Result<std::vector<uint32_t>> readRing(int rings_fd, uint32_t vip_id) {
  uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(rings_fd, &vip_id, &inner_id) != 0) {
    if (errno == ENOENT) {
      return std::vector<uint32_t>{};
    }
    return failErrno("map 'mg_rings': lookup vip " + std::to_string(vip_id), errno);
  }
  const int inner = bpf_map_get_fd_by_id(inner_id);
  if (inner < 0) {
    return failErrno(
        "ring of vip " + std::to_string(vip_id) + ": open map id " + std::to_string(inner_id),
        errno);
  }
  UniqueFd owner(inner);
  uint32_t zero = 0, size = 0;
  if (bpf_map_lookup_elem(inner, &zero, &size) != 0) {
    return failErrno("ring of vip " + std::to_string(vip_id) + ": read size", errno);
  }
  std::vector<uint32_t> keys(size + MG_RING_HEADER_SLOTS), values(size + MG_RING_HEADER_SLOTS);
  uint32_t out_batch = 0, count = keys.size();
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_lookup_batch(inner, nullptr, &out_batch, keys.data(), values.data(), &count, &opts) !=
          0 &&
      errno != ENOENT) {
    return failErrno("ring of vip " + std::to_string(vip_id) + ": batch lookup", errno);
  }
  values.resize(std::min<size_t>(count, values.size()));
  if (values.size() < size + MG_RING_HEADER_SLOTS) {
    return fail("ring of vip " + std::to_string(vip_id) + ": short read");
  }
  return std::vector<uint32_t>(values.begin() + MG_RING_HEADER_SLOTS, values.end());
}

}  // namespace meshgate::agent
