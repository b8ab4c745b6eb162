#include "tests/lib/packet_builder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace meshgate::test {

// The addresses an L4 checksum is computed over (the innermost enclosing IP header).
struct PacketBuilder::PseudoHeader {
  bool v6 = false;
  const std::vector<uint8_t>* src = nullptr;
  const std::vector<uint8_t>* dst = nullptr;

  uint32_t sum(uint8_t protocol, size_t l4_length) const {
    std::vector<uint8_t> ph(src->begin(), src->end());
    ph.insert(ph.end(), dst->begin(), dst->end());
    if (v6) {
      for (int shift = 24; shift >= 0; shift -= 8) {
        ph.push_back(static_cast<uint8_t>(l4_length >> shift));
      }
      ph.insert(ph.end(), {0, 0, 0, protocol});
    } else {
      ph.insert(ph.end(), {0, protocol, static_cast<uint8_t>(l4_length >> 8),
                           static_cast<uint8_t>(l4_length)});
    }
    return onesComplementSum(ph);
  }
};

namespace {

constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
constexpr uint16_t kEtherTypeVlan = 0x8100;
constexpr uint16_t kEtherTypeDefault = 0x88b5;  // IEEE 802 local experimental
constexpr uint8_t kIpv4NoProtocol = 0;          // scapy's default for IP()/Raw()
constexpr uint8_t kIpv6NoNextHeader = 59;

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

void set16(std::vector<uint8_t>& out, size_t at, uint16_t v) {
  out[at] = static_cast<uint8_t>(v >> 8);
  out[at + 1] = static_cast<uint8_t>(v);
}

void append(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

std::vector<uint8_t> parseIp(std::string_view text, int family) {
  std::string s(text);
  std::vector<uint8_t> out(family == AF_INET ? 4 : 16);
  if (inet_pton(family, s.c_str(), out.data()) != 1) {
    throw std::invalid_argument("PacketBuilder: not an " +
                                std::string(family == AF_INET ? "IPv4" : "IPv6") + " address: '" +
                                s + "'");
  }
  return out;
}

uint16_t finish(uint32_t sum) {
  return static_cast<uint16_t>(~sum & 0xffff);
}

void appendDumpLines(std::string& out, std::span<const uint8_t> bytes, size_t from, size_t to) {
  char buf[24];
  for (size_t line = from; line < std::min(to, bytes.size()); line += 16) {
    std::snprintf(buf, sizeof(buf), "%04zx ", line);
    out += buf;
    for (size_t i = line; i < std::min({line + 16, to, bytes.size()}); ++i) {
      std::snprintf(buf, sizeof(buf), i % 16 == 8 ? "  %02x" : " %02x", bytes[i]);
      out += buf;
    }
    out += '\n';
  }
}

}  // namespace

MacAddr parseMac(std::string_view text) {
  MacAddr mac{};
  unsigned v[6];
  char tail;
  std::string s(text);
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                  &tail) != 6 ||
      s.size() != 17) {
    throw std::invalid_argument("parseMac: not a MAC address: '" + s + "'");
  }
  for (size_t i = 0; i < 6; ++i) {
    mac[i] = static_cast<uint8_t>(v[i]);
  }
  return mac;
}

std::string formatMac(const MacAddr& mac) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

PacketBuilder& PacketBuilder::eth(const MacAddr& src, const MacAddr& dst,
                                  std::optional<uint16_t> ethertype) {
  Layer l{.kind = Kind::kEth};
  l.a.assign(dst.begin(), dst.end());  // wire order: destination first
  l.a.insert(l.a.end(), src.begin(), src.end());
  l.ethertype = ethertype;
  layers_.push_back(std::move(l));
  return *this;
}

PacketBuilder& PacketBuilder::eth(std::string_view src, std::string_view dst,
                                  std::optional<uint16_t> ethertype) {
  return eth(parseMac(src), parseMac(dst), ethertype);
}

