// One client connection of an HTTP listener: HTTP/1.1 requests parsed one at a time
// (pipelined ones wait their turn), each routed to a cluster, sent to an endpoint over a
// pooled keep-alive connection, and its response streamed back. Bodies stream both ways
// with backpressure; nothing is buffered beyond Limits::buffer_bytes per direction.
//
// What the client sees when something goes wrong: 400/413/414/431/501/505 for a request
// the parser rejects, 404 when no route matches, 408 when the head does not arrive within
// the header timeout, 502 for an upstream that resets or sends garbage, 503 when no
// endpoint can be reached, 504 when the upstream does not answer within the route timeout.
// Each request ends with one JSON access-log line when the access log is on.
//
// A connection that opens with the HTTP/2 preface is handed to an Http2Session. A request
// routed to an HTTP/2 cluster goes out as a stream of the worker's HTTP/2 connection to
// the endpoint (http_session_h2.cc). Sources: http_session.cc (requests, HTTP/1.1
// upstreams, endings), http_session_response.cc (responses), http_session_exchange.h.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/event/timer_wheel.h"
#include "proxy/http1/parser.h"
#include "proxy/net/connection.h"
#include "proxy/server/endpoint_choice.h"
#include "proxy/server/upstream.h"
#include "proxy/server/worker.h"

namespace meshgate::proxy {

class HttpSession final : public Session, public ConnectionObserver {
 public:
  HttpSession(Worker& worker, Fd client, const SockAddr& peer, SnapshotPtr snapshot,
              size_t listener);
  ~HttpSession() override;
  void start();

 private:
  struct Exchange;
  class RequestSink;
  class ResponseSink;
  class H2Sink;

  // ConnectionObserver, for the client and the current upstream connection.
  void onData(Connection& c) override;
  void onDrained(Connection& c) override;
  void onConnected(Connection& c) override;
  void onError(Connection& c, int err) override;
  void onResetWhilePaused(Connection& c) override;

  // Downstream.
  void makeParser();
  void feedRequest();
  void onRequestHead(const http1::MessageHead& head);
  void onRequestBody(std::span<const char> data);
  void onRequestComplete();
  void onRequestTrailer(std::string_view name, std::string_view value);

  // Upstream.
  // Picks the exchange's next endpoint (answers 503 and returns false when none is live).
  bool pickEndpoint();
  void connectUpstream();
  void sendToUpstream(std::string_view bytes);
  // Appends `bytes` to the exchange's copy of what went upstream while it fits in
  // buffer_bytes; past that the exchange is no longer replayable and the copy is dropped.
  void keepForRetry(std::string_view bytes);
  void onUpstreamFailed(bool connect_failure);
  void feedResponse();
  void onResponseHead(const http1::MessageHead& head);
  void onResponseBody(std::span<const char> data);
  void onResponseComplete();
  void onResponseTrailer(std::string_view name, std::string_view value);
  void toTunnel();
  void toHttp2();

  // An HTTP/2 cluster: the request as a stream of the endpoint's HTTP/2 connection.
  void startH2(const http1::MessageHead& head);
  void connectH2();
  // A retry's new stream: connectH2(), then the body (and the end, if the client had sent
  // it) that the failed attempt had sent, from the exchange's copy.
  void retryH2();
  void onH2ResponseHead(uint16_t status, const HeaderList& headers, bool end);
  void onH2ResponseBody(std::span<const char> data);
  void onH2ResponseEnd(const HeaderList& trailers);
  void onH2Failed(
      UpstreamFailure f,
      const std::string& detail);  // the client sent the HTTP/2 preface: an Http2Session takes over

  // Endings.
  void sendError(uint16_t status, std::string_view detail);
  void finishExchange();
  void releaseEndpoint();  // least-request bookkeeping of the current attempt
  void closeAfterResponse();
  void startLinger();
  void finish();
  void logAccess();
  // "ip:port" the client connected to: the authority of a request that named none.
  std::string localAuthority() const;

  Worker& worker_;
  SockAddr peer_;
  SnapshotPtr snapshot_;
  size_t listener_;
  EndpointChooser chooser_;
  std::unique_ptr<Connection> down_;
  std::unique_ptr<RequestSink> req_sink_;
  std::unique_ptr<http1::Parser> req_parser_;
  std::unique_ptr<Exchange> ex_;
  // One timer, for whichever deadline the session is waiting on (they never overlap):
  // the head of a request (408), the next request on an idle keep-alive connection
  // (close), or the upstream (connect timeout: retry or 503; route timeout: 504).
  enum class Deadline : uint8_t { kNone, kHeader, kIdle, kUpstream, kLinger };
  static constexpr std::chrono::milliseconds kLingerTime{5000};
  void setDeadline(Deadline d, std::chrono::milliseconds after);
  void clearDeadline(Deadline d);
  void onDeadline();
  Timer timer_;
  Deadline deadline_ = Deadline::kNone;
  uint32_t idle_output_ = 0;   // kIdle: output bytes at the last check (progress = fewer)
  bool closing_ = false;       // no more requests: finish when the response is out
  bool lingering_ = false;     // response out and FIN sent: draining the client until it closes
  bool linger_needed_ = true;  // false: the client asked to close and sent nothing more
  bool done_ = false;
};

}  // namespace meshgate::proxy
