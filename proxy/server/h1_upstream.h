// An UpstreamRequest written as HTTP/1.1 on one connection to one endpoint: taken from the
// worker's keep-alive pool or newly connected, returned to the pool when both messages
// were framed cleanly, closed otherwise.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "proxy/event/timer_wheel.h"
#include "proxy/http1/parser.h"
#include "proxy/net/connection.h"
#include "proxy/server/upstream.h"
#include "proxy/server/worker.h"

namespace meshgate::proxy {

class H1Upstream final : public UpstreamRequest, public ConnectionObserver, public http1::Sink {
 public:
  H1Upstream(Worker& worker, UpstreamSink& sink, const UpstreamTarget& target);
  ~H1Upstream() override;

  // Writes the head (the body follows through sendBody()). A pooled connection is ready at
  // once (ready() is true on return); a new one reports onUpstreamReady() when connected.
  // Failures are reported through the sink, never from inside start().
  void start(const RequestHead& head);
  bool ready() const { return connected_; }

  void sendBody(std::span<const char> data) override;
  void endRequest(HeaderList trailers) override;
  size_t requestBuffered() const override { return conn_ ? conn_->output().size() : 0; }
  void consumed(size_t n) override;
  void cancel() override;
  bool reusedConnection() const override { return reused_; }

 private:
  // ConnectionObserver.
  void onData(Connection& c) override;
  void onDrained(Connection& c) override;
  void onConnected(Connection& c) override;
  void onError(Connection& c, int err) override;
  // http1::Sink (the response).
  void onStatusLine(http1::Version, uint16_t status, std::string_view) override;
  void onHeader(std::string_view name, std::string_view value) override;
  void onHeadersComplete(const http1::MessageHead& head) override;
  void onBody(std::span<const char> data) override;
  void onTrailer(std::string_view name, std::string_view value) override;
  void onMessageComplete() override;

  void feed();
  void complete();  // the response ended: pool the connection, tell the sink
  void fail(UpstreamFailure f, std::string detail);
  void dropConnection();

  Worker& worker_;
  UpstreamSink* sink_;
  UpstreamTarget target_;
  std::unique_ptr<Connection> conn_;
  http1::Parser parser_;  // allocates once a response arrives
  Timer connect_timer_;
  bool connected_ = false;
  bool reused_ = false;
  bool chunked_ = false;  // the request body goes chunked
  bool request_done_ = false;
  bool keep_alive_ = false;  // the response allows reuse
  bool response_started_ = false;
  bool response_done_ = false;
  uint16_t status_ = 0;
  HeaderList headers_;  // of the response being parsed, then its trailers
  size_t unconsumed_ = 0;
  bool feed_scheduled_ = false;
  // For deferred calls: made with the first one (most requests defer none).
  std::weak_ptr<bool> aliveToken();
  std::shared_ptr<bool> alive_;
};

}  // namespace meshgate::proxy
