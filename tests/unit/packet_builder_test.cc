// Proves that PacketBuilder emits the packets tests mean: lengths, protocol numbers and
// checksums checked by an independent ones-complement sum, and whole packets byte-exact
// against scapy.
#include "tests/lib/packet_builder.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>

#include "tests/lib/process.h"

namespace meshgate::test {
namespace {

const MacAddr kMacA = {0x02, 0, 0, 0, 0, 0x01};
const MacAddr kMacB = {0x02, 0, 0, 0, 0, 0x02};
constexpr size_t kEth = 14;

uint16_t be16(const std::vector<uint8_t>& p, size_t at) {
  return static_cast<uint16_t>(p.at(at) << 8 | p.at(at + 1));
}

// Written out here rather than reusing onesComplementSum(), so the check is independent.
uint32_t addWords(const uint8_t* data, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i < len; ++i) {
    sum += i % 2 == 0 ? data[i] << 8 : data[i];
  }
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum > 0xffff) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(sum);
}

// The ones-complement sum of an IPv4 header including its checksum field.
uint16_t ipv4HeaderSum(const std::vector<uint8_t>& p, size_t ip) {
  return fold(addWords(&p[ip], (p[ip] & 0x0f) * 4u));
}

// The ones-complement sum of an L4 segment (from l4 to the end of the IPv4 packet at ip)
// plus the IPv4 pseudo-header: 0xffff when the L4 checksum is right.
uint16_t l4SumV4(const std::vector<uint8_t>& p, size_t ip, size_t l4) {
  size_t end = ip + be16(p, ip + 2);
  uint32_t sum = addWords(&p[ip + 12], 8);  // source and destination
  sum += p[ip + 9] + (end - l4);
  return fold(addWords(&p[l4], end - l4, sum));
}

// Same over the IPv6 pseudo-header; next_header is the upper-layer protocol.
uint16_t l4SumV6(const std::vector<uint8_t>& p, size_t ip, size_t l4, uint8_t next_header) {
  size_t end = ip + 40 + be16(p, ip + 4);
  uint32_t sum = addWords(&p[ip + 8], 32);
  sum += next_header + (end - l4);
  return fold(addWords(&p[l4], end - l4, sum));
}

TEST(PacketBuilder, Ipv4TcpHeaderLengthsAndChecksumsAreValid) {
  auto p = PacketBuilder()
               .eth(kMacA, kMacB)
               .ipv4("198.18.0.1", "198.18.100.1")
               .tcp(40000, 80, {.flags = kTcpSyn, .seq = 1})
               .payload("hello")
               .build();
  ASSERT_EQ(p.size(), kEth + 20 + 20 + 5) << "eth + ipv4 + tcp + payload\n" << hexDump(p);
  EXPECT_EQ(p[5], 0x02) << "destination MAC comes first on the wire";
  EXPECT_EQ(p[11], 0x01) << "then the source MAC";
  EXPECT_EQ(be16(p, 12), 0x0800) << "ethertype taken from the IPv4 layer";
  EXPECT_EQ(p[kEth], 0x45) << "version 4, IHL 5";
  EXPECT_EQ(be16(p, kEth + 2), 45) << "IPv4 total length";
  EXPECT_EQ(p[kEth + 8], 64) << "default TTL";
  EXPECT_EQ(p[kEth + 9], kIpProtoTcp) << "protocol from the TCP layer";
  EXPECT_EQ(ipv4HeaderSum(p, kEth), 0xffff) << "IPv4 header checksum";
  EXPECT_EQ(p[kEth + 20 + 12] >> 4, 5) << "TCP data offset";
  EXPECT_EQ(p[kEth + 20 + 13], kTcpSyn) << "TCP flags";
  EXPECT_EQ(be16(p, kEth + 20 + 14), 65535) << "default window";
  EXPECT_EQ(l4SumV4(p, kEth, kEth + 20), 0xffff) << "TCP checksum with pseudo-header";
}

