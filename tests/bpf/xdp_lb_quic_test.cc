// Proves QUIC connection-ID steering in xdp_lb (IETF QUIC-LB) through BPF_PROG_TEST_RUN:
// a server's CID routes to its backend whatever the client's address (connection
// migration), for long and short headers, QUIC v1, v2 and unknown versions, under two
// live configs; encrypted CIDs (single-pass AES and the four-pass Feistel, keys installed by
// the agent through the mg_quic_set_key program) route too, later packets of a CID from the
// decode cache; every unroutable CID falls back to the 4-tuple hash with a counted
// reason; malformed v1/v2 headers are dropped and counted.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <array>
#include <optional>

#include "agent/datapath.h"
#include "agent/lb_maps.h"
#include "meshgate/abi/hash.h"
#include "meshgate/quic_lb.h"
#include "tests/lib/bpf_run.h"
#include "tests/lib/lb_testbed.h"
#include "tests/lib/packet_builder.h"
#include "tests/lib/xdp_lb_fixture.h"

namespace meshgate::test {
namespace {

constexpr uint32_t kSeed = 7;
constexpr char kVip[] = "198.18.100.7";
constexpr uint16_t kPort = 443;
constexpr char kConfig[] = R"({
  "hash_seed": 7,
  "conntrack": {"size": 65536, "max_inserts_per_cpu_per_second": 0},
  "vips": [
    {"name": "h3", "address": "198.18.100.7", "port": 443, "protocol": "udp", "ring_size": 1009,
     "quic_lb": {"configs": [
        {"config_rotation": 0, "server_id_len": 2, "nonce_len": 6},
        {"config_rotation": 1, "server_id_len": 2, "nonce_len": 10},
        {"config_rotation": 2, "server_id_len": 2, "nonce_len": 14,
         "key": "8f95f09245765f80256934e50c66207f"},
        {"config_rotation": 4, "server_id_len": 2, "nonce_len": 9,
         "key": "fdf726a9893ec05c0632d3956680baf0"},
        {"config_rotation": 6, "server_id_len": 2, "nonce_len": 8,
         "key": "00112233445566778899aabbccddeeff"}]},
     "backends": [{"address": "198.18.1.10", "quic_server_id": "0001"},
                  {"address": "198.18.1.11", "quic_server_id": "00a2"},
                  {"address": "198.18.1.12", "quic_server_id": "0100"}]},
    {"name": "h3-long-sid", "address": "198.18.100.7", "port": 8443, "protocol": "udp",
     "ring_size": 1009,
     "quic_lb": {"configs": [
        {"config_rotation": 0, "server_id_len": 8, "nonce_len": 5,
         "key": "2b7e151628aed2a6abf7158809cf4f3c"},
        {"config_rotation": 1, "server_id_len": 8, "nonce_len": 5, "self_encoded_length": true}]},
     "backends": [{"address": "198.18.1.13", "quic_server_id": "0102030405060708"},
                  {"address": "198.18.1.14", "quic_server_id": "a1a2a3a4a5a6a7a8"}]}
  ]
})";

using Key = std::array<uint8_t, 16>;
Key keyOf(const char* hex) {
  auto bytes = quiclb::parseHex(hex);
  Key k{};
  std::copy(bytes->begin(), bytes->end(), k.begin());
  return k;
}
const Key kKeyCr2 = keyOf("8f95f09245765f80256934e50c66207f");  // single pass (2 + 14)
const Key kKeyCr4 = keyOf("fdf726a9893ec05c0632d3956680baf0");  // four-pass, odd (2 + 9)
const Key kKeyCr6 = keyOf("00112233445566778899aabbccddeeff");  // four-pass, even (2 + 8)
const Key kKeyLong = keyOf("2b7e151628aed2a6abf7158809cf4f3c"); // 8 + 5: all four passes
constexpr uint16_t kLongSidPort = 8443;

// A CID built by the C++ library (the reference implementation) with a key.
std::vector<uint8_t> encCid(uint8_t cr, uint8_t sid_len, uint8_t nonce_len, const Key& key,
                            const std::vector<uint8_t>& sid, uint8_t nonce_seed = 0x30) {
  auto cfg = quiclb::QuicLbConfig::make(cr, sid_len, nonce_len, key);
  EXPECT_TRUE(cfg) << cfg.error().message;
  std::vector<uint8_t> nonce(nonce_len);
  for (size_t i = 0; i < nonce.size(); i++) {
    nonce[i] = static_cast<uint8_t>(nonce_seed + i);
  }
  auto out = quiclb::encode(*cfg, sid, nonce, 0x05);
  EXPECT_TRUE(out) << out.error().message;
  return out ? *out : std::vector<uint8_t>{};
}

