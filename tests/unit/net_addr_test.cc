// Proves that IpAddr/IpPrefix parse into the BPF ABI's network-byte-order words, print
// canonically, order numerically, and reject malformed text.
#include "agent/net_addr.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace meshgate::agent {
namespace {

IpAddr mustParse(std::string_view text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a.has_value()) << "parse \"" << text << "\": " << a.error().message;
  return a.value_or(IpAddr{});
}

TEST(IpAddr, ParsesIpv4IntoWordZeroInNetworkOrder) {
  const IpAddr a = mustParse("198.18.100.1");
  EXPECT_EQ(a.family, MG_AF_INET) << "family of an IPv4 address";
  EXPECT_EQ(a.words[0], htonl(0xc6126401)) << "word 0 holds the address, big-endian";
  EXPECT_EQ(a.words[1], 0u) << "word 1 is zero for IPv4";
  EXPECT_EQ(a.words[2], 0u) << "word 2 is zero for IPv4";
  EXPECT_EQ(a.words[3], 0u) << "word 3 is zero for IPv4";
  EXPECT_TRUE(a.isV4()) << "isV4()";
  EXPECT_EQ(a.bitLength(), 32) << "bitLength() of IPv4";
}

TEST(IpAddr, ParsesIpv6IntoFourWordsInNetworkOrder) {
  const IpAddr a = mustParse("2001:db8::1:2");
  EXPECT_EQ(a.family, MG_AF_INET6) << "family of an IPv6 address";
  EXPECT_EQ(a.words[0], htonl(0x20010db8)) << "word 0";
  EXPECT_EQ(a.words[1], 0u) << "word 1";
  EXPECT_EQ(a.words[2], 0u) << "word 2";
  EXPECT_EQ(a.words[3], htonl(0x00010002)) << "word 3";
  EXPECT_EQ(a.bitLength(), 128) << "bitLength() of IPv6";
}

TEST(IpAddr, KeepsIpv4MappedAddressAsIpv6) {
  const IpAddr a = mustParse("::ffff:198.18.1.10");
  EXPECT_EQ(a.family, MG_AF_INET6) << "a mapped address stays IPv6";
  EXPECT_TRUE(a.isV4Mapped()) << "isV4Mapped()";
  EXPECT_FALSE(mustParse("198.18.1.10").isV4Mapped()) << "plain IPv4 is not mapped";
}

TEST(IpAddr, PrintsCanonicalText) {
  EXPECT_EQ(mustParse("198.18.100.1").toString(), "198.18.100.1") << "IPv4 round trip";
  EXPECT_EQ(mustParse("2001:DB8:0:0::1").toString(), "2001:db8::1") << "IPv6 canonical form";
  EXPECT_EQ(mustParse("::").toString(), "::") << "IPv6 unspecified";
}

TEST(IpAddr, RejectsMalformedText) {
  for (const char* bad : {"", "198.18.1", "198.18.1.256", "01.2.3.4", " 1.2.3.4", "1.2.3.4 ",
                          "1.2.3.4/32", "fe80::1%eth0", "[::1]", "1::2::3", "gggg::1", "localhost",
                          "0x1.2.3.4", "1:2:3:4:5:6:7:8:9"}) {
    auto a = IpAddr::parse(bad);
    ASSERT_FALSE(a.has_value()) << "\"" << bad << "\" must be rejected";
    EXPECT_NE(a.error().message.find(bad), std::string::npos)
        << "error quotes the input: " << a.error().message;
  }
}

TEST(IpAddr, EqualityComparesFamilyAndWords) {
  EXPECT_EQ(mustParse("198.18.1.10"), mustParse("198.18.1.10")) << "same IPv4";
  EXPECT_NE(mustParse("198.18.1.10"), mustParse("198.18.1.11")) << "different IPv4";
  EXPECT_NE(mustParse("0.0.0.0"), mustParse("::")) << "families differ although words are 0";
}

TEST(IpAddr, OrdersIpv4BeforeIpv6ThenNumerically) {
  // 2.0.0.1 < 1.0.0.2 if words were compared as little-endian integers.
  EXPECT_LT(mustParse("1.0.0.2"), mustParse("2.0.0.1")) << "compares bytes, not LE words";
  EXPECT_LT(mustParse("9.0.0.0"), mustParse("10.0.0.0")) << "numeric, not textual";
  EXPECT_LT(mustParse("255.255.255.255"), mustParse("::")) << "every IPv4 before any IPv6";
  EXPECT_LT(mustParse("2001:db8::ffff"), mustParse("2001:db8::1:0")) << "IPv6 numeric";
  std::vector<IpAddr> v = {mustParse("198.18.1.12"), mustParse("2001:2::1"),
                           mustParse("198.18.1.2")};
  std::sort(v.begin(), v.end());
  EXPECT_EQ(v[0].toString(), "198.18.1.2") << "sorted first";
  EXPECT_EQ(v[1].toString(), "198.18.1.12") << "sorted second";
  EXPECT_EQ(v[2].toString(), "2001:2::1") << "sorted third";
}

TEST(IpAddr, ClassifiesSpecialAddresses) {
  EXPECT_TRUE(mustParse("0.0.0.0").isUnspecified()) << "0.0.0.0";
  EXPECT_TRUE(mustParse("::").isUnspecified()) << "::";
  EXPECT_TRUE(mustParse("127.1.2.3").isLoopback()) << "127/8";
  EXPECT_TRUE(mustParse("::1").isLoopback()) << "::1";
  EXPECT_TRUE(mustParse("224.0.0.1").isMulticast()) << "224/4";
  EXPECT_TRUE(mustParse("239.255.255.255").isMulticast()) << "top of 224/4";
  EXPECT_TRUE(mustParse("ff02::1").isMulticast()) << "ff00::/8";
  EXPECT_FALSE(mustParse("198.18.1.10").isUnspecified()) << "unicast v4 is specified";
  EXPECT_FALSE(mustParse("198.18.1.10").isLoopback()) << "unicast v4 is not loopback";
  EXPECT_FALSE(mustParse("198.18.1.10").isMulticast()) << "unicast v4 is not multicast";
  EXPECT_FALSE(mustParse("2001:2::1").isMulticast()) << "unicast v6 is not multicast";
}

