// Benchmarks request routing (proxy/routing/router.h) per core, each case against its
// baseline in the same run, interleaved:
// - host lookup: matchRoute() through the listener's HostIndex against a scan of every
//   route with routeMatches() (what matchRoute did before the index), on an edge listener
//   of 10,000 virtual hosts and on a small sidecar listener of 10 routes;
// - regexes: RE2 (what routes use) against std::regex (ECMAScript, what they used before)
//   on a typical path pattern and on a header pattern over a 4 KiB value.
#include <re2/re2.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "proxy/routing/config.h"
#include "proxy/routing/router.h"
#include "tests/lib/bench.h"

namespace mp = meshgate::proxy;
namespace mt = meshgate::test;

namespace {

using meshgate::test::nsPerIteration;

constexpr int kReps = 15;
constexpr double kTargetMsPerRep = 20;
constexpr int kVirtualHosts = 10000;

struct Measured {
  std::vector<double> ours, base;
};

// Interleaves kReps rounds of `ours` and `base`, each sized to ~kTargetMsPerRep.
template <class A, class B>
Measured measure(A&& ours, B&& base) {
  auto itersFor = [](auto& f) {
    return std::max(100, static_cast<int>(kTargetMsPerRep * 1e6 / nsPerIteration(50, f)));
  };
  const int ours_iters = itersFor(ours), base_iters = itersFor(base);
  Measured m;
  for (int rep = 0; rep < kReps; ++rep) {
    m.ours.push_back(nsPerIteration(ours_iters, ours));
    m.base.push_back(nsPerIteration(base_iters, base));
  }
  return m;
}

void report(mt::BenchReport& out, const std::string& name, const std::string& baseline,
            const Measured& m, const std::string& what) {
  char note[320];
  std::snprintf(note, sizeof note, "median of %d; ours %.1f-%.1f ns, baseline %.1f-%.1f ns; %s",
                kReps, mt::minOf(m.ours), mt::maxOf(m.ours), mt::minOf(m.base), mt::maxOf(m.base),
                what.c_str());
  out.add(
      {name, "ns_per_match", "ns", mt::median(m.ours), mt::median(m.base), baseline, true, note});
}

mp::ProxyConfigPtr parse(const std::string& routes) {
  auto cfg = mp::parseProxyConfig(
      R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": )" + routes +
          R"(}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
      "router_bench");
  if (!cfg) {
    std::fprintf(stderr, "router_bench: %s\n", cfg.error().message.c_str());
    std::exit(1);
  }
  return *cfg;
}

const mp::Route* scanEveryRoute(const mp::Listener& l, const meshgate::http1::MessageHead& head,
                                std::string_view target, const mp::HeaderList& headers) {
  for (const mp::Route& r : l.routes) {
    if (mp::routeMatches(r, head, target, headers)) {
      return &r;
    }
  }
  return nullptr;
}

// Routes `hosts` (cycled) through `l` both ways; aborts if the two disagree.
Measured routeBoth(const mp::Listener& l, const std::vector<std::string>& hosts,
                   std::string_view target) {
  const mp::HeaderList headers = {{"user-agent", "bench/1.0"}, {"accept", "*/*"}};
  for (const std::string& h : hosts) {
    meshgate::http1::MessageHead head;
    head.method_token = "GET";
    head.host = h;
    if (mp::matchRoute(l, head, target, headers) != scanEveryRoute(l, head, target, headers)) {
      std::fprintf(stderr, "router_bench: index and scan disagree for %s\n", h.c_str());
      std::exit(1);
    }
  }
  size_t i = 0, j = 0;
  volatile uintptr_t sink = 0;
  meshgate::http1::MessageHead head;
  head.method_token = "GET";
  return measure(
      [&] {
        head.host = hosts[i++ % hosts.size()];
        sink = sink + reinterpret_cast<uintptr_t>(mp::matchRoute(l, head, target, headers));
      },
      [&] {
        head.host = hosts[j++ % hosts.size()];
        sink = sink + reinterpret_cast<uintptr_t>(scanEveryRoute(l, head, target, headers));
      });
}

std::string vhost(int i) {
  return "svc-" + std::to_string(i) + ".eu-west.example.com";
}

}  // namespace