const MacAddr kClientMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
const std::vector<std::vector<uint8_t>> kSids = {{0x00, 0x01}, {0x00, 0xa2}, {0x01, 0x00}};

std::vector<uint8_t> cid(uint8_t cr, uint8_t nonce_len, const std::vector<uint8_t>& sid) {
  auto cfg = quiclb::QuicLbConfig::make(cr, 2, nonce_len);
  EXPECT_TRUE(cfg) << cfg.error().message;
  std::vector<uint8_t> nonce(nonce_len);
  for (size_t i = 0; i < nonce.size(); i++) {
    nonce[i] = static_cast<uint8_t>(0x30 + i);
  }
  auto out = quiclb::encode(*cfg, sid, nonce, 0x05);
  EXPECT_TRUE(out) << out.error().message;
  return out ? *out : std::vector<uint8_t>{};
}

std::vector<uint8_t> shortHeader(const std::vector<uint8_t>& dcid) {
  std::vector<uint8_t> p = {0x41};
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.insert(p.end(), 24, 0xee);  // packet number and protected payload
  return p;
}

std::vector<uint8_t> longHeader(uint32_t version, const std::vector<uint8_t>& dcid,
                                uint8_t first = 0xe0 /* v1 Handshake */) {
  std::vector<uint8_t> p = {first, static_cast<uint8_t>(version >> 24),
                            static_cast<uint8_t>(version >> 16), static_cast<uint8_t>(version >> 8),
                            static_cast<uint8_t>(version), static_cast<uint8_t>(dcid.size())};
  p.insert(p.end(), dcid.begin(), dcid.end());
  p.push_back(8);  // SCID
  p.insert(p.end(), 8, 0x5c);
  p.insert(p.end(), 40, 0xee);
  return p;
}

class XdpLbQuicTest : public XdpLbFixture {
 protected:
  void SetUp() override { setUpWith("xq", kConfig); }

  std::vector<uint8_t> udp(const std::string& client, uint16_t sport,
                           const std::vector<uint8_t>& payload, uint16_t dport = kPort) {
    return PacketBuilder()
        .eth(kClientMac, bed_->ingressMac())
        .ipv4(client, kVip)
        .udp(sport, dport)
        .payload(payload)
        .build();
  }
  // The backend (10, 11 or 12) an encapsulated frame went to, from its outer destination.
  int backendOf(const XdpRunResult& r) {
    if (r.retval != XDP_REDIRECT || r.out.size() < 34 || r.out[14 + 9] != kIpProtoIpip) {
      return -1;
    }
    return r.out[14 + 19];  // last octet of 198.18.1.N
  }
  // The backend the 4-tuple hash (the table) picks for a client port.
  int tableBackend(const std::string& client, uint16_t sport, uint16_t dport = kPort) {
    mg_flow_key k{};
    k.family = MG_AF_INET;
    inet_pton(AF_INET, client.c_str(), k.src);
    inet_pton(AF_INET, kVip, k.dst);
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = kIpProtoUdp;
    auto vip_id = bed_->state().vipId(bed_->config()->vips[dport == kPort ? 0 : 1]);
    auto ring = agent::readRing(maps_->rings.get(), *vip_id);
    const uint32_t id = (*ring)[mg_flow_hash(&k, kSeed) % ring->size()];
    for (int n = 10; n <= 14; n++) {
      if (bed_->state().backendId(*vip_id, *agent::IpAddr::parse("198.18.1." +
                                                                 std::to_string(n))) == id) {
        return n;
      }
    }
    return -1;
  }
  // A client port whose 4-tuple hash would NOT pick backend n: a CID route then differs.
  uint16_t portAvoiding(const std::string& client, int n, uint16_t dport = kPort) {
    for (uint16_t p = 50000;; p++) {
      if (tableBackend(client, p, dport) != n) {
        return p;
      }
    }
  }
  uint32_t vipId(size_t i) { return *bed_->state().vipId(bed_->config()->vips[i]); }
  // Runs mg_quic_set_key directly, as the agent does (clear = remove the key).
  int runSetKey(uint32_t vip_id, uint8_t cr, const std::optional<Key>& key) {
    mg_quic_key_args args{};
    args.vip_id = vip_id;
    args.config_rotation = cr;
    args.clear = key ? 0 : 1;
    if (key) {
      std::copy(key->begin(), key->end(), args.key);
    }
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.ctx_in = &args;
    opts.ctx_size_in = sizeof(args);
    if (bpf_prog_test_run_opts(prog_->quicKeyProgFd(), &opts) != 0) {
      return -errno;
    }
    return args.err;
  }
  // Whether mg_quic_keys has a slot for (vip, cr): user space cannot see the kptr itself.
  bool hasKeySlot(uint32_t vip_id, uint8_t cr) {
    const int fd = bpf_obj_get((bed_->pinRoot() + "/" MG_MAP_QUIC_KEYS).c_str());
    EXPECT_GE(fd, 0) << "open pinned " MG_MAP_QUIC_KEYS;
    mg_quic_config_key ck{};
    ck.vip_id = vip_id;
    ck.config_rotation = cr;
    std::array<uint8_t, 16> value{};  // struct mg_quic_key_slot: kptr + gen
    const bool found = bpf_map_lookup_elem(fd, &ck, value.data()) == 0;
    close(fd);
    return found;
  }
};

