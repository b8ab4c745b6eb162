// Proves what the agent promises its operators, against a running meshgate-agent in a
// namespace topology: a bad config on SIGHUP is rejected naming the field while the
// running one keeps serving; meshgatectl and bpftool read the pinned maps with field
// names; a restarted agent swaps its program into the pinned link; --detach removes every
// link and map it installed and puts back the forwarding setting it changed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "agent/datapath.h"
#include "tests/lib/lb_topology.h"
#include "tests/lib/process.h"

namespace meshgate::test {
namespace {

constexpr uint16_t kPort = 8080;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: network namespaces, XDP";
    }
    auto topo = LbTopology::create(2, kPort);
    ASSERT_TRUE(topo) << topo.error().message;
    topo_ = std::move(*topo);
    ASSERT_TRUE(topo_->writeConfig(backends()));
    auto started = topo_->startAgent();
    ASSERT_TRUE(started) << started.error().message;
  }
  std::vector<BackendSpec> backends() {
    return {{topo_->backendAddress(1), 1}, {topo_->backendAddress(2), 1}};
  }
  Result<std::string> ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {builtBinary("meshgatectl"), "--pin-root", topo_->pinRoot()};
    argv.insert(argv.end(), args.begin(), args.end());
    return runCommand(argv);
  }
  std::string idFrom(uint16_t sport) {
    auto c = TcpClient::connect(topo_->client(), "198.18.0.2", sport, LbTopology::kVip, kPort);
    if (!c) {
      return "connect failed: " + c.error().message;
    }
    auto id = c->askId();
    return id ? *id : "ask failed: " + id.error().message;
  }

  std::unique_ptr<LbTopology> topo_;
};

TEST_F(AgentTest, RejectsBadConfigOnReloadNamingTheFieldAndKeepsServing) {
  std::string bad = topo_->configText(backends());
  const std::string from = "\"weight\": 1}";
  bad.replace(bad.find(from), from.size(), "\"weight\": \"ten\"}");
  ASSERT_TRUE(topo_->writeConfigText(bad));
  ASSERT_TRUE(topo_->agent().sighup());
  ASSERT_TRUE(topo_->agent().waitForLog("config rejected"));
  const std::string log = readFile(topo_->logPath());
  EXPECT_NE(log.find("vips[0].backends[0].weight"), std::string::npos)
      << "the error names the field:\n"
      << log;
  EXPECT_NE(log.find(topo_->configPath()), std::string::npos) << "and the file:\n" << log;
  for (uint16_t p = 24000; p < 24020; p++) {
    const std::string id = idFrom(p);
    EXPECT_TRUE(id == "b1" || id == "b2") << "port " << p << " still served: " << id;
  }
  auto out = ctl({"--json", "backends"});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(nlohmann::json::parse(*out).size(), 2u) << "the running backends stay";
}

// What a config names on this host but its validator cannot see (here an interface that
// does not exist) fails the start before the pinned state is touched: the previous agent's
// config keeps serving, with no agent running.
TEST_F(AgentTest, AFailedStartLeavesTheInstalledConfigServing) {
  topo_->forgetAgent();  // SIGTERM: the data path stays
  std::string cfg = topo_->configText({{topo_->backendAddress(1), 1}});  // would drop b2
  const std::string ifs = "[{\"name\": \"" + topo_->clientInterface() + "\"}";
  cfg.replace(cfg.find(ifs), ifs.size(), ifs + ", {\"name\": \"nosuch0\"}");
  ASSERT_TRUE(topo_->writeConfigText(cfg));
  ASSERT_FALSE(topo_->startAgent()) << "a start naming a missing interface must fail";
  topo_->forgetAgent();
  const std::string log = readFile(topo_->logPath());
  EXPECT_NE(log.find(topo_->configPath() + ": interfaces[1].name: interface 'nosuch0'"),
            std::string::npos)
      << "the error names the file and the field:\n"
      << log;
  auto out = ctl({"--json", "backends"});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(nlohmann::json::parse(*out).size(), 2u) << "the installed backends stay: " << *out;
  std::set<std::string> served;
  for (uint16_t p = 24100; p < 24140; p++) {
    served.insert(idFrom(p));
  }
  EXPECT_EQ(served, (std::set<std::string>{"b1", "b2"})) << "both backends still take flows";
}

