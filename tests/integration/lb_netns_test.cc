// Proves the balancer end to end with real TCP across network namespaces: a client, a
// balancer running meshgate-agent with xdp_lb, and three backends with xdp_decap answering
// directly. Connections spread by weight exactly as the installed Maglev table says;
// adding a backend leaves established connections alone; removing one moves only its
// flows; and kill -9 of the agent mid-transfer, then a restart, loses no byte.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <map>

#include "agent/lb_maps.h"
#include "meshgate/abi/hash.h"
#include "tests/lib/lb_topology.h"

namespace meshgate::test {
namespace {

constexpr uint16_t kPort = 8080;
constexpr const char* kClient = "198.18.0.2";

class LbNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: network namespaces, XDP";
    }
    auto topo = LbTopology::create(3, kPort);
    ASSERT_TRUE(topo) << topo.error().message;
    topo_ = std::move(*topo);
  }

  std::vector<BackendSpec> backends(std::vector<uint32_t> weights) {
    std::vector<BackendSpec> out;
    for (size_t i = 0; i < weights.size(); i++) {
      out.push_back({topo_->backendAddress(static_cast<int>(i) + 1), weights[i]});
    }
    return out;
  }

  // The backend name the installed table gives to client port `sport`. The table is read
  // from the pinned maps once per config (reload() forgets it).
  std::string expectedBackend(uint16_t sport) {
    if (!table_) {
      auto t = InstalledTable::read(*topo_);
      EXPECT_TRUE(t) << t.error().message;
      table_ = t ? std::move(*t) : InstalledTable();
    }
    return table_->backendFor(kClient, sport, kPort, IPPROTO_TCP);
  }

  void reload(const std::vector<BackendSpec>& b) {
    ASSERT_TRUE(topo_->writeConfig(b));
    auto r = topo_->reloadAgent();
    ASSERT_TRUE(r) << r.error().message;
    table_.reset();
  }

  // Opens n connections from consecutive client ports and records each one's backend.
  void openConnections(uint16_t first, int n, std::vector<std::pair<TcpClient, std::string>>& out) {
    for (uint16_t p = first; p < first + n; p++) {
      auto c = connect(p);
      ASSERT_TRUE(c) << c.error().message;
      auto id = c->askId();
      ASSERT_TRUE(id) << id.error().message;
      out.emplace_back(std::move(*c), *id);
    }
  }

  // Opens n connections from consecutive client ports, checks that each lands where the
  // installed table says, and counts them by backend.
  void newConnections(uint16_t first, int n, std::map<std::string, int>& got) {
    got.clear();
    for (uint16_t p = first; p < first + n; p++) {
      auto c = connect(p);
      ASSERT_TRUE(c) << c.error().message;
      auto id = c->askId();
      ASSERT_TRUE(id) << "port " << p << ": " << id.error().message;
      EXPECT_EQ(*id, expectedBackend(p)) << "new connection " << p;
      got[*id]++;
    }
  }

  Result<TcpClient> connect(uint16_t sport) {
    return TcpClient::connect(topo_->client(), kClient, sport, LbTopology::kVip, kPort);
  }

  std::unique_ptr<LbTopology> topo_;
  std::optional<InstalledTable> table_;  // read once per config
};

TEST_F(LbNetnsTest, SpreadsConnectionsByWeightExactlyAsTheTableSays) {
  ASSERT_TRUE(topo_->writeConfig(backends({1, 2, 3})));
  ASSERT_TRUE(topo_->startAgent());
  std::map<std::string, int> got;
  int mismatches = 0;
  const int kConns = 600;
  for (uint16_t p = 20000; p < 20000 + kConns; p++) {
    auto c = connect(p);
    ASSERT_TRUE(c) << c.error().message;
    auto id = c->askId();
    ASSERT_TRUE(id) << "port " << p << ": " << id.error().message;
    got[*id]++;
    mismatches += *id != expectedBackend(p);
  }
  EXPECT_EQ(mismatches, 0) << "every connection lands where the table says";
  // Weights 1:2:3 of 600 connections: 100/200/300 expected; allow hashing noise of a
  // fixed port set (deterministic, not random).
  EXPECT_NEAR(got["b1"], 100, 35) << "b1 share";
  EXPECT_NEAR(got["b2"], 200, 45) << "b2 share";
  EXPECT_NEAR(got["b3"], 300, 50) << "b3 share";
  EXPECT_LT(got["b1"], got["b2"]) << "weight 1 < weight 2";
  EXPECT_LT(got["b2"], got["b3"]) << "weight 2 < weight 3";
}

