#include "proxy/routing/router.h"

#include <algorithm>

#include "proxy/http1/grammar.h"

namespace meshgate::proxy {
namespace {

// Host patterns and header names in the config are lower case (the parser lowers them).
using http1::grammar::iequals;

// Host without the port, compared case-insensitively; "*.example.com" matches subdomains.
bool hostMatches(std::string_view pattern, std::string_view host) {
  if (pattern.empty()) {
    return true;
  }
  if (!host.empty() && host.front() != '[') {
    if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
      host = host.substr(0, colon);
    }
  }
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix);
  }
  return iequals(pattern, host);
}

std::optional<std::string_view> headerValue(const HeaderList& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

}  // namespace

std::pair<std::string_view, std::string_view> splitTarget(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) {
    return {target, {}};
  }
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::string_view> queryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

const Route* matchRoute(const Listener& listener, const http1::MessageHead& head,
                        std::string_view target, const HeaderList& headers) {
  const auto [path, query] = splitTarget(target);
  for (const Route& r : listener.routes) {
    const RouteMatch& m = r.match;
    if (!hostMatches(m.host, head.host)) {
      continue;
    }
    if (!m.method.empty() && m.method != head.method_token) {
      continue;
    }
    if (m.path && !m.path->matches(path)) {
      continue;
    }
    const bool headers_ok = std::all_of(m.headers.begin(), m.headers.end(), [&](const HeaderMatch& h) {
      auto v = headerValue(headers, h.name);
      return v && h.match.matches(*v);
    });
    if (!headers_ok) {
      continue;
    }
    const bool query_ok = std::all_of(m.query.begin(), m.query.end(), [&](const HeaderMatch& q) {
      auto v = queryParam(query, q.name);
      return v && q.match.matches(*v);
    });
    if (query_ok) {
      return &r;
    }
  }
  return nullptr;
}

std::optional<std::string_view> hashKeyOf(const Cluster& cluster, const HeaderList& headers) {
  if (!cluster.hash_header.empty()) {
    return headerValue(headers, cluster.hash_header);
  }
  // Cookie: name=value; name2=value2 (possibly several Cookie fields).
  for (const auto& [n, v] : headers) {
    if (!iequals(n, "cookie")) {
      continue;
    }
    std::string_view rest = v;
    while (!rest.empty()) {
      const auto semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      while (!pair.empty() && pair.front() == ' ') {
        pair.remove_prefix(1);
      }
      const auto eq = pair.find('=');
      if (eq != std::string_view::npos && pair.substr(0, eq) == cluster.hash_cookie) {
        return pair.substr(eq + 1);
      }
      if (semi == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

}  // namespace meshgate::proxy
