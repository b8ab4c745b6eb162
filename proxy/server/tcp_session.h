// TCP proxying (L4 in userspace) for protocols meshgate does not parse: bytes are copied
// both ways with backpressure (a side stops reading while the other side's output holds
// a full buffer), and half-close is kept: when one side sends FIN, the other side gets FIN
// after the last byte, and the session ends when both directions are done.
#pragma once

#include <chrono>
#include <memory>

#include "proxy/event/timer_wheel.h"
#include "proxy/net/connection.h"
#include "proxy/server/worker.h"

namespace meshgate::proxy {

class TcpSession final : public Session, public ConnectionObserver {
 public:
  TcpSession(Worker& worker, Fd client, SnapshotPtr snapshot, size_t cluster_index);
  // Picks an endpoint and connects; false (and the session is released) when none is live.
  void start();

  // Joins two established connections into a pipe (used by the HTTP session after an
  // upgrade); `pending_*` are bytes already read from one side for the other.
  static void tunnel(Worker& worker, std::unique_ptr<Connection> a, std::unique_ptr<Connection> b,
                     size_t buffer_bytes, std::chrono::milliseconds idle_timeout);

 private:
  TcpSession(Worker& worker, size_t buffer_bytes, std::chrono::milliseconds idle_timeout);
  void onData(Connection& c) override;
  void onDrained(Connection& c) override;
  void onConnected(Connection& c) override;
  void onError(Connection& c, int err) override;
  void onResetWhilePaused(Connection& c) override;
  void pump(Connection& from, Connection& to);
  void maybeFinish();
  void finish();

  Worker& worker_;
  SnapshotPtr snapshot_;
  size_t cluster_ = 0;
  size_t buffer_bytes_;
  // Closes a pipe on which neither side sent anything for Limits::idle_timeout.
  std::chrono::milliseconds idle_timeout_;
  Timer idle_timer_;
  std::unique_ptr<Connection> client_, upstream_;
  bool done_ = false;
};

}  // namespace meshgate::proxy
