#include "proxy/server/runtime.h"

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
  bool same = a.size() == b.size();
  for (size_t i = 0; same && i < a.size(); i++) {
    same = a[i].name == b[i].name && a[i].address == b[i].address && a[i].port == b[i].port &&
           a[i].protocol == b[i].protocol;
  }
  if (!same) {
    return fail(config->source +
                ": listeners: adding, removing or moving a listener needs a restart; the "
                "running config stays");
  }
  if (config->workers != old->config->workers || config->access_log != old->config->access_log) {
    return fail(config->source +
                ": workers and access_log change only on restart; the running config stays");
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
