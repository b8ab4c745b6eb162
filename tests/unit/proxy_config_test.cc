// meshgate-proxy's config: a valid file becomes typed listeners, routes and clusters with
// their defaults; every invalid one is rejected with the file and the field's path.
#include <gtest/gtest.h>

#include "proxy/routing/config.h"
#include "tests/lib/process.h"

namespace meshgate::proxy {
namespace {

constexpr const char* kValid = R"({
  "workers": 2,
  "busy_poll_us": 50,
  "listeners": [
    {"name": "web", "address": "127.0.0.1", "port": 8080, "routes": [
      {"match": {"host": "*.example.com", "path": {"prefix": "/api/"}, "method": "GET",
                 "headers": [{"name": "X-Canary", "exact": "1"}],
                 "query": [{"name": "v", "regex": "[0-9]+"}]},
       "cluster": "canary", "timeout_ms": 2000, "retries": 2},
      {"cluster": "api"}]},
    {"name": "pg", "address": "::1", "port": 5432, "protocol": "tcp", "cluster": "api"}],
  "clusters": [
    {"name": "api", "endpoints": [{"address": "10.0.0.1", "port": 80},
                                  {"address": "10.0.0.2", "port": 80, "weight": 3}]},
    {"name": "canary", "lb_policy": "consistent_hash", "hash_on": {"cookie": "uid"},
     "protocol": "http2", "endpoints": [{"address": "10.0.1.1", "port": 8080}]}],
  "limits": {"buffer_bytes": 32768, "header_timeout_ms": 5000, "max_concurrent_streams": 20}
})";

// The example that `make install` ships and the README points to: it must load as it is.
TEST(ProxyConfig, AcceptsTheDeployExample) {
  const std::string path = test::sourceFile("deploy/proxy.json");
  auto cfg = loadProxyConfigFile(path);
  ASSERT_TRUE(cfg) << path << ": " << cfg.error().message;
  EXPECT_EQ((*cfg)->workers, 2u);
  ASSERT_EQ((*cfg)->listeners.size(), 1u);
  EXPECT_EQ((*cfg)->clusters.size(), 3u);
}

TEST(ProxyConfig, ParsesListenersRoutesAndClustersWithDefaults) {
  auto cfg = parseProxyConfig(kValid, "proxy.json");
  ASSERT_TRUE(cfg) << cfg.error().message;
  const ProxyConfig& c = **cfg;
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.busy_poll, std::chrono::microseconds(50));
  ASSERT_EQ(c.listeners.size(), 2u);
  const Listener& web = c.listeners[0];
  EXPECT_EQ(web.protocol, ListenerProtocol::kHttp);
  ASSERT_EQ(web.routes.size(), 2u);
  const Route& r = web.routes[0];
  EXPECT_EQ(r.match.host, "*.example.com");
  ASSERT_TRUE(r.match.path);
  EXPECT_EQ(r.match.path->kind, StringMatch::Kind::kPrefix);
  EXPECT_EQ(r.match.headers.at(0).name, "x-canary") << "header names are lower-cased";
  EXPECT_TRUE(r.match.query.at(0).match.matches("42"));
  EXPECT_FALSE(r.match.query.at(0).match.matches("4a"));
  EXPECT_EQ(r.cluster_index, 1u);
  EXPECT_EQ(r.timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(r.retries, 2u);
  EXPECT_EQ(web.routes[1].timeout, std::chrono::milliseconds(15000)) << "default route timeout";
  EXPECT_EQ(c.listeners[1].protocol, ListenerProtocol::kTcp);
  EXPECT_EQ(c.listeners[1].cluster_index, 0u);
  EXPECT_EQ(c.clusters[0].endpoints[1].weight, 3u);
  EXPECT_EQ(c.clusters[0].endpoints[0].weight, 1u) << "default weight";
  EXPECT_EQ(c.clusters[1].lb_policy, LbPolicy::kConsistentHash);
  EXPECT_EQ(c.clusters[1].hash_cookie, "uid");
  EXPECT_EQ(c.limits.buffer_bytes, 32768u);
  EXPECT_EQ(c.limits.max_headers, 100u) << "default";
  EXPECT_EQ(c.clusters[0].protocol, UpstreamProtocol::kHttp1) << "default";
  EXPECT_EQ(c.clusters[1].protocol, UpstreamProtocol::kHttp2);
  EXPECT_EQ(c.limits.max_concurrent_streams, 20u);
}

struct BadCase {
  const char* name;
  const char* json;
  const char* error;  // expected message (after "proxy.json: ")
};

class ProxyConfigRejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(ProxyConfigRejects, NamingTheField) {
  auto cfg = parseProxyConfig(GetParam().json, "proxy.json");
  ASSERT_FALSE(cfg) << "accepted: " << GetParam().json;
  EXPECT_EQ(cfg.error().message, std::string("proxy.json: ") + GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ProxyConfigRejects,
    ::testing::Values(
        BadCase{
            "unknown_top", R"({"listner": []})",
            "listner: unknown field (expected one of: workers, busy_poll_us, listeners, clusters, "
            "limits, access_log, admin)"},
        BadCase{
            "busy_poll_too_long",
            R"({"busy_poll_us": 10001, "listeners": [], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "busy_poll_us: must be an integer 0..10000, got 10001"},
        BadCase{
            "busy_poll_negative",
            R"({"busy_poll_us": -1, "listeners": [], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "busy_poll_us: must be an integer 0..10000, got -1"},
        BadCase{"no_clusters", R"({"listeners": []})", "clusters: missing required field"},
        BadCase{
            "unknown_cluster_ref",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "nope"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[0].routes[0].cluster: no cluster named \"nope\""},
        BadCase{
            "bad_address",
            R"({"listeners": [{"name": "l", "address": "localhost", "port": 80, "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[0].address: must be an IPv4 or IPv6 address, got \"localhost\""},
        BadCase{
            "bad_port",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 70000}]}]})",
            "clusters[0].endpoints[0].port: must be an integer 1..65535, got 70000"},
        BadCase{
            "no_endpoints",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": []}]})",
            "clusters[0].endpoints: must list at least one endpoint"},
        BadCase{
            "hash_without_key",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "lb_policy": "consistent_hash", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "clusters[0].hash_on: required with \"lb_policy\": \"consistent_hash\""},
        BadCase{
            "two_path_kinds",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"match": {"path": {"exact": "/a", "prefix": "/b"}}, "cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[0].routes[0].match.path: must set exactly one of \"exact\", \"prefix\", "
            "\"regex\""},
        BadCase{
            "duplicate_listener_port",
            R"({"listeners": [{"name": "a", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "c"}]}, {"name": "b", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[1].port: duplicate listener address 127.0.0.1 port 80 (also listeners[0])"},
        BadCase{
            "tcp_with_routes",
            R"({"listeners": [{"name": "a", "address": "127.0.0.1", "port": 80, "protocol": "tcp", "cluster": "c", "routes": []}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[0].routes: only on an http listener"},
        BadCase{
            "bad_cluster_protocol",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "protocol": "h2", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "clusters[0].protocol: must be \"http1\" or \"http2\", got \"h2\""},
        BadCase{
            "zero_streams",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}], "limits": {"max_concurrent_streams": 0}})",
            "limits.max_concurrent_streams: must be an integer 1..10000, got 0"},
        BadCase{"duplicate_key", R"({"workers": 1, "workers": 2})", "workers: duplicate key"},
        BadCase{
            "bad_xff",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "x_forwarded_for": "trust", "routes": [{"cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[0].x_forwarded_for: must be \"append\" or \"replace\", got \"trust\""},
        BadCase{
            "xff_on_tcp",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "protocol": "tcp", "x_forwarded_for": "replace", "cluster": "c"}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[0].x_forwarded_for: only on an http listener"},
        BadCase{
            "host_too_long",
            R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"match": {"host": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, "cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
            "listeners[0].routes[0].match.host: must be at most 255 characters (a DNS name is "
            "at most 253), got 256"}),
    [](const auto& info) { return std::string(info.param.name); });

// RE2 syntax: no backreferences or lookaround (they need backtracking), and a compiled
// program bounded in size, so that one route cannot make every match slow or big.
TEST(ProxyConfig, RejectsRegexesRe2CannotRunInLinearTimeOrThatAreTooBig) {
  const auto parse = [](const std::string& re) {
    return parseProxyConfig(
        R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"match": {"headers": [{"name": "x", "regex": ")" +
            re +
            R"("}]}, "cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
        "proxy.json");
  };
  auto backref = parse(R"((a)\\1)");
  ASSERT_FALSE(backref);
  EXPECT_TRUE(backref.error().message.starts_with(
      "proxy.json: listeners[0].routes[0].match.headers[0].regex: invalid regular expression"))
      << backref.error().message;
  auto big = parse("[a-z]{1,1000}[0-9]{1,1000}");
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("listeners[0].routes[0].match.headers[0].regex: "),
            std::string::npos)
      << big.error().message;
  EXPECT_NE(big.error().message.find("too large"), std::string::npos) << big.error().message;
  EXPECT_TRUE(parse("(?i)mozilla/[0-9.]+ .*")) << "a usual pattern is accepted";
}

TEST(ProxyConfig, RejectsAnInvalidRegexNamingThePath) {
  auto cfg = parseProxyConfig(
      R"({"listeners": [{"name": "l", "address": "127.0.0.1", "port": 80, "routes": [{"match": {"path": {"regex": "(["}}, "cluster": "c"}]}], "clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80}]}]})",
      "proxy.json");
  ASSERT_FALSE(cfg);
  EXPECT_TRUE(cfg.error().message.starts_with(
      "proxy.json: listeners[0].routes[0].match.path.regex: invalid regular expression \"([\""))
      << cfg.error().message;
}

}  // namespace
}  // namespace meshgate::proxy
