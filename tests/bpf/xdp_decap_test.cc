// Proves xdp_decap's verdicts, byte-exact output and counters through BPF_PROG_TEST_RUN:
// every IPIP family pair from a balancer's source is stripped to the client's packet, IPIP
// from any other source and everything else passes untouched, truncated IPIP drops, and
// RFC 6040 ECN decapsulation is applied.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "agent/bpf_util.h"
#include "agent/config.h"
#include "agent/datapath.h"
#include "agent/lb_state.h"
#include "meshgate/abi/decap.h"
#include "tests/lib/bpf_run.h"
#include "tests/lib/netns.h"
#include "tests/lib/packet_builder.h"

namespace meshgate::test {
namespace {

// ECN codepoints: the low two bits of the IPv4 TOS / IPv6 traffic class.
constexpr uint8_t kNotEct = 0;
constexpr uint8_t kEct1 = 1;
constexpr uint8_t kEct0 = 2;
constexpr uint8_t kCe = 3;
constexpr uint8_t kDscpEf = 46 << 2;  // DSCP bits, which decapsulation must leave alone

constexpr size_t kEthLen = 14;
constexpr size_t kIpv4Len = 20;
constexpr size_t kIpv6Len = 40;

const MacAddr kLbMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const MacAddr kBackendMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x10};

constexpr char kClient4[] = "198.18.0.2";
constexpr char kVip4[] = "198.18.100.1";
constexpr char kClient6[] = "fd00::2";
constexpr char kVip6[] = "fd00:100::1";
constexpr char kEncapSrc4[] = "198.18.255.7";
constexpr char kBackend4[] = "198.18.1.10";
constexpr char kEncapSrc6[] = "fd00:ffff::7";
constexpr char kBackend6[] = "fd00:1::13";

// Names of the counters, from the ABI's one declaration, for failure messages.
#define MG_DECAP_X_NAME(name, help) #name,
constexpr const char* kCounterNames[] = {MG_DECAP_COUNTERS(MG_DECAP_X_NAME)};
#undef MG_DECAP_X_NAME
static_assert(std::size(kCounterNames) == MG_DECAP_COUNTER_MAX);

using Counters = std::array<uint64_t, MG_DECAP_COUNTER_MAX>;

// An Ethernet frame from the balancer to this backend; the caller pushes the rest.
PacketBuilder toBackend() {
  PacketBuilder b;
  b.eth(kLbMac, kBackendMac);
  return b;
}

PacketBuilder outer4(uint8_t tos = 0, std::vector<uint8_t> options = {}) {
  PacketBuilder b = toBackend();
  b.ipv4(kEncapSrc4, kBackend4, {.tos = tos, .options = std::move(options)});
  return b;
}

// An outer IPv4 header marked as a fragment (lengths stay consistent with the frame).
PacketBuilder outer4Frag(bool more_fragments, uint16_t offset_bytes) {
  PacketBuilder b = toBackend();
  b.ipv4(kEncapSrc4, kBackend4,
         {.more_fragments = more_fragments, .frag_offset_bytes = offset_bytes});
  return b;
}

PacketBuilder outer6(uint8_t traffic_class = 0) {
  PacketBuilder b = toBackend();
  b.ipv6(kEncapSrc6, kBackend6, {.traffic_class = traffic_class, .flow_label = 0xabcde});
  return b;
}

// The client's packets, pushed after `b`: after toBackend() they are what the backend's
// stack must receive; after outer4()/outer6() they are the tunnelled form xdp_lb sends.
PacketBuilder clientTcp4(PacketBuilder b, uint8_t tos = 0) {
  b.ipv4(kClient4, kVip4, {.ttl = 57, .tos = tos, .id = 0x1234, .dont_fragment = true})
      .tcp(40000, 80, {.flags = kTcpSyn, .seq = 1000})
      .payload("hello");
  return b;
}

PacketBuilder clientUdp4(PacketBuilder b) {
  b.ipv4(kClient4, kVip4, {.ttl = 57}).udp(5353, 53).payload("query");
  return b;
}

PacketBuilder clientTcp6(PacketBuilder b, uint8_t traffic_class = 0) {
  b.ipv6(kClient6, kVip6, {.hop_limit = 57, .traffic_class = traffic_class, .flow_label = 0x12345})
      .tcp(40000, 80, {.flags = kTcpSyn, .seq = 1000})
      .payload("hello");
  return b;
}

uint8_t ipv4Ecn(const std::vector<uint8_t>& frame) {
  return frame.at(kEthLen + 1) & 0x3;
}

uint8_t ipv6TrafficClass(const std::vector<uint8_t>& frame) {
  return static_cast<uint8_t>((frame.at(kEthLen) & 0x0f) << 4 | frame.at(kEthLen + 1) >> 4);
}

class XdpDecapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: loads a BPF program and pins its map in bpffs";
    }
    auto dir = BpffsDir::create("xdecap");
    ASSERT_TRUE(dir) << dir.error().message;
    pins_.emplace(std::move(*dir));
    auto prog = agent::LoadedProgram::load(agent::XdpProgram::kDecap, {pins_->path(), 0});
    ASSERT_TRUE(prog) << prog.error().message;
    prog_.emplace(std::move(*prog));
    auto stats = agent::openPinned(pins_->pinPath(MG_MAP_DECAP_STATS));
    ASSERT_TRUE(stats) << stats.error().message;
    stats_ = std::move(*stats);
    // What the agent writes on a backend host: its encap prefixes, as on the balancers.
    auto cfg = agent::parseConfig(
        R"({"decap_interfaces": [{"name": "eth0"}],
            "encap": {"source_v4": "198.18.255.0/24", "source_v6": "fd00:ffff::/96"}})",
        "backend.json");
    ASSERT_TRUE(cfg) << cfg.error().message;
    writeGlobals(agent::globalsOf(**cfg));
  }

  void writeGlobals(const mg_lb_globals& g) {
    auto fd = agent::openPinned(pins_->pinPath(MG_MAP_GLOBALS));
    ASSERT_TRUE(fd) << fd.error().message;
    const uint32_t zero = 0;
    auto w = agent::mapUpdate(fd->get(), &zero, &g, MG_MAP_GLOBALS);
    ASSERT_TRUE(w) << w.error().message;
  }

  XdpRunResult run(const std::vector<uint8_t>& pkt) {
    auto r = runXdp(prog_->progFd(), pkt);
    EXPECT_TRUE(r) << "BPF_PROG_TEST_RUN: " << r.error().message;
    return r ? *r : XdpRunResult{};
  }

  Counters counters() {
    Counters out{};
    for (uint32_t c = 0; c < MG_DECAP_COUNTER_MAX; c++) {
      auto v = agent::sumPerCpuU64(stats_.get(), c, MG_MAP_DECAP_STATS);
      EXPECT_TRUE(v) << "read counter " << kCounterNames[c] << ": " << v.error().message;
      out[c] = v ? *v : ~0ull;
    }
    return out;
  }

  // One packet went through: RX and exactly the `counted` counters rose by one, no other.
  static void expectCounted(const Counters& before, const Counters& after,
                            std::initializer_list<mg_decap_counter> counted,
                            const std::string& what) {
    for (uint32_t c = 0; c < MG_DECAP_COUNTER_MAX; c++) {
      bool listed = c == MG_DECAP_RX;
      for (mg_decap_counter want : counted) {
        listed = listed || c == want;
      }
      EXPECT_EQ(after[c] - before[c], listed ? 1u : 0u)
          << what << ": counter " << kCounterNames[c] << (listed ? " must" : " must not")
          << " count this packet";
    }
  }

  std::optional<BpffsDir> pins_;
  std::optional<agent::LoadedProgram> prog_;
  agent::UniqueFd stats_;
};

