// Proves xdp_lb's verdicts and byte-exact output through BPF_PROG_TEST_RUN with a real FIB:
// VIP matching, IPIP encapsulation of every family pair, conntrack across backend changes,
// UDP expiry, the flood guard, ICMP steering, fragments, and every malformed-header drop.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/datapath.h"
#include "agent/lb_maps.h"
#include "meshgate/abi/hash.h"
#include "tests/lib/bpf_run.h"
#include "tests/lib/lb_testbed.h"
#include "tests/lib/packet_builder.h"
#include "tests/lib/xdp_lb_fixture.h"

namespace meshgate::test {
namespace {

constexpr uint32_t kSeed = 7;
constexpr char kConfig[] = R"({
  "hash_seed": 7,
  "conntrack": {"size": 65536, "udp_idle_seconds": 30, "max_inserts_per_cpu_per_second": 0},
  "encap": {"source_v4": "198.18.255.0/24", "source_v6": "fd00:ffff::/96", "ttl": 64},
  "vips": [
    {"name": "web", "address": "198.18.100.1", "port": 80, "protocol": "tcp", "ring_size": 1009,
     "backends": [{"address": "198.18.1.10"}]},
    {"name": "dns", "address": "198.18.100.1", "port": 53, "protocol": "udp", "ring_size": 1009,
     "backends": [{"address": "198.18.1.11"}]},
    {"name": "any-port", "address": "198.18.100.2", "protocol": "tcp", "ring_size": 1009,
     "backends": [{"address": "198.18.1.12"}]},
    {"name": "web6", "address": "fd00:100::1", "port": 80, "protocol": "tcp", "ring_size": 1009,
     "backends": [{"address": "fd00:1::13"}]},
    {"name": "v4-over-v6", "address": "198.18.100.3", "port": 80, "protocol": "tcp",
     "ring_size": 1009, "backends": [{"address": "fd00:1::14"}]},
    {"name": "same-side", "address": "198.18.100.4", "port": 80, "protocol": "tcp",
     "ring_size": 1009, "backends": [{"address": "198.18.0.20"}]},
    {"name": "no-neigh", "address": "198.18.100.5", "port": 80, "protocol": "tcp",
     "ring_size": 1009, "backends": [{"address": "198.18.1.99"}]},
    {"name": "drained", "address": "198.18.100.6", "port": 80, "protocol": "tcp",
     "ring_size": 1009, "backends": [{"address": "198.18.1.15", "weight": 0}]},
    {"name": "dns6", "address": "fd00:100::1", "port": 53, "protocol": "udp", "ring_size": 1009,
     "backends": [{"address": "fd00:1::16"}]},
    {"name": "web6-multi", "address": "fd00:100::2", "port": 80, "protocol": "tcp",
     "ring_size": 1009, "backends": [{"address": "fd00:1::17"}, {"address": "fd00:1::18"}]}
  ]
})";

const MacAddr kClientMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

mg_flow_key flowKey(const std::string& src, const std::string& dst, uint16_t sport, uint16_t dport,
                    uint8_t proto) {
  mg_flow_key k{};
  const bool v6 = src.find(':') != std::string::npos;
  k.family = v6 ? MG_AF_INET6 : MG_AF_INET;
  inet_pton(v6 ? AF_INET6 : AF_INET, src.c_str(), k.src);
  inet_pton(v6 ? AF_INET6 : AF_INET, dst.c_str(), k.dst);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  return k;
}

// The outer source the data path must choose for a flow: prefix | hash host bits.
std::string outerSource(const mg_flow_key& k) {
  const uint32_t h = mg_flow_hash(&k, kSeed);
  if (k.family == MG_AF_INET && true) {
    return "198.18.255." + std::to_string(h & 0xff);
  }
  return "";
}

std::string outerSource6(const mg_flow_key& k) {
  const uint32_t h = mg_flow_hash(&k, kSeed);
  uint8_t a[16] = {0xfd, 0x00, 0xff, 0xff};
  a[12] = h >> 24;
  a[13] = h >> 16;
  a[14] = h >> 8;
  a[15] = h;
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, a, buf, sizeof(buf));
  return buf;
}

std::vector<uint8_t> innerOf(const std::vector<uint8_t>& frame) {
  return {frame.begin() + 14, frame.end()};
}

// The destination of an encapsulated frame's outer IPv4 or IPv6 header: where it was sent.
std::string outerDestination(const std::vector<uint8_t>& frame) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (frame.size() >= 14 + 20 && frame[12] == 0x08 && frame[13] == 0x00) {
    inet_ntop(AF_INET, &frame[14 + 16], buf, sizeof(buf));
  } else if (frame.size() >= 14 + 40 && frame[12] == 0x86 && frame[13] == 0xdd) {
    inet_ntop(AF_INET6, &frame[14 + 24], buf, sizeof(buf));
  }
  return buf;
}

// The test bed's number n of a backend address ("198.18.1.n", "fd00:1::n"): its MAC.
int backendNumber(const std::string& addr) {
  return std::stoi(addr.substr(addr.find_last_of(".:") + 1));
}

class XdpLbTest : public XdpLbFixture {
 protected:
  void SetUp() override { setUpWith("xlb", kConfig); }

  std::vector<uint8_t> tcp4(const std::string& src, const std::string& dst, uint16_t sport,
                            uint16_t dport, uint8_t flags, Ipv4Opts ip = {}) {
    return PacketBuilder()
        .eth(kClientMac, bed_->ingressMac())
        .ipv4(src, dst, ip)
        .tcp(sport, dport, {.flags = flags, .seq = 1000})
        .payload("hello")
        .build();
  }
  // eth(lb veth1 -> backend n) + IPv4 outer + the frame's IP packet.
  // The outer IPv4 header always has DF set (see mg_encap).
  std::vector<uint8_t> encap4(const std::vector<uint8_t>& in, const mg_flow_key& k,
                              const std::string& backend, int n, uint8_t tos = 0) {
    return PacketBuilder()
        .eth(bed_->backendSideMac(), LbTestBed::backendMac(n))
        .ipv4(outerSource(k), backend,
              {.ttl = 64, .tos = tos, .dont_fragment = true, .protocol = kIpProtoIpip})
        .payload(innerOf(in))
        .build();
  }
  std::vector<uint8_t> encap6(const std::vector<uint8_t>& in, const mg_flow_key& k,
                              const std::string& backend, int n, uint8_t next_header,
                              uint8_t tclass = 0) {
    return PacketBuilder()
        .eth(bed_->backendSideMac(), LbTestBed::backendMac(n))
        .ipv6(outerSource6(k), backend,
              {.hop_limit = 64,
               .traffic_class = tclass,
               .flow_label = mg_flow_hash(&k, kSeed) & 0xfffff,
               .next_header = next_header})
        .payload(innerOf(in))
        .build();
  }
  // Rewrites the config with a different backend set for one VIP.
  void setBackends(const std::string& vip, const std::string& backends_json) {
    std::string cfg = kConfig;
    const auto at = cfg.find("\"name\": \"" + vip + "\"");
    ASSERT_NE(at, std::string::npos) << vip;
    const auto from = cfg.find('[', cfg.find("\"backends\"", at));
    cfg.replace(from, cfg.find(']', from) + 1 - from, backends_json);
    auto applied = bed_->apply(cfg);
    ASSERT_TRUE(applied) << applied.error().message;
  }
  void setWebBackends(const std::string& backends_json) { setBackends("web", backends_json); }
  std::optional<uint32_t> vipId(const std::string& vip) {
    for (const auto& v : bed_->config()->vips) {
      if (v.name == vip) {
        return bed_->state().vipId(v);
      }
    }
    return std::nullopt;
  }
  // The backend the installed table gives a flow of a VIP (slot = hash % M).
  uint32_t tableBackend(const mg_flow_key& k, const std::string& vip = "web") {
    auto ring = agent::readRing(maps_->rings.get(), vipId(vip).value());
    EXPECT_TRUE(ring && !ring->empty());
    return ring && !ring->empty() ? (*ring)[mg_flow_hash(&k, kSeed) % ring->size()] : 0;
  }
  uint32_t backendId(const std::string& addr, const std::string& vip = "web") {
    return *bed_->state().backendId(vipId(vip).value(), *agent::IpAddr::parse(addr));
  }
  // The first client port from `first` whose flow the VIP's table gives to `backend`.
  std::optional<uint16_t> portOnBackend(mg_flow_key k, uint16_t first, const std::string& backend,
                                        const std::string& vip) {
    for (uint32_t p = first; p < first + 200u; p++) {
      k.sport = htons(p);
      if (tableBackend(k, vip) == backendId(backend, vip)) {
        return p;
      }
    }
    return std::nullopt;
  }
};

