// Real QUIC through the balancer: Debian's ngtcp2 client (gtlsclient) downloads from three
// backends running tools/quic-server (ngtcp2 + nghttp3, CIDs from meshgate's QUIC-LB
// library) behind a QUIC VIP of xdp_lb, and migrates to a new local port mid-transfer.
//
//   [client] --- [lb: xdp_lb] --IPIP--> [b1|b2|b3: xdp_decap, meshgate-quic-server on the VIP]
//
// The server holds the second half of /migrate/N to a trickle until it has validated the
// client on a new path, so the download completes only if the migrated packets reach the
// server that owns the connection. The client's two source ports are pinned by the client
// namespace's ip_local_port_range to two ports whose 4-tuples hash to different backends:
// - with QUIC-LB, the CID names the server and the transfer completes, byte-exact, on it;
// - without QUIC-LB (a plain UDP VIP), the migrated 4-tuple lands on another backend, which
//   answers with a stateless reset, and the transfer breaks.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "agent/lb_maps.h"
#include "meshgate/abi/hash.h"
#include "tests/lib/lb_topology.h"
#include "tests/lib/process.h"
#include "tools/quic-server/body.h"

namespace meshgate::test {
namespace {

constexpr uint16_t kPort = 4433;
constexpr const char* kClient = "198.18.0.2";
constexpr uint64_t kBodyLen = 3'000'000;
constexpr const char* kResetSecret = "6d6573686761746520746573742072657365742073656372657421";

// One QUIC-LB config, as both the balancer's JSON and the servers' flags.
struct LbConfig {
  int config_rotation;
  int server_id_len;
  int nonce_len;
  std::string key;  // empty: plaintext