// bpffs refuses a dot in a pin name, and VLAN interfaces have one ("eth0.100"): the link is
// pinned under an escaped name, listed under the real one, and detached by a later agent
// whose config no longer names the interface.
TEST_F(AgentTest, AttachesToAnInterfaceWithADotInItsName) {
  // This kernel has no dummy or 8021q driver: a veth pair of the balancer's namespace.
  ASSERT_TRUE(topo_->lb().run(
      {"ip", "link", "add", "mgvlan.7", "type", "veth", "peer", "name", "mgvlanpeer"}));
  ASSERT_TRUE(topo_->lb().run({"ip", "link", "set", "mgvlan.7", "up"}));
  topo_->forgetAgent();
  const std::string plain = topo_->configText(backends());
  std::string cfg = plain;
  const std::string ifs = "[{\"name\": \"" + topo_->clientInterface() + "\"}";
  cfg.replace(cfg.find(ifs), ifs.size(),
              ifs + ", {\"name\": \"mgvlan.7\", \"xdp_mode\": \"generic\"}");
  ASSERT_TRUE(topo_->writeConfigText(cfg));
  auto started = topo_->startAgent();
  ASSERT_TRUE(started) << started.error().message;
  auto links = agent::listPinnedLinks(topo_->pinRoot());
  ASSERT_TRUE(links) << links.error().message;
  std::set<std::string> ifnames;
  for (const auto& l : *links) {
    ifnames.insert(l.ifname);
    EXPECT_EQ(l.path.find('.', topo_->pinRoot().size()), std::string::npos)
        << "no dot in a pin name: " << l.path;
    EXPECT_NE(l.ifindex, 0u) << l.path << " is linked to its interface";
  }
  EXPECT_EQ(ifnames, (std::set<std::string>{topo_->clientInterface(), "mgvlan.7"}));
  auto status = ctl({"status"});
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_NE(status->find("xdp_lb on mgvlan.7 (attached"), std::string::npos) << *status;

  topo_->forgetAgent();
  ASSERT_TRUE(topo_->writeConfigText(plain));
  started = topo_->startAgent();
  ASSERT_TRUE(started) << started.error().message;
  links = agent::listPinnedLinks(topo_->pinRoot());
  ASSERT_TRUE(links && links->size() == 1u) << "the dotted interface's link is detached";
  EXPECT_EQ(links->at(0).ifname, topo_->clientInterface());
  auto xdp = topo_->lb().run({"ip", "-o", "link", "show", "mgvlan.7"});
  ASSERT_TRUE(xdp) << xdp.error().message;
  EXPECT_EQ(xdp->find("xdp"), std::string::npos) << "no program left on it: " << *xdp;
}

