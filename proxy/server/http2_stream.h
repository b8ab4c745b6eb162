// One stream of an Http2Session: an HTTP/2 request routed like an HTTP/1.1 one and served
// through an UpstreamRequest (private to http2_session.cc and http2_stream.cc).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proxy/event/timer_wheel.h"
#include "proxy/net/buffer.h"
#include "proxy/server/endpoint_choice.h"
#include "proxy/server/http2_session.h"
#include "proxy/server/upstream.h"

namespace meshgate::proxy {

// One request/response exchange.
class Http2Session::Stream final : public UpstreamSink {
 public:
  Stream(Http2Session& s, int32_t id)
      : s_(s),
        id_(id),
        start_(s.worker_.loop().now()),
        timer_(s.worker_.loop().timers(), [this] { onTimeout(); }) {}
  ~Stream() override { dropUpstream(); }

  // Request head, as nghttp2 validated it (pseudo-headers, no connection-specific fields).
  // False once the header list is over the limits (nothing more is stored).
  bool onField(std::string_view name, std::string_view value);
  bool fieldsTooLarge() const {
    return field_bytes_ > limits().max_header_bytes || field_count_ > limits().max_headers;
  }
  void onHeadComplete(bool end_stream);
  void onTrailers() { request_ended_ = true; }
  void onBody(std::span<const char> data);
  void onRequestEnd();
  void begin();  // route and send upstream
  void onClosed(uint32_t error_code, bool session_ending = false);

  bool responseEnded() const { return response_ended_; }
  int32_t id() const { return id_; }
  // The data source of the response body.
  ssize_t readBody(uint8_t* buf, size_t length, uint32_t* flags);

  // UpstreamSink.
  void onUpstreamReady() override {
    up_ready_ = true;
    pumpBody();
  }
  void onUpstreamWritable() override { pumpBody(); }
  void onUpstreamHeaders(uint16_t status, HeaderList headers, bool end) override;
  void onUpstreamData(std::span<const char> data) override;
  void onUpstreamEnd(HeaderList trailers) override;
  void onUpstreamFailed(UpstreamFailure f, std::string detail) override;

 private:
  void connectUpstream();
  void pumpBody();
  void respondError(uint16_t status, std::string_view detail);
  void submitHead(uint16_t status, const HeaderList& fields, bool end);
  void onTimeout();
  void dropUpstream();
  void logAccess();
  const Limits& limits() const { return s_.snapshot_->config->limits; }

  Http2Session& s_;
  int32_t id_;
  std::chrono::steady_clock::time_point start_;  // when the head arrived (the loop's clock)
  // Request.
  RequestHead req_;
  std::string xff_;
  size_t field_bytes_ = 0;
  size_t field_count_ = 0;
  bool trailers_phase_ = false;
  HeaderList trailers_;
  bool request_ended_ = false;
  bool end_forwarded_ = false;
  Buffer body_in_;  // request body the upstream has not taken yet (at most one window)
  uint64_t request_bytes_ = 0;
  // The body forwarded so far, kept so that another attempt can send it again while one can
  // happen (see begin()), the response has not started and it fits in buffer_bytes;
  // `replayable_` is false otherwise. `resent_`: how much of it the current attempt got.
  Buffer sent_body_;
  size_t resent_ = 0;
  bool replayable_ = true;
  // Routing.
  const Route* route_ = nullptr;
  size_t cluster_ = 0;
  std::optional<size_t> endpoint_;
  EndpointLease lease_;
  std::string endpoint_key_;
  uint32_t attempts_ = 0;
  std::unique_ptr<UpstreamRequest> up_;
  bool up_ready_ = false;
  std::chrono::steady_clock::time_point upstream_start_;
  // Response.
  uint16_t status_ = 0;
  bool head_submitted_ = false;
  Buffer body_out_;              // response body nghttp2 has not framed yet
  bool response_ended_ = false;  // no more body: EOF once body_out_ is empty
  bool response_cut_ = false;    // the upstream failed mid-body: reset once body_out_ is empty
  bool deferred_ = false;        // readBody() returned "wait"
  HeaderList resp_trailers_;
  uint64_t response_bytes_ = 0;
  bool logged_ = false;
  bool reset_by_us_ = false;
  Timer timer_;  // the route timeout, until the response head
};

}  // namespace meshgate::proxy