TEST_F(XdpLbTest, EncapsulatesTcpSynToIpv4VipAndRedirectsToBackendInterface) {
  const auto in = tcp4("198.18.0.2", "198.18.100.1", 40000, 80, kTcpSyn);
  const auto k = flowKey("198.18.0.2", "198.18.100.1", 40000, 80, kIpProtoTcp);
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "verdict";
  const auto want = encap4(in, k, "198.18.1.10", 10);
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_TCP_SYN), 1u) << "syn counted";
  EXPECT_EQ(counter(MG_LB_CT_INSERT), 1u) << "flow tracked";
  EXPECT_EQ(counter(MG_LB_REDIRECT), 1u) << "redirect counted";
}

TEST_F(XdpLbTest, EncapsulatesUdpToUdpVip) {
  const auto in = PacketBuilder()
                      .eth(kClientMac, bed_->ingressMac())
                      .ipv4("198.18.0.2", "198.18.100.1")
                      .udp(5353, 53)
                      .payload("query")
                      .build();
  const auto k = flowKey("198.18.0.2", "198.18.100.1", 5353, 53, kIpProtoUdp);
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT");
  const auto want = encap4(in, k, "198.18.1.11", 11);
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
}

TEST_F(XdpLbTest, PortlessVipMatchesAnyDestinationPort) {
  for (uint16_t port : {1, 443, 8080}) {
    const auto in = tcp4("198.18.0.2", "198.18.100.2", 40001, port, kTcpSyn);
    const auto k = flowKey("198.18.0.2", "198.18.100.2", 40001, port, kIpProtoTcp);
    const auto r = run(in);
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "port " << port;
    const auto want = encap4(in, k, "198.18.1.12", 12);
    EXPECT_EQ(r.out, want) << "port " << port << describeDiff(want, r.out);
  }
}

TEST_F(XdpLbTest, EncapsulatesIpv6InIpv6) {
  const auto in = PacketBuilder()
                      .eth(kClientMac, bed_->ingressMac())
                      .ipv6("fd00::2", "fd00:100::1", {.traffic_class = 0x28})
                      .tcp(40000, 80, {.flags = kTcpSyn})
                      .build();
  const auto k = flowKey("fd00::2", "fd00:100::1", 40000, 80, kIpProtoTcp);
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT");
  const auto want = encap6(in, k, "fd00:1::13", 13, kIpProtoIpv6, 0x28);
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
}

TEST_F(XdpLbTest, EncapsulatesIpv6UdpInIpv6AndKeepsTheEstablishedFlowOnItsBackend) {
  const auto in = PacketBuilder()
                      .eth(kClientMac, bed_->ingressMac())
                      .ipv6("fd00::2", "fd00:100::1", {.traffic_class = 0xb8})
                      .udp(5353, 53)
                      .payload("query")
                      .build();
  const auto k = flowKey("fd00::2", "fd00:100::1", 5353, 53, kIpProtoUdp);
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "new flow";
  const auto want = encap6(in, k, "fd00:1::16", 16, kIpProtoIpv6, 0xb8);
  EXPECT_EQ(r.out, want) << "new flow" << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_CT_INSERT), 1u) << "the UDP flow is tracked";
  EXPECT_EQ(counter(MG_LB_CT_HIT), 0u);

  // A heavy new backend takes the flow's table slot: only conntrack keeps it on fd00:1::16.
  setBackends("dns6", R"([{"address": "fd00:1::16"}, {"address": "fd00:1::19", "weight": 1000}])");
  ASSERT_NE(tableBackend(k, "dns6"), backendId("fd00:1::16", "dns6")) << "the table moved it";
  const auto r2 = run(in);
  EXPECT_STREQ(xdpActionName(r2.retval), "XDP_REDIRECT") << "established flow";
  EXPECT_EQ(r2.out, want) << "established flow stays" << describeDiff(want, r2.out);
  EXPECT_EQ(counter(MG_LB_CT_HIT), 1u) << "conntrack hit";
  EXPECT_EQ(counter(MG_LB_CT_INSERT), 1u) << "a hit writes no new entry";
}

TEST_F(XdpLbTest, EncapsulatesIpv4InIpv6ForIpv6Backend) {
  const auto in = tcp4("198.18.0.2", "198.18.100.3", 40000, 80, kTcpSyn);
  const auto k = flowKey("198.18.0.2", "198.18.100.3", 40000, 80, kIpProtoTcp);
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT");
  const auto want = encap6(in, k, "fd00:1::14", 14, kIpProtoIpip);
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
}

TEST_F(XdpLbTest, CopiesDscpEcnToOuterHeaderSetsDfAndLeavesInnerTtl) {
  // Inner DF clear: the outer header still has DF, since a fragmented outer packet could
  // not be decapsulated on the backend.
  const auto in = tcp4("198.18.0.2", "198.18.100.1", 40002, 80, kTcpSyn,
                       {.ttl = 9, .tos = 0xb9, .dont_fragment = false});
  const auto k = flowKey("198.18.0.2", "198.18.100.1", 40002, 80, kIpProtoTcp);
  const auto r = run(in);
  const auto want = encap4(in, k, "198.18.1.10", 10, 0xb9);
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
}

TEST_F(XdpLbTest, UsesXdpTxWhenBackendIsBehindIngressInterface) {
  const auto in = tcp4("198.18.0.2", "198.18.100.4", 40000, 80, kTcpSyn);
  const auto k = flowKey("198.18.0.2", "198.18.100.4", 40000, 80, kIpProtoTcp);
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_TX");
  const auto want = PacketBuilder()
                        .eth(bed_->ingressMac(), LbTestBed::backendMac(20))
                        .ipv4(outerSource(k), "198.18.0.20",
                              {.ttl = 64, .dont_fragment = true, .protocol = kIpProtoIpip})
                        .payload(innerOf(in))
                        .build();
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_TX), 1u);
}

TEST_F(XdpLbTest, PassesEncapsulatedPacketToStackWhenNeighbourUnresolved) {
  const auto in = tcp4("198.18.0.2", "198.18.100.5", 40000, 80, kTcpSyn);
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS");
  EXPECT_EQ(r.out.size(), in.size() + 20) << "passed encapsulated";
  EXPECT_EQ(counter(MG_LB_PASS_NO_NEIGH), 1u);
}

TEST_F(XdpLbTest, PassesNonVipTrafficUntouched) {
  const std::vector<std::vector<uint8_t>> packets = {
      tcp4("198.18.0.2", "198.18.0.1", 40000, 22, kTcpSyn),    // the host itself
      tcp4("198.18.0.2", "198.18.100.1", 40000, 81, kTcpSyn),  // VIP address, other port
      PacketBuilder()
          .eth(kClientMac, bed_->ingressMac())
          .ipv4("198.18.0.2", "198.18.100.1")
          .udp(1, 80)
          .build(),  // TCP VIP, UDP packet
      PacketBuilder()
          .eth(kClientMac, bed_->ingressMac(), 0x0806)
          .payload(std::string(28, 'a'))
          .build(),  // ARP
  };
  for (size_t i = 0; i < packets.size(); i++) {
    const auto r = run(packets[i]);
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "packet " << i;
    EXPECT_EQ(r.out, packets[i]) << "packet " << i << " untouched";
  }
  EXPECT_EQ(counter(MG_LB_PASS_NOT_VIP), 3u);
  EXPECT_EQ(counter(MG_LB_PASS_NOT_IP), 1u);
}

