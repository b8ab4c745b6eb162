// PacketBuilder: test packets described layer by layer, outermost first, with every length,
// protocol number and checksum computed at build():
//
//   PacketBuilder().eth(kClientMac, kLbMac).ipv4("198.18.0.1", "198.18.100.1")
//       .tcp(40000, 80, {.flags = kTcpSyn}).payload("hello").build();
//
// Nesting rules (each layer's "next" is the layer pushed after it):
// - eth()/vlan() take their ethertype from the next layer (IPv4, IPv6, VLAN).
// - An IP layer after another IP layer (or its ipv6Ext headers) is IPIP: the outer
//   protocol / next header becomes 4 (IPv4 inside) or 41 (IPv6 inside).
// - Layers after udp()/tcp() are their payload, so udp().ipv4()... builds a UDP-encapsulated
//   packet (GUE/FOU style) with both checksums right.
// - Layers after icmp()/icmp6() form the quoted packet of an ICMP error, built with its own
//   correct lengths and checksums; icmpQuoteLimit(n) then keeps only its first n bytes.
// - Without a known next layer, defaults follow scapy: ethertype 0x88b5 (local
//   experimental), IPv4 protocol 0, IPv6 next header 59 (no next header). Override with
//   Ipv4Opts::protocol / Ipv6Opts::next_header / the eth() ethertype argument.
// Checksums: IPv4 header; TCP, UDP (0 sent as 0xffff) and ICMPv6 over the pseudo-header
// (IPv6 ext headers are skipped; the destination is the IPv6 header's, also with a routing
// header); ICMPv4 over the ICMP message.
// Fragments: the L4 checksum covers only the bytes in this packet, which is not the
// checksum of the reassembled datagram. Tests of fragments should use raw payload() for
// non-first fragments and set Ipv4Opts::protocol (or the ipv6Frag next header) explicitly.
//
// Malformed literals (bad address or MAC strings, icmpQuoteLimit without an ICMP layer)
// are bugs in the test itself and throw std::invalid_argument / std::logic_error, which
// GoogleTest reports as a failure of that test.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace meshgate::test {

using MacAddr = std::array<uint8_t, 6>;

// "02:00:00:00:00:01" -> bytes. Throws std::invalid_argument on anything else.
MacAddr parseMac(std::string_view text);
std::string formatMac(const MacAddr& mac);

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;
inline constexpr uint8_t kTcpEce = 0x40;
inline constexpr uint8_t kTcpCwr = 0x80;

inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoIpip = 4;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoIpv6 = 41;
inline constexpr uint8_t kIpProtoIcmp6 = 58;
inline constexpr uint8_t kIpv6ExtHopByHop = 0;
inline constexpr uint8_t kIpv6ExtRouting = 43;
inline constexpr uint8_t kIpv6ExtFragment = 44;
inline constexpr uint8_t kIpv6ExtDestOpts = 60;

struct Ipv4Opts {
  uint8_t ttl = 64;
  uint8_t tos = 0;
  uint16_t id = 0;
  bool dont_fragment = false;
  bool more_fragments = false;
  uint16_t frag_offset_bytes = 0;  // must be a multiple of 8
  std::vector<uint8_t> options;    // raw option bytes, padded with zeros (EOL) to 4
  std::optional<uint8_t> protocol;
  // For malformed-packet rows: sent instead of the computed values.
  std::optional<uint16_t> total_length;
  std::optional<uint16_t> checksum;
};

struct Ipv6Opts {
  uint8_t hop_limit = 64;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;  // 20 bits
  std::optional<uint8_t> next_header;
  std::optional<uint16_t> payload_length;  // malformed rows only
};

struct TcpOpts {
  uint8_t flags = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 65535;
  uint16_t urgent = 0;
  std::vector<uint8_t> options;  // raw option bytes, padded with zeros (EOL) to 4
  std::optional<uint16_t> checksum;
};

struct UdpOpts {
  std::optional<uint16_t> length;    // malformed rows only
  std::optional<uint16_t> checksum;  // e.g. 0 for "no checksum" over IPv4
};