TEST_F(LbNetnsTest, AddingBackendLeavesEstablishedConnectionsUntouched) {
  ASSERT_TRUE(topo_->writeConfig(backends({1, 1})));
  ASSERT_TRUE(topo_->startAgent());
  std::vector<std::pair<TcpClient, std::string>> open;
  ASSERT_NO_FATAL_FAILURE(openConnections(21000, 60, open));
  reload(backends({1, 1, 2}));
  int moved_in_table = 0;
  for (size_t i = 0; i < open.size(); i++) {
    moved_in_table += expectedBackend(21000 + i) != open[i].second;
    auto id = open[i].first.askId();
    ASSERT_TRUE(id) << "connection " << i << " broke: " << id.error().message;
    EXPECT_EQ(*id, open[i].second) << "connection " << i << " stays on its backend";
  }
  EXPECT_GT(moved_in_table, 10) << "the new table would move many of these flows";
  // New connections use the new table, including the new backend.
  std::map<std::string, int> got;
  ASSERT_NO_FATAL_FAILURE(newConnections(21100, 100, got));
  EXPECT_GT(got["b3"], 20) << "the added backend takes new connections";
}

TEST_F(LbNetnsTest, RemovingBackendMovesOnlyItsFlows) {
  ASSERT_TRUE(topo_->writeConfig(backends({1, 1, 1})));
  ASSERT_TRUE(topo_->startAgent());
  std::vector<std::pair<TcpClient, std::string>> open;
  ASSERT_NO_FATAL_FAILURE(openConnections(22000, 60, open));
  reload({{topo_->backendAddress(1), 1}, {topo_->backendAddress(2), 1}});
  int survivors = 0, moved = 0;
  for (size_t i = 0; i < open.size(); i++) {
    auto id = open[i].first.askId();
    if (open[i].second == "b3") {
      // Its packets now reach a backend without the socket: a reset, as in any DSR
      // balancer without connection state sharing.
      EXPECT_FALSE(id) << "connection " << i << " of the removed backend moved";
      moved++;
    } else {
      ASSERT_TRUE(id) << "connection " << i << " on " << open[i].second
                      << " broke: " << id.error().message;
      EXPECT_EQ(*id, open[i].second) << "connection " << i << " stays";
      survivors++;
    }
  }
  EXPECT_GT(moved, 5) << "some flows were on b3";
  EXPECT_GT(survivors, 20) << "most flows were elsewhere";
  auto maps = agent::LbMaps::openPinned(topo_->pinRoot());
  ASSERT_TRUE(maps);
  EXPECT_EQ(*agent::sumPerCpuU64(maps->lb_stats.get(), MG_LB_CT_BACKEND_GONE, "stats"),
            static_cast<uint64_t>(moved))
      << "exactly the removed backend's flows re-chose";
}

TEST_F(LbNetnsTest, AgentKill9MidTransferThenRestartLosesNoByte) {
  ASSERT_TRUE(topo_->writeConfig(backends({1, 1, 1})));
  ASSERT_TRUE(topo_->startAgent());
  constexpr uint64_t kTotal = 48ull << 20;
  auto c = connect(23000);
  ASSERT_TRUE(c) << c.error().message;
  auto name = c->startStream(kTotal);
  ASSERT_TRUE(name) << name.error().message;
  ASSERT_TRUE(c->readStream(4 << 20)) << "first 4 MiB";

  ASSERT_TRUE(topo_->agent().kill9());
  topo_->forgetAgent();
  auto during = c->readStream(16 << 20);
  ASSERT_TRUE(during) << "transfer continues with no agent: " << during.error().message;

  ASSERT_TRUE(topo_->startAgent()) << "restart adopts pinned state";
  auto rest = c->readStream(kTotal - c->streamOffset());
  ASSERT_TRUE(rest) << rest.error().message;
  EXPECT_EQ(c->streamOffset(), kTotal) << "every byte arrived, byte-exact";
  auto id = c->askId();
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, *name) << "same backend after the restart";
  auto maps = agent::LbMaps::openPinned(topo_->pinRoot());
  ASSERT_TRUE(maps);
  EXPECT_GT(*agent::sumPerCpuU64(maps->lb_stats.get(), MG_LB_CT_HIT, "stats"), 100u)
      << "the client's ACKs went through xdp_lb all along";
}