TEST(PacketBuilder, Ipv6UdpChecksumCoversPseudoHeader) {
  auto p = PacketBuilder()
               .eth(kMacA, kMacB)
               .ipv6("fd00::1", "fd00::2", {.hop_limit = 7, .flow_label = 0xabcde})
               .udp(5353, 53)
               .payload("query")
               .build();
  ASSERT_EQ(p.size(), kEth + 40 + 8 + 5) << hexDump(p);
  EXPECT_EQ(be16(p, 12), 0x86dd) << "ethertype taken from the IPv6 layer";
  EXPECT_EQ(be16(p, kEth + 4), 13) << "IPv6 payload length";
  EXPECT_EQ(p[kEth + 6], kIpProtoUdp) << "next header";
  EXPECT_EQ(p[kEth + 7], 7) << "hop limit";
  EXPECT_EQ(be16(p, kEth + 2), 0xbcde) << "low bits of the flow label";
  EXPECT_EQ(be16(p, kEth + 40 + 4), 13) << "UDP length";
  EXPECT_EQ(l4SumV6(p, kEth, kEth + 40, kIpProtoUdp), 0xffff) << "UDP checksum";
}

TEST(PacketBuilder, UdpChecksumThatComputesToZeroIsSentAsAllOnes) {
  // Search the two payload bytes that make the computed checksum 0.
  for (uint32_t v = 0; v <= 0xffff; ++v) {
    const uint8_t data[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    auto p = PacketBuilder().ipv4("198.18.0.1", "198.18.0.2").udp(1, 2).payload(data).build();
    if (l4SumV4(p, 0, 20) == 0xffff && be16(p, 26) == 0xffff) {
      return;  // found: the all-ones form verifies and was used for the zero result
    }
  }
  FAIL() << "no payload produced a UDP checksum of 0xffff";
}

TEST(PacketBuilder, IpInIpSetsOuterProtocolFromInnerFamily) {
  auto v4in4 = PacketBuilder()
                   .ipv4("198.18.0.10", "198.18.1.1")
                   .ipv4("198.18.0.1", "198.18.100.1")
                   .tcp(1, 2)
                   .build();
  EXPECT_EQ(v4in4[9], kIpProtoIpip) << "IPv4 in IPv4: outer protocol 4";
  EXPECT_EQ(be16(v4in4, 2), 60) << "outer total length covers the inner packet";
  EXPECT_EQ(be16(v4in4, 22), 40) << "inner total length";
  EXPECT_EQ(ipv4HeaderSum(v4in4, 0), 0xffff) << "outer header checksum";
  EXPECT_EQ(ipv4HeaderSum(v4in4, 20), 0xffff) << "inner header checksum";
  EXPECT_EQ(l4SumV4(v4in4, 20, 40), 0xffff) << "TCP checksum uses the inner addresses";

  auto v6in4 = PacketBuilder().ipv4("198.18.0.10", "198.18.1.1").ipv6("fd00::1", "fd00::2").build();
  EXPECT_EQ(v6in4[9], kIpProtoIpv6) << "IPv6 in IPv4: outer protocol 41";

  auto v4in6 = PacketBuilder().ipv6("fd00::a", "fd00::b").ipv4("198.18.0.1", "198.18.0.2").build();
  EXPECT_EQ(v4in6[6], kIpProtoIpip) << "IPv4 in IPv6: next header 4";

  auto v6in6 =
      PacketBuilder().ipv6("fd00::a", "fd00::b").ipv6("fd00::1", "fd00::2").udp(1, 2).build();
  EXPECT_EQ(v6in6[6], kIpProtoIpv6) << "IPv6 in IPv6: next header 41";
  EXPECT_EQ(be16(v6in6, 4), 48) << "outer payload length = inner header + UDP";
  EXPECT_EQ(l4SumV6(v6in6, 40, 80, kIpProtoUdp), 0xffff) << "UDP checksum of the inner packet";
}

TEST(PacketBuilder, IcmpErrorQuotesInnerPacketWithItsOwnChecksums) {
  auto p = PacketBuilder()
               .ipv4("198.18.1.254", "198.18.0.1")
               .icmp(3, 4, 1400)
               .ipv4("198.18.0.1", "198.18.100.1", {.dont_fragment = true})
               .tcp(40000, 80, {.flags = kTcpAck})
               .payload(std::string(100, 'z'))
               .build();
  constexpr size_t kIcmp = 20;
  constexpr size_t kQuote = kIcmp + 8;
  ASSERT_EQ(p.size(), kQuote + 20 + 20 + 100) << hexDump(p);
  EXPECT_EQ(p[9], kIpProtoIcmp) << "outer protocol";
  EXPECT_EQ(p[kIcmp], 3) << "ICMP type";
  EXPECT_EQ(p[kIcmp + 1], 4) << "ICMP code";
  EXPECT_EQ(be16(p, kIcmp + 6), 1400) << "next-hop MTU in the low half of rest-of-header";
  EXPECT_EQ(fold(addWords(&p[kIcmp], p.size() - kIcmp)), 0xffff) << "ICMP message checksum";
  EXPECT_EQ(be16(p, kQuote + 2), 140) << "quoted total length";
  EXPECT_EQ(be16(p, kQuote + 6), 0x4000) << "quoted DF";
  EXPECT_EQ(ipv4HeaderSum(p, kQuote), 0xffff) << "quoted IPv4 header checksum";
  EXPECT_EQ(l4SumV4(p, kQuote, kQuote + 20), 0xffff) << "quoted TCP checksum";
}

TEST(PacketBuilder, IcmpQuoteLimitTruncatesOnlyTheQuote) {
  auto p = PacketBuilder()
               .ipv4("198.18.1.254", "198.18.0.1")
               .icmp(3, 4, 1400)
               .ipv4("198.18.0.1", "198.18.100.1")
               .tcp(40000, 80)
               .payload(std::string(100, 'z'))
               .icmpQuoteLimit(28)
               .build();
  ASSERT_EQ(p.size(), 20u + 8 + 28) << hexDump(p);
  EXPECT_EQ(be16(p, 2), 56) << "outer total length counts the truncated quote";
  EXPECT_EQ(be16(p, 28 + 2), 140) << "quoted header still states the original length";
  EXPECT_EQ(fold(addWords(&p[20], 36)), 0xffff) << "ICMP checksum over the truncated quote";
}

TEST(PacketBuilder, Icmp6ChecksumIncludesPseudoHeader) {
  auto p = PacketBuilder()
               .ipv6("fd00::fe", "fd00::1")
               .icmp6(2, 0, 1280)
               .ipv6("fd00::1", "fd00::2")
               .tcp(40000, 443)
               .build();
  ASSERT_EQ(p.size(), 40u + 8 + 40 + 20) << hexDump(p);
  EXPECT_EQ(p[6], kIpProtoIcmp6) << "next header";
  EXPECT_EQ(be16(p, 44) << 16 | be16(p, 46), 1280) << "MTU";
  EXPECT_EQ(l4SumV6(p, 0, 40, kIpProtoIcmp6), 0xffff) << "ICMPv6 checksum with pseudo-header";
  EXPECT_EQ(l4SumV6(p, 48, 88, kIpProtoTcp), 0xffff) << "quoted TCP checksum";
}

TEST(PacketBuilder, Ipv4OptionsArePaddedToWholeWords) {
  auto p = PacketBuilder()
               .ipv4("198.18.0.1", "198.18.0.2", {.options = {0x07, 0x07, 0x04, 0, 0, 0, 0}})
               .udp(1, 2)
               .build();
  EXPECT_EQ(p[0], 0x47) << "IHL 7: 20 + 7 option bytes padded to 8";
  EXPECT_EQ(p[27], 0) << "padding is EOL";
  EXPECT_EQ(ipv4HeaderSum(p, 0), 0xffff) << "checksum covers the options";
  EXPECT_EQ(l4SumV4(p, 0, 28), 0xffff) << "UDP starts after the options";
}

TEST(PacketBuilder, TcpOptionsSetDataOffset) {
  auto p = PacketBuilder()
               .ipv4("198.18.0.1", "198.18.0.2")
               .tcp(1, 2, {.flags = kTcpSyn, .options = {2, 4, 0x05, 0xb4, 1, 3, 3}})
               .build();
  EXPECT_EQ(p[20 + 12] >> 4, 7) << "20 + 7 option bytes padded to 8 = 7 words";
  EXPECT_EQ(p.size(), 20u + 28) << "packet length";
  EXPECT_EQ(l4SumV4(p, 0, 20), 0xffff) << "TCP checksum covers the options";
}

TEST(PacketBuilder, VlanTagSitsBetweenMacsAndEthertype) {
  auto p = PacketBuilder().eth(kMacA, kMacB).vlan(100, 5).ipv4("198.18.0.1", "198.18.0.2").build();
  EXPECT_EQ(be16(p, 12), 0x8100) << "TPID";
  EXPECT_EQ(be16(p, 14), (5 << 13) | 100) << "PCP and VLAN id";
  EXPECT_EQ(be16(p, 16), 0x0800) << "inner ethertype";
  EXPECT_EQ(p[18], 0x45) << "IPv4 header after the tag";
}

TEST(PacketBuilder, Ipv6ExtensionHeadersChainNextHeaders) {
  auto p = PacketBuilder()
               .ipv6("fd00::1", "fd00::2")
               .ipv6Ext(kIpv6ExtHopByHop)
               .ipv6Frag(16, true, 0x1234)
               .udp(1, 2)
               .payload("frag")
               .build();
  ASSERT_EQ(p.size(), 40u + 8 + 8 + 8 + 4) << hexDump(p);
  EXPECT_EQ(p[6], kIpv6ExtHopByHop) << "IPv6 next header: hop-by-hop";
  EXPECT_EQ(p[40], kIpv6ExtFragment) << "hop-by-hop next header: fragment";
  EXPECT_EQ(p[41], 0) << "hop-by-hop length in 8-byte units minus one";
  EXPECT_EQ(p[42], 1) << "padded with PadN";
  EXPECT_EQ(p[48], kIpProtoUdp) << "fragment next header: UDP";
  EXPECT_EQ(be16(p, 50), 16 | 1) << "fragment offset 16 bytes with M set";
  EXPECT_EQ(be16(p, 52) << 16 | be16(p, 54), 0x1234) << "fragment id";
  EXPECT_EQ(l4SumV6(p, 0, 56, kIpProtoUdp), 0xffff) << "UDP checksum skips ext headers";
}

TEST(PacketBuilder, Ipv4FragmentFieldsAreEncoded) {
  auto p = PacketBuilder()
               .ipv4("198.18.0.1", "198.18.0.2",
                     {.id = 7, .more_fragments = true, .frag_offset_bytes = 16, .protocol = 17})
               .payload("12345678")
               .build();
  EXPECT_EQ(be16(p, 4), 7) << "id";
  EXPECT_EQ(be16(p, 6), 0x2000 | 2) << "MF and offset in 8-byte units";
  EXPECT_EQ(p[9], kIpProtoUdp) << "protocol override for a raw fragment";
  EXPECT_EQ(ipv4HeaderSum(p, 0), 0xffff) << "header checksum";
}

TEST(PacketBuilder, OverridesAreSentVerbatimForMalformedRows) {
  auto p = PacketBuilder()
               .ipv4("198.18.0.1", "198.18.0.2", {.total_length = 9999, .checksum = 0xdead})
               .udp(1, 2, {.length = 3, .checksum = 0})
               .build();
  EXPECT_EQ(be16(p, 2), 9999) << "IPv4 total length override";
  EXPECT_EQ(be16(p, 10), 0xdead) << "IPv4 checksum override";
  EXPECT_EQ(be16(p, 24), 3) << "UDP length override";
  EXPECT_EQ(be16(p, 26), 0) << "UDP checksum override";
}

TEST(PacketBuilder, MalformedLiteralsThrow) {
  EXPECT_THROW(PacketBuilder().ipv4("198.18.0.300", "198.18.0.1"), std::invalid_argument)
      << "bad IPv4 literal";
  EXPECT_THROW(PacketBuilder().ipv6("198.18.0.1", "fd00::1"), std::invalid_argument)
      << "IPv4 literal given to ipv6()";
  EXPECT_THROW(parseMac("02:00:00:00:00"), std::invalid_argument) << "short MAC";
  EXPECT_THROW(PacketBuilder().icmpQuoteLimit(8), std::logic_error) << "quote limit, no ICMP";
  EXPECT_EQ(parseMac("02:0a:0B:00:00:ff"), (MacAddr{2, 0x0a, 0x0b, 0, 0, 0xff})) << "parse";
  EXPECT_EQ(formatMac(kMacA), "02:00:00:00:00:01") << "format";
}

TEST(PacketHelpers, TruncatedKeepsThePrefix) {
  std::vector<uint8_t> p = {1, 2, 3, 4};
  EXPECT_EQ(truncated(p, 2), (std::vector<uint8_t>{1, 2})) << "cut to 2";
  EXPECT_EQ(truncated(p, 10), p) << "longer than the packet: unchanged";
}

TEST(PacketHelpers, DescribeDiffNamesTheFirstDifferingByte) {
  std::vector<uint8_t> a(40, 0xaa);
  std::vector<uint8_t> b = a;
  EXPECT_EQ(describeDiff(a, b), "") << "equal packets have no diff";
  b[33] = 0xbb;
  std::string diff = describeDiff(a, b);
  EXPECT_NE(diff.find("first difference at byte 33 (0x21): expected 0xaa, actual 0xbb"),
            std::string::npos)
      << diff;
  EXPECT_NE(describeDiff(a, truncated(a, 20)).find("actual 20"), std::string::npos)
      << "a length difference is reported";
  EXPECT_EQ(hexDump(std::vector<uint8_t>(17, 1)),
            "0000  01 01 01 01 01 01 01 01  01 01 01 01 01 01 01 01\n0010  01\n")
      << "16 bytes per line";
}

// ---- byte-exact comparison with scapy ------------------------------------------------------

struct ScapyRow {
  const char* name;
  std::function<std::vector<uint8_t>()> build;
  const char* scapy;  // a scapy expression; E is Ether(src=kMacA, dst=kMacB)
};

const std::vector<ScapyRow>& scapyRows() {
  static const std::vector<ScapyRow> rows = {
      {"Ipv4TcpSynWithPayload",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.0.1", "198.18.100.1", {.id = 0x1234})
             .tcp(40000, 80, {.flags = kTcpSyn, .seq = 1000, .options = {2, 4, 0x05, 0xb4}})
             .payload("hello")
             .build();
       },
       "E/IP(src='198.18.0.1',dst='198.18.100.1',id=0x1234)/TCP(sport=40000,dport=80,"
       "flags='S',seq=1000,window=65535,options=[('MSS',1460)])/Raw(b'hello')"},
      {"Ipv6Udp",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv6("fd00::1", "fd00::2", {.traffic_class = 0x20, .flow_label = 0x12345})
             .udp(5353, 53)
             .payload("query")
             .build();
       },
       "E/IPv6(src='fd00::1',dst='fd00::2',tc=0x20,fl=0x12345)/UDP(sport=5353,dport=53)/"
       "Raw(b'query')"},
      {"Ipv4InIpv4Tcp",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.0.10", "198.18.1.1")
             .ipv4("198.18.0.1", "198.18.100.1")
             .tcp(40000, 80, {.flags = kTcpPsh | kTcpAck, .seq = 7, .ack = 9})
             .payload("data")
             .build();
       },
       "E/IP(src='198.18.0.10',dst='198.18.1.1',id=0)/IP(src='198.18.0.1',dst='198.18.100.1',"
       "id=0)/TCP(sport=40000,dport=80,flags='PA',seq=7,ack=9,window=65535)/Raw(b'data')"},
      {"Ipv6InIpv4",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.0.10", "198.18.1.1")
             .ipv6("fd00::1", "fd00::2")
             .udp(1000, 2000)
             .build();
       },
       "E/IP(src='198.18.0.10',dst='198.18.1.1',id=0)/IPv6(src='fd00::1',dst='fd00::2')/"
       "UDP(sport=1000,dport=2000)"},
      {"Ipv6InIpv6Udp",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv6("fd00::10", "fd00::20")
             .ipv6("fd00::1", "fd00::2")
             .udp(1000, 2000)
             .payload("x")
             .build();
       },
       "E/IPv6(src='fd00::10',dst='fd00::20')/IPv6(src='fd00::1',dst='fd00::2')/"
       "UDP(sport=1000,dport=2000)/Raw(b'x')"},
      {"Ipv4WithOptions",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.0.1", "198.18.0.2", {.options = {0x07, 0x07, 0x04, 0, 0, 0, 0}})
             .udp(1, 2)
             .build();
       },
       "E/IP(src='198.18.0.1',dst='198.18.0.2',id=0,"
       "options=IPOption(b'\\x07\\x07\\x04\\x00\\x00\\x00\\x00'))/UDP(sport=1,dport=2)"},
      {"IcmpFragNeededQuotingTcp",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.1.254", "198.18.0.1")
             .icmp(3, 4, 1400)
             .ipv4("198.18.0.1", "198.18.100.1", {.dont_fragment = true})
             .tcp(40000, 80, {.flags = kTcpAck, .seq = 1})
             .payload(std::string(100, 'z'))
             .build();
       },
       "E/IP(src='198.18.1.254',dst='198.18.0.1',id=0)/ICMP(type=3,code=4,nexthopmtu=1400)/"
       "IP(src='198.18.0.1',dst='198.18.100.1',id=0,flags='DF')/TCP(sport=40000,dport=80,"
       "flags='A',seq=1,window=65535)/Raw(b'z'*100)"},
      {"IcmpFragNeededQuoteTruncatedTo28Bytes",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.1.254", "198.18.0.1")
             .icmp(3, 4, 1400)
             .ipv4("198.18.0.1", "198.18.100.1", {.dont_fragment = true})
             .tcp(40000, 80, {.flags = kTcpAck, .seq = 1})
             .payload(std::string(100, 'z'))
             .icmpQuoteLimit(28)
             .build();
       },
       "E/IP(src='198.18.1.254',dst='198.18.0.1',id=0)/ICMP(type=3,code=4,nexthopmtu=1400)/"
       "Raw(raw(IP(src='198.18.0.1',dst='198.18.100.1',id=0,flags='DF')/TCP(sport=40000,"
       "dport=80,flags='A',seq=1,window=65535)/Raw(b'z'*100))[:28])"},
      {"Icmp6PacketTooBigQuotingTcp",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv6("fd00::fe", "fd00::1")
             .icmp6(2, 0, 1280)
             .ipv6("fd00::1", "fd00::2")
             .tcp(40000, 443, {.flags = kTcpAck})
             .payload("abc")
             .build();
       },
       "E/IPv6(src='fd00::fe',dst='fd00::1')/ICMPv6PacketTooBig(mtu=1280)/"
       "IPv6(src='fd00::1',dst='fd00::2')/TCP(sport=40000,dport=443,flags='A',window=65535)/"
       "Raw(b'abc')"},
      {"IcmpEchoRequest",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.0.1", "198.18.0.2")
             .icmp(8, 0, 0x42 << 16 | 1)
             .payload("ping")
             .build();
       },
       "E/IP(src='198.18.0.1',dst='198.18.0.2',id=0)/ICMP(type=8,id=0x42,seq=1)/Raw(b'ping')"},
      {"VlanIpv4Udp",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .vlan(100)
             .ipv4("198.18.0.1", "198.18.0.2")
             .udp(1, 2)
             .build();
       },
       "E/Dot1Q(vlan=100)/IP(src='198.18.0.1',dst='198.18.0.2',id=0)/UDP(sport=1,dport=2)"},
      {"Ipv6HopByHopAndFragmentUdp",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv6("fd00::1", "fd00::2")
             .ipv6Ext(kIpv6ExtHopByHop)
             .ipv6Frag(0, true, 0x1234)
             .udp(1, 2)
             .payload("frag")
             .build();
       },
       "E/IPv6(src='fd00::1',dst='fd00::2')/IPv6ExtHdrHopByHop()/"
       "IPv6ExtHdrFragment(offset=0,m=1,id=0x1234)/UDP(sport=1,dport=2)/Raw(b'frag')"},
      {"Ipv4NonFirstFragmentRawPayload",
       [] {
         return PacketBuilder()
             .eth(kMacA, kMacB)
             .ipv4("198.18.0.1", "198.18.0.2",
                   {.id = 7, .more_fragments = true, .frag_offset_bytes = 16, .protocol = 17})
             .payload("12345678")
             .build();
       },
       "E/IP(src='198.18.0.1',dst='198.18.0.2',id=7,flags='MF',frag=2,proto=17)/"
       "Raw(b'12345678')"},
  };
  return rows;
}

