// Proves that the agent's JSON config parses into typed structs with documented defaults,
// that every validation rule rejects with "<file>: <field path>: ...", and that reload
// helpers (diffVips, checkReloadable, globalsChanged) report exactly what changed.
#include "agent/config.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "meshgate/abi/lb.h"
#include "meshgate/quic_lb.h"

namespace meshgate::agent {
namespace {

using json = nlohmann::json;

constexpr const char* kSource = "meshgate.json";

// Small but complete: two interfaces, an IPv4 VIP and an IPv6 VIP.
constexpr const char* kBase = R"({
  "interfaces": [{"name": "eth0"}],
  "decap_interfaces": [{"name": "eth1"}],
  "vips": [
    {"name": "web", "address": "198.18.100.1", "port": 80, "protocol": "tcp", "ring_size": 13,
     "backends": [{"address": "198.18.1.10", "weight": 100}, {"address": "198.18.1.11"}]},
    {"name": "web-v6", "address": "2001:2::100", "port": 443, "protocol": "tcp",
     "backends": [{"address": "2001:2::10"}]}
  ]
})";

ConfigPtr mustParse(const std::string& text) {
  auto cfg = parseConfig(text, kSource);
  EXPECT_TRUE(cfg.has_value()) << "parse failed: " << cfg.error().message;
  return cfg.value_or(nullptr);
}

ConfigPtr mustParseDoc(const json& doc) {
  return mustParse(doc.dump());
}

std::string mustFail(const std::string& text) {
  auto cfg = parseConfig(text, kSource);
  EXPECT_FALSE(cfg.has_value()) << "expected a rejection of: " << text.substr(0, 200);
  return cfg.has_value() ? std::string() : cfg.error().message;
}

// deploy/meshgate.json, searched upwards from $MESHGATE_SOURCE_DIR, the test binary
// (build/tests/unit/) and the cwd.
std::filesystem::path findDeployExample() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const char* source_dir = std::getenv("MESHGATE_SOURCE_DIR");
  for (fs::path start : {fs::path(source_dir ? source_dir : ""),
                         fs::read_symlink("/proc/self/exe", ec), fs::current_path(ec)}) {
    for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / "deploy" / "meshgate.json", ec)) {
        return dir / "deploy" / "meshgate.json";
      }
      if (dir == dir.parent_path()) {
        break;
      }
    }
  }
  return {};
}

TEST(ConfigParse, AcceptsTheDeployExample) {
  const auto path = findDeployExample();
  ASSERT_FALSE(path.empty()) << "deploy/meshgate.json not found above the binary or cwd";
  auto cfg = loadConfigFile(path.string());
  ASSERT_TRUE(cfg.has_value()) << cfg.error().message;
  EXPECT_EQ((*cfg)->source, path.string()) << "source records the file";
  EXPECT_EQ((*cfg)->vips.size(), 6u) << "every VIP of the example";
  EXPECT_EQ((*cfg)->interfaces.size(), 1u) << "one balancer interface";
  const auto quic = std::count_if((*cfg)->vips.begin(), (*cfg)->vips.end(),
                                  [](const VipConfig& v) { return !v.quic_lb.empty(); });
  EXPECT_EQ(quic, 1) << "one QUIC VIP in the example";
  EXPECT_EQ((*cfg)->metrics_listen.value_or(""), "127.0.0.1:9464") << "metrics listen";
}

TEST(ConfigParse, AppliesDefaultsToOmittedFields) {
  ConfigPtr cfg = mustParse(R"({
    "interfaces": [{"name": "eth0"}],
    "vips": [{"name": "v", "address": "198.18.100.1", "protocol": "udp",
              "backends": [{"address": "198.18.1.10"}]}]})");
  ASSERT_NE(cfg, nullptr) << "minimal config parses";
  EXPECT_EQ(cfg->pin_root, MG_PIN_ROOT) << "pin_root default";
  EXPECT_FALSE(cfg->interfaces[0].generic) << "xdp_mode default is native";
  EXPECT_TRUE(cfg->decap_interfaces.empty()) << "decap_interfaces default";
  EXPECT_EQ(cfg->hash_seed, 0u) << "hash_seed default";
  EXPECT_EQ(cfg->conntrack_size, 262144u) << "conntrack.size default";
  EXPECT_EQ(cfg->udp_idle_seconds, 30u) << "conntrack.udp_idle_seconds default";
  EXPECT_EQ(cfg->max_conn_rate, 125000u) << "conntrack.max_inserts_per_cpu_per_second default";
  EXPECT_EQ(cfg->encap_source_v4.toString(), "198.18.255.0/24") << "encap.source_v4 default";
  EXPECT_EQ(cfg->encap_source_v6.toString(), "fd00:ffff::/96") << "encap.source_v6 default";
  EXPECT_EQ(cfg->encap_ttl, 64) << "encap.ttl default";
  EXPECT_FALSE(cfg->metrics_listen.has_value()) << "metrics off by default";
  const VipConfig& vip = cfg->vips.at(0);
  EXPECT_EQ(vip.port, 0) << "absent port means port-less";
  EXPECT_EQ(vip.protocol, IPPROTO_UDP) << "protocol udp";
  EXPECT_EQ(vip.ring_size, static_cast<uint32_t>(MG_DEFAULT_RING_SIZE)) << "ring_size default";
  EXPECT_EQ(vip.backends.at(0).weight, 1u) << "backend weight default";
  EXPECT_EQ(cfg->source, kSource) << "source name";
}

TEST(ConfigParse, ReadsEveryFieldOfAFullConfig) {
  ConfigPtr cfg = mustParse(R"({
    "pin_root": "/sys/fs/bpf/mg-test/",
    "interfaces": [{"name": "eth0", "xdp_mode": "generic"}],
    "decap_interfaces": [{"name": "eth1", "xdp_mode": "native"}],
    "hash_seed": 4294967295,
    "conntrack": {"size": 1024, "udp_idle_seconds": 86400, "max_inserts_per_cpu_per_second": 0},
    "encap": {"source_v4": "198.19.0.0/16", "source_v6": "2001:2:ffff::/112", "ttl": 1},
    "metrics": {"listen": "[::1]:0"},
    "vips": [{"name": "web", "address": "198.18.100.1", "port": 65535, "protocol": "tcp",
              "ring_size": 2, "backends": []}]})");
  ASSERT_NE(cfg, nullptr) << "full config parses";
  EXPECT_EQ(cfg->pin_root, "/sys/fs/bpf/mg-test") << "trailing '/' dropped";
  EXPECT_TRUE(cfg->interfaces[0].generic) << "xdp_mode generic";
  EXPECT_FALSE(cfg->decap_interfaces[0].generic) << "xdp_mode native";
  EXPECT_EQ(cfg->hash_seed, 4294967295u) << "largest u32 seed";
  EXPECT_EQ(cfg->conntrack_size, 1024u) << "smallest conntrack size";
  EXPECT_EQ(cfg->udp_idle_seconds, 86400u) << "largest idle";
  EXPECT_EQ(cfg->max_conn_rate, 0u) << "0 = no cap";
  EXPECT_EQ(cfg->encap_source_v4.toString(), "198.19.0.0/16") << "encap v4";
  EXPECT_EQ(cfg->encap_source_v6.len, 112) << "encap v6 length";
  EXPECT_EQ(cfg->encap_ttl, 1) << "ttl";
  EXPECT_EQ(cfg->metrics_listen.value_or(""), "[::1]:0") << "metrics listen";
  EXPECT_EQ(cfg->vips[0].port, 65535) << "largest port";
  EXPECT_EQ(cfg->vips[0].protocol, IPPROTO_TCP) << "protocol tcp";
  EXPECT_EQ(cfg->vips[0].ring_size, 2u) << "smallest prime ring";
}

