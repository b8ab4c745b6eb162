// Proves how the agent writes a config into xdp_lb's maps: only changed table slots are
// written, into the spare table, which is then swapped in whole; an unchanged config
// writes nothing; a restarted agent adopts ids and tables; and two balancers that reach
// the same config by different histories hold tables that send every slot to the same
// backend address (what ECMP peers need).
#include "agent/lb_state.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>

#include "agent/datapath.h"
#include "agent/lb_maps.h"
#include "tests/lib/netns.h"

namespace meshgate::test {
namespace {

std::string config(const std::string& pin_root, const std::string& backends) {
  return R"({"pin_root": ")" + pin_root + R"(", "interfaces": [{"name": "eth0"}], "vips": [
    {"name": "web", "address": "198.18.100.1", "port": 80, "protocol": "tcp", "ring_size": 4099,
     "backends": [)" +
         backends + "]}]}";
}

// A balancer's maps without an interface: a pin directory, the loaded program, LbState.
struct Balancer {
  std::optional<BpffsDir> pins;
  std::optional<agent::LoadedProgram> prog;
  std::optional<agent::LbState> state;

  void start(const std::string& tag) {
    auto dir = BpffsDir::create(tag);
    ASSERT_TRUE(dir) << dir.error().message;
    pins.emplace(std::move(*dir));
    auto p = agent::LoadedProgram::load(agent::XdpProgram::kLoadBalancer, {pins->path(), 4096});
    ASSERT_TRUE(p) << p.error().message;
    prog.emplace(std::move(*p));
    adopt();
  }
  void adopt() {
    auto s = agent::LbState::adopt(pins->path());
    ASSERT_TRUE(s) << s.error().message;
    state.emplace(std::move(*s));
  }
  agent::ApplyStats apply(const std::string& backends) {
    return applyConfig(config(pins->path(), backends));
  }
  agent::ApplyStats applyVips(const std::string& vips) {
    return applyConfig(R"({"pin_root": ")" + pins->path() +
                       R"(", "interfaces": [{"name": "eth0"}], "vips": [)" + vips + "]}");
  }
  agent::ApplyStats applyConfig(const std::string& json) {
    auto cfg = agent::parseConfig(json, "test.json");
    EXPECT_TRUE(cfg) << cfg.error().message;
    if (!cfg) {
      return {};
    }
    auto st = state->apply(**cfg);
    EXPECT_TRUE(st) << st.error().message;
    return st ? *st : agent::ApplyStats{};
  }
  uint32_t vipId() {
    auto vips = agent::readVips(state->maps().vips.get());
    return vips->at(0).info.vip_id;
  }
  std::vector<uint32_t> table() {
    auto ring = agent::readRing(state->maps().rings.get(), vipId());
    EXPECT_TRUE(ring) << ring.error().message;
    return ring ? *ring : std::vector<uint32_t>{};
  }
  // The table as backend addresses: comparable across balancers whose ids differ.
  std::vector<std::string> tableByAddress() {
    std::map<uint32_t, std::string> addr;
    auto live = agent::readLiveBackends(state->maps().backends.get());
    EXPECT_TRUE(live) << live.error().message;
    for (const auto& b : *live) {
      addr[b.id] = agent::addressText(b.backend.addr, b.backend.family);
    }
    std::vector<std::string> out;
    for (uint32_t id : table()) {
      out.push_back(addr[id]);
    }
    return out;
  }
  uint32_t activeInnerId() {
    uint32_t id = 0, vip = vipId();
    bpf_map_lookup_elem(state->maps().rings.get(), &vip, &id);
    return id;
  }
};

std::string backendsJson(std::initializer_list<std::pair<int, int>> addr_weight) {
  std::string out;
  for (auto [host, weight] : addr_weight) {
    out += std::string(out.empty() ? "" : ", ") + R"({"address": "198.18.1.)" +
           std::to_string(host) + R"(", "weight": )" + std::to_string(weight) + "}";
  }
  return out;
}

size_t differing(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  size_t n = a.size() != b.size() ? std::max(a.size(), b.size()) : 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++) {
    n += a[i] != b[i];
  }
  return n;
}

class LbStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: BPF maps";
    }
  }
};

