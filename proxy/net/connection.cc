#include "proxy/net/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace meshgate::proxy {

Connection::Connection(EventLoop& loop, Fd fd, ConnectionObserver* observer, bool connecting)
    : loop_(loop), observer_(observer), fd_(std::move(fd)), connecting_(connecting) {}

Connection::~Connection() {
  if (alive_) {
    *alive_ = false;
  }
  close();
}

Result<void> Connection::start() {
  return loop_.add(fd_.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
}

void Connection::close() {
  if (fd_) {
    loop_.remove(fd_.get());
    fd_.reset();
  }
}

void Connection::fail(int err) {
  close();
  if (observer_) {
    observer_->onError(*this, err);
  }
}

void Connection::send(std::string_view bytes) {
  out_.append(bytes);
  flush();
}

void Connection::flush() {
  if (!fd_ || connecting_) {
    return;
  }
  while (!out_.empty() && !write_blocked_) {
    const auto data = out_.data();
    const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_.consume(static_cast<size_t>(n));
    } else if (n < 0 && errno == EAGAIN) {
      write_blocked_ = true;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      // Reported from the loop, never inside the caller's send()/flush(): the caller may
      // still be using this connection (and its owner) when it returns.
      const int err = n < 0 ? errno : EPIPE;
      close();
      out_.clear();
      loop_.defer([this, alive = aliveToken(), err] {
        if (*alive && observer_) {
          observer_->onError(*this, err);
        }
      });
      return;
    }
  }
  if (out_.empty()) {
    if (shutdown_pending_ && !write_shut_) {
      ::shutdown(fd_.get(), SHUT_WR);
      write_shut_ = true;
    }
  }
}

void Connection::shutdownWrite() {
  shutdown_pending_ = true;
  flush();
}

void Connection::resumeReading() {
  read_paused_ = false;
  if (readable_ && !read_scheduled_) {
    read_scheduled_ = true;
    loop_.defer([this, alive = aliveToken()] {
      if (*alive) {
        read_scheduled_ = false;
        doRead();
      }
    });
  }
}

void Connection::doRead() {
  bool got = false;
  while (fd_ && readable_ && !read_paused_ && in_.size() < read_limit_) {
    auto room = in_.reserve(16 * 1024);
    const ssize_t n = ::recv(fd_.get(), room.data(), room.size(), MSG_DONTWAIT);
    if (n > 0) {
      in_.commit(static_cast<size_t>(n));
      got = true;
      if (static_cast<size_t>(n) < room.size() && !hangup_seen_) {
        // A short read emptied the receive queue: the next byte or a FIN brings a new edge,
        // so the read that would only return EAGAIN is saved. Not when this edge already
        // reported the FIN (EPOLLRDHUP): then we read on until recv() returns 0.
        readable_ = false;
      }
    } else if (n == 0) {
      readable_ = false;
      peer_closed_ = true;
      got = true;
    } else if (errno == EAGAIN) {
      readable_ = false;
    } else if (errno != EINTR) {
      // What came before the error (a response the peer sent, then reset) is delivered
      // first; then the error.
      const int err = errno;
      if (got && observer_) {
        const std::shared_ptr<bool> alive = aliveToken();
        observer_->onData(*this);
        if (!*alive) {
          return;
        }
      }
      if (fd_) {
        fail(err);
      }
      return;
    }
  }
  if (got && observer_) {
    observer_->onData(*this);
  }
}

void Connection::onIo(uint32_t events) {
  if (!fd_) {
    return;  // closed earlier in this batch
  }
  if (connecting_ && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
    if (const int err = socketError(fd_.get()); err != 0) {
      fail(err);
      return;
    }
    connecting_ = false;
    if (observer_) {
      observer_->onConnected(*this);
    }
    if (!fd_) {
      return;
    }
    const bool had_output = !out_.empty();
    flush();
    if (had_output && fd_ && out_.empty() && observer_) {
      observer_->onDrained(*this);  // what was queued while connecting is out: fill on
    }
  }
  if (events & EPOLLERR) {
    // A reset can follow data the peer sent: that data is still in the receive queue, and
    // recv() returns it before the error. So read first, and a response the server sent
    // before it reset the connection is not lost. The error is taken once the queue is
    // drained (recv() reports it, or SO_ERROR once recv() found nothing more): read
    // earlier, SO_ERROR would report it with bytes still queued.
    readable_ = true;
    hangup_seen_ = true;
    hung_up_ = hung_up_ || (events & EPOLLHUP) != 0;  // before onData: a client is gone
    const bool paused = read_paused_ || in_.size() >= read_limit_;
    doRead();
    if (!fd_) {
      return;
    }
    if (!readable_) {
      if (const int err = socketError(fd_.get()); err != 0) {
        fail(err);
        return;
      }
    } else if (paused && observer_) {
      observer_->onResetWhilePaused(*this);
      return;
    }
  }
  if (events & EPOLLOUT && write_blocked_) {
    write_blocked_ = false;
    flush();
    if (fd_ && out_.empty() && observer_) {
      observer_->onDrained(*this);
    }
  }
  if (!fd_) {
    return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
    readable_ = true;
    hangup_seen_ = hangup_seen_ || (events & (EPOLLRDHUP | EPOLLHUP)) != 0;
    hung_up_ = hung_up_ || (events & EPOLLHUP) != 0;
    doRead();
  }
}

}  // namespace meshgate::proxy
