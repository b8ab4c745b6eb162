#include "proxy/server/h2_upstream.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "proxy/event/timer_wheel.h"
#include "proxy/net/connection.h"
#include "proxy/server/h2_common.h"
#include "proxy/server/http_fields.h"

namespace meshgate::proxy {

// One HTTP/2 client connection from a worker to one endpoint, shared by the H2Upstream
// requests to it. The worker holds it while it can take new streams; each request holds
// it until the request ends.
class H2Connection final : public ConnectionObserver,
                           public std::enable_shared_from_this<H2Connection> {
 public:
  H2Connection(Worker& worker, const UpstreamTarget& target)
      : worker_(worker),
        key_(*target.key),
        target_(target),
        timer_(worker.loop().timers(), [this] { onTimer(); }) {}
  ~H2Connection() override {
    if (conn_) {
      conn_->close();
    }
  }

  bool start();
  bool usable() const { return !going_away_ && !failed_; }
  bool connected() const { return connected_; }
  // Submits `up`'s request; the stream id, or an nghttp2 error (negative).
  int32_t submit(H2Upstream* up, const RequestHead& head, bool body);
  void resume(int32_t id) {
    nghttp2_session_resume_data(h2_.get(), id);
    scheduleSend();
  }
  void consume(int32_t id, size_t n);
  void cancel(int32_t id);
  void scheduleSend();

 private:
  void onData(Connection& c) override;
  void onDrained(Connection&) override { send(); }
  void onConnected(Connection&) override;
  void onError(Connection&, int err) override {
    failAll(std::string("the upstream connection failed: ") + std::strerror(err));
  }
  void send();
  // Fails every request on the connection and closes it: a connect failure before the
  // connection was up, a reset after (whatever broke it, the requests on it are innocent:
  // an idempotent one may be retried elsewhere).
  void failAll(const std::string& why);
  void onTimer();
  void leavePool();
  void updateIdle();
  H2Upstream* stream(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* self);
  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* self);
  static int onDataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                         void* self);
  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code, void* self);
  static ssize_t onSend(nghttp2_session*, const uint8_t* data, size_t length, int, void* self);

  Worker& worker_;
  std::string key_;
  UpstreamTarget target_;
  std::unique_ptr<Connection> conn_;
  Nghttp2Session h2_;
  std::unordered_map<int32_t, H2Upstream*> streams_;
  Timer timer_;  // connect timeout, then idle timeout
  bool connected_ = false;
  bool going_away_ = false;
  bool failed_ = false;
  bool send_scheduled_ = false;
  bool output_full_ = false;
};

bool H2Connection::start() {
  auto fd = connectTcp(*target_.address);
  if (!fd) {
    return false;
  }
  bump(worker_.stats().upstream_cx_connect);
  bump(worker_.stats().h2_upstream_cx);
  conn_ = std::make_unique<Connection>(worker_.loop(), std::move(*fd), this, true);
  if (!conn_->start()) {
    return false;
  }
  conn_->setReadLimit(target_.window);

  nghttp2_session_callbacks* raw_cbs = nullptr;
  nghttp2_session_callbacks_new(&raw_cbs);
  std::unique_ptr<nghttp2_session_callbacks, Nghttp2CallbacksDeleter> cbs(raw_cbs);
  nghttp2_session_callbacks_set_send_callback(cbs.get(), onSend);
  nghttp2_session_callbacks_set_on_header_callback(cbs.get(), onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs.get(), onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs.get(), onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs.get(), onStreamClose);
  nghttp2_option* raw_opt = nullptr;
  nghttp2_option_new(&raw_opt);
  std::unique_ptr<nghttp2_option, Nghttp2OptionDeleter> opt(raw_opt);
  // Response bytes are acknowledged to the server once the client side has taken them.
  nghttp2_option_set_no_auto_window_update(opt.get(), 1);
  nghttp2_session* session = nullptr;
  nghttp2_session_client_new2(&session, cbs.get(), this, opt.get());
  h2_.reset(session);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(target_.window)},
  };
  nghttp2_submit_settings(h2_.get(), NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(h2_.get(), NGHTTP2_FLAG_NONE, 0, 16 << 20);
  timer_.arm(target_.connect_timeout);
  send();  // the preface waits in the output until the connect completes
  return true;
}