TEST_F(AgentTest, MeshgatectlReportsVipsBackendsAndCountersFromPinnedMaps) {
  for (uint16_t p = 25000; p < 25050; p++) {
    ASSERT_NE(idFrom(p).find("b"), std::string::npos);
  }
  auto vips = ctl({"--json", "vips"});
  ASSERT_TRUE(vips) << vips.error().message;
  const auto v = nlohmann::json::parse(*vips);
  ASSERT_EQ(v.size(), 1u) << *vips;
  EXPECT_EQ(v[0]["vip"], "198.18.100.1:8080/tcp");
  EXPECT_EQ(v[0]["table_size"], 65537);
  EXPECT_EQ(v[0]["backends"], 2);
  EXPECT_GE(v[0]["packets"].get<uint64_t>(), 50u * 3) << "SYN, request, FIN per connection";

  auto bes = ctl({"--json", "backends"});
  ASSERT_TRUE(bes) << bes.error().message;
  const auto b = nlohmann::json::parse(*bes);
  ASSERT_EQ(b.size(), 2u);
  uint64_t packets = 0;
  double share = 0;
  for (const auto& e : b) {
    packets += e["packets"].get<uint64_t>();
    share += e["table_share"].get<double>();
  }
  EXPECT_EQ(packets, v[0]["packets"].get<uint64_t>()) << "backend packets add up to the VIP's";
  EXPECT_NEAR(share, 1.0, 1e-9) << "table shares add up to the whole table";

  auto decap = runCommand(
      {builtBinary("meshgatectl"), "--pin-root", topo_->backendPinRoot(0), "--json", "stats"});
  ASSERT_TRUE(decap) << decap.error().message;
  const auto d = nlohmann::json::parse(*decap);
  ASSERT_TRUE(d.contains("decap")) << "a backend's stats show xdp_decap's counters: " << *decap;
  EXPECT_GT(d["decap"]["decap_4in4"].get<uint64_t>(), 0u) << *decap;
  EXPECT_EQ(d["decap"]["drop_trunc"], 0) << *decap;

  auto stats = ctl({"--json", "stats"});
  ASSERT_TRUE(stats) << stats.error().message;
  const auto s = nlohmann::json::parse(*stats);
  EXPECT_FALSE(s.contains("decap")) << "the balancer runs no xdp_decap";
  EXPECT_EQ(s["events"]["tcp_syn"], 50) << *stats;
  EXPECT_TRUE(s["drops"].contains("mtu_exceeded")) << "every drop reason is listed";

  auto status = ctl({"status"});
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_NE(status->find("xdp_lb on " + topo_->clientInterface() + " (attached"), std::string::npos)
      << *status;

  auto bad = ctl({"frobnicate"});
  ASSERT_FALSE(bad) << "an unknown command fails";
  EXPECT_NE(bad.error().message.find("unknown command 'frobnicate'"), std::string::npos)
      << bad.error().message;
}

TEST_F(AgentTest, ServesPrometheusMetricsByName) {
  topo_->forgetAgent();  // metrics.listen needs a restart, not a reload
  std::string cfg = topo_->configText(backends());
  cfg.replace(cfg.find("\"hash_seed\""), 0, "\"metrics\": {\"listen\": \"127.0.0.1:9464\"}, ");
  ASSERT_TRUE(topo_->writeConfigText(cfg));
  auto started = topo_->startAgent();
  ASSERT_TRUE(started) << started.error().message;
  for (uint16_t p = 28000; p < 28010; p++) {
    ASSERT_EQ(idFrom(p).substr(0, 1), "b");
  }
  auto out = topo_->lb().run({"curl", "-sS", "http://127.0.0.1:9464/metrics"});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_NE(out->find("meshgate_lb_events_total{event=\"tcp_syn\"} 10"), std::string::npos) << *out;
  EXPECT_NE(out->find("meshgate_lb_drops_total{reason=\"no_ring\"} 0"), std::string::npos)
      << "every drop reason exported";
  EXPECT_NE(out->find("meshgate_backend_packets_total{vip=\"198.18.100.1:8080/tcp\",backend=\""),
            std::string::npos)
      << "per-backend traffic exported";
  EXPECT_NE(out->find("meshgate_agent_config_reloads_total{result=\"rejected\"} 0"),
            std::string::npos)
      << *out;

  // Reloads are counted by result: a file that fails validation, then a good one.
  std::string bad = cfg;
  bad.replace(bad.find("\"hash_seed\": 7"), 14, "\"hash_seed\": -7");
  ASSERT_TRUE(topo_->writeConfigText(bad));
  ASSERT_TRUE(topo_->agent().sighup());
  ASSERT_TRUE(topo_->agent().waitForLog("config rejected"));
  ASSERT_TRUE(topo_->writeConfigText(cfg));
  ASSERT_TRUE(topo_->reloadAgent());
  out = topo_->lb().run({"curl", "-sS", "http://127.0.0.1:9464/metrics"});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_NE(out->find("meshgate_agent_config_reloads_total{result=\"rejected\"} 1"),
            std::string::npos)
      << *out;
  EXPECT_NE(out->find("meshgate_agent_config_reloads_total{result=\"applied\"} 1"),
            std::string::npos)
      << *out;
  EXPECT_NE(out->find("meshgate_agent_apply_pending 0"), std::string::npos) << *out;
}

