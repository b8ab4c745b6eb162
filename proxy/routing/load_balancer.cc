#include "proxy/routing/load_balancer.h"

#include <algorithm>
#include <cstdint>

#include "agent/maglev.h"

namespace meshgate::proxy {
namespace {

// A prime comfortably above any cluster's endpoint count, small enough to build in
// microseconds per endpoint.
constexpr uint32_t kMaglevTableSize = 65537;
constexpr uint64_t kKeySeed = 0x6d6573686761u;  // "meshga"

}  // namespace

uint64_t consistentHashKey(std::string_view value) {
  return agent::maglevKeyHash(value, kKeySeed);
}

Result<std::shared_ptr<const ClusterTable>> buildClusterTable(const Cluster& cluster) {
  auto table = std::make_shared<ClusterTable>();
  for (const Endpoint& e : cluster.endpoints) {
    auto a = SockAddr::parse(e.address, e.port);
    if (!a) {
      return fail("cluster '" + cluster.name + "': " + a.error().message);
    }
    table->address_keys.push_back(a->toString());
    table->addresses.push_back(*a);
  }
  if (cluster.lb_policy == LbPolicy::kConsistentHash) {
    std::vector<agent::MaglevBackend> backends;
    for (size_t i = 0; i < cluster.endpoints.size(); i++) {
      const Endpoint& e = cluster.endpoints[i];
      // The identity is the address and port, so the table is the same on every proxy
      // whatever the order of the endpoints in its file.
      backends.push_back(
          {e.address + "#" + std::to_string(e.port), static_cast<uint32_t>(i), e.weight});
    }
    auto t = agent::buildMaglevTable(backends, kMaglevTableSize);
    if (!t) {
      return fail("cluster '" + cluster.name + "': " + t.error().message);
    }
    table->maglev = std::move(*t);
  }
  return table;
}

LoadBalancer::LoadBalancer(const Cluster& cluster, std::shared_ptr<const ClusterTable> table,
                           uint64_t seed)
    : cluster_(cluster),
      table_(std::move(table)),
      current_(cluster.endpoints.size(), 0),
      active_(cluster.endpoints.size(), 0),
      rng_(seed) {}

std::optional<size_t> LoadBalancer::pick(std::optional<std::string_view> hash_key,
                                         std::optional<size_t> exclude) {
  switch (cluster_.lb_policy) {
    case LbPolicy::kConsistentHash:
      if (hash_key && !table_->maglev.empty()) {
        const size_t i = table_->maglev[consistentHashKey(*hash_key) % table_->maglev.size()];
        if (i != exclude) {
          return i;
        }
      }
      return roundRobin(exclude);
    case LbPolicy::kLeastRequest:
      return leastRequest(exclude);
    case LbPolicy::kRoundRobin:
      break;
  }
  return roundRobin(exclude);
}

std::optional<size_t> LoadBalancer::roundRobin(std::optional<size_t> exclude) {
  // Smooth weighted round robin: every endpoint gains its weight, the richest is chosen
  // and pays the total. Over W picks each endpoint is chosen exactly weight times.
  size_t skip = exclude.value_or(SIZE_MAX);
  bool other = false;
  for (size_t i = 0; i < cluster_.endpoints.size(); i++) {
    other = other || (i != skip && cluster_.endpoints[i].weight > 0);
  }
  if (!other) {
    skip = SIZE_MAX;  // nothing else to try: the excluded one is better than none
  }
  int64_t total = 0;
  std::optional<size_t> best;
  for (size_t i = 0; i < cluster_.endpoints.size(); i++) {
    const uint32_t w = cluster_.endpoints[i].weight;
    if (w == 0 || i == skip) {
      continue;
    }
    current_[i] += w;
    total += w;
    if (!best || current_[i] > current_[*best]) {
      best = i;
    }
  }
  if (best) {
    current_[*best] -= total;
  }
  return best;
}

std::optional<size_t> LoadBalancer::leastRequest(std::optional<size_t> exclude) {
  std::vector<size_t> live;
  const size_t skip = exclude.value_or(SIZE_MAX);
  for (size_t i = 0; i < cluster_.endpoints.size(); i++) {
    if (cluster_.endpoints[i].weight > 0 && i != skip) {
      live.push_back(i);
    }
  }
  if (live.empty()) {
    return exclude && cluster_.endpoints[*exclude].weight > 0 ? exclude : std::nullopt;
  }
  if (live.size() == 1) {
    return live[0];
  }
  std::uniform_int_distribution<size_t> d(0, live.size() - 1);
  const size_t a = live[d(rng_)];
  size_t b = live[d(rng_)];
  if (b == a) {
    b = live[(std::find(live.begin(), live.end(), a) - live.begin() + 1) % live.size()];
  }
  // Compare active/weight without division: a wins when active_a * w_b <= active_b * w_a.
  const uint64_t lhs = uint64_t{active_[a]} * cluster_.endpoints[b].weight;
  const uint64_t rhs = uint64_t{active_[b]} * cluster_.endpoints[a].weight;
  return lhs <= rhs ? a : b;
}

}  // namespace meshgate::proxy
