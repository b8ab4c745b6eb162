// Routing and balancing of meshgate-proxy: the first matching route wins (host wildcards,
// path kinds, method, headers, query); round robin gives each endpoint exactly its weight;
// least request prefers idle endpoints; consistent hashing sends a key to one endpoint and
// moves few keys when an endpoint goes away.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "proxy/routing/config.h"
#include "proxy/routing/load_balancer.h"
#include "proxy/routing/router.h"

namespace meshgate::proxy {
namespace {

ProxyConfigPtr config(const std::string& routes, const std::string& clusters) {
  auto cfg = parseProxyConfig(
      R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": )" + routes +
          R"(}], "clusters": )" + clusters + "}",
      "test.json");
  EXPECT_TRUE(cfg) << cfg.error().message;
  return cfg ? *cfg : nullptr;
}

const char* kClusters =
    R"([{"name": "a", "endpoints": [{"address": "10.0.0.1", "port": 80}]},
        {"name": "b", "endpoints": [{"address": "10.0.0.2", "port": 80}]},
        {"name": "c", "endpoints": [{"address": "10.0.0.3", "port": 80}]}])";

std::string routeOf(const ProxyConfig& cfg, std::string_view method, std::string_view host,
                    std::string_view target, HeaderList headers = {}) {
  http1::MessageHead head;
  head.method_token = method;
  head.host = host;
  const Route* r = matchRoute(cfg.listeners[0], head, target, headers);
  return r ? r->cluster : "404";
}

TEST(ProxyRouting, FirstMatchingRouteWins) {
  auto cfg = config(R"([
    {"match": {"host": "*.example.com", "path": {"prefix": "/api/"}}, "cluster": "a"},
    {"match": {"path": {"exact": "/health"}, "method": "GET"}, "cluster": "b"},
    {"match": {"headers": [{"name": "x-canary", "present": true}]}, "cluster": "b"},
    {"match": {"query": [{"name": "v", "exact": "2"}], "path": {"regex": "/items/[0-9]+"}}, "cluster": "c"},
    {"match": {"host": "shop.test"}, "cluster": "c"}])",
                    kClusters);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(routeOf(*cfg, "GET", "eu.example.com:8080", "/api/users"), "a");
  EXPECT_EQ(routeOf(*cfg, "GET", "EU.Example.COM", "/api/"), "a") << "host is case-insensitive";
  EXPECT_EQ(routeOf(*cfg, "GET", "example.com", "/api/x"), "404") << "*. needs a subdomain";
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/health"), "b");
  EXPECT_EQ(routeOf(*cfg, "POST", "x", "/health"), "404") << "method must match";
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/health?probe=1"), "b") << "query is not the path";
  EXPECT_EQ(routeOf(*cfg, "PUT", "x", "/any", {{"X-Canary", ""}}), "b") << "header present";
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/items/42?a=1&v=2"), "c");
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/items/42?v=3"), "404");
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/items/4x?v=2"), "404") << "regex matches the whole path";
  EXPECT_EQ(routeOf(*cfg, "GET", "shop.test", "/"), "c");
  EXPECT_EQ(routeOf(*cfg, "GET", "Shop.TEST:443", "/"), "c") << "exact host, any case";
}

