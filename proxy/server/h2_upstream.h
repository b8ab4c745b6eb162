// An UpstreamRequest carried as one stream of an HTTP/2 (cleartext, prior knowledge)
// connection to the endpoint. Each worker keeps one such connection per endpoint and
// multiplexes every request to it there (nghttp2 queues streams beyond the server's
// SETTINGS_MAX_CONCURRENT_STREAMS); after a GOAWAY the next request opens a new one. This is
// the path gRPC takes: trailers pass through both ways.
#pragma once

#include <cstdint>
#include <memory>

#include "proxy/net/buffer.h"
#include "proxy/server/upstream.h"
#include "proxy/server/worker.h"

namespace meshgate::proxy {

class H2Connection;

class H2Upstream final : public UpstreamRequest {
 public:
  H2Upstream(Worker& worker, UpstreamSink& sink, const UpstreamTarget& target);
  ~H2Upstream() override;

  // Submits the request on the endpoint's connection. Ready at once when that connection is
  // up, else onUpstreamReady() follows. Failures come through the sink, never from inside.
  void start(const RequestHead& head);
  bool ready() const;

  void sendBody(std::span<const char> data) override;
  void endRequest(HeaderList trailers) override;
  size_t requestBuffered() const override { return body_.size(); }
  void consumed(size_t n) override;
  void cancel() override;
  bool reusedConnection() const override { return reused_; }

 private:
  friend class H2Connection;
  // From the connection.
  void connected();
  void failed(UpstreamFailure f, std::string detail);
  // Response bytes delivered to the sink that it will never consume (it gave up, or the
  // stream failed) go back to the connection's window: the connection is shared, and
  // would stall for every stream once enough of them were lost.
  void releaseWindow();
  UpstreamSink* sink() const { return sink_; }

  Worker& worker_;
  UpstreamSink* sink_;
  UpstreamTarget target_;
  std::shared_ptr<H2Connection> conn_;
  int32_t stream_id_ = -1;
  Buffer body_;             // request body not yet framed
  bool body_done_ = false;  // endRequest() was called
  bool deferred_ = false;   // the data source said "wait"
  HeaderList trailers_;
  bool reused_ = false;
  bool finished_ = false;  // the response ended, failed or was cancelled
  uint16_t status_ = 0;
  HeaderList fields_;  // of the head being received
  bool head_done_ = false;
  size_t unconsumed_ = 0;  // response body delivered to the sink, not yet consumed()
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for deferred callbacks
};

}  // namespace meshgate::proxy
