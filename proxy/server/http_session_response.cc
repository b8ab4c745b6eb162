// HttpSession, the response side for HTTP/1.1 upstreams: the upstream's bytes through the
// response parser to the client, re-framed, with backpressure and retries on 502/503.
#include "proxy/http1/grammar.h"
#include "proxy/server/http_fields.h"
#include "proxy/server/http_session_exchange.h"

namespace meshgate::proxy {

void HttpSession::feedResponse() {
  Exchange& ex = *ex_;
  // Whatever this read produced for the client goes out in one write, head and body.
  struct FlushOnExit {
    Connection* c;
    ~FlushOnExit() {
      if (c->isOpen()) {
        c->flush();
      }
    }
  } flush_on_exit{down_.get()};
  while (ex_ && !ex.tunnel && ex.up && !ex.up->input().empty()) {
    auto fed = ex.resp_parser.feed(ex.up->input().data());
    if (!fed) {
      bump(worker_.stats().upstream_rsp_bad);
      ex.up->close();
      if (ex.head_sent) {
        finish();  // a broken body: the client's response can only be cut
      } else {
        sendError(
            502, std::string("bad response from the upstream: ") + std::string(fed.error().name()));
      }
      return;
    }
    if (!ex_) {
      return;  // the exchange finished inside the feed
    }
    ex.up->input().consume(fed->consumed);
    if (fed->progress == http1::Progress::kTunnel) {
      toTunnel();  // a 101 the client asked for: the bytes after its head are the tunnel's
      return;
    }
    if (fed->progress == http1::Progress::kPaused || ex.response_done) {
      break;
    }
  }
  if (!ex_ || done_) {
    return;
  }
  if (ex.response_done) {
    finishExchange();
    return;
  }
  // Read on, unless the client's output is full (onDrained(client) resumes then).
  if (down_->output().size() < snapshot_->config->limits.buffer_bytes) {
    ex.up->resumeReading();
  }
  if (ex.up->peerClosed()) {
    // The upstream closed: the end of a close-delimited body, or a cut response.
    auto end = ex.resp_parser.finish();
    if (!ex_) {
      return;
    }
    if (ex.response_done) {
      finishExchange();  // a close-delimited body ended
      return;
    }
    if (!end || !ex.response_done) {
      if (ex.head_sent) {
        bump(worker_.stats().upstream_rsp_reset);
        finish();
      } else {
        onUpstreamFailed(/*connect_failure=*/false);
      }
    }
  }
}

void HttpSession::onResponseHead(const http1::MessageHead& head) {
  Exchange& ex = *ex_;
  const ResponseSink& rs = ex.resp_sink;
  const uint16_t status = rs.status_;
  if (status >= 100 && status < 200 && status != 101) {
    // 100 Continue and friends: pass them on (not to HTTP/1.0 clients, RFC 9110 §15.2);
    // the final response follows.
    if (ex.version == http1::Version::kHttp10) {
      return;
    }
    Buffer& out = down_->output();
    appendStatusLine(out, status, rs.reason_);
    forEachForwardable(rs.headers_, [&](std::string_view name, std::string_view value) {
      appendField(out, name, value);
    });
    out.append("\r\n");
    down_->flush();
    return;
  }
  if (status == 101 && !ex.upgrade) {
    // A switch of protocols the client never asked for: tunnelling it would hand the
    // client's connection to the upstream.
    bump(worker_.stats().upstream_rsp_bad);
    sendError(502, "the upstream switched protocols unasked");
    return;
  }
  // Retry on another endpoint for 502/503 when the route allows, the method is idempotent
  // and the request can be replayed: the response is dropped with its connection.
  const bool retry_due = (status == 502 || status == 503) && ex.attempts <= ex.route->retries &&
                         !ex.upgrade && idempotent(ex.method_token);
  if (retry_due && !ex.replayable) {
    bump(worker_.stats().upstream_rq_retry_unreplayable);
  }
  if (retry_due && ex.replayable) {
    ex.status = status;
    // The client is not read until the retry starts, so that more body (which could make
    // the request too large to replay) cannot arrive in between.
    down_->pauseReading();
    worker_.loop().defer([this, gen = ex.attempts] {
      if (done_ || !ex_) {
        return;
      }
      // Unless something else took the exchange over meanwhile (the upstream failed and
      // onUpstreamFailed() moved on), this is the retry.
      if (ex_->attempts == gen && !ex_->head_sent && ex_->up) {
        ex_->up->close();
        worker_.loop().deferDelete(std::move(ex_->up));
        if (!ex_->replayable) {
          // Cannot happen while the client is not read; should it, the client gets the
          // status instead of waiting for the route timeout.
          bump(worker_.stats().upstream_rq_retry_unreplayable);
          sendError(ex_->status, "the upstream answered " + std::to_string(ex_->status) +
                                     " and the request is too large to retry");
          return;
        }
        bump(worker_.stats().upstream_rq_retry);
        connectUpstream();
      }
      if (!done_) {
        down_->resumeReading();  // paused when the retry was decided, in every case
      }
    });
    ex.resp_parser.pause();
    return;
  }
  ex.status = status;
  ex.upstream_keep_alive = head.keep_alive;
  clearDeadline(Deadline::kUpstream);  // the route timeout covers the wait for this head
  const bool client_11 = ex.version == http1::Version::kHttp11;
  // Framing towards the client.
  bool body = head.body != http1::BodyKind::kNone && head.body != http1::BodyKind::kTunnel;
  ex.chunk_out = false;
  ex.close_delimited_out = false;
  if (head.body == http1::BodyKind::kChunked || head.body == http1::BodyKind::kUntilClose) {
    if (client_11) {
      ex.chunk_out = true;
    } else {
      ex.close_delimited_out = true;
    }
  }
  // The connection ends with this exchange when the client asked, when only the close can
  // end the body, or when the response comes before the request's body has all arrived (it
  // is still forwarded, but what follows it cannot be told from a next request).
  if (ex.close_delimited_out || !ex.keep_alive || !ex.request_done) {
    ex.close_after = true;
  }
  Buffer& out = down_->output();
  appendStatusLine(out, status, rs.reason_);
  // Content-Length passes as it came (the parser checked it), even when the upstream named
  // it in Connection (namedByConnection() never lists it).
  forEachForwardable(rs.headers_, [&](std::string_view name, std::string_view value) {
    if (!ex.chunk_out && announcesTrailers(name)) {
      return;
    }
    appendField(out, name, value);
  });
  if (ex.chunk_out && body) {
    out.append("transfer-encoding: chunked\r\n");
  }
  if (status == 101) {
    out.append("connection: upgrade\r\nupgrade: ");
    out.append(head.upgrade_protocol);
    out.append("\r\n");
  } else if (closing_ || ex.close_after) {
    out.append("connection: close\r\n");
  } else if (!client_11) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
  ex.head_sent = true;  // written by feedResponse() with the body bytes of the same read
}

void HttpSession::onResponseBody(std::span<const char> data) {
  if (!ex_) {
    return;  // the exchange ended inside this feed (an error page was sent)
  }
  Exchange& ex = *ex_;
  if (!ex.head_sent) {
    return;  // a 502/503 being retried
  }
  ex.response_bytes += data.size();
  if (ex.chunk_out) {
    appendChunkHeader(down_->output(), data.size());
    down_->output().append(data);
    down_->output().append("\r\n");
  } else {
    down_->output().append(data);
  }
  if (ex.up && down_->output().size() >= snapshot_->config->limits.buffer_bytes) {
    down_->flush();
    if (down_->output().size() >= snapshot_->config->limits.buffer_bytes) {
      ex.up->pauseReading();  // a slow client: stop reading the upstream (onDrained resumes)
    }
  }
}

void HttpSession::onResponseTrailer(std::string_view name, std::string_view value) {
  if (!forwardableTrailer(name)) {
    return;  // hop-by-hop or framing: meaningless in a trailer section
  }
  if (ex_ && ex_->chunk_out) {
    ex_->response_trailers.append(name).append(": ").append(value).append("\r\n");
  }
}

void HttpSession::onResponseComplete() {
  if (!ex_) {
    return;
  }
  Exchange& ex = *ex_;
  if (!ex.head_sent) {
    return;  // a 1xx, or a 502/503 being retried
  }
  if (ex.chunk_out) {
    down_->output().append("0\r\n" + ex.response_trailers + "\r\n");
  }
  ex.response_done = true;
  if (ex.status == 101 || (ex.method == http1::Method::kConnect && ex.status / 100 == 2)) {
    // A tunnel (a switch of protocols, a CONNECT taken): not paused, so that the parser
    // reports it (Progress::kTunnel) even when tunnel bytes came in the same read as the
    // head, and feedResponse() hands both sides over.
    return;
  }
  ex.resp_parser.pause();  // feedResponse() finishes the exchange, outside the parser
}

}  // namespace meshgate::proxy