TEST(ConfigParse, HealthCheckDefaultsAndPort) {
  json doc = json::parse(kBase);
  doc["vips"][0]["health_check"] = json::object();
  doc["vips"][1]["health_check"] = {
      {"port", 9090}, {"interval_ms", 500}, {"timeout_ms", 500}, {"rise", 1}, {"fall", 5}};
  auto cfg = mustParseDoc(doc);
  ASSERT_NE(cfg, nullptr);
  ASSERT_TRUE(cfg->vips[0].health_check);
  const HealthCheckConfig& a = *cfg->vips[0].health_check;
  EXPECT_EQ(a.port, 80) << "a TCP VIP lends its port";
  EXPECT_EQ(a.interval_ms, 2000u);
  EXPECT_EQ(a.timeout_ms, 1000u);
  EXPECT_EQ(a.rise, 2u);
  EXPECT_EQ(a.fall, 3u);
  ASSERT_TRUE(cfg->vips[1].health_check);
  EXPECT_EQ(*cfg->vips[1].health_check, (HealthCheckConfig{9090, 500, 500, 1, 5}));
  EXPECT_FALSE(mustParse(kBase)->vips[0].health_check) << "absent: no health checks";
  // A UDP VIP has no TCP port to lend.
  doc["vips"][1]["protocol"] = "udp";
  doc["vips"][0]["protocol"] = "udp";
  EXPECT_NE(mustFail(doc.dump()).find("vips[0].health_check.port: missing required field"),
            std::string::npos);
}

TEST(ConfigParse, SortsBackendsByAddress) {
  ConfigPtr cfg = mustParse(R"({"interfaces": [{"name": "eth0"}],
    "vips": [{"name": "v", "address": "198.18.100.1", "protocol": "tcp", "backends": [
      {"address": "2001:2::1"}, {"address": "198.18.1.12"}, {"address": "198.18.1.2"}]}]})");
  ASSERT_NE(cfg, nullptr) << "parses";
  const auto& b = cfg->vips[0].backends;
  ASSERT_EQ(b.size(), 3u) << "three backends";
  EXPECT_EQ(b[0].address.toString(), "198.18.1.2") << "lowest IPv4 first";
  EXPECT_EQ(b[1].address.toString(), "198.18.1.12") << "then numerically";
  EXPECT_EQ(b[2].address.toString(), "2001:2::1") << "IPv6 (4-in-6 backend) last";
}

TEST(ConfigParse, AcceptsRulesEdgeCases) {
  // Ring size counts only weight > 0 backends: 3 backends, one drained, ring 2.
  EXPECT_NE(mustParse(R"({"interfaces": [{"name": "eth0"}],
    "vips": [{"name": "v", "address": "198.18.100.1", "protocol": "tcp", "ring_size": 2,
      "backends": [{"address": "198.18.1.1"}, {"address": "198.18.1.2"},
                   {"address": "198.18.1.3", "weight": 0}]}]})"),
            nullptr)
      << "drained backends do not need ring slots";
  // Same address and port, different protocols; a port-less VIP on the same address.
  EXPECT_NE(mustParse(R"({"interfaces": [{"name": "eth0"}], "vips": [
    {"name": "a", "address": "198.18.100.1", "port": 53, "protocol": "tcp"},
    {"name": "b", "address": "198.18.100.1", "port": 53, "protocol": "udp"},
    {"name": "c", "address": "198.18.100.1", "protocol": "udp"}]})"),
            nullptr)
      << "(address, port, protocol) is the key";
  // The same backend address under two VIPs counts once.
  EXPECT_NE(mustParse(R"({"interfaces": [{"name": "eth0"}], "vips": [
    {"name": "a", "address": "198.18.100.1", "protocol": "tcp",
     "backends": [{"address": "198.18.1.1"}]},
    {"name": "b", "address": "198.18.100.2", "protocol": "tcp",
     "backends": [{"address": "198.18.1.1"}]}]})"),
            nullptr)
      << "backends shared between VIPs";
  // Decap-only node (a backend host).
  EXPECT_NE(mustParse(R"({"decap_interfaces": [{"name": "eth0"}]})"), nullptr)
      << "a backend host has only decap_interfaces";
}

// One rule per row: set (or erase, when value is null) the field at `pointer` in kBase.
struct RejectRow {
  const char* pointer;   // JSON pointer into kBase
  const char* value;     // JSON text, or nullptr to erase the field
  const char* expected;  // substring of the error, after "meshgate.json: "
};

