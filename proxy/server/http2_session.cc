#include "proxy/server/http2_session.h"

#include <charconv>
#include <cstring>

#include "proxy/http1/grammar.h"
#include "proxy/routing/router.h"
#include "proxy/server/access_log.h"
#include "proxy/server/h1_upstream.h"
#include "proxy/server/h2_upstream.h"
#include "proxy/server/http2_stream.h"
#include "proxy/server/http_fields.h"

namespace meshgate::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using http1::grammar::iequals;

// A client that resets more streams than this whose responses had not ended, and more
// than half of all its streams, is abusing resets (the rapid-reset pattern continued below
// nghttp2's rate limit): the connection is closed.
constexpr uint32_t kMaxEarlyResets = 200;

}  // namespace

// ---- the session ---------------------------------------------------------------------------

Http2Session::Http2Session(Worker& worker, std::unique_ptr<Connection> client, const SockAddr& peer,
                           SnapshotPtr snapshot, size_t listener)
    : worker_(worker),
      peer_(peer),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      down_(std::move(client)),
      peer_ip_(peer.ip()),
      idle_timer_(worker.loop().timers(), [this] { onIdleTimer(); }) {
  down_->setObserver(this);
}

Http2Session::~Http2Session() {
  streams_.clear();  // before the nghttp2 session they point into
}

void Http2Session::start() {
  bump(worker_.stats().downstream_cx_active);
  bump(worker_.stats().h2_downstream_cx);
  const Limits& lim = snapshot_->config->limits;

  nghttp2_session_callbacks* raw_cbs = nullptr;
  nghttp2_session_callbacks_new(&raw_cbs);
  std::unique_ptr<nghttp2_session_callbacks, Nghttp2CallbacksDeleter> cbs(raw_cbs);
  nghttp2_session_callbacks_set_send_callback(cbs.get(), onSend);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs.get(), onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs.get(), onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs.get(), onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs.get(), onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs.get(), onStreamClose);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
      cbs.get(), [](nghttp2_session*, const nghttp2_frame*, int, void* self) {
        // A frame nghttp2 refused (bad header field, content-length mismatch, ...): it
        // resets the stream or ends the connection itself; we count it.
        bump(static_cast<Http2Session*>(self)->worker_.stats().h2_downstream_frame_errors);
        return 0;
      });

  nghttp2_option* raw_opt = nullptr;
  nghttp2_option_new(&raw_opt);
  std::unique_ptr<nghttp2_option, Nghttp2OptionDeleter> opt(raw_opt);
  // Window updates are ours to send: only once the upstream took the bytes.
  nghttp2_option_set_no_auto_window_update(opt.get(), 1);
  nghttp2_option_set_max_continuations(opt.get(), 8);
  nghttp2_option_set_stream_reset_rate_limit(opt.get(), 1000, 33);
  nghttp2_option_set_max_outbound_ack(opt.get(), 1000);
  nghttp2_option_set_max_settings(opt.get(), 32);
  nghttp2_session* session = nullptr;
  nghttp2_session_server_new2(&session, cbs.get(), this, opt.get());
  h2_.reset(session);

  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, lim.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(lim.buffer_bytes)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(lim.max_header_bytes)},
  };
  nghttp2_submit_settings(h2_.get(), NGHTTP2_FLAG_NONE, settings, std::size(settings));
  // The connection window: room for every stream's window at once, up to 16 MiB.
  const int32_t conn_window = static_cast<int32_t>(
      std::min<uint64_t>(uint64_t{lim.buffer_bytes} * lim.max_concurrent_streams, 16u << 20));
  nghttp2_session_set_local_window_size(h2_.get(), NGHTTP2_FLAG_NONE, 0, conn_window);
  down_->setReadLimit(lim.buffer_bytes);
  updateIdle();
  receive();  // the preface and whatever followed it are already in the input
}

Http2Session::Stream* Http2Session::stream(int32_t id) {
  if (id == last_id_) {
    return last_stream_;
  }
  auto it = streams_.find(id);
  if (it == streams_.end()) {
    return nullptr;
  }
  last_id_ = id;
  last_stream_ = it->second.get();
  return last_stream_;
}

