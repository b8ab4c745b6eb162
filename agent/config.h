// The agent's configuration: a JSON file (docs/CONFIG.md) parsed once into the typed,
// validated structs below and frozen into a ConfigPtr. On SIGHUP the agent parses the
// file again, checks the new snapshot with checkReloadable(), lets LbState write what
// changed (it compares each VIP with the one it last wrote, by the same equality that
// diffVips() uses), then swaps the pointer; a rejected file leaves the running config in
// place. diffVips() and globalsChanged() describe a change for tools and tests; the agent
// does not call them.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/net_addr.h"
#include "meshgate/result.h"

namespace meshgate::agent {

struct BackendConfig {
  IpAddr address;
  // 0..1000000; 0 = drained: keeps its established (tracked) flows, gets no new ones.
  uint32_t weight = 1;
  // QUIC-LB server ID ("quic_server_id", hex in the file): exactly the VIP's server_id_len
  // octets, unique within the VIP. Required in a QUIC VIP (quic_lb non-empty), drained
  // backends included; empty = none, the only value allowed in any other VIP.
  std::vector<uint8_t> quic_server_id;

  friend bool operator==(const BackendConfig&, const BackendConfig&) = default;
};

// One QUIC-LB configuration of a VIP (draft-ietf-quic-load-balancers): the fields of
// quiclb::QuicLbConfig (include/meshgate/quic_lb.h), which validated it.
struct QuicLbConfigEntry {
  uint8_t config_rotation = 0;  // 0..6, unique within the VIP; 7 (0b111) marks unroutable CIDs
  uint8_t server_id_len = 0;    // 1..15 octets; the same in every config of the VIP
  uint8_t nonce_len = 0;        // 4..18 octets; server_id_len + nonce_len <= 19
  std::optional<std::array<uint8_t, 16>> key;  // AES-128 key; none = plaintext CIDs
  bool self_encoded_length = false;            // first octet's low 5 bits = CID length - 1

  friend bool operator==(const QuicLbConfigEntry&, const QuicLbConfigEntry&) = default;
};

// Active health checking of a VIP's backends ("health_check"): a TCP connect to each
// backend's address and `port`, every `interval_ms`, failing after `timeout_ms`. A backend
// is marked down after `fall` failures in a row and up again after `rise` successes in a
// row; while down it is treated as drained (weight 0: its tracked flows stay, new flows
// go elsewhere). Backends start up, so an agent (re)start moves no traffic.
struct HealthCheckConfig {
  uint16_t port = 0;  // 1..65535; defaults to the VIP's port for a TCP VIP with a port
  uint32_t interval_ms = 2000;
  uint32_t timeout_ms = 1000;  // <= interval_ms; the default is min(1000, interval_ms)
  uint32_t rise = 2;
  uint32_t fall = 3;

  friend bool operator==(const HealthCheckConfig&, const HealthCheckConfig&) = default;
};

struct VipConfig {
  std::string name;  // unique; [A-Za-z0-9][A-Za-z0-9_.-]{0,63}
  IpAddr address;
  uint16_t port = 0;       // 0 = port-less: matches every destination port
  uint8_t protocol = 0;    // IPPROTO_TCP or IPPROTO_UDP
  uint32_t ring_size = 0;  // Maglev table size: prime, <= MG_MAX_RING_SIZE
  // A set keyed by address, sorted by address (IpAddr ordering) whatever the file's
  // order, so every balancer builds the same Maglev table from the same set.
  std::vector<BackendConfig> backends;
  // QUIC-LB configs ("quic_lb.configs"; protocol UDP only): route by the server ID in the
  // QUIC destination connection ID. Empty = not a QUIC VIP. Sorted by config_rotation
  // whatever the file's order; 1..7 entries sharing one server_id_len.
  std::vector<QuicLbConfigEntry> quic_lb;
  std::optional<HealthCheckConfig> health_check;  // none: every backend counts as up