TEST_F(XdpLbQuicTest, ShortHeaderRoutesByServerIdInsteadOfTheFourTuple) {
  for (int i = 0; i < 3; i++) {
    const int want = 10 + i;
    const uint16_t port = portAvoiding("198.18.0.2", want);
    const auto in = udp("198.18.0.2", port, shortHeader(cid(0, 6, kSids[i])));
    const auto r = run(in);
    EXPECT_EQ(backendOf(r), want) << "server id of backend " << want << " from port " << port;
    ASSERT_GE(r.out.size(), in.size() + 20);
    EXPECT_TRUE(std::equal(in.begin() + 14, in.end(), r.out.begin() + 34))
        << "inner packet untouched";
  }
  EXPECT_EQ(counter(MG_LB_QUIC_ROUTED_CID), 3u);
  EXPECT_EQ(counter(MG_LB_QUIC_FALLBACK), 0u);
}

TEST_F(XdpLbQuicTest, RoutableCidOutranksConntrackOnTheSameFourTuple) {
  const uint16_t port = 55000;
  EXPECT_EQ(backendOf(run(udp("198.18.0.6", port, shortHeader(cid(0, 6, kSids[0]))))), 10);
  // Same 4-tuple (NAT rebinding handed it to another connection), another server's CID.
  EXPECT_EQ(backendOf(run(udp("198.18.0.6", port, shortHeader(cid(0, 6, kSids[2]))))), 12)
      << "the CID wins over the tracked 4-tuple";
  EXPECT_EQ(counter(MG_LB_CT_HIT), 1u) << "the second packet did hit conntrack";
  // An unroutable CID on that 4-tuple keeps the tracked backend (now .12).
  auto cr7 = cid(0, 6, kSids[0]);
  cr7[0] |= 0xe0;
  EXPECT_EQ(backendOf(run(udp("198.18.0.6", port, shortHeader(cr7)))), 12)
      << "unroutable: the 4-tuple's entry decides";
}

TEST_F(XdpLbQuicTest, SelfEncodedLengthMustCoverTheConfigAndMatchTheWire) {
  auto cfg = quiclb::QuicLbConfig::make(1, 8, 5, std::nullopt, true);
  ASSERT_TRUE(cfg) << cfg.error().message;
  const std::vector<uint8_t> sid = {1, 2, 3, 4, 5, 6, 7, 8}, nonce = {9, 9, 9, 9, 9};
  auto good = quiclb::encode(*cfg, sid, nonce);
  ASSERT_TRUE(good) << good.error().message;
  ASSERT_EQ((*good)[0] & 0x1f, 13) << "the library encodes length - 1";
  const uint16_t port = portAvoiding("198.18.0.11", 13, kLongSidPort);
  EXPECT_EQ(backendOf(run(udp("198.18.0.11", port, shortHeader(*good), kLongSidPort))), 13)
      << "short header, length covers the config";
  EXPECT_EQ(backendOf(run(udp("198.18.0.12", port, longHeader(MG_QUIC_V1, *good),
                              kLongSidPort))),
            13)
      << "long header, length equals the DCID length";
  const uint64_t before = counter(MG_LB_QUIC_CID_LENGTH);
  auto short_len = *good;
  short_len[0] = (short_len[0] & 0xe0) | 5;  // claims 6 octets: less than 1 + 8 + 5
  run(udp("198.18.0.13", port, shortHeader(short_len), kLongSidPort));
  auto with_extra = *good;
  with_extra.push_back(0x77);  // a server-use octet the self-encoded length does not count
  run(udp("198.18.0.14", port, longHeader(MG_QUIC_V1, with_extra), kLongSidPort));
  EXPECT_EQ(counter(MG_LB_QUIC_CID_LENGTH), before + 2) << "both unroutable by length";
  EXPECT_EQ(counter(MG_LB_QUIC_ROUTED_CID), 2u);
}

