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

#include "proxy/routing/router.h"
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
  // An endpoint of `cluster` of `snapshot` (the connection's; nullopt: none is live) for a
  // request with `headers` (a consistent-hash cluster hashes its header or cookie),
  // avoiding `exclude` when another exists. The previous count of `lease` ends and the new
  // choice is counted in it.
  std::optional<size_t> pick(Worker& worker, const SnapshotPtr& snapshot, size_t cluster,
                             const HeaderList& headers, std::optional<size_t> exclude,
                             EndpointLease& lease);

 private:
  // By cluster, made after a reload only: an idle connection pays one pointer for it.
  std::unique_ptr<std::map<size_t, std::unique_ptr<LoadBalancer>>> old_balancers_;
};

}  // namespace meshgate::proxy
