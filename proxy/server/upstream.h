// The protocol-neutral face of one request to an upstream, used by the HTTP/2 downstream
// (and meant for every later downstream that is not a raw HTTP/1.1 byte stream): a request
// head, body bytes and trailers go in; a response head, body bytes and trailers come out
// through an UpstreamSink. Two implementations:
// - H1Upstream: the request written as HTTP/1.1 on a pooled keep-alive connection;
// - H2Upstream: a stream of the worker's shared HTTP/2 connection to the endpoint (gRPC).
//
// Flow control is the same for both: the sink calls consumed(n) once it has passed n bytes
// of response body on, and an upstream never holds more than its window of unconsumed bytes
// (H1: it stops reading the socket; H2: it withholds WINDOW_UPDATE). Request body goes in
// only while requestBuffered() is below the caller's limit; onUpstreamWritable() says when
// there is room again.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http1/parser.h"
#include "proxy/net/socket.h"
#include "proxy/routing/router.h"

namespace meshgate::proxy {

struct RequestHead {
  std::string method;  // "GET"
  std::string scheme = "http";
  std::string authority;  // host[:port]
  std::string path;       // origin-form, with the query
  HeaderList headers;     // lower-case names; no pseudo-headers and no hop-by-hop fields
  std::optional<uint64_t> content_length;
  bool has_body = false;  // the client will send body bytes (or trailers)
};

// Where and how an UpstreamRequest connects.
struct UpstreamTarget {
  const SockAddr* address;
  const std::string* key;  // "ip:port": the connection pool key
  std::chrono::milliseconds connect_timeout;
  uint32_t max_idle;                       // HTTP/1.1 keep-alive pool size for this endpoint
  std::chrono::milliseconds idle_timeout;  // of an unused upstream connection
  size_t window;  // response bytes delivered but not consumed before the upstream waits
  http1::Limits response_limits;  // of an HTTP/1.1 response's head (responseHeadLimits())
};

// The limits of an upstream response's head: the configured max_headers and
// max_header_bytes, as for requests (a response beyond them gets the client a 502); its body
// is not limited.
inline http1::Limits responseHeadLimits(const Limits& limits) {
  http1::Limits pl;
  pl.max_header_count = static_cast<uint32_t>(limits.max_headers);
  pl.max_header_bytes = static_cast<uint32_t>(limits.max_header_bytes);
  return pl;
}

enum class UpstreamFailure : uint8_t {
  kConnect,      // nothing reached the server: safe to retry any request elsewhere
  kRefused,      // the server refused the stream unprocessed (HTTP/2 REFUSED_STREAM, GOAWAY)
  kReset,        // the connection broke or the stream was reset after the request went out
  kBadResponse,  // the response could not be parsed
};

class UpstreamSink {
 public:
  virtual ~UpstreamSink() = default;
  // The request body may flow now (the connection is up).
  virtual void onUpstreamReady() = 0;
  // Room for more request body after requestBuffered() reached the limit.
  virtual void onUpstreamWritable() = 0;
  // The final response head (1xx are not reported). `end` = no body follows.
  virtual void onUpstreamHeaders(uint16_t status, HeaderList headers, bool end) = 0;
  virtual void onUpstreamData(std::span<const char> data) = 0;
  // The response ended, with its trailers (often none).
  virtual void onUpstreamEnd(HeaderList trailers) = 0;
  virtual void onUpstreamFailed(UpstreamFailure f, std::string detail) = 0;
};

class UpstreamRequest {
 public:
  virtual ~UpstreamRequest() = default;
  // Appends request body (only after onUpstreamReady()).
  virtual void sendBody(std::span<const char> data) = 0;
  // The request is complete; trailers (if any) follow the body.
  virtual void endRequest(HeaderList trailers) = 0;
  // Request bytes accepted but not yet written to the socket.
  virtual size_t requestBuffered() const = 0;
  // The sink has passed on `n` response body bytes: the upstream may deliver more.
  virtual void consumed(size_t n) = 0;
  // The sink gives up on the request (client reset, timeout): no more callbacks. An H1
  // connection is closed (its framing state is lost), an H2 stream is reset, and the bytes
  // it delivered that were never consumed go back to its shared connection's window (as
  // they do when the stream fails).
  virtual void cancel() = 0;
  virtual bool reusedConnection() const = 0;
};

}  // namespace meshgate::proxy