struct DecapRow {
  const char* name;
  std::vector<uint8_t> input;
  uint32_t verdict;
  std::optional<std::vector<uint8_t>> output;  // the frame after the program; nullopt: input
  mg_decap_counter counter;                    // the one counter (besides RX) that rises
};

TEST_F(XdpDecapTest, EachPacketGetsItsVerdictOutputAndCounter) {
  const auto tcp4 = clientTcp4(toBackend()).build();
  const auto tcp6 = clientTcp6(toBackend()).build();
  const auto ip4in4 = clientTcp4(outer4()).build();
  const auto ip4in6 = clientTcp4(outer6()).build();
  const auto ip6in6 = clientTcp6(outer6()).build();
  const auto arp =
      PacketBuilder().eth(kLbMac, kBackendMac, 0x0806).payload(std::string(28, 'a')).build();
  const std::vector<DecapRow> rows = {
      {"ipv4-in-ipv4 tcp", ip4in4, XDP_PASS, tcp4, MG_DECAP_DECAP_4IN4},
      {"ipv4-in-ipv4 udp", clientUdp4(outer4()).build(), XDP_PASS, clientUdp4(toBackend()).build(),
       MG_DECAP_DECAP_4IN4},
      {"ipv4-in-ipv6 becomes ethertype ipv4", ip4in6, XDP_PASS, tcp4, MG_DECAP_DECAP_4IN6},
      {"ipv6-in-ipv6", ip6in6, XDP_PASS, tcp6, MG_DECAP_DECAP_6IN6},
      {"outer ipv4 with options (ihl 6)", clientTcp4(outer4(0, {0x94, 0x04, 0x00, 0x00})).build(),
       XDP_PASS, tcp4, MG_DECAP_DECAP_4IN4},
      {"outer ECT(0), inner not-ECT: inner untouched",
       clientTcp4(outer4(kEct0), kDscpEf | kNotEct).build(), XDP_PASS,
       clientTcp4(toBackend(), kDscpEf | kNotEct).build(), MG_DECAP_DECAP_4IN4},
      {"outer CE, inner CE: stays CE", clientTcp4(outer4(kCe), kDscpEf | kCe).build(), XDP_PASS,
       clientTcp4(toBackend(), kDscpEf | kCe).build(), MG_DECAP_DECAP_4IN4},
      // A fragment of an IPIP packet carries part of the inner packet: not decapsulated.
      {"outer ipv4 first fragment", clientTcp4(outer4Frag(true, 0)).build(), XDP_PASS, std::nullopt,
       MG_DECAP_PASS_OUTER_FRAGMENT},
      {"outer ipv4 later fragment", clientTcp4(outer4Frag(false, 24)).build(), XDP_PASS,
       std::nullopt, MG_DECAP_PASS_OUTER_FRAGMENT},
      // IPIP from outside encap.source_v4/v6 is not a balancer's: never opened.
      {"ipv4-in-ipv4 from outside the /24",
       clientTcp4(toBackend().ipv4("198.18.254.7", kBackend4)).build(), XDP_PASS, std::nullopt,
       MG_DECAP_PASS_FOREIGN_SOURCE},
      {"ipv4-in-ipv4 from anywhere", clientTcp4(toBackend().ipv4("203.0.113.9", kBackend4)).build(),
       XDP_PASS, std::nullopt, MG_DECAP_PASS_FOREIGN_SOURCE},
      {"ipv4-in-ipv4 from another host of the /24",
       clientTcp4(toBackend().ipv4("198.18.255.200", kBackend4)).build(), XDP_PASS, tcp4,
       MG_DECAP_DECAP_4IN4},
      {"ipv6-in-ipv6 from outside the /96 (first word)",
       clientTcp6(toBackend().ipv6("fd00:fffe::7", kBackend6)).build(), XDP_PASS, std::nullopt,
       MG_DECAP_PASS_FOREIGN_SOURCE},
      {"ipv4-in-ipv6 from outside the /96 (third word)",
       clientTcp4(toBackend().ipv6("fd00:ffff:0:0:1::7", kBackend6)).build(), XDP_PASS,
       std::nullopt, MG_DECAP_PASS_FOREIGN_SOURCE},
      {"ipv6-in-ipv6 from another host of the /96",
       clientTcp6(toBackend().ipv6("fd00:ffff::ab:cdef", kBackend6)).build(), XDP_PASS, tcp6,
       MG_DECAP_DECAP_6IN6},
      // Not IPIP, or IPIP too malformed to be the balancer's: the stack's business.
      {"plain ipv4 tcp", tcp4, XDP_PASS, std::nullopt, MG_DECAP_PASS_NOT_IPIP},
      {"plain ipv4 udp", clientUdp4(toBackend()).build(), XDP_PASS, std::nullopt,
       MG_DECAP_PASS_NOT_IPIP},
      {"plain ipv6 tcp", tcp6, XDP_PASS, std::nullopt, MG_DECAP_PASS_NOT_IPIP},
      {"arp", arp, XDP_PASS, std::nullopt, MG_DECAP_PASS_NOT_IPIP},
      {"outer ipv4 header cut", truncated(ip4in4, kEthLen + 12), XDP_PASS, std::nullopt,
       MG_DECAP_PASS_NOT_IPIP},
      {"outer ipv6 header cut", truncated(ip6in6, kEthLen + 30), XDP_PASS, std::nullopt,
       MG_DECAP_PASS_NOT_IPIP},
      // IPIP whose inner header is cut: dropped, as the stack could not parse it either.
      {"ipv4-in-ipv4 inner header cut", truncated(ip4in4, kEthLen + kIpv4Len + 12), XDP_DROP,
       std::nullopt, MG_DECAP_DROP_TRUNC},
      {"ipv4-in-ipv4 with options, inner header cut",
       truncated(clientTcp4(outer4(0, {0x94, 0x04, 0x00, 0x00})).build(),
                 kEthLen + kIpv4Len + 4 + 16),
       XDP_DROP, std::nullopt, MG_DECAP_DROP_TRUNC},
      {"ipv4-in-ipv6 inner header cut", truncated(ip4in6, kEthLen + kIpv6Len + 10), XDP_DROP,
       std::nullopt, MG_DECAP_DROP_TRUNC},
      {"ipv6-in-ipv6 inner header cut", truncated(ip6in6, kEthLen + kIpv6Len + 39), XDP_DROP,
       std::nullopt, MG_DECAP_DROP_TRUNC},
      {"ipv4-in-ipv4 with no inner packet",
       toBackend().ipv4(kEncapSrc4, kBackend4, {.protocol = kIpProtoIpip}).build(), XDP_DROP,
       std::nullopt, MG_DECAP_DROP_TRUNC},
      {"ipv6-in-ipv6 with no inner packet",
       toBackend().ipv6(kEncapSrc6, kBackend6, {.next_header = kIpProtoIpv6}).build(), XDP_DROP,
       std::nullopt, MG_DECAP_DROP_TRUNC},
      // RFC 6040: a CE mark cannot be carried by a not-ECN-capable inner packet.
      {"outer ipv4 CE, inner ipv4 not-ECT", clientTcp4(outer4(kCe), kDscpEf | kNotEct).build(),
       XDP_DROP, std::nullopt, MG_DECAP_DROP_ECN},
      {"outer ipv6 CE, inner ipv4 not-ECT", clientTcp4(outer6(kCe), kNotEct).build(), XDP_DROP,
       std::nullopt, MG_DECAP_DROP_ECN},
      {"outer ipv6 CE, inner ipv6 not-ECT", clientTcp6(outer6(kCe), kDscpEf | kNotEct).build(),
       XDP_DROP, std::nullopt, MG_DECAP_DROP_ECN},
  };
  for (const auto& row : rows) {
    const Counters before = counters();
    const auto r = run(row.input);
    EXPECT_EQ(r.retval, row.verdict) << row.name << ": want " << xdpActionName(row.verdict)
                                     << ", got " << xdpActionName(r.retval);
    // A dropped frame goes nowhere; its bytes are checked only to show nothing was half-done.
    const auto& want = row.output ? *row.output : row.input;
    EXPECT_EQ(r.out, want) << row.name << ": output frame\n" << describeDiff(want, r.out);
    expectCounted(before, counters(), {row.counter}, row.name);
  }
}