  std::string json() const {
    std::string j = "{\"config_rotation\": " + std::to_string(config_rotation) +
                    ", \"server_id_len\": " + std::to_string(server_id_len) +
                    ", \"nonce_len\": " + std::to_string(nonce_len);
    if (!key.empty()) {
      j += ", \"key\": \"" + key + "\"";
    }
    return j + "}";
  }
  std::vector<std::string> flags() const {
    std::vector<std::string> f = {"--cr",          std::to_string(config_rotation),
                                  "--sid-len",     std::to_string(server_id_len),
                                  "--nonce-len",   std::to_string(nonce_len)};
    if (!key.empty()) {
      f.insert(f.end(), {"--lb-key", key});
    }
    return f;
  }
};

constexpr const char* kKey = "8f95f09245765f80256934e50c66207f";  // the draft's test key

std::string serverId(int backend) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04x", 0x0a00 + backend);
  return buf;
}

class QuicMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: network namespaces, XDP";
    }
    auto topo = LbTopology::create(3, kPort);
    ASSERT_TRUE(topo) << topo.error().message;
    topo_ = std::move(*topo);
    dir_ = std::filesystem::path(topo_->configPath()).parent_path();
    auto cert = runCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                            dir_ + "/key.pem", "-out", dir_ + "/cert.pem", "-days", "1", "-subj",
                            "/CN=meshgate-test"});
    ASSERT_TRUE(cert) << cert.error().message;
  }

  // The balancer's config: one UDP VIP on kPort, three backends, QUIC-LB when `lb` is set.
  std::string config(const std::optional<LbConfig>& lb) const {
    std::string backends;
    for (int i = 1; i <= topo_->backends(); i++) {
      backends += std::string(i > 1 ? ", " : "") + "{\"address\": \"" + topo_->backendAddress(i) +
                  "\"" + (lb ? ", \"quic_server_id\": \"" + serverId(i) + "\"" : "") + "}";
    }
    return "{\n  \"pin_root\": \"" + topo_->pinRoot() + "\",\n  \"interfaces\": [{\"name\": \"" +
           topo_->clientInterface() + "\"}],\n  \"hash_seed\": 7,\n" +
           "  \"vips\": [{\"name\": \"h3\", \"address\": \"" + LbTopology::kVip +
           "\", \"port\": " + std::to_string(kPort) + ", \"protocol\": \"udp\"" +
           (lb ? ", \"quic_lb\": {\"configs\": [" + lb->json() + "]}" : "") +
           ",\n            \"backends\": [" + backends + "]}]\n}\n";
  }

  // Name of the backend ("b1".."b3") that the installed table gives to client port `sport`.
  std::string tableBackend(uint16_t sport) {
    if (!table_) {
      auto t = InstalledTable::read(*topo_);
      EXPECT_TRUE(t) << t.error().message;
      table_ = t ? std::move(*t) : InstalledTable();
    }
    return table_->backendFor(kClient, sport, kPort, IPPROTO_UDP);
  }

  // Pins the client's ephemeral ports to {p, p + 1}, two ports whose 4-tuples the table
  // sends to different backends: the client's first socket takes one, its migrated socket
  // (opened while the first is still bound) the other.
  void pinClientPorts() {
    for (uint16_t p = 40000; p < 41000; p++) {
      if (tableBackend(p) != tableBackend(p + 1)) {
        ports_ = {p, static_cast<uint16_t>(p + 1)};
        break;
      }
    }
    ASSERT_NE(ports_.first, 0) << "no adjacent ports with different backends";
    auto r = topo_->client().setSysctl(
        "net.ipv4.ip_local_port_range",
        std::to_string(ports_.first) + " " + std::to_string(ports_.second));
    ASSERT_TRUE(r) << r.error().message;
  }

  void startServers(const LbConfig& lb) {
    for (int i = 1; i <= topo_->backends(); i++) {
      std::vector<std::string> argv = {builtBinary("meshgate-quic-server"),
                                       "--listen",
                                       std::string(LbTopology::kVip) + ":" + std::to_string(kPort),
                                       "--cert",
                                       dir_ + "/cert.pem",
                                       "--key",
                                       dir_ + "/key.pem",
                                       "--server-id",
                                       serverId(i),
                                       "--reset-secret",
                                       kResetSecret};
      for (auto& f : lb.flags()) {
        argv.push_back(f);
      }
      auto s = Subprocess::spawn(argv, {.netns = topo_->backend(i).name(), .capture_output = true});
      ASSERT_TRUE(s) << s.error().message;
      auto line = s->readLine(std::chrono::seconds(10));
      ASSERT_TRUE(line) << "b" << i << ": " << line.error().message;
      ASSERT_TRUE(line->starts_with("listening on ")) << *line;
      servers_.push_back(std::move(*s));
    }
  }

  // Runs the client: GET /migrate/kBodyLen, migrating 100 ms after the handshake. Returns
  // how many bytes it saved (the client exits 0 also when a stateless reset ended it).
  uint64_t download() {
    const std::string out = dir_ + "/download";
    std::filesystem::create_directories(out);
    auto r = runCommand({"gtlsclient", "-q", "--exit-on-all-streams-close", "--download=" + out,
                         "--timeout=3s", "--change-local-addr=100ms", LbTopology::kVip,
                         std::to_string(kPort),
                         "https://" + std::string(LbTopology::kVip) + ":" +
                             std::to_string(kPort) + "/migrate/" + std::to_string(kBodyLen)},
                        {.netns = topo_->client().name(), .timeout = std::chrono::seconds(60)});
    client_output_ = r ? *r : r.error().message;
    const std::string file = out + "/" + std::to_string(kBodyLen);
    if (!std::filesystem::exists(file)) {
      return 0;
    }
    std::ifstream in(file, std::ios::binary);
    std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (size_t i = 0; i < data.size(); i++) {
      if (static_cast<uint8_t>(data[i]) != quicserver::bodyByte(i)) {
        ADD_FAILURE() << "downloaded byte " << i << " differs from what the server sends";
        break;
      }
    }
    return data.size();
  }

  // Stops the servers and returns each one's output, by backend name.
  std::map<std::string, std::string> stopServers() {
    std::map<std::string, std::string> out;
    for (size_t i = 0; i < servers_.size(); i++) {
      EXPECT_TRUE(servers_[i].kill(SIGTERM));
      auto code = servers_[i].wait(std::chrono::seconds(10));
      EXPECT_TRUE(code && *code == 0) << "server b" << i + 1 << " did not exit cleanly";
      auto rest = servers_[i].readAll(std::chrono::seconds(5));
      out[topo_->backendName(static_cast<int>(i) + 1)] = rest ? *rest : rest.error().message;
    }
    return out;
  }

  // Packets the balancer sent to each backend, from the pinned per-backend counters.
  std::map<std::string, uint64_t> packetsPerBackend() {
    std::map<std::string, uint64_t> out;
    auto maps = agent::LbMaps::openPinned(topo_->pinRoot());
    EXPECT_TRUE(maps) << maps.error().message;
    for (const auto& [name, id] : table_->ids()) {
      auto t = agent::readTraffic(maps->backend_stats.get(), id, MG_MAP_BACKEND_STATS);
      EXPECT_TRUE(t) << t.error().message;
      out[name] = t ? t->packets : 0;
    }
    return out;
  }

  uint64_t counter(const std::string& name) {
    auto maps = agent::LbMaps::openPinned(topo_->pinRoot());
    EXPECT_TRUE(maps) << maps.error().message;
    auto counters = agent::readLbCounters(maps->lb_stats.get());
    EXPECT_TRUE(counters) << counters.error().message;
    for (const auto& c : *counters) {
      if (c.name == name) {
        return c.value;
      }
    }
    ADD_FAILURE() << "no counter " << name;
    return 0;
  }

  // The full run with QUIC-LB on: the migrated transfer completes on the one backend that
  // accepted the connection, and every packet of it went there.
  void expectMigrationSurvives(const LbConfig& lb) {
    ASSERT_TRUE(topo_->writeConfigText(config(lb)));
    ASSERT_TRUE(topo_->startAgent());
    ASSERT_NO_FATAL_FAILURE(pinClientPorts());
    ASSERT_NO_FATAL_FAILURE(startServers(lb));
    const uint64_t got = download();
    const auto logs = stopServers();
    EXPECT_EQ(got, kBodyLen) << "the migrated download completes\nclient: " << client_output_;

    std::string owner;
    for (const auto& [name, log] : logs) {
      if (log.find(" accepted from " + std::string(kClient)) != std::string::npos) {
        EXPECT_TRUE(owner.empty()) << "one server accepted the connection, not " << owner
                                   << " and " << name;
        owner = name;
      }
    }
    ASSERT_FALSE(owner.empty()) << "no server accepted the connection";
    const std::string migrated = " migrated to " + std::string(kClient) + ":";
    EXPECT_NE(logs.at(owner).find(migrated), std::string::npos)
        << owner << " validated the client's new path:\n" << logs.at(owner);
    EXPECT_NE(logs.at(owner).find("trickling from"), std::string::npos)
        << "the migration happened mid-transfer:\n" << logs.at(owner);
    const auto packets = packetsPerBackend();
    for (const auto& [name, n] : packets) {
      if (name == owner) {
        EXPECT_GT(n, 100u) << "the transfer's packets reached " << name;
      } else {
        EXPECT_EQ(n, 0u) << name << " got none of the connection's packets\n" << logs.at(name);
      }
    }
    EXPECT_GT(counter("quic_routed_cid"), 100u) << "packets were routed by CID";
    if (!lb.key.empty()) {
      EXPECT_GT(counter("quic_cid_decoded"), 0u) << "encrypted CIDs were decoded in XDP";
      EXPECT_GT(counter("quic_cid_cache_hit"), counter("quic_cid_decoded"))
          << "most packets took their server ID from the CID cache";
    }
  }

  std::unique_ptr<LbTopology> topo_;
  std::string dir_;
  std::vector<Subprocess> servers_;
  std::pair<uint16_t, uint16_t> ports_{0, 0};
  std::string client_output_;
  std::optional<InstalledTable> table_;
};

