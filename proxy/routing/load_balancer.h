// Endpoint choice for one cluster, per worker (no locks: each worker has its own
// LoadBalancer per cluster and per config snapshot).
// - round robin: smooth weighted round robin (every endpoint gets its share, interleaved);
// - least request: power of two choices, fewer active requests per unit of weight wins;
// - consistent hash: a Maglev table over the endpoints (agent/maglev.h, the same code the
//   XDP balancer uses), keyed by the hash of a header or cookie value, so every worker and
//   every proxy sends one user to the same endpoint. Without the header or cookie the
//   request falls back to round robin.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "meshgate/result.h"
#include "proxy/net/socket.h"
#include "proxy/routing/config.h"

namespace meshgate::proxy {

// The part of a cluster's balancing state that every worker shares: built once per config.
struct ClusterTable {
  std::vector<uint32_t> maglev;           // kConsistentHash only: slot -> endpoint index
  std::vector<SockAddr> addresses;        // by endpoint index
  std::vector<std::string> address_keys;  // "ip:port", the keep-alive pool key
};
Result<std::shared_ptr<const ClusterTable>> buildClusterTable(const Cluster& cluster);

class LoadBalancer {
 public:
  LoadBalancer(const Cluster& cluster, std::shared_ptr<const ClusterTable> table, uint64_t seed);

  // The endpoint index for a request; `hash_key` is the header/cookie value for consistent
  // hashing (nullopt: not present). nullopt when every endpoint is drained or excluded.
  // `exclude`: an endpoint to avoid (the one a retry just failed on), when another exists.
  std::optional<size_t> pick(std::optional<std::string_view> hash_key,
                             std::optional<size_t> exclude = std::nullopt);

  // Least request bookkeeping: a request started / finished on an endpoint.
  void started(size_t endpoint) { active_[endpoint]++; }
  void finished(size_t endpoint) { active_[endpoint]--; }
  uint32_t active(size_t endpoint) const { return active_[endpoint]; }

 private:
  std::optional<size_t> roundRobin(std::optional<size_t> exclude);
  std::optional<size_t> leastRequest(std::optional<size_t> exclude);

  const Cluster& cluster_;
  std::shared_ptr<const ClusterTable> table_;
  std::vector<int64_t> current_;  // smooth weighted round robin state
  std::vector<uint32_t> active_;
  std::mt19937_64 rng_;
};

// The 64-bit key hash used for consistent hashing (stable across processes and hosts).
uint64_t consistentHashKey(std::string_view value);

}  // namespace meshgate::proxy
