// HttpSession, the request side and the endings: parsing the client's requests, routing,
// HTTP/1.1 upstreams (connect, send, retry), error pages, lingering close, access log. The
// response side is in http_session_response.cc, HTTP/2 clusters in http_session_h2.cc.
#include "proxy/server/http_session.h"

#include <algorithm>
#include <charconv>
#include <utility>

#include "proxy/http1/grammar.h"
#include "proxy/net/socket.h"
#include "proxy/routing/router.h"
#include "proxy/server/access_log.h"
#include "proxy/server/h2_upstream.h"
#include "proxy/server/http2_session.h"
#include "proxy/server/http_fields.h"
#include "proxy/server/http_session_exchange.h"
#include "proxy/server/tcp_session.h"

namespace meshgate::proxy {
namespace {

using http1::grammar::caseless;
using http1::grammar::iequals;  // against a lower-case literal

using Clock = std::chrono::steady_clock;

// Calls fn with each non-empty element of a comma-separated list (Connection tokens).
template <class Fn>
void forEachToken(std::string_view list, Fn fn) {
  http1::grammar::forEachListElement(list, [&](std::string_view t, size_t) {
    if (!t.empty()) {
      fn(t);
    }
    return true;
  });
}

// Whether an Upgrade field value offers HTTP/2 over cleartext ("h2c", alone or in a list).
bool offersH2c(std::string_view upgrade) {
  bool h2c = false;
  forEachToken(upgrade, [&](std::string_view t) { h2c |= iequals(t, "h2c"); });
  return h2c;
}

}  // namespace

class HttpSession::RequestSink final : public http1::Sink {
 public:
  explicit RequestSink(HttpSession& s) : s_(s) {}
  void onRequestLine(http1::Method method, std::string_view token, std::string_view target,
                     http1::Version version) override {
    s_.ex_ = std::make_unique<Exchange>(s_);
    s_.ex_->method = method;
    s_.ex_->method_token = token;
    s_.ex_->target = target;
    s_.ex_->version = version;
    s_.ex_->headers.reserve(16);
  }
  void onHeader(std::string_view name, std::string_view value) override {
    if (iequals(name, "connection")) {
      forEachToken(value, [&](std::string_view t) { s_.ex_->connection_tokens.emplace_back(t); });
    }
    s_.ex_->headers.emplace_back(name, value);
  }
  void onHeadersComplete(const http1::MessageHead& head) override { s_.onRequestHead(head); }
  void onBody(std::span<const char> data) override { s_.onRequestBody(data); }
  void onTrailer(std::string_view name, std::string_view value) override {
    s_.onRequestTrailer(name, value);
  }
  void onMessageComplete() override { s_.onRequestComplete(); }