TEST_F(LbStateTest, WritesOnlyChangedSlotsIntoTheSpareTableThenSwaps) {
  Balancer lb;
  ASSERT_NO_FATAL_FAILURE(lb.start("lbs"));
  const auto first = lb.apply(backendsJson({{10, 1}, {11, 1}}));
  EXPECT_EQ(first.ring_slots_written, 4099u + 1) << "a fresh table is written whole";
  const auto t0 = lb.table();
  const uint32_t inner0 = lb.activeInnerId();

  const auto again = lb.apply(backendsJson({{10, 1}, {11, 1}}));
  EXPECT_EQ(again.ring_slots_written, 0u) << "an unchanged config writes nothing";
  EXPECT_EQ(again.vips_unchanged, 1u);
  EXPECT_EQ(lb.activeInnerId(), inner0) << "and swaps nothing";

  lb.apply(backendsJson({{10, 1}, {11, 1}, {12, 1}}));
  const auto t1 = lb.table();
  const uint32_t inner1 = lb.activeInnerId();
  EXPECT_NE(inner1, inner0) << "the change went into the spare table, swapped in";

  const auto third = lb.apply(backendsJson({{10, 1}, {11, 1}, {12, 1}, {13, 1}}));
  const auto t2 = lb.table();
  EXPECT_EQ(lb.activeInnerId(), inner0) << "tables alternate";
  EXPECT_EQ(third.ring_slots_written, differing(t0, t2))
      << "exactly the slots where the spare (still holding t0) differs from the new table";
  // The table that was live before the swap is untouched in its (now spare) map.
  auto spare =
      agent::openPinned(lb.pins->path() + "/rings/vip" + std::to_string(lb.vipId()) + "_1");
  ASSERT_TRUE(spare) << spare.error().message;
  for (uint32_t slot : {1u, 100u, 4099u}) {
    uint32_t v = 0;
    ASSERT_EQ(bpf_map_lookup_elem(spare->get(), &slot, &v), 0);
    EXPECT_EQ(v, t1[slot - 1]) << "spare slot " << slot << " still holds the previous table";
  }
}

TEST_F(LbStateTest, RestartedAgentAdoptsIdsAndTablesAndWritesNothing) {
  Balancer lb;
  ASSERT_NO_FATAL_FAILURE(lb.start("lbs"));
  lb.apply(backendsJson({{10, 1}, {11, 2}}));
  lb.apply(backendsJson({{10, 1}, {11, 2}, {12, 3}}));
  const auto before = lb.table();
  ASSERT_NO_FATAL_FAILURE(lb.adopt());  // a new agent, same pins
  const auto st = lb.apply(backendsJson({{10, 1}, {11, 2}, {12, 3}}));
  EXPECT_EQ(st.backends_added, 0u) << "backend ids adopted";
  EXPECT_EQ(st.vips_added, 0u) << "vip id adopted";
  EXPECT_EQ(st.ring_slots_written, 0u) << "the live table already is this one";
  EXPECT_EQ(lb.table(), before) << "traffic sees the same table";
}

TEST_F(LbStateTest, BalancersWithDifferentHistoriesAgreeOnEverySlot) {
  Balancer a, b;
  ASSERT_NO_FATAL_FAILURE(a.start("ecmp-a"));
  ASSERT_NO_FATAL_FAILURE(b.start("ecmp-b"));
  a.apply(backendsJson({{10, 1}, {11, 2}, {12, 3}, {13, 1}}));
  // b learns the same set in another order, through other states, with a restart.
  b.apply(backendsJson({{13, 1}}));
  b.apply(backendsJson({{12, 3}, {13, 5}}));
  ASSERT_NO_FATAL_FAILURE(b.adopt());
  b.apply(backendsJson({{13, 1}, {12, 3}, {11, 2}, {10, 1}}));
  const auto ta = a.tableByAddress(), tb = b.tableByAddress();
  ASSERT_EQ(ta.size(), 4099u);
  EXPECT_EQ(ta, tb) << "identical backend address in every slot";
  EXPECT_NE(a.table(), b.table()) << "even though their backend ids differ";
}

// mg_vip_addrs as "address/protocol" -> how many VIPs have it, every key with port 0.
std::map<std::string, uint32_t> vipAddresses(const Balancer& lb) {
  std::map<std::string, uint32_t> out;
  const int fd = lb.state->maps().vip_addrs.get();
  mg_vip_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    uint32_t count = 0;
    EXPECT_EQ(bpf_map_lookup_elem(fd, &next, &count), 0);
    EXPECT_EQ(next.port, 0) << "an address entry has no port";
    out[agent::vipKeyName(next)] = count;
    key = next;
    prev = &key;
  }
  return out;
}

std::string vipJson(const std::string& name, const std::string& addr, int port,
                    const std::string& proto) {
  return R"({"name": ")" + name + R"(", "address": ")" + addr + R"(", "port": )" +
         std::to_string(port) + R"(, "protocol": ")" + proto +
         R"(", "ring_size": 1009, "backends": [{"address": ")" +
         (addr.find(':') == std::string::npos ? "198.18.1.10" : "fd00:1::10") + R"("}]})";
}