// Until the agent has written mg_globals, no source is a balancer's (an all-zero entry
// would otherwise make 0.0.0.0 one).
TEST_F(XdpDecapTest, OpensNothingBeforeTheAgentWroteItsSettings) {
  writeGlobals(mg_lb_globals{});
  for (const auto& [name, pkt] :
       {std::pair{"ipv4-in-ipv4 from the balancer", clientTcp4(outer4()).build()},
        std::pair{"ipv4-in-ipv4 from 0.0.0.0",
                  clientTcp4(toBackend().ipv4("0.0.0.0", kBackend4)).build()},
        std::pair{"ipv6-in-ipv6 from ::", clientTcp6(toBackend().ipv6("::", kBackend6)).build()}}) {
    const Counters before = counters();
    const auto r = run(pkt);
    EXPECT_EQ(r.retval, XDP_PASS) << name;
    EXPECT_EQ(r.out, pkt) << name << ": passed untouched";
    expectCounted(before, counters(), {MG_DECAP_PASS_FOREIGN_SOURCE}, name);
  }
}

TEST_F(XdpDecapTest, KeepsEthernetAddressesAndSetsEthertypeOfInnerPacket) {
  const auto r = run(clientTcp4(outer6()).build());
  ASSERT_GE(r.out.size(), kEthLen) << "output holds an Ethernet header";
  std::vector<uint8_t> want_eth(kBackendMac.begin(), kBackendMac.end());  // dst: unchanged
  want_eth.insert(want_eth.end(), kLbMac.begin(), kLbMac.end());          // src: unchanged
  want_eth.insert(want_eth.end(), {0x08, 0x00});                          // IPv4, was IPv6
  const std::vector<uint8_t> got_eth(r.out.begin(), r.out.begin() + kEthLen);
  EXPECT_EQ(got_eth, want_eth) << "ethernet header of the decapsulated ipv4-in-ipv6 frame\n"
                               << describeDiff(want_eth, got_eth);
}

