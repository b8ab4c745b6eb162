// The pieces of RFC 9110 / 9112 (and RFC 3986 for hosts) grammar the HTTP/1.1 parser is built
// from: character classes, tokens, lists, versions, Content-Length, chunk lines and target
// forms. Pure functions over complete lines or values; when one rejects its input it says at
// which index, so that the parser can report a stream offset.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <expected>
#include <limits>
#include <string_view>

#include "proxy/http1/parser.h"

namespace meshgate::http1::grammar {

/// Content-Length and chunk sizes must stay below 2^63.
inline constexpr uint64_t kMaxLength = std::numeric_limits<int64_t>::max();

// Character classes, one bit each.
inline constexpr uint8_t kTchar = 1;        // token (RFC 9110 §5.6.2)
inline constexpr uint8_t kVchar = 2;        // 0x21..0x7e
inline constexpr uint8_t kFieldChar = 4;    // field-value, reason-phrase: HTAB SP VCHAR obs-text
inline constexpr uint8_t kHex = 8;          // HEXDIG
inline constexpr uint8_t kRegName = 16;     // reg-name (RFC 3986) but '%': unreserved, sub-delims
inline constexpr uint8_t kSchemeChar = 32;  // ALPHA / DIGIT / "+" / "-" / "."

constexpr std::array<uint8_t, 256> makeClasses() {
  std::array<uint8_t, 256> t{};
  auto set = [&t](std::string_view chars, uint8_t bit) {
    for (char c : chars) {
      t[static_cast<unsigned char>(c)] |= bit;
    }
  };
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (alpha || digit) {
      t[c] |= kTchar | kRegName | kSchemeChar;
    }
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
      t[c] |= kHex;
    }
    if (c >= 0x21 && c <= 0x7e) {
      t[c] |= kVchar | kFieldChar;
    }
    if (c >= 0x80 || c == ' ' || c == '\t') {
      t[c] |= kFieldChar;
    }
  }
  set("!#$%&'*+-.^_`|~", kTchar);
  set("-._~!$&'()*+,;=", kRegName);
  set("+-.", kSchemeChar);
  return t;
}
inline constexpr std::array<uint8_t, 256> kClasses = makeClasses();

inline bool is(char c, uint8_t cls) {
  return (kClasses[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool isWs(char c) {
  return c == ' ' || c == '\t';
}
inline bool isDigit(char c) {
  return c >= '0' && c <= '9';
}
inline char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c;
}
/// `s` equals the lower-case literal `lit`, ignoring ASCII case.
inline bool iequals(std::string_view s, std::string_view lit) {
  if (s.size() != lit.size()) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (lower(s[i]) != lit[i]) {
      return false;
    }
  }
  return true;
}
/// `a` equals `b`, ignoring ASCII case (both may be in any case).
inline bool caseless(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) {
      return false;
    }
  }
  return true;
}
/// The end of the token starting at i (i itself when there is none).
inline size_t tokenEnd(std::string_view s, size_t i) {
  while (i < s.size() && is(s[i], kTchar)) {
    ++i;
  }
  return i;
}
inline size_t skipWs(std::string_view s, size_t i) {
  while (i < s.size() && isWs(s[i])) {
    ++i;
  }
  return i;
}

/// The index of the first byte from i on that may not appear in a field value (a CTL but
/// HTAB, or DEL), else s.size().
// Values are most of a head and rarely hold a bad byte: eight-byte words with no byte below
// 0x20 and none equal to 0x7f are skipped whole. The SWAR tests may flag a clean word (a
// borrow crosses bytes; HTAB is below 0x20) but never miss a dirty one, and a flagged word is
// checked byte by byte.
inline size_t fieldValueEnd(std::string_view s, size_t i) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  while (i < s.size()) {
    if (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, sizeof(w));
      const uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
      const uint64_t x = w ^ (kOnes * 0x7f);
      const uint64_t del = (x - kOnes) & ~x & kHigh;
      if ((below_space | del) == 0) {
        i += 8;
        continue;
      }
    }
    for (const size_t stop = std::min(i + 8, s.size()); i < stop; ++i) {
      if (!is(s[i], kFieldChar)) {
        return i;
      }
    }
  }
  return s.size();
}

/// Calls f(element, index in s) for each element of a comma-separated list, OWS trimmed, empty
/// ones included; stops at the first f that returns false.
template <class F>
void forEachListElement(std::string_view s, F&& f) {
  size_t i = 0;
  while (true) {
    const size_t comma = std::min(s.find(',', i), s.size());
    const size_t b = skipWs(s, i);
    size_t e = comma;
    while (e > b && isWs(s[e - 1])) {
      --e;
    }
    if (!f(s.substr(b, e - b), b) || comma == s.size()) {
      return;
    }
    i = comma + 1;
  }
}

/// Where and why a piece of grammar was rejected.
struct Bad {
  ErrorCode code;
  size_t index;
};

/// HTTP-version: exactly "HTTP/1.1" or "HTTP/1.0"; another well-formed one is
/// kVersionNotSupported, anything else kInvalidVersion (index 0).
std::expected<Version, Bad> version(std::string_view s);

/// Content-Length = 1*DIGIT below 2^63 (leading zeros allowed); the error is the index of the
/// first offending byte (0 when empty).
std::expected<uint64_t, size_t> contentLength(std::string_view value);

/// A chunk line without its CRLF: chunk-size [ chunk-ext ], where
/// chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
/// Returns the chunk size; extensions are checked and dropped.
std::expected<uint64_t, Bad> chunkSize(std::string_view line);

/// uri-host [ ":" port ] (RFC 9110 §7.2) as in Host: reg-name, IPv4 or a bracketed IP-literal,
/// the port at most 65535. For CONNECT's authority-form (`connect`) the host and the port
/// are required.
bool validAuthority(std::string_view s, bool connect);

/// The request-target's form suits the method (RFC 9112 §3.2): authority-form for CONNECT
/// only, "*" for OPTIONS only, else origin-form or absolute-form. `target` is not empty.
bool validTargetForm(Method method, std::string_view target);

}  // namespace meshgate::http1::grammar