// Each matcher kind on headers and on query parameters; a header or parameter given more
// than once is matched by its first occurrence (docs/CONFIG.md).
TEST(ProxyRouting, HeaderAndQueryMatchersOfEveryKind) {
  auto cfg = config(R"([
    {"match": {"headers": [{"name": "x-env", "exact": "blue"}]}, "cluster": "a"},
    {"match": {"headers": [{"name": "x-user", "prefix": "test-"}]}, "cluster": "b"},
    {"match": {"headers": [{"name": "x-build", "regex": "[0-9]+\\.[0-9]+"}]}, "cluster": "c"},
    {"match": {"query": [{"name": "lang", "prefix": "en"}]}, "cluster": "a"},
    {"match": {"query": [{"name": "id", "regex": "[a-f0-9]{4}"}]}, "cluster": "b"},
    {"match": {"query": [{"name": "debug", "present": true}]}, "cluster": "c"},
    {"match": {"headers": [{"name": "x-a", "exact": "1"}, {"name": "x-b", "exact": "2"}]}, "cluster": "c"}])",
                    kClusters);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"X-Env", "blue"}}), "a") << "names in any case";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-env", "Blue"}}), "404") << "values exactly";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-env", "blue2"}}), "404");
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-user", "test-7"}}), "b");
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-user", "prod-test-7"}}), "404");
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-build", "12.3"}}), "c");
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-build", "12.3-rc"}}), "404") << "whole value";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-env", "green"}, {"x-env", "blue"}}), "404")
      << "the first x-env decides";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/?lang=en-GB"), "a");
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/?lang=fr&lang=en"), "404") << "the first lang decides";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/?x=1&id=beef"), "b");
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/?id=beefy"), "404") << "whole value";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/?debug"), "c") << "present without a value";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/?debug="), "c");
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/?debugging=1"), "404") << "names whole";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-a", "1"}, {"x-b", "2"}}), "c") << "all must match";
  EXPECT_EQ(routeOf(*cfg, "GET", "h", "/", {{"x-a", "1"}}), "404");
}

TEST(ProxyRouting, HostsAreComparedWithoutPortsIPv6LiteralsIncluded) {
  auto cfg = config(R"([{"match": {"host": "[::1]"}, "cluster": "a"},
                        {"match": {"host": "*.b.test"}, "cluster": "b"}])",
                    kClusters);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(routeOf(*cfg, "GET", "[::1]:8080", "/"), "a");
  EXPECT_EQ(routeOf(*cfg, "GET", "[::1]", "/"), "a");
  EXPECT_EQ(routeOf(*cfg, "GET", "[::2]:8080", "/"), "404");
  EXPECT_EQ(routeOf(*cfg, "GET", "x.B.test:80", "/"), "b");
  EXPECT_EQ(routeOf(*cfg, "GET", std::string(5000, 'a') + ".b.test", "/"), "b")
      << "a long host is matched by its tail";
}

// Route regexes see client input: a header value up to the header limit, a path up to the
// request-line limit. Matching takes one pass and bounded stack whatever the input (RE2);
// a backtracking matcher recursed per byte here and crashed on the 1 MiB value.
TEST(ProxyRouting, RegexMatchingIsLinearInTheInput) {
  auto cfg = config(R"([
    {"match": {"headers": [{"name": "user-agent", "regex": ".*bot.*"}]}, "cluster": "a"},
    {"match": {"path": {"regex": "/(a|aa)*b"}}, "cluster": "b"}])",
                    kClusters);
  ASSERT_TRUE(cfg);
  const std::string filler(1 << 20, 'x');
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/", {{"user-agent", filler + "bot" + filler}}), "a");
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/", {{"user-agent", filler}}), "404");
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/", {{"user-agent", "\xff\x80 bot \xc3"}}), "a")
      << "values are octets: `.` matches obs-text that is not UTF-8";
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/" + std::string(100, 'a') + "b"), "b");
  EXPECT_EQ(routeOf(*cfg, "GET", "x", "/" + std::string(100000, 'a')), "404")
      << "exponential for a backtracking matcher";
}

