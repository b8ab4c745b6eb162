#include "proxy/server/endpoint_choice.h"

namespace meshgate::proxy {

void EndpointLease::reset() {
  if (routing_) {
    routing_->balancers[cluster_].finished(endpoint_);
    routing_.reset();
  }
}

std::optional<size_t> EndpointChooser::pick(size_t cluster,
                                            std::optional<std::string_view> hash_key,
                                            std::optional<size_t> exclude, EndpointLease& lease) {
  lease.reset();  // a retry: the failed attempt no longer counts
  auto routing = worker_.routing();
  if (routing->snapshot == snapshot_) {
    auto pick = routing->balancers[cluster].pick(hash_key, exclude);
    if (pick) {
      routing->balancers[cluster].started(*pick);
      lease.routing_ = std::move(routing);
      lease.cluster_ = cluster;
      lease.endpoint_ = *pick;
    }
    return pick;
  }
  auto& lb = old_balancers_[cluster];
  if (!lb) {
    lb = std::make_unique<LoadBalancer>(snapshot_->config->clusters[cluster],
                                        snapshot_->tables[cluster], 0);
  }
  return lb->pick(hash_key, exclude);
}

}  // namespace meshgate::proxy