int Http2Session::onBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* self) {
  auto& s = *static_cast<Http2Session*>(self);
  if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
    s.streams_.emplace(f->hd.stream_id, std::make_unique<Stream>(s, f->hd.stream_id));
    s.idle_timer_.cancel();
  }
  return 0;
}

int Http2Session::onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* self) {
  if (Stream* st = static_cast<Http2Session*>(self)->stream(f->hd.stream_id)) {
    if (!st->onField(view(name, namelen), view(value, valuelen)) &&
        f->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // oversized trailers: reset the stream
    }
  }
  return 0;
}

int Http2Session::onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* self) {
  auto& s = *static_cast<Http2Session*>(self);
  Stream* st = s.stream(f->hd.stream_id);
  if (!st) {
    return 0;
  }
  const bool end_stream = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->hd.type == NGHTTP2_HEADERS) {
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      st->onHeadComplete(end_stream);
      s.opened_.push_back(f->hd.stream_id);  // routed after this read (see startOpened)
      return 0;
    }
    st->onTrailers();
  }
  if (end_stream) {
    st->onRequestEnd();
  }
  return 0;
}

int Http2Session::onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                              size_t len, void* self) {
  auto& s = *static_cast<Http2Session*>(self);
  if (Stream* st = s.stream(stream_id)) {
    st->onBody({reinterpret_cast<const char*>(data), len});
  } else {
    nghttp2_session_consume(s.h2_.get(), stream_id, len);
  }
  return 0;
}

int Http2Session::onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                                void* self) {
  auto& s = *static_cast<Http2Session*>(self);
  auto it = s.streams_.find(stream_id);
  if (it == s.streams_.end()) {
    return 0;
  }
  it->second->onClosed(error_code);
  if (s.last_id_ == stream_id) {
    s.last_id_ = 0;
    s.last_stream_ = nullptr;
  }
  // Destroyed after this loop iteration: an upstream callback may be on the stack.
  s.worker_.loop().deferDelete(std::move(it->second));
  s.streams_.erase(it);
  s.updateIdle();
  return 0;
}

ssize_t Http2Session::onSend(nghttp2_session*, const uint8_t* data, size_t length, int,
                             void* self) {
  auto& s = *static_cast<Http2Session*>(self);
  if (s.down_->output().size() >= s.snapshot_->config->limits.buffer_bytes) {
    s.output_full_ = true;
    return NGHTTP2_ERR_WOULDBLOCK;  // send() flushes, onDrained() frames on
  }
  s.down_->output().append(view(data, length));
  return static_cast<ssize_t>(length);
}

void Http2Session::onData(Connection&) {
  if (!done_) {
    receive();
  }
}

