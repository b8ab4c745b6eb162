#include "proxy/server/endpoint_choice.h"

namespace meshgate::proxy {

void EndpointLease::reset() {
  if (routing_) {
    routing_->balancers[cluster_].finished(endpoint_);
    routing_.reset();
  }
}

std::optional<size_t> EndpointChooser::pick(Worker& worker, const SnapshotPtr& snapshot,
                                            size_t cluster, const HeaderList& headers,
                                            std::optional<size_t> exclude, EndpointLease& lease) {
  lease.reset();  // a retry: the failed attempt no longer counts
  const Cluster& c = snapshot->config->clusters[cluster];
  std::optional<std::string_view> hash_key;
  if (c.lb_policy == LbPolicy::kConsistentHash) {
    hash_key = hashKeyOf(c, headers);
  }
  auto routing = worker.routing();
  if (routing->snapshot == snapshot) {
    auto pick = routing->balancers[cluster].pick(hash_key, exclude);
    if (pick) {
      routing->balancers[cluster].started(*pick);
      lease.routing_ = std::move(routing);
      lease.cluster_ = cluster;
      lease.endpoint_ = *pick;
    }
    return pick;
  }
  if (!old_balancers_) {
    old_balancers_ = std::make_unique<std::map<size_t, std::unique_ptr<LoadBalancer>>>();
  }
  auto& lb = (*old_balancers_)[cluster];
  if (!lb) {
    lb = std::make_unique<LoadBalancer>(snapshot->config->clusters[cluster],
                                        snapshot->tables[cluster], 0);
  }
  return lb->pick(hash_key, exclude);
}

}  // namespace meshgate::proxy