class PacketBuilder {
 public:
  // ethertype: only when the next layer is not IPv4/IPv6/VLAN (or to send a wrong one).
  PacketBuilder& eth(const MacAddr& src, const MacAddr& dst,
                     std::optional<uint16_t> ethertype = std::nullopt);
  PacketBuilder& eth(std::string_view src, std::string_view dst,
                     std::optional<uint16_t> ethertype = std::nullopt);
  // An 802.1Q tag (TPID 0x8100) after eth().
  PacketBuilder& vlan(uint16_t id, uint8_t pcp = 0);
  PacketBuilder& ipv4(std::string_view src, std::string_view dst, Ipv4Opts opts = {});
  PacketBuilder& ipv6(std::string_view src, std::string_view dst, Ipv6Opts opts = {});
  // An IPv6 extension header. `body` is what follows its next-header and length bytes;
  // hop-by-hop and destination options are padded with Pad1/PadN, others with zeros, to a
  // multiple of 8. For the fragment header (44) body is the 6 bytes after the
  // next-header/reserved pair; ipv6Frag() builds them.
  PacketBuilder& ipv6Ext(uint8_t type, std::span<const uint8_t> body = {});
  PacketBuilder& ipv6Frag(uint16_t offset_bytes, bool more_fragments, uint32_t id);
  PacketBuilder& tcp(uint16_t sport, uint16_t dport, TcpOpts opts = {});
  PacketBuilder& udp(uint16_t sport, uint16_t dport, UdpOpts opts = {});
  // rest_of_header: the 4 bytes after the checksum, big-endian: the MTU for "fragmentation
  // needed" (3/4) and "packet too big" (ICMPv6 2/0), (id << 16 | seq) for echo.
  PacketBuilder& icmp(uint8_t type, uint8_t code, uint32_t rest_of_header = 0);
  PacketBuilder& icmp6(uint8_t type, uint8_t code, uint32_t rest_of_header = 0);
  // Keeps only the first n bytes of the packet quoted by the last icmp()/icmp6().
  PacketBuilder& icmpQuoteLimit(size_t n);
  PacketBuilder& payload(std::span<const uint8_t> bytes);
  PacketBuilder& payload(std::string_view text);

  std::vector<uint8_t> build() const;

 private:
  enum class Kind { kEth, kVlan, kIpv4, kIpv6, kIpv6Ext, kTcp, kUdp, kIcmp, kIcmp6, kPayload };
  struct Layer {
    Kind kind;
    std::vector<uint8_t> a;  // eth: src+dst MAC; ip: src; ext/payload: bytes
    std::vector<uint8_t> b;  // ip: dst
    uint16_t port_src = 0, port_dst = 0;
    uint32_t icmp_rest = 0;
    uint8_t icmp_type = 0, icmp_code = 0;
    std::optional<size_t> quote_limit;
    uint16_t vlan_tci = 0;
    std::optional<uint16_t> ethertype;
    uint8_t ext_type = 0;
    Ipv4Opts v4;
    Ipv6Opts v6;
    TcpOpts tcp;
    UdpOpts udp;
  };
  struct PseudoHeader;

  std::vector<uint8_t> encodeFrom(size_t i, const PseudoHeader* ip) const;
  uint16_t etherTypeOf(size_t i) const;
  uint8_t protocolOf(size_t i) const;

  std::vector<Layer> layers_;
};

// The first len bytes (all of them if len >= size).
std::vector<uint8_t> truncated(std::vector<uint8_t> packet, size_t len);

// 16 bytes per line: "0000  45 00 00 3c ...".
std::string hexDump(std::span<const uint8_t> bytes);

// "" when equal; else the sizes, the offset of the first differing byte and a hexdump of
// both around it. For failure messages: EXPECT_EQ(want, got) << describeDiff(want, got).
std::string describeDiff(std::span<const uint8_t> expected, std::span<const uint8_t> actual);

// The ones-complement sum of bytes folded to 16 bits (not inverted), big-endian words.
// A header whose checksum field is right sums to 0xffff.
uint16_t onesComplementSum(std::span<const uint8_t> bytes, uint32_t initial = 0);

}  // namespace meshgate::test
