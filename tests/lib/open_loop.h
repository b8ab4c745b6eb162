// An open-loop HTTP/1.1 load generator, for latency at a fixed offered rate: wrk and h2load
// are closed-loop, so their p99 at saturation is mostly queueing behind the slowest
// component (../shared/docs/reference/l7-baselines.md §5.6), and wrk2, which fixes that, is
// not in Debian.
//
// Request k is due at start + k / rate on keep-alive connection k % connections, whatever
// the earlier responses did. Its latency runs from when it was due to the end of its
// response, so a stalled server is charged for the time a request waited to be sent (no
// coordinated omission). One thread, in the namespace given, pinned to one CPU.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "meshgate/result.h"
#include "tests/lib/netns.h"

namespace meshgate::test {

struct OpenLoopOptions {
  uint16_t port = 0;  // on 127.0.0.1
  std::string path = "/";
  double rate = 1000;  // requests per second, over all connections
  int connections = 50;
  std::chrono::milliseconds duration{5000};  // of sending; then up to 2 s for the last answers
  int cpu = 0;                               // the generator's thread is pinned here
};

struct OpenLoopResult {
  uint64_t sent = 0;
  uint64_t completed = 0;  // 200 responses fully received
  uint64_t errors = 0;     // other statuses, parse errors, closed connections, no answer
                           // (unanswered ones count in the latencies with their wait)
  double p50_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
  double mean_send_lag_us = 0;  // how late the generator itself sent, on average
};

Result<OpenLoopResult> runOpenLoop(const NetNs& ns, const OpenLoopOptions& opts);

}  // namespace meshgate::test
