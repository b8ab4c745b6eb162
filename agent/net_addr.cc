#include "agent/net_addr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace meshgate::agent {
namespace {

// Words numbered from the most significant; for IPv4 only word 0 is meaningful.
uint32_t hostWord(const IpAddr& a, size_t i) {
  return ntohl(a.words[i]);
}

size_t wordCount(const IpAddr& a) {
  return a.isV4() ? 1 : 4;
}

IpAddr maskOf(uint8_t family, unsigned len) {
  IpAddr m{family, {}};
  for (size_t i = 0; i < wordCount(m); ++i) {
    const unsigned first_bit = 32 * i;
    const unsigned bits = len <= first_bit ? 0 : std::min(32u, len - first_bit);
    const uint32_t host = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    m.words[i] = htonl(host);
  }
  return m;
}

}  // namespace

Result<IpAddr> IpAddr::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string; the longest valid IPv6 text is 45 characters.
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) {
    return fail("not an IP address: \"" + std::string(text) + "\"");
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';

  IpAddr a;
  if (inet_pton(AF_INET, buf, &a.words[0]) == 1) {
    a.family = MG_AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.words.data()) == 1) {
    a.family = MG_AF_INET6;
    return a;
  }
  return fail("not an IP address: \"" + std::string(text) + "\"");
}

bool IpAddr::isUnspecified() const {
  return words == std::array<uint32_t, 4>{};
}

bool IpAddr::isLoopback() const {
  if (isV4()) {
    return (hostWord(*this, 0) >> 24) == 127;
  }
  return words[0] == 0 && words[1] == 0 && words[2] == 0 && hostWord(*this, 3) == 1;
}

bool IpAddr::isMulticast() const {
  if (isV4()) {
    return (hostWord(*this, 0) >> 28) == 0xe;
  }
  return (hostWord(*this, 0) >> 24) == 0xff;
}

bool IpAddr::isV4Mapped() const {
  return isV6() && words[0] == 0 && words[1] == 0 && hostWord(*this, 2) == 0xffff;
}

std::string IpAddr::toString() const {
  char buf[INET6_ADDRSTRLEN];
  const int af = isV4() ? AF_INET : AF_INET6;
  if (inet_ntop(af, words.data(), buf, sizeof(buf)) == nullptr) {
    return "<bad address>";
  }
  return buf;
}

std::strong_ordering operator<=>(const IpAddr& a, const IpAddr& b) {
  if (auto c = a.family <=> b.family; c != 0) {
    return c;
  }
  for (size_t i = 0; i < a.words.size(); ++i) {
    if (auto c = hostWord(a, i) <=> hostWord(b, i); c != 0) {
      return c;
    }
  }
  return std::strong_ordering::equal;
}

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return fail("not an IP prefix (missing \"/length\"): \"" + std::string(text) + "\"");
  }
  auto addr = IpAddr::parse(text.substr(0, slash));
  if (!addr) {
    return fail("not an IP prefix: \"" + std::string(text) + "\"");
  }
  const std::string_view len_text = text.substr(slash + 1);
  unsigned len = 0;
  const char* end = len_text.data() + len_text.size();
  auto [ptr, ec] = std::from_chars(len_text.data(), end, len);
  const bool leading_zero = len_text.size() > 1 && len_text[0] == '0';
  if (len_text.empty() || ec != std::errc() || ptr != end || leading_zero ||
      len > addr->bitLength()) {
    return fail("not an IP prefix (length must be 0.." + std::to_string(addr->bitLength()) +
                "): \"" + std::string(text) + "\"");
  }

  IpPrefix p{*addr, static_cast<uint8_t>(len)};
  const IpAddr m = p.mask();
  IpAddr network = *addr;
  for (size_t i = 0; i < 4; ++i) {
    network.words[i] &= m.words[i];
  }
  if (network != *addr) {
    return fail("host bits set beyond /" + std::to_string(len) + " in \"" + std::string(text) +
                "\" (did you mean " + network.toString() + "/" + std::to_string(len) + "?)");
  }
  return p;
}

IpAddr IpPrefix::mask() const {
  return maskOf(addr.family, len);
}

IpAddr IpPrefix::hostMask() const {
  IpAddr m = mask();
  for (size_t i = 0; i < wordCount(m); ++i) {
    m.words[i] = ~m.words[i];
  }
  return m;
}

bool IpPrefix::contains(const IpAddr& a) const {
  if (a.family != addr.family) {
    return false;
  }
  const IpAddr m = mask();
  for (size_t i = 0; i < 4; ++i) {
    if ((a.words[i] & m.words[i]) != addr.words[i]) {
      return false;
    }
  }
  return true;
}

std::string IpPrefix::toString() const {
  return addr.toString() + "/" + std::to_string(len);
}

Result<SockAddr> SockAddr::parse(std::string_view text) {
  const bool bracketed = !text.empty() && text.front() == '[';
  size_t colon = text.rfind(':');
  if (bracketed) {
    const auto close = text.find("]:");
    colon = close == std::string_view::npos ? close : close + 1;
  }
  auto bad = [&text] {
    return fail("not an address:port (\"IPv4:port\" or \"[IPv6]:port\"): \"" + std::string(text) +
                "\"");
  };
  if (colon == std::string_view::npos) {
    return bad();
  }
  const std::string_view host = bracketed ? text.substr(1, colon - 2) : text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  auto addr = IpAddr::parse(host);
  uint16_t p = 0;
  const char* end = port.data() + port.size();
  auto [ptr, ec] = std::from_chars(port.data(), end, p);
  if (!addr || addr->isV6() != bracketed || port.empty() || ec != std::errc() || ptr != end) {
    return bad();
  }
  return SockAddr{*addr, p};
}

std::string SockAddr::toString() const {
  const std::string host = addr.isV6() ? "[" + addr.toString() + "]" : addr.toString();
  return host + ":" + std::to_string(port);
}

}  // namespace meshgate::agent