TEST_F(XdpLbQuicTest, MigratedClientKeepsItsBackend) {
  const auto dcid = cid(0, 6, kSids[2]);  // backend .12
  const uint16_t port = portAvoiding("198.18.0.2", 12);
  EXPECT_EQ(backendOf(run(udp("198.18.0.2", port, shortHeader(dcid)))), 12) << "before";
  // 4G -> WiFi: a new source address and port, never seen by conntrack.
  const uint16_t new_port = portAvoiding("198.18.0.77", 12);
  EXPECT_EQ(backendOf(run(udp("198.18.0.77", new_port, shortHeader(dcid)))), 12)
      << "after the address change the connection stays on its backend";
  EXPECT_EQ(counter(MG_LB_QUIC_ROUTED_CID), 2u);
}

TEST_F(XdpLbQuicTest, BothLiveConfigsRoute) {
  const uint16_t port = portAvoiding("198.18.0.2", 11);
  EXPECT_EQ(backendOf(run(udp("198.18.0.2", port, shortHeader(cid(0, 6, kSids[1]))))), 11)
      << "config rotation 0";
  EXPECT_EQ(backendOf(run(udp("198.18.0.2", port + 1000, shortHeader(cid(1, 10, kSids[1]))))),
            11)
      << "config rotation 1";
}

TEST_F(XdpLbQuicTest, LongHeadersOfV1V2AndUnknownVersionsRouteByDcid) {
  const auto dcid = cid(0, 6, kSids[1]);
  const std::vector<std::pair<uint32_t, uint8_t>> versions = {
      {MG_QUIC_V1, 0xe0}, {MG_QUIC_V2, 0xf0}, {0x1a2a3a4a, 0x80}};
  uint16_t port = 51000;
  for (auto [version, first] : versions) {
    port = portAvoiding("198.18.0.3", 11);
    const auto r = run(udp("198.18.0.3", port, longHeader(version, dcid, first)));
    EXPECT_EQ(backendOf(r), 11) << "version " << std::hex << version;
    // Forget the flow so each version is routed by its CID, not by conntrack.
    mg_flow_key k{};
    k.family = MG_AF_INET;
    inet_pton(AF_INET, "198.18.0.3", k.src);
    inet_pton(AF_INET, kVip, k.dst);
    k.sport = htons(port);
    k.dport = htons(kPort);
    k.proto = kIpProtoUdp;
    bpf_map_delete_elem(maps_->conntrack.get(), &k);
  }
  EXPECT_EQ(counter(MG_LB_QUIC_ROUTED_CID), 3u);
}

TEST_F(XdpLbQuicTest, InitialWithClientChosenDcidFallsBackToTheFourTupleAndSticks) {
  const std::vector<uint8_t> random_dcid = {0x6f, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde};
  const uint16_t port = 52000;
  const auto initial = udp("198.18.0.2", port, longHeader(MG_QUIC_V1, random_dcid, 0xc0));
  const auto r = run(initial);
  EXPECT_EQ(backendOf(r), tableBackend("198.18.0.2", port)) << "by the 4-tuple hash";
  EXPECT_EQ(counter(MG_LB_QUIC_FALLBACK), 1u);
  EXPECT_EQ(counter(MG_LB_QUIC_UNKNOWN_CONFIG), 1u) << "codepoint 3 has no config";
  EXPECT_EQ(backendOf(run(initial)), backendOf(r)) << "the handshake stays put";
  EXPECT_EQ(counter(MG_LB_CT_HIT), 1u) << "through conntrack";
}

