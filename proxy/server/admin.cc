#include "proxy/server/admin.h"

namespace meshgate::proxy {

AdminSession::AdminSession(Worker& worker, Fd fd)
    : worker_(worker),
      conn_(worker.loop(), std::move(fd), this),
      timer_(worker.loop().timers(), [this] { finish(); }) {
  conn_.setReadLimit(8192);
  timer_.arm(kTimeout);
}

void AdminSession::start() {
  if (!conn_.start()) {
    finish();
  }
}

void AdminSession::onData(Connection& c) {
  if (answered_) {
    return;
  }
  const std::string_view in = c.input().view();
  if (in.find("\r\n\r\n") == std::string_view::npos) {
    if (c.peerClosed() || in.size() >= 8192) {
      finish();
    }
    return;
  }
  std::string status = "200 OK", body;
  if (in.starts_with("GET /metrics ")) {
    body = worker_.stats().prometheus();
  } else if (in.starts_with("GET /ready ")) {
    body = "ready\n";
  } else {
    status = "404 Not Found";
    body = "try GET /metrics or GET /ready\n";
  }
  answered_ = true;
  c.send("HTTP/1.1 " + status + "\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: " +
         std::to_string(body.size()) + "\r\nconnection: close\r\n\r\n" + body);
  c.shutdownWrite();
  if (c.output().empty()) {
    finish();
  }
}

void AdminSession::onDrained(Connection&) {
  if (answered_) {
    finish();
  }
}

void AdminSession::finish() {
  if (!done_) {
    done_ = true;
    timer_.cancel();
    conn_.close();
    worker_.release(this);
  }
}

}  // namespace meshgate::proxy