int32_t H2Connection::submit(H2Upstream* up, const RequestHead& head, bool body) {
  std::vector<nghttp2_nv> nva;
  nva.reserve(head.headers.size() + 5);
  nva.push_back(nv(":method", head.method));
  nva.push_back(nv(":scheme", head.scheme));
  nva.push_back(nv(":authority", head.authority));
  nva.push_back(nv(":path", head.path));
  appendNvs(nva, head.headers);
  std::string length;
  if (head.content_length) {
    length = std::to_string(*head.content_length);
    nva.push_back(nv("content-length", length));
  }
  nghttp2_data_provider provider{};
  provider.read_callback = [](nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source*, void* self) -> ssize_t {
    // By id, never a stored pointer: a request abandoned with its stream still open must
    // not be read (its RST_STREAM is queued).
    H2Upstream* up = static_cast<H2Connection*>(self)->stream(id);
    if (!up) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    const size_t n = std::min(length, up->body_.size());
    if (n) {
      std::memcpy(buf, up->body_.data().data(),
                  n);  // an empty Buffer has no storage: never memcpy from null
    }
    up->body_.consume(n);
    if (up->body_.empty() && up->body_done_) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!up->trailers_.empty()) {
        std::vector<nghttp2_nv> tv;
        appendNvs(tv, up->trailers_);
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_submit_trailer(session, id, tv.data(), tv.size());
      }
    } else if (n == 0) {
      up->deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (n) {
      // Room for more request body: told from the loop, not from inside nghttp2.
      up->worker_.loop().defer([up, alive = std::weak_ptr<bool>(up->alive_)] {
        if (!alive.expired() && up->sink_) {
          up->sink_->onUpstreamWritable();
        }
      });
    }
    return static_cast<ssize_t>(n);
  };
  const int32_t id = nghttp2_submit_request(h2_.get(), nullptr, nva.data(), nva.size(),
                                            body ? &provider : nullptr, nullptr);
  if (id > 0) {
    streams_.emplace(id, up);
    if (connected_) {
      timer_.cancel();  // no longer idle
    }
    scheduleSend();
  }
  return id;
}

void H2Connection::consume(int32_t id, size_t n) {
  if (!h2_) {
    return;
  }
  if (nghttp2_session_consume(h2_.get(), id, n) != 0) {
    nghttp2_session_consume_connection(h2_.get(), n);  // the stream is closed already
  }
  scheduleSend();
}

void H2Connection::cancel(int32_t id) {
  if (streams_.erase(id) && h2_) {
    nghttp2_submit_rst_stream(h2_.get(), NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    scheduleSend();
  }
  updateIdle();
}

void H2Connection::scheduleSend() {
  if (send_scheduled_ || failed_) {
    return;
  }
  send_scheduled_ = true;
  worker_.loop().defer([self = shared_from_this()] {
    self->send_scheduled_ = false;
    if (!self->failed_) {
      self->send();
    }
  });
}

void H2Connection::send() {
  if (failed_ || !h2_) {
    return;
  }
  // As in Http2Session::send(): frame on while the socket takes everything.
  do {
    output_full_ = false;
    if (nghttp2_session_send(h2_.get()) != 0) {
      failAll("cannot frame a request for the upstream");
      return;
    }
    if (!conn_ || !conn_->isOpen() || conn_->connecting()) {
      break;
    }
    conn_->flush();
  } while (output_full_ && conn_->output().empty());
  if (!conn_) {
    return;
  }
  if (!nghttp2_session_want_read(h2_.get()) && !nghttp2_session_want_write(h2_.get())) {
    if (streams_.empty()) {
      leavePool();
    } else {
      // nghttp2 found a connection error in what the server sent (bytes that are not
      // HTTP/2, a frame too large, a bad SETTINGS...): it sent GOAWAY and takes no more
      // frames, yet closes no stream. Without this their clients would wait for the route
      // timeout.
      bump(worker_.stats().upstream_rsp_bad);
      failAll("bad HTTP/2 from the upstream: the connection was ended for a protocol error");
    }
  }
}

void H2Connection::onConnected(Connection&) {
  connected_ = true;
  timer_.cancel();
  updateIdle();
  // Every waiting request's body may flow now. Copied: a callback may cancel a request.
  std::vector<H2Upstream*> ready;
  for (auto& [id, up] : streams_) {
    ready.push_back(up);
  }
  auto self = shared_from_this();
  for (H2Upstream* up : ready) {
    if (!failed_ && std::any_of(streams_.begin(), streams_.end(),
                                [&](const auto& e) { return e.second == up; })) {
      up->connected();
    }
  }
  send();
}

void H2Connection::onData(Connection& c) {
  if (failed_) {
    return;
  }
  auto self = shared_from_this();  // a callback may drop the last request holding us
  Buffer& in = c.input();
  const ssize_t n = nghttp2_session_mem_recv(
      h2_.get(), reinterpret_cast<const uint8_t*>(in.data().data()), in.size());
  if (n < 0) {
    bump(worker_.stats().upstream_rsp_bad);
    failAll(std::string("bad HTTP/2 from the upstream: ") + nghttp2_strerror(static_cast<int>(n)));
    return;
  }
  in.consume(static_cast<size_t>(n));
  send();
  if (failed_) {
    return;
  }
  if (c.peerClosed()) {
    failAll("the upstream closed the connection");
    return;
  }
  c.resumeReading();
}

void H2Connection::failAll(const std::string& why) {
  if (failed_) {
    return;
  }
  failed_ = true;
  timer_.cancel();
  auto self = shared_from_this();
  leavePool();
  const UpstreamFailure f = connected_ ? UpstreamFailure::kReset : UpstreamFailure::kConnect;
  if (!connected_) {
    bump(worker_.stats().upstream_cx_connect_fail);
  }
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, up] : streams) {
    up->failed(f, why);
  }
  if (conn_) {
    conn_->close();
    worker_.loop().deferDelete(std::move(conn_));
  }
}