// Runs every row's scapy expression in one python3 process (importing scapy takes a
// second): row name -> hex, or the reason scapy is unavailable.
const Result<std::map<std::string, std::string>>& scapyHex() {
  static const Result<std::map<std::string, std::string>> result =
      []() -> Result<std::map<std::string, std::string>> {
    std::string script =
        "import logging\nlogging.getLogger('scapy').setLevel(logging.ERROR)\n"
        "from scapy.all import *\n"
        "E = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')\n";
    for (const ScapyRow& row : scapyRows()) {
      script += "print('HEX', '" + std::string(row.name) + "', raw(" + row.scapy + ").hex())\n";
    }
    // Debian's python3-scapy lives in the system interpreter; a python3 earlier in PATH
    // (pyenv) may not have it.
    std::string errors;
    for (const char* python : {"/usr/bin/python3", "python3"}) {
      auto out = runCommand({python, "-c", script});
      if (!out) {
        errors += out.error().message + "\n";
        continue;
      }
      std::map<std::string, std::string> hex;
      std::istringstream lines(*out);
      std::string tag, name, value;
      while (lines >> tag) {
        if (tag == "HEX" && lines >> name >> value) {
          hex[name] = value;
        }
      }
      return hex;
    }
    return fail("python3 with scapy (Debian package python3-scapy) unavailable:\n" + errors);
  }();
  return result;
}

std::string toHex(const std::vector<uint8_t>& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

std::vector<uint8_t> fromHex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

class MatchesScapy : public testing::TestWithParam<ScapyRow> {};

TEST_P(MatchesScapy, ByteForByte) {
  const auto& hex = scapyHex();
  if (!hex) {
    GTEST_SKIP() << hex.error().message;
  }
  const ScapyRow& row = GetParam();
  auto it = hex->find(row.name);
  ASSERT_NE(it, hex->end()) << "scapy printed nothing for " << row.scapy;
  std::vector<uint8_t> ours = row.build();
  std::vector<uint8_t> theirs = fromHex(it->second);
  EXPECT_EQ(toHex(ours), it->second) << row.name << " differs from scapy's " << row.scapy << "\n"
                                     << describeDiff(theirs, ours);
}

INSTANTIATE_TEST_SUITE_P(PacketBuilder, MatchesScapy, testing::ValuesIn(scapyRows()),
                         [](const testing::TestParamInfo<ScapyRow>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace meshgate::test
