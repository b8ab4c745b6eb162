// meshgate-demo: the balancer's main job on a self-contained topology of network
// namespaces (tests/lib/lb_topology.h): a client, a balancer running meshgate-agent with
// xdp_lb, three backends with xdp_decap answering directly. It sends real TCP traffic,
// prints which backend got what from the pinned maps, drains one backend, sends again,
// prints again, and tears everything down. --keep leaves it running until Enter.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include "agent/lb_maps.h"
#include "tests/lib/lb_topology.h"

namespace mt = meshgate::test;
namespace mg = meshgate::agent;

namespace {

constexpr uint16_t kPort = 8080;

int die(const std::string& what) {
  std::fprintf(stderr, "meshgate-demo: %s\n", what.c_str());
  return 1;
}

// Opens `n` connections from distinct client ports; returns connections per backend.
meshgate::Result<std::map<std::string, int>> sendTraffic(mt::LbTopology& topo, uint16_t first,
                                                         int n) {
  std::map<std::string, int> got;
  for (int i = 0; i < n; i++) {
    auto c =
        mt::TcpClient::connect(topo.client(), "198.18.0.2", first + i, mt::LbTopology::kVip, kPort);
    if (!c) {
      return std::unexpected(c.error());
    }
    auto id = c->askId();
    if (!id) {
      return std::unexpected(id.error());
    }
    got[*id]++;
  }
  return got;
}

void report(mt::LbTopology& topo, const std::map<std::string, int>& conns, const char* title) {
  auto maps = mg::LbMaps::openPinned(topo.pinRoot());
  if (!maps) {
    std::printf("cannot read maps: %s\n", maps.error().message.c_str());
    return;
  }
  auto vips = mg::readVips(maps->vips.get());
  auto backends = mg::readLiveBackends(maps->backends.get());
  std::map<uint32_t, uint64_t> slots;
  size_t table = 0;
  if (vips && !vips->empty()) {
    if (auto ring = mg::readRing(maps->rings.get(), vips->front().info.vip_id)) {
      table = ring->size();
      for (uint32_t id : *ring) {
        slots[id]++;
      }
    }
  }
  std::printf("\n== %s ==\n", title);
  std::printf("%-8s %-14s %12s %14s %12s %12s\n", "backend", "address", "table share",
              "connections", "packets", "bytes");
  for (const auto& b : backends ? *backends : std::vector<mg::BackendEntry>{}) {
    const std::string addr = mg::addressText(b.backend.addr, b.backend.family);
    std::string name = "?";
    for (int i = 1; i <= topo.backends(); i++) {
      if (topo.backendAddress(i) == addr) {
        name = topo.backendName(i);
      }
    }
    auto t = mg::readTraffic(maps->backend_stats.get(), b.id, MG_MAP_BACKEND_STATS);
    const auto it = conns.find(name);
    std::printf("%-8s %-14s %11.1f%% %14d %12llu %12llu\n", name.c_str(), addr.c_str(),
                table ? 100.0 * slots[b.id] / table : 0.0, it == conns.end() ? 0 : it->second,
                static_cast<unsigned long long>(t ? t->packets : 0),
                static_cast<unsigned long long>(t ? t->bytes : 0));
  }
  if (auto c = mg::readLbCounters(maps->lb_stats.get())) {
    std::printf("xdp_lb:");
    for (const auto& v : *c) {
      if (v.value != 0) {
        std::printf(" %s=%llu", v.name.c_str(), static_cast<unsigned long long>(v.value));
      }
    }
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool keep = false;
  int conns = 600;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--keep") {
      keep = true;
    } else if (a == "--connections" && i + 1 < argc) {
      conns = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: meshgate-demo [--keep] [--connections N]\n");
      return 2;
    }
  }
  if (geteuid() != 0) {
    return die("needs root (network namespaces, XDP, bpffs)");
  }
  std::printf(
      "meshgate demo: client -> VIP %s:%u -> xdp_lb (IPIP, direct server return) -> "
      "3 backends\n",
      mt::LbTopology::kVip, kPort);
  auto topo = mt::LbTopology::create(3, kPort);
  if (!topo) {
    return die(topo.error().message);
  }
  mt::LbTopology& t = **topo;
  const std::vector<mt::BackendSpec> weighted = {
      {t.backendAddress(1), 1}, {t.backendAddress(2), 2}, {t.backendAddress(3), 3}};
  if (auto r = t.writeConfig(weighted); !r) {
    return die(r.error().message);
  }
  if (auto r = t.startAgent(); !r) {
    return die(r.error().message);
  }
  std::printf("agent up; maps pinned under %s (try: bpftool map dump pinned %s/mg_backends)\n",
              t.pinRoot().c_str(), t.pinRoot().c_str());

  auto first = sendTraffic(t, 20000, conns);
  if (!first) {
    return die(first.error().message);
  }
  report(t, *first, "weights b1:b2:b3 = 1:2:3");

  std::vector<mt::BackendSpec> drained = weighted;
  drained[2].weight = 0;
  if (auto r = t.writeConfig(drained); !r) {
    return die(r.error().message);
  }
  if (auto r = t.reloadAgent(); !r) {
    return die(r.error().message);
  }
  auto second = sendTraffic(t, 30000, conns);
  if (!second) {
    return die(second.error().message);
  }
  report(t, *second, "b3 drained (weight 0): new connections avoid it; counters are cumulative");
  // What the demo shows must hold, or it says so and fails.
  for (const char* b : {"b1", "b2", "b3"}) {
    if (!first->contains(b)) {
      return die(std::string("with weights 1:2:3, ") + b + " got no connection");
    }
  }
  if (second->contains("b3")) {
    return die("b3 got " + std::to_string(second->at("b3")) +
               " new connections after it was drained");
  }

  if (keep) {
    std::printf(
        "\nrunning; in another shell try:\n"
        "  build/bin/meshgatectl --pin-root %s backends\n"
        "  ip netns exec %s curl ...   (client namespace)\n"
        "press Enter to tear down\n",
        t.pinRoot().c_str(), t.client().name().c_str());
    std::string line;
    std::getline(std::cin, line);
  }
  std::printf("\ntearing down namespaces, agents and pins\n");
  topo->reset();
  return 0;
}