TEST(IpPrefix, ParsesIpv4PrefixAndMasks) {
  auto p = IpPrefix::parse("198.18.255.0/24");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->len, 24) << "length";
  EXPECT_EQ(p->addr.toString(), "198.18.255.0") << "network address";
  EXPECT_EQ(p->mask().words[0], htonl(0xffffff00)) << "netmask, big-endian";
  EXPECT_EQ(p->hostMask().words[0], htonl(0x000000ff)) << "host mask, big-endian";
  EXPECT_EQ(p->hostMask().words[1], 0u) << "IPv4 host mask leaves word 1 zero";
  EXPECT_EQ(p->toString(), "198.18.255.0/24") << "round trip";
  EXPECT_TRUE(p->contains(mustParse("198.18.255.77"))) << "inside";
  EXPECT_FALSE(p->contains(mustParse("198.18.254.77"))) << "outside";
  EXPECT_FALSE(p->contains(mustParse("::"))) << "other family";
}

TEST(IpPrefix, ParsesIpv6PrefixAndMasksAcrossWords) {
  auto p = IpPrefix::parse("fd00:ffff::/96");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  const IpAddr m = p->mask();
  EXPECT_EQ(m.words[0], 0xffffffffu) << "word 0 of /96";
  EXPECT_EQ(m.words[2], 0xffffffffu) << "word 2 of /96";
  EXPECT_EQ(m.words[3], 0u) << "word 3 of /96 is host bits";
  EXPECT_EQ(p->hostMask().words[3], 0xffffffffu) << "host mask is the last word";
  EXPECT_EQ(p->hostMask().words[2], 0u) << "host mask leaves word 2 clear";

  auto p100 = IpPrefix::parse("2001:db8::/100");
  ASSERT_TRUE(p100.has_value()) << p100.error().message;
  EXPECT_EQ(p100->mask().words[3], htonl(0xf0000000)) << "/100 sets 4 bits of word 3";
  EXPECT_TRUE(p100->contains(mustParse("2001:db8::0fff:ffff"))) << "inside /100";
  EXPECT_FALSE(p100->contains(mustParse("2001:db8::1000:0"))) << "outside /100";
}

TEST(IpPrefix, AcceptsZeroAndFullLengths) {
  auto any = IpPrefix::parse("0.0.0.0/0");
  ASSERT_TRUE(any.has_value()) << any.error().message;
  EXPECT_EQ(any->mask().words[0], 0u) << "/0 mask";
  EXPECT_TRUE(any->contains(mustParse("198.18.1.1"))) << "/0 contains every IPv4";
  auto host = IpPrefix::parse("2001:db8::1/128");
  ASSERT_TRUE(host.has_value()) << host.error().message;
  EXPECT_EQ(host->hostMask().words[3], 0u) << "/128 has no host bits";
}

TEST(IpPrefix, RejectsHostBitsAndSuggestsTheNetwork) {
  auto p = IpPrefix::parse("198.18.255.1/24");
  ASSERT_FALSE(p.has_value()) << "host bits set must be rejected";
  EXPECT_NE(p.error().message.find("did you mean 198.18.255.0/24"), std::string::npos)
      << p.error().message;
  EXPECT_FALSE(IpPrefix::parse("fd00:ffff::1/96").has_value()) << "IPv6 host bits";
}

TEST(IpPrefix, RejectsMalformedText) {
  for (const char* bad :
       {"198.18.255.0", "198.18.255.0/", "198.18.255.0/33", "::/129", "198.18.255.0/024",
        "198.18.255.0/-1", "198.18.255.0/2x", "/24", "198.18.255/24", "198.18.255.0/24/1"}) {
    EXPECT_FALSE(IpPrefix::parse(bad).has_value()) << "\"" << bad << "\" must be rejected";
  }
}

TEST(SockAddr, ParsesIpv4AndBracketedIpv6WithPort) {
  auto v4 = SockAddr::parse("127.0.0.1:9464");
  ASSERT_TRUE(v4.has_value()) << v4.error().message;
  EXPECT_EQ(v4->addr.toString(), "127.0.0.1") << "IPv4 host";
  EXPECT_EQ(v4->port, 9464) << "IPv4 port";
  auto v6 = SockAddr::parse("[::1]:0");
  ASSERT_TRUE(v6.has_value()) << v6.error().message;
  EXPECT_TRUE(v6->addr.isV6()) << "IPv6 host";
  EXPECT_EQ(v6->port, 0) << "port 0 = any free port";
  EXPECT_EQ(v6->toString(), "[::1]:0") << "IPv6 printed bracketed";
  EXPECT_EQ(SockAddr::parse("[2001:DB8::1]:65535")->toString(), "[2001:db8::1]:65535")
      << "canonical text";
}

TEST(SockAddr, RejectsMalformedText) {
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:", ":9464", "localhost:9464", "::1:9464", "[::1]", "[::1]9464",
        "[127.0.0.1]:80", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x", "[::1:80"}) {
    EXPECT_FALSE(SockAddr::parse(bad).has_value()) << "\"" << bad << "\" must be rejected";
  }
}

}  // namespace
}  // namespace meshgate::agent
