#include "proxy/server/http2_session.h"

#include <charconv>
#include <cstring>

#include "proxy/http1/grammar.h"
#include "proxy/routing/router.h"
#include "proxy/server/access_log.h"
#include "proxy/server/h1_upstream.h"
#include "proxy/server/h2_upstream.h"
#include "proxy/server/http_fields.h"

namespace meshgate::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using http1::grammar::iequals;

// A client that resets more streams than this whose responses had not ended, and more
// than half of all its streams, is abusing resets (the rapid-reset pattern continued below
// nghttp2's rate limit): the connection is closed.
constexpr uint32_t kMaxEarlyResets = 200;

bool idempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}) {
    if (method == m) {
      return true;
    }
  }
  return false;
}

}  // namespace

// One request/response exchange.
class Http2Session::Stream final : public UpstreamSink {
 public:
  Stream(Http2Session& s, int32_t id)
      : s_(s), id_(id), timer_(s.worker_.loop().timers(), [this] { onTimeout(); }) {}
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
  Clock::time_point start_ = Clock::now();
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
  uint64_t body_forwarded_ = 0;
  // Routing.
  const Route* route_ = nullptr;
  size_t cluster_ = 0;
  std::optional<size_t> endpoint_;
  EndpointLease lease_;
  std::string endpoint_key_;
  uint32_t attempts_ = 0;
  std::unique_ptr<UpstreamRequest> up_;
  bool up_ready_ = false;
  Clock::time_point upstream_start_;
  // Response.
  uint16_t status_ = 0;
  bool head_submitted_ = false;
  Buffer body_out_;              // response body nghttp2 has not framed yet
  bool response_ended_ = false;  // no more body: EOF once body_out_ is empty
  bool deferred_ = false;        // readBody() returned "wait"
  HeaderList resp_trailers_;
  uint64_t response_bytes_ = 0;
  bool logged_ = false;
  bool reset_by_us_ = false;
  Timer timer_;  // the route timeout, until the response head
};

bool Http2Session::Stream::onField(std::string_view name, std::string_view value) {
  // Counted as they are decoded and no longer stored once over the limits: HPACK lets a
  // small block expand into a huge list (one big indexed field referenced many times).
  field_bytes_ += name.size() + value.size() + 32;  // RFC 9113 §6.5.2 accounting
  field_count_++;
  if (fieldsTooLarge()) {
    return false;
  }
  if (trailers_phase_) {
    trailers_.emplace_back(name, value);
    return true;
  }
  if (name.starts_with(':')) {
    if (name == ":method")
      req_.method = value;
    else if (name == ":scheme")
      req_.scheme = value;
    else if (name == ":authority")
      req_.authority = value;
    else if (name == ":path")
      req_.path = value;
    return true;
  }
  if (name == "host") {
    if (req_.authority.empty()) {
      req_.authority = value;
    }
    return true;
  }
  if (name == "content-length") {
    uint64_t n = 0;
    std::from_chars(value.data(), value.data() + value.size(), n);  // nghttp2 checked it
    req_.content_length = n;
    return true;
  }
  if (name == "x-forwarded-for") {
    xff_.append(xff_.empty() ? "" : ", ").append(value);
    return true;
  }
  if (name == "cookie") {
    // HTTP/2 splits cookies into crumbs (RFC 9113 §8.2.3); HTTP/1.1 wants one field.
    for (auto& [n, v] : req_.headers) {
      if (n == "cookie") {
        v.append("; ").append(value);
        return true;
      }
    }
  }
  req_.headers.emplace_back(name, value);
  return true;
}

void Http2Session::Stream::onHeadComplete(bool end_stream) {
  trailers_phase_ = true;
  req_.has_body = !end_stream;
  request_ended_ = end_stream;
}

void Http2Session::Stream::onBody(std::span<const char> data) {
  request_bytes_ += data.size();
  if (head_submitted_ && !up_) {
    // Answered already (an error page): the body is read and dropped.
    nghttp2_session_consume(s_.h2_.get(), id_, data.size());
    return;
  }
  const uint64_t max = limits().max_body_bytes;
  if (max && request_bytes_ > max) {
    bump(s_.worker_.stats().downstream_rq_bad);
    nghttp2_session_consume(s_.h2_.get(), id_, data.size());
    respondError(413, "the request body is larger than the limit");
    return;
  }
  body_in_.append(data);
  pumpBody();
}