TEST_F(XdpLbTest, DoesNotAnswerIcmpEcho) {
  for (const char* dst : {"198.18.100.1", "198.18.0.1", "198.18.200.200"}) {
    const auto in = PacketBuilder()
                        .eth(kClientMac, bed_->ingressMac())
                        .ipv4("198.18.0.2", dst)
                        .icmp(8, 0, 0x00010001)
                        .payload("ping")
                        .build();
    const auto r = run(in);
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << dst;
    EXPECT_EQ(r.out, in) << dst << ": echo left to the stack, untouched";
  }
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 3u);
}

TEST_F(XdpLbTest, EstablishedFlowKeepsBackendWhenBackendsAreAdded) {
  // Find a flow that the bigger table sends elsewhere, so the test can fail.
  setWebBackends(R"([{"address": "198.18.1.10"}, {"address": "198.18.1.11"}])");
  std::optional<uint16_t> port;
  for (uint16_t p = 40000; p < 40100 && !port; p++) {
    const auto k = flowKey("198.18.0.2", "198.18.100.1", p, 80, kIpProtoTcp);
    if (tableBackend(k) == backendId("198.18.1.10")) {
      port = p;
    }
  }
  ASSERT_TRUE(port) << "a flow on backend .10";
  run(tcp4("198.18.0.2", "198.18.100.1", *port, 80, kTcpSyn));
  // Add two backends; make sure the table now sends this flow elsewhere.
  setWebBackends(R"([{"address": "198.18.1.10"}, {"address": "198.18.1.11"},
                     {"address": "198.18.1.12", "weight": 1000}])");
  const auto k = flowKey("198.18.0.2", "198.18.100.1", *port, 80, kIpProtoTcp);
  ASSERT_NE(tableBackend(k), backendId("198.18.1.10")) << "weight 1000 takes most slots";

  const auto ack = tcp4("198.18.0.2", "198.18.100.1", *port, 80, kTcpAck);
  const auto r = run(ack);
  const auto want = encap4(ack, k, "198.18.1.10", 10);
  EXPECT_EQ(r.out, want) << "established flow stays" << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_CT_HIT), 1u);

  // A new SYN on the same 5-tuple chooses afresh.
  const auto syn = tcp4("198.18.0.2", "198.18.100.1", *port, 80, kTcpSyn);
  const auto r2 = run(syn);
  const auto want2 = encap4(syn, k, "198.18.1.12", 12);
  EXPECT_EQ(r2.out, want2) << "SYN re-chooses" << describeDiff(want2, r2.out);
}

TEST_F(XdpLbTest, FlowsOfRemovedBackendMoveAndOthersStay) {
  setWebBackends(R"([{"address": "198.18.1.10"}, {"address": "198.18.1.11"}])");
  std::optional<uint16_t> on10, on11;
  for (uint16_t p = 41000; p < 41100; p++) {
    const auto k = flowKey("198.18.0.2", "198.18.100.1", p, 80, kIpProtoTcp);
    (tableBackend(k) == backendId("198.18.1.10") ? on10 : on11) = p;
  }
  ASSERT_TRUE(on10 && on11);
  run(tcp4("198.18.0.2", "198.18.100.1", *on10, 80, kTcpSyn));
  run(tcp4("198.18.0.2", "198.18.100.1", *on11, 80, kTcpSyn));
  setWebBackends(R"([{"address": "198.18.1.11"}, {"address": "198.18.1.12"}])");

  const auto ack11 = tcp4("198.18.0.2", "198.18.100.1", *on11, 80, kTcpAck);
  const auto k11 = flowKey("198.18.0.2", "198.18.100.1", *on11, 80, kIpProtoTcp);
  EXPECT_EQ(run(ack11).out, encap4(ack11, k11, "198.18.1.11", 11)) << "survivor's flow stays";

  const auto ack10 = tcp4("198.18.0.2", "198.18.100.1", *on10, 80, kTcpAck);
  const auto k10 = flowKey("198.18.0.2", "198.18.100.1", *on10, 80, kIpProtoTcp);
  const uint32_t now_id = tableBackend(k10);
  const std::string now = now_id == backendId("198.18.1.11") ? "198.18.1.11" : "198.18.1.12";
  const auto r = run(ack10);
  EXPECT_EQ(r.out, encap4(ack10, k10, now, now == "198.18.1.11" ? 11 : 12))
      << "removed backend's flow follows the table";
  EXPECT_EQ(counter(MG_LB_CT_BACKEND_GONE), 1u);
}

TEST_F(XdpLbTest, DrainedBackendKeepsFlowsButVipWithNoWeightDrops) {
  const auto r = run(tcp4("198.18.0.2", "198.18.100.6", 40000, 80, kTcpSyn));
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP");
  EXPECT_EQ(drops(MG_LB_DROP_NO_RING), 1u) << "no slot for a weight-0 backend";
}

TEST_F(XdpLbTest, UdpEntryIdlePastTimeoutChoosesAgain) {
  const auto in = PacketBuilder()
                      .eth(kClientMac, bed_->ingressMac())
                      .ipv4("198.18.0.2", "198.18.100.1")
                      .udp(6000, 53)
                      .payload("q")
                      .build();
  run(in);
  ASSERT_EQ(counter(MG_LB_CT_INSERT), 1u);
  run(in);
  EXPECT_EQ(counter(MG_LB_CT_HIT), 1u) << "fresh entry hits";
  // Age the entry past udp_idle (30 s) instead of waiting.
  auto key = flowKey("198.18.0.2", "198.18.100.1", 6000, 53, kIpProtoUdp);
  mg_flow_state st{};
  ASSERT_EQ(bpf_map_lookup_elem(maps_->conntrack.get(), &key, &st), 0);
  st.atime_ns -= 31ull * 1000000000ull;
  ASSERT_EQ(bpf_map_update_elem(maps_->conntrack.get(), &key, &st, BPF_EXIST), 0);
  run(in);
  EXPECT_EQ(counter(MG_LB_CT_UDP_EXPIRED), 1u) << "idle entry expired";
  EXPECT_EQ(counter(MG_LB_CT_INSERT), 2u) << "and re-recorded";
}

TEST_F(XdpLbTest, FloodGuardCapsConntrackInsertsButStillForwards) {
  std::string cfg = kConfig;
  const std::string from = R"("max_inserts_per_cpu_per_second": 0)";
  cfg.replace(cfg.find(from), from.size(), R"("max_inserts_per_cpu_per_second": 2)");
  ASSERT_TRUE(bed_->apply(cfg));
  for (uint16_t p = 0; p < 5; p++) {
    const auto r = run(tcp4("198.18.0.2", "198.18.100.1", 42000 + p, 80, kTcpSyn));
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "syn " << p << " forwarded";
  }
  EXPECT_EQ(counter(MG_LB_CT_INSERT), 2u) << "two inserts allowed this second";
  EXPECT_EQ(counter(MG_LB_CT_INSERT_SKIPPED), 3u) << "the rest skipped";
}

