#include "proxy/http1/grammar.h"

#include <algorithm>
#include <cstring>

namespace meshgate::http1::grammar {
namespace {

unsigned hexValue(char c) {
  return isDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

}  // namespace

std::expected<Version, Bad> version(std::string_view s) {
  if (s == "HTTP/1.1") {
    return Version::kHttp11;
  }
  if (s == "HTTP/1.0") {
    return Version::kHttp10;
  }
  if (s.size() == 8 && s.starts_with("HTTP/") && isDigit(s[5]) && s[6] == '.' && isDigit(s[7])) {
    return std::unexpected(Bad{ErrorCode::kVersionNotSupported, 0});
  }
  return std::unexpected(Bad{ErrorCode::kInvalidVersion, 0});
}

std::expected<uint64_t, size_t> contentLength(std::string_view value) {
  if (value.empty()) {
    return std::unexpected(size_t{0});
  }
  uint64_t n = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned d = value[i] - '0';
    if (!isDigit(value[i]) || n > (kMaxLength - d) / 10) {
      return std::unexpected(i);
    }
    n = n * 10 + d;
  }
  return n;
}

std::expected<uint64_t, Bad> chunkSize(std::string_view line) {
  auto bad = [](ErrorCode code, size_t i) { return std::unexpected(Bad{code, i}); };
  uint64_t size = 0;
  size_t i = 0;
  for (; i < line.size() && is(line[i], kHex); ++i) {
    const unsigned d = hexValue(line[i]);
    if (size > (kMaxLength - d) / 16) {
      return bad(ErrorCode::kInvalidChunkSize, i);
    }
    size = size * 16 + d;
  }
  if (i == 0) {
    return bad(ErrorCode::kInvalidChunkSize, 0);
  }
  bool in_extension = false;
  while (i < line.size()) {
    i = skipWs(line, i);
    if (i == line.size() || line[i] != ';') {
      return bad(in_extension ? ErrorCode::kInvalidChunkExtension : ErrorCode::kInvalidChunkSize,
                 i);
    }
    in_extension = true;
    i = skipWs(line, i + 1);
    const size_t name_end = tokenEnd(line, i);
    if (name_end == i) {
      return bad(ErrorCode::kInvalidChunkExtension, i);
    }
    i = skipWs(line, name_end);
    if (i == line.size() || line[i] != '=') {
      continue;
    }
    i = skipWs(line, i + 1);
    if (i < line.size() && line[i] == '"') {
      // quoted-string: qdtext is HTAB / SP / VCHAR but '"' and '\' / obs-text; quoted-pair
      // is '\' and one of HTAB / SP / VCHAR / obs-text.
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\') {
          ++i;
        }
        if (i == line.size() || !is(line[i], kFieldChar)) {
          return bad(ErrorCode::kInvalidChunkExtension, i);
        }
      }
      if (i == line.size()) {
        return bad(ErrorCode::kInvalidChunkExtension, i);
      }
      ++i;
    } else {
      const size_t value_end = tokenEnd(line, i);
      if (value_end == i) {
        return bad(ErrorCode::kInvalidChunkExtension, i);
      }
      i = value_end;
    }
  }
  return size;
}

bool validAuthority(std::string_view s, bool connect) {
  size_t i = 0;
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close == 1) {
      return false;
    }
    for (i = 1; i < close; ++i) {
      if (!is(s[i], kHex | kRegName) && s[i] != ':') {
        return false;
      }
    }
    i = close + 1;
  } else {
    while (i < s.size() && s[i] != ':') {
      if (s[i] == '%') {
        if (i + 2 >= s.size() || !is(s[i + 1], kHex) || !is(s[i + 2], kHex)) {
          return false;
        }
        i += 2;
      } else if (!is(s[i], kRegName)) {
        return false;
      }
      ++i;
    }
    if (connect && i == 0) {
      return false;
    }
  }
  if (i == s.size()) {
    return !connect;
  }
  if (s[i] != ':') {
    return false;
  }
  const std::string_view port = s.substr(i + 1);
  if (port.size() > 5 || (connect && port.empty()) ||
      !std::all_of(port.begin(), port.end(), isDigit)) {
    return false;
  }
  uint32_t value = 0;
  for (char c : port) {
    value = value * 10 + (c - '0');
  }
  return value <= 65535;
}

bool validTargetForm(Method method, std::string_view target) {
  if (method == Method::kConnect) {
    return validAuthority(target, true);
  }
  if (target == "*") {
    return method == Method::kOptions;
  }
  if (target[0] == '/') {
    return true;
  }
  // absolute-form: scheme ":" ..., the scheme starting with ALPHA.
  const char first = lower(target[0]);
  size_t i = 1;
  while (i < target.size() && is(target[i], kSchemeChar)) {
    ++i;
  }
  return first >= 'a' && first <= 'z' && i < target.size() && target[i] == ':';
}

}  // namespace meshgate::http1::grammar