void Http2Session::Stream::onRequestEnd() {
  request_ended_ = true;
  pumpBody();
}

void Http2Session::Stream::begin() {
  bump(s_.worker_.stats().downstream_rq_total);
  if (head_submitted_) {
    return;  // answered already while the head was arriving (413 on the first DATA)
  }
  if (fieldsTooLarge()) {
    bump(s_.worker_.stats().downstream_rq_bad);
    respondError(431, "too many or too large header fields");
    return;
  }
  if (req_.method == "CONNECT") {
    bump(s_.worker_.stats().downstream_rq_bad);
    respondError(501, "CONNECT is not supported over HTTP/2");
    return;
  }
  if (hasDotSegment(req_.path)) {
    bump(s_.worker_.stats().downstream_rq_bad);
    respondError(400, "dot segments in the path");
    return;
  }
  if (const uint64_t max = limits().max_body_bytes;
      max && req_.content_length && *req_.content_length > max) {
    bump(s_.worker_.stats().downstream_rq_bad);
    respondError(413, "the request body is larger than the limit");
    return;
  }
  http1::MessageHead head;
  head.method = http1::methodFromToken(req_.method);
  head.method_token = req_.method;
  head.target = req_.path;
  head.host = req_.authority;
  const Listener& l = s_.snapshot_->config->listeners[s_.listener_];
  route_ = matchRoute(l, head, req_.path, req_.headers);
  if (!route_) {
    bump(s_.worker_.stats().downstream_rq_no_route);
    respondError(404, "no route");
    return;
  }
  cluster_ = route_->cluster_index;
  req_.headers.emplace_back("x-forwarded-for",
                            xff_.empty() ? s_.peer_.ip() : xff_ + ", " + s_.peer_.ip());
  timer_.arm(route_->timeout);
  connectUpstream();
}

void Http2Session::Stream::connectUpstream() {
  const Cluster& cluster = s_.snapshot_->config->clusters[cluster_];
  std::optional<std::string_view> hash_key;
  if (cluster.lb_policy == LbPolicy::kConsistentHash) {
    hash_key = hashKeyOf(cluster, req_.headers);
  }
  const auto pick =
      s_.chooser_.pick(s_.worker_, s_.snapshot_, cluster_, hash_key, endpoint_, lease_);
  if (!pick) {
    respondError(503, "no live endpoint in cluster '" + cluster.name + "'");
    return;
  }
  endpoint_ = *pick;
  attempts_++;
  upstream_start_ = Clock::now();
  const ClusterTable& table = *s_.snapshot_->tables[cluster_];
  endpoint_key_ = table.address_keys[*pick];
  const UpstreamTarget target{&table.addresses[*pick], &table.address_keys[*pick],
                              cluster.connect_timeout, cluster.max_idle_per_endpoint,
                              limits().idle_timeout,   limits().buffer_bytes};
  up_ready_ = false;
  end_forwarded_ = false;  // a retry sends the whole request again
  if (cluster.protocol == UpstreamProtocol::kHttp2) {
    auto up = std::make_unique<H2Upstream>(s_.worker_, *this, target);
    H2Upstream* raw = up.get();
    up_ = std::move(up);
    raw->start(req_);
    up_ready_ = raw->ready();
  } else {
    // HTTP/1.1 has no "te: trailers"; gRPC needs an HTTP/2 cluster anyway.
    std::erase_if(req_.headers, [](const auto& f) { return f.first == "te"; });
    auto up = std::make_unique<H1Upstream>(s_.worker_, *this, target);
    H1Upstream* raw = up.get();
    up_ = std::move(up);
    raw->start(req_);
    up_ready_ = raw->ready();
  }
  pumpBody();
}

void Http2Session::Stream::pumpBody() {
  if (!up_ || !up_ready_) {
    return;
  }
  const size_t limit = limits().buffer_bytes;
  while (!body_in_.empty() && up_->requestBuffered() < limit) {
    const size_t n = std::min(body_in_.size(), limit - up_->requestBuffered());
    up_->sendBody(body_in_.data().first(n));
    body_in_.consume(n);
    body_forwarded_ += n;
    // The upstream has it: the client may send as much again.
    nghttp2_session_consume(s_.h2_.get(), id_, n);
    s_.scheduleSend();
  }
  if (body_in_.empty() && request_ended_ && !end_forwarded_ && up_) {
    end_forwarded_ = true;
    up_->endRequest(trailers_);  // a copy: a retry needs them again
  }
}