// Two flows on different backends, then a table change that moves both: an ICMP error
// about each flow must reach that flow's backend, which only the quoted tuple (reversed)
// and its conntrack entry can name.
TEST_F(XdpLbTest, IcmpFragNeededReachesTheBackendOfItsFlow) {
  setWebBackends(R"([{"address": "198.18.1.10"}, {"address": "198.18.1.11"}])");
  const auto base = flowKey("198.18.0.2", "198.18.100.1", 0, 80, kIpProtoTcp);
  const std::vector<std::string> backends = {"198.18.1.10", "198.18.1.11"};
  std::vector<std::pair<uint16_t, std::string>> flows;  // client port, outer destination
  for (const auto& be : backends) {
    const auto port = portOnBackend(base, 43000, be, "web");
    ASSERT_TRUE(port) << "a flow on " << be;
    const auto r = run(tcp4("198.18.0.2", "198.18.100.1", *port, 80, kTcpSyn));
    ASSERT_EQ(outerDestination(r.out), be) << "the SYN went to " << be;
    flows.emplace_back(*port, outerDestination(r.out));
  }
  setWebBackends(R"([{"address": "198.18.1.10"}, {"address": "198.18.1.11"},
                     {"address": "198.18.1.12", "weight": 1000}])");
  for (const auto& [port, dst] : flows) {
    const auto k = flowKey("198.18.0.2", "198.18.100.1", port, 80, kIpProtoTcp);
    ASSERT_NE(tableBackend(k), backendId(dst)) << "the table moved the flow on " << dst;
  }

  for (const auto& [port, dst] : flows) {
    // A router tells the VIP that its reply to the client needs fragmenting.
    const auto icmp = PacketBuilder()
                          .eth(kClientMac, bed_->ingressMac())
                          .ipv4("198.18.0.254", "198.18.100.1")
                          .icmp(3, 4, 1400)
                          .ipv4("198.18.100.1", "198.18.0.2")
                          .tcp(80, port, {.flags = kTcpAck})
                          .payload(std::string(64, 'x'))
                          .icmpQuoteLimit(28)
                          .build();
    const auto k = flowKey("198.18.0.2", "198.18.100.1", port, 80, kIpProtoTcp);
    const auto r = run(icmp);
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "port " << port;
    EXPECT_EQ(outerDestination(r.out), dst) << "the ICMP error goes where its flow went";
    const auto want = encap4(icmp, k, dst, backendNumber(dst));
    EXPECT_EQ(r.out, want) << "port " << port << describeDiff(want, r.out);
  }
  EXPECT_EQ(counter(MG_LB_CT_HIT), 2u) << "both steered by conntrack";
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 2u);
  EXPECT_EQ(counter(MG_LB_CT_INSERT), 2u) << "ICMP errors start no flow";
}

TEST_F(XdpLbTest, Icmpv6PacketTooBigReachesTheBackendOfItsFlow) {
  const auto base = flowKey("fd00::2", "fd00:100::2", 0, 80, kIpProtoTcp);
  const std::vector<std::string> backends = {"fd00:1::17", "fd00:1::18"};
  std::vector<std::pair<uint16_t, std::string>> flows;  // client port, outer destination
  for (const auto& be : backends) {
    const auto port = portOnBackend(base, 43000, be, "web6-multi");
    ASSERT_TRUE(port) << "a flow on " << be;
    const auto syn = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv6("fd00::2", "fd00:100::2")
                         .tcp(*port, 80, {.flags = kTcpSyn})
                         .build();
    const auto r = run(syn);
    ASSERT_EQ(outerDestination(r.out), be) << "the SYN went to " << be;
    flows.emplace_back(*port, outerDestination(r.out));
  }
  setBackends("web6-multi", R"([{"address": "fd00:1::17"}, {"address": "fd00:1::18"},
                               {"address": "fd00:1::19", "weight": 1000}])");
  for (const auto& [port, dst] : flows) {
    const auto k = flowKey("fd00::2", "fd00:100::2", port, 80, kIpProtoTcp);
    ASSERT_NE(tableBackend(k, "web6-multi"), backendId(dst, "web6-multi"))
        << "the table moved the flow on " << dst;
  }

  for (const auto& [port, dst] : flows) {
    // A router tells the VIP that its reply to the client is too big for the path.
    const auto icmp = PacketBuilder()
                          .eth(kClientMac, bed_->ingressMac())
                          .ipv6("fd00::fe", "fd00:100::2")
                          .icmp6(2, 0, 1280)
                          .ipv6("fd00:100::2", "fd00::2")
                          .tcp(80, port, {.flags = kTcpAck})
                          .build();
    const auto k = flowKey("fd00::2", "fd00:100::2", port, 80, kIpProtoTcp);
    const auto r = run(icmp);
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "port " << port;
    EXPECT_EQ(outerDestination(r.out), dst) << "the ICMPv6 error goes where its flow went";
    const auto want = encap6(icmp, k, dst, backendNumber(dst), kIpProtoIpv6);
    EXPECT_EQ(r.out, want) << "port " << port << describeDiff(want, r.out);
  }
  EXPECT_EQ(counter(MG_LB_CT_HIT), 2u) << "both steered by conntrack";
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 2u);
  EXPECT_EQ(counter(MG_LB_CT_INSERT), 2u) << "ICMPv6 errors start no flow";
}

TEST_F(XdpLbTest, LaterFragmentsFollowTheirFirstFragment) {
  const auto first = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv4("198.18.0.2", "198.18.100.1", {.id = 777, .more_fragments = true})
                         .tcp(44000, 80, {.flags = kTcpAck})
                         .payload(std::string(16, 'a'))
                         .build();
  const auto second = PacketBuilder()
                          .eth(kClientMac, bed_->ingressMac())
                          .ipv4("198.18.0.2", "198.18.100.1",
                                {.id = 777, .frag_offset_bytes = 40, .protocol = kIpProtoTcp})
                          .payload(std::string(24, 'b'))
                          .build();
  const auto k = flowKey("198.18.0.2", "198.18.100.1", 44000, 80, kIpProtoTcp);
  EXPECT_EQ(run(first).out, encap4(first, k, "198.18.1.10", 10));
  // The later fragment has no ports: it is hashed on addresses only but must follow.
  mg_flow_key kf = k;
  kf.sport = kf.dport = 0;
  const auto r = run(second);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT");
  const auto want = encap4(second, kf, "198.18.1.10", 10);
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_FRAG_FIRST), 1u);
  EXPECT_EQ(counter(MG_LB_FRAG_FOLLOWED), 1u);

  const auto orphan = PacketBuilder()
                          .eth(kClientMac, bed_->ingressMac())
                          .ipv4("198.18.0.2", "198.18.100.1",
                                {.id = 778, .frag_offset_bytes = 40, .protocol = kIpProtoTcp})
                          .payload(std::string(24, 'c'))
                          .build();
  // Before its first (reordered, or the first was lost): it may be the VIP's, so it must
  // not reach the stack, and cannot be balanced without ports.
  const auto ro = run(orphan);
  EXPECT_STREQ(xdpActionName(ro.retval), "XDP_DROP") << "untracked later fragment";
  EXPECT_EQ(ro.out, orphan) << "untouched";
  EXPECT_EQ(drops(MG_LB_DROP_FRAG_UNTRACKED), 1u);
  EXPECT_EQ(counter(MG_LB_FRAG_FOLLOWED), 1u) << "only the tracked one followed";
}

// Fragments of packets that are not a VIP's go to the stack: the later fragments of a
// first that was passed (a VIP's address, another port) follow it there, and a later
// fragment with no first is dropped only where a VIP has its address and protocol (there it
// may be a VIP's: one for another port that overtook its first is dropped too).
TEST_F(XdpLbTest, FragmentsOfPacketsNotForAVipArePassed) {
  auto later = [&](const std::string& dst, uint16_t id, uint8_t proto) {
    return PacketBuilder()
        .eth(kClientMac, bed_->ingressMac())
        .ipv4("198.18.0.2", dst, {.id = id, .frag_offset_bytes = 40, .protocol = proto})
        .payload(std::string(24, 'b'))
        .build();
  };
  // The first fragment of a packet to the VIP address on a port no VIP has, then its rest.
  const auto first = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv4("198.18.0.2", "198.18.100.1", {.id = 500, .more_fragments = true})
                         .tcp(44000, 81, {.flags = kTcpSyn})
                         .payload(std::string(16, 'a'))
                         .build();
  const auto rest = later("198.18.100.1", 500, kIpProtoTcp);
  // A first fragment to an address whose VIPs have another protocol: nothing to track.
  const auto other_proto =
      PacketBuilder()
          .eth(kClientMac, bed_->ingressMac())
          .ipv4("198.18.0.2", "198.18.100.2", {.id = 505, .more_fragments = true})
          .udp(44000, 80)
          .payload(std::string(16, 'a'))
          .build();
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> passed = {
      {"first fragment, VIP address, other port", first},
      {"its later fragment", rest},
      {"first fragment, VIP address, other protocol", other_proto},
      {"its later fragment", later("198.18.100.2", 505, kIpProtoUdp)},
      {"no first, the host's own address", later("198.18.0.1", 501, kIpProtoTcp)},
      {"no first, VIP address, a protocol no VIP there has", later("198.18.100.1", 502, 1)},
      {"no first, port-less TCP VIP's address, UDP", later("198.18.100.2", 503, kIpProtoUdp)},
  };
  for (const auto& [what, pkt] : passed) {
    const auto r = run(pkt);
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << what;
    EXPECT_EQ(r.out, pkt) << what << ": untouched";
  }
  EXPECT_EQ(counter(MG_LB_FRAG_FIRST), 1u)
      << "the first to the VIP's address and protocol was tracked, the other one not";
  EXPECT_EQ(counter(MG_LB_DROP), 0u);
  // The same address and protocol as the port-less VIP: that VIP's, for all it can tell.
  const auto orphan = later("198.18.100.2", 504, kIpProtoTcp);
  const auto r = run(orphan);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "no first, port-less TCP VIP's own";
  EXPECT_EQ(drops(MG_LB_DROP_FRAG_UNTRACKED), 1u);
}

