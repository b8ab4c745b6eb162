#include "proxy/server/runtime.h"

#include <algorithm>
#include <string>

#include "proxy/server/worker.h"

namespace meshgate::proxy {

Result<SnapshotPtr> makeSnapshot(ProxyConfigPtr config, uint64_t generation) {
  auto s = std::make_shared<Snapshot>();
  for (const Cluster& c : config->clusters) {
    auto t = buildClusterTable(c);
    if (!t) {
      return std::unexpected(t.error());
    }
    s->tables.push_back(std::move(*t));
  }
  s->config = std::move(config);
  s->generation = generation;
  return s;
}

Runtime::Runtime(SnapshotPtr initial) : snapshot_(initial), generation_(initial->generation) {}

Runtime::~Runtime() {
  stop();
}

Result<void> Runtime::start() {
  const auto snap = snapshot();
  if (!snap->config->access_log.empty()) {
    auto log = AccessLog::open(snap->config->access_log);
    if (!log) {
      return std::unexpected(log.error());
    }
    access_log_ = std::move(*log);
  }
  for (uint32_t i = 0; i < snap->config->workers; i++) {
    auto w = std::make_unique<Worker>(*this, static_cast<int>(i));
    if (auto r = w->open(ports_); !r) {
      workers_.clear();
      return r;
    }
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) {
    w->start();
  }
  return {};
}

Result<void> Runtime::reload(ProxyConfigPtr config) {
  const auto old = snapshot();
  const auto& a = old->config->listeners;
  const auto& b = config->listeners;
  // Listeners are sockets every worker holds; changing them needs a restart (or, later,
  // the hand-over of listening sockets to a new process).
  for (size_t i = 0; i < std::max(a.size(), b.size()); i++) {
    if (i >= a.size() || i >= b.size() || a[i].name != b[i].name || a[i].address != b[i].address ||
        a[i].port != b[i].port || a[i].protocol != b[i].protocol) {
      const std::string which = i < b.size()
                                    ? "listeners[" + std::to_string(i) + "] ('" + b[i].name + "')"
                                    : "listeners: '" + a[i].name + "' removed";
      return fail(config->source + ": " + which +
                  ": adding, removing or moving a listener needs a restart; the running config "
                  "stays");
    }
  }
  const auto restartOnly = [&](const char* field) {
    return fail(config->source + ": " + field +
                " changes only on restart; the running config stays");
  };
  if (config->workers != old->config->workers) {
    return restartOnly("workers");
  }
  if (config->access_log != old->config->access_log) {
    return restartOnly("access_log");
  }
  if (config->admin_address != old->config->admin_address ||
      config->admin_port != old->config->admin_port) {
    return restartOnly("admin");  // its socket is opened once, by worker 0
  }
  auto snap = makeSnapshot(std::move(config), old->generation + 1);
  if (!snap) {
    return std::unexpected(snap.error());
  }
  const uint64_t generation = (*snap)->generation;
  snapshot_.store(*snap, std::memory_order_release);
  generation_.store(generation, std::memory_order_release);
  return {};
}

uint16_t Runtime::adminPort() const {
  return workers_.empty() ? 0 : workers_[0]->adminPort();
}

void Runtime::stop() {
  for (auto& w : workers_) {
    w->stop();
  }
  workers_.clear();
}

}  // namespace meshgate::proxy
