#include "proxy/server/h1_upstream.h"

#include <charconv>
#include <cstring>

#include "proxy/http1/grammar.h"
#include "proxy/server/http_fields.h"

namespace meshgate::proxy {

H1Upstream::H1Upstream(Worker& worker, UpstreamSink& sink, const UpstreamTarget& target)
    : worker_(worker),
      sink_(&sink),
      target_(target),
      parser_(http1::Mode::kResponse, *this, target.response_limits),
      connect_timer_(worker.loop().timers(), [this] {
        fail(UpstreamFailure::kConnect, "connecting to the upstream timed out");
      }) {}

H1Upstream::~H1Upstream() {
  if (conn_) {
    conn_->close();
  }
}

std::weak_ptr<bool> H1Upstream::aliveToken() {
  if (!alive_) {
    alive_ = std::make_shared<bool>(true);
  }
  return alive_;
}

void H1Upstream::start(const RequestHead& head) {
  chunked_ = !head.content_length && head.has_body;
  request_done_ = !head.has_body;
  parser_.expectResponseTo(http1::methodFromToken(head.method));
  conn_ = worker_.takeIdle(*target_.key);
  if (conn_) {
    reused_ = true;
    connected_ = true;
    bump(worker_.stats().upstream_cx_reused);
    conn_->setObserver(this);
  } else {
    auto fd = connectTcp(*target_.address);
    if (fd) {
      bump(worker_.stats().upstream_cx_connect);
      conn_ = std::make_unique<Connection>(worker_.loop(), std::move(*fd), this, true);
    }
    if (!fd || !conn_->start()) {
      // Reported from the loop, not from inside start().
      worker_.loop().defer([this, alive = aliveToken()] {
        if (!alive.expired()) {
          fail(UpstreamFailure::kConnect, "cannot connect to the upstream");
        }
      });
      return;
    }
    connect_timer_.arm(target_.connect_timeout);
  }
  conn_->setReadLimit(target_.window);
  // The head is written straight into the connection's output: no copy of its own.
  Buffer& out = conn_->output();
  out.append(head.method);
  out.append(" ");
  out.append(head.path);
  out.append(" HTTP/1.1\r\nhost: ");
  out.append(head.authority);
  out.append("\r\n");
  for (const auto& [name, value] : head.headers) {
    if (!chunked_ && announcesTrailers(name)) {
      continue;
    }
    out.append(name);
    out.append(": ");
    out.append(value);
    out.append("\r\n");
  }
  if (head.content_length) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, *head.content_length).ptr;
    out.append("content-length: ");
    out.append(std::string_view(digits, static_cast<size_t>(end - digits)));
    out.append("\r\n");
  } else if (chunked_) {
    out.append("transfer-encoding: chunked\r\n");
  }
  out.append("\r\n");
  conn_->flush();
}

void H1Upstream::sendBody(std::span<const char> data) {
  if (!conn_ || data.empty()) {
    return;
  }
  if (chunked_) {
    appendChunkHeader(conn_->output(), data.size());
    conn_->output().append(data);
    conn_->send("\r\n");
  } else {
    conn_->send(std::string_view(data.data(), data.size()));
  }
}

void H1Upstream::endRequest(HeaderList trailers) {
  if (request_done_) {
    return;
  }
  request_done_ = true;
  if (conn_ && chunked_) {
    std::string last = "0\r\n";
    for (const auto& [name, value] : trailers) {
      last.append(name).append(": ").append(value).append("\r\n");
    }
    conn_->send(last.append("\r\n"));
  }
  if (response_done_) {
    dropConnection();  // the response ended first; the connection's framing is spent
  }
}

void H1Upstream::consumed(size_t n) {
  unconsumed_ -= std::min(n, unconsumed_);
  if (conn_ && unconsumed_ < target_.window && !response_done_ && !feed_scheduled_) {
    // Bytes already read may wait in the input with no new read to come: feed them from
    // the loop (the caller is inside the sink's framing code), and read on.
    feed_scheduled_ = true;
    worker_.loop().defer([this, alive = aliveToken()] {
      if (!alive.expired()) {
        feed_scheduled_ = false;
        feed();
      }
    });
  }
}

void H1Upstream::cancel() {
  sink_ = nullptr;
  connect_timer_.cancel();
  dropConnection();
}

void H1Upstream::dropConnection() {
  if (conn_) {
    conn_->close();
    worker_.loop().deferDelete(std::move(conn_));
  }
}

