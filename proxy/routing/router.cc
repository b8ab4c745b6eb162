#include "proxy/routing/router.h"

#include <algorithm>
#include <array>

#include "proxy/http1/grammar.h"

namespace meshgate::proxy {
namespace {

// Host patterns and header names in the config are lower case (the parser lowers them).
using http1::grammar::iequals;

// The host that routes see: the Host (or the target's authority) without its port, unless
// it is an IPv6 literal.
std::string_view hostOnly(std::string_view host) {
  if (!host.empty() && host.front() != '[') {
    if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
      host = host.substr(0, colon);
    }
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

const Route* scanAll(const Listener& listener, const http1::MessageHead& head,
                     std::string_view target, const HeaderList& headers) {
  for (const Route& r : listener.routes) {
    if (routeMatches(r, head, target, headers)) {
      return &r;
    }
  }
  return nullptr;
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
  const std::string_view host = hostOnly(head.host);
  char lowered[256];
  if (host.size() > sizeof lowered) {
    return scanAll(listener, head, target, headers);  // longer than any DNS name
  }
  for (size_t i = 0; i < host.size(); i++) {
    const char c = host[i];
    lowered[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
  const std::string_view key(lowered, host.size());

  // The routes this host can match come from up to three kinds of lists, each in route
  // order: its exact host, each "*.suffix" it falls under, and the routes for any host.
  // They are merged by route index so that the first match still wins.
  constexpr size_t kMaxLists = 8;
  std::array<const HostIndex::Routes*, kMaxLists> lists;
  size_t n = 0;
  const HostIndex& index = listener.hosts;
  if (!index.exact.empty()) {
    if (auto it = index.exact.find(key); it != index.exact.end()) {
      lists[n++] = &it->second;
    }
  }
  if (!index.wildcard.empty()) {
    for (size_t dot = key.find('.', 1); dot != std::string_view::npos;
         dot = key.find('.', dot + 1)) {
      if (auto it = index.wildcard.find(key.substr(dot)); it != index.wildcard.end()) {
        if (n == kMaxLists - 1) {
          return scanAll(listener, head, target, headers);  // nested wildcards, rare
        }
        lists[n++] = &it->second;
      }
    }
  }
  if (!index.any.empty()) {
    lists[n++] = &index.any;
  }

  const auto [path, query] = splitTarget(target);
  std::array<size_t, kMaxLists> next{};
  for (;;) {
    size_t best = kMaxLists;
    uint32_t route = 0;
    for (size_t k = 0; k < n; k++) {
      if (next[k] < lists[k]->size() && (best == kMaxLists || (*lists[k])[next[k]] < route)) {
        best = k;
        route = (*lists[k])[next[k]];
      }
    }
    if (best == kMaxLists) {
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