TEST_F(XdpLbQuicTest, EveryUnroutableCidFallsBackWithItsReason) {
  struct Row {
    const char* name;
    std::vector<uint8_t> payload;
    mg_lb_counter reason;
  };
  auto cr7 = cid(0, 6, kSids[0]);
  cr7[0] |= 0xe0;
  auto cr5 = cid(0, 6, kSids[0]);
  cr5[0] = (cr5[0] & 0x1f) | (5 << 5);
  const std::vector<Row> rows = {
      {"config rotation 0b111", shortHeader(cr7), MG_LB_QUIC_UNROUTABLE_CR},
      {"no config at codepoint 5", shortHeader(cr5), MG_LB_QUIC_UNKNOWN_CONFIG},
      {"long header DCID shorter than the config", longHeader(MG_QUIC_V1, {0x00, 0x00, 0x01, 0x7}),
       MG_LB_QUIC_CID_LENGTH},
      {"server id mapped to nobody", shortHeader(cid(0, 6, {0x77, 0x77})),
       MG_LB_QUIC_UNKNOWN_SERVER},
      {"encrypted CID, server id mapped to nobody",
       shortHeader(encCid(2, 2, 14, kKeyCr2, {0x77, 0x77})), MG_LB_QUIC_UNKNOWN_SERVER},
      {"unknown version with a 25-octet DCID", longHeader(0x1a2a3a4a, std::vector<uint8_t>(25, 1)),
       MG_LB_QUIC_CID_LENGTH},
  };
  uint16_t port = 53000;
  for (const auto& row : rows) {
    const uint64_t before = counter(row.reason), fb = counter(MG_LB_QUIC_FALLBACK);
    const auto r = run(udp("198.18.0.4", port, row.payload));
    EXPECT_EQ(backendOf(r), tableBackend("198.18.0.4", port)) << row.name << ": by 4-tuple";
    EXPECT_EQ(counter(row.reason), before + 1) << row.name << ": reason counted";
    EXPECT_EQ(counter(MG_LB_QUIC_FALLBACK), fb + 1) << row.name << ": fallback counted";
    port++;
  }
}

TEST_F(XdpLbQuicTest, SinglePassEncryptedCidRoutesByItsServerId) {
  for (int i = 0; i < 3; i++) {
    const int want = 10 + i;
    const uint16_t port = portAvoiding("198.18.0.2", want);
    const auto dcid = encCid(2, 2, 14, kKeyCr2, kSids[i]);
    EXPECT_NE(std::vector<uint8_t>(dcid.begin() + 1, dcid.begin() + 3), kSids[i])
        << "the server id is not in the clear";
    EXPECT_EQ(backendOf(run(udp("198.18.0.2", port, shortHeader(dcid)))), want)
        << "backend " << want << " from port " << port;
  }
  EXPECT_EQ(counter(MG_LB_QUIC_ROUTED_CID), 3u);
  EXPECT_EQ(counter(MG_LB_QUIC_CID_DECODED), 3u) << "one AES decode per CID";
  EXPECT_EQ(counter(MG_LB_QUIC_FALLBACK), 0u);
}

TEST_F(XdpLbQuicTest, FourPassEncryptedCidsRouteForOddEvenAndLongServerIds) {
  for (int i = 0; i < 3; i++) {
    const int want = 10 + i;
    uint16_t port = portAvoiding("198.18.0.8", want);
    EXPECT_EQ(backendOf(run(udp("198.18.0.8", port, shortHeader(encCid(4, 2, 9, kKeyCr4,
                                                                       kSids[i]))))),
              want)
        << "2 + 9 octets (odd: shared middle octet), backend " << want;
    port = portAvoiding("198.18.0.9", want);
    EXPECT_EQ(backendOf(run(udp("198.18.0.9", port, shortHeader(encCid(6, 2, 8, kKeyCr6,
                                                                       kSids[i]))))),
              want)
        << "2 + 8 octets (three-pass shortcut), backend " << want;
  }
  // server_id_len 8 > (8 + 5) / 2: the decoder runs all four passes and joins the halves.
  const std::vector<std::vector<uint8_t>> long_sids = {
      {1, 2, 3, 4, 5, 6, 7, 8}, {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}};
  for (int i = 0; i < 2; i++) {
    const int want = 13 + i;
    const uint16_t port = portAvoiding("198.18.0.10", want, kLongSidPort);
    const auto in = udp("198.18.0.10", port,
                        longHeader(MG_QUIC_V1, encCid(0, 8, 5, kKeyLong, long_sids[i])),
                        kLongSidPort);
    EXPECT_EQ(backendOf(run(in)), want) << "8 + 5 octets, backend " << want;
  }
  EXPECT_EQ(counter(MG_LB_QUIC_ROUTED_CID), 8u);
  EXPECT_EQ(counter(MG_LB_QUIC_CID_DECODED), 8u);
  EXPECT_EQ(counter(MG_LB_QUIC_FALLBACK), 0u);
}