void H1Upstream::fail(UpstreamFailure f, std::string detail) {
  connect_timer_.cancel();
  dropConnection();
  if (auto* s = std::exchange(sink_, nullptr)) {
    s->onUpstreamFailed(f, std::move(detail));
  }
}

void H1Upstream::onConnected(Connection&) {
  connect_timer_.cancel();
  connected_ = true;
  if (sink_) {
    sink_->onUpstreamReady();
  }
}

void H1Upstream::onDrained(Connection&) {
  if (sink_) {
    sink_->onUpstreamWritable();
  }
}

void H1Upstream::onError(Connection&, int err) {
  if (!connected_) {
    bump(worker_.stats().upstream_cx_connect_fail);
    fail(UpstreamFailure::kConnect,
         std::string("cannot connect to the upstream: ") + std::strerror(err));
  } else {
    fail(UpstreamFailure::kReset, "the upstream reset the connection");
  }
}

void H1Upstream::onData(Connection&) {
  feed();
}

void H1Upstream::feed() {
  while (sink_ && conn_ && !response_done_ && !conn_->input().empty() &&
         unconsumed_ < target_.window) {
    auto fed = parser_.feed(conn_->input().data());
    if (!fed) {
      bump(worker_.stats().upstream_rsp_bad);
      fail(UpstreamFailure::kBadResponse,
           "bad response from the upstream: " + std::string(fed.error().name()));
      return;
    }
    if (!conn_) {
      return;  // cancelled from a callback
    }
    conn_->input().consume(fed->consumed);
    if (fed->progress == http1::Progress::kPaused || fed->progress == http1::Progress::kTunnel) {
      break;
    }
  }
  if (!sink_ || !conn_) {
    return;
  }
  if (response_done_) {
    complete();
    return;
  }
  if (unconsumed_ >= target_.window) {
    conn_->pauseReading();  // consumed() resumes
  } else {
    conn_->resumeReading();
  }
  if (conn_->peerClosed() && conn_->input().empty()) {
    auto end = parser_.finish();  // the end of a close-delimited body, or a cut response
    if (!sink_) {
      return;
    }
    if (response_done_) {
      complete();  // a close-delimited body ended
    } else {
      fail(UpstreamFailure::kReset,
           std::string("the upstream closed the connection") + (end ? "" : " mid-response"));
    }
  }
}

void H1Upstream::onStatusLine(http1::Version, uint16_t status, std::string_view) {
  status_ = status;
  headers_.clear();
  headers_.reserve(16);  // once: no regrowth for the usual head
}

void H1Upstream::onHeader(std::string_view name, std::string_view value) {
  headers_.emplace_back(name, value);
}

void H1Upstream::onHeadersComplete(const http1::MessageHead& head) {
  if (status_ < 200 && status_ != 101) {
    headers_.clear();  // 100 Continue and friends: the final response follows
    return;
  }
  if (status_ == 101 || head.body == http1::BodyKind::kTunnel) {
    bump(worker_.stats().upstream_rsp_bad);
    parser_.pause();
    fail(UpstreamFailure::kBadResponse, "the upstream switched protocols unasked");
    return;
  }
  response_started_ = true;
  keep_alive_ = head.keep_alive;
  HeaderList fields = forwardableFields(std::move(headers_), /*lower_case=*/true);
  headers_.clear();
  const bool end = head.body == http1::BodyKind::kNone;
  if (sink_) {
    sink_->onUpstreamHeaders(status_, std::move(fields), end);
  }
}

void H1Upstream::onBody(std::span<const char> data) {
  unconsumed_ += data.size();
  if (sink_) {
    sink_->onUpstreamData(data);
  }
}

void H1Upstream::onTrailer(std::string_view name, std::string_view value) {
  headers_.emplace_back(lowerCase(name), value);
}

void H1Upstream::onMessageComplete() {
  if (response_started_) {
    response_done_ = true;
    parser_.pause();  // feed() completes the exchange once the input is consumed
  }
}

void H1Upstream::complete() {
  connect_timer_.cancel();
  // Back to the pool when both messages were framed cleanly and nothing else came.
  if (request_done_ && keep_alive_ && conn_ && conn_->isOpen() && !conn_->peerClosed() &&
      conn_->output().empty() && conn_->input().empty()) {
    worker_.putIdle(*target_.key, std::move(conn_), target_.max_idle, target_.idle_timeout);
  } else if (request_done_) {
    dropConnection();
  }
  HeaderList trailers = forwardableTrailers(std::move(headers_), true);
  if (auto* s = std::exchange(sink_, nullptr)) {
    s->onUpstreamEnd(std::move(trailers));
  }
}

}  // namespace meshgate::proxy