// A later fragment whose first went to a backend that has since been removed is not
// forwarded: that backend's id names nothing live now.
TEST_F(XdpLbTest, LaterFragmentOfARemovedBackendIsDropped) {
  const auto first = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv4("198.18.0.2", "198.18.100.1", {.id = 600, .more_fragments = true})
                         .tcp(44100, 80, {.flags = kTcpSyn})
                         .payload(std::string(16, 'a'))
                         .build();
  const auto rest = PacketBuilder()
                        .eth(kClientMac, bed_->ingressMac())
                        .ipv4("198.18.0.2", "198.18.100.1",
                              {.id = 600, .frag_offset_bytes = 40, .protocol = kIpProtoTcp})
                        .payload(std::string(24, 'b'))
                        .build();
  const auto k = flowKey("198.18.0.2", "198.18.100.1", 44100, 80, kIpProtoTcp);
  EXPECT_EQ(run(first).out, encap4(first, k, "198.18.1.10", 10));
  setWebBackends(R"([{"address": "198.18.1.11"}])");
  const auto r = run(rest);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP");
  EXPECT_EQ(drops(MG_LB_DROP_NO_BACKEND), 1u);
  EXPECT_EQ(counter(MG_LB_FRAG_FOLLOWED), 0u);
}

TEST_F(XdpLbTest, FragmentsFollowTheirFirstFragmentAlsoOnEstablishedFlows) {
  const auto udp = PacketBuilder()
                       .eth(kClientMac, bed_->ingressMac())
                       .ipv4("198.18.0.2", "198.18.100.1")
                       .udp(5353, 53)
                       .payload("q")
                       .build();
  run(udp);  // the flow is now tracked: its next first fragment hits conntrack
  const auto first = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv4("198.18.0.2", "198.18.100.1", {.id = 900, .more_fragments = true})
                         .udp(5353, 53)
                         .payload(std::string(32, 'a'))
                         .build();
  const auto later = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv4("198.18.0.2", "198.18.100.1",
                               {.id = 900, .frag_offset_bytes = 40, .protocol = kIpProtoUdp})
                         .payload(std::string(24, 'b'))
                         .build();
  EXPECT_STREQ(xdpActionName(run(first).retval), "XDP_REDIRECT");
  EXPECT_EQ(counter(MG_LB_CT_HIT), 1u) << "the first fragment hit conntrack";
  const auto r = run(later);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "the later fragment follows";
  EXPECT_EQ(counter(MG_LB_FRAG_FOLLOWED), 1u);
}

// IPv6 fragments as IPv4 ones: the first (fragment header, offset 0, M set) is balanced by
// its ports, later ones follow it by (source, destination, identification, next header), one
// that arrives before its first is dropped where a VIP has its address and protocol, and an
// atomic fragment (offset 0, no M: RFC 6946) is a whole packet.
TEST_F(XdpLbTest, Ipv6FragmentsFollowTheirFirstFragment) {
  const std::string vip = "fd00:100::2", client = "fd00::2";
  // A client port whose flow the table gives another backend than the addresses alone
  // would: a later fragment that were hashed instead of followed would go astray.
  const auto by_address = tableBackend(flowKey(client, vip, 0, 0, kIpProtoTcp), "web6-multi");
  uint16_t sport = 0;
  for (uint16_t p = 44000; p < 44200 && sport == 0; p++) {
    if (tableBackend(flowKey(client, vip, p, 80, kIpProtoTcp), "web6-multi") != by_address) {
      sport = p;
    }
  }
  ASSERT_NE(sport, 0) << "no port whose flow the table gives the other backend";
  const auto k = flowKey(client, vip, sport, 80, kIpProtoTcp);
  const std::string dst = tableBackend(k, "web6-multi") == backendId("fd00:1::17", "web6-multi")
                              ? "fd00:1::17"
                              : "fd00:1::18";
  auto later = [&](uint32_t id, const std::string& to) {
    auto pkt = PacketBuilder()
                   .eth(kClientMac, bed_->ingressMac())
                   .ipv6(client, to)
                   .ipv6Frag(24, false, id)
                   .payload(std::string(24, 'b'))
                   .build();
    pkt[14 + 40] = kIpProtoTcp;  // the fragment header names the fragmentable part's TCP
    return pkt;
  };
  const auto first = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv6(client, vip)
                         .ipv6Frag(0, true, 0x01020304)
                         .tcp(sport, 80, {.flags = kTcpAck})
                         .payload(std::string(16, 'a'))
                         .build();
  auto want = encap6(first, k, dst, backendNumber(dst), kIpProtoIpv6);
  auto r = run(first);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT");
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
  mg_flow_key kf = k;
  kf.sport = kf.dport = 0;
  const auto rest = later(0x01020304, vip);
  want = encap6(rest, kf, dst, backendNumber(dst), kIpProtoIpv6);
  r = run(rest);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "the later fragment follows";
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_FRAG_FIRST), 1u);
  EXPECT_EQ(counter(MG_LB_FRAG_FOLLOWED), 1u);

  const auto orphan = later(0x0a0b0c0d, vip);
  r = run(orphan);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "before its first, to a VIP";
  EXPECT_EQ(r.out, orphan) << "untouched";
  EXPECT_EQ(drops(MG_LB_DROP_FRAG_UNTRACKED), 1u);
  // The identification is 32 bits: ids that share either half with the first's are others.
  for (uint32_t id : {0x0102ffffu, 0xffff0304u}) {
    r = run(later(id, vip));
    EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "id " << std::hex << id;
  }
  EXPECT_EQ(drops(MG_LB_DROP_FRAG_UNTRACKED), 3u);
  EXPECT_EQ(counter(MG_LB_FRAG_FOLLOWED), 1u) << "none of them followed the first";
  const auto elsewhere = later(0x0a0b0c0e, "fd00::1");
  r = run(elsewhere);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "before its first, not to a VIP";
  EXPECT_EQ(r.out, elsewhere) << "untouched";

  const auto atomic = PacketBuilder()
                          .eth(kClientMac, bed_->ingressMac())
                          .ipv6(client, "fd00:100::1")
                          .ipv6Frag(0, false, 7)
                          .tcp(sport, 80, {.flags = kTcpSyn})
                          .build();
  const auto ka = flowKey(client, "fd00:100::1", sport, 80, kIpProtoTcp);
  want = encap6(atomic, ka, "fd00:1::13", 13, kIpProtoIpv6);
  r = run(atomic);
  EXPECT_EQ(r.out, want) << "an atomic fragment is balanced as a whole packet"
                         << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_FRAG_FIRST), 1u) << "and not tracked";
}