const RejectRow kRejectRows[] = {
    // Unknown keys, with their path.
    {"/hash_sed", "1", "hash_sed: unknown field (expected one of: pin_root,"},
    // Health checks.
    {"/vips/0/health_check", R"({"intervall_ms": 100})",
     "vips[0].health_check.intervall_ms: unknown"},
    {"/vips/0/health_check", "5", "vips[0].health_check: must be an object, got 5"},
    {"/vips/0/health_check", R"({"port": 0})",
     "vips[0].health_check.port: must be an integer 1..65535, got 0"},
    {"/vips/0/health_check", R"({"interval_ms": 99})",
     "vips[0].health_check.interval_ms: must be an integer 100..3600000, got 99"},
    {"/vips/0/health_check", R"({"interval_ms": 500, "timeout_ms": 501})",
     "vips[0].health_check.timeout_ms: must be <= interval_ms (500), got 501"},
    {"/vips/0/health_check", R"({"rise": 0})",
     "vips[0].health_check.rise: must be an integer 1..100"},
    {"/vips/0/health_check", R"({"fall": 101})", "vips[0].health_check.fall: must be an integer"},
    {"/vips/0/backends/0/wieght", "5", "vips[0].backends[0].wieght: unknown field"},
    {"/encap/src_v4", "\"198.18.255.0/24\"", "encap.src_v4: unknown field"},
    {"/interfaces/0/mode", "\"native\"", "interfaces[0].mode: unknown field"},
    // Types and ranges.
    {"/vips/1/backends/0/weight", "\"ten\"",
     "vips[1].backends[0].weight: must be an integer 0..1000000, got \"ten\""},
    {"/vips/0/backends/0/weight", "1000001", "vips[0].backends[0].weight: must be an integer"},
    {"/vips/0/backends/0/weight", "-1", "vips[0].backends[0].weight: must be an integer"},
    {"/vips/0/backends/0/weight", "1.5", "vips[0].backends[0].weight: must be an integer"},
    {"/vips/0/port", "65536", "vips[0].port: must be an integer 0..65535, got 65536"},
    {"/vips/0/port", "\"80\"", "vips[0].port: must be an integer 0..65535, got \"80\""},
    {"/vips/0/protocol", "\"sctp\"", "vips[0].protocol: must be \"tcp\" or \"udp\""},
    {"/vips/0/protocol", nullptr, "vips[0].protocol: missing required field"},
    {"/vips/0/address", nullptr, "vips[0].address: missing required field"},
    {"/vips/0/name", nullptr, "vips[0].name: missing required field"},
    {"/vips/0/name", "\"\"", "vips[0].name: must be 1-64 characters"},
    {"/vips/0/name", "\"web/1\"", "vips[0].name: must be 1-64 characters"},
    {"/vips/0/address", "\"198.18.1\"",
     "vips[0].address: must be an IPv4 or IPv6 address, got \"198.18.1\""},
    {"/vips/0/address", "\"0.0.0.0\"",
     "vips[0].address: must be a unicast address, got \"0.0.0.0\" (the unspecified address)"},
    {"/vips/0/backends/1/address", "\"224.0.0.1\"",
     "vips[0].backends[1].address: must be a unicast address, got \"224.0.0.1\" (a multicast"},
    {"/vips/1/backends/0/address", "\"::ffff:198.18.1.10\"",
     "vips[1].backends[0].address: must be a unicast address, got \"::ffff:198.18.1.10\" (an "
     "IPv4-mapped"},
    {"/vips/0/backends", "{}", "vips[0].backends: must be an array, got {}"},
    {"/vips/0/backends/0", "\"198.18.1.10\"", "vips[0].backends[0]: must be an object"},
    {"/vips", "{}", "vips: must be an array, got {}"},
    {"/hash_seed", "4294967296", "hash_seed: must be an integer 0..4294967295"},
    {"/hash_seed", "\"0\"", "hash_seed: must be an integer"},
    {"/conntrack", "5", "conntrack: must be an object, got 5"},
    {"/conntrack", R"({"size": 1023})", "conntrack.size: must be an integer 1024..16777216"},
    {"/conntrack", R"({"size": 16777217})", "conntrack.size: must be an integer 1024..16777216"},
    {"/conntrack", R"({"udp_idle_seconds": 0})", "conntrack.udp_idle_seconds: must be an integer"},
    {"/conntrack", R"({"udp_idle_seconds": 86401})", "conntrack.udp_idle_seconds: must be"},
    {"/conntrack", R"({"max_inserts_per_cpu_per_second": -5})",
     "conntrack.max_inserts_per_cpu_per_second: must be an integer 0..4294967295"},
    {"/encap", R"({"ttl": 0})", "encap.ttl: must be an integer 1..255, got 0"},
    {"/encap", R"({"ttl": 256})", "encap.ttl: must be an integer 1..255, got 256"},
    {"/encap", R"({"source_v4": "198.18.255.1/24"})",
     "encap.source_v4: must be an IPv4 prefix like \"198.18.255.0/24\": host bits set"},
    {"/encap", R"({"source_v4": "fd00:ffff::/96"})", "encap.source_v4: must be an IPv4 prefix"},
    {"/encap", R"({"source_v6": "fd00:ffff::/64"})",
     "encap.source_v6: prefix length must be 96..128"},
    {"/encap", R"({"source_v6": "198.18.255.0/24"})", "encap.source_v6: must be an IPv6 prefix"},
    {"/metrics", "{}", "metrics.listen: missing required field"},
    {"/metrics", R"({"listen": "localhost:9464"})", "metrics.listen: must be \"IPv4:port\""},
    {"/metrics", R"({"listen": "127.0.0.1:65536"})", "metrics.listen: must be"},
    {"/metrics", R"({"listen": "::1:9464"})", "metrics.listen: must be"},
    {"/pin_root", "\"meshgate\"", "pin_root: must be an absolute directory"},
    {"/pin_root", "\"/\"", "pin_root: must be an absolute directory"},
    // Interfaces.
    {"/interfaces/1", R"({"name": "eth0"})",
     "interfaces[1].name: duplicate interface \"eth0\" (also interfaces[0])"},
    {"/interfaces/0/name", "\"abcdefghijklmnop\"", "interfaces[0].name: must be an interface name"},
    {"/interfaces/0/name", "\"eth 0\"", "interfaces[0].name: must be an interface name"},
    {"/interfaces/0/name", nullptr, "interfaces[0].name: missing required field"},
    {"/interfaces/0/xdp_mode", "\"skb\"",
     "interfaces[0].xdp_mode: must be \"native\" or \"generic\", got \"skb\""},
    {"/decap_interfaces/0/name", "\"eth0\"",
     "decap_interfaces[0].name: \"eth0\" is also in interfaces"},
    {"/interfaces", "[]", "interfaces: must not be empty when vips are configured"},
    // VIP rules.
    {"/vips/1/name", "\"web\"", "vips[1].name: duplicate VIP name \"web\" (also vips[0])"},
    {"/vips/1", R"({"name": "web2", "address": "198.18.100.1", "port": 80, "protocol": "tcp"})",
     "vips[1]: duplicate VIP 198.18.100.1:80/tcp (also vips[0])"},
    {"/vips/0/ring_size", "65536",
     "vips[0].ring_size: must be a prime number, got 65536 (the next prime is 65537)"},
    {"/vips/0/ring_size", "1048583", "vips[0].ring_size: must be an integer 2..1048573"},
    {"/vips/0/ring_size", "1", "vips[0].ring_size: must be an integer 2..1048573"},
    {"/vips/0",
     R"({"name": "web", "address": "198.18.100.1", "protocol": "tcp", "ring_size": 2,
         "backends": [{"address": "198.18.1.1"}, {"address": "198.18.1.2"},
                      {"address": "198.18.1.3"}]})",
     "vips[0].ring_size: must be >= the number of backends with weight > 0 (3), got 2"},
    {"/vips/0/backends/1/address", "\"198.18.1.10\"",
     "vips[0].backends[1].address: duplicate backend 198.18.1.10 (also backends[0])"},
    {"/vips/1/backends/0/address", "\"198.18.1.10\"",
     "vips[1].backends[0].address: IPv6 VIP 2001:2::100 cannot have IPv4 backend 198.18.1.10: "
     "6-in-4 encapsulation is not supported"},
};

// Applies every row to `base` and checks the rejection names the file and field path.
void expectRowsRejected(const char* base, std::span<const RejectRow> rows) {
  for (const RejectRow& row : rows) {
    json doc = json::parse(base);
    const json::json_pointer ptr(row.pointer);
    if (row.value == nullptr) {
      doc[ptr.parent_pointer()].erase(ptr.back());
    } else {
      doc[ptr] = json::parse(row.value);
    }
    const std::string err = mustFail(doc.dump());
    const std::string want = std::string(kSource) + ": " + row.expected;
    EXPECT_NE(err.find(want), std::string::npos)
        << "row " << row.pointer << " = " << (row.value ? row.value : "<erased>")
        << "\n  want substring: " << want << "\n  got: " << err;
  }
}

TEST(ConfigReject, EveryRuleNamesTheFileAndFieldPath) {
  expectRowsRejected(kBase, kRejectRows);
}