TEST_F(XdpDecapTest, CopiesOuterCeIntoEct0InnerIpv4AndKeepsItsChecksumValid) {
  const auto want = clientTcp4(toBackend(), kDscpEf | kCe).build();
  for (const auto& [name, outer, decap] :
       {std::tuple{"ipv4-in-ipv4", outer4(kDscpEf | kCe), MG_DECAP_DECAP_4IN4},
        std::tuple{"ipv4-in-ipv6", outer6(kCe), MG_DECAP_DECAP_4IN6}}) {
    const Counters before = counters();
    const auto r = run(clientTcp4(outer, kDscpEf | kEct0).build());
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << name << ": verdict";
    EXPECT_EQ(r.out, want) << name << ": inner packet marked CE, nothing else changed\n"
                           << describeDiff(want, r.out);
    ASSERT_GE(r.out.size(), kEthLen + kIpv4Len) << name << ": output holds an IPv4 header";
    EXPECT_EQ(ipv4Ecn(r.out), kCe) << name << ": inner ECN field";
    const std::span<const uint8_t> header(r.out.data() + kEthLen, kIpv4Len);
    EXPECT_EQ(onesComplementSum(header), 0xffff) << name << ": inner IPv4 header checksum valid";
    expectCounted(before, counters(), {decap, MG_DECAP_ECN_CE_COPIED}, name);
  }
}

