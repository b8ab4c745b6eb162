// The admin endpoint: GET /metrics (the proxy's counters in Prometheus text) and GET /ready.
// One request per connection; served on worker 0's loop.
#pragma once

#include <chrono>

#include "proxy/event/timer_wheel.h"
#include "proxy/net/connection.h"
#include "proxy/server/worker.h"

namespace meshgate::proxy {

class AdminSession final : public Session, public ConnectionObserver {
 public:
  AdminSession(Worker& worker, Fd fd);
  void start();

 private:
  void onData(Connection& c) override;
  void onDrained(Connection&) override;
  void onError(Connection&, int) override { finish(); }
  void finish();

  static constexpr std::chrono::milliseconds kTimeout{10000};  // the whole exchange
  Worker& worker_;
  Connection conn_;
  Timer timer_;
  bool answered_ = false;
  bool done_ = false;
};

}  // namespace meshgate::proxy