TEST(ConfigReject, BaseOfTheTableIsValid) {
  EXPECT_NE(mustParse(std::string(kBase)), nullptr) << "kBase must parse, or rows prove nothing";
}

TEST(ConfigReject, DuplicateKeyNamesItsPath) {
  const std::string err = mustFail(R"({"interfaces": [{"name": "eth0"}], "vips": [
    {"name": "a", "address": "198.18.100.1", "protocol": "tcp", "backends": []},
    {"name": "b", "address": "198.18.100.2", "protocol": "tcp", "backends": [
      {"address": "198.18.1.1"}, {"address": "198.18.1.2", "weight": 1, "weight": 2}]}]})");
  EXPECT_NE(err.find("meshgate.json: vips[1].backends[1].weight: duplicate key"), std::string::npos)
      << err;
  EXPECT_NE(mustFail(R"({"vips": [], "vips": []})").find("meshgate.json: vips: duplicate key"),
            std::string::npos)
      << "top-level duplicate";
}

TEST(ConfigReject, SyntaxErrorNamesLineAndColumn) {
  const std::string err = mustFail("{\n  \"interfaces\": [,]\n}");
  EXPECT_NE(err.find("meshgate.json: parse error at line 2, column"), std::string::npos) << err;
  EXPECT_EQ(err.find("[json.exception"), std::string::npos) << "library tag dropped: " << err;
}

TEST(ConfigReject, CommentsAreNotJson) {
  const std::string err = mustFail("{\"interfaces\": [{\"name\": \"eth0\"}] // lb\n}");
  EXPECT_NE(err.find("meshgate.json: parse error"), std::string::npos) << err;
}

TEST(ConfigReject, DocumentMustBeAnObject) {
  EXPECT_NE(mustFail("[]").find("meshgate.json: the document must be a JSON object"),
            std::string::npos)
      << "array root";
  EXPECT_NE(mustFail("").find("meshgate.json: "), std::string::npos) << "empty input";
}

TEST(ConfigReject, NothingToAttach) {
  const std::string err = mustFail("{}");
  EXPECT_NE(err.find("meshgate.json: interfaces: interfaces and decap_interfaces are both empty"),
            std::string::npos)
      << err;
}

TEST(ConfigReject, MoreThanMaxVips) {
  json doc = json::parse(R"({"interfaces": [{"name": "eth0"}], "vips": []})");
  for (uint32_t i = 0; i <= MG_MAX_VIPS; ++i) {
    doc["vips"].push_back({{"name", "v" + std::to_string(i)},
                           {"address", "198.18.100.1"},
                           {"port", i + 1},
                           {"protocol", "tcp"}});
  }
  const std::string err = mustFail(doc.dump());
  EXPECT_NE(err.find("meshgate.json: vips: too many VIPs: 4097 > 4096"), std::string::npos) << err;
  doc["vips"].erase(doc["vips"].size() - 1);
  EXPECT_NE(mustParseDoc(doc), nullptr) << "exactly MG_MAX_VIPS is accepted";
}

TEST(ConfigReject, MoreThanMaxBackendSlots) {
  // mg_backends has one id per (VIP, address), id 0 unused: 262143 slots. The same
  // addresses under two VIPs take two slots each; drained backends (weight 0) take one too.
  // The text is built directly: nlohmann's DOM would dominate the run time.
  std::string list;
  for (uint32_t i = 0; i < MG_MAX_BACKENDS / 2; ++i) {
    const uint32_t host = 0x0a000000 + i + 1;  // 10.0.0.1 upwards
    list += list.empty() ? "" : ",";
    list += "{\"address\":\"" + std::to_string(host >> 24) + "." +
            std::to_string(host >> 16 & 255) + "." + std::to_string(host >> 8 & 255) + "." +
            std::to_string(host & 255) + "\",\"weight\":0}";
  }
  auto doc = [&list](size_t drop_from_second) {
    std::string second = list.substr(0, list.size() - drop_from_second);
    return R"({"interfaces": [{"name": "eth0"}], "vips": [
      {"name": "a", "address": "198.18.100.1", "protocol": "tcp", "backends": [)" +
           list + R"(]},
      {"name": "b", "address": "198.18.100.2", "protocol": "tcp", "backends": [)" +
           second + "]}]}";
  };
  const std::string err = mustFail(doc(0));
  EXPECT_NE(err.find("meshgate.json: vips[1].backends[131071].address: more than 262143 "
                     "backends across all VIPs"),
            std::string::npos)
      << err;
  const size_t last = list.size() - list.rfind(",{");
  EXPECT_NE(mustParse(doc(last)), nullptr) << "exactly MG_MAX_BACKENDS - 1 slots fit";
}

// ---- QUIC-LB ---------------------------------------------------------------------------

// A TCP VIP and a QUIC VIP with two live configs (plaintext and keyed), as in docs/CONFIG.md.
constexpr const char* kQuicBase = R"({
  "interfaces": [{"name": "eth0"}],
  "vips": [
    {"name": "web", "address": "198.18.100.1", "port": 443, "protocol": "tcp",
     "backends": [{"address": "198.18.1.10"}]},
    {"name": "h3", "address": "198.18.100.7", "port": 443, "protocol": "udp",
     "quic_lb": {"configs": [
        {"config_rotation": 0, "server_id_len": 2, "nonce_len": 6},
        {"config_rotation": 1, "server_id_len": 2, "nonce_len": 10,
         "key": "8f95f09245765f80256934e50c66207f", "self_encoded_length": true}]},
     "backends": [{"address": "198.18.1.10", "quic_server_id": "0001"},
                  {"address": "198.18.1.11", "quic_server_id": "00a2"}]}
  ]
})";

constexpr const char* kSecretKey = "8f95f09245765f80256934e50c66207f";

