// Endpoint choice for the requests of one client connection. While the connection's config
// snapshot is the worker's current one, it picks with the worker's balancers (shared by
// every connection of the worker, so round robin rotates and least request sees all load);
// a connection accepted before a reload keeps its snapshot and picks with balancers of its
// own for it, so its requests still rotate over that snapshot's endpoints.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string_view>

#include "proxy/server/worker.h"

namespace meshgate::proxy {

// A request counted as active on an endpoint (least request); uncounted when reset or
// destroyed.
class EndpointLease {
 public:
  EndpointLease() = default;
  EndpointLease(const EndpointLease&) = delete;
  EndpointLease& operator=(const EndpointLease&) = delete;
  ~EndpointLease() { reset(); }
  void reset();

 private:
  friend class EndpointChooser;
  std::shared_ptr<WorkerRouting> routing_;
  size_t cluster_ = 0;
  size_t endpoint_ = 0;
};

class EndpointChooser {
 public:
  EndpointChooser(Worker& worker, SnapshotPtr snapshot)
      : worker_(worker), snapshot_(std::move(snapshot)) {}

  // An endpoint of `cluster` (nullopt: none is live), avoiding `exclude` when another
  // exists. The previous count of `lease` ends and the new choice is counted in it.
  std::optional<size_t> pick(size_t cluster, std::optional<std::string_view> hash_key,
                             std::optional<size_t> exclude, EndpointLease& lease);

 private:
  Worker& worker_;
  SnapshotPtr snapshot_;
  std::map<size_t, std::unique_ptr<LoadBalancer>> old_balancers_;  // by cluster, after a reload
};

}  // namespace meshgate::proxy
