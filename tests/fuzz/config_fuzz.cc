// libFuzzer target for the two config parsers, the agent's (agent/config.h) and the
// proxy's (proxy/routing/config.h): whatever the file holds, parsing returns a config or
// an error that names the file; it never throws, crashes or hangs. An accepted config keeps
// the invariants the rest of the code relies on without checking:
// - agent: every VIP's ring size is a prime above its backend count; a config is
//   reloadable onto itself and differs from itself in nothing;
// - proxy: every route's and TCP listener's cluster index names the cluster it was given
//   by name, every regex match has its compiled regex, each listener's host index lists
//   every route in order (exact and any-host routes once, wildcard routes under their own
//   suffix), and matchRoute() picks the same route as a scan with routeMatches() for hosts
//   made from the listener's own patterns (in other case, with ports, without a label).
//
// Byte 0 picks the parser (bit 0: proxy); the rest is the file.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.h"
#include "proxy/routing/config.h"
#include "proxy/routing/router.h"

namespace {

void require(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) {
    std::fprintf(stderr, "config fuzz: %s %.*s\n", what, static_cast<int>(detail.size()),
                 detail.data());
    std::abort();
  }
}

bool isPrime(uint32_t n) {
  if (n < 2) {
    return false;
  }
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; d++) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

void checkAgent(std::string_view text) {
  auto cfg = meshgate::agent::parseConfig(text, "fuzz.json");
  if (!cfg) {
    require(cfg.error().message.starts_with("fuzz.json"),
            "error without the file:", cfg.error().message);
    return;
  }
  for (const auto& vip : (*cfg)->vips) {
    require(isPrime(vip.ring_size), "ring size not prime:", vip.name);
    require(vip.ring_size > vip.backends.size(), "ring smaller than its backends:", vip.name);
  }
  require(meshgate::agent::checkReloadable(**cfg, **cfg).has_value(), "not reloadable onto itself");
  require(meshgate::agent::diffVips(**cfg, **cfg).empty(), "differs from itself");
}

void checkStringMatch(const meshgate::proxy::StringMatch& m) {
  require(m.kind != meshgate::proxy::StringMatch::Kind::kRegex || m.regex != nullptr,
          "regex match without a regex:", m.value);
}

void checkProxy(std::string_view text) {
  auto cfg = meshgate::proxy::parseProxyConfig(text, "fuzz.json");
  if (!cfg) {
    require(cfg.error().message.starts_with("fuzz.json"),
            "error without the file:", cfg.error().message);
    return;
  }
  const auto& clusters = (*cfg)->clusters;
  for (const auto& l : (*cfg)->listeners) {
    if (l.protocol == meshgate::proxy::ListenerProtocol::kTcp) {
      require(l.cluster_index < clusters.size() && clusters[l.cluster_index].name == l.cluster,
              "tcp listener cluster index wrong:", l.name);
    }
    std::vector<int> seen(l.routes.size(), 0);
    auto mark = [&](const meshgate::proxy::HostIndex::Routes& routes, bool count) {
      for (size_t i = 0; i < routes.size(); i++) {
        require(routes[i] < l.routes.size(), "host index out of range:", l.name);
        require(i == 0 || routes[i - 1] < routes[i], "host index out of order:", l.name);
        seen[routes[i]] += count;
      }
    };
    for (const auto& [host, routes] : l.hosts.exact) {
      mark(routes, true);
    }
    for (const auto& [suffix, routes] : l.hosts.wildcard) {
      mark(routes, false);  // a suffix's list also holds the broader wildcards' routes
    }
    mark(l.hosts.any, true);
    std::vector<std::string> hosts = {"", "[::1]:80"};
    for (size_t i = 0; i < l.routes.size(); i++) {
      const auto& r = l.routes[i];
      const std::string& h = r.match.host;
      if (h.starts_with("*.")) {
        auto own = l.hosts.wildcard.find(std::string_view(h).substr(1));
        require(own != l.hosts.wildcard.end() &&
                    std::count(own->second.begin(), own->second.end(), i) == 1,
                "wildcard route not under its suffix:", h);
        seen[i]++;
      }
      if (hosts.size() < 64 && !h.empty()) {
        std::string upper = h;
        for (char& c : upper) {
          c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
        const std::string bare = h.starts_with("*.") ? h.substr(2) : h;
        hosts.insert(hosts.end(), {bare, "x." + bare, upper + ":8080", "a.B." + bare + ".",
                                   bare.substr(bare.find('.') + 1)});
      }
    }
    for (const std::string& host : hosts) {
      for (const char* method : {"GET", "POST"}) {
        meshgate::http1::MessageHead head;
        head.method_token = method;
        head.host = host;
        const meshgate::proxy::Route* want = nullptr;
        for (const auto& r : l.routes) {
          if (meshgate::proxy::routeMatches(r, head, "/", {})) {
            want = &r;
            break;
          }
        }
        require(meshgate::proxy::matchRoute(l, head, "/", {}) == want,
                "host index and scan disagree for host", host);
      }
    }
    for (size_t i = 0; i < l.routes.size(); i++) {
      const auto& r = l.routes[i];
      require(seen[i] == 1, "route not indexed exactly once:", r.match.host);
      require(r.cluster_index < clusters.size() && clusters[r.cluster_index].name == r.cluster,
              "route cluster index wrong:", r.cluster);
      if (r.match.path) {
        checkStringMatch(*r.match.path);
      }
      for (const auto& h : r.match.headers) {
        checkStringMatch(h.match);
      }
      for (const auto& q : r.match.query) {
        checkStringMatch(q.match);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) {
    checkProxy(text);
  } else {
    checkAgent(text);
  }
  return 0;
}