// The incremental checksum update has edge cases at 0x0000 / 0xffff: shifting the IP id
// walks the starting checksum through every value.
TEST_F(XdpDecapTest, CeMarkKeepsIpv4ChecksumValidForEveryStartingChecksum) {
  int bad = 0;
  for (uint32_t id = 0; id <= 0xffff; id++) {
    const auto in = PacketBuilder(outer4(kCe))
                        .ipv4(kClient4, kVip4, {.tos = kEct0, .id = static_cast<uint16_t>(id)})
                        .udp(5353, 53)
                        .build();
    const auto r = run(in);
    const bool ok = r.retval == XDP_PASS && r.out.size() == in.size() - kIpv4Len &&
                    ipv4Ecn(r.out) == kCe &&
                    onesComplementSum({r.out.data() + kEthLen, kIpv4Len}) == 0xffff;
    if (!ok && bad++ < 5) {
      ADD_FAILURE() << "ip id 0x" << std::hex << id
                    << ": CE not set with a valid checksum: " << xdpActionName(r.retval) << "\n"
                    << hexDump(r.out);
    }
  }
  EXPECT_EQ(bad, 0) << "packets out of 65536 with a wrong inner IPv4 header";
}

TEST_F(XdpDecapTest, CopiesOuterCeIntoEct1InnerIpv6TrafficClass) {
  const Counters before = counters();
  const auto r = run(clientTcp6(outer6(kCe), kDscpEf | kEct1).build());
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "verdict";
  const auto want = clientTcp6(toBackend(), kDscpEf | kCe).build();
  EXPECT_EQ(r.out, want) << "inner traffic class CE, flow label and DSCP kept\n"
                         << describeDiff(want, r.out);
  ASSERT_GE(r.out.size(), kEthLen + kIpv6Len) << "output holds an IPv6 header";
  EXPECT_EQ(ipv6TrafficClass(r.out), kDscpEf | kCe) << "inner traffic class";
  expectCounted(before, counters(), {MG_DECAP_DECAP_6IN6, MG_DECAP_ECN_CE_COPIED}, "6in6 CE");
}

