// The proxy's counters, declared once: X(name, help). Workers bump them with relaxed
// atomics; names are exported as they are here.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace meshgate::proxy {

#define MESHGATE_PROXY_STATS(X)                                                                   \
  X(downstream_cx_total, "client connections accepted")                                           \
  X(downstream_cx_active, "client connections open")                                              \
  X(downstream_cx_accept_fail,                                                                    \
    "accepts that failed (out of descriptors or memory, or another error; retried, the client "   \
    "waits)")                                                                                     \
  X(downstream_rq_total, "HTTP requests received (head complete)")                                \
  X(downstream_rq_bad, "HTTP requests rejected by the parser (4xx/5xx sent, closed)")             \
  X(downstream_rq_timeout, "client connections closed by the header timeout (408)")               \
  X(downstream_rq_no_route, "HTTP requests that matched no route (404)")                          \
  X(downstream_rq_h2c_upgrade_dropped,                                                            \
    "requests whose Upgrade: h2c was dropped (served as HTTP/1.1, never tunnelled)")              \
  X(response_2xx, "responses 2xx sent to clients")                                                \
  X(response_3xx, "responses 3xx sent to clients")                                                \
  X(response_4xx, "responses 4xx sent to clients")                                                \
  X(response_5xx, "responses 5xx sent to clients")                                                \
  X(upstream_cx_connect, "upstream connections opened")                                           \
  X(upstream_cx_connect_fail, "upstream connects that failed or timed out")                       \
  X(upstream_cx_reused, "requests sent on a pooled keep-alive upstream connection")               \
  X(upstream_rq_retry, "upstream attempts retried on another endpoint")                           \
  X(upstream_rq_retry_unreplayable,                                                               \
    "retries due but not made: the request was larger than buffer_bytes, so not kept")            \
  X(upstream_rq_timeout, "requests whose upstream did not answer in the route timeout (504)")     \
  X(upstream_rsp_bad, "upstream responses rejected by the parser (502)")                          \
  X(upstream_rsp_reset, "upstream connections closed before the response ended (502)")            \
  X(h2_downstream_cx, "client connections that spoke HTTP/2 (h2c prior knowledge)")               \
  X(h2_streams_reset_by_client, "HTTP/2 client streams reset before their response ended")        \
  X(h2_streams_reset_early, "HTTP/2 streams reset in the read that opened them (no upstream)")    \
  X(h2_downstream_protocol_error, "HTTP/2 client connections ended by a protocol error or flood") \
  X(h2_streams_idle_timeout, "HTTP/2 streams reset after idle_timeout without progress")          \
  X(h2_downstream_frame_errors, "HTTP/2 client frames nghttp2 rejected (stream reset or GOAWAY)") \
  X(h2_upstream_cx, "HTTP/2 upstream connections opened")                                         \
  X(h2_upstream_streams_refused, "HTTP/2 upstream streams refused or cut by GOAWAY (retried)")    \
  X(tcp_sessions, "TCP proxy sessions started")                                                   \
  X(tcp_connect_fail, "TCP proxy sessions whose upstream connect failed")

struct Stats {
#define MESHGATE_PROXY_STAT_FIELD(name, help) std::atomic<uint64_t> name{0};
  MESHGATE_PROXY_STATS(MESHGATE_PROXY_STAT_FIELD)
#undef MESHGATE_PROXY_STAT_FIELD

  // A response sent to a client, by class (0: none was sent).
  void countResponse(uint16_t status) {
    if (status < 200) {
      return;
    }
    auto& c = status < 300   ? response_2xx
              : status < 400 ? response_3xx
              : status < 500 ? response_4xx
                             : response_5xx;
    c.fetch_add(1, std::memory_order_relaxed);
  }
  // Prometheus text format, names prefixed "meshgate_proxy_".
  std::string prometheus() const;
};

inline void bump(std::atomic<uint64_t>& c, int64_t by = 1) {
  c.fetch_add(static_cast<uint64_t>(by), std::memory_order_relaxed);
}

}  // namespace meshgate::proxy