PacketBuilder& PacketBuilder::vlan(uint16_t id, uint8_t pcp) {
  layers_.push_back(
      Layer{.kind = Kind::kVlan, .vlan_tci = static_cast<uint16_t>((pcp << 13) | (id & 0xfff))});
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(std::string_view src, std::string_view dst, Ipv4Opts opts) {
  layers_.push_back(Layer{.kind = Kind::kIpv4,
                          .a = parseIp(src, AF_INET),
                          .b = parseIp(dst, AF_INET),
                          .v4 = std::move(opts)});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6(std::string_view src, std::string_view dst, Ipv6Opts opts) {
  layers_.push_back(Layer{
      .kind = Kind::kIpv6, .a = parseIp(src, AF_INET6), .b = parseIp(dst, AF_INET6), .v6 = opts});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6Ext(uint8_t type, std::span<const uint8_t> body) {
  layers_.push_back(
      Layer{.kind = Kind::kIpv6Ext, .a = {body.begin(), body.end()}, .ext_type = type});
  return *this;
}

PacketBuilder& PacketBuilder::ipv6Frag(uint16_t offset_bytes, bool more_fragments, uint32_t id) {
  std::vector<uint8_t> body;
  put16(body, static_cast<uint16_t>((offset_bytes & ~7u) | (more_fragments ? 1 : 0)));
  put32(body, id);
  return ipv6Ext(kIpv6ExtFragment, body);
}

PacketBuilder& PacketBuilder::tcp(uint16_t sport, uint16_t dport, TcpOpts opts) {
  layers_.push_back(
      Layer{.kind = Kind::kTcp, .port_src = sport, .port_dst = dport, .tcp = std::move(opts)});
  return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t sport, uint16_t dport, UdpOpts opts) {
  layers_.push_back(Layer{.kind = Kind::kUdp, .port_src = sport, .port_dst = dport, .udp = opts});
  return *this;
}

PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint32_t rest_of_header) {
  layers_.push_back(Layer{
      .kind = Kind::kIcmp, .icmp_rest = rest_of_header, .icmp_type = type, .icmp_code = code});
  return *this;
}

PacketBuilder& PacketBuilder::icmp6(uint8_t type, uint8_t code, uint32_t rest_of_header) {
  layers_.push_back(Layer{
      .kind = Kind::kIcmp6, .icmp_rest = rest_of_header, .icmp_type = type, .icmp_code = code});
  return *this;
}

PacketBuilder& PacketBuilder::icmpQuoteLimit(size_t n) {
  auto it = std::find_if(layers_.rbegin(), layers_.rend(), [](const Layer& l) {
    return l.kind == Kind::kIcmp || l.kind == Kind::kIcmp6;
  });
  if (it == layers_.rend()) {
    throw std::logic_error("PacketBuilder: icmpQuoteLimit() without an icmp()/icmp6() layer");
  }
  it->quote_limit = n;
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::span<const uint8_t> bytes) {
  layers_.push_back(Layer{.kind = Kind::kPayload, .a = {bytes.begin(), bytes.end()}});
  return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view text) {
  return payload(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

std::vector<uint8_t> PacketBuilder::build() const {
  return encodeFrom(0, nullptr);
}

uint16_t PacketBuilder::etherTypeOf(size_t i) const {
  if (layers_[i].ethertype) {
    return *layers_[i].ethertype;
  }
  if (i + 1 >= layers_.size()) {
    return kEtherTypeDefault;
  }
  switch (layers_[i + 1].kind) {
    case Kind::kIpv4:
      return kEtherTypeIpv4;
    case Kind::kIpv6:
      return kEtherTypeIpv6;
    case Kind::kVlan:
      return kEtherTypeVlan;
    default:
      return kEtherTypeDefault;
  }
}

// The protocol number of layer i + 1 as seen from an IP or extension header at i; 0 when
// the next layer has none (raw payload or nothing).
uint8_t PacketBuilder::protocolOf(size_t i) const {
  if (i + 1 >= layers_.size()) {
    return 0;
  }
  const Layer& next = layers_[i + 1];
  switch (next.kind) {
    case Kind::kIpv4:
      return kIpProtoIpip;
    case Kind::kIpv6:
      return kIpProtoIpv6;
    case Kind::kIpv6Ext:
      return next.ext_type;
    case Kind::kTcp:
      return kIpProtoTcp;
    case Kind::kUdp:
      return kIpProtoUdp;
    case Kind::kIcmp:
      return kIpProtoIcmp;
    case Kind::kIcmp6:
      return kIpProtoIcmp6;
    default:
      return 0;
  }
}

std::vector<uint8_t> PacketBuilder::encodeFrom(size_t i, const PseudoHeader* ip) const {
  if (i >= layers_.size()) {
    return {};
  }
  const Layer& l = layers_[i];
  const bool has_next_protocol = i + 1 < layers_.size() && layers_[i + 1].kind != Kind::kPayload &&
                                 layers_[i + 1].kind != Kind::kEth &&
                                 layers_[i + 1].kind != Kind::kVlan;
  std::vector<uint8_t> out;
  switch (l.kind) {
    case Kind::kEth: {
      out = l.a;
      put16(out, etherTypeOf(i));
      append(out, encodeFrom(i + 1, ip));
      return out;
    }
    case Kind::kVlan: {
      put16(out, l.vlan_tci);
      put16(out, etherTypeOf(i));
      append(out, encodeFrom(i + 1, ip));
      return out;
    }
    case Kind::kIpv4: {
      PseudoHeader self{.v6 = false, .src = &l.a, .dst = &l.b};
      std::vector<uint8_t> inner = encodeFrom(i + 1, &self);
      std::vector<uint8_t> options = l.v4.options;
      options.resize((options.size() + 3) / 4 * 4, 0);
      const size_t header_len = 20 + options.size();
      uint8_t protocol =
          l.v4.protocol.value_or(has_next_protocol ? protocolOf(i) : kIpv4NoProtocol);
      out.push_back(static_cast<uint8_t>(0x40 | (header_len / 4)));
      out.push_back(l.v4.tos);
      put16(out, l.v4.total_length.value_or(static_cast<uint16_t>(header_len + inner.size())));
      put16(out, l.v4.id);
      put16(out, static_cast<uint16_t>((l.v4.dont_fragment ? 0x4000 : 0) |
                                       (l.v4.more_fragments ? 0x2000 : 0) |
                                       ((l.v4.frag_offset_bytes / 8) & 0x1fff)));
      out.push_back(l.v4.ttl);
      out.push_back(protocol);
      put16(out, 0);
      append(out, l.a);
      append(out, l.b);
      append(out, options);
      set16(out, 10, l.v4.checksum.value_or(finish(onesComplementSum(out))));
      append(out, inner);
      return out;
    }
    case Kind::kIpv6: {
      PseudoHeader self{.v6 = true, .src = &l.a, .dst = &l.b};
      std::vector<uint8_t> inner = encodeFrom(i + 1, &self);
      uint8_t next =
          l.v6.next_header.value_or(has_next_protocol ? protocolOf(i) : kIpv6NoNextHeader);
      put32(out, (6u << 28) | (uint32_t{l.v6.traffic_class} << 20) | (l.v6.flow_label & 0xfffff));
      put16(out, l.v6.payload_length.value_or(static_cast<uint16_t>(inner.size())));
      out.push_back(next);
      out.push_back(l.v6.hop_limit);
      append(out, l.a);
      append(out, l.b);
      append(out, inner);
      return out;
    }
    case Kind::kIpv6Ext: {
      out.push_back(has_next_protocol ? protocolOf(i) : kIpv6NoNextHeader);
      std::vector<uint8_t> body = l.a;
      if (l.ext_type == kIpv6ExtFragment) {
        body.resize(6, 0);
        out.push_back(0);
      } else {
        size_t pad = (8 - (2 + body.size()) % 8) % 8;
        bool options = l.ext_type == kIpv6ExtHopByHop || l.ext_type == kIpv6ExtDestOpts;
        if (options && pad == 1) {
          body.push_back(0);  // Pad1
        } else if (options && pad >= 2) {
          body.push_back(1);  // PadN
          body.push_back(static_cast<uint8_t>(pad - 2));
          body.resize(body.size() + pad - 2, 0);
        } else {
          body.resize(body.size() + pad, 0);
        }
        out.push_back(static_cast<uint8_t>((2 + body.size()) / 8 - 1));
      }
      append(out, body);
      append(out, encodeFrom(i + 1, ip));
      return out;
    }
    case Kind::kTcp: {
      std::vector<uint8_t> inner = encodeFrom(i + 1, ip);
      std::vector<uint8_t> options = l.tcp.options;
      options.resize((options.size() + 3) / 4 * 4, 0);
      put16(out, l.port_src);
      put16(out, l.port_dst);
      put32(out, l.tcp.seq);
      put32(out, l.tcp.ack);
      out.push_back(static_cast<uint8_t>(((20 + options.size()) / 4) << 4));
      out.push_back(l.tcp.flags);
      put16(out, l.tcp.window);
      put16(out, 0);
      put16(out, l.tcp.urgent);
      append(out, options);
      append(out, inner);
      uint16_t csum = 0;
      if (ip != nullptr) {
        csum = finish(onesComplementSum(out, ip->sum(kIpProtoTcp, out.size())));
      }
      set16(out, 16, l.tcp.checksum.value_or(csum));
      return out;
    }
    case Kind::kUdp: {
      std::vector<uint8_t> inner = encodeFrom(i + 1, ip);
      put16(out, l.port_src);
      put16(out, l.port_dst);
      put16(out, l.udp.length.value_or(static_cast<uint16_t>(8 + inner.size())));
      put16(out, 0);
      append(out, inner);
      uint16_t csum = 0;
      if (ip != nullptr) {
        csum = finish(onesComplementSum(out, ip->sum(kIpProtoUdp, out.size())));
        csum = csum == 0 ? 0xffff : csum;  // 0 means "no checksum"
      }
      set16(out, 6, l.udp.checksum.value_or(csum));
      return out;
    }
    case Kind::kIcmp:
    case Kind::kIcmp6: {
      // The quoted packet is a packet of its own: its checksums use its own IP headers.
      std::vector<uint8_t> quote = encodeFrom(i + 1, nullptr);
      if (l.quote_limit && quote.size() > *l.quote_limit) {
        quote.resize(*l.quote_limit);
      }
      out.push_back(l.icmp_type);
      out.push_back(l.icmp_code);
      put16(out, 0);
      put32(out, l.icmp_rest);
      append(out, quote);
      uint32_t initial = 0;
      if (l.kind == Kind::kIcmp6 && ip != nullptr) {
        initial = ip->sum(kIpProtoIcmp6, out.size());
      }
      set16(out, 2, finish(onesComplementSum(out, initial)));
      return out;
    }
    case Kind::kPayload: {
      out = l.a;
      append(out, encodeFrom(i + 1, ip));
      return out;
    }
  }
  return out;
}

std::vector<uint8_t> truncated(std::vector<uint8_t> packet, size_t len) {
  if (packet.size() > len) {
    packet.resize(len);
  }
  return packet;
}

std::string hexDump(std::span<const uint8_t> bytes) {
  std::string out;
  appendDumpLines(out, bytes, 0, bytes.size());
  return out;
}

std::string describeDiff(std::span<const uint8_t> expected, std::span<const uint8_t> actual) {
  size_t common = std::min(expected.size(), actual.size());
  size_t at = std::mismatch(expected.begin(), expected.begin() + common, actual.begin()).first -
              expected.begin();
  if (at == common && expected.size() == actual.size()) {
    return "";
  }
  char buf[160];
  std::string out;
  std::snprintf(buf, sizeof(buf), "sizes: expected %zu, actual %zu; first difference at byte %zu",
                expected.size(), actual.size(), at);
  out += buf;
  if (at < common) {
    std::snprintf(buf, sizeof(buf), " (0x%zx): expected 0x%02x, actual 0x%02x", at, expected[at],
                  actual[at]);
    out += buf;
  }
  size_t from = at / 16 * 16;
  from = from >= 32 ? from - 32 : 0;
  size_t to = at / 16 * 16 + 32;
  out += "\nexpected:\n";
  appendDumpLines(out, expected, from, to);
  out += "actual:\n";
  appendDumpLines(out, actual, from, to);
  return out;
}

uint16_t onesComplementSum(std::span<const uint8_t> bytes, uint32_t initial) {
  uint64_t sum = initial;
  for (size_t i = 0; i + 1 < bytes.size(); i += 2) {
    sum += (uint32_t{bytes[i]} << 8) | bytes[i + 1];
  }
  if (bytes.size() % 2 == 1) {
    sum += uint32_t{bytes.back()} << 8;
  }
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(sum);
}

}  // namespace meshgate::test