TEST_F(XdpLbQuicTest, LaterPacketsOfAnEncryptedCidComeFromTheCache) {
  const auto dcid = encCid(4, 2, 9, kKeyCr4, kSids[1]);
  const uint16_t port = portAvoiding("198.18.0.11", 11);
  EXPECT_EQ(backendOf(run(udp("198.18.0.11", port, shortHeader(dcid)))), 11) << "first";
  EXPECT_EQ(counter(MG_LB_QUIC_CID_DECODED), 1u);
  EXPECT_EQ(counter(MG_LB_QUIC_CID_CACHE_HIT), 0u);
  // The same connection migrated (new 4-tuple), then a long header carrying the same CID.
  const uint16_t new_port = portAvoiding("198.18.0.12", 11);
  EXPECT_EQ(backendOf(run(udp("198.18.0.12", new_port, shortHeader(dcid)))), 11) << "second";
  EXPECT_EQ(backendOf(run(udp("198.18.0.12", new_port + 1, longHeader(MG_QUIC_V1, dcid)))), 11)
      << "long header";
  EXPECT_EQ(counter(MG_LB_QUIC_CID_DECODED), 1u) << "AES ran once";
  EXPECT_EQ(counter(MG_LB_QUIC_CID_CACHE_HIT), 2u);
}

TEST_F(XdpLbQuicTest, TwoLiveEncryptedConfigsWithDifferentKeysBothRoute) {
  const uint16_t port = portAvoiding("198.18.0.13", 12);
  EXPECT_EQ(backendOf(run(udp("198.18.0.13", port, shortHeader(encCid(2, 2, 14, kKeyCr2,
                                                                      kSids[2]))))),
            12)
      << "config rotation 2, key A";
  const uint16_t port2 = portAvoiding("198.18.0.14", 12);
  EXPECT_EQ(backendOf(run(udp("198.18.0.14", port2, shortHeader(encCid(6, 2, 8, kKeyCr6,
                                                                       kSids[2]))))),
            12)
      << "config rotation 6, key C";
  EXPECT_EQ(counter(MG_LB_QUIC_ROUTED_CID), 2u);
}

TEST_F(XdpLbQuicTest, EncryptedConfigWithoutItsKeyFallsBackWithNoDecoder) {
  const auto dcid = encCid(2, 2, 14, kKeyCr2, kSids[0]);
  const uint16_t port = portAvoiding("198.18.0.15", 10);
  EXPECT_EQ(backendOf(run(udp("198.18.0.15", port, shortHeader(dcid)))), 10) << "keyed";
  // The key slot is cleared while the config still says "encrypted": the cached decode
  // must not outlive the key.
  ASSERT_EQ(runSetKey(vipId(0), 2, std::nullopt), 0);
  EXPECT_FALSE(hasKeySlot(vipId(0), 2));
  const uint16_t port2 = 53500;
  EXPECT_EQ(backendOf(run(udp("198.18.0.15", port2, shortHeader(dcid)))),
            tableBackend("198.18.0.15", port2))
      << "no key: by 4-tuple";
  EXPECT_EQ(counter(MG_LB_QUIC_NO_DECODER), 1u);
  EXPECT_EQ(counter(MG_LB_QUIC_FALLBACK), 1u);
  // Installing the key again routes again.
  ASSERT_EQ(runSetKey(vipId(0), 2, kKeyCr2), 0);
  EXPECT_EQ(backendOf(run(udp("198.18.0.15", port2 + 1, shortHeader(dcid)))), 10) << "rekeyed";
}