void H2Connection::onTimer() {
  if (!connected_) {
    failAll("connecting to the upstream timed out");
    return;
  }
  // Idle: close it now rather than race the server's own idle timeout with a request.
  going_away_ = true;
  leavePool();
  if (h2_) {
    nghttp2_session_terminate_session(h2_.get(), NGHTTP2_NO_ERROR);
    send();
  }
  if (conn_) {
    conn_->close();
  }
  failed_ = true;
}

void H2Connection::leavePool() {
  worker_.forgetH2Connection(key_, this);
}

void H2Connection::updateIdle() {
  if (streams_.empty() && connected_ && !failed_) {
    timer_.arm(target_.idle_timeout);
  }
}

int H2Connection::onHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name,
                           size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                           void* self) {
  H2Upstream* up = static_cast<H2Connection*>(self)->stream(f->hd.stream_id);
  if (!up) {
    return 0;
  }
  const std::string_view n = view(name, namelen), v = view(value, valuelen);
  if (n == ":status") {
    std::from_chars(v.data(), v.data() + v.size(), up->status_);
  } else if (!n.starts_with(':')) {
    up->fields_.emplace_back(n, v);
  }
  return 0;
}

int H2Connection::onFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* self) {
  auto& c = *static_cast<H2Connection*>(self);
  if (f->hd.type == NGHTTP2_GOAWAY) {
    c.going_away_ = true;  // streams past its last id are closed (REFUSED_STREAM) by nghttp2
    c.leavePool();
    return 0;
  }
  H2Upstream* up = c.stream(f->hd.stream_id);
  if (!up || !up->sink_) {
    return 0;
  }
  const bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (f->hd.type == NGHTTP2_HEADERS) {
    if (!up->head_done_) {
      if (up->status_ < 200) {
        up->fields_.clear();  // 1xx: the final head follows
        return 0;
      }
      up->head_done_ = true;
      up->sink_->onUpstreamHeaders(up->status_, forwardableFields(std::move(up->fields_), false),
                                   end);
      up->fields_.clear();
    }
    if (end && up->sink_) {
      // The end of the response: trailers (a second HEADERS) or a head without a body.
      // No callback follows (the request side may still be open).
      up->finished_ = true;
      std::exchange(up->sink_, nullptr)
          ->onUpstreamEnd(forwardableTrailers(std::move(up->fields_), false));
      up->fields_.clear();
    }
  } else if (f->hd.type == NGHTTP2_DATA && end) {
    up->finished_ = true;
    std::exchange(up->sink_, nullptr)->onUpstreamEnd({});
  }
  return 0;
}