// The exact (address, protocol) set behind the VIP filter, which xdp_lb asks about IPv4
// fragments that carry no ports, follows the VIPs: counted per VIP, removed with the last
// VIP that had it, also by an agent that adopted the maps after a restart.
TEST_F(LbStateTest, VipAddressSetFollowsTheVipsAcrossChangesAndARestart) {
  Balancer lb;
  ASSERT_NO_FATAL_FAILURE(lb.start("lbs"));
  lb.applyVips(vipJson("web", "198.18.100.1", 80, "tcp") + "," +
               vipJson("tls", "198.18.100.1", 443, "tcp") + "," +
               vipJson("dns", "198.18.100.1", 53, "udp") + "," +
               vipJson("web6", "fd00:100::1", 80, "tcp"));
  EXPECT_EQ(vipAddresses(lb),
            (std::map<std::string, uint32_t>{
                {"198.18.100.1:*/tcp", 2}, {"198.18.100.1:*/udp", 1}, {"[fd00:100::1]:*/tcp", 1}}));
  lb.applyVips(vipJson("web", "198.18.100.1", 80, "tcp") + "," +
               vipJson("dns", "198.18.100.1", 53, "udp"));
  EXPECT_EQ(vipAddresses(lb), (std::map<std::string, uint32_t>{{"198.18.100.1:*/tcp", 1},
                                                               {"198.18.100.1:*/udp", 1}}));
  ASSERT_NO_FATAL_FAILURE(lb.adopt());  // a new agent, same pins
  lb.applyVips(vipJson("dns", "198.18.100.1", 53, "udp"));
  EXPECT_EQ(vipAddresses(lb), (std::map<std::string, uint32_t>{{"198.18.100.1:*/udp", 1}}));
}

// Backend ids go round-robin from the one given out last. A previous agent that gave out
// the last id (MG_MAX_BACKENDS - 1) leaves the next agent to wrap to the first free one, not
// to try the id past the end of the map (which failed every start from then on).
TEST_F(LbStateTest, ARestartAfterTheLastBackendIdWasGivenOutWrapsToTheFirst) {
  Balancer lb;
  ASSERT_NO_FATAL_FAILURE(lb.start("lbs"));
  lb.apply(backendsJson({{10, 1}}));
  // What an agent leaves after giving out the last id, then removing that backend: the entry
  // stays with its generation, LIVE cleared.
  const uint32_t last = MG_MAX_BACKENDS - 1;
  mg_backend gone{};
  gone.gen = 1000;
  gone.family = 4;
  ASSERT_EQ(bpf_map_update_elem(lb.state->maps().backends.get(), &last, &gone, BPF_ANY), 0);
  ASSERT_NO_FATAL_FAILURE(lb.adopt());  // a new agent, same pins
  const auto st = lb.apply(backendsJson({{10, 1}, {11, 1}}));
  EXPECT_EQ(st.backends_added, 1u) << "the new backend got an id";
  auto live = agent::readLiveBackends(lb.state->maps().backends.get());
  ASSERT_TRUE(live) << live.error().message;
  std::vector<uint32_t> ids;
  for (const auto& b : *live) {
    ids.push_back(b.id);
    if (b.id == 2) {
      EXPECT_GT(b.backend.gen, 1000u) << "generations only grow";
    }
  }
  EXPECT_EQ(ids, (std::vector<uint32_t>{1, 2}))
      << "1 is in use, 0 is never given out: the next id after the last is 2";
}

// A config at the limit of backend ids (MG_MAX_BACKENDS - 1 across all VIPs) that swaps one
// backend of a VIP for another needs an id before the old backend's is free: the apply frees
// the backends that no VIP names any more first, instead of failing half way.
TEST_F(LbStateTest, AConfigAtTheBackendLimitCanSwapABackend) {
  Balancer lb;
  ASSERT_NO_FATAL_FAILURE(lb.start("lbs"));
  const uint32_t many = MG_MAX_BACKENDS - 2;  // VIP "big"; "small" has the last one
  std::string big;
  big.reserve(many * 40);
  for (uint32_t i = 0; i < many; i++) {
    char address[32];
    std::snprintf(address, sizeof(address), "fd00:%x::%x", i / 65536, i % 65536);
    big += std::string(i ? "," : "") + R"({"address": ")" + address + R"("})";
  }
  const auto vips = [&](const char* small_backend) {
    return R"({"name": "big", "address": "198.18.100.1", "port": 80, "protocol": "tcp",
               "ring_size": 262147, "backends": [)" +
           big + R"(]}, {"name": "small", "address": "198.18.100.2", "port": 80,
               "protocol": "tcp", "ring_size": 1009, "backends": [{"address": ")" +
           small_backend + R"("}]})";
  };
  const auto first = lb.applyVips(vips("198.18.1.10"));
  ASSERT_EQ(first.backends_added, MG_MAX_BACKENDS - 1) << "every id given out";
  const auto swapped = lb.applyVips(vips("198.18.1.11"));
  EXPECT_EQ(swapped.backends_added, 1u);
  EXPECT_EQ(swapped.backends_removed, 1u);
  EXPECT_EQ(swapped.vips_unchanged, 1u) << "\"big\" is left alone";
  auto live = agent::readLiveBackends(lb.state->maps().backends.get());
  ASSERT_TRUE(live) << live.error().message;
  EXPECT_EQ(live->size(), MG_MAX_BACKENDS - 1u);
  const bool has_new = std::any_of(live->begin(), live->end(), [](const auto& b) {
    return agent::addressText(b.backend.addr, b.backend.family) == "198.18.1.11";
  });
  EXPECT_TRUE(has_new) << "the new backend of \"small\" is live";
}

}  // namespace
}  // namespace meshgate::test