TEST_F(XdpLbQuicTest, AgentClearsTheKeyOfAConfigThatLosesItOrGoesAway) {
  const uint32_t vip = vipId(0), long_vip = vipId(1);
  EXPECT_TRUE(hasKeySlot(vip, 2));
  EXPECT_TRUE(hasKeySlot(vip, 4));
  EXPECT_TRUE(hasKeySlot(long_vip, 0));
  // cr 2 loses its key (now plaintext), cr 4 goes away, the second VIP goes away.
  auto applied = bed_->apply(R"({
  "hash_seed": 7,
  "conntrack": {"size": 65536, "max_inserts_per_cpu_per_second": 0},
  "vips": [
    {"name": "h3", "address": "198.18.100.7", "port": 443, "protocol": "udp", "ring_size": 1009,
     "quic_lb": {"configs": [
        {"config_rotation": 2, "server_id_len": 2, "nonce_len": 14},
        {"config_rotation": 6, "server_id_len": 2, "nonce_len": 8,
         "key": "00112233445566778899aabbccddeeff"}]},
     "backends": [{"address": "198.18.1.10", "quic_server_id": "0001"},
                  {"address": "198.18.1.11", "quic_server_id": "00a2"},
                  {"address": "198.18.1.12", "quic_server_id": "0100"}]}
  ]
})");
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_FALSE(hasKeySlot(vip, 2)) << "key removed from the config";
  EXPECT_FALSE(hasKeySlot(vip, 4)) << "config removed";
  EXPECT_FALSE(hasKeySlot(long_vip, 0)) << "VIP removed";
  EXPECT_TRUE(hasKeySlot(vip, 6)) << "untouched config keeps its key";
  const uint16_t port = portAvoiding("198.18.0.16", 12);
  EXPECT_EQ(backendOf(run(udp("198.18.0.16", port, shortHeader(encCid(6, 2, 8, kKeyCr6,
                                                                      kSids[2]))))),
            12);
}

TEST_F(XdpLbQuicTest, RotatedKeyAtTheSameCodepointIgnoresCachedDecodes) {
  const auto old_dcid = encCid(6, 2, 8, kKeyCr6, kSids[0]);
  const uint16_t port = portAvoiding("198.18.0.17", 10);
  EXPECT_EQ(backendOf(run(udp("198.18.0.17", port, shortHeader(old_dcid)))), 10);
  const Key fresh = keyOf("0f0e0d0c0b0a09080706050403020100");
  ASSERT_EQ(runSetKey(vipId(0), 6, fresh), 0);
  const uint64_t decoded = counter(MG_LB_QUIC_CID_DECODED);
  run(udp("198.18.0.17", port + 1, shortHeader(old_dcid)));
  EXPECT_EQ(counter(MG_LB_QUIC_CID_DECODED), decoded + 1) << "decoded again with the new key";
  EXPECT_EQ(counter(MG_LB_QUIC_CID_CACHE_HIT), 0u);
  const uint16_t port2 = portAvoiding("198.18.0.18", 11);
  EXPECT_EQ(backendOf(run(udp("198.18.0.18", port2,
                              shortHeader(encCid(6, 2, 8, fresh, kSids[1]))))),
            11)
      << "a CID of the new key routes";
}

TEST_F(XdpLbQuicTest, MalformedV1AndV2HeadersAreDroppedAndCounted) {
  const std::vector<std::pair<const char*, std::vector<uint8_t>>> rows = {
      {"v1 DCID length 21", longHeader(MG_QUIC_V1, std::vector<uint8_t>(21, 0))},
      {"v2 DCID length 255 cut", [] {
         auto p = longHeader(MG_QUIC_V2, std::vector<uint8_t>(8, 0), 0xd0);
         p[5] = 255;
         p.resize(20);
         return p;
       }()},
      {"v1 long header cut inside the DCID", [] {
         auto p = longHeader(MG_QUIC_V1, std::vector<uint8_t>(18, 0));
         p.resize(12);
         return p;
       }()},
      {"long header cut before the DCID length", {0xc0, 0x00, 0x00}},
      {"empty datagram", {}},
  };
  for (const auto& [name, payload] : rows) {
    const uint64_t before = drops(MG_LB_DROP_QUIC_MALFORMED);
    const auto r = run(udp("198.18.0.5", 54000, payload));
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << name;
    EXPECT_EQ(drops(MG_LB_DROP_QUIC_MALFORMED), before + 1) << name << ": counted";
  }
}

}  // namespace
}  // namespace meshgate::test