// Metrics are served from the agent's poll loop without blocking it: clients that connect
// and send nothing (ten of them, held open) hold up neither a scrape nor a reload. (Each
// used to stall the agent for a second, one after the other.)
TEST_F(AgentTest, SilentMetricsClientsHoldUpNeitherAScrapeNorAReload) {
  topo_->forgetAgent();
  std::string cfg = topo_->configText(backends());
  cfg.replace(cfg.find("\"hash_seed\""), 0, "\"metrics\": {\"listen\": \"127.0.0.1:9464\"}, ");
  ASSERT_TRUE(topo_->writeConfigText(cfg));
  auto started = topo_->startAgent();
  ASSERT_TRUE(started) << started.error().message;
  auto holder = Subprocess::spawn(
      {"python3", "-c",
       "import signal, socket\n"
       "held = [socket.create_connection(('127.0.0.1', 9464)) for _ in range(10)]\n"
       "print('held', flush=True)\n"
       "signal.pause()\n"},
      {.netns = topo_->lb().name(), .capture_output = true});
  ASSERT_TRUE(holder) << holder.error().message;
  auto line = holder->readLine(std::chrono::seconds(10));
  ASSERT_TRUE(line && *line == "held") << (line ? *line : line.error().message);
  auto out = topo_->lb().run({"curl", "-sS", "--max-time", "3", "http://127.0.0.1:9464/metrics"});
  ASSERT_TRUE(out) << "a scrape behind ten silent clients: " << out.error().message;
  EXPECT_NE(out->find("meshgate_agent_config_reloads_total"), std::string::npos) << *out;
  EXPECT_TRUE(topo_->reloadAgent()) << "and a reload is handled";
  // A client that sends a bare request line and ends its side (`echo GET /metrics | nc`).
  auto bare = topo_->lb().run({"python3", "-c",
                               "import socket, sys\n"
                               "s = socket.create_connection(('127.0.0.1', 9464))\n"
                               "s.sendall(b'GET /metrics\\n')\n"
                               "s.shutdown(socket.SHUT_WR)\n"
                               "s.settimeout(5)\n"
                               "data = b''\n"
                               "while chunk := s.recv(65536):\n"
                               "    data += chunk\n"
                               "sys.stdout.write(data.decode())\n"});
  ASSERT_TRUE(bare) << bare.error().message;
  EXPECT_TRUE(bare->starts_with("HTTP/1.1 200 OK\r\n")) << bare->substr(0, 200);
}

TEST_F(AgentTest, AttachesInGenericModeWhenAskedAndNativeOtherwise) {
  auto link = topo_->lb().run({"ip", "-d", "link", "show", topo_->clientInterface()});
  ASSERT_TRUE(link) << link.error().message;
  EXPECT_NE(link->find("xdp "), std::string::npos) << "native by default: " << *link;
  topo_->forgetAgent();
  std::string cfg = topo_->configText(backends());
  const std::string name = "\"name\": \"" + topo_->clientInterface() + "\"";
  cfg.replace(cfg.find(name), name.size(), name + ", \"xdp_mode\": \"generic\"");
  ASSERT_TRUE(topo_->writeConfigText(cfg));
  auto started = topo_->startAgent();
  ASSERT_TRUE(started) << started.error().message;
  link = topo_->lb().run({"ip", "-d", "link", "show", topo_->clientInterface()});
  ASSERT_TRUE(link) << link.error().message;
  EXPECT_NE(link->find("xdpgeneric"), std::string::npos) << "generic when asked: " << *link;
  EXPECT_EQ(idFrom(29000).substr(0, 1), "b") << "and it balances";
}