void Http2Session::receive() {
  Buffer& in = down_->input();
  if (failed_) {
    in.clear();  // nghttp2 refuses input after a fatal error; only the GOAWAY is left to send
    return;
  }
  if (!in.empty()) {
    const ssize_t n = nghttp2_session_mem_recv(
        h2_.get(), reinterpret_cast<const uint8_t*>(in.data().data()), in.size());
    if (n < 0) {
      // A protocol violation or a flood (NGHTTP2_ERR_FLOODED, too many CONTINUATIONs, bad
      // preface): nghttp2 has queued a GOAWAY where one is due.
      fail(nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    in.consume(static_cast<size_t>(n));
  }
  startOpened();
  send();
  if (done_) {
    return;
  }
  if (down_->peerClosed()) {
    finish();  // the client is gone: its streams cannot be answered
    return;
  }
  // Stop reading while the client does not read its answers (onDrained() resumes).
  if (down_->output().size() < snapshot_->config->limits.buffer_bytes) {
    down_->resumeReading();
  } else {
    down_->pauseReading();
  }
}

void Http2Session::startOpened() {
  // A stream opened and reset within the same read costs no upstream work at all, which
  // is what a rapid-reset attacker sends.
  starting_.swap(opened_);  // both keep their capacity
  opened_.clear();
  streams_opened_ += static_cast<uint32_t>(starting_.size());
  uint32_t gone = 0;
  for (int32_t id : starting_) {
    if (Stream* st = stream(id)) {
      st->begin();
    } else {
      gone++;
    }
  }
  if (gone) {
    bump(worker_.stats().h2_streams_reset_early, gone);
    early_resets_ += gone;
  }
  // Against the requests actually opened, not the highest stream id: a client may skip ids.
  if (early_resets_ > kMaxEarlyResets && early_resets_ * 2 > streams_opened_ && !closing_) {
    bump(worker_.stats().h2_downstream_protocol_error);
    closing_ = true;
    nghttp2_session_terminate_session(h2_.get(), NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

void Http2Session::scheduleSend() {
  if (send_scheduled_ || done_) {
    return;
  }
  send_scheduled_ = true;
  worker_.loop().defer([this] {
    send_scheduled_ = false;
    if (!done_) {
      send();
    }
  });
}

void Http2Session::send() {
  // nghttp2 frames into the output until it holds a buffer's worth (onSend says "would
  // block"). If the socket then takes it all, no drain event will follow: frame on.
  do {
    output_full_ = false;
    if (nghttp2_session_send(h2_.get()) != 0) {
      fail("cannot frame the response");
      return;
    }
    if (!down_->isOpen()) {
      return;
    }
    down_->flush();
  } while (output_full_ && down_->output().empty());
  if (!nghttp2_session_want_read(h2_.get()) && !nghttp2_session_want_write(h2_.get())) {
    // GOAWAY is out (ours or the client's) and no stream is left.
    if (down_->output().empty()) {
      finish();
    } else {
      closing_ = true;  // finished by onDrained()
    }
  }
}

void Http2Session::onDrained(Connection&) {
  if (done_) {
    return;
  }
  if (closing_ && !nghttp2_session_want_write(h2_.get()) && down_->output().empty() &&
      (failed_ || !nghttp2_session_want_read(h2_.get()))) {
    finish();
    return;
  }
  send();
  if (!done_ && down_->output().size() < snapshot_->config->limits.buffer_bytes) {
    down_->resumeReading();
  }
}

void Http2Session::onResetWhilePaused(Connection&) {
  finish();  // the client is gone
}

void Http2Session::onError(Connection&, int) {
  finish();
}

void Http2Session::updateIdle() {
  if (streams_.empty() && !done_) {
    idle_timer_.arm(closing_ ? kCloseLinger : snapshot_->config->limits.idle_timeout);
  }
}

void Http2Session::onIdleTimer() {
  if (closing_) {
    finish();  // the GOAWAY did not drain within kCloseLinger: a client that does not read
    return;
  }
  closing_ = true;
  nghttp2_session_terminate_session(h2_.get(), NGHTTP2_NO_ERROR);
  send();
  if (!done_) {
    idle_timer_.arm(kCloseLinger);
  }
}

void Http2Session::fail(std::string_view) {
  bump(worker_.stats().h2_downstream_protocol_error);
  failed_ = true;
  closing_ = true;
  // Whatever nghttp2 queued (its GOAWAY) goes out before the connection closes: at once if
  // the socket takes it, else when drained (onDrained) or after kCloseLinger.
  nghttp2_session_send(h2_.get());
  down_->flush();
  if (down_->output().empty()) {
    finish();
    return;
  }
  down_->pauseReading();
  idle_timer_.arm(kCloseLinger);
}

void Http2Session::finish() {
  if (done_) {
    return;
  }
  done_ = true;
  idle_timer_.cancel();
  bump(worker_.stats().downstream_cx_active, -1);
  for (auto& [id, st] : streams_) {
    st->onClosed(NGHTTP2_CANCEL, /*session_ending=*/true);
  }
  down_->shutdownWrite();
  down_->close();
  worker_.release(this);
}

}  // namespace meshgate::proxy