const RejectRow kQuicRejectRows[] = {
    // The quic_lb object.
    {"/vips/1/protocol", "\"tcp\"",
     "vips[1].quic_lb: requires protocol \"udp\" (QUIC runs over UDP), got \"tcp\""},
    {"/vips/1/quic_lb", "[]", "vips[1].quic_lb: must be an object, got []"},
    {"/vips/1/quic_lb/config", "[]",
     "vips[1].quic_lb.config: unknown field (expected one of: configs)"},
    {"/vips/1/quic_lb/configs", nullptr, "vips[1].quic_lb.configs: missing required field"},
    {"/vips/1/quic_lb/configs", "{}", "vips[1].quic_lb.configs: must be an array, got {}"},
    {"/vips/1/quic_lb/configs", "[]", "vips[1].quic_lb.configs: must not be empty"},
    {"/vips/1/quic_lb/configs",
     R"([{"config_rotation": 0, "server_id_len": 2, "nonce_len": 6},
         {"config_rotation": 1, "server_id_len": 2, "nonce_len": 6},
         {"config_rotation": 2, "server_id_len": 2, "nonce_len": 6},
         {"config_rotation": 3, "server_id_len": 2, "nonce_len": 6},
         {"config_rotation": 4, "server_id_len": 2, "nonce_len": 6},
         {"config_rotation": 5, "server_id_len": 2, "nonce_len": 6},
         {"config_rotation": 6, "server_id_len": 2, "nonce_len": 6},
         {"config_rotation": 7, "server_id_len": 2, "nonce_len": 6}])",
     "vips[1].quic_lb.configs: at most 7 configs (one per config_rotation 0..6; 7 is reserved "
     "for unroutable CIDs), got 8"},
    {"/vips/1/quic_lb/configs/0", "\"plaintext\"", "vips[1].quic_lb.configs[0]: must be an object"},
    {"/vips/1/quic_lb/configs/0/rotation", "2",
     "vips[1].quic_lb.configs[0].rotation: unknown field (expected one of: config_rotation, "
     "server_id_len, nonce_len, key, self_encoded_length)"},
    // config_rotation.
    {"/vips/1/quic_lb/configs/0/config_rotation", nullptr,
     "vips[1].quic_lb.configs[0].config_rotation: missing required field"},
    {"/vips/1/quic_lb/configs/0/config_rotation", "7",
     "vips[1].quic_lb.configs[0].config_rotation: config_rotation 7 (0b111) is reserved for "
     "unroutable CIDs"},
    {"/vips/1/quic_lb/configs/0/config_rotation", "8",
     "vips[1].quic_lb.configs[0].config_rotation: config_rotation 8 is out of range 0..6"},
    {"/vips/1/quic_lb/configs/0/config_rotation", "256",
     "vips[1].quic_lb.configs[0].config_rotation: must be an integer 0..6, got 256"},
    {"/vips/1/quic_lb/configs/0/config_rotation", "-1",
     "vips[1].quic_lb.configs[0].config_rotation: must be an integer 0..6, got -1"},
    {"/vips/1/quic_lb/configs/0/config_rotation", "\"0\"",
     "vips[1].quic_lb.configs[0].config_rotation: must be an integer 0..6, got \"0\""},
    {"/vips/1/quic_lb/configs/1/config_rotation", "0",
     "vips[1].quic_lb.configs[1].config_rotation: duplicate config_rotation 0 (also configs[0])"},
    // server_id_len and nonce_len, through the library's rules.
    {"/vips/1/quic_lb/configs/0/server_id_len", nullptr,
     "vips[1].quic_lb.configs[0].server_id_len: missing required field"},
    {"/vips/1/quic_lb/configs/0/server_id_len", "0",
     "vips[1].quic_lb.configs[0].server_id_len: server_id_len 0 is out of range 1..15"},
    {"/vips/1/quic_lb/configs/0/server_id_len", "16",
     "vips[1].quic_lb.configs[0].server_id_len: server_id_len 16 is out of range 1..15"},
    {"/vips/1/quic_lb/configs/0/server_id_len", "2.0",
     "vips[1].quic_lb.configs[0].server_id_len: must be an integer 1..15, got 2.0"},
    {"/vips/1/quic_lb/configs/0/nonce_len", nullptr,
     "vips[1].quic_lb.configs[0].nonce_len: missing required field"},
    {"/vips/1/quic_lb/configs/0/nonce_len", "3",
     "vips[1].quic_lb.configs[0].nonce_len: nonce_len 3 is out of range 4..18"},
    {"/vips/1/quic_lb/configs/0/nonce_len", "19",
     "vips[1].quic_lb.configs[0].nonce_len: nonce_len 19 is out of range 4..18"},
    {"/vips/1/quic_lb/configs/1/nonce_len", "18",
     "vips[1].quic_lb.configs[1]: server_id_len + nonce_len = 2 + 18 exceeds 19"},
    // One server-ID allocation per VIP.
    {"/vips/1/quic_lb/configs/1/server_id_len", "3",
     "vips[1].quic_lb.configs[1].server_id_len: must equal configs[0].server_id_len (2), got 3: "
     "the configs of a VIP share one server-ID allocation"},
    // key and self_encoded_length.
    {"/vips/1/quic_lb/configs/1/key", "\"8f95f09245765f80256934e50c66207\"",
     "vips[1].quic_lb.configs[1].key: must be 32 hex digits (a 16-octet AES-128 key), got 31"},
    {"/vips/1/quic_lb/configs/1/key", "\"8f95f09245765f80256934e50c66207f00\"",
     "vips[1].quic_lb.configs[1].key: must be 32 hex digits (a 16-octet AES-128 key), got 34"},
    {"/vips/1/quic_lb/configs/1/key", "\"0x95f09245765f80256934e50c66207f\"",
     "vips[1].quic_lb.configs[1].key: must be 32 hex digits (a 16-octet AES-128 key), got a "
     "non-hex character at offset 1"},
    {"/vips/1/quic_lb/configs/1/key", "16", "vips[1].quic_lb.configs[1].key: must be a string"},
    {"/vips/1/quic_lb/configs/1/self_encoded_length", "1",
     "vips[1].quic_lb.configs[1].self_encoded_length: must be true or false, got 1"},
    // Backend server IDs.
    {"/vips/1/backends/1/quic_server_id", nullptr,
     "vips[1].backends[1].quic_server_id: missing required field (every backend of a QUIC VIP "
     "needs a server ID: 4 hex digits"},
    {"/vips/1/backends/2", R"({"address": "198.18.1.12", "weight": 0})",
     "vips[1].backends[2].quic_server_id: missing required field"},
    {"/vips/1/backends/0/quic_server_id", "\"001\"",
     "vips[1].backends[0].quic_server_id: must be 4 hex digits (server_id_len is 2 octets), got "
     "\"001\""},
    {"/vips/1/backends/0/quic_server_id", "\"000001\"",
     "vips[1].backends[0].quic_server_id: must be 4 hex digits (server_id_len is 2 octets), got "
     "\"000001\""},
    {"/vips/1/backends/0/quic_server_id", "\"0g01\"",
     "vips[1].backends[0].quic_server_id: must be 4 hex digits"},
    {"/vips/1/backends/0/quic_server_id", "\"\"",
     "vips[1].backends[0].quic_server_id: must be 4 hex digits"},
    {"/vips/1/backends/0/quic_server_id", "1",
     "vips[1].backends[0].quic_server_id: must be a string, got 1"},
    {"/vips/1/backends/1/quic_server_id", "\"0001\"",
     "vips[1].backends[1].quic_server_id: duplicate server ID 0001 (also backends[0])"},
    {"/vips/1/backends/0/quic_server_id", "\"00A2\"",
     "vips[1].backends[1].quic_server_id: duplicate server ID 00a2 (also backends[0])"},
    {"/vips/1/backends/0/quic_sid", "\"0001\"",
     "vips[1].backends[0].quic_sid: unknown field (expected one of: address, weight, "
     "quic_server_id)"},
    // Server IDs only in QUIC VIPs: a TCP VIP, and a UDP VIP without quic_lb.
    {"/vips/0/backends/0/quic_server_id", "\"0001\"",
     "vips[0].backends[0].quic_server_id: only allowed in a QUIC VIP (one with quic_lb)"},
    {"/vips/1/quic_lb", nullptr,
     "vips[1].backends[0].quic_server_id: only allowed in a QUIC VIP (one with quic_lb)"},
};

