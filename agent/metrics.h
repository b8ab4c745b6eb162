// Metrics: the data path's per-CPU counters summed and rendered in the Prometheus text
// format, served over plain HTTP at /metrics by the agent (metrics.listen in the config).
#pragma once

#include <string>

#include "agent/bpf_util.h"
#include "meshgate/result.h"

namespace meshgate::agent {

// Reads the pinned maps under pin_root and renders every counter: xdp_lb events and
// drops by reason, traffic per VIP and per backend, xdp_decap counters when pinned.
Result<std::string> renderPrometheus(const std::string& pin_root);

class MetricsServer {
 public:
  // "127.0.0.1:9464" or "[::1]:9464".
  static Result<MetricsServer> listen(const std::string& address, const std::string& pin_root);
  int fd() const { return fd_.get(); }
  // Accepts one connection and answers it (blocking, with a short receive timeout); `extra`
  // (Prometheus lines the agent keeps itself, such as health checks) follows the counters.
  void serveOne(const std::string& extra = "");

 private:
  MetricsServer(UniqueFd fd, std::string pin_root)
      : fd_(std::move(fd)), pin_root_(std::move(pin_root)) {}
  UniqueFd fd_;
  std::string pin_root_;
};

}  // namespace meshgate::agent