TEST_F(LbNetnsTest, ABackendFailingItsHealthCheckGetsNoNewFlowsUntilItPassesAgain) {
  // Each backend answers health checks on its own address, port 9090; its service stays on
  // the VIP. Closing b3's health port (its service keeps running) is a failed check only.
  constexpr uint16_t kHealthPort = 9090;
  std::vector<std::unique_ptr<BackendServer>> health(3);
  auto startHealth = [&](int i) {
    auto s = BackendServer::start(topo_->backend(i), topo_->backendAddress(i), kHealthPort,
                                  "health" + std::to_string(i));
    ASSERT_TRUE(s) << s.error().message;
    health[i - 1] = std::move(*s);
  };
  for (int i = 1; i <= 3; i++) {
    ASSERT_NO_FATAL_FAILURE(startHealth(i));
  }
  std::string text = topo_->configText(backends({1, 1, 1}));
  const std::string anchor = "\"ring_size\": 65537,";
  ASSERT_NE(text.find(anchor), std::string::npos);
  text.insert(text.find(anchor) + anchor.size(),
              " \"health_check\": {\"port\": 9090, \"interval_ms\": 100, \"timeout_ms\": 100, "
              "\"rise\": 2, \"fall\": 2},");
  ASSERT_TRUE(topo_->writeConfigText(text));
  ASSERT_TRUE(topo_->startAgent());
  std::vector<std::pair<TcpClient, std::string>> open;
  ASSERT_NO_FATAL_FAILURE(openConnections(24000, 60, open));

  // Counted from here, in case another backend's check flapped before (a loaded machine).
  size_t applied = topo_->agent().countLog("health: applied");
  health[2].reset();
  auto down = topo_->agent().waitForLog("vip 'web': backend 198.18.13.2 down (2 failed probes");
  ASSERT_TRUE(down) << down.error().message;
  ASSERT_TRUE(topo_->agent().waitForLog("health: applied", ++applied));
  table_.reset();
  int b3_before = 0;
  for (size_t i = 0; i < open.size(); i++) {
    b3_before += open[i].second == "b3";
    auto id = open[i].first.askId();
    ASSERT_TRUE(id) << "connection " << i << " broke: " << id.error().message;
    EXPECT_EQ(*id, open[i].second) << "connection " << i << " stays (a down backend is drained)";
  }
  EXPECT_GT(b3_before, 5) << "some tracked flows were on b3";
  std::map<std::string, int> got;
  ASSERT_NO_FATAL_FAILURE(newConnections(24100, 100, got));
  EXPECT_EQ(got["b3"], 0) << "no new flow reaches the down backend";
  EXPECT_EQ(got["b1"] + got["b2"], 100);

  // A restarted agent keeps the verdict: the installed table gives b3 no slot, so b3 starts
  // down instead of taking new flows until its checks fail again.
  ASSERT_TRUE(topo_->agent().kill9());
  topo_->forgetAgent();
  ASSERT_TRUE(topo_->startAgent());
  auto kept = topo_->agent().waitForLog("backend 198.18.13.2 starts down");
  ASSERT_TRUE(kept) << kept.error().message;
  table_.reset();
  ASSERT_NO_FATAL_FAILURE(newConnections(24300, 60, got));
  EXPECT_EQ(got["b3"], 0) << "still drained after the restart";

  applied = topo_->agent().countLog("health: applied");
  ASSERT_NO_FATAL_FAILURE(startHealth(3));
  auto up = topo_->agent().waitForLog("vip 'web': backend 198.18.13.2 up (2 good probes");
  ASSERT_TRUE(up) << up.error().message;
  ASSERT_TRUE(topo_->agent().waitForLog("health: applied", ++applied));
  table_.reset();
  ASSERT_NO_FATAL_FAILURE(newConnections(24400, 100, got));
  EXPECT_GT(got["b3"], 15) << "b3 takes new flows again";
}

}  // namespace
}  // namespace meshgate::test
