// HttpSession for an HTTP/1.1 client routed to an HTTP/2 cluster (see http_session.h).
#include <algorithm>

#include "proxy/http1/grammar.h"
#include "proxy/routing/router.h"
#include "proxy/server/http_fields.h"
#include "proxy/server/http_session_exchange.h"

namespace meshgate::proxy {

using Clock = std::chrono::steady_clock;
using http1::grammar::iequals;

// An HTTP/1.1 client routed to an HTTP/2 cluster: the request as a stream of the worker's
// HTTP/2 connection to the endpoint, the response re-framed for HTTP/1.1.

void HttpSession::startH2(const http1::MessageHead& head) {
  Exchange& ex = *ex_;
  if (ex.upgrade || ex.method == http1::Method::kConnect) {
    bump(worker_.stats().downstream_rq_bad);
    sendError(501, "no Upgrade or CONNECT to an HTTP/2 cluster");
    return;
  }
  RequestHead& r = ex.h2_head;
  r.method = ex.method_token;
  r.path = ex.target;
  r.authority = ex.authority.empty() ? std::string(head.host) : ex.authority;
  if (r.authority.empty()) {
    r.authority = localAuthority();  // an HTTP/1.0 request without Host, or an empty one
  }
  std::string xff;
  const bool xff_replace = snapshot_->config->listeners[listener_].xff_replace;
  forEachForwardable(ex.headers, [&](std::string_view name, std::string_view value) {
    if (iequals(name, "host") || iequals(name, "content-length")) {
      return;
    }
    if (iequals(name, "x-forwarded-for")) {
      if (!xff_replace) {
        xff.append(xff.empty() ? "" : ", ").append(value);
      }
      return;
    }
    if (xff_replace && clientAddressField(name)) {
      return;
    }
    r.headers.emplace_back(lowerCase(name), value);
  });
  r.headers.emplace_back("x-forwarded-for", xff.empty() ? peer_.ip() : xff + ", " + peer_.ip());
  r.content_length = head.content_length;
  r.has_body = head.body == http1::BodyKind::kChunked ||
               (head.body == http1::BodyKind::kContentLength && head.content_length.value_or(0));
  ex.h2_sink = std::make_unique<H2Sink>(*this);
  connectH2();
}

void HttpSession::connectH2() {
  Exchange& ex = *ex_;
  if (!pickEndpoint()) {
    return;
  }
  const Cluster& cluster = snapshot_->config->clusters[ex.cluster];
  const ClusterTable& table = *snapshot_->tables[ex.cluster];
  const size_t pick = *ex.endpoint;
  const Limits& lim = snapshot_->config->limits;
  const UpstreamTarget target{&table.addresses[pick],  &table.address_keys[pick],
                              cluster.connect_timeout, cluster.max_idle_per_endpoint,
                              lim.idle_timeout,        lim.buffer_bytes,
                              responseHeadLimits(lim)};
  ex.h2 = std::make_unique<H2Upstream>(worker_, *ex.h2_sink, target);
  ex.up_connected = true;  // the HTTP/2 connection keeps its own connect timeout
  ex.h2->start(ex.h2_head);
  setDeadline(Deadline::kUpstream, ex.route->timeout);
}

void HttpSession::retryH2() {
  connectH2();
  Exchange& ex = *ex_;
  if (!ex.h2) {
    return;  // no live endpoint: answered
  }
  if (!ex.sent.empty()) {
    ex.h2->sendBody(std::span<const char>(ex.sent.data(), ex.sent.size()));
  }
  if (ex.request_done) {
    ex.h2->endRequest(ex.h2_trailers);
  }
}

void HttpSession::onH2ResponseHead(uint16_t status, const HeaderList& headers, bool end) {
  Exchange& ex = *ex_;
  const bool retry_due = (status == 502 || status == 503) && ex.request_done &&
                         ex.attempts <= ex.route->retries && idempotent(ex.method_token);
  if (retry_due && !ex.replayable) {
    bump(worker_.stats().upstream_rq_retry_unreplayable);
  }
  if (retry_due && ex.replayable) {
    // Another endpoint may answer a request whose body is all kept; the attempt starts
    // from the loop, outside the upstream's callback.
    bump(worker_.stats().upstream_rq_retry);
    ex.h2->cancel();
    worker_.loop().deferDelete(std::move(ex.h2));
    worker_.loop().defer([this, gen = ex.attempts] {
      if (!done_ && ex_ && ex_->attempts == gen && !ex_->head_sent && !ex_->h2) {
        retryH2();
      }
    });
    return;
  }
  clearDeadline(Deadline::kUpstream);
  ex.status = status;
  const bool client_11 = ex.version == http1::Version::kHttp11;
  const bool has_length = std::any_of(headers.begin(), headers.end(),
                                      [](const auto& f) { return f.first == "content-length"; });
  ex.chunk_out = !end && !has_length && client_11;
  ex.close_delimited_out = !end && !has_length && !client_11;
  if (ex.close_delimited_out || !ex.keep_alive || !ex.request_done) {
    ex.close_after = true;  // as for an HTTP/1.1 upstream (onResponseHead())
  }
  Buffer& out = down_->output();
  appendStatusLine(out, status, reasonPhrase(status));
  for (const auto& [name, value] : headers) {
    if (!ex.chunk_out && announcesTrailers(name)) {
      continue;
    }
    appendField(out, name, value);
  }
  if (ex.chunk_out) {
    out.append("transfer-encoding: chunked\r\n");
  } else if (end && !has_length && status >= 200 && status != 204 && status != 304 &&
             ex.method != http1::Method::kHead) {
    out.append("content-length: 0\r\n");
  }
  if (closing_ || ex.close_after) {
    out.append("connection: close\r\n");
  } else if (!client_11) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
  ex.head_sent = true;
  down_->flush();
}

void HttpSession::onH2ResponseBody(std::span<const char> data) {
  Exchange& ex = *ex_;
  ex.response_bytes += data.size();
  Buffer& out = down_->output();
  if (ex.chunk_out) {
    appendChunkHeader(out, data.size());
    out.append(data);
    out.append("\r\n");
  } else {
    out.append(data);
  }
  down_->flush();
  // Acknowledged to the upstream only once the client has taken the bytes, so a slow
  // client holds at most one window here (onDrained() acknowledges the rest).
  if (down_->output().size() < snapshot_->config->limits.buffer_bytes) {
    ex.h2->consumed(data.size() + std::exchange(ex.h2_unconsumed, 0));
  } else {
    ex.h2_unconsumed += data.size();
  }
}

void HttpSession::onH2ResponseEnd(const HeaderList& trailers) {
  Exchange& ex = *ex_;
  if (ex.chunk_out) {
    std::string last = "0\r\n";
    for (const auto& [name, value] : trailers) {
      last.append(name).append(": ").append(value).append("\r\n");
    }
    down_->send(last.append("\r\n"));
  }
  ex.response_done = true;
  if (ex.close_delimited_out) {
    closing_ = true;
  }
  // Finished from the loop: this runs inside the HTTP/2 connection's frame processing.
  worker_.loop().defer([this, gen = ex.attempts, e = ex_.get()] {
    if (!done_ && ex_.get() == e && ex_->attempts == gen) {
      finishExchange();
    }
  });
}

void HttpSession::onH2Failed(UpstreamFailure f, const std::string& detail) {
  Exchange& ex = *ex_;
  clearDeadline(Deadline::kUpstream);
  worker_.loop().deferDelete(std::move(ex.h2));
  if (ex.head_sent) {
    bump(worker_.stats().upstream_rsp_reset);
    finish();  // the response can only be cut
    return;
  }
  // Nothing reached the server (connect failure, refused stream) and the body taken so far
  // is all kept: another endpoint may have it.
  const bool unsent = f == UpstreamFailure::kConnect || f == UpstreamFailure::kRefused;
  const uint32_t allowed = ex.route->retries + (f == UpstreamFailure::kRefused ? 1 : 0);
  if (f == UpstreamFailure::kRefused) {
    bump(worker_.stats().h2_upstream_streams_refused);
  }
  if (unsent && ex.attempts <= allowed && !ex.replayable) {
    bump(worker_.stats().upstream_rq_retry_unreplayable);
  }
  if (unsent && ex.replayable && ex.attempts <= allowed) {
    bump(worker_.stats().upstream_rq_retry);
    retryH2();
    return;
  }
  if (f == UpstreamFailure::kReset) {
    bump(worker_.stats().upstream_rsp_reset);
  }
  sendError(f == UpstreamFailure::kConnect ? 503 : 502, detail);
}

}  // namespace meshgate::proxy