int H2Connection::onDataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data,
                              size_t len, void* self) {
  auto& c = *static_cast<H2Connection*>(self);
  H2Upstream* up = c.stream(id);
  if (!up || !up->sink_) {
    nghttp2_session_consume(c.h2_.get(), id, len);  // nobody wants it
    return 0;
  }
  up->unconsumed_ += len;
  up->sink_->onUpstreamData({reinterpret_cast<const char*>(data), len});
  return 0;
}

int H2Connection::onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code, void* self) {
  auto& c = *static_cast<H2Connection*>(self);
  auto it = c.streams_.find(id);
  if (it == c.streams_.end()) {
    return 0;
  }
  H2Upstream* up = it->second;
  c.streams_.erase(it);
  if (!up->finished_) {
    up->failed(
        error_code == NGHTTP2_REFUSED_STREAM ? UpstreamFailure::kRefused : UpstreamFailure::kReset,
        std::string("the upstream reset the stream (") + nghttp2_http2_strerror(error_code) + ")");
  }
  c.updateIdle();
  return 0;
}

ssize_t H2Connection::onSend(nghttp2_session*, const uint8_t* data, size_t length, int,
                             void* self) {
  auto& c = *static_cast<H2Connection*>(self);
  if (c.conn_->output().size() >= c.target_.window) {
    c.output_full_ = true;
    return NGHTTP2_ERR_WOULDBLOCK;  // send() flushes, onDrained() frames on
  }
  c.conn_->output().append(view(data, length));
  return static_cast<ssize_t>(length);
}

// ---- one request -----------------------------------------------------------------------

H2Upstream::H2Upstream(Worker& worker, UpstreamSink& sink, const UpstreamTarget& target)
    : worker_(worker), sink_(&sink), target_(target) {}

H2Upstream::~H2Upstream() {
  releaseWindow();
  if (conn_ && stream_id_ > 0) {
    conn_->cancel(stream_id_);  // a no-op once the stream has closed
  }
}

void H2Upstream::start(const RequestHead& head) {
  conn_ = worker_.h2Connection(*target_.key);
  reused_ = conn_ != nullptr;
  if (reused_) {
    bump(worker_.stats().upstream_cx_reused);
  }
  if (!conn_) {
    auto c = std::make_shared<H2Connection>(worker_, target_);
    if (c->start()) {
      conn_ = c;
      worker_.keepH2Connection(*target_.key, c);
    }
  }
  if (conn_) {
    stream_id_ = conn_->submit(this, head, head.has_body);
  }
  if (!conn_ || stream_id_ <= 0) {
    conn_.reset();
    worker_.loop().defer([this, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired()) {
        failed(UpstreamFailure::kConnect, "cannot connect to the upstream");
      }
    });
    return;
  }
  if (!head.has_body) {
    body_done_ = true;
  }
}

bool H2Upstream::ready() const {
  return conn_ && conn_->connected();
}

void H2Upstream::connected() {
  if (sink_) {
    sink_->onUpstreamReady();
  }
}

void H2Upstream::failed(UpstreamFailure f, std::string detail) {
  finished_ = true;
  releaseWindow();
  if (auto* s = std::exchange(sink_, nullptr)) {
    s->onUpstreamFailed(f, std::move(detail));
  }
}

void H2Upstream::sendBody(std::span<const char> data) {
  if (!conn_ || finished_) {
    return;
  }
  body_.append(data);
  if (std::exchange(deferred_, false)) {
    conn_->resume(stream_id_);
  }
}

void H2Upstream::endRequest(HeaderList trailers) {
  if (!conn_ || body_done_) {
    return;
  }
  body_done_ = true;
  trailers_ = std::move(trailers);
  if (std::exchange(deferred_, false)) {
    conn_->resume(stream_id_);
  }
}

void H2Upstream::consumed(size_t n) {
  n = std::min(n, unconsumed_);  // bytes given back already are not given twice
  unconsumed_ -= n;
  if (conn_ && n) {
    conn_->consume(stream_id_, n);
  }
}

void H2Upstream::releaseWindow() {
  if (conn_ && unconsumed_) {
    conn_->consume(stream_id_, std::exchange(unconsumed_, 0));
  }
}

void H2Upstream::cancel() {
  sink_ = nullptr;
  finished_ = true;
  releaseWindow();
  if (conn_ && stream_id_ > 0) {
    conn_->cancel(stream_id_);  // a no-op once the stream has closed
  }
}

}  // namespace meshgate::proxy