int main(int argc, char** argv) {
  mt::BenchReport out("router");
  std::mt19937 rng(1);

  // An edge listener: one route per virtual host, a few wildcards, a catch-all last.
  std::string edge = "[";
  for (int i = 0; i < kVirtualHosts; i++) {
    edge +=
        R"({"match": {"host": ")" + vhost(i) + R"(", "path": {"prefix": "/"}}, "cluster": "c"},)";
  }
  edge += R"({"match": {"host": "*.cdn.example.com"}, "cluster": "c"},)";
  edge += R"({"match": {"host": "*.example.com", "method": "POST"}, "cluster": "c"},)";
  edge += R"({"cluster": "c"}])";
  const auto t0 = std::chrono::steady_clock::now();
  const auto edge_cfg = parse(edge);
  const double parse_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::vector<std::string> hits, misses;
  for (int i = 0; i < 1024; i++) {
    hits.push_back(vhost(static_cast<int>(rng() % kVirtualHosts)));
    misses.push_back("img-" + std::to_string(i) + ".cdn.example.com");
  }
  report(out, "edge_10k_vhosts_host_hit", "scan of every route (before the host index)",
         routeBoth(edge_cfg->listeners[0], hits, "/index.html"),
         "10,003 routes, a random one of the 10,000 exact hosts; config parsed and indexed in " +
             std::to_string(static_cast<int>(parse_ms)) + " ms");
  report(out, "edge_10k_vhosts_wildcard", "scan of every route (before the host index)",
         routeBoth(edge_cfg->listeners[0], misses, "/index.html"),
         "10,003 routes, hosts under *.cdn.example.com");
  std::string dots;
  while (dots.size() < 8000) {
    dots += "a.";
  }
  report(out, "edge_10k_vhosts_8KB_host", "scan of every route (before the host index)",
         routeBoth(edge_cfg->listeners[0], {dots + "cdn.example.com"}, "/index.html"),
         "10,003 routes, an 8 KB Host of 4,000 labels under *.cdn.example.com: only its last "
         "255 bytes are looked at");

  // A sidecar listener: ten routes by path, method and header, any host.
  const auto side_cfg = parse(R"([
    {"match": {"path": {"exact": "/health"}}, "cluster": "c"},
    {"match": {"path": {"prefix": "/admin/"}, "headers": [{"name": "x-admin", "present": true}]}, "cluster": "c"},
    {"match": {"path": {"prefix": "/api/v1/"}, "method": "POST"}, "cluster": "c"},
    {"match": {"path": {"prefix": "/api/v2/"}}, "cluster": "c"},
    {"match": {"path": {"prefix": "/static/"}}, "cluster": "c"},
    {"match": {"headers": [{"name": "x-canary", "exact": "1"}]}, "cluster": "c"},
    {"match": {"path": {"prefix": "/grpc."}}, "cluster": "c"},
    {"match": {"path": {"exact": "/login"}}, "cluster": "c"},
    {"match": {"path": {"prefix": "/api/v1/"}}, "cluster": "c"},
    {"cluster": "c"}])");
  report(out, "sidecar_10_routes", "scan of every route (before the host index)",
         routeBoth(side_cfg->listeners[0], {"orders.svc.cluster.local:8080"}, "/api/v1/orders/42"),
         "10 routes, no host; the 9th matches");

  // Regexes: the same pattern and value through RE2 and through std::regex.
  RE2::Options opt;
  opt.set_encoding(RE2::Options::EncodingLatin1);
  volatile int matched = 0;
  const std::string path = "/api/v3/users/1234567/orders";
  const std::string path_re = "/api/v[0-9]+/users/[0-9]+/orders";
  RE2 path_re2(path_re, opt);
  std::regex path_std(path_re, std::regex::ECMAScript);
  report(out, "regex_path", "std::regex (ECMAScript, before RE2)",
         measure([&] { matched = matched + RE2::FullMatch(path, path_re2); },
                 [&] { matched = matched + std::regex_match(path, path_std); }),
         "\"" + path_re + "\" on \"" + path + "\"");
  const std::string agent = std::string(4093, 'x') + "bot";
  RE2 bot_re2(".*bot.*", opt);
  std::regex bot_std(".*bot.*", std::regex::ECMAScript);
  report(out, "regex_header_4KiB", "std::regex (ECMAScript, before RE2)",
         measure([&] { matched = matched + RE2::FullMatch(agent, bot_re2); },
                 [&] { matched = matched + std::regex_match(agent, bot_std); }),
         "\".*bot.*\" on a 4,096-byte value (std::regex overflows its stack from ~30 KB)");
  return out.finish(argc, argv);
}
