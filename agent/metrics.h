// Metrics: the data path's per-CPU counters summed and rendered in the Prometheus text
// format, served over plain HTTP at /metrics by the agent (metrics.listen in the config).
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/bpf_util.h"
#include "meshgate/result.h"

namespace meshgate::agent {

// Reads the pinned maps under pin_root and renders every counter: xdp_lb events and
// drops by reason, traffic per VIP and per backend, xdp_decap counters when pinned.
Result<std::string> renderPrometheus(const std::string& pin_root);

// Serves /metrics from the agent's poll loop without ever blocking it: a client that sends
// nothing, or reads slowly, holds only its own slot until its deadline.
class MetricsServer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxClients = 32;  // more at once are closed as they come
  static constexpr auto kClientTime = std::chrono::seconds(2);  // to send a request and read

  // "127.0.0.1:9464" or "[::1]:9464".
  static Result<MetricsServer> listen(const std::string& address, const std::string& pin_root);

  // The descriptors to poll: the listening socket, then one per client (reading its request,
  // or writing its answer).
  void pollFds(std::vector<pollfd>& fds) const;
  // Milliseconds until the next client deadline, or -1 with no client.
  int msUntilDeadline(Clock::time_point now) const;
  // Handles what poll() reported for pollFds()' descriptors, which start at fds[first];
  // render() makes the page's extra lines (the agent's own metrics), only when a request is
  // complete. Closes the clients past their deadline.
  void handle(const std::vector<pollfd>& fds, size_t first, Clock::time_point now,
              const std::function<std::string()>& render);

 private:
  struct Client {
    UniqueFd fd;
    Clock::time_point deadline;
    std::string in;   // the request, until its head is complete
    std::string out;  // the answer, once it is
    size_t sent = 0;
  };
  MetricsServer(UniqueFd fd, std::string pin_root)
      : fd_(std::move(fd)), pin_root_(std::move(pin_root)) {}
  void accept(Clock::time_point now);
  // Reads or writes what the client is ready for; false when it is done or failed.
  bool serve(Client& c, const std::function<std::string()>& render);
  std::string answer(std::string_view request, const std::function<std::string()>& render) const;

  UniqueFd fd_;
  std::string pin_root_;
  std::vector<Client> clients_;
};

}  // namespace meshgate::agent