TEST(ConfigQuicLb, BaseOfTheTableIsValid) {
  EXPECT_NE(mustParse(std::string(kQuicBase)), nullptr) << "kQuicBase must parse";
}

TEST(ConfigQuicLb, EveryRuleNamesTheFileAndFieldPath) {
  expectRowsRejected(kQuicBase, kQuicRejectRows);
}

TEST(ConfigQuicLb, KeyIsNeverShownInErrors) {
  json doc = json::parse(kQuicBase);
  const std::string bad_key = std::string(kSecretKey) + "0";  // 33 digits
  doc["vips"][1]["quic_lb"]["configs"][1]["key"] = bad_key;
  const std::string err = mustFail(doc.dump());
  EXPECT_NE(err.find("configs[1].key: must be 32 hex digits"), std::string::npos) << err;
  EXPECT_EQ(err.find(kSecretKey), std::string::npos) << "the key leaked: " << err;
  doc["vips"][1]["quic_lb"]["configs"][1]["key"] = std::string(kSecretKey).replace(31, 1, "x");
  const std::string err2 = mustFail(doc.dump());
  EXPECT_EQ(err2.find(std::string(kSecretKey).substr(0, 31)), std::string::npos)
      << "the key leaked: " << err2;
}

TEST(ConfigQuicLb, ParsesAQuicVip) {
  ConfigPtr cfg = mustParse(kQuicBase);
  ASSERT_NE(cfg, nullptr) << "parses";
  EXPECT_TRUE(cfg->vips[0].quic_lb.empty()) << "a VIP without quic_lb is not a QUIC VIP";
  EXPECT_TRUE(cfg->vips[0].backends[0].quic_server_id.empty()) << "no server ID outside QUIC";
  const VipConfig& h3 = cfg->vips[1];
  EXPECT_EQ(h3.protocol, IPPROTO_UDP) << "QUIC VIPs are UDP";
  ASSERT_EQ(h3.quic_lb.size(), 2u) << "two live configs";

  const QuicLbConfigEntry& plain = h3.quic_lb[0];
  EXPECT_EQ(plain.config_rotation, 0) << "config_rotation";
  EXPECT_EQ(plain.server_id_len, 2) << "server_id_len";
  EXPECT_EQ(plain.nonce_len, 6) << "nonce_len";
  EXPECT_FALSE(plain.key.has_value()) << "no key = plaintext";
  EXPECT_FALSE(plain.self_encoded_length) << "self_encoded_length default";

  const QuicLbConfigEntry& keyed = h3.quic_lb[1];
  EXPECT_EQ(keyed.config_rotation, 1) << "config_rotation";
  EXPECT_EQ(keyed.server_id_len, 2) << "server_id_len";
  EXPECT_EQ(keyed.nonce_len, 10) << "nonce_len";
  ASSERT_TRUE(keyed.key.has_value()) << "key parsed";
  const std::array<uint8_t, 16> want_key = {0x8f, 0x95, 0xf0, 0x92, 0x45, 0x76, 0x5f, 0x80,
                                            0x25, 0x69, 0x34, 0xe5, 0x0c, 0x66, 0x20, 0x7f};
  EXPECT_EQ(*keyed.key, want_key) << "key octets";
  EXPECT_TRUE(keyed.self_encoded_length) << "self_encoded_length";

  ASSERT_EQ(h3.backends.size(), 2u) << "two backends";
  EXPECT_EQ(h3.backends[0].address.toString(), "198.18.1.10") << "sorted by address";
  EXPECT_EQ(h3.backends[0].quic_server_id, (std::vector<uint8_t>{0x00, 0x01})) << "server ID";
  EXPECT_EQ(h3.backends[1].quic_server_id, (std::vector<uint8_t>{0x00, 0xa2})) << "server ID";

  // Each entry is a valid library config, and a CID it encodes decodes to the backend.
  for (const QuicLbConfigEntry& e : h3.quic_lb) {
    auto lib = quiclb::QuicLbConfig::make(e.config_rotation, e.server_id_len, e.nonce_len, e.key,
                                          e.self_encoded_length);
    ASSERT_TRUE(lib.has_value()) << lib.error().message;
    const std::vector<uint8_t> nonce(e.nonce_len, 0x5a);
    auto cid = quiclb::encode(*lib, h3.backends[1].quic_server_id, nonce);
    ASSERT_TRUE(cid.has_value()) << cid.error().message;
    auto sid = quiclb::decode(*lib, *cid);
    ASSERT_TRUE(sid.has_value()) << sid.error().message;
    EXPECT_EQ(*sid, h3.backends[1].quic_server_id)
        << "round trip, rotation " << int{e.config_rotation};
  }
}

TEST(ConfigQuicLb, SortsConfigsByRotationAndAcceptsEdgeCases) {
  json doc = json::parse(kQuicBase);
  json& configs = doc["vips"][1]["quic_lb"]["configs"];
  configs = json::array();
  for (int r = 6; r >= 0; --r) {  // all seven codepoints, in reverse
    configs.push_back({{"config_rotation", r}, {"server_id_len", 2}, {"nonce_len", 4 + r}});
  }
  // 2 + 17 = 19, the largest plaintext.
  configs[0]["nonce_len"] = 17;
  doc["vips"][1]["backends"][0]["quic_server_id"] = "FFff";  // either case
  doc["vips"][1]["backends"].push_back(
      {{"address", "198.18.1.12"}, {"weight", 0}, {"quic_server_id", "0000"}});
  ConfigPtr cfg = mustParseDoc(doc);
  ASSERT_NE(cfg, nullptr) << "seven configs, drained backend with a server ID";
  const auto& q = cfg->vips[1].quic_lb;
  ASSERT_EQ(q.size(), 7u) << "one config per codepoint 0..6";
  for (size_t i = 0; i < q.size(); ++i) {
    EXPECT_EQ(q[i].config_rotation, i) << "sorted by config_rotation";
  }
  EXPECT_EQ(q[6].nonce_len, 17) << "rotation 6 keeps its own nonce_len";
  EXPECT_EQ(cfg->vips[1].backends[0].quic_server_id, (std::vector<uint8_t>{0xff, 0xff}))
      << "upper-case hex";
  EXPECT_EQ(cfg->vips[1].backends[2].quic_server_id, (std::vector<uint8_t>{0x00, 0x00}))
      << "drained backend keeps its server ID";

  // The largest server ID, and a single-pass (16-octet) keyed config.
  json big = json::parse(kQuicBase);
  big["vips"][1]["quic_lb"]["configs"] = json::parse(
      R"([{"config_rotation": 3, "server_id_len": 15, "nonce_len": 4},
          {"config_rotation": 4, "server_id_len": 15, "nonce_len": 4, "key": "00112233445566778899AABBCCDDEEFF"}])");
  big["vips"][1]["backends"][0]["quic_server_id"] = "0102030405060708090a0b0c0d0e0f";
  big["vips"][1]["backends"][1]["quic_server_id"] = "0102030405060708090a0b0c0d0e10";
  EXPECT_NE(mustParseDoc(big), nullptr) << "server_id_len 15 + nonce_len 4 = 19";

  // A QUIC VIP with no backends is valid (new flows are dropped as for any VIP).
  json empty = json::parse(kQuicBase);
  empty["vips"][1]["backends"] = json::array();
  EXPECT_NE(mustParseDoc(empty), nullptr) << "no backends";
}

