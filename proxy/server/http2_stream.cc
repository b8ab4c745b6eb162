// Http2Session::Stream: one HTTP/2 request, routed, served upstream, answered.
#include "proxy/server/http2_stream.h"

#include <charconv>
#include <cstring>

#include "proxy/routing/router.h"
#include "proxy/server/access_log.h"
#include "proxy/server/h1_upstream.h"
#include "proxy/server/h2_upstream.h"
#include "proxy/server/http_fields.h"

namespace meshgate::proxy {

using Clock = std::chrono::steady_clock;

bool Http2Session::Stream::onField(std::string_view name, std::string_view value) {
  // Counted as they are decoded and no longer stored once over the limits: HPACK lets a
  // small block expand into a huge list (one big indexed field referenced many times).
  field_bytes_ += name.size() + value.size() + 32;  // RFC 9113 §6.5.2 accounting
  field_count_++;
  if (fieldsTooLarge()) {
    return false;
  }
  if (trailers_phase_) {
    if (forwardableTrailer(name)) {  // framing fields mean nothing there
      trailers_.emplace_back(name, value);
    }
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
    if (!s_.snapshot_->config->listeners[s_.listener_].xff_replace) {
      xff_.append(xff_.empty() ? "" : ", ").append(value);
    }
    return true;
  }
  if (clientAddressField(name) && s_.snapshot_->config->listeners[s_.listener_].xff_replace) {
    return true;  // dropped, as the client's X-Forwarded-For is
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
  if (req_.headers.empty()) {
    req_.headers.reserve(16);  // room for the usual request and X-Forwarded-For: one allocation
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
  // The body is kept for another attempt only when one can happen: retries, a refused
  // stream of an HTTP/2 cluster (one free attempt), or a stale pooled HTTP/1.1 connection
  // (idempotent methods).
  replayable_ = route_->retries > 0 ||
                s_.snapshot_->config->clusters[cluster_].protocol == UpstreamProtocol::kHttp2 ||
                idempotent(req_.method);
  if (xff_.empty()) {
    req_.headers.emplace_back("x-forwarded-for", s_.peer_ip_);
  } else {
    req_.headers.emplace_back("x-forwarded-for", std::move(xff_.append(", ").append(s_.peer_ip_)));
  }
  timer_.arm(route_->timeout);
  connectUpstream();
}

void Http2Session::Stream::connectUpstream() {
  const Cluster& cluster = s_.snapshot_->config->clusters[cluster_];
  const auto pick =
      s_.chooser_.pick(s_.worker_, s_.snapshot_, cluster_, req_.headers, endpoint_, lease_);
  if (!pick) {
    respondError(503, "no live endpoint");
    return;
  }
  endpoint_ = *pick;
  attempts_++;
  upstream_start_ = s_.worker_.loop().now();
  const ClusterTable& table = *s_.snapshot_->tables[cluster_];
  endpoint_key_ = table.address_keys[*pick];
  const UpstreamTarget target{&table.addresses[*pick],     &table.address_keys[*pick],
                              cluster.connect_timeout,     cluster.max_idle_per_endpoint,
                              limits().idle_timeout,       limits().buffer_bytes,
                              responseHeadLimits(limits())};
  up_ready_ = false;
  end_forwarded_ = false;  // a retry sends the whole request again
  resent_ = 0;
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
  // A retry first sends again what the failed attempt had taken.
  while (resent_ < sent_body_.size() && up_->requestBuffered() < limit) {
    const size_t n = std::min(sent_body_.size() - resent_, limit - up_->requestBuffered());
    up_->sendBody(sent_body_.data().subspan(resent_, n));
    resent_ += n;
  }
  if (resent_ < sent_body_.size()) {
    return;  // the rest when the upstream takes more
  }
  if (!replayable_ && !sent_body_.empty()) {
    sent_body_ = Buffer();  // resent in full, and no further attempt can need it
    resent_ = 0;
  }
  while (!body_in_.empty() && up_->requestBuffered() < limit) {
    const size_t n = std::min(body_in_.size(), limit - up_->requestBuffered());
    up_->sendBody(body_in_.data().first(n));
    if (replayable_ && sent_body_.size() + n <= limit) {
      sent_body_.append(body_in_.data().first(n));
      resent_ += n;
    } else if (replayable_) {
      replayable_ = false;  // too big to keep: this attempt is the last
      sent_body_ = Buffer();
      resent_ = 0;
    }
    body_in_.consume(n);
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
  // No retry from here on: the copy of the body goes once this attempt has had all of it
  // (pumpBody() frees it then).
  replayable_ = false;
  if (resent_ == sent_body_.size()) {
    sent_body_ = Buffer();
    resent_ = 0;
  }
  nghttp2_submit_response(s_.h2_.get(), id_, nva.data(), nva.size(), end ? nullptr : &provider);
  s_.scheduleSend();
}

ssize_t Http2Session::Stream::readBody(uint8_t* buf, size_t length, uint32_t* flags) {
  const size_t n = std::min(length, body_out_.size());
  if (n) {
    std::memcpy(buf, body_out_.data().data(),
                n);  // an empty Buffer has no storage: never memcpy from null
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
  if (n == 0 && response_cut_) {
    reset_by_us_ = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets it: INTERNAL_ERROR
  }
  if (n == 0) {
    deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

void Http2Session::Stream::onUpstreamHeaders(uint16_t status, HeaderList headers, bool end) {
  const bool retry_due =
      (status == 502 || status == 503) && attempts_ <= route_->retries && idempotent(req_.method);
  if (retry_due && !replayable_) {
    bump(s_.worker_.stats().upstream_rq_retry_unreplayable);
  }
  if (retry_due && replayable_) {
    // As for HTTP/1.1 clients: nothing reached the client, so another endpoint may answer.
    // The upstream is dropped now and the next attempt starts from the loop, outside the
    // upstream's callback.
    bump(s_.worker_.stats().upstream_rq_retry);
    dropUpstream();
    s_.worker_.loop().defer([&s = s_, id = id_, gen = attempts_] {
      Stream* st = s.stream(id);
      if (st && st->attempts_ == gen && !st->head_submitted_ && !st->up_) {
        st->timer_.arm(st->route_->timeout);
        st->connectUpstream();
      }
    });
    return;
  }
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
  s_.worker_.loop().deferDelete(std::move(up_));
  if (head_submitted_) {
    // The response is under way: it can only be cut. What came before the cut still goes
    // out (the head, the body as far as it came), then the reset, as an HTTP/1.1 client
    // sees the body end short of its length; readBody() resets once it has sent it all.
    bump(st.upstream_rsp_reset);
    lease_.reset();
    response_cut_ = true;
    // The request body still held for the upstream will never go: let the client send on.
    if (!body_in_.empty()) {
      nghttp2_session_consume(s_.h2_.get(), id_, body_in_.size());
      body_in_.clear();
    }
    if (deferred_) {
      deferred_ = false;
      nghttp2_session_resume_data(s_.h2_.get(), id_);
    }
    s_.scheduleSend();
    return;
  }
  // Retry elsewhere while the request can be replayed: the body that went out is all kept
  // (body bytes are only acknowledged to the client once the upstream took them, so the
  // rest is still in body_in_ or with the client).
  const bool replayable = replayable_;
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
      retry = idempotent(req_.method) &&
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
  if (retry) {
    bump(st.upstream_rq_retry_unreplayable);
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
    // A cut response whose rest the client never took (its window stayed shut) ends as
    // the cut it is; anything else idle that long is cancelled.
    if (!response_cut_) {
      bump(s_.worker_.stats().h2_streams_idle_timeout);
    }
    dropUpstream();
    lease_.reset();
    reset_by_us_ = true;
    nghttp2_submit_rst_stream(s_.h2_.get(), NGHTTP2_FLAG_NONE, id_,
                              response_cut_ ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_CANCEL);
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
    up_->cancel();  // an HTTP/2 upstream gives back the window of what it delivered
    s_.worker_.loop().deferDelete(std::move(up_));
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

}  // namespace meshgate::proxy
