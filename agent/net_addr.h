// IP addresses and prefixes in the representation the BPF ABI stores them in
// (include/meshgate/abi/lb.h: `__be32 addr[4]` plus a family byte), so that the agent
// copies them into map keys and values without conversion.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "meshgate/abi/common.h"
#include "meshgate/result.h"

namespace meshgate::agent {

struct IpAddr {
  uint8_t family = MG_AF_INET;  // MG_AF_INET or MG_AF_INET6
  // Network-byte-order words exactly as stored in the ABI's __be32 addr[4]. IPv4 uses
  // words[0] and leaves words[1..3] zero.
  std::array<uint32_t, 4> words{};

  // Parses the textual forms of inet_pton(3): dotted quad ("198.18.100.1", no leading
  // zeros) or RFC 4291 IPv6 ("2001:db8::1"). Rejects surrounding whitespace, brackets,
  // zone ids ("%eth0") and prefix lengths. An IPv4-mapped IPv6 address ("::ffff:1.2.3.4")
  // stays IPv6 (family MG_AF_INET6).
  static Result<IpAddr> parse(std::string_view text);

  bool isV4() const { return family == MG_AF_INET; }
  bool isV6() const { return family == MG_AF_INET6; }
  // 32 for IPv4, 128 for IPv6.
  uint8_t bitLength() const { return isV4() ? 32 : 128; }
  // 0.0.0.0 or ::.
  bool isUnspecified() const;
  // 127.0.0.0/8 or ::1.
  bool isLoopback() const;
  // 224.0.0.0/4 or ff00::/8.
  bool isMulticast() const;
  // ::ffff:0:0/96.
  bool isV4Mapped() const;

  // Canonical text (inet_ntop(3)): "198.18.100.1", "2001:db8::1".
  std::string toString() const;

  // Equality compares family and words. Ordering puts IPv4 before IPv6, then compares
  // addresses numerically (byte by byte), so sorted addresses read in natural order.
  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend std::strong_ordering operator<=>(const IpAddr& a, const IpAddr& b);
};

// An address with a prefix length. Parsing is strict: host bits beyond the length must
// be zero ("198.18.255.1/24" is rejected and the error suggests "198.18.255.0/24"), because
// a set host bit is more often a typo than an intent.
struct IpPrefix {
  IpAddr addr;      // the network address: host bits are zero
  uint8_t len = 0;  // 0..32 for IPv4, 0..128 for IPv6

  // "198.18.255.0/24", "fd00:ffff::/96". The "/len" part is required.
  static Result<IpPrefix> parse(std::string_view text);

  // Netmask of this prefix's family: the first `len` bits set, in network byte order.
  IpAddr mask() const;
  // The complement of mask() within the family's width: the host bits.
  IpAddr hostMask() const;
  bool contains(const IpAddr& a) const;
  // "198.18.255.0/24".
  std::string toString() const;

  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

// An IP literal and a port, as a listener address: "127.0.0.1:9464", "[::1]:9464".
struct SockAddr {
  IpAddr addr;
  uint16_t port = 0;  // 0 = any free port (tests)

  // IPv6 must be bracketed; host names are rejected (nothing resolves them).
  static Result<SockAddr> parse(std::string_view text);
  // "127.0.0.1:9464", "[::1]:9464".
  std::string toString() const;

  friend bool operator==(const SockAddr&, const SockAddr&) = default;
};

}  // namespace meshgate::agent
