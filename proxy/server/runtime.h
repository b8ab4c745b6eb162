// The running proxy: a config snapshot swapped atomically on reload, and one worker thread
// per configured worker, each with its own event loop, its own SO_REUSEPORT socket for
// every listener, its own load-balancer state and its own upstream connection pools.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "meshgate/result.h"
#include "proxy/routing/config.h"
#include "proxy/routing/load_balancer.h"
#include "proxy/server/access_log.h"
#include "proxy/server/stats.h"

namespace meshgate::proxy {

// A config with what is derived from it once for all workers.
struct Snapshot {
  ProxyConfigPtr config;
  std::vector<std::shared_ptr<const ClusterTable>> tables;  // by cluster index
  uint64_t generation = 0;
};
using SnapshotPtr = std::shared_ptr<const Snapshot>;

Result<SnapshotPtr> makeSnapshot(ProxyConfigPtr config, uint64_t generation);

class Worker;

class Runtime {
 public:
  explicit Runtime(SnapshotPtr initial);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Opens every listener in every worker and starts the worker threads.
  Result<void> start();
  // Replaces the config; listeners must stay the same (an error names what changed, and
  // the running config stays). Requests already routed finish on their snapshot.
  Result<void> reload(ProxyConfigPtr config);
  // Stops accepting, closes connections, joins the workers.
  void stop();

  SnapshotPtr snapshot() const { return snapshot_.load(std::memory_order_acquire); }
  // The current snapshot's generation: one plain atomic load, for the per-request check
  // "has the config changed?" (loading the shared_ptr itself takes a lock bit).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // The port each listener is bound to (useful with port 0), in config order.
  const std::vector<uint16_t>& listenerPorts() const { return ports_; }
  uint16_t adminPort() const;  // 0 without an admin endpoint
  Stats& stats() { return stats_; }
  AccessLog* accessLog() { return access_log_.get(); }

 private:
  std::unique_ptr<AccessLog> access_log_;
  std::atomic<SnapshotPtr> snapshot_;
  std::atomic<uint64_t> generation_;  // stored after snapshot_
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<uint16_t> ports_;
  Stats stats_;
};

}  // namespace meshgate::proxy