// The IPv6 fragment cases around the main one: a first that is passed (a VIP's address,
// another port) takes its later fragments along, a fragmented ICMPv6 error goes to the stack
// whole, a first fragment too short for its TCP header and a fragment header beyond the
// payload length are dropped with their reasons.
TEST_F(XdpLbTest, Ipv6FragmentEdgesGetDefinedVerdicts) {
  const std::string vip = "fd00:100::2", client = "fd00::2";
  const auto first_other_port = PacketBuilder()
                                    .eth(kClientMac, bed_->ingressMac())
                                    .ipv6(client, vip)
                                    .ipv6Frag(0, true, 0x0500)
                                    .tcp(44000, 81, {.flags = kTcpSyn})
                                    .payload(std::string(16, 'a'))
                                    .build();
  auto rest = PacketBuilder()
                  .eth(kClientMac, bed_->ingressMac())
                  .ipv6(client, vip)
                  .ipv6Frag(40, false, 0x0500)
                  .payload(std::string(24, 'b'))
                  .build();
  rest[14 + 40] = kIpProtoTcp;
  auto r = run(first_other_port);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "first, VIP address, other port";
  EXPECT_EQ(r.out, first_other_port);
  r = run(rest);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "its later fragment";
  EXPECT_EQ(r.out, rest);
  EXPECT_EQ(counter(MG_LB_FRAG_FIRST), 1u) << "the passed first was tracked";

  const auto icmp6_frag = PacketBuilder()
                              .eth(kClientMac, bed_->ingressMac())
                              .ipv6("fd00::fe", vip)
                              .ipv6Frag(0, true, 0x0600)
                              .icmp6(2, 0, 1280)
                              .ipv6(vip, client)
                              .tcp(80, 44001, {.flags = kTcpAck})
                              .icmpQuoteLimit(48)
                              .build();
  r = run(icmp6_frag);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "fragmented ICMPv6 error";
  EXPECT_EQ(r.out, icmp6_frag);
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 1u);
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 0u);

  auto short_first = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv6(client, vip)
                         .ipv6Frag(0, true, 0x0700)
                         .payload(std::string(12, 'c'))
                         .build();
  short_first[14 + 40] = kIpProtoTcp;  // 12 bytes of a 20-byte TCP header
  r = run(short_first);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "first fragment cut inside TCP";
  EXPECT_EQ(drops(MG_LB_DROP_TRUNC_L4), 1u);

  // In the frame, but past the 4 bytes of payload the IPv6 header declares.
  const auto past_payload = PacketBuilder()
                                .eth(kClientMac, bed_->ingressMac())
                                .ipv6(client, vip, {.payload_length = 4})
                                .ipv6Frag(0, true, 0x0800)
                                .tcp(44002, 80, {.flags = kTcpSyn})
                                .build();
  r = run(past_payload);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "fragment header past the payload";
  EXPECT_EQ(drops(MG_LB_DROP_BAD_EXT_HDR), 1u);
}

// An ICMP error about a fragmented reply names the flow only when it quotes the reply's
// first fragment: IPv6 quotes the fragment header before the ports; a later fragment's
// quote (IPv4 or IPv6) holds payload where ports would be, and goes to the stack.
TEST_F(XdpLbTest, IcmpErrorsAboutFragmentedRepliesAreSteeredOnlyByAFirstFragment) {
  auto too_big = [&](uint16_t offset) {
    return PacketBuilder()
        .eth(kClientMac, bed_->ingressMac())
        .ipv6("fd00::fe", "fd00:100::1")
        .icmp6(2, 0, 1280)
        .ipv6("fd00:100::1", "fd00::2")
        .ipv6Frag(offset, true, 0x0900)
        .tcp(80, 44100, {.flags = kTcpAck})
        .icmpQuoteLimit(56)
        .build();
  };
  const auto first = too_big(0);
  const auto k = flowKey("fd00::2", "fd00:100::1", 44100, 80, kIpProtoTcp);
  const auto want = encap6(first, k, "fd00:1::13", 13, kIpProtoIpv6);
  auto r = run(first);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "quotes a first fragment";
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 1u);
  const auto later6 = too_big(1280);
  r = run(later6);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "quotes a later IPv6 fragment";
  EXPECT_EQ(r.out, later6);

  // IPv4, to the port-less VIP, which would take any "ports" the payload spelled.
  const auto later4 =
      PacketBuilder()
          .eth(kClientMac, bed_->ingressMac())
          .ipv4("198.18.0.254", "198.18.100.2")
          .icmp(3, 4, 1400)
          .ipv4("198.18.100.2", "198.18.0.2", {.frag_offset_bytes = 1480, .protocol = kIpProtoTcp})
          .payload(std::string(8, 'p'))
          .icmpQuoteLimit(28)
          .build();
  r = run(later4);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "quotes a later IPv4 fragment";
  EXPECT_EQ(r.out, later4);
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 1u);
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 2u);
}

// A flow tracked to a backend that was removed with its VIP is not forwarded, also after
// an agent restart: the freed id stays out of use, even though the restarted agent only
// has the maps to go by (removed backends stay there, not live, so numbering goes on past
// them), and the conntrack entry finds no live backend under it. Ids come round again only
// after all MG_MAX_BACKENDS have been used; then the generation in the entry tells the old
// backend from the new one.
TEST_F(XdpLbTest, AFlowOfARemovedBackendIsNotForwardedAndItsIdStaysFreeAcrossARestart) {
  const auto dns = PacketBuilder()
                       .eth(kClientMac, bed_->ingressMac())
                       .ipv4("198.18.0.2", "198.18.100.1")
                       .udp(5353, 53)
                       .payload("q")
                       .build();
  ASSERT_STREQ(xdpActionName(run(dns).retval), "XDP_REDIRECT") << "tracked on the dns VIP";
  const auto dns_vip = bed_->state().vipId(bed_->config()->vips[1]);
  ASSERT_TRUE(dns_vip);
  const auto dns_backend = bed_->state().backendId(*dns_vip, *agent::IpAddr::parse("198.18.1.11"));
  ASSERT_TRUE(dns_backend);
  // Keep only the web VIP, whose backend has the lowest id, restart the agent, add a backend.
  const std::string web_only = R"({
    "hash_seed": 7,
    "conntrack": {"size": 65536, "udp_idle_seconds": 30, "max_inserts_per_cpu_per_second": 0},
    "encap": {"source_v4": "198.18.255.0/24", "source_v6": "fd00:ffff::/96", "ttl": 64},
    "vips": [{"name": "web", "address": "198.18.100.1", "port": 80, "protocol": "tcp",
              "ring_size": 1009, "backends": [BACKENDS]}]})";
  std::string cfg = web_only;
  cfg.replace(cfg.find("BACKENDS"), 8, R"({"address": "198.18.1.10"})");
  ASSERT_TRUE(bed_->apply(cfg));
  ASSERT_TRUE(bed_->restartAgentForTest());
  cfg = web_only;
  cfg.replace(cfg.find("BACKENDS"), 8, R"({"address": "198.18.1.10"}, {"address": "198.18.1.16"})");
  ASSERT_TRUE(bed_->apply(cfg));
  const auto web_vip = bed_->state().vipId(bed_->config()->vips[0]);
  ASSERT_TRUE(web_vip);
  const auto added = bed_->state().backendId(*web_vip, *agent::IpAddr::parse("198.18.1.16"));
  ASSERT_TRUE(added);
  EXPECT_GT(*added, *dns_backend) << "a freed id is not handed out again";
  const auto r = run(dns);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "the removed VIP's flow is not forwarded";
  EXPECT_EQ(r.out, dns) << "untouched";
  EXPECT_EQ(counter(MG_LB_CT_BACKEND_GONE), 1u) << "the stale entry was recognised";
}

TEST_F(XdpLbTest, IgnoresIcmpErrorsNotAddressedToTheVip) {
  run(tcp4("198.18.0.2", "198.18.100.1", 43002, 80, kTcpSyn));
  // Quotes the VIP's flow but is addressed to the balancer itself: not a VIP's business.
  const auto icmp = PacketBuilder()
                        .eth(kClientMac, bed_->ingressMac())
                        .ipv4("198.18.0.254", "198.18.0.1")
                        .icmp(3, 4, 1400)
                        .ipv4("198.18.100.1", "198.18.0.2")
                        .tcp(80, 43002, {.flags = kTcpAck})
                        .icmpQuoteLimit(28)
                        .build();
  const auto r = run(icmp);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS");
  EXPECT_EQ(r.out, icmp) << "untouched";
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 0u);
}

TEST_F(XdpLbTest, ForwardsIpv4OptionsIntact) {
  const auto in = tcp4("198.18.0.2", "198.18.100.1", 45000, 80, kTcpSyn,
                       {.options = {0x94, 0x04, 0x00, 0x00}});  // router alert
  const auto k = flowKey("198.18.0.2", "198.18.100.1", 45000, 80, kIpProtoTcp);
  const auto r = run(in);
  const auto want = encap4(in, k, "198.18.1.10", 10);
  EXPECT_EQ(r.out, want) << describeDiff(want, r.out);
}