// matchRoute() looks a host up in the listener's HostIndex instead of scanning every route;
// it must still return exactly the first route that routeMatches() accepts. Random
// listeners of exact hosts, nested wildcards, any-host routes and methods, against hosts
// in mixed case, with ports, IPv6 literals, trailing dots, nine-level nesting (more
// wildcard lists than the merge holds) and names longer than DNS allows.
TEST(ProxyRouting, TheHostIndexPicksTheSameRouteAsAScanOfEveryRoute) {
  std::mt19937 rng(7);
  const std::vector<std::string> labels = {"a", "b", "shop", "api", "x-1"};
  auto name = [&](int depth) {
    std::string h;
    for (int i = 0; i < depth; i++) {
      h += (i ? "." : "") + labels[rng() % labels.size()];
    }
    return h;
  };
  auto upcase = [&](std::string s) {
    for (char& c : s) {
      if (rng() % 2) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
    }
    return s;
  };
  size_t matched = 0, checked = 0;
  for (int round = 0; round < 200; round++) {
    std::string routes = "[";
    const int count = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < count; i++) {
      std::string host;
      switch (rng() % 4) {
        case 0:
          host = "";
          break;
        case 1:
          host = "*." + name(1 + static_cast<int>(rng() % 3));
          break;
        default:
          host = upcase(name(1 + static_cast<int>(rng() % 4)));
          break;
      }
      const char* cluster = i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c";
      routes += std::string(i ? "," : "") + R"({"match": {"host": ")" + host + "\"" +
                (rng() % 3 == 0 ? R"(, "method": "POST")" : "") + R"(}, "cluster": ")" + cluster +
                "\"}";
    }
    routes += "]";
    auto cfg = config(routes, kClusters);
    ASSERT_TRUE(cfg);
    const Listener& l = cfg->listeners[0];
    for (int q = 0; q < 50; q++) {
      std::string host = upcase(name(1 + static_cast<int>(rng() % 9)));
      switch (rng() % 6) {
        case 0:
          host += ":8080";
          break;
        case 1:
          host += ".";
          break;
        case 2:
          host = "[::1]:80";
          break;
        case 3:
          host = std::string(300, 'a') + ".shop";
          break;
        default:
          break;
      }
      http1::MessageHead head;
      head.method_token = rng() % 2 ? "GET" : "POST";
      head.host = host;
      const Route* want = nullptr;
      for (const Route& r : l.routes) {
        if (routeMatches(r, head, "/", {})) {
          want = &r;
          break;
        }
      }
      const Route* got = matchRoute(l, head, "/", {});
      EXPECT_EQ(got, want) << "host " << host << " " << head.method_token << ": got route "
                           << (got ? got - l.routes.data() : -1) << ", want "
                           << (want ? want - l.routes.data() : -1) << "; routes " << routes;
      matched += want != nullptr;
      checked++;
    }
  }
  EXPECT_GT(matched, checked / 4) << "the random hosts must hit routes often";
  EXPECT_LT(matched, checked) << "and miss sometimes";
}

// A host under more wildcards than the merge holds lists for is still routed in order.
TEST(ProxyRouting, AHostUnderNineNestedWildcardsGetsTheFirstMatchingOne) {
  std::string routes = "[", host = "a";
  for (int depth = 9; depth >= 1; depth--) {
    std::string suffix;
    for (int i = 0; i < depth; i++) {
      suffix += ".a";
    }
    const bool post = depth > 4;  // *.a x 9..5 take POST only, *.a x 4 is the first for a GET
    routes += std::string(depth < 9 ? "," : "") + R"({"match": {"host": "*)" + suffix + "\"" +
              (post ? R"(, "method": "POST")" : "") + R"(}, "cluster": ")" +
              (depth == 4 ? "b" : "a") + "\"}";
    host += ".a";
  }
  auto cfg = config(routes + R"(, {"cluster": "c"}])", kClusters);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(routeOf(*cfg, "GET", host, "/"), "b");
  EXPECT_EQ(routeOf(*cfg, "POST", host, "/"), "a");
  EXPECT_EQ(routeOf(*cfg, "GET", "a.b", "/"), "c");
}

TEST(ProxyRouting, QueryAndCookieHelpers) {
  EXPECT_EQ(splitTarget("/a/b?x=1&y").first, "/a/b");
  EXPECT_EQ(splitTarget("/a/b?x=1&y").second, "x=1&y");
  EXPECT_EQ(queryParam("x=1&y&z=3", "z"), "3");
  EXPECT_EQ(queryParam("x=1&y&z=3", "y"), "");
  EXPECT_FALSE(queryParam("x=1", "xx"));
  Cluster c;
  c.hash_cookie = "uid";
  EXPECT_EQ(hashKeyOf(c, {{"Cookie", "a=1; uid=alice; b=2"}}), "alice");
  EXPECT_FALSE(hashKeyOf(c, {{"Cookie", "uidx=1"}}));
}