TEST_F(QuicMigrationTest, PlaintextCidKeepsTheMigratedConnectionOnItsBackend) {
  expectMigrationSurvives({.config_rotation = 0, .server_id_len = 2, .nonce_len = 6, .key = ""});
}

TEST_F(QuicMigrationTest, SinglePassEncryptedCidKeepsTheMigratedConnectionOnItsBackend) {
  expectMigrationSurvives({.config_rotation = 1, .server_id_len = 2, .nonce_len = 14, .key = kKey});
}

TEST_F(QuicMigrationTest, FourPassEncryptedCidKeepsTheMigratedConnectionOnItsBackend) {
  expectMigrationSurvives({.config_rotation = 2, .server_id_len = 2, .nonce_len = 8, .key = kKey});
}

// The control experiment: the same servers and client on a plain UDP VIP. The new 4-tuple
// hashes to another backend, which does not know the CID and resets the connection.
TEST_F(QuicMigrationTest, WithoutQuicLbTheMigratedConnectionBreaks) {
  const LbConfig lb{.config_rotation = 0, .server_id_len = 2, .nonce_len = 6, .key = ""};
  ASSERT_TRUE(topo_->writeConfigText(config(std::nullopt)));
  ASSERT_TRUE(topo_->startAgent());
  ASSERT_NO_FATAL_FAILURE(pinClientPorts());
  ASSERT_NO_FATAL_FAILURE(startServers(lb));
  const uint64_t got = download();
  const auto logs = stopServers();
  EXPECT_LT(got, kBodyLen) << "the migrated download cannot complete\nclient: " << client_output_;
  EXPECT_GE(got, kBodyLen / 2) << "the first half arrived before the migration";

  std::string owner, resetter;
  for (const auto& [name, log] : logs) {
    if (log.find(" accepted from " + std::string(kClient)) != std::string::npos) {
      owner = name;
    }
    if (log.find("stateless reset to " + std::string(kClient)) != std::string::npos) {
      resetter = name;
    }
  }
  ASSERT_FALSE(owner.empty()) << "no server accepted the connection";
  EXPECT_EQ(logs.at(owner).find(" migrated to "), std::string::npos)
      << owner << " never saw the client's new path:\n" << logs.at(owner);
  EXPECT_FALSE(resetter.empty()) << "another backend reset the migrated connection";
  EXPECT_NE(resetter, owner);
  EXPECT_EQ(tableBackend(ports_.first) == owner ? tableBackend(ports_.second)
                                                : tableBackend(ports_.first),
            resetter)
      << "the reset came from where the table sends the migrated 4-tuple";
  const auto packets = packetsPerBackend();
  EXPECT_GT(packets.at(owner), 0u);
  EXPECT_GT(packets.at(resetter), 0u) << "the migrated packets went to " << resetter;
  EXPECT_EQ(counter("quic_routed_cid"), 0u) << "a plain UDP VIP does not look at CIDs";
}

}  // namespace
}  // namespace meshgate::test