// A bridge device has no native XDP: the agent attaches there in generic mode and says
// why, and keeps native mode on the veth beside it.
TEST_F(AgentTest, FallsBackToGenericModeWhereTheDriverHasNoNativeXdp) {
  ASSERT_TRUE(topo_->lb().run({"ip", "link", "add", "mgbridge0", "type", "bridge"}));
  ASSERT_TRUE(topo_->lb().run({"ip", "link", "set", "mgbridge0", "up"}));
  topo_->forgetAgent();
  std::string cfg = topo_->configText(backends());
  const std::string name = "{\"name\": \"" + topo_->clientInterface() + "\"}";
  cfg.replace(cfg.find(name), name.size(), name + ", {\"name\": \"mgbridge0\"}");
  ASSERT_TRUE(topo_->writeConfigText(cfg));
  auto started = topo_->startAgent();
  ASSERT_TRUE(started) << started.error().message;
  auto logged = topo_->agent().waitForLog(
      "'mgbridge0': native XDP attach failed (Operation not supported: the driver has no native "
      "XDP); attaching in generic mode");
  EXPECT_TRUE(logged) << logged.error().message;
  auto dummy = topo_->lb().run({"ip", "-d", "link", "show", "mgbridge0"});
  ASSERT_TRUE(dummy) << dummy.error().message;
  EXPECT_NE(dummy->find("xdpgeneric"), std::string::npos) << *dummy;
  auto veth = topo_->lb().run({"ip", "-d", "link", "show", topo_->clientInterface()});
  ASSERT_TRUE(veth) << veth.error().message;
  EXPECT_NE(veth->find("xdp "), std::string::npos) << "native where it can: " << *veth;
  EXPECT_EQ(idFrom(29100).substr(0, 1), "b") << "and it balances";
}

// Arguments that would be ignored are refused: a running agent pins where its config
// says, so --pin-root there would mislead.
TEST(AgentCli, RefusesArgumentsItWouldIgnore) {
  // --check: should the refusal break, the agent validates and exits, never attaches.
  auto out =
      runCommand({builtBinary("meshgate-agent"), "--check", "--config",
                  sourceFile("deploy/meshgate.json"), "--pin-root", "/sys/fs/bpf/elsewhere"});
  ASSERT_FALSE(out) << *out;
  EXPECT_NE(out.error().message.find("--pin-root applies to --detach"), std::string::npos)
      << out.error().message;
  out = runCommand({builtBinary("meshgate-agent"), "--check"});
  ASSERT_FALSE(out) << *out;
  EXPECT_NE(out.error().message.find("--config FILE is required"), std::string::npos)
      << out.error().message;
  out = runCommand({builtBinary("meshgate-agent"), "--config"});
  ASSERT_FALSE(out) << *out;
  EXPECT_NE(out.error().message.find("unknown or incomplete argument '--config'"),
            std::string::npos)
      << out.error().message;
}

TEST_F(AgentTest, BpftoolDumpsPinnedMapsWithFieldNames) {
  auto out = runCommand({"bpftool", "-j", "map", "dump", "pinned", topo_->pinRoot() + "/mg_vips"});
  ASSERT_TRUE(out) << out.error().message;
  const auto j = nlohmann::json::parse(*out);
  ASSERT_EQ(j.size(), 1u) << *out;
  ASSERT_TRUE(j[0].contains("formatted")) << "BTF present:\n" << *out;
  EXPECT_TRUE(j[0]["formatted"]["key"].contains("port")) << *out;
  EXPECT_TRUE(j[0]["formatted"]["value"].contains("vip_id")) << *out;
}

TEST_F(AgentTest, RestartSwapsTheNewProgramIntoThePinnedLink) {
  auto before = agent::listPinnedLinks(topo_->pinRoot());
  ASSERT_TRUE(before && before->size() == 1) << "one xdp_lb link";
  ASSERT_TRUE(topo_->agent().kill9());
  topo_->forgetAgent();
  EXPECT_EQ(idFrom(26000).substr(0, 1), "b") << "served with no agent running";
  ASSERT_TRUE(topo_->startAgent());
  auto after = agent::listPinnedLinks(topo_->pinRoot());
  ASSERT_TRUE(after && after->size() == 1);
  EXPECT_EQ(after->at(0).ifindex, before->at(0).ifindex) << "same interface";
  EXPECT_NE(after->at(0).prog_id, before->at(0).prog_id) << "new program in the same link";
  EXPECT_NE(readFile(topo_->logPath()).find("adopted pinned link"), std::string::npos);
}

