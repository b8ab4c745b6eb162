#include "proxy/routing/config.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "common/json_reader.h"
#include "proxy/net/socket.h"

namespace meshgate::proxy {
namespace {

constexpr uint64_t kMaxWorkers = 256;
constexpr uint64_t kMaxBusyPollUs = 10000;  // 10 ms: longer is a spinning worker
constexpr uint64_t kMaxWeight = 1000000;
constexpr uint64_t kMaxTimeoutMs = 3600 * 1000;
constexpr uint64_t kMaxRetries = 5;
constexpr size_t kMaxHostPattern = 255;  // "*." and a 253-character name
// A route regex compiles to at most this many RE2 instructions (a usual pattern is 10-100)
// and holds at most kRegexMaxMem: its program and the DFA states it caches as it matches.
// A full cache makes RE2 fall back to its NFA, still linear in the input: crafted values
// cost time, not memory. Usual patterns never fill it.
constexpr int kMaxRegexProgramSize = 1000;
constexpr int64_t kRegexMaxMem = 256 << 10;

// HTTP field values are octets: Latin-1 makes every byte one character, so `.` matches
// obs-text as well, and a pattern's UTF-8 literals still match the same bytes. (?i) folds
// Latin-1 letters too, not only ASCII.
RE2::Options regexOptions() {
  RE2::Options o;
  o.set_encoding(RE2::Options::EncodingLatin1);
  o.set_log_errors(false);
  o.set_max_mem(kRegexMaxMem);
  return o;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool isToken(std::string_view s) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || kExtra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

HostIndex indexHosts(const std::vector<Route>& routes) {
  HostIndex index;
  std::map<std::string, HostIndex::Routes> own;  // wildcard suffix -> its own routes
  for (uint32_t i = 0; i < routes.size(); i++) {
    const std::string& host = routes[i].match.host;  // lower case
    if (host.empty()) {
      index.any.push_back(i);
    } else if (host.starts_with("*.")) {
      own[host.substr(1)].push_back(i);
      index.longest_wildcard = std::max(index.longest_wildcard, host.size() - 1);
    } else {
      index.exact[host].push_back(i);
      index.longest_exact = std::max(index.longest_exact, host.size());
    }
  }
  // Every host under ".a.example.com" (longer than it) is also under ".example.com" and
  // ".com": a suffix's list holds the routes of each wildcard suffix of it, in route order.
  for (const auto& [suffix, routes] : own) {
    HostIndex::Routes merged;
    for (size_t dot = 0; dot != std::string::npos; dot = suffix.find('.', dot + 1)) {
      if (auto it = own.find(suffix.substr(dot)); it != own.end()) {
        merged.insert(merged.end(), it->second.begin(), it->second.end());
      }
    }
    std::sort(merged.begin(), merged.end());
    index.wildcard.emplace(suffix, std::move(merged));
  }
  return index;
}

class ProxyConfigParser : public JsonReader {
 public:
  using JsonReader::JsonReader;

  Result<ProxyConfigPtr> parse(const Json& root) {
    auto cfg = std::make_shared<ProxyConfig>();
    cfg->source = source();
    if (!checkObject(root, "",
                     {"workers", "busy_poll_us", "listeners", "clusters", "limits", "access_log",
                      "admin"})) {
      return fail(*firstError());
    }
    const JsonNode r{root, ""};
    cfg->workers = static_cast<uint32_t>(integer(r, "workers", 1, 1, kMaxWorkers));
    cfg->busy_poll = std::chrono::microseconds(integer(r, "busy_poll_us", 0, 0, kMaxBusyPollUs));
    cfg->access_log = string(r, "access_log", false).value_or("");
    parseLimits(r, cfg->limits);
    if (const Json* a = section(r, "admin", {"address", "port"})) {
      address({*a, "admin"}, cfg->admin_address, cfg->admin_port, true);
    }
    parseClusters(r, *cfg);
    parseListeners(r, *cfg);
    if (firstError()) {
      return fail(*firstError());
    }
    return cfg;
  }

 private:
  std::chrono::milliseconds ms(const JsonNode& n, std::string_view key,
                               std::chrono::milliseconds dflt) {
    return std::chrono::milliseconds(
        integer(n, key, static_cast<uint64_t>(dflt.count()), 1, kMaxTimeoutMs));
  }

  void parseLimits(const JsonNode& r, Limits& l) {
    const Json* s = section(r, "limits",
                            {"max_header_bytes", "max_headers", "max_body_bytes", "buffer_bytes",
                             "header_timeout_ms", "idle_timeout_ms", "max_concurrent_streams"});
    if (!s) {
      return;
    }
    const JsonNode n{*s, "limits"};
    l.max_header_bytes = integer(n, "max_header_bytes", l.max_header_bytes, 1024, 1 << 20);
    l.max_headers = integer(n, "max_headers", l.max_headers, 1, 10000);
    l.max_body_bytes = integer(n, "max_body_bytes", l.max_body_bytes, 0, UINT64_MAX);
    l.buffer_bytes = integer(n, "buffer_bytes", l.buffer_bytes, 4096, 64 << 20);
    l.header_timeout = ms(n, "header_timeout_ms", l.header_timeout);
    l.idle_timeout = ms(n, "idle_timeout_ms", l.idle_timeout);
    l.max_concurrent_streams = static_cast<uint32_t>(
        integer(n, "max_concurrent_streams", l.max_concurrent_streams, 1, 10000));
  }

  // A literal address and a port 1..65535 (0 with allow_zero: pick one, for tests).
  void address(const JsonNode& n, std::string& addr, uint16_t& port, bool allow_zero) {
    addr = string(n, "address", true).value_or("");
    port = static_cast<uint16_t>(integer(n, "port", 0, allow_zero ? 0 : 1, 65535));
    if (!n.find("port")) {
      error(n.field("port"), "missing required field");
    }
    if (!addr.empty()) {
      if (auto a = SockAddr::parse(addr, port); !a) {
        error(n.field("address"), "must be an IPv4 or IPv6 address, got " + jsonShown(addr));
      }
    }
  }

  void parseClusters(const JsonNode& r, ProxyConfig& cfg) {
    const Json* list = array(r, "clusters");
    if (!list) {
      error("clusters", "missing required field");
      return;
    }
    for (size_t i = 0; i < list->size(); i++) {
      const JsonNode n{(*list)[i], jsonIndexPath("clusters", i)};
      if (!checkObject(n.obj, n.path,
                       {"name", "protocol", "lb_policy", "hash_on", "connect_timeout_ms",
                        "max_idle_per_endpoint", "endpoints"})) {
        return;
      }
      Cluster c;
      c.name = string(n, "name", true).value_or("");
      if (index_.contains(c.name)) {
        error(n.field("name"), "duplicate cluster " + jsonShown(c.name) + " (also " +
                                   jsonIndexPath("clusters", index_[c.name]) + ")");
      }
      const std::string protocol = string(n, "protocol", false).value_or("http1");
      if (protocol == "http1") {
        c.protocol = UpstreamProtocol::kHttp1;
      } else if (protocol == "http2") {
        c.protocol = UpstreamProtocol::kHttp2;
      } else {
        error(n.field("protocol"), "must be \"http1\" or \"http2\", got " + jsonShown(protocol));
      }
      const std::string policy = string(n, "lb_policy", false).value_or("round_robin");
      if (policy == "round_robin") {
        c.lb_policy = LbPolicy::kRoundRobin;
      } else if (policy == "least_request") {
        c.lb_policy = LbPolicy::kLeastRequest;
      } else if (policy == "consistent_hash") {
        c.lb_policy = LbPolicy::kConsistentHash;
      } else {
        error(n.field("lb_policy"),
              "must be \"round_robin\", \"least_request\" or \"consistent_hash\", got " +
                  jsonShown(policy));
      }
      if (const Json* h = n.find("hash_on")) {
        const JsonNode hn{*h, n.field("hash_on")};
        if (checkObject(*h, hn.path, {"header", "cookie"})) {
          c.hash_header = lower(string(hn, "header", false).value_or(""));
          c.hash_cookie = string(hn, "cookie", false).value_or("");
          if (c.hash_header.empty() == c.hash_cookie.empty()) {
            error(hn.path, "must name exactly one of \"header\" or \"cookie\"");
          }
        }
        if (c.lb_policy != LbPolicy::kConsistentHash) {
          error(n.field("hash_on"), "only with \"lb_policy\": \"consistent_hash\"");
        }
      } else if (c.lb_policy == LbPolicy::kConsistentHash) {
        error(n.field("hash_on"), "required with \"lb_policy\": \"consistent_hash\"");
      }
      c.connect_timeout = ms(n, "connect_timeout_ms", c.connect_timeout);
      c.max_idle_per_endpoint = static_cast<uint32_t>(
          integer(n, "max_idle_per_endpoint", c.max_idle_per_endpoint, 0, 100000));
      const Json* eps = array(n, "endpoints");
      if (!eps || eps->empty()) {
        error(n.field("endpoints"), "must list at least one endpoint");
      }
      for (size_t j = 0; eps && j < eps->size(); j++) {
        const JsonNode en{(*eps)[j], jsonIndexPath(n.field("endpoints"), j)};
        if (!checkObject(en.obj, en.path, {"address", "port", "weight"})) {
          return;
        }
        Endpoint e;
        address(en, e.address, e.port, false);
        e.weight = static_cast<uint32_t>(integer(en, "weight", 1, 0, kMaxWeight));
        c.endpoints.push_back(std::move(e));
      }
      index_.emplace(c.name, cfg.clusters.size());
      cfg.clusters.push_back(std::move(c));
    }
  }

  std::optional<size_t> clusterRef(const JsonNode& n) {
    auto name = string(n, "cluster", true);
    if (!name) {
      return std::nullopt;
    }
    auto it = index_.find(*name);
    if (it == index_.end()) {
      error(n.field("cluster"), "no cluster named " + jsonShown(*name));
      return std::nullopt;
    }
    return it->second;
  }

  StringMatch stringMatch(const JsonNode& n, std::initializer_list<std::string_view> kinds) {
    StringMatch m;
    int set = 0;
    for (std::string_view k : kinds) {
      const Json* v = n.find(k);
      if (!v) {
        continue;
      }
      set++;
      if (k == "present") {
        if (!v->is_boolean() || !v->get<bool>()) {
          error(n.field(k), "must be true");
        }
        m.kind = StringMatch::Kind::kPresent;
        continue;
      }
      m.value = string(n, k, true).value_or("");
      if (k == "exact") {
        m.kind = StringMatch::Kind::kExact;
      } else if (k == "prefix") {
        m.kind = StringMatch::Kind::kPrefix;
      } else {
        m.kind = StringMatch::Kind::kRegex;
        auto re = std::make_shared<const RE2>(m.value, regexOptions());
        if (!re->ok()) {
          error(n.field(k),
                "invalid regular expression " + jsonShown(m.value) + ": " + re->error());
        } else if (re->ProgramSize() > kMaxRegexProgramSize) {
          error(n.field(k), "regular expression " + jsonShown(m.value) +
                                " is too large: " + std::to_string(re->ProgramSize()) +
                                " instructions, at most " + std::to_string(kMaxRegexProgramSize));
        } else {
          m.regex = std::move(re);
        }
      }
    }
    if (set != 1) {
      std::string names;
      for (std::string_view k : kinds) {
        names += (names.empty() ? "\"" : ", \"") + std::string(k) + "\"";
      }
      error(n.path, "must set exactly one of " + names);
    }
    return m;
  }

  std::vector<HeaderMatch> headerMatches(const JsonNode& n, std::string_view key, bool lowercase) {
    std::vector<HeaderMatch> out;
    const Json* list = array(n, key);
    for (size_t i = 0; list && i < list->size(); i++) {
      const JsonNode hn{(*list)[i], jsonIndexPath(n.field(key), i)};
      if (!checkObject(hn.obj, hn.path, {"name", "exact", "prefix", "regex", "present"})) {
        return out;
      }
      HeaderMatch h;
      h.name = string(hn, "name", true).value_or("");
      if (lowercase) {
        if (!isToken(h.name)) {
          error(hn.field("name"),
                "must be a header name (an HTTP token), got " + jsonShown(h.name));
        }
        h.name = lower(h.name);
      }
      h.match = stringMatch(hn, {"exact", "prefix", "regex", "present"});
      out.push_back(std::move(h));
    }
    return out;
  }

  Route parseRoute(const JsonNode& n) {
    Route r;
    if (!checkObject(n.obj, n.path, {"match", "cluster", "timeout_ms", "retries"})) {
      return r;
    }
    if (const Json* m = n.find("match")) {
      const JsonNode mn{*m, n.field("match")};
      if (checkObject(*m, mn.path, {"host", "path", "method", "headers", "query"})) {
        r.match.host = lower(string(mn, "host", false).value_or(""));
        if (r.match.host.size() > kMaxHostPattern) {
          error(mn.field("host"), "must be at most " + std::to_string(kMaxHostPattern) +
                                      " characters (a DNS name is at most 253), got " +
                                      std::to_string(r.match.host.size()));
        }
        if (const Json* p = mn.find("path")) {
          const JsonNode pn{*p, mn.field("path")};
          if (checkObject(*p, pn.path, {"exact", "prefix", "regex"})) {
            r.match.path = stringMatch(pn, {"exact", "prefix", "regex"});
            if (r.match.path->kind != StringMatch::Kind::kRegex &&
                !r.match.path->value.starts_with("/")) {
              error(pn.path, "a path must start with '/', got " + jsonShown(r.match.path->value));
            }
          }
        }
        r.match.method = string(mn, "method", false).value_or("");
        if (!r.match.method.empty() && !isToken(r.match.method)) {
          error(mn.field("method"),
                "must be an HTTP method token, got " + jsonShown(r.match.method));
        }
        r.match.headers = headerMatches(mn, "headers", true);
        r.match.query = headerMatches(mn, "query", false);
      }
    }
    if (auto c = clusterRef(n)) {
      r.cluster_index = *c;
      r.cluster = *string(n, "cluster", true);
    }
    r.timeout = ms(n, "timeout_ms", r.timeout);
    r.retries = static_cast<uint32_t>(integer(n, "retries", 0, 0, kMaxRetries));
    return r;
  }

  void parseListeners(const JsonNode& r, ProxyConfig& cfg) {
    const Json* list = array(r, "listeners");
    if (!list || list->empty()) {
      error("listeners", "must list at least one listener");
      return;
    }
    std::map<std::string, size_t> names, addrs;
    for (size_t i = 0; i < list->size(); i++) {
      const JsonNode n{(*list)[i], jsonIndexPath("listeners", i)};
      if (!checkObject(
              n.obj, n.path,
              {"name", "address", "port", "protocol", "routes", "cluster", "x_forwarded_for"})) {
        return;
      }
      Listener l;
      l.name = string(n, "name", true).value_or("");
      if (auto [it, fresh] = names.emplace(l.name, i); !fresh) {
        error(n.field("name"), "duplicate listener " + jsonShown(l.name) + " (also " +
                                   jsonIndexPath("listeners", it->second) + ")");
      }
      address(n, l.address, l.port, true);
      const std::string where = l.address + " port " + std::to_string(l.port);
      if (l.port != 0) {
        if (auto [it, fresh] = addrs.emplace(where, i); !fresh) {
          error(n.field("port"), "duplicate listener address " + where + " (also " +
                                     jsonIndexPath("listeners", it->second) + ")");
        }
      }
      const std::string proto = string(n, "protocol", false).value_or("http");
      if (n.find("x_forwarded_for")) {
        const std::string xff = string(n, "x_forwarded_for", true).value_or("");
        if (proto != "http") {
          error(n.field("x_forwarded_for"), "only on an http listener");
        } else if (xff == "replace") {
          l.xff_replace = true;
        } else if (xff != "append") {
          error(n.field("x_forwarded_for"),
                "must be \"append\" or \"replace\", got " + jsonShown(xff));
        }
      }
      if (proto == "http") {
        l.protocol = ListenerProtocol::kHttp;
        const Json* routes = array(n, "routes");
        if (!routes || routes->empty()) {
          error(n.field("routes"), "an http listener needs at least one route");
        }
        if (n.find("cluster")) {
          error(n.field("cluster"), "only on a tcp listener (http listeners route by \"routes\")");
        }
        for (size_t j = 0; routes && j < routes->size(); j++) {
          l.routes.push_back(parseRoute({(*routes)[j], jsonIndexPath(n.field("routes"), j)}));
        }
        l.hosts = indexHosts(l.routes);
      } else if (proto == "tcp") {
        l.protocol = ListenerProtocol::kTcp;
        if (n.find("routes")) {
          error(n.field("routes"), "only on an http listener");
        }
        if (auto c = clusterRef(n)) {
          l.cluster_index = *c;
          l.cluster = *string(n, "cluster", true);
        }
      } else {
        error(n.field("protocol"), "must be \"http\" or \"tcp\", got " + jsonShown(proto));
      }
      cfg.listeners.push_back(std::move(l));
    }
  }

  std::map<std::string, size_t> index_;  // cluster name -> index
};

}  // namespace

bool StringMatch::matches(std::string_view s) const {
  switch (kind) {
    case Kind::kExact:
      return s == value;
    case Kind::kPrefix:
      return s.starts_with(value);
    case Kind::kRegex:
      return regex && RE2::FullMatch(re2::StringPiece(s.data(), s.size()), *regex);
    case Kind::kPresent:
      return true;
  }
  return false;
}

Result<ProxyConfigPtr> parseProxyConfig(std::string_view json_text, std::string_view source) {
  const std::string src(source);
  auto root = parseJsonDocument(json_text, src);
  if (!root) {
    return std::unexpected(root.error());
  }
  return ProxyConfigParser(src).parse(*root);
}

Result<ProxyConfigPtr> loadProxyConfigFile(const std::string& path) {
  auto text = readTextFile(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  return parseProxyConfig(*text, path);
}

}  // namespace meshgate::proxy