TEST_F(XdpLbTest, ReusesCachedNextHopForLaterPacketsOfTheBackend) {
  const auto syn = tcp4("198.18.0.2", "198.18.100.1", 40010, 80, kTcpSyn);
  const auto ack = tcp4("198.18.0.2", "198.18.100.1", 40010, 80, kTcpAck);
  const auto k = flowKey("198.18.0.2", "198.18.100.1", 40010, 80, kIpProtoTcp);
  run(syn);
  EXPECT_EQ(counter(MG_LB_NEXTHOP_LOOKUP), 1u) << "first packet asks the FIB";
  const auto r = run(ack);
  const auto want = encap4(ack, k, "198.18.1.10", 10);
  EXPECT_EQ(r.out, want) << "cached next hop gives the same frame" << describeDiff(want, r.out);
  EXPECT_EQ(counter(MG_LB_NEXTHOP_CACHED), 1u) << "second packet uses the cache";
}

TEST_F(XdpLbTest, DropsEncapsulatedPacketsLargerThanEgressMtu) {
  // Warm the next-hop cache with a small packet first: the MTU check must stay exact.
  run(tcp4("198.18.0.2", "198.18.100.1", 46000, 80, kTcpSyn));
  const auto in = PacketBuilder()
                      .eth(kClientMac, bed_->ingressMac())
                      .ipv4("198.18.0.2", "198.18.100.1")
                      .tcp(46000, 80, {.flags = kTcpAck})
                      .payload(std::string(1460, 'm'))
                      .build();
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "1500 + 20 > MTU 1500";
  EXPECT_EQ(drops(MG_LB_DROP_MTU_EXCEEDED), 1u);
}

struct MalformedRow {
  const char* name;
  std::vector<uint8_t> packet;
  uint32_t verdict;
  int drop;  // mg_lb_drop, or -1 when not dropped
  // The frame the program leaves; none: the input, untouched (passed or dropped as is).
  std::optional<std::vector<uint8_t>> out = std::nullopt;
};

TEST_F(XdpLbTest, MalformedHeadersGetDefinedCountedVerdicts) {
  const auto syn = tcp4("198.18.0.2", "198.18.100.1", 47000, 80, kTcpSyn);
  auto bad_ihl = syn;
  bad_ihl[14] = 0x44;  // IHL 4
  auto bad_version = syn;
  bad_version[14] = 0x55;
  auto long_tot_len = syn;
  long_tot_len[16] = 0x05;  // tot_len 0x05xx > frame
  auto bad_doff = syn;
  bad_doff[14 + 20 + 12] = 0x40;  // TCP data offset 4
  const auto v6 = PacketBuilder()
                      .eth(kClientMac, bed_->ingressMac())
                      .ipv6("fd00::2", "fd00:100::1")
                      .tcp(47000, 80, {.flags = kTcpSyn})
                      .build();
  auto v6_long = v6;
  v6_long[14 + 4] = 0x10;  // payload_len 4096
  const auto v6_frag_cut = PacketBuilder()
                               .eth(kClientMac, bed_->ingressMac())
                               .ipv6("fd00::2", "fd00:100::1", {.next_header = kIpv6ExtFragment})
                               .payload(std::vector<uint8_t>(4, 0))
                               .build();
  // A first fragment whose L4 header is not right after its fragment header.
  const auto v6_frag_opts = PacketBuilder()
                                .eth(kClientMac, bed_->ingressMac())
                                .ipv6("fd00::2", "fd00:100::1")
                                .ipv6Frag(0, true, 99)
                                .ipv6Ext(kIpv6ExtDestOpts, std::vector<uint8_t>(6, 0))
                                .tcp(47000, 80, {.flags = kTcpSyn})
                                .build();
  const auto v6_ext = PacketBuilder()
                          .eth(kClientMac, bed_->ingressMac())
                          .ipv6("fd00::2", "fd00:100::1")
                          .ipv6Ext(kIpv6ExtHopByHop, std::vector<uint8_t>(6, 0))
                          .ipv6Ext(kIpv6ExtDestOpts, std::vector<uint8_t>(6, 0))
                          .tcp(47000, 80, {.flags = kTcpSyn})
                          .build();
  const std::vector<MalformedRow> rows = {
      // (Frames shorter than Ethernet never reach XDP: drivers and BPF_PROG_TEST_RUN refuse
      // them, so MG_LB_DROP_TRUNC_ETH is defensive only.)
      {"ipv4 header cut", truncated(syn, 14 + 12), XDP_DROP, MG_LB_DROP_TRUNC_IP},
      {"ipv4 ihl below 5", bad_ihl, XDP_DROP, MG_LB_DROP_BAD_IP},
      {"ipv4 version not 4", bad_version, XDP_DROP, MG_LB_DROP_BAD_IP},
      {"ipv4 total length beyond frame", long_tot_len, XDP_DROP, MG_LB_DROP_BAD_IP},
      {"tcp header cut", truncated(syn, 14 + 20 + 10), XDP_DROP, MG_LB_DROP_BAD_IP},
      {"tcp data offset below 5", bad_doff, XDP_DROP, MG_LB_DROP_BAD_L4},
      {"ipv6 header cut", truncated(v6, 14 + 30), XDP_DROP, MG_LB_DROP_TRUNC_IP},
      {"ipv6 payload length beyond frame", v6_long, XDP_DROP, MG_LB_DROP_BAD_IP},
      {"ipv6 fragment header cut", v6_frag_cut, XDP_DROP, MG_LB_DROP_BAD_EXT_HDR},
      {"ipv6 first fragment, options before L4", v6_frag_opts, XDP_PASS, -1},
      {"ipv6 extension headers skipped", v6_ext, XDP_REDIRECT, -1,
       encap6(v6_ext, flowKey("fd00::2", "fd00:100::1", 47000, 80, kIpProtoTcp), "fd00:1::13", 13,
              kIpProtoIpv6)},
  };
  for (const auto& row : rows) {
    const uint64_t before = row.drop >= 0 ? drops(static_cast<mg_lb_drop>(row.drop)) : 0;
    const auto r = run(row.packet);
    EXPECT_EQ(r.retval, row.verdict) << row.name << ": got " << xdpActionName(r.retval);
    const auto& want = row.out ? *row.out : row.packet;
    EXPECT_EQ(r.out, want) << row.name << describeDiff(want, r.out);
    if (row.drop >= 0) {
      EXPECT_EQ(drops(static_cast<mg_lb_drop>(row.drop)), before + 1) << row.name << " counted";
    }
  }
  EXPECT_EQ(counter(MG_LB_PASS_IPV6_FRAG), 1u) << "that first fragment passed and counted";
}

TEST_F(XdpLbTest, CutHeadersInsideValidIpPacketsAndIcmpQuotesGetDefinedVerdicts) {
  // UDP header of 4 bytes inside a consistent IPv4 packet.
  const auto udp_cut = PacketBuilder()
                           .eth(kClientMac, bed_->ingressMac())
                           .ipv4("198.18.0.2", "198.18.100.1", {.protocol = kIpProtoUdp})
                           .payload(std::string(4, '\0'))
                           .build();
  auto r = run(udp_cut);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "udp header cut";
  EXPECT_EQ(drops(MG_LB_DROP_TRUNC_L4), 1u);
  // An ICMP error quoting too little to name a flow: the stack's business.
  const auto quote_cut = PacketBuilder()
                             .eth(kClientMac, bed_->ingressMac())
                             .ipv4("198.18.0.254", "198.18.100.1")
                             .icmp(3, 4, 1400)
                             .ipv4("198.18.100.1", "198.18.0.2")
                             .tcp(80, 43000, {.flags = kTcpAck})
                             .icmpQuoteLimit(22)
                             .build();
  r = run(quote_cut);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "quote without ports";
  EXPECT_EQ(r.out, quote_cut) << "untouched";
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 1u);
  // An IPv6 extension header that claims more bytes than the frame has.
  auto ext_cut = PacketBuilder()
                     .eth(kClientMac, bed_->ingressMac())
                     .ipv6("fd00::2", "fd00:100::1")
                     .ipv6Ext(kIpv6ExtDestOpts, std::vector<uint8_t>(6, 0))
                     .tcp(47000, 80, {.flags = kTcpSyn})
                     .build();
  ext_cut[14 + 40 + 1] = 0xff;  // hdr_ext_len 255: 2048 bytes
  r = run(ext_cut);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP") << "extension chain beyond frame";
  EXPECT_EQ(r.out, ext_cut) << "untouched";
  // Its first two bytes are in the frame, its 2048 end past the IPv6 payload: parse.h checks
  // the chain against the payload length before any L4 read, so this is BAD_EXT_HDR.
  EXPECT_EQ(drops(MG_LB_DROP_BAD_EXT_HDR), 1u) << "a chain past the IPv6 payload is bad";
  EXPECT_EQ(drops(MG_LB_DROP_TRUNC_L4), 1u) << "only the cut UDP header";
}

