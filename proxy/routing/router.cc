#include "proxy/routing/router.h"

#include <algorithm>
#include <array>

#include "proxy/http1/grammar.h"

namespace meshgate::proxy {
namespace {

// Host patterns and header names in the config are lower case (the parser lowers them).
using http1::grammar::iequals;

// The host that routes see: the Host (or the target's authority) without its port; an
// IPv6 literal keeps its brackets ("[::1]:8080" -> "[::1]").
std::string_view hostOnly(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    if (auto close = host.find(']'); close != std::string_view::npos) {
      return host.substr(0, close + 1);
    }
    return host;
  }
  if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  return host;
}

// `pattern` is lower case; "*.example.com" matches any subdomain, "" any host.
bool hostMatches(std::string_view pattern, std::string_view host) {
  if (pattern.empty()) {
    return true;
  }
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix);
  }
  return iequals(host, pattern);  // the request's host in any case, the pattern lower
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

namespace {

// Everything of a route's match but the host.
bool matchesBeyondHost(const RouteMatch& m, const http1::MessageHead& head, std::string_view path,
                       std::string_view query, const HeaderList& headers) {
  if (!m.method.empty() && m.method != head.method_token) {
    return false;
  }
  if (m.path && !m.path->matches(path)) {
    return false;
  }
  const bool headers_ok =
      std::all_of(m.headers.begin(), m.headers.end(), [&](const HeaderMatch& h) {
        auto v = headerValue(headers, h.name);
        return v && h.match.matches(*v);
      });
  return headers_ok && std::all_of(m.query.begin(), m.query.end(), [&](const HeaderMatch& q) {
           auto v = queryParam(query, q.name);
           return v && q.match.matches(*v);
         });
}

}  // namespace

bool routeMatches(const Route& route, const http1::MessageHead& head, std::string_view target,
                  const HeaderList& headers) {
  const auto [path, query] = splitTarget(target);
  return hostMatches(route.match.host, hostOnly(head.host)) &&
         matchesBeyondHost(route.match, head, path, query, headers);
}

const Route* matchRoute(const Listener& listener, const http1::MessageHead& head,
                        std::string_view target, const HeaderList& headers) {
  const HostIndex& index = listener.hosts;
  const std::string_view host = hostOnly(head.host);
  // Only the last `relevant` bytes can decide: no exact route has a longer host and no
  // wildcard a longer suffix (patterns are at most 255 characters), so a client's long
  // Host costs no more than a short one.
  char lowered[256];
  const size_t relevant = std::min(
      {host.size(), std::max(index.longest_exact, index.longest_wildcard), sizeof lowered});
  for (size_t i = 0; i < relevant; i++) {
    lowered[i] = http1::grammar::lower(host[host.size() - relevant + i]);
  }
  const std::string_view tail(lowered, relevant);

  // Up to three lists, each in route order, merged by route index so the first match wins.
  std::array<const HostIndex::Routes*, 3> lists;
  size_t n = 0;
  if (host.size() <= index.longest_exact) {
    if (auto it = index.exact.find(tail); it != index.exact.end()) {
      lists[n++] = &it->second;
    }
  }
  if (!index.wildcard.empty()) {
    // The longest suffix first: ".a.example.com" before ".example.com". A suffix starts at
    // a dot that is not the host's first byte.
    const size_t from = host.size() - relevant;
    for (size_t dot = tail.find('.'); dot != std::string_view::npos;
         dot = tail.find('.', dot + 1)) {
      if (from + dot == 0 || tail.size() - dot > index.longest_wildcard) {
        continue;
      }
      if (auto it = index.wildcard.find(tail.substr(dot)); it != index.wildcard.end()) {
        lists[n++] = &it->second;
        break;
      }
    }
  }
  if (!index.any.empty()) {
    lists[n++] = &index.any;
  }

  const auto [path, query] = splitTarget(target);
  std::array<size_t, 3> next{};
  for (;;) {
    size_t best = n;
    uint32_t route = 0;
    for (size_t k = 0; k < n; k++) {
      if (next[k] < lists[k]->size() && (best == n || (*lists[k])[next[k]] < route)) {
        best = k;
        route = (*lists[k])[next[k]];
      }
    }
    if (best == n) {
      return nullptr;
    }
    next[best]++;
    const Route& r = listener.routes[route];
    if (matchesBeyondHost(r.match, head, path, query, headers)) {
      return &r;
    }
  }
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