TEST_F(AgentTest, DetachRemovesEveryLinkAndMapAndRestoresForwarding) {
  // The topology turned IPv4 forwarding on itself; IPv6 forwarding on the balancer
  // interface is the agent's doing (bpf_fib_lookup needs it), and only that is undone.
  auto forwarding = [&](const char* family) {
    auto v = topo_->lb().run({"cat", std::string("/proc/sys/net/") + family + "/conf/" +
                                         topo_->clientInterface() + "/forwarding"});
    return v ? *v : "unreadable: " + v.error().message;
  };
  EXPECT_EQ(forwarding("ipv4"), "1\n");
  EXPECT_EQ(forwarding("ipv6"), "1\n") << "enabled by the agent";
  // A second agent finds forwarding on and records nothing; the first one's record stays.
  ASSERT_TRUE(topo_->agent().kill9());
  topo_->forgetAgent();
  ASSERT_TRUE(topo_->startAgent());
  topo_->forgetAgent();  // SIGTERM: the data path stays
  ASSERT_TRUE(std::filesystem::exists(topo_->pinRoot() + "/mg_vips"));
  ASSERT_TRUE(std::filesystem::exists(topo_->pinRoot() + "/mg_host_settings"));
  EXPECT_EQ(idFrom(27000).substr(0, 1), "b") << "served after a clean agent exit";
  // From another network namespace (the test's own) --detach refuses and changes nothing:
  // the recorded interface there would be another one of the same name, or none.
  auto elsewhere =
      runCommand({builtBinary("meshgate-agent"), "--detach", "--pin-root", topo_->pinRoot()});
  ASSERT_FALSE(elsewhere) << "--detach outside the agent's namespace must be refused";
  EXPECT_NE(elsewhere.error().message.find("run --detach in the agent's namespace"),
            std::string::npos)
      << elsewhere.error().message;
  ASSERT_TRUE(std::filesystem::exists(topo_->pinRoot() + "/mg_vips")) << "nothing removed";
  // In the agent's network namespace, where the interface and its sysctls are (nsenter:
  // `ip netns exec` would also mount a fresh /sys, without the pins).
  auto out =
      runCommand({"nsenter", "--net=/run/netns/" + topo_->lb().name(),
                  builtBinary("meshgate-agent"), "--detach", "--pin-root", topo_->pinRoot()});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_FALSE(std::filesystem::exists(topo_->pinRoot())) << "pins gone";
  auto xdp = topo_->lb().run({"ip", "-o", "link", "show", topo_->clientInterface()});
  ASSERT_TRUE(xdp) << xdp.error().message;
  EXPECT_EQ(xdp->find("xdp"), std::string::npos) << "XDP detached: " << *xdp;
  EXPECT_EQ(forwarding("ipv6"), "0\n") << "restored to what it was before the first agent";
  EXPECT_EQ(forwarding("ipv4"), "1\n") << "not the agent's change: left alone";

  // Neither a directory outside bpffs nor a bpffs mount point itself may be wiped. Both
  // are the test's own: a temporary directory, and a bpffs instance mounted on another.
  char plain[] = "/tmp/meshgate-detach-XXXXXX";
  char mount_point[] = "/tmp/meshgate-bpffs-XXXXXX";
  ASSERT_TRUE(::mkdtemp(plain) && ::mkdtemp(mount_point));
  std::ofstream(std::string(plain) + "/keep") << "x";
  ASSERT_TRUE(runCommand({"mount", "-t", "bpf", "bpf", mount_point}));
  for (const char* dir : {static_cast<const char*>(plain), static_cast<const char*>(mount_point)}) {
    auto refused = runCommand({builtBinary("meshgate-agent"), "--detach", "--pin-root", dir});
    EXPECT_FALSE(refused) << "--detach of " << dir << " must be refused";
    if (!refused) {
      continue;
    }
    EXPECT_NE(refused.error().message.find("refusing to remove"), std::string::npos)
        << refused.error().message;
  }
  EXPECT_TRUE(std::filesystem::exists(std::string(plain) + "/keep")) << "nothing removed";
  runCommand({"umount", mount_point});
  std::filesystem::remove_all(plain);
  std::filesystem::remove(mount_point);
}

}  // namespace
}  // namespace meshgate::test