TEST_F(XdpLbTest, CutTcpHeaderWithinValidIpPacketIsTruncL4) {
  // IP total length says 30 bytes: 20 of IP and 10 of a TCP header that needs 20.
  auto in = PacketBuilder()
                .eth(kClientMac, bed_->ingressMac())
                .ipv4("198.18.0.2", "198.18.100.1", {.protocol = kIpProtoTcp})
                .payload(std::string(10, '\0'))
                .build();
  const auto r = run(in);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_DROP");
  EXPECT_EQ(drops(MG_LB_DROP_TRUNC_L4), 1u);
}

TEST_F(XdpLbTest, DropsIpv6ExtensionChainLongerThanFourHeaders) {
  // parse.h walks at most MG_IPV6_MAX_EXT_HDRS (4) extension headers.
  const auto chain = [&](size_t n) {
    const uint8_t types[] = {kIpv6ExtHopByHop, kIpv6ExtRouting, kIpv6ExtDestOpts, kIpv6ExtDestOpts,
                             kIpv6ExtDestOpts};
    PacketBuilder b;
    b.eth(kClientMac, bed_->ingressMac()).ipv6("fd00::2", "fd00:100::1");
    for (size_t i = 0; i < n; i++) {
      b.ipv6Ext(types[i], std::vector<uint8_t>(6, 0));
    }
    return b.tcp(47001, 80, {.flags = kTcpSyn}).build();
  };
  const auto four = chain(4);
  const auto r4 = run(four);
  EXPECT_STREQ(xdpActionName(r4.retval), "XDP_REDIRECT") << "four headers are walked";
  const auto want = encap6(four, flowKey("fd00::2", "fd00:100::1", 47001, 80, kIpProtoTcp),
                           "fd00:1::13", 13, kIpProtoIpv6);
  EXPECT_EQ(r4.out, want) << describeDiff(want, r4.out);

  const auto five = chain(5);
  const auto r5 = run(five);
  EXPECT_STREQ(xdpActionName(r5.retval), "XDP_DROP") << "a fifth header is not";
  EXPECT_EQ(r5.out, five) << "untouched";
  EXPECT_EQ(drops(MG_LB_DROP_BAD_EXT_HDR), 1u) << "counted as a bad extension chain";
  EXPECT_EQ(counter(MG_LB_DROP), 1u) << "and as nothing else";
}

// An ICMP error's quote ends where its IP packet does: bytes of frame padding after it
// (Ethernet pads short frames, and a sender may put anything there) never name a flow.
TEST_F(XdpLbTest, IcmpQuoteIsReadOnlyWithinTheIpPacketNotFromFramePadding) {
  // A fragmentation-needed error quoting a flow of the VIP. With ip_len set, the IPv4
  // total length ends the quote 2 bytes into its ports; the frame still holds all of them.
  auto frag_needed = [&](std::optional<uint16_t> ip_len) {
    return PacketBuilder()
        .eth(kClientMac, bed_->ingressMac())
        .ipv4("198.18.0.254", "198.18.100.1", {.total_length = ip_len})
        .icmp(3, 4, 1400)
        .ipv4("198.18.100.1", "198.18.0.2")
        .tcp(80, 43100, {.flags = kTcpAck})
        .icmpQuoteLimit(28)
        .build();
  };
  auto r = run(frag_needed(std::nullopt));
  ASSERT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "the whole quote is steered";
  const auto cut = frag_needed(20 + 8 + 22);
  r = run(cut);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "ports only in the padding";
  EXPECT_EQ(r.out, cut) << "untouched";
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 1u) << "not steered by padding";
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 1u);

  // IPv6: a packet-too-big error whose payload length ends inside the quoted ports.
  auto too_big = [&](std::optional<uint16_t> payload_len) {
    return PacketBuilder()
        .eth(kClientMac, bed_->ingressMac())
        .ipv6("fd00::fe", "fd00:100::1", {.payload_length = payload_len})
        .icmp6(2, 0, 1280)
        .ipv6("fd00:100::1", "fd00::2")
        .tcp(80, 43101, {.flags = kTcpAck})
        .icmpQuoteLimit(48)
        .build();
  };
  r = run(too_big(std::nullopt));
  ASSERT_STREQ(xdpActionName(r.retval), "XDP_REDIRECT") << "the whole v6 quote is steered";
  const auto cut6 = too_big(8 + 42);
  r = run(cut6);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "v6 ports only in the padding";
  EXPECT_EQ(r.out, cut6) << "untouched";
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 2u);
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 2u);
}

// A fragmented ICMP error goes to the stack whole: its first fragment names a flow, the
// others carry no quote, and a backend could not reassemble half of it.
TEST_F(XdpLbTest, FragmentedIcmpErrorIsPassedWhole) {
  const auto first = PacketBuilder()
                         .eth(kClientMac, bed_->ingressMac())
                         .ipv4("198.18.0.254", "198.18.100.1", {.id = 42, .more_fragments = true})
                         .icmp(3, 4, 1400)
                         .ipv4("198.18.100.1", "198.18.0.2")
                         .tcp(80, 43200, {.flags = kTcpAck})
                         .icmpQuoteLimit(28)
                         .build();
  const auto r = run(first);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS");
  EXPECT_EQ(r.out, first) << "untouched";
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 0u);
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 1u);
  EXPECT_EQ(counter(MG_LB_FRAG_FIRST), 0u) << "nothing tracked for its later fragments";
}

TEST_F(XdpLbTest, PassesIcmpAndIcmpv6WithCutHeaderToTheStack) {
  // One byte short of the 8-byte header, of the error types that would name a flow, sent
  // to a VIP, in a frame that ends with the IP packet: no drop reason, the stack decides.
  const auto icmp_cut = PacketBuilder()
                            .eth(kClientMac, bed_->ingressMac())
                            .ipv4("198.18.0.254", "198.18.100.1", {.protocol = kIpProtoIcmp})
                            .payload(std::vector<uint8_t>{3, 4, 0, 0, 0, 0, 5})
                            .build();
  const auto icmp6_cut = PacketBuilder()
                             .eth(kClientMac, bed_->ingressMac())
                             .ipv6("fd00::fe", "fd00:100::1", {.next_header = kIpProtoIcmp6})
                             .payload(std::vector<uint8_t>{2, 0, 0, 0, 0, 0, 5})
                             .build();
  auto r = run(icmp_cut);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "icmp header cut";
  EXPECT_EQ(r.out, icmp_cut) << "untouched";
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 1u) << "icmp header cut";
  r = run(icmp6_cut);
  EXPECT_STREQ(xdpActionName(r.retval), "XDP_PASS") << "icmpv6 header cut";
  EXPECT_EQ(r.out, icmp6_cut) << "untouched";
  EXPECT_EQ(counter(MG_LB_PASS_ICMP), 2u) << "icmpv6 header cut";
  EXPECT_EQ(counter(MG_LB_DROP), 0u) << "neither is a drop";
  EXPECT_EQ(counter(MG_LB_ICMP_STEERED), 0u);
}

}  // namespace
}  // namespace meshgate::test
