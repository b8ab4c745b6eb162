// meshgate-proxy's configuration (docs/CONFIG.md, "meshgate-proxy"): listeners -> routes ->
// clusters -> endpoints. Parsed once into these typed structs, validated (every error names
// the file and the field), then frozen: the running proxy holds a shared_ptr<const
// ProxyConfig> and a reload swaps in a new one atomically.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "meshgate/result.h"

namespace re2 {
class RE2;
}

namespace meshgate::proxy {

enum class LbPolicy { kRoundRobin, kLeastRequest, kConsistentHash };

// How the proxy talks to a cluster's endpoints: HTTP/1.1 over pooled keep-alive connections,
// or HTTP/2 (cleartext, prior knowledge) multiplexed over one connection per endpoint and
// worker, which gRPC needs. HTTP clients of either version reach either kind.
enum class UpstreamProtocol { kHttp1, kHttp2 };

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal
  uint16_t port = 0;
  uint32_t weight = 1;  // 0 = drained
};

struct Cluster {
  std::string name;
  UpstreamProtocol protocol = UpstreamProtocol::kHttp1;
  LbPolicy lb_policy = LbPolicy::kRoundRobin;
  // kConsistentHash: the request header or cookie whose value is hashed (exactly one set).
  std::string hash_header;  // lower case
  std::string hash_cookie;
  std::chrono::milliseconds connect_timeout{1000};
  uint32_t max_idle_per_endpoint = 64;  // upstream keep-alive pool, per worker
  std::vector<Endpoint> endpoints;
};

struct StringMatch {
  enum class Kind { kExact, kPrefix, kRegex, kPresent } kind = Kind::kExact;
  std::string value;
  // kRegex: compiled once, RE2 syntax, matched against the whole value in one pass over
  // its bytes (no backtracking, so no input can make a match slow or deep).
  std::shared_ptr<const re2::RE2> regex;

  bool matches(std::string_view s) const;
};

struct HeaderMatch {
  std::string name;  // lower case (header names); query parameter names as written
  StringMatch match;
};

struct RouteMatch {
  std::string host;  // "" = any; "*.example.com" = any subdomain; else exact (case-insensitive)
  std::optional<StringMatch> path;
  std::string method;  // "" = any
  std::vector<HeaderMatch> headers;
  std::vector<HeaderMatch> query;
};

struct Route {
  RouteMatch match;
  std::string cluster;
  size_t cluster_index = 0;                  // into ProxyConfig::clusters, resolved at parse time
  std::chrono::milliseconds timeout{15000};  // whole upstream response
  uint32_t retries = 0;                      // extra attempts on connect failure / 502 / 503
};

enum class ListenerProtocol { kHttp, kTcp };

// A listener's routes by host (built with the snapshot), so that a request is checked
// only against the routes its host can match, in their order, and not against all of them:
// an edge listener may carry tens of thousands of virtual hosts. A host's candidates are at
// most three lists, merged by route index: its exact host's routes, the wildcard list of the
// longest "*.suffix" it falls under (which already holds the routes of every broader
// wildcard that host also falls under), and the routes for any host.
struct HostIndex {
  using Routes = std::vector<uint32_t>;  // indices into Listener::routes, ascending
  struct Hash {
    using is_transparent = void;  // lookups by string_view
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, Routes, Hash, std::equal_to<>>;
  Map exact;     // "a.example.com": the routes with that host
  Map wildcard;  // ".a.example.com": routes of "*.a.example.com", "*.example.com", "*.com"
  Routes any;    // routes without a host
  size_t longest_exact = 0;     // no longer host can have an exact route
  size_t longest_wildcard = 0;  // no longer suffix can have a wildcard route
};

struct Listener {
  std::string name;
  std::string address;
  uint16_t port = 0;
  ListenerProtocol protocol = ListenerProtocol::kHttp;
  // X-Forwarded-For (kHttp): false appends the client's address to what the client sent
  // (behind a trusted hop: a sidecar); true replaces it with the client's address (an edge
  // facing clients, whose own X-Forwarded-For could name any address).
  bool xff_replace = false;
  std::vector<Route> routes;  // kHttp, first match wins
  HostIndex hosts;            // of `routes`
  std::string cluster;        // kTcp
  size_t cluster_index = 0;
};

struct Limits {
  size_t max_header_bytes = 64 * 1024;
  size_t max_headers = 100;
  uint64_t max_body_bytes = 0;            // 0 = unlimited
  size_t buffer_bytes = 64 * 1024;        // per direction per connection before backpressure
                                          // (HTTP/2: per stream, the flow-control window)
  uint32_t max_concurrent_streams = 100;  // HTTP/2 client connections
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{60000};
};

struct ProxyConfig {
  std::string source;  // file name, for messages
  uint32_t workers = 1;
  // Each worker polls without sleeping for this long after handling events (0: off); see
  // EventLoop::setBusyPoll().
  std::chrono::microseconds busy_poll{0};
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;
  Limits limits;
  std::string access_log;  // "" = off, "-" = stdout, else a file path
  // Admin endpoint (GET /metrics in Prometheus text, GET /ready), served by worker 0.
  std::string admin_address;  // "" = none
  uint16_t admin_port = 0;
};

using ProxyConfigPtr = std::shared_ptr<const ProxyConfig>;

Result<ProxyConfigPtr> parseProxyConfig(std::string_view json_text, std::string_view source);
Result<ProxyConfigPtr> loadProxyConfigFile(const std::string& path);

}  // namespace meshgate::proxy