Cluster cluster(LbPolicy policy, std::vector<uint32_t> weights) {
  Cluster c;
  c.name = "t";
  c.lb_policy = policy;
  c.hash_header = "x-user";
  for (size_t i = 0; i < weights.size(); i++) {
    c.endpoints.push_back({"10.0.0." + std::to_string(i + 1), 80, weights[i]});
  }
  return c;
}

TEST(ProxyBalancing, RoundRobinGivesEachEndpointExactlyItsWeightAndSkipsDrained) {
  const Cluster c = cluster(LbPolicy::kRoundRobin, {1, 3, 0, 2});
  LoadBalancer lb(c, *buildClusterTable(c), 1);
  std::map<size_t, int> got;
  for (int i = 0; i < 6 * 100; i++) {
    got[*lb.pick(std::nullopt)]++;
  }
  EXPECT_EQ(got[0], 100);
  EXPECT_EQ(got[1], 300);
  EXPECT_EQ(got[2], 0) << "weight 0 is drained";
  EXPECT_EQ(got[3], 200);
  // Interleaved, not in runs: the heavy endpoint never gets 3 in a row out of 6.
  EXPECT_NE(lb.pick(std::nullopt), std::nullopt);
}

TEST(ProxyBalancing, RetryExcludesTheFailedEndpointWhenAnotherExists) {
  const Cluster c = cluster(LbPolicy::kRoundRobin, {1, 1});
  LoadBalancer lb(c, *buildClusterTable(c), 1);
  for (int i = 0; i < 10; i++) {
    EXPECT_EQ(lb.pick(std::nullopt, size_t{0}), 1u);
  }
  const Cluster one = cluster(LbPolicy::kRoundRobin, {1});
  LoadBalancer lb1(one, *buildClusterTable(one), 1);
  EXPECT_EQ(lb1.pick(std::nullopt, size_t{0}), 0u) << "the only endpoint beats none";
}

TEST(ProxyBalancing, LeastRequestPrefersTheLessLoadedEndpoint) {
  const Cluster c = cluster(LbPolicy::kLeastRequest, {1, 1});
  LoadBalancer lb(c, *buildClusterTable(c), 7);
  for (int i = 0; i < 5; i++) {
    lb.started(0);
  }
  int to_idle = 0;
  for (int i = 0; i < 100; i++) {
    to_idle += *lb.pick(std::nullopt) == 1;
  }
  EXPECT_EQ(to_idle, 100) << "with two endpoints both are always compared";
}

TEST(ProxyBalancing, ConsistentHashPinsAKeyAndMovesFewKeysWhenAnEndpointLeaves) {
  const Cluster c = cluster(LbPolicy::kConsistentHash, {1, 1, 1, 1, 1});
  LoadBalancer lb(c, *buildClusterTable(c), 1);
  LoadBalancer other_worker(c, *buildClusterTable(c), 99);
  Cluster smaller = c;
  smaller.endpoints[4].weight = 0;
  LoadBalancer lb_smaller(smaller, *buildClusterTable(smaller), 1);
  int moved = 0, on_removed = 0;
  for (int u = 0; u < 2000; u++) {
    const std::string key = "user-" + std::to_string(u);
    const size_t e = *lb.pick(key);
    EXPECT_EQ(e, *lb.pick(key)) << "the same key, the same endpoint";
    EXPECT_EQ(e, *other_worker.pick(key)) << "every worker agrees";
    const size_t after = *lb_smaller.pick(key);
    on_removed += e == 4;
    moved += e != 4 && after != e;
  }
  EXPECT_NEAR(on_removed, 400, 80);
  EXPECT_LT(moved, 2000 / 100) << "only the removed endpoint's keys move (Maglev)";
}

}  // namespace
}  // namespace meshgate::proxy