  friend bool operator==(const VipConfig&, const VipConfig&) = default;
};

struct InterfaceConfig {
  std::string name;      // kernel interface name, 1..15 characters
  bool generic = false;  // xdp_mode "generic" (XDP_FLAGS_SKB_MODE); false = "native"

  friend bool operator==(const InterfaceConfig&, const InterfaceConfig&) = default;
};

struct AgentConfig {
  std::string pin_root;                           // absolute bpffs directory; MG_PIN_ROOT
  std::vector<InterfaceConfig> interfaces;        // xdp_lb attaches here
  std::vector<InterfaceConfig> decap_interfaces;  // xdp_decap attaches here
  uint32_t hash_seed = 0;                         // identical on every balancer behind ECMP
  uint32_t conntrack_size = 0;                    // mg_conntrack max_entries
  uint32_t udp_idle_seconds = 0;
  uint32_t max_conn_rate = 0;  // conntrack inserts per CPU per second; 0 = no cap
  IpPrefix encap_source_v4;    // outer IPv4 source; host bits come from the flow hash
  IpPrefix encap_source_v6;    // outer IPv6 source; length >= 96 (hash fills the last word)
  uint8_t encap_ttl = 0;
  std::optional<std::string> metrics_listen;  // SockAddr::toString() form: "[::1]:9464"
  std::vector<VipConfig> vips;                // in file order
  std::string source;                         // the file (or name) it was parsed from
};

using ConfigPtr = std::shared_ptr<const AgentConfig>;

// Parses and validates a config document. Errors read
// "<source_name>: <field path>: <problem>", e.g.
// "meshgate.json: vips[1].backends[0].weight: must be an integer 0..1000000, got \"ten\"".
// The first error found is reported. Never throws.
Result<ConfigPtr> parseConfig(std::string_view json_text, std::string_view source_name);

// A kernel interface name: 1-15 characters, printable, no '/' or ':', not "." or "..".
bool validIfName(std::string_view name);

// Reads `path` and parses it with `path` as the source name. An unreadable file yields
// "<path>: cannot read: <strerror>".
Result<ConfigPtr> loadConfigFile(const std::string& path);

// Rejects a reload that changes a field only a restart can apply (pin_root,
// conntrack.size, interfaces, decap_interfaces, metrics): map sizes are fixed at load
// and attachments and listeners are made at start-up. The error names next.source and
// the field, e.g. "meshgate.json: conntrack.size: cannot change on reload (262144 ->
// 524288); restart the agent". Restarting keeps XDP attached (pinned links).
Result<void> checkReloadable(const AgentConfig& running, const AgentConfig& next);

// True when a field that the agent writes into mg_globals differs (hash_seed,
// conntrack.udp_idle_seconds, conntrack.max_inserts_per_cpu_per_second, encap.*).
bool globalsChanged(const AgentConfig& old_cfg, const AgentConfig& new_cfg);

struct VipChange {
  const VipConfig* old_vip;  // points into the old config
  const VipConfig* new_vip;  // points into the new config
};

// VIP differences between two snapshots, keyed by (address, port, protocol). Pointers
// point into the configs passed to diffVips(): keep both alive while using the diff.
struct ConfigDiff {
  std::vector<const VipConfig*> added;    // in new only (into new_cfg), new_cfg order
  std::vector<VipChange> changed;         // in both, name/ring_size/backends/quic_lb differ
  std::vector<const VipConfig*> removed;  // in old only (into old_cfg), old_cfg order

  bool empty() const { return added.empty() && changed.empty() && removed.empty(); }
};

// Backends compare as a set keyed by address (a reordered list is unchanged); a weight or
// quic_server_id change, an added or a removed backend makes the VIP `changed`, and so
// does any change to quic_lb (compared as a set keyed by config_rotation).
ConfigDiff diffVips(const AgentConfig& old_cfg, const AgentConfig& new_cfg);

// "198.18.100.1:80/tcp", "[2001:db8::1]:*/udp" (port-less): how errors and logs name a VIP.
std::string vipKeyString(const VipConfig& vip);

}  // namespace meshgate::agent