// RFC 6040 figure 4: outer ECT(1) over inner ECT(0) gives ECT(1).
TEST_F(XdpDecapTest, CopiesOuterEct1OverInnerEct0) {
  const auto before = counters();
  const auto r4 = run(clientTcp4(outer4(kEct1), kDscpEf | kEct0).build());
  const auto want4 = clientTcp4(toBackend(), kDscpEf | kEct1).build();
  EXPECT_EQ(r4.out, want4) << "ipv4 inner becomes ECT(1)\n" << describeDiff(want4, r4.out);
  ASSERT_GE(r4.out.size(), kEthLen + kIpv4Len);
  EXPECT_EQ(onesComplementSum(std::span(r4.out).subspan(kEthLen, kIpv4Len)), 0xffff)
      << "inner ipv4 checksum still valid";
  const auto r6 = run(clientTcp6(outer6(kDscpEf | kEct1), kEct0).build());
  const auto want6 = clientTcp6(toBackend(), kEct1).build();
  EXPECT_EQ(r6.out, want6) << "ipv6 inner becomes ECT(1)\n" << describeDiff(want6, r6.out);
  EXPECT_EQ(counters()[MG_DECAP_ECN_ECT1_COPIED] - before[MG_DECAP_ECN_ECT1_COPIED], 2u)
      << "both counted";
}