TEST(ConfigQuicLb, DiffReportsQuicChanges) {
  ConfigPtr old_cfg = mustParse(kQuicBase);
  ASSERT_NE(old_cfg, nullptr) << "parses";
  struct Edit {
    const char* what;
    std::function<void(json&)> apply;
  };
  const Edit edits[] = {
      {"nonce_len", [](json& d) { d["vips"][1]["quic_lb"]["configs"][0]["nonce_len"] = 8; }},
      {"key rotated",
       [](json& d) {
         d["vips"][1]["quic_lb"]["configs"][1]["key"] = "000102030405060708090a0b0c0d0e0f";
       }},
      {"key removed", [](json& d) { d["vips"][1]["quic_lb"]["configs"][1].erase("key"); }},
      {"key added",
       [](json& d) {
         d["vips"][1]["quic_lb"]["configs"][0]["key"] = "000102030405060708090a0b0c0d0e0f";
       }},
      {"self_encoded_length",
       [](json& d) { d["vips"][1]["quic_lb"]["configs"][1]["self_encoded_length"] = false; }},
      {"config_rotation",
       [](json& d) { d["vips"][1]["quic_lb"]["configs"][1]["config_rotation"] = 2; }},
      {"config added",
       [](json& d) {
         d["vips"][1]["quic_lb"]["configs"].push_back(
             {{"config_rotation", 2}, {"server_id_len", 2}, {"nonce_len", 4}});
       }},
      {"config retired", [](json& d) { d["vips"][1]["quic_lb"]["configs"].erase(0); }},
      {"server ID", [](json& d) { d["vips"][1]["backends"][1]["quic_server_id"] = "00a3"; }},
      {"server IDs swapped",
       [](json& d) {
         d["vips"][1]["backends"][0]["quic_server_id"] = "00a2";
         d["vips"][1]["backends"][1]["quic_server_id"] = "0001";
       }},
      {"server_id_len",
       [](json& d) {
         for (json& c : d["vips"][1]["quic_lb"]["configs"]) {
           c["server_id_len"] = 3;
         }
         d["vips"][1]["backends"][0]["quic_server_id"] = "000001";
         d["vips"][1]["backends"][1]["quic_server_id"] = "0000a2";
       }},
      {"no longer QUIC",
       [](json& d) {
         d["vips"][1].erase("quic_lb");
         for (json& b : d["vips"][1]["backends"]) {
           b.erase("quic_server_id");
         }
       }},
  };
  for (const Edit& e : edits) {
    json doc = json::parse(kQuicBase);
    e.apply(doc);
    ConfigPtr new_cfg = mustParseDoc(doc);
    ASSERT_NE(new_cfg, nullptr) << e.what;
    const ConfigDiff d = diffVips(*old_cfg, *new_cfg);
    ASSERT_EQ(d.changed.size(), 1u) << e.what << " makes the VIP changed";
    EXPECT_EQ(d.changed[0].new_vip, &new_cfg->vips[1]) << e.what << ": the QUIC VIP";
    EXPECT_TRUE(d.added.empty() && d.removed.empty()) << e.what << " keeps the key";
  }
  // A plain UDP VIP that becomes QUIC changes too.
  json plain = json::parse(kQuicBase);
  plain["vips"][1].erase("quic_lb");
  for (json& b : plain["vips"][1]["backends"]) {
    b.erase("quic_server_id");
  }
  ConfigPtr plain_cfg = mustParseDoc(plain);
  ASSERT_NE(plain_cfg, nullptr) << "plain UDP VIP parses";
  EXPECT_EQ(diffVips(*plain_cfg, *old_cfg).changed.size(), 1u)
      << "a UDP VIP that becomes QUIC is changed";
}

TEST(ConfigQuicLb, ReorderedConfigsAndBackendsAreUnchanged) {
  json doc = json::parse(kQuicBase);
  json& configs = doc["vips"][1]["quic_lb"]["configs"];
  std::swap(configs[0], configs[1]);
  std::swap(doc["vips"][1]["backends"][0], doc["vips"][1]["backends"][1]);
  doc["vips"][1]["backends"][1]["quic_server_id"] = "0001";  // same octets, other spelling
  doc["vips"][1]["backends"][0]["quic_server_id"] = "00A2";
  ConfigPtr old_cfg = mustParse(kQuicBase);
  ConfigPtr new_cfg = mustParseDoc(doc);
  ASSERT_TRUE(old_cfg && new_cfg) << "both parse";
  EXPECT_TRUE(diffVips(*old_cfg, *new_cfg).empty())
      << "configs are a set keyed by config_rotation; server IDs compare as octets";
  EXPECT_TRUE(checkReloadable(*old_cfg, *new_cfg).has_value()) << "QUIC changes are reloadable";
}

// ---- loading -------------------------------------------------------------------------

TEST(ConfigLoad, MissingFileErrorNamesThePath) {
  const std::string path = "/nonexistent-meshgate-dir/meshgate.json";
  auto cfg = loadConfigFile(path);
  ASSERT_FALSE(cfg.has_value()) << "a missing file must fail";
  EXPECT_NE(cfg.error().message.find(path + ": cannot read: No such file"), std::string::npos)
      << cfg.error().message;
  EXPECT_EQ(cfg.error().errnum, ENOENT) << "errno kept";
}

TEST(ConfigLoad, ContentErrorsNameThePath) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string path = std::string(tmpdir ? tmpdir : "/tmp") + "/meshgate-config-test-XXXXXX";
  const int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0) << "mkstemp " << path;
  close(fd);
  std::ofstream(path) << R"({"interfaces": [{"name": "eth0", "xdp_mode": "skb"}]})";
  auto cfg = loadConfigFile(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(cfg.has_value()) << "bad xdp_mode must fail";
  EXPECT_NE(cfg.error().message.find(path + ": interfaces[0].xdp_mode:"), std::string::npos)
      << cfg.error().message;
}

// ---- reload helpers ------------------------------------------------------------------

json twoVips() {
  return json::parse(kBase);
}

TEST(ConfigDiff, DetectsAddedChangedAndRemovedVips) {
  json old_doc = twoVips();
  old_doc["vips"].push_back(
      {{"name", "dns"}, {"address", "198.18.100.53"}, {"port", 53}, {"protocol", "udp"}});
  json new_doc = twoVips();
  new_doc["vips"][0]["backends"][1]["weight"] = 7;  // web changed
  new_doc["vips"].push_back(
      {{"name", "mail"}, {"address", "198.18.100.25"}, {"port", 25}, {"protocol", "tcp"}});
  ConfigPtr old_cfg = mustParseDoc(old_doc);
  ConfigPtr new_cfg = mustParseDoc(new_doc);
  ASSERT_TRUE(old_cfg && new_cfg) << "both snapshots parse";

  const ConfigDiff d = diffVips(*old_cfg, *new_cfg);
  ASSERT_EQ(d.added.size(), 1u) << "one VIP added";
  EXPECT_EQ(d.added[0]->name, "mail") << "added VIP";
  EXPECT_EQ(d.added[0], &new_cfg->vips[2]) << "added points into the new config";
  ASSERT_EQ(d.changed.size(), 1u) << "one VIP changed (weight)";
  EXPECT_EQ(d.changed[0].old_vip, &old_cfg->vips[0]) << "changed.old_vip into old config";
  EXPECT_EQ(d.changed[0].new_vip, &new_cfg->vips[0]) << "changed.new_vip into new config";
  ASSERT_EQ(d.removed.size(), 1u) << "one VIP removed";
  EXPECT_EQ(d.removed[0]->name, "dns") << "removed VIP";
  EXPECT_EQ(d.removed[0], &old_cfg->vips[2]) << "removed points into the old config";
  EXPECT_FALSE(d.empty()) << "non-empty diff";
}

