// One worker thread: an event loop, one SO_REUSEPORT socket per listener, the sessions of
// the connections it accepted, per-cluster load balancers and upstream keep-alive pools.
// Nothing here is shared with other workers except the snapshot (read-only) and Stats.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "meshgate/result.h"
#include "proxy/event/event_loop.h"
#include "proxy/net/connection.h"
#include "proxy/net/socket.h"
#include "proxy/server/runtime.h"

namespace meshgate::proxy {

class Worker;
class H2Connection;

// A session owns the connections of one client (an HTTP exchange loop or a TCP pipe).
// Its worker owns it, in an intrusive list (no per-session map node).
class Session {
 public:
  virtual ~Session() = default;

 private:
  friend class Worker;
  Session* prev_ = nullptr;
  Session* next_ = nullptr;
};

// Per-snapshot balancing state of this worker: one LoadBalancer per cluster.
struct WorkerRouting {
  SnapshotPtr snapshot;
  std::vector<LoadBalancer> balancers;
};

class Worker {
 public:
  Worker(Runtime& runtime, int index);
  ~Worker();

  // Opens this worker's sockets for every listener (port 0 in the config: the port chosen
  // by the first worker is reused by the others, passed in `ports`).
  Result<void> open(std::vector<uint16_t>& ports);
  void start();  // runs the loop on a new thread
  void stop();   // thread-safe: stops the loop and joins

  EventLoop& loop() { return *loop_; }
  uint16_t adminPort() const { return admin_port_; }  // worker 0 with an admin endpoint
  Stats& stats() { return runtime_.stats(); }
  AccessLog* accessLog() { return runtime_.accessLog(); }
  // The balancers of the current snapshot (rebuilt when the snapshot changed).
  std::shared_ptr<WorkerRouting> routing();

  // An idle keep-alive connection to `endpoint`, or null.
  std::unique_ptr<Connection> takeIdle(const std::string& endpoint);
  // Returns a connection to the pool (closed if the pool is full); it is closed after
  // `idle_timeout` unused, before the server's own keep-alive timeout can race a request.
  void putIdle(const std::string& endpoint, std::unique_ptr<Connection> c, uint32_t max_idle,
               std::chrono::milliseconds idle_timeout);

  // The HTTP/2 connection to an endpoint that new requests share (null: none yet, or the
  // last one is going away); keep...() makes `c` that connection, forget...() drops it.
  std::shared_ptr<H2Connection> h2Connection(const std::string& endpoint);
  void keepH2Connection(const std::string& endpoint, std::shared_ptr<H2Connection> c);
  void forgetH2Connection(const std::string& endpoint, const H2Connection* c);

  // The worker owns its sessions: adopt() takes one, release() destroys it after the
  // current loop iteration.
  void adopt(std::unique_ptr<Session> s);
  void release(Session* s);
  bool hasSessions() const { return sessions_ != nullptr; }

 private:
  class ListenerSocket;
  class IdleConnection;
  void accept(size_t listener, Fd fd, const SockAddr& peer);

  static constexpr size_t kAdminListener = SIZE_MAX;
  Runtime& runtime_;
  int index_;
  uint16_t admin_port_ = 0;
  std::unique_ptr<EventLoop> loop_;
  std::vector<std::unique_ptr<ListenerSocket>> listeners_;
  Session* sessions_ = nullptr;  // owned, linked through Session::prev_/next_
  std::map<std::string, std::vector<std::unique_ptr<IdleConnection>>> idle_;
  // Emptied pool entries kept for the next putIdle(): a keep-alive request takes one
  // connection out and puts one back, and this spares an allocation and a timer each time.
  std::vector<std::unique_ptr<IdleConnection>> spare_idle_;
  static constexpr size_t kMaxSpareIdle = 64;
  std::map<std::string, std::shared_ptr<H2Connection>> h2_;
  std::shared_ptr<WorkerRouting> routing_;
  std::thread thread_;
  friend class ListenerSocket;
  friend class IdleConnection;
};

}  // namespace meshgate::proxy
