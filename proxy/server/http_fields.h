// Header fields as they cross the proxy, whatever the HTTP versions on either side.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http1/grammar.h"
#include "proxy/net/buffer.h"
#include "proxy/routing/router.h"

namespace meshgate::proxy {

// Hop-by-hop fields (RFC 9110 §7.6.1), Transfer-Encoding among them, and HTTP2-Settings
// (connection-specific, RFC 9113 §3.2.1): never forwarded.
// (Content-Length is not: a response keeps it; a request's is restated from its framing.
// Nor is Trailer, RFC 2616's "Trailers": it announces end-to-end trailer fields, which
// the proxy forwards.)
bool hopByHop(std::string_view name);

// Fields other than X-Forwarded-For in which a request states the client's address for the
// backend: Forwarded (RFC 7239), X-Real-IP, X-Client-IP, X-Cluster-Client-IP, and the CDN
// ones True-Client-IP, CF-Connecting-IP and Fastly-Client-IP. An edge listener
// (x_forwarded_for "replace") drops them with the client's X-Forwarded-For: a client that
// reaches it directly could name any address in them, and a backend that reads one of them
// would believe it.
bool clientAddressField(std::string_view name);

// The names that the Connection fields of `fields` (pairs of strings) list, other than
// hop-by-hop ones, which are dropped anyway ("Connection: keep-alive" names nothing more),
// and other than Content-Length: framing that a Connection field could strip would leave
// the message without its length ("Connection: content-length"), which a keep-alive peer
// could not tell from the next message. Copies, so that the fields may move; usually empty,
// so no allocation.
template <class Fields>
std::vector<std::string> namedByConnection(const Fields& fields) {
  std::vector<std::string> named;
  for (const auto& [name, value] : fields) {
    if (http1::grammar::iequals(name, "connection")) {
      if (http1::grammar::iequals(value, "keep-alive") || http1::grammar::iequals(value, "close")) {
        continue;  // the usual values, which name nothing: no list to parse
      }
      http1::grammar::forEachListElement(value, [&](std::string_view t, size_t) {
        if (!t.empty() && !hopByHop(t) && !http1::grammar::iequals(t, "content-length")) {
          named.emplace_back(t);
        }
        return true;
      });
    }
  }
  return named;
}

// Whether a field called `name` is forwarded, given namedByConnection() of its list.
inline bool forwardable(std::string_view name, const std::vector<std::string>& named) {
  return !hopByHop(name) && std::none_of(named.begin(), named.end(), [&](const std::string& t) {
    return http1::grammar::caseless(t, name);
  });
}

// Calls fn(name, value) for each field of `fields` that is neither hop-by-hop nor named by
// a Connection field (hop-by-hop too).
template <class Fields, class Fn>
void forEachForwardable(const Fields& fields, Fn fn) {
  const std::vector<std::string> named = namedByConnection(fields);
  for (const auto& [name, value] : fields) {
    if (forwardable(name, named)) {
      fn(name, value);
    }
  }
}

// `fields` without hop-by-hop fields and without the fields that a Connection field names
// (hop-by-hop too); with `lower_case` the names are lower-cased (HTTP/2 requires it).
// Filtered in place: pass an rvalue to spare the copy.
HeaderList forwardableFields(HeaderList fields, bool lower_case);

// A trailer section to pass on: forwardableFields() without Content-Length, a framing field
// that means nothing after the body (RFC 9110 §6.5.1), nor Trailer, which belongs in the
// header section.
HeaderList forwardableTrailers(HeaderList fields, bool lower_case);
bool forwardableTrailer(std::string_view name);  // the same test for one field

// Trailer announces the fields of a trailer section (RFC 9110 §6.6.2): a head whose body
// cannot carry one (framed by length or by close) does not pass it on.
inline bool announcesTrailers(std::string_view name) {
  return http1::grammar::iequals(name, "trailer");
}

std::string lowerCase(std::string_view s);

// Appends a chunk-size line ("1f40\r\n") for a chunk of n bytes.
void appendChunkHeader(Buffer& out, size_t n);

// Appends "<name>: <value>\r\n".
inline void appendField(Buffer& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

// Appends "HTTP/1.1 <status> <reason>\r\n".
void appendStatusLine(Buffer& out, uint16_t status, std::string_view reason);

// GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2): a request that may be sent
// again after a failure that left its fate unknown.
bool idempotent(std::string_view method);

// The reason phrase of a status for an HTTP/1.1 status line ("" when uncommon).
std::string_view reasonPhrase(uint16_t status);

// "/./", "/../", a trailing "/." or "/..", also percent-encoded (%2e), in the path part:
// routes match the raw path, so a backend that resolved "/public/../admin" would serve a
// path that no route allowed. Such requests are refused (400) rather than normalised.
bool hasDotSegment(std::string_view target);

}  // namespace meshgate::proxy