// Every other outer non-CE combination leaves the inner ECN field alone.
TEST_F(XdpDecapTest, LeavesInnerEcnAloneWhenOuterIsNotCe) {
  for (uint8_t outer_ecn : {kNotEct, kEct1, kEct0}) {
    for (uint8_t inner_ecn : {kNotEct, kEct1, kEct0, kCe}) {
      if (outer_ecn == kEct1 && inner_ecn == kEct0) {
        continue;
      }
      const std::string what =
          "outer ECN " + std::to_string(outer_ecn) + ", inner ECN " + std::to_string(inner_ecn);
      const auto r4 = run(clientTcp4(outer4(outer_ecn), kDscpEf | inner_ecn).build());
      const auto want4 = clientTcp4(toBackend(), kDscpEf | inner_ecn).build();
      EXPECT_EQ(r4.retval, XDP_PASS) << what << " (ipv4): got " << xdpActionName(r4.retval);
      EXPECT_EQ(r4.out, want4) << what << " (ipv4): inner unchanged\n"
                               << describeDiff(want4, r4.out);
      const auto r6 = run(clientTcp6(outer6(kDscpEf | outer_ecn), inner_ecn).build());
      const auto want6 = clientTcp6(toBackend(), inner_ecn).build();
      EXPECT_EQ(r6.retval, XDP_PASS) << what << " (ipv6): got " << xdpActionName(r6.retval);
      EXPECT_EQ(r6.out, want6) << what << " (ipv6): inner unchanged\n"
                               << describeDiff(want6, r6.out);
    }
  }
  EXPECT_EQ(counters()[MG_DECAP_ECN_CE_COPIED], 0u) << "no CE mark copied";
  EXPECT_EQ(counters()[MG_DECAP_DROP_ECN], 0u) << "no ECN drop";
}

// An agent upgraded over running pins: a counters map pinned by a build that counted fewer
// things is replaced (its counts restart), while a map that holds state and differs still
// fails the load, naming the way out.
TEST(XdpDecapUpgrade, ReplacesACountersMapOfAnotherBuildAndRefusesAStateMapThatDiffers) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root: loads a BPF program and pins its maps in bpffs";
  }
  auto dir = BpffsDir::create("xdecapup");
  ASSERT_TRUE(dir) << dir.error().message;
  auto pinOld = [&](const char* name, bpf_map_type type, uint32_t value_size, uint32_t entries) {
    const int fd = bpf_map_create(type, name, sizeof(uint32_t), value_size, entries, nullptr);
    ASSERT_GE(fd, 0) << "create " << name << ": " << std::strerror(errno);
    ASSERT_EQ(bpf_obj_pin(fd, dir->pinPath(name).c_str()), 0) << std::strerror(errno);
    ::close(fd);
  };
  pinOld(MG_MAP_DECAP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(uint64_t), MG_DECAP_COUNTER_MAX - 1);
  auto prog = agent::LoadedProgram::load(agent::XdpProgram::kDecap, {dir->path(), 0});
  ASSERT_TRUE(prog) << prog.error().message;
  auto stats = agent::openPinned(dir->pinPath(MG_MAP_DECAP_STATS));
  ASSERT_TRUE(stats) << stats.error().message;
  bpf_map_info info{};
  uint32_t len = sizeof info;
  ASSERT_EQ(bpf_obj_get_info_by_fd(stats->get(), &info, &len), 0);
  EXPECT_EQ(info.max_entries, static_cast<uint32_t>(MG_DECAP_COUNTER_MAX)) << "replaced";

  auto other = BpffsDir::create("xdecapup2");
  ASSERT_TRUE(other) << other.error().message;
  const int fd =
      bpf_map_create(BPF_MAP_TYPE_ARRAY, MG_MAP_GLOBALS, sizeof(uint32_t), 8, 1, nullptr);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(bpf_obj_pin(fd, other->pinPath(MG_MAP_GLOBALS).c_str()), 0) << std::strerror(errno);
  ::close(fd);
  auto refused = agent::LoadedProgram::load(agent::XdpProgram::kDecap, {other->path(), 0});
  ASSERT_FALSE(refused) << "mg_globals of another layout must not be reused or replaced";
  EXPECT_NE(refused.error().message.find("meshgate-agent --detach"), std::string::npos)
      << refused.error().message;
}

}  // namespace
}  // namespace meshgate::test
