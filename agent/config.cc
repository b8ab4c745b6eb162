#include "agent/config.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "common/json_reader.h"
#include "meshgate/abi/common.h"
#include "meshgate/abi/lb.h"
#include "meshgate/quic_lb.h"

namespace meshgate::agent {
namespace {

using json = nlohmann::json;

constexpr std::string_view kDefaultEncapV4 = "198.18.255.0/24";
constexpr std::string_view kDefaultEncapV6 = "fd00:ffff::/96";
constexpr uint32_t kDefaultTtl = 64;
constexpr uint32_t kDefaultConntrackSize = 262144;
constexpr uint32_t kMinConntrackSize = 1024;
constexpr uint32_t kMaxConntrackSize = 16u << 20;
constexpr uint32_t kDefaultUdpIdleSeconds = 30;
constexpr uint32_t kMaxUdpIdleSeconds = 86400;
constexpr uint32_t kDefaultMaxConnRate = 125000;
constexpr uint32_t kMaxWeight = 1000000;
constexpr uint32_t kDefaultWeight = 1;
// The flow hash fills the last 32-bit word of the IPv6 outer source (mg_lb_globals).
constexpr uint32_t kMinEncapV6PrefixLen = 96;
constexpr size_t kMaxIfNameLen = 15;  // IFNAMSIZ - 1
constexpr size_t kMaxVipNameLen = 64;
// mg_backends holds one entry per (VIP, backend address); id 0 is never used.
constexpr uint64_t kMaxBackendSlots = MG_MAX_BACKENDS - 1;
// One QUIC-LB config per config rotation codepoint 0..6 (0b111 marks unroutable CIDs).
constexpr size_t kMaxQuicLbConfigs = quiclb::kMaxConfigRotation + 1;
static_assert(std::tuple_size_v<decltype(QuicLbConfigEntry::key)::value_type> == quiclb::kKeyLen);

using VipKey = std::tuple<IpAddr, uint16_t, uint8_t>;

VipKey keyOf(const VipConfig& v) {
  return {v.address, v.port, v.protocol};
}

// Trial division is plenty up to MG_MAX_RING_SIZE (~1M). The Maglev module has its own
// copy; this one only validates.
bool isPrime(uint32_t n) {
  if (n < 2) {
    return false;
  }
  for (uint32_t d = 2; d <= n / d; ++d) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

uint32_t nextPrime(uint32_t n) {
  while (n < UINT32_MAX && !isPrime(n)) {
    ++n;
  }
  return n;
}

// The offending value as JSON text, shortened: `got "ten"`.
std::string shown(const json& v) {
  return jsonShown(v);
}
std::string childPath(const std::string& parent, std::string_view key) {
  return jsonChildPath(parent, key);
}
std::string indexPath(const std::string& parent, size_t i) {
  return jsonIndexPath(parent, i);
}

// VIP names appear in logs, metric labels and pin paths: keep them tame.
bool validVipName(std::string_view name) {
  if (name.empty() || name.size() > kMaxVipNameLen ||
      !std::isalnum(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '-';
  });
}

// Why an address cannot be a VIP or a backend; empty when it can.
std::string unusableAddress(const IpAddr& a) {
  if (a.isUnspecified()) {
    return "the unspecified address";
  }
  if (a.isLoopback()) {
    return "a loopback address";
  }
  if (a.isMulticast()) {
    return "a multicast address";
  }
  if (a.isV4Mapped()) {
    return "an IPv4-mapped IPv6 address: write the IPv4 address";
  }
  return {};
}

// quiclb::QuicLbConfig::validate() says "quic-lb config: <field> <value> ..." (or
// "server_id_len + nonce_len = ..."): the field it names, or "" for the config as a whole
// (the sum involves two fields), and the problem without the prefix.
std::pair<std::string, std::string> quicLbProblem(std::string_view message) {
  constexpr std::string_view kPrefix = "quic-lb config: ";
  if (message.starts_with(kPrefix)) {
    message.remove_prefix(kPrefix.size());
  }
  std::string field;
  if (!message.starts_with("server_id_len + nonce_len")) {
    for (std::string_view f : {"config_rotation", "server_id_len", "nonce_len"}) {
      if (message.starts_with(std::string(f) + " ")) {
        field = f;
        break;
      }
    }
  }
  return {field, std::string(message)};
}

using Node = JsonNode;

// Walks a parsed document into an AgentConfig. It records the first error and carries on
// with defaults (later errors are dropped), which keeps every step free of early returns.
class ConfigParser : public JsonReader {
 public:
  explicit ConfigParser(std::string_view source) : JsonReader(std::string(source)) {}

  Result<ConfigPtr> parse(const json& root);

 private:
  // A required integer that must fit a uint8_t. `min`..`max` only word the error: the
  // caller checks the range itself, so that a library can say why (QUIC-LB's rotation 7).
  std::optional<uint8_t> octet(const Node& n, std::string_view key, uint8_t min, uint8_t max) {
    const json* v = n.find(key);
    if (v == nullptr) {
      error(n.field(key), "missing required field");
    } else if (!v->is_number_unsigned() || v->get<uint64_t>() > UINT8_MAX) {
      error(n.field(key), "must be an integer " + std::to_string(min) + ".." + std::to_string(max) +
                              ", got " + shown(*v));
    } else {
      return static_cast<uint8_t>(v->get<uint64_t>());
    }
    return std::nullopt;
  }

  // A required unicast address.
  std::optional<IpAddr> address(const Node& n, std::string_view key) {
    auto text = string(n, key, /*required=*/true);
    if (!text) {
      return std::nullopt;
    }
    auto a = IpAddr::parse(*text);
    if (!a) {
      error(n.field(key), "must be an IPv4 or IPv6 address, got " + shown(*text));
      return std::nullopt;
    }
    if (std::string why = unusableAddress(*a); !why.empty()) {
      error(n.field(key), "must be a unicast address, got " + shown(*text) + " (" + why + ")");
      return std::nullopt;
    }
    return *a;
  }

  IpPrefix prefix(const Node& n, std::string_view key, std::string_view dflt, uint8_t family) {
    const IpPrefix fallback = IpPrefix::parse(dflt).value();
    auto text = string(n, key, /*required=*/false);
    if (!text) {
      return fallback;
    }
    const std::string want = family == MG_AF_INET ? "an IPv4 prefix" : "an IPv6 prefix";
    auto p = IpPrefix::parse(*text);
    if (!p) {
      error(n.field(key),
            "must be " + want + " like \"" + std::string(dflt) + "\": " + p.error().message);
    } else if (p->addr.family != family) {
      error(n.field(key), "must be " + want + ", got " + shown(*text));
    } else if (family == MG_AF_INET6 && p->len < kMinEncapV6PrefixLen) {
      error(n.field(key), "prefix length must be " + std::to_string(kMinEncapV6PrefixLen) +
                              "..128 (the flow hash fills only the last 32 bits), got " +
                              shown(*text));
    } else {
      return *p;
    }
    return fallback;
  }

  std::vector<InterfaceConfig> parseInterfaces(const Node& root, const std::string& key);
  void parseVips(const Node& root, AgentConfig& cfg);
  VipConfig parseVip(const Node& n);
  void parseQuicLb(const Node& vip_node, VipConfig& vip);
  void parseHealthCheck(const Node& vip_node, VipConfig& vip);
  std::optional<std::array<uint8_t, quiclb::kKeyLen>> quicLbKey(const Node& n);
  void parseQuicServerId(const Node& n, const VipConfig& vip, BackendConfig& be,
                         std::map<std::vector<uint8_t>, size_t>& seen, size_t index);
  void parseBackends(const Node& vip_node, VipConfig& vip);

  uint64_t backend_slots_ = 0;  // (VIP, backend) pairs so far
};

std::vector<InterfaceConfig> ConfigParser::parseInterfaces(const Node& root,
                                                           const std::string& key) {
  std::vector<InterfaceConfig> out;
  const json* list = array(root, key);
  std::map<std::string, size_t> seen;
  for (size_t i = 0; list != nullptr && i < list->size(); ++i) {
    const Node n{(*list)[i], indexPath(key, i)};
    if (!checkObject(n.obj, n.path, {"name", "xdp_mode"})) {
      continue;
    }
    InterfaceConfig ifc;
    if (auto name = string(n, "name", /*required=*/true)) {
      if (!validIfName(*name)) {
        error(n.field("name"),
              "must be an interface name (1-15 characters, no '/', ':' or whitespace), got " +
                  shown(*name));
      } else if (auto [it, fresh] = seen.emplace(*name, i); !fresh) {
        error(n.field("name"),
              "duplicate interface " + shown(*name) + " (also " + indexPath(key, it->second) + ")");
      }
      ifc.name = *name;
    }
    const std::string mode = string(n, "xdp_mode", /*required=*/false).value_or("native");
    if (mode != "native" && mode != "generic") {
      error(n.field("xdp_mode"), "must be \"native\" or \"generic\", got " + shown(mode));
    }
    ifc.generic = mode == "generic";
    out.push_back(std::move(ifc));
  }
  return out;
}

// The key is a secret: errors describe it and never show it.
std::optional<std::array<uint8_t, quiclb::kKeyLen>> ConfigParser::quicLbKey(const Node& n) {
  auto text = string(n, "key", /*required=*/false);
  if (!text) {
    return std::nullopt;
  }
  const std::string want = "must be " + std::to_string(2 * quiclb::kKeyLen) + " hex digits (a " +
                           std::to_string(quiclb::kKeyLen) + "-octet AES-128 key), got ";
  const auto bad =
      std::find_if(text->begin(), text->end(), [](unsigned char c) { return !std::isxdigit(c); });
  if (bad != text->end()) {
    error(n.field("key"), want + "a non-hex character at offset " +
                              std::to_string(bad - text->begin()) + " (the key is not shown)");
    return std::nullopt;
  }
  auto bytes = quiclb::parseHex(*text);
  if (text->size() != 2 * quiclb::kKeyLen || !bytes) {
    error(n.field("key"),
          want + std::to_string(text->size()) + " characters (the key is not shown)");
    return std::nullopt;
  }
  std::array<uint8_t, quiclb::kKeyLen> key{};
  std::copy(bytes->begin(), bytes->end(), key.begin());
  return key;
}

void ConfigParser::parseQuicLb(const Node& vip_node, VipConfig& vip) {
  const json* q = vip_node.find("quic_lb");
  if (q == nullptr) {
    return;
  }
  const std::string path = vip_node.field("quic_lb");
  if (vip.protocol != IPPROTO_UDP) {
    // A missing or invalid protocol has been reported already.
    error(path, "requires protocol \"udp\" (QUIC runs over UDP), got \"" +
                    std::string(vip.protocol == IPPROTO_TCP ? "tcp" : "?") + "\"");
    return;
  }
  if (!checkObject(*q, path, {"configs"})) {
    return;
  }
  const Node qn{*q, path};
  const json* list = array(qn, "configs");
  if (list == nullptr) {
    if (qn.find("configs") == nullptr) {
      error(qn.field("configs"), "missing required field");
    }
    return;
  }
  if (list->empty()) {
    error(qn.field("configs"),
          "must not be empty (list at least one config, or drop quic_lb for a plain UDP VIP)");
    return;
  }
  if (list->size() > kMaxQuicLbConfigs) {
    error(qn.field("configs"),
          "at most " + std::to_string(kMaxQuicLbConfigs) +
              " configs (one per config_rotation 0..6; 7 is reserved for unroutable CIDs), got " +
              std::to_string(list->size()));
    return;
  }
  std::map<uint8_t, size_t> rotations;
  std::optional<size_t> first_valid;  // the config whose server_id_len the others must match
  for (size_t i = 0; i < list->size(); ++i) {
    const Node n{(*list)[i], indexPath(qn.field("configs"), i)};
    if (!checkObject(
            n.obj, n.path,
            {"config_rotation", "server_id_len", "nonce_len", "key", "self_encoded_length"})) {
      continue;
    }
    const auto rotation = octet(n, "config_rotation", 0, quiclb::kMaxConfigRotation);
    const auto sid_len =
        octet(n, "server_id_len", quiclb::kMinServerIdLen, quiclb::kMaxServerIdLen);
    const auto nonce_len = octet(n, "nonce_len", quiclb::kMinNonceLen, quiclb::kMaxNonceLen);
    const auto key = quicLbKey(n);
    const bool self_encoded = boolean(n, "self_encoded_length", false);
    if (!rotation || !sid_len || !nonce_len) {
      continue;
    }
    // The library owns the draft's rules; its message names the field.
    if (auto made = quiclb::QuicLbConfig::make(*rotation, *sid_len, *nonce_len, key, self_encoded);
        !made) {
      const auto [field, problem] = quicLbProblem(made.error().message);
      error(field.empty() ? n.path : n.field(field), problem);
      continue;
    }
    if (auto [it, fresh] = rotations.emplace(*rotation, i); !fresh) {
      error(n.field("config_rotation"), "duplicate config_rotation " + std::to_string(*rotation) +
                                            " (also " + indexPath("configs", it->second) + ")");
    }
    if (!first_valid) {
      first_valid = i;
    } else if (const uint8_t want = vip.quic_lb.front().server_id_len; *sid_len != want) {
      error(n.field("server_id_len"),
            "must equal " + indexPath("configs", *first_valid) + ".server_id_len (" +
                std::to_string(want) + "), got " + std::to_string(*sid_len) +
                ": the configs of a VIP share one server-ID allocation (each backend has one "
                "quic_server_id, routable under every live config)");
    }
    vip.quic_lb.push_back(QuicLbConfigEntry{*rotation, *sid_len, *nonce_len, key, self_encoded});
  }
  std::sort(vip.quic_lb.begin(), vip.quic_lb.end(),
            [](const QuicLbConfigEntry& a, const QuicLbConfigEntry& b) {
              return a.config_rotation < b.config_rotation;
            });
}

void ConfigParser::parseHealthCheck(const Node& vip_node, VipConfig& vip) {
  const json* h = vip_node.find("health_check");
  if (h == nullptr) {
    return;
  }
  const std::string path = vip_node.field("health_check");
  if (!checkObject(*h, path, {"port", "interval_ms", "timeout_ms", "rise", "fall"})) {
    return;
  }
  const Node n{*h, path};
  HealthCheckConfig hc;
  const bool has_default_port = vip.protocol == IPPROTO_TCP && vip.port != 0;
  if (n.find("port") == nullptr && !has_default_port) {
    error(n.field("port"), "missing required field (only a TCP VIP with a port lends its own)");
  }
  hc.port = static_cast<uint16_t>(integer(n, "port", has_default_port ? vip.port : 1, 1, 65535));
  hc.interval_ms = static_cast<uint32_t>(integer(n, "interval_ms", hc.interval_ms, 100, 3600000));
  hc.timeout_ms = static_cast<uint32_t>(
      integer(n, "timeout_ms", std::min(hc.timeout_ms, hc.interval_ms), 10, 3600000));
  if (hc.timeout_ms > hc.interval_ms) {
    error(n.field("timeout_ms"), "must be <= interval_ms (" + std::to_string(hc.interval_ms) +
                                     "), got " + std::to_string(hc.timeout_ms) +
                                     ": one probe per backend at a time");
  }
  hc.rise = static_cast<uint32_t>(integer(n, "rise", hc.rise, 1, 100));
  hc.fall = static_cast<uint32_t>(integer(n, "fall", hc.fall, 1, 100));
  vip.health_check = hc;
}

void ConfigParser::parseQuicServerId(const Node& n, const VipConfig& vip, BackendConfig& be,
                                     std::map<std::vector<uint8_t>, size_t>& seen, size_t index) {
  const std::string path = n.field("quic_server_id");
  if (vip.quic_lb.empty()) {
    if (n.find("quic_server_id") != nullptr) {
      error(path, "only allowed in a QUIC VIP (one with quic_lb)");
    }
    return;
  }
  const size_t len = vip.quic_lb.front().server_id_len;
  const std::string digits =
      std::to_string(2 * len) + " hex digits (server_id_len is " + std::to_string(len) + " octets)";
  auto text = string(n, "quic_server_id", /*required=*/false);
  if (!text) {
    if (n.find("quic_server_id") == nullptr) {
      error(path, "missing required field (every backend of a QUIC VIP needs a server ID: " +
                      digits + ")");
    }
    return;
  }
  auto bytes = quiclb::parseHex(*text);
  if (!bytes || bytes->size() != len) {
    error(path, "must be " + digits + ", got " + shown(*text));
    return;
  }
  if (auto [it, fresh] = seen.emplace(*bytes, index); !fresh) {
    error(path, "duplicate server ID " + quiclb::toHex(*bytes) + " (also " +
                    indexPath("backends", it->second) + ")");
  }
  be.quic_server_id = std::move(*bytes);
}

void ConfigParser::parseBackends(const Node& vip_node, VipConfig& vip) {
  const json* list = array(vip_node, "backends");
  std::map<IpAddr, size_t> seen;
  std::map<std::vector<uint8_t>, size_t> server_ids;
  for (size_t i = 0; list != nullptr && i < list->size(); ++i) {
    const Node n{(*list)[i], indexPath(vip_node.field("backends"), i)};
    if (!checkObject(n.obj, n.path, {"address", "weight", "quic_server_id"})) {
      continue;
    }
    BackendConfig be;
    if (auto a = address(n, "address")) {
      be.address = *a;
      if (auto [it, fresh] = seen.emplace(*a, i); !fresh) {
        error(n.field("address"), "duplicate backend " + a->toString() + " (also " +
                                      indexPath("backends", it->second) + ")");
      } else if (vip.address.isV6() && a->isV4()) {
        error(n.field("address"),
              "IPv6 VIP " + vip.address.toString() + " cannot have IPv4 backend " + a->toString() +
                  ": 6-in-4 encapsulation is not supported (give the backend an IPv6 address)");
      } else if (++backend_slots_ > kMaxBackendSlots) {
        error(n.field("address"), "more than " + std::to_string(kMaxBackendSlots) +
                                      " backends across all VIPs (MG_MAX_BACKENDS - 1; a "
                                      "backend listed under two VIPs takes two slots)");
      }
    }
    be.weight = static_cast<uint32_t>(integer(n, "weight", kDefaultWeight, 0, kMaxWeight));
    parseQuicServerId(n, vip, be, server_ids, i);
    vip.backends.push_back(std::move(be));
  }
  // A set: the order in the file must not change the Maglev table.
  std::sort(vip.backends.begin(), vip.backends.end(),
            [](const BackendConfig& a, const BackendConfig& b) { return a.address < b.address; });
}

VipConfig ConfigParser::parseVip(const Node& n) {
  VipConfig vip;
  if (!checkObject(n.obj, n.path,
                   {"name", "address", "port", "protocol", "ring_size", "quic_lb", "backends",
                    "health_check"})) {
    return vip;
  }
  if (auto name = string(n, "name", /*required=*/true)) {
    if (!validVipName(*name)) {
      error(n.field("name"),
            "must be 1-64 characters of [A-Za-z0-9_.-] starting with a letter or digit, got " +
                shown(*name));
    }
    vip.name = *name;
  }
  vip.address = address(n, "address").value_or(IpAddr{});
  vip.port = static_cast<uint16_t>(integer(n, "port", 0, 0, 65535));
  if (auto proto = string(n, "protocol", /*required=*/true)) {
    if (*proto == "tcp" || *proto == "udp") {
      vip.protocol = *proto == "tcp" ? IPPROTO_TCP : IPPROTO_UDP;
    } else {
      error(n.field("protocol"), "must be \"tcp\" or \"udp\", got " + shown(*proto));
    }
  }
  vip.ring_size =
      static_cast<uint32_t>(integer(n, "ring_size", MG_DEFAULT_RING_SIZE, 2, MG_MAX_RING_SIZE));
  if (!isPrime(vip.ring_size)) {
    error(n.field("ring_size"), "must be a prime number, got " + std::to_string(vip.ring_size) +
                                    " (the next prime is " +
                                    std::to_string(nextPrime(vip.ring_size)) + ")");
  }
  parseQuicLb(n, vip);  // before the backends: their server IDs need server_id_len
  parseBackends(n, vip);
  parseHealthCheck(n, vip);
  const auto active = std::count_if(vip.backends.begin(), vip.backends.end(),
                                    [](const BackendConfig& b) { return b.weight > 0; });
  if (static_cast<uint64_t>(active) > vip.ring_size) {
    error(n.field("ring_size"), "must be >= the number of backends with weight > 0 (" +
                                    std::to_string(active) + "), got " +
                                    std::to_string(vip.ring_size));
  }
  return vip;
}

void ConfigParser::parseVips(const Node& root, AgentConfig& cfg) {
  const json* list = array(root, "vips");
  if (list != nullptr && list->size() > MG_MAX_VIPS) {
    error("vips", "too many VIPs: " + std::to_string(list->size()) + " > " +
                      std::to_string(MG_MAX_VIPS) + " (MG_MAX_VIPS)");
    return;
  }
  std::map<std::string, size_t> names;
  std::map<VipKey, size_t> keys;
  for (size_t i = 0; list != nullptr && i < list->size(); ++i) {
    const Node n{(*list)[i], indexPath("vips", i)};
    VipConfig vip = parseVip(n);
    if (auto [it, fresh] = names.emplace(vip.name, i); !fresh && !vip.name.empty()) {
      error(n.field("name"), "duplicate VIP name " + shown(vip.name) + " (also " +
                                 indexPath("vips", it->second) + ")");
    }
    if (auto [it, fresh] = keys.emplace(keyOf(vip), i); !fresh && vip.protocol != 0) {
      error(n.path,
            "duplicate VIP " + vipKeyString(vip) + " (also " + indexPath("vips", it->second) + ")");
    }
    cfg.vips.push_back(std::move(vip));
  }
}

Result<ConfigPtr> ConfigParser::parse(const json& root_json) {
  if (!root_json.is_object()) {
    return fail(source() + ": the document must be a JSON object, got " + shown(root_json));
  }
  if (!checkObject(root_json, "",
                   {"pin_root", "interfaces", "decap_interfaces", "hash_seed", "conntrack", "encap",
                    "metrics", "vips"})) {
    return fail(*firstError());
  }
  const Node root{root_json, ""};
  auto cfg = std::make_shared<AgentConfig>();
  cfg->source = source();

  cfg->pin_root = string(root, "pin_root", /*required=*/false).value_or(MG_PIN_ROOT);
  while (cfg->pin_root.size() > 1 && cfg->pin_root.back() == '/') {
    cfg->pin_root.pop_back();
  }
  if (cfg->pin_root.empty() || cfg->pin_root.front() != '/' || cfg->pin_root == "/") {
    error("pin_root",
          "must be an absolute directory below a bpffs mount, got " + shown(cfg->pin_root));
  }

  cfg->interfaces = parseInterfaces(root, "interfaces");
  cfg->decap_interfaces = parseInterfaces(root, "decap_interfaces");
  for (size_t i = 0; i < cfg->decap_interfaces.size(); ++i) {
    const std::string& name = cfg->decap_interfaces[i].name;
    if (std::any_of(cfg->interfaces.begin(), cfg->interfaces.end(),
                    [&](const InterfaceConfig& ifc) { return ifc.name == name; })) {
      error(childPath(indexPath("decap_interfaces", i), "name"),
            shown(name) + " is also in interfaces: an interface carries one XDP program");
    }
  }

  cfg->hash_seed = static_cast<uint32_t>(integer(root, "hash_seed", 0, 0, UINT32_MAX));

  static const json kEmpty = json::object();
  const json* ct =
      section(root, "conntrack", {"size", "udp_idle_seconds", "max_inserts_per_cpu_per_second"});
  const Node conntrack{ct != nullptr ? *ct : kEmpty, "conntrack"};
  cfg->conntrack_size = static_cast<uint32_t>(
      integer(conntrack, "size", kDefaultConntrackSize, kMinConntrackSize, kMaxConntrackSize));
  cfg->udp_idle_seconds = static_cast<uint32_t>(
      integer(conntrack, "udp_idle_seconds", kDefaultUdpIdleSeconds, 1, kMaxUdpIdleSeconds));
  cfg->max_conn_rate = static_cast<uint32_t>(
      integer(conntrack, "max_inserts_per_cpu_per_second", kDefaultMaxConnRate, 0, UINT32_MAX));

  const json* en = section(root, "encap", {"source_v4", "source_v6", "ttl"});
  const Node encap{en != nullptr ? *en : kEmpty, "encap"};
  cfg->encap_source_v4 = prefix(encap, "source_v4", kDefaultEncapV4, MG_AF_INET);
  cfg->encap_source_v6 = prefix(encap, "source_v6", kDefaultEncapV6, MG_AF_INET6);
  cfg->encap_ttl = static_cast<uint8_t>(integer(encap, "ttl", kDefaultTtl, 1, 255));

  if (const json* m = section(root, "metrics", {"listen"})) {
    if (auto listen = string(Node{*m, "metrics"}, "listen", /*required=*/true)) {
      auto addr = SockAddr::parse(*listen);
      if (!addr) {
        error("metrics.listen",
              "must be \"IPv4:port\" or \"[IPv6]:port\" with port 0..65535, got " + shown(*listen));
      }
      cfg->metrics_listen = addr ? addr->toString() : *listen;
    }
  }

  parseVips(root, *cfg);
  if (cfg->interfaces.empty() && !cfg->vips.empty()) {
    error("interfaces", "must not be empty when vips are configured (xdp_lb attaches there)");
  } else if (cfg->interfaces.empty() && cfg->decap_interfaces.empty()) {
    error("interfaces",
          "interfaces and decap_interfaces are both empty: the agent would attach nothing");
  }
  if (firstError()) {
    return fail(*firstError());
  }
  return ConfigPtr(std::move(cfg));
}

// "[eth0, eth1 (generic)]", sorted: interfaces compare as sets keyed by name.
std::string interfaceSet(std::vector<InterfaceConfig> v) {
  std::sort(v.begin(), v.end(),
            [](const InterfaceConfig& a, const InterfaceConfig& b) { return a.name < b.name; });
  std::string s = "[";
  for (const InterfaceConfig& ifc : v) {
    s += (s.size() > 1 ? ", " : "") + ifc.name + (ifc.generic ? " (generic)" : "");
  }
  return s + "]";
}

}  // namespace

bool validIfName(std::string_view name) {
  if (name.empty() || name.size() > kMaxIfNameLen || name == "." || name == "..") {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](unsigned char c) { return std::isgraph(c) && c != '/' && c != ':'; });
}

Result<ConfigPtr> parseConfig(std::string_view json_text, std::string_view source_name) {
  const std::string source(source_name);
  auto root = parseJsonDocument(json_text, source);
  if (!root) {
    return std::unexpected(root.error());
  }
  return ConfigParser(source).parse(*root);
}

Result<ConfigPtr> loadConfigFile(const std::string& path) {
  auto text = readTextFile(path);
  if (!text) {
    return std::unexpected(text.error());
  }
  return parseConfig(*text, path);
}

Result<void> checkReloadable(const AgentConfig& running, const AgentConfig& next) {
  auto refuse = [&next](std::string_view field, const std::string& from, const std::string& to) {
    return fail(next.source + ": " + std::string(field) + ": cannot change on reload (" + from +
                " -> " + to + "); restart the agent");
  };
  if (running.pin_root != next.pin_root) {
    return refuse("pin_root", running.pin_root, next.pin_root);
  }
  if (running.conntrack_size != next.conntrack_size) {
    return refuse("conntrack.size", std::to_string(running.conntrack_size),
                  std::to_string(next.conntrack_size));
  }
  if (interfaceSet(running.interfaces) != interfaceSet(next.interfaces)) {
    return refuse("interfaces", interfaceSet(running.interfaces), interfaceSet(next.interfaces));
  }
  if (interfaceSet(running.decap_interfaces) != interfaceSet(next.decap_interfaces)) {
    return refuse("decap_interfaces", interfaceSet(running.decap_interfaces),
                  interfaceSet(next.decap_interfaces));
  }
  if (running.metrics_listen != next.metrics_listen) {
    return refuse("metrics.listen", running.metrics_listen.value_or("none"),
                  next.metrics_listen.value_or("none"));
  }
  return {};
}

bool globalsChanged(const AgentConfig& old_cfg, const AgentConfig& new_cfg) {
  return old_cfg.hash_seed != new_cfg.hash_seed ||
         old_cfg.udp_idle_seconds != new_cfg.udp_idle_seconds ||
         old_cfg.max_conn_rate != new_cfg.max_conn_rate ||
         old_cfg.encap_source_v4 != new_cfg.encap_source_v4 ||
         old_cfg.encap_source_v6 != new_cfg.encap_source_v6 ||
         old_cfg.encap_ttl != new_cfg.encap_ttl;
}

ConfigDiff diffVips(const AgentConfig& old_cfg, const AgentConfig& new_cfg) {
  std::map<VipKey, const VipConfig*> old_by_key;
  for (const VipConfig& v : old_cfg.vips) {
    old_by_key.emplace(keyOf(v), &v);
  }
  ConfigDiff diff;
  std::set<VipKey> kept;
  for (const VipConfig& v : new_cfg.vips) {
    auto it = old_by_key.find(keyOf(v));
    if (it == old_by_key.end()) {
      diff.added.push_back(&v);
    } else {
      kept.insert(it->first);
      if (!(*it->second == v)) {  // backends are sorted, so == compares them as a set
        diff.changed.push_back(VipChange{it->second, &v});
      }
    }
  }
  for (const VipConfig& v : old_cfg.vips) {
    if (!kept.contains(keyOf(v))) {
      diff.removed.push_back(&v);
    }
  }
  return diff;
}

std::string vipKeyString(const VipConfig& vip) {
  const std::string addr =
      vip.address.isV6() ? "[" + vip.address.toString() + "]" : vip.address.toString();
  const std::string port = vip.port == 0 ? "*" : std::to_string(vip.port);
  const char* proto = vip.protocol == IPPROTO_TCP   ? "tcp"
                      : vip.protocol == IPPROTO_UDP ? "udp"
                                                    : "?";
  return addr + ":" + port + "/" + proto;
}

}  // namespace meshgate::agent
