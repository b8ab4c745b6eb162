#include "proxy/server/tcp_session.h"

namespace meshgate::proxy {

TcpSession::TcpSession(Worker& worker, size_t buffer_bytes, std::chrono::milliseconds idle_timeout)
    : worker_(worker),
      buffer_bytes_(buffer_bytes),
      idle_timeout_(idle_timeout),
      idle_timer_(worker.loop().timers(), [this] { finish(); }) {
  idle_timer_.arm(idle_timeout_);
}

TcpSession::TcpSession(Worker& worker, Fd client, SnapshotPtr snapshot, size_t cluster_index)
    : worker_(worker),
      snapshot_(std::move(snapshot)),
      cluster_(cluster_index),
      buffer_bytes_(snapshot_->config->limits.buffer_bytes),
      idle_timeout_(snapshot_->config->limits.idle_timeout),
      idle_timer_(worker.loop().timers(), [this] { finish(); }) {
  idle_timer_.arm(idle_timeout_);
  client_ = std::make_unique<Connection>(worker.loop(), std::move(client), this);
  client_->setReadLimit(buffer_bytes_);
}

void TcpSession::start() {
  bump(worker_.stats().tcp_sessions);
  auto routing = worker_.routing();
  const Cluster& cluster = snapshot_->config->clusters[cluster_];
  // The index is from our snapshot: use the worker's balancer only if it is the same one.
  std::optional<size_t> pick;
  if (routing->snapshot == snapshot_) {
    pick = routing->balancers[cluster_].pick(std::nullopt);
  } else {
    LoadBalancer once(cluster, snapshot_->tables[cluster_], 0);
    pick = once.pick(std::nullopt);
  }
  Result<Fd> fd = fail("cluster '" + cluster.name + "' has no live endpoint");
  if (pick) {
    const Endpoint& e = cluster.endpoints[*pick];
    auto addr = SockAddr::parse(e.address, e.port);
    fd = addr ? connectTcp(*addr) : std::unexpected(addr.error());
  }
  if (!fd || !client_->start()) {
    bump(worker_.stats().tcp_connect_fail);
    finish();
    return;
  }
  bump(worker_.stats().upstream_cx_connect);
  upstream_ =
      std::make_unique<Connection>(worker_.loop(), std::move(*fd), this, /*connecting=*/true);
  upstream_->setReadLimit(buffer_bytes_);
  if (!upstream_->start()) {
    finish();
    return;
  }
  // Nothing is read from the client until the upstream is connected, so a client cannot
  // make the proxy buffer more than one read limit.
  client_->pauseReading();
}

void TcpSession::tunnel(Worker& worker, std::unique_ptr<Connection> a,
                        std::unique_ptr<Connection> b, size_t buffer_bytes,
                        std::chrono::milliseconds idle_timeout) {
  auto* s = new TcpSession(worker, buffer_bytes, idle_timeout);
  std::unique_ptr<Session> owned(s);
  s->client_ = std::move(a);
  s->upstream_ = std::move(b);
  s->client_->setObserver(s);
  s->upstream_->setObserver(s);
  s->client_->setReadLimit(buffer_bytes);
  s->upstream_->setReadLimit(buffer_bytes);
  worker.adopt(std::move(owned));
  // Bytes either side already holds are forwarded now.
  s->pump(*s->client_, *s->upstream_);
  s->pump(*s->upstream_, *s->client_);
  s->client_->resumeReading();
  s->upstream_->resumeReading();
}

void TcpSession::onConnected(Connection&) {
  client_->resumeReading();
}

void TcpSession::onData(Connection& c) {
  idle_timer_.arm(idle_timeout_);  // O(1): the wheel re-links the timer
  if (&c == client_.get()) {
    pump(*client_, *upstream_);
  } else {
    pump(*upstream_, *client_);
  }
}

void TcpSession::pump(Connection& from, Connection& to) {
  if (done_) {
    return;
  }
  if (!from.input().empty() && to.isOpen()) {
    to.send(from.input().view());
    from.input().consume(from.input().size());
  }
  if (to.output().size() >= buffer_bytes_) {
    from.pauseReading();  // resumed by onDrained(to)
  } else {
    from.resumeReading();
  }
  if (from.peerClosed() && from.input().empty() && to.isOpen() && !to.writeShut()) {
    to.shutdownWrite();  // FIN after the last byte
  }
  maybeFinish();
}

void TcpSession::onDrained(Connection& c) {
  Connection& other = &c == client_.get() ? *upstream_ : *client_;
  other.resumeReading();
  maybeFinish();
}

// The client reset: it is gone, as when it resets while read (onError). An upstream that
// reset while paused keeps what it sent before: the client gets it, then the close.
void TcpSession::onResetWhilePaused(Connection& c) {
  if (&c == client_.get()) {
    finish();
  }
}

void TcpSession::onError(Connection&, int) {
  finish();
}

void TcpSession::maybeFinish() {
  // Done when both peers have closed their side and both FINs went out.
  if (client_->peerClosed() && upstream_ && upstream_->peerClosed() && client_->writeShut() &&
      upstream_->writeShut()) {
    finish();
  }
}

void TcpSession::finish() {
  if (done_) {
    return;
  }
  done_ = true;
  idle_timer_.cancel();
  client_->close();
  if (upstream_) {
    upstream_->close();
  }
  worker_.release(this);
}

}  // namespace meshgate::proxy
