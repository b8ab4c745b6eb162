// meshgatectl: reads meshgate's pinned maps and prints what the data path is doing.
//   meshgatectl [--pin-root DIR] [--json] status|vips|backends|stats
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/datapath.h"
#include "agent/lb_maps.h"
#include "meshgate/abi/common.h"
#include "meshgate/abi/decap.h"
#include "tools/meshgatectl/quic_lb_cmd.h"

namespace {

using meshgate::Result;
using nlohmann::json;
namespace mg = meshgate::agent;

constexpr const char* kUsage =
    "usage: meshgatectl [--pin-root DIR] [--json] COMMAND\n"
    "  status     attached programs, VIP and backend counts, headline counters\n"
    "  vips       every VIP: id, table size, traffic\n"
    "  backends   every backend: VIP, address, table share, traffic\n"
    "  stats      every data-path counter and drop reason (and xdp_decap's, when attached)\n"
    "  quic-lb    encode or decode QUIC-LB connection IDs offline (first argument; quic-lb -h)\n"
    "The pin root defaults to " MG_PIN_ROOT ".\n";

struct Snapshot {
  std::vector<mg::VipEntry> vips;
  std::vector<mg::BackendEntry> backends;
  std::map<uint32_t, std::vector<uint32_t>> rings;  // vip id -> table
};

Result<Snapshot> snapshot(const mg::LbMaps& maps) {
  Snapshot s;
  auto vips = mg::readVips(maps.vips.get());
  if (!vips) {
    return std::unexpected(vips.error());
  }
  s.vips = std::move(*vips);
  auto backends = mg::readLiveBackends(maps.backends.get());
  if (!backends) {
    return std::unexpected(backends.error());
  }
  s.backends = std::move(*backends);
  for (const auto& v : s.vips) {
    auto ring = mg::readRing(maps.rings.get(), v.info.vip_id);
    if (!ring) {
      return std::unexpected(ring.error());
    }
    s.rings[v.info.vip_id] = std::move(*ring);
  }
  return s;
}

json vipsJson(const mg::LbMaps& maps, const Snapshot& s) {
  json out = json::array();
  for (const auto& v : s.vips) {
    auto t = mg::readTraffic(maps.vip_stats.get(), v.info.vip_id, MG_MAP_VIP_STATS);
    size_t backends = 0;
    for (const auto& b : s.backends) {
      backends += b.backend.vip_id == v.info.vip_id;
    }
    out.push_back({{"vip", mg::vipKeyName(v.key)},
                   {"id", v.info.vip_id},
                   {"table_size", s.rings.at(v.info.vip_id).size()},
                   {"backends", backends},
                   {"packets", t ? t->packets : 0},
                   {"bytes", t ? t->bytes : 0}});
  }
  return out;
}

json backendsJson(const mg::LbMaps& maps, const Snapshot& s) {
  std::map<uint32_t, std::string> vip_names;
  for (const auto& v : s.vips) {
    vip_names[v.info.vip_id] = mg::vipKeyName(v.key);
  }
  std::map<uint32_t, uint64_t> slots;
  for (const auto& [id, ring] : s.rings) {
    for (uint32_t b : ring) {
      slots[b]++;
    }
  }
  json out = json::array();
  for (const auto& b : s.backends) {
    auto t = mg::readTraffic(maps.backend_stats.get(), b.id, MG_MAP_BACKEND_STATS);
    auto ring_it = s.rings.find(b.backend.vip_id);
    const size_t ring_size = ring_it == s.rings.end() ? 0 : ring_it->second.size();
    out.push_back({{"vip", vip_names[b.backend.vip_id]},
                   {"backend", mg::addressText(b.backend.addr, b.backend.family)},
                   {"id", b.id},
                   {"table_slots", slots[b.id]},
                   {"table_share", ring_size == 0 ? 0.0 : double(slots[b.id]) / ring_size},
                   {"packets", t ? t->packets : 0},
                   {"bytes", t ? t->bytes : 0}});
  }
  return out;
}

json statsJson(const mg::LbMaps& maps, const std::string& pin_root) {
  json out = {{"events", json::object()}, {"drops", json::object()}};
  if (auto c = mg::readLbCounters(maps.lb_stats.get())) {
    for (const auto& v : *c) {
      out["events"][v.name] = v.value;
    }
  }
  if (auto d = mg::readLbDrops(maps.lb_drops.get())) {
    for (const auto& v : *d) {
      out["drops"][v.name] = v.value;
    }
  }
  // xdp_decap's counters, on a host whose agent has decap_interfaces.
  if (auto decap = mg::openPinned(pin_root + "/" MG_MAP_DECAP_STATS)) {
    if (auto c = mg::readDecapCounters(decap->get())) {
      out["decap"] = json::object();
      for (const auto& v : *c) {
        out["decap"][v.name] = v.value;
      }
    }
  }
  return out;
}

void printTable(const json& rows, const std::vector<std::string>& cols) {
  for (const auto& c : cols) {
    std::printf("%-24s", c.c_str());
  }
  std::printf("\n");
  for (const auto& r : rows) {
    for (const auto& c : cols) {
      const json& v = r[c];
      std::string text = v.is_string() ? v.get<std::string>()
                         : v.is_number_float()
                             ? std::to_string(v.get<double>() * 100).substr(0, 5) + "%"
                             : v.dump();
      std::printf("%-24s", text.c_str());
    }
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "quic-lb") {
    return meshgate::ctl::runQuicLbCommand(argc - 1, argv + 1);
  }
  std::string pin_root = MG_PIN_ROOT, command;
  bool as_json = false;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (arg == "--pin-root" && i + 1 < argc) {
      pin_root = argv[++i];
    } else if (arg == "--json") {
      as_json = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (command.empty() && arg[0] != '-') {
      command = arg;
    } else {
      std::fprintf(stderr, "meshgatectl: unexpected argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (command != "status" && command != "vips" && command != "backends" && command != "stats") {
    std::fprintf(
        stderr, "meshgatectl: %s\n%s",
        command.empty() ? "a command is required" : ("unknown command '" + command + "'").c_str(),
        kUsage);
    return 2;
  }
  auto maps = mg::LbMaps::openPinned(pin_root);
  if (!maps) {
    std::fprintf(stderr, "meshgatectl: %s (is meshgate-agent running with this pin root?)\n",
                 maps.error().message.c_str());
    return 1;
  }
  auto snap = snapshot(*maps);
  if (!snap) {
    std::fprintf(stderr, "meshgatectl: %s\n", snap.error().message.c_str());
    return 1;
  }

  json out;
  if (command == "vips") {
    out = vipsJson(*maps, *snap);
    if (!as_json) {
      printTable(out, {"vip", "id", "table_size", "backends", "packets", "bytes"});
    }
  } else if (command == "backends") {
    out = backendsJson(*maps, *snap);
    if (!as_json) {
      printTable(out, {"vip", "backend", "table_share", "packets", "bytes"});
    }
  } else if (command == "stats") {
    out = statsJson(*maps, pin_root);
    if (!as_json) {
      for (const auto& section : {"events", "drops", "decap"}) {
        if (!out.contains(section)) {
          continue;
        }
        std::printf("%s:\n", section);
        for (const auto& [k, v] : out[section].items()) {
          std::printf("  %-24s %s\n", k.c_str(), v.dump().c_str());
        }
      }
    }
  } else {
    json links = json::array();
    if (auto l = mg::listPinnedLinks(pin_root)) {
      for (const auto& link : *l) {
        links.push_back({{"program", link.program},
                         {"interface", link.ifname},
                         {"ifindex", link.ifindex},
                         {"attached", link.ifindex != 0},
                         {"prog_id", link.prog_id}});
      }
    }
    const json stats = statsJson(*maps, pin_root);
    out = {{"pin_root", pin_root},
           {"links", links},
           {"vips", snap->vips.size()},
           {"backends", snap->backends.size()},
           {"events", stats["events"]}};
    if (!as_json) {
      std::printf("pin root   %s\n", pin_root.c_str());
      for (const auto& l : links) {
        std::printf("link       %s on %s (%s, prog id %s)\n",
                    l["program"].get<std::string>().c_str(),
                    l["interface"].get<std::string>().c_str(),
                    l["attached"].get<bool>() ? "attached" : "DEFUNCT: interface gone",
                    l["prog_id"].dump().c_str());
      }
      std::printf("vips       %zu\nbackends   %zu\n", snap->vips.size(), snap->backends.size());
      for (const char* k : {"rx", "tx", "redirect", "pass_not_vip", "drop", "ct_hit", "ct_miss"}) {
        std::printf("%-10s %s\n", k, stats["events"][k].dump().c_str());
      }
    }
  }
  if (as_json) {
    std::printf("%s\n", out.dump(2).c_str());
  }
  return 0;
}