 private:
  HttpSession& s_;
};

HttpSession::HttpSession(Worker& worker, Fd client, const SockAddr& peer, SnapshotPtr snapshot,
                         size_t listener)
    : worker_(worker),
      peer_(peer),
      snapshot_(std::move(snapshot)),
      listener_(listener),
      timer_(worker.loop().timers(), [this] { onDeadline(); }) {
  const Limits& lim = snapshot_->config->limits;
  down_ = std::make_unique<Connection>(worker.loop(), std::move(client), this);
  down_->setReadLimit(lim.buffer_bytes);
}

void HttpSession::makeParser() {
  // Made with the first byte: a connection that never sends one costs no parser.
  const Limits& lim = snapshot_->config->limits;
  req_sink_ = std::make_unique<RequestSink>(*this);
  http1::Limits pl;
  pl.max_header_count = static_cast<uint32_t>(lim.max_headers);
  pl.max_header_bytes = static_cast<uint32_t>(lim.max_header_bytes);
  if (lim.max_body_bytes) {
    pl.max_body_bytes = lim.max_body_bytes;
  }
  req_parser_ = std::make_unique<http1::Parser>(http1::Mode::kRequest, *req_sink_, pl);
}

HttpSession::~HttpSession() = default;

void HttpSession::start() {
  bump(worker_.stats().downstream_cx_active);
  if (!down_->start()) {
    finish();
    return;
  }
  setDeadline(Deadline::kHeader, snapshot_->config->limits.header_timeout);
}

void HttpSession::setDeadline(Deadline d, std::chrono::milliseconds after) {
  deadline_ = d;
  timer_.arm(after);
}

void HttpSession::clearDeadline(Deadline d) {
  if (deadline_ == d) {
    deadline_ = Deadline::kNone;
    timer_.cancel();
  }
}

void HttpSession::onDeadline() {
  const Deadline d = std::exchange(deadline_, Deadline::kNone);
  switch (d) {
    case Deadline::kHeader:
      bump(worker_.stats().downstream_rq_timeout);
      sendError(408, "the request head did not arrive in time");
      break;
    case Deadline::kIdle:
      if (!down_->output().empty() && down_->output().size() < idle_output_) {
        // Not idle: the end of the last response is still going out, slowly. Wait on
        // while it makes progress.
        idle_output_ = static_cast<uint32_t>(down_->output().size());
        setDeadline(Deadline::kIdle, snapshot_->config->limits.idle_timeout);
        break;
      }
      finish();
      break;
    case Deadline::kLinger:
      finish();
      break;
    case Deadline::kUpstream:
      if (ex_ && !ex_->up_connected) {
        onUpstreamFailed(/*connect_failure=*/true);  // connect timeout
      } else {
        bump(worker_.stats().upstream_rq_timeout);
        sendError(504, "the upstream did not answer in time");
      }
      break;
    case Deadline::kNone:
      break;
  }
}

void HttpSession::onData(Connection& c) {
  if (done_) {
    return;
  }
  if (&c == down_.get() && c.hungUp()) {
    // The client is gone both ways (it closed after its half-close, or reset): whatever is
    // still in flight for it, nobody will read it. Do not wait for the upstream, nor parse
    // what it pipelined after the request being served (the fuzzer found a session that
    // waited out the route timeout for an upstream that never answered, because such
    // bytes were still in the input).
    finish();
    return;
  }
  if (&c == down_.get() && lingering_) {
    // Closing: what the client still sends is read and dropped until it closes too.
    c.input().clear();
    if (c.peerClosed()) {
      finish();
    } else {
      c.resumeReading();
    }
    return;
  }
  if (&c == down_.get()) {
    feedRequest();
  } else if (ex_ && &c == ex_->up.get()) {
    feedResponse();
  }
}

void HttpSession::feedRequest() {
  // One exchange at a time: a pipelined request waits in the input buffer (whose read
  // limit then stops reading) until the current response has been sent.
  while (!done_ && !closing_ && !(ex_ && ex_->request_done) && !down_->input().empty()) {
    if (!ex_ && deadline_ != Deadline::kHeader) {
      setDeadline(Deadline::kHeader, snapshot_->config->limits.header_timeout);  // ends idle
    }
    if (!req_parser_) {
      // The connection's first bytes: an HTTP/2 client with prior knowledge starts with
      // the connection preface, which no HTTP/1.1 request can begin with.
      const std::string_view in = down_->input().view();
      const std::string_view preface = Http2Session::kPreface;
      if (in.front() == preface.front() &&
          preface.starts_with(in.substr(0, std::min(in.size(), preface.size())))) {
        if (in.size() < preface.size()) {
          if (down_->peerClosed()) {
            finish();
          } else {
            down_->resumeReading();  // wait for the rest of it
          }
          return;
        }
        toHttp2();
        return;
      }
      makeParser();
    }
    auto fed = req_parser_->feed(down_->input().data());
    if (!fed) {
      bump(worker_.stats().downstream_rq_bad);
      sendError(fed.error().status, fed.error().name());
      return;
    }
    if (closing_ || done_) {
      return;  // an error page was sent inside the feed; the input belongs to the linger
    }
    down_->input().consume(fed->consumed);
    if (fed->progress == http1::Progress::kAwaitingResponse) {
      break;  // an upgrade or CONNECT request: the rest waits for the response
    }
    if (fed->progress == http1::Progress::kPaused) {
      break;  // a complete request; the next one waits
    }
  }
  if (done_) {
    return;
  }
  // Read on, unless the upstream's output is full (onDrained(upstream) resumes then) or an
  // HTTP/2 upstream holds a buffer of body it cannot send yet (H2Sink::onUpstreamWritable()).
  const size_t limit = snapshot_->config->limits.buffer_bytes;
  const bool upstream_full = ex_ && ((ex_->up && ex_->up->output().size() >= limit) ||
                                     (ex_->h2 && ex_->h2->requestBuffered() >= limit));
  if (!upstream_full) {
    down_->resumeReading();
  }
  if (down_->peerClosed() && (!ex_ || !ex_->request_done)) {
    if (ex_) {
      // The client went away in the middle of a request.
      finish();
    } else if (down_->input().empty()) {
      finish();  // a clean close between requests
    }
  }
}

void HttpSession::onRequestHead(const http1::MessageHead& head) {
  clearDeadline(Deadline::kHeader);
  bump(worker_.stats().downstream_rq_total);
  Exchange& ex = *ex_;
  ex.head_complete = true;
  ex.keep_alive = head.keep_alive;
  ex.chunked = head.body == http1::BodyKind::kChunked;
  ex.upgrade = head.upgrade;
  if (ex.upgrade && offersH2c(head.upgrade_protocol)) {
    // Forwarding an h2c upgrade would let a backend that accepts it turn the connection
    // into an HTTP/2 tunnel whose later streams no route, filter or log ever sees ("h2c
    // smuggling"). The request is served as HTTP/1.1 instead, which RFC 9113 §3.2 allows
    // (the server may ignore the upgrade); Upgrade and HTTP2-Settings are not forwarded.
    ex.upgrade = false;
    bump(worker_.stats().downstream_rq_h2c_upgrade_dropped);
  }
  // An absolute-form target names the host itself, and RFC 9112 §3.2.2 says it wins over
  // Host. Route and forward it as origin-form with that authority as Host, so the route
  // and the backend see the same host.
  http1::MessageHead routed = head;
  if (const std::string_view t = ex.target; t.starts_with("http://") || t.starts_with("https://")) {
    const size_t start = t.find("//") + 2;
    const size_t end = t.find_first_of("/?", start);
    ex.authority = std::string(
        t.substr(start, end == std::string_view::npos ? t.size() - start : end - start));
    std::string path = end == std::string_view::npos ? "/" : std::string(t.substr(end));
    if (path.front() == '?') {
      path.insert(path.begin(), '/');
    }
    ex.target = std::move(path);
    routed.host = ex.authority;
  }
  if (hasDotSegment(ex.target)) {
    // Routes match the raw path; a backend that resolves "/public/../admin" would serve a
    // path that no route allowed. Refused rather than normalised.
    bump(worker_.stats().downstream_rq_bad);
    sendError(400, "dot segments in the path");
    return;
  }
  const Listener& l = snapshot_->config->listeners[listener_];
  ex.route = matchRoute(l, routed, ex.target, ex.headers);
  if (!ex.route) {
    bump(worker_.stats().downstream_rq_no_route);
    sendError(404, "no route");
    return;
  }
  ex.cluster = ex.route->cluster_index;
  if (snapshot_->config->clusters[ex.cluster].protocol == UpstreamProtocol::kHttp2) {
    startH2(head);
    return;
  }

  // The request head for the upstream: same method and target, HTTP/1.1, hop-by-hop fields
  // dropped, X-Forwarded-For appended, framing restated.
  std::string& h = ex.sent;
  h.reserve(512);
  h.append(ex.method_token).append(" ").append(ex.target).append(" HTTP/1.1\r\n");
  std::string xff;
  const bool xff_replace = snapshot_->config->listeners[listener_].xff_replace;
  for (const auto& [name, value] : ex.headers) {
    // Framing is restated below from what the parser decided, never copied: a field the
    // client named in Connection ("Connection: content-length") cannot remove it.
    if (hopByHop(name) || iequals(name, "content-length")) {
      continue;
    }
    if (!iequals(name, "host") &&
        std::any_of(ex.connection_tokens.begin(), ex.connection_tokens.end(),
                    [&](const std::string& t) { return caseless(t, name); })) {
      continue;
    }
    if (!ex.authority.empty() && iequals(name, "host")) {
      continue;  // replaced by the absolute-form target's authority below
    }
    if (iequals(name, "x-forwarded-for")) {
      if (!xff_replace) {
        xff += (xff.empty() ? "" : ", ") + value;  // every field, in order
      }
      continue;
    }
    if (xff_replace && clientAddressField(name)) {
      continue;
    }
    if (!ex.chunked && announcesTrailers(name)) {
      continue;
    }
    h.append(name).append(": ").append(value).append("\r\n");
  }
  if (!ex.authority.empty()) {
    h.append("host: ").append(ex.authority).append("\r\n");
  } else if (!head.has_host) {
    // An HTTP/1.0 request may come without Host; the HTTP/1.1 request sent upstream may not
    // (RFC 9112 §3.2), so it names the address the client connected to. (An empty Host is
    // valid, and forwarded as it came.)
    h.append("host: ").append(localAuthority()).append("\r\n");
  }
  h.append("x-forwarded-for: ")
      .append(xff.empty() ? "" : xff + ", ")
      .append(peer_.ip())
      .append("\r\n");
  if (ex.chunked) {
    h.append("transfer-encoding: chunked\r\n");
  } else if (head.content_length) {
    h.append("content-length: ").append(std::to_string(*head.content_length)).append("\r\n");
  }
  if (ex.upgrade) {
    h.append("connection: upgrade\r\nupgrade: ").append(head.upgrade_protocol).append("\r\n");
  }
  h.append("\r\n");
  ex.request_bytes = 0;
  connectUpstream();
}

bool HttpSession::pickEndpoint() {
  Exchange& ex = *ex_;
  const auto pick =
      chooser_.pick(worker_, snapshot_, ex.cluster, ex.headers, ex.endpoint, ex.lease);
  if (!pick) {
    sendError(503, "no live endpoint");
    return false;
  }
  ex.endpoint = *pick;
  ex.attempts++;
  ex.endpoint_key = snapshot_->tables[ex.cluster]->address_keys[*pick];
  ex.upstream_start = worker_.loop().now();
  return true;
}

void HttpSession::connectUpstream() {
  Exchange& ex = *ex_;
  if (!pickEndpoint()) {
    return;
  }
  const Cluster& cluster = snapshot_->config->clusters[ex.cluster];
  const SockAddr& addr = snapshot_->tables[ex.cluster]->addresses[*ex.endpoint];
  ex.resp_parser.reset();  // a retry's parser starts afresh (never called inside its feed)
  ex.resp_parser.expectResponseTo(ex.method);

  ex.up = worker_.takeIdle(ex.endpoint_key);
  ex.up_reused = ex.up != nullptr;
  if (ex.up) {
    bump(worker_.stats().upstream_cx_reused);
    ex.up->setObserver(this);
    ex.up_connected = true;
    setDeadline(Deadline::kUpstream, ex.route->timeout);
  } else {
    auto fd = connectTcp(addr);
    if (!fd) {
      onUpstreamFailed(/*connect_failure=*/true);
      return;
    }
    bump(worker_.stats().upstream_cx_connect);
    ex.up = std::make_unique<Connection>(worker_.loop(), std::move(*fd), this, true);
    ex.up_connected = false;
    if (!ex.up->start()) {
      onUpstreamFailed(true);
      return;
    }
    setDeadline(Deadline::kUpstream, cluster.connect_timeout);
  }
  ex.up->setReadLimit(snapshot_->config->limits.buffer_bytes);
  ex.up->send(ex.sent);
  if (!ex.replayable) {
    ex.sent.clear();
  }
}

void HttpSession::onConnected(Connection& c) {
  if (ex_ && &c == ex_->up.get()) {
    ex_->up_connected = true;
    setDeadline(Deadline::kUpstream, ex_->route->timeout);
  }
}

void HttpSession::keepForRetry(std::string_view bytes) {
  Exchange& ex = *ex_;
  if (ex.replayable) {
    if (ex.sent.size() + bytes.size() <= snapshot_->config->limits.buffer_bytes) {
      ex.sent.append(bytes);
    } else {
      ex.replayable = false;
      ex.sent.clear();
    }
  }
}

void HttpSession::sendToUpstream(std::string_view bytes) {
  Exchange& ex = *ex_;
  keepForRetry(bytes);
  if (ex.up && ex.up->isOpen()) {
    ex.up->send(bytes);
    if (ex.up->output().size() >= snapshot_->config->limits.buffer_bytes) {
      down_->pauseReading();  // resumed by onDrained(upstream)
    }
  }
}

void HttpSession::onRequestBody(std::span<const char> data) {
  if (!ex_ || ex_->response_done) {
    return;
  }
  ex_->request_bytes += data.size();
  if (ex_->h2) {
    keepForRetry(std::string_view(data.data(), data.size()));
    ex_->h2->sendBody(data);
    if (ex_->h2->requestBuffered() >= snapshot_->config->limits.buffer_bytes) {
      down_->pauseReading();  // H2Sink::onUpstreamWritable() resumes
    }
    return;
  }
  if (ex_->chunked) {
    Buffer framed;
    appendChunkHeader(framed, data.size());
    framed.append(data);
    framed.append("\r\n");
    sendToUpstream(framed.view());
  } else {
    sendToUpstream(std::string_view(data.data(), data.size()));
  }
}

void HttpSession::onRequestTrailer(std::string_view name, std::string_view value) {
  if (!forwardableTrailer(name)) {
    return;  // hop-by-hop or framing: meaningless in a trailer section, refused by HTTP/2
  }
  if (ex_ && ex_->h2) {
    ex_->h2_trailers.emplace_back(lowerCase(name), value);
    return;
  }
  if (ex_ && ex_->chunked) {
    ex_->request_trailers.append(name).append(": ").append(value).append("\r\n");
  }
}

void HttpSession::onRequestComplete() {
  if (!ex_) {
    return;
  }
  if (ex_->h2) {
    // A copy while a retry may need them again.
    ex_->h2->endRequest(ex_->replayable ? ex_->h2_trailers : std::move(ex_->h2_trailers));
  } else if (ex_->chunked) {
    std::string last = "0\r\n" + ex_->request_trailers + "\r\n";
    sendToUpstream(last);
  }
  ex_->request_done = true;
  req_parser_->pause();
}

void HttpSession::onUpstreamFailed(bool connect_failure) {
  Exchange& ex = *ex_;
  clearDeadline(Deadline::kUpstream);
  if (ex.up) {
    ex.up->close();
    worker_.loop().deferDelete(std::move(ex.up));
  }
  if (connect_failure) {
    bump(worker_.stats().upstream_cx_connect_fail);
  }
  // Retry on another endpoint while nothing went to the client, the request can be
  // replayed, and the route allows it. A reused keep-alive connection that the server had
  // just closed is retried once more, whatever the route says: the request never got there.
  // After the request went out, only an idempotent one may be sent again (RFC 9110
  // §9.2.2): the server may have acted on it before the connection broke.
  const bool may_resend = idempotent(ex.method_token);
  const bool stale_pooled = ex.up_reused && ex.response_bytes == 0 && ex.status == 0;
  const bool retry_due = !ex.head_sent && (connect_failure || may_resend) &&
                         (ex.attempts <= ex.route->retries || stale_pooled);
  if (retry_due && !ex.replayable) {
    bump(worker_.stats().upstream_rq_retry_unreplayable);
  }
  if (retry_due && ex.replayable) {
    bump(worker_.stats().upstream_rq_retry);
    ex.status = 0;
    connectUpstream();  // sends ex.sent: the head and the body so far
    return;
  }
  if (connect_failure) {
    sendError(503, "cannot connect to the upstream");
  } else {
    bump(worker_.stats().upstream_rsp_reset);
    sendError(502, "the upstream closed the connection");
  }
}

void HttpSession::toHttp2() {
  timer_.cancel();
  done_ = true;
  bump(worker_.stats().downstream_cx_active, -1);  // counted again by the HTTP/2 session
  auto s = std::make_unique<Http2Session>(worker_, std::move(down_), peer_, snapshot_, listener_);
  Http2Session* raw = s.get();
  worker_.adopt(std::move(s));
  worker_.release(this);
  raw->start();
}

void HttpSession::toTunnel() {
  releaseEndpoint();
  Exchange& ex = *ex_;
  clearDeadline(Deadline::kUpstream);
  ex.tunnel = true;
  logAccess();
  auto up = std::move(ex.up);
  auto down = std::move(down_);
  bump(worker_.stats().downstream_cx_active, -1);  // an HTTP connection no more
  TcpSession::tunnel(worker_, std::move(down), std::move(up),
                     snapshot_->config->limits.buffer_bytes,
                     snapshot_->config->limits.idle_timeout);
  done_ = true;
  worker_.release(this);
}

void HttpSession::releaseEndpoint() {
  if (ex_) {
    ex_->lease.reset();
  }
}

void HttpSession::finishExchange() {
  releaseEndpoint();
  Exchange& ex = *ex_;
  clearDeadline(Deadline::kUpstream);
  logAccess();
  // The upstream connection goes back to the pool when both sides framed the exchange
  // cleanly; otherwise it is closed.
  if (ex.up) {
    if (ex.upstream_keep_alive && ex.request_done && ex.up->isOpen() && ex.up->input().empty() &&
        ex.up->output().empty() && !ex.up->peerClosed()) {
      worker_.putIdle(ex.endpoint_key, std::move(ex.up),
                      snapshot_->config->clusters[ex.cluster].max_idle_per_endpoint,
                      snapshot_->config->limits.idle_timeout);
    } else {
      ex.up->close();
      worker_.loop().deferDelete(std::move(ex.up));
    }
  }
  const bool request_done = ex.request_done;
  const bool close_after = ex.close_after;
  worker_.loop().deferDelete(std::move(ex_));
  if (closing_ || close_after || !request_done) {
    // The client asked to close, the response said it closes, or the client sent a body we
    // did not read to its end: nothing more can be read from this connection. A client that
    // asked to close and sent nothing after its request has nothing that a close could
    // reset: no lingering for it.
    linger_needed_ = !request_done || !down_->input().empty();
    closeAfterResponse();
    return;
  }
  req_parser_->resume();
  idle_output_ = UINT32_MAX;
  setDeadline(Deadline::kIdle, snapshot_->config->limits.idle_timeout);
  feedRequest();  // a pipelined request may be waiting
}

void HttpSession::closeAfterResponse() {
  closing_ = true;
  if (!linger_needed_ && down_->input().empty()) {
    down_->flush();
    if (down_->output().empty()) {
      finish();  // all sent and nothing to drain: close() sends the FIN, no shutdown() first
      return;
    }
  }
  // Bounded even while a client that does not read holds our output.
  setDeadline(Deadline::kLinger, kLingerTime);
  down_->shutdownWrite();
  if (down_->output().empty()) {
    startLinger();
  }
}

void HttpSession::startLinger() {
  // Our FIN is out. Closing now with unread bytes would make the kernel send a reset, which
  // can destroy the response still in flight to the client (and stops a client that is
  // still sending a body it cannot know we refused). So read and drop until the client
  // closes, for at most kLingerTime.
  if (lingering_ || done_) {
    return;
  }
  if (!linger_needed_ && down_->input().empty()) {
    finish();  // our FIN is out and the client has nothing in flight that we would reset
    return;
  }
  lingering_ = true;
  setDeadline(Deadline::kLinger, kLingerTime);
  down_->input().clear();
  if (down_->peerClosed()) {
    finish();
    return;
  }
  down_->resumeReading();
}

void HttpSession::onDrained(Connection& c) {
  if (done_) {
    return;
  }
  if (&c == down_.get()) {
    if (closing_ && !ex_) {
      startLinger();
      return;
    }
    if (ex_ && ex_->up) {
      ex_->up->resumeReading();  // its bytes wait in input(): feed them
      feedResponse();
    } else if (ex_ && ex_->h2 && ex_->h2_unconsumed) {
      ex_->h2->consumed(std::exchange(ex_->h2_unconsumed, 0));  // the upstream may send on
    }
  } else if (ex_ && &c == ex_->up.get()) {
    down_->resumeReading();
  }
}

// A client that reset while it was paused (its upload waits for a slow upstream) is gone:
// nothing more is owed to it, nor worth sending on for it.
void HttpSession::onResetWhilePaused(Connection& c) {
  if (!done_ && &c == down_.get()) {
    finish();
  }
}

void HttpSession::onError(Connection& c, int) {
  if (done_) {
    return;
  }
  if (&c == down_.get()) {
    finish();  // the client is gone
    return;
  }
  if (ex_ && &c == ex_->up.get()) {
    if (ex_->head_sent) {
      bump(worker_.stats().upstream_rsp_reset);
      finish();
    } else {
      onUpstreamFailed(/*connect_failure=*/!ex_->up_connected);
    }
  }
}

void HttpSession::sendError(uint16_t status, std::string_view detail) {
  if (done_) {
    return;
  }
  timer_.cancel();
  deadline_ = Deadline::kNone;
  if (ex_ && ex_->head_sent) {
    finish();  // too late for an error page: cut the response
    return;
  }
  const std::string body = std::to_string(status) + " " + std::string(reasonPhrase(status)) + ": " +
                           std::string(detail) + "\n";
  std::string msg =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(reasonPhrase(status)) +
      "\r\ncontent-type: text/plain\r\ncontent-length: " + std::to_string(body.size()) +
      "\r\nconnection: close\r\n\r\n" + body;
  if (!ex_) {
    ex_ = std::make_unique<Exchange>(*this);
  }
  ex_->status = status;
  ex_->head_sent = true;
  ex_->response_bytes = body.size();
  ex_->resp_parser.pause();  // we may be inside its callback: no more events
  releaseEndpoint();
  if (ex_->h2) {
    ex_->h2->cancel();
  }
  if (req_parser_) {
    req_parser_->pause();
  }
  logAccess();
  if (ex_->up) {
    ex_->up->close();
    worker_.loop().deferDelete(std::move(ex_->up));
  }
  worker_.loop().deferDelete(std::move(ex_));
  down_->send(msg);
  closeAfterResponse();
}

void HttpSession::finish() {
  if (done_) {
    return;
  }
  done_ = true;
  timer_.cancel();
  releaseEndpoint();
  if (ex_ && ex_->head_complete) {
    // A request whose exchange ends with the connection (a response cut by the upstream or
    // the client, a client gone while it waited) gets its line too: the status the client
    // got, or 0 (not a 502 being retried, which it never saw).
    if (!ex_->head_sent) {
      ex_->status = 0;
    }
    logAccess();
  }
  // Counted before the close: a client that sees our EOF also sees the gauge go down.
  bump(worker_.stats().downstream_cx_active, -1);
  if (ex_ && ex_->up) {
    ex_->up->close();
  }
  if (ex_ && ex_->h2) {
    ex_->h2->cancel();
  }
  if (down_) {
    // What the client has not been sent yet goes out if the socket takes it now: the part
    // of a response whose upstream broke off tells the client where it was cut.
    down_->flush();
    down_->close();
  }
  worker_.release(this);
}

std::string HttpSession::localAuthority() const {
  auto local = localAddress(down_->fd());
  return local ? local->toString() : std::string("localhost");
}

void HttpSession::logAccess() {
  Exchange& ex = *ex_;
  if (std::exchange(ex.logged, true)) {
    return;
  }
  Stats& st = worker_.stats();
  st.countResponse(ex.status);
  AccessLog* log = worker_.accessLog();
  if (!log) {
    return;
  }
  const auto now = Clock::now();
  AccessRecord r;
  r.client = peer_.toString();
  r.protocol = ex.version == http1::Version::kHttp10 ? "HTTP/1.0" : "HTTP/1.1";
  r.method = ex.method_token;
  r.target = ex.target;
  r.status = ex.status;
  r.upstream = ex.endpoint_key;
  r.cluster = ex.route ? ex.route->cluster : "";
  r.attempts = ex.attempts;
  r.request_body_bytes = ex.request_bytes;
  r.response_body_bytes = ex.response_bytes;
  r.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(now - ex.start).count();
  r.upstream_us =
      ex.attempts
          ? std::chrono::duration_cast<std::chrono::microseconds>(now - ex.upstream_start).count()
          : 0;
  log->write(r);
}

}  // namespace meshgate::proxy