void Http2Session::Stream::submitHead(uint16_t status, const HeaderList& fields, bool end) {
  const std::string code = std::to_string(status);
  std::vector<nghttp2_nv> nva;
  nva.reserve(fields.size() + 1);
  nva.push_back(nv(":status", code));
  appendNvs(nva, fields);
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
    return static_cast<Stream*>(src->ptr)->readBody(buf, length, flags);
  };
  status_ = status;
  head_submitted_ = true;
  nghttp2_submit_response(s_.h2_.get(), id_, nva.data(), nva.size(), end ? nullptr : &provider);
  s_.scheduleSend();
}

ssize_t Http2Session::Stream::readBody(uint8_t* buf, size_t length, uint32_t* flags) {
  const size_t n = std::min(length, body_out_.size());
  if (n) {
    std::memcpy(buf, body_out_.data().data(), n);  // an empty Buffer has no storage: never memcpy from null
  }
  body_out_.consume(n);
  response_bytes_ += n;
  if (n) {
    timer_.arm(limits().idle_timeout);  // progress
  }
  if (n && up_) {
    up_->consumed(n);  // framed for the client: the upstream may deliver more
  }
  if (body_out_.empty() && response_ended_) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!resp_trailers_.empty()) {
      std::vector<nghttp2_nv> nva;
      appendNvs(nva, resp_trailers_);
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_submit_trailer(s_.h2_.get(), id_, nva.data(), nva.size());
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

void Http2Session::Stream::onUpstreamHeaders(uint16_t status, HeaderList headers, bool end) {
  // From now on the timer is the stream's idle timeout: a stream on which no byte moves
  // (a client that never opens its window, an upstream that stalls) is reset.
  timer_.arm(limits().idle_timeout);
  response_ended_ = end;
  submitHead(status, headers, end);
}

void Http2Session::Stream::onUpstreamData(std::span<const char> data) {
  body_out_.append(data);
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(s_.h2_.get(), id_);
  }
  s_.scheduleSend();
}

void Http2Session::Stream::onUpstreamEnd(HeaderList trailers) {
  lease_.reset();
  response_ended_ = true;
  resp_trailers_ = std::move(trailers);
  if (!head_submitted_) {
    return;  // cannot happen: a head always comes first
  }
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(s_.h2_.get(), id_);
  }
  s_.scheduleSend();
}

