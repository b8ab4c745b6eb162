// One client connection that speaks HTTP/2 in cleartext with prior knowledge (h2c; h2 over
// TLS once TLS lands): an HttpSession hands its connection over when the first bytes are the
// HTTP/2 connection preface. nghttp2 does the framing, HPACK and stream state; this class
// routes each stream like an HTTP/1.1 request and serves it through an UpstreamRequest
// (HTTP/1.1 or HTTP/2 upstream, as the cluster says).
//
// Flow control is end to end: a stream's request body is acknowledged to the client
// (WINDOW_UPDATE) only once the upstream has taken it, and an upstream's response body is
// consumed only once nghttp2 has framed it for the client, so no stream ever holds more
// than one window (Limits::buffer_bytes) per direction.
//
// Hostile clients: nghttp2 rate-limits RST_STREAM (rapid reset, CVE-2023-44487) and caps
// CONTINUATION frames (CVE-2024-28182); on top of that a stream reset in the same read that
// opened it never reaches an upstream, header lists are bounded by Limits (431), and the
// session stops reading while the client does not read what it already asked for.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/event/timer_wheel.h"
#include "proxy/net/connection.h"
#include "proxy/server/endpoint_choice.h"
#include "proxy/server/h2_common.h"
#include "proxy/server/worker.h"

namespace meshgate::proxy {

class Http2Session final : public Session, public ConnectionObserver {
 public:
  // The HTTP/2 connection preface (RFC 9113 §3.4), which the client sends first.
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

  // Takes over `client`, whose input starts with the preface (still unread).
  Http2Session(Worker& worker, std::unique_ptr<Connection> client, const SockAddr& peer,
               SnapshotPtr snapshot, size_t listener);
  ~Http2Session() override;
  void start();

 private:
  class Stream;
  friend class Stream;

  // ConnectionObserver (the client connection).
  void onData(Connection& c) override;
  void onDrained(Connection& c) override;
  void onError(Connection& c, int err) override;
  void onResetWhilePaused(Connection& c) override;

  // nghttp2 callbacks.
  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* self);
  static int onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* self);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* self);
  static int onDataChunk(nghttp2_session*, uint8_t flags, int32_t stream_id, const uint8_t* data,
                         size_t len, void* self);
  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* self);
  static ssize_t onSend(nghttp2_session*, const uint8_t* data, size_t length, int flags,
                        void* self);

  void receive();
  void scheduleSend();
  void send();
  void startOpened();  // routes the streams whose heads arrived in the last read
  void updateIdle();
  void onIdleTimer();  // idle_timeout without a stream: GOAWAY; closing: give up draining
  void fail(std::string_view why);
  void finish();
  Stream* stream(int32_t id);

  Worker& worker_;
  SockAddr peer_;
  SnapshotPtr snapshot_;
  size_t listener_;
  EndpointChooser chooser_;
  std::unique_ptr<Connection> down_;
  std::string peer_ip_;  // the client's address as text, for X-Forwarded-For
  Nghttp2Session h2_;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;
  // The stream found last: nghttp2 calls back for one stream many times in a row (each
  // header field, the frame, its data), so most lookups need no hash probe.
  int32_t last_id_ = 0;  // 0: none (stream 0 is the connection, never a Stream)
  Stream* last_stream_ = nullptr;
  std::vector<int32_t> opened_;    // heads complete in the current read, not yet routed
  std::vector<int32_t> starting_;  // startOpened()'s copy of opened_
  Timer idle_timer_;
  uint32_t early_resets_ = 0;    // streams reset in the read that opened them
  uint32_t streams_opened_ = 0;  // request heads received (at most 2^30: odd ids < 2^31)
  bool send_scheduled_ = false;
  bool output_full_ = false;  // onSend() refused bytes: the output held a buffer's worth
  static constexpr std::chrono::milliseconds kCloseLinger{5000};
  bool closing_ = false;  // GOAWAY sent: finish once it is out (or after kCloseLinger)
  bool failed_ = false;   // nghttp2 reported a fatal error: no more input is processed
  bool done_ = false;
};

}  // namespace meshgate::proxy