TEST(ConfigDiff, TreatsReorderedBackendsAndVipsAsUnchanged) {
  json new_doc = twoVips();
  std::swap(new_doc["vips"][0]["backends"][0], new_doc["vips"][0]["backends"][1]);
  std::swap(new_doc["vips"][0], new_doc["vips"][1]);
  ConfigPtr old_cfg = mustParseDoc(twoVips());
  ConfigPtr new_cfg = mustParseDoc(new_doc);
  ASSERT_TRUE(old_cfg && new_cfg) << "both snapshots parse";
  EXPECT_TRUE(diffVips(*old_cfg, *new_cfg).empty()) << "backends are a set keyed by address";
}

TEST(ConfigDiff, CountsRingSizeNameAndBackendSetAsChanges) {
  ConfigPtr old_cfg = mustParseDoc(twoVips());
  struct Edit {
    const char* what;
    const char* pointer;
    json value;
  };
  const Edit edits[] = {
      {"ring_size", "/vips/0/ring_size", 17},
      {"name", "/vips/0/name", "www"},
      {"backend added", "/vips/0/backends/2", {{"address", "198.18.1.12"}}},
      {"backend replaced", "/vips/0/backends/1/address", "198.18.1.99"},
      {"weight drained", "/vips/0/backends/0/weight", 0},
  };
  for (const Edit& e : edits) {
    json doc = twoVips();
    doc[json::json_pointer(e.pointer)] = e.value;
    ConfigPtr new_cfg = mustParseDoc(doc);
    ASSERT_NE(new_cfg, nullptr) << e.what;
    const ConfigDiff d = diffVips(*old_cfg, *new_cfg);
    EXPECT_EQ(d.changed.size(), 1u) << e.what << " makes the VIP changed";
    EXPECT_TRUE(d.added.empty() && d.removed.empty()) << e.what << " keeps the key";
  }
}

TEST(ConfigDiff, KeyChangeIsRemoveAndAdd) {
  json doc = twoVips();
  doc["vips"][0]["protocol"] = "udp";
  ConfigPtr old_cfg = mustParseDoc(twoVips());
  ConfigPtr new_cfg = mustParseDoc(doc);
  ASSERT_TRUE(old_cfg && new_cfg) << "both snapshots parse";
  const ConfigDiff d = diffVips(*old_cfg, *new_cfg);
  EXPECT_EQ(d.added.size(), 1u) << "udp VIP added";
  EXPECT_EQ(d.removed.size(), 1u) << "tcp VIP removed";
  EXPECT_TRUE(d.changed.empty()) << "protocol is part of the key";
}

TEST(ConfigReload, RejectsRestartOnlyFieldsNamingThem) {
  ConfigPtr running = mustParseDoc(twoVips());
  struct Edit {
    const char* pointer;
    json value;
    const char* expected;
  };
  const Edit edits[] = {
      {"/conntrack",
       {{"size", 524288}},
       "meshgate.json: conntrack.size: cannot change on reload (262144 -> 524288)"},
      {"/pin_root", "/sys/fs/bpf/other", "meshgate.json: pin_root: cannot change on reload"},
      {"/interfaces/0/xdp_mode", "generic", "meshgate.json: interfaces: cannot change"},
      {"/decap_interfaces/0/name", "eth2", "meshgate.json: decap_interfaces: cannot change"},
      {"/metrics", {{"listen", "127.0.0.1:9464"}}, "meshgate.json: metrics.listen: cannot"},
  };
  for (const Edit& e : edits) {
    json doc = twoVips();
    doc[json::json_pointer(e.pointer)] = e.value;
    ConfigPtr next = mustParseDoc(doc);
    ASSERT_NE(next, nullptr) << e.pointer;
    auto r = checkReloadable(*running, *next);
    ASSERT_FALSE(r.has_value()) << e.pointer << " must need a restart";
    EXPECT_NE(r.error().message.find(e.expected), std::string::npos) << r.error().message;
  }
}

TEST(ConfigReload, AcceptsVipAndGlobalChanges) {
  ConfigPtr running = mustParseDoc(twoVips());
  json doc = twoVips();
  doc["vips"].erase(1);
  doc["hash_seed"] = 42;
  doc["encap"] = {{"ttl", 32}};
  doc["interfaces"].push_back({{"name", "eth3"}});
  std::swap(doc["interfaces"][0], doc["interfaces"][1]);
  ConfigPtr added_iface = mustParseDoc(doc);
  ASSERT_NE(added_iface, nullptr) << "parses";
  EXPECT_FALSE(checkReloadable(*running, *added_iface).has_value())
      << "an added interface needs a restart";
  doc["interfaces"] = json::array({{{"name", "eth0"}}});
  ConfigPtr next = mustParseDoc(doc);
  ASSERT_NE(next, nullptr) << "parses";
  auto r = checkReloadable(*running, *next);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  EXPECT_TRUE(globalsChanged(*running, *next)) << "hash_seed and ttl changed";
  EXPECT_FALSE(globalsChanged(*running, *running)) << "identical snapshots";
}

TEST(ConfigReload, InterfaceOrderDoesNotMatter) {
  json a = twoVips();
  a["interfaces"] = json::array({{{"name", "eth0"}}, {{"name", "eth3"}}});
  json b = a;
  std::swap(b["interfaces"][0], b["interfaces"][1]);
  ConfigPtr ca = mustParseDoc(a);
  ConfigPtr cb = mustParseDoc(b);
  ASSERT_TRUE(ca && cb) << "both parse";
  EXPECT_TRUE(checkReloadable(*ca, *cb).has_value()) << "interfaces are a set";
}

TEST(ConfigFormat, NamesVipsByKey) {
  ConfigPtr cfg = mustParse(R"({"interfaces": [{"name": "eth0"}], "vips": [
    {"name": "a", "address": "198.18.100.1", "port": 80, "protocol": "tcp"},
    {"name": "b", "address": "2001:2::1", "protocol": "udp"}]})");
  ASSERT_NE(cfg, nullptr) << "parses";
  EXPECT_EQ(vipKeyString(cfg->vips[0]), "198.18.100.1:80/tcp") << "IPv4 with port";
  EXPECT_EQ(vipKeyString(cfg->vips[1]), "[2001:2::1]:*/udp") << "IPv6 port-less";
}

}  // namespace
}  // namespace meshgate::agent
