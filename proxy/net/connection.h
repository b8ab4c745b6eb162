// One TCP connection on an edge-triggered event loop, with an input and an output buffer.
//
// Edge-triggered epoll reports readiness once. The connection reads until EAGAIN, or
// until its input buffer reaches the read limit (backpressure); in that case it stays
// "readable" and reads again when resumeReading() is called. Writes go out at once and
// the rest waits in output() until the socket is writable. An observer hears about new
// input, a drained output, a completed connect and the end of the connection; it must not
// destroy the Connection inside a callback (destroy through EventLoop::defer()).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>

#include "proxy/event/event_loop.h"
#include "proxy/net/buffer.h"
#include "proxy/net/socket.h"

namespace meshgate::proxy {

class Connection;

class ConnectionObserver {
 public:
  virtual ~ConnectionObserver() = default;
  // input() grew, or the peer closed its side (peerClosed(); input may still hold bytes).
  virtual void onData(Connection& c) = 0;
  // output() became empty after the socket had been full: resume filling it.
  virtual void onDrained(Connection&) {}
  // An outbound connect completed.
  virtual void onConnected(Connection&) {}
  // The connection failed (reset, refused, write error) and is closed; `err` is an errno.
  virtual void onError(Connection& c, int err) = 0;
  // The peer reset the connection while this side's reading was paused. What it sent before
  // is still queued and comes with onData() once reading resumes, then onError(). An
  // observer with no use for it (the peer was a client, now gone) gives up here; by default
  // the bytes are kept (an upstream's response may be whole before the reset).
  virtual void onResetWhilePaused(Connection&) {}
};

class Connection final : public IoHandler {
 public:
  // `connecting`: fd is an outbound socket whose connect is in progress.
  Connection(EventLoop& loop, Fd fd, ConnectionObserver* observer, bool connecting = false);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Result<void> start();  // registers with the loop
  void setObserver(ConnectionObserver* o) { observer_ = o; }

  Buffer& input() { return in_; }
  Buffer& output() { return out_; }
  // Stops reading once input() holds this many bytes (default 64 KiB).
  void setReadLimit(size_t bytes) {
    read_limit_ = static_cast<uint32_t>(std::min<size_t>(bytes, UINT32_MAX));
  }

  // Appends to output() and writes what the socket takes now.
  void send(std::string_view bytes);
  // Writes output() until it is empty or the socket is full.
  void flush();
  // Sends FIN once output() has drained (half-close).
  void shutdownWrite();
  void pauseReading() { read_paused_ = true; }
  // Undoes pauseReading(), and reads what the socket holds if the read limit stopped an
  // earlier read: call it after consuming input(). The read is deferred to the loop,
  // never run inside the caller's stack.
  void resumeReading();
  // Closes the socket now; no more callbacks.
  void close();

  bool isOpen() const { return fd_.get() >= 0; }
  bool connecting() const { return connecting_; }
  bool peerClosed() const { return peer_closed_; }
  // EPOLLHUP: both directions are shut: nothing more can be read, and nothing sent would
  // be read. A Unix-domain peer's close gives it; on TCP it needs a reset (which also
  // reports EPOLLERR) or our own FIN as well, so a TCP client that closes after a
  // half-close is still only seen as EPOLLRDHUP until something is written to it.
  bool hungUp() const { return hung_up_; }
  bool writeShut() const { return write_shut_; }
  int fd() const { return fd_.get(); }
  EventLoop& loop() { return loop_; }

 private:
  void onIo(uint32_t events) override;
  void doRead();
  void fail(int err);

  // Ordered so that an idle connection fits 128 bytes.
  EventLoop& loop_;
  ConnectionObserver* observer_;
  Buffer in_, out_;
  uint32_t read_limit_ = 64 * 1024;
  Fd fd_;
  bool connecting_;
  bool readable_ = false;  // the socket may hold unread bytes (edge already consumed)
  bool read_paused_ = false;
  bool read_scheduled_ = false;
  bool peer_closed_ = false;
  bool hangup_seen_ = false;    // an event reported EPOLLRDHUP / EPOLLHUP
  bool hung_up_ = false;        // an event reported EPOLLHUP
  bool write_blocked_ = false;  // the last write hit EAGAIN
  bool shutdown_pending_ = false;
  bool write_shut_ = false;
  // Made on first use (a deferred read or error, a callback that may end us): false once
  // this connection is destroyed.
  const std::shared_ptr<bool>& aliveToken() {
    if (!alive_) {
      alive_ = std::make_shared<bool>(true);
    }
    return alive_;
  }
  std::shared_ptr<bool> alive_;
};

}  // namespace meshgate::proxy