void Http2Session::Stream::onUpstreamFailed(UpstreamFailure f, std::string detail) {
  Stats& st = s_.worker_.stats();
  // A pooled HTTP/1.1 connection the server had just closed: the request never got there.
  const bool stale_pooled = up_ && up_->reusedConnection() && f == UpstreamFailure::kReset;
  // The failed request object is dropped after this callback returns.
  s_.worker_.loop().defer([p = std::shared_ptr<UpstreamRequest>(std::move(up_))] {});
  if (head_submitted_) {
    // The response is under way: it can only be cut.
    bump(st.upstream_rsp_reset);
    reset_by_us_ = true;
    nghttp2_submit_rst_stream(s_.h2_.get(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    s_.scheduleSend();
    return;
  }
  // Retry elsewhere while the request can be replayed: nothing of the body went out yet
  // (body bytes are only acknowledged to the client once the upstream took them).
  const bool replayable = body_forwarded_ == 0;
  bool retry = false;
  switch (f) {
    case UpstreamFailure::kConnect:
      retry = attempts_ <= route_->retries;
      break;
    case UpstreamFailure::kRefused:
      bump(st.h2_upstream_streams_refused);
      retry = attempts_ <= route_->retries + 1;  // unprocessed: one free attempt
      break;
    case UpstreamFailure::kReset:
      retry = replayable && idempotent(req_.method) &&
              (attempts_ <= route_->retries || (stale_pooled && attempts_ <= route_->retries + 1));
      break;
    case UpstreamFailure::kBadResponse:
      break;
  }
  if (retry && replayable) {
    bump(st.upstream_rq_retry);
    connectUpstream();
    return;
  }
  if (f == UpstreamFailure::kConnect) {
    respondError(503, detail);
  } else {
    if (f == UpstreamFailure::kReset) {
      bump(st.upstream_rsp_reset);
    }
    respondError(502, detail);
  }
}

void Http2Session::Stream::onTimeout() {
  if (head_submitted_) {
    bump(s_.worker_.stats().h2_streams_idle_timeout);
    dropUpstream();
    lease_.reset();
    reset_by_us_ = true;
    nghttp2_submit_rst_stream(s_.h2_.get(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    s_.scheduleSend();
    return;
  }
  bump(s_.worker_.stats().upstream_rq_timeout);
  respondError(504, "the upstream did not answer in time");
}

void Http2Session::Stream::respondError(uint16_t status, std::string_view detail) {
  timer_.cancel();
  dropUpstream();
  lease_.reset();
  if (head_submitted_) {
    reset_by_us_ = true;
    nghttp2_submit_rst_stream(s_.h2_.get(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    s_.scheduleSend();
    return;
  }
  // The body still buffered for the upstream will never go: let the client send on.
  if (!body_in_.empty()) {
    nghttp2_session_consume(s_.h2_.get(), id_, body_in_.size());
    body_in_.clear();
  }
  const std::string body = std::to_string(status) + " " + std::string(reasonPhrase(status)) + ": " +
                           std::string(detail) + "\n";
  body_out_.clear();
  body_out_.append(body);
  response_ended_ = true;
  submitHead(status,
             {{"content-type", "text/plain"}, {"content-length", std::to_string(body.size())}},
             false);
}

void Http2Session::Stream::dropUpstream() {
  if (up_) {
    // Response bytes never framed for the client still count against the upstream
    // connection's window (a shared HTTP/2 connection would stall after enough of these).
    if (!body_out_.empty()) {
      up_->consumed(body_out_.size());
    }
    up_->cancel();
    s_.worker_.loop().defer([p = std::shared_ptr<UpstreamRequest>(std::move(up_))] {});
  }
}

void Http2Session::Stream::onClosed(uint32_t error_code, bool session_ending) {
  timer_.cancel();
  const bool complete = response_ended_ && body_out_.empty() && error_code == NGHTTP2_NO_ERROR;
  if (!complete && !reset_by_us_ && !session_ending) {
    bump(s_.worker_.stats().h2_streams_reset_by_client);
  }
  if (!body_in_.empty() && !session_ending) {
    // Request body the upstream never took: give the client's connection window back
    // (nghttp2 credits the connection even for a closed stream).
    nghttp2_session_consume(s_.h2_.get(), id_, body_in_.size());
    body_in_.clear();
  }
  dropUpstream();
  lease_.reset();
  logAccess();
}

void Http2Session::Stream::logAccess() {
  if (std::exchange(logged_, true)) {
    return;
  }
  s_.worker_.stats().countResponse(status_);
  AccessLog* log = s_.worker_.accessLog();
  if (!log) {
    return;
  }
  const auto now = Clock::now();
  AccessRecord r;
  r.client = s_.peer_.toString();
  r.protocol = "HTTP/2";
  r.method = req_.method;
  r.target = req_.path;
  r.status = status_;
  r.upstream = endpoint_key_;
  r.cluster = route_ ? route_->cluster : "";
  r.attempts = attempts_;
  r.request_body_bytes = request_bytes_;
  r.response_body_bytes = response_bytes_;
  r.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(now - start_).count();
  r.upstream_us =
      attempts_
          ? std::chrono::duration_cast<std::chrono::microseconds>(now - upstream_start_).count()
          : 0;
  log->write(r);
}

// ---- the session ---------------------------------------------------------------------------

Http2Session::Http2Session(Worker& worker, std::unique_ptr<Connection> client, const SockAddr& peer,
                           SnapshotPtr snapshot, size_t listener)
    : worker_(worker),
      peer_(peer),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      down_(std::move(client)),
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
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
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
  // Destroyed after this loop iteration: an upstream callback may be on the stack.
  s.worker_.loop().defer([p = std::shared_ptr<Stream>(std::move(it->second))] {});
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
  std::vector<int32_t> opened;
  opened.swap(opened_);
  uint32_t gone = 0;
  for (int32_t id : opened) {
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
  const uint32_t opened_total =
      static_cast<uint32_t>(nghttp2_session_get_last_proc_stream_id(h2_.get()) + 1) / 2;
  if (early_resets_ > kMaxEarlyResets && early_resets_ * 2 > opened_total && !closing_) {
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
