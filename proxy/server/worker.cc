#include "proxy/server/worker.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "proxy/server/admin.h"
#include "proxy/server/h2_upstream.h"
#include "proxy/server/http_session.h"
#include "proxy/server/tcp_session.h"

namespace meshgate::proxy {

// Accepts connections on one listener's socket of this worker.
class Worker::ListenerSocket final : public IoHandler {
 public:
  ListenerSocket(Worker& w, size_t index, Fd fd)
      : worker_(w),
        index_(index),
        fd_(std::move(fd)),
        retry_(w.loop().timers(), [this] { onIo(EPOLLIN); }) {}
  ~ListenerSocket() override {
    if (fd_) {
      worker_.loop().remove(fd_.get());
    }
  }
  int fd() const { return fd_.get(); }

  void onIo(uint32_t) override {
    // Edge-triggered: accept until EAGAIN, but at most a batch per wakeup so that one busy
    // listener cannot starve the connections of this worker.
    for (int i = 0; i < 64; i++) {
      SockAddr peer;
      peer.len = sizeof peer.storage;
      const int fd = ::accept4(fd_.get(), peer.get(), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN) {
          return;
        }
        if (errno == EINTR || pendingNetworkError(errno)) {
          continue;  // that connection is gone (accept(2): "retry as for EAGAIN")
        }
        outOfResources(errno);
        return;
      }
      if (failing_) {
        failing_ = false;
        std::fprintf(stderr, "meshgate-proxy: accept on %s works again\n", name().c_str());
      }
      worker_.accept(index_, Fd(fd), peer);
    }
    // A full batch: there may be more, and no new edge will come for them.
    worker_.loop().defer([this] { onIo(EPOLLIN); });
  }

 private:
  // The errors accept(2) passes on from a connection that failed while it waited in the
  // queue: that one is dropped, the next may be fine.
  static bool pendingNetworkError(int err) {
    switch (err) {
      case ECONNABORTED:
      case EPROTO:
      case ENETDOWN:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case EOPNOTSUPP:
      case ENETUNREACH:
        return true;
      default:
        return false;
    }
  }

  // EMFILE, ENFILE, ENOBUFS, ENOMEM (or anything else): the connection stays in the listen
  // queue, and being
  // edge-triggered, this listener gets no new event for it: only a later connection would
  // bring one. So try again after kAcceptRetry, until accepting works. Logged once per
  // failing spell; every failed attempt is counted.
  void outOfResources(int err) {
    bump(worker_.stats().downstream_cx_accept_fail);
    if (!failing_) {
      failing_ = true;
      std::fprintf(stderr,
                   "meshgate-proxy: accept on %s: %s; connections wait in the listen queue, "
                   "retrying every %lld ms\n",
                   name().c_str(), std::strerror(err),
                   static_cast<long long>(kAcceptRetry.count()));
    }
    retry_.arm(kAcceptRetry);
  }

  std::string name() const {
    return index_ == kAdminListener
               ? std::string("the admin listener")
               : "listener '" + worker_.runtime_.snapshot()->config->listeners[index_].name + "'";
  }

  static constexpr std::chrono::milliseconds kAcceptRetry{20};

  Worker& worker_;
  size_t index_;
  Fd fd_;
  Timer retry_;
  bool failing_ = false;
};

// A keep-alive upstream connection waiting in the pool: any byte or EOF from the server
// while idle means the connection is unusable (a server closing an idle connection), so it
// is closed and dropped.
class Worker::IdleConnection final : public ConnectionObserver {
 public:
  explicit IdleConnection(Worker& w) : worker_(w), expiry_(w.loop().timers(), [this] { drop(); }) {}
  // Holds `c` for `endpoint` until take(), or until the server closes it or `idle_timeout`.
  void hold(const std::string& endpoint, std::unique_ptr<Connection> c,
            std::chrono::milliseconds idle_timeout) {
    endpoint_ = endpoint;
    conn_ = std::move(c);
    conn_->setObserver(this);
    expiry_.arm(idle_timeout);
  }
  std::unique_ptr<Connection> take() {
    expiry_.cancel();
    conn_->setObserver(nullptr);
    return std::move(conn_);
  }
  void onData(Connection&) override { drop(); }
  void onError(Connection&, int) override { drop(); }

 private:
  // Leaves the pool now; destroyed after this loop iteration (its connection's callback
  // is on the stack).
  void drop() {
    expiry_.cancel();
    conn_->close();
    auto pool = worker_.idle_.find(endpoint_);
    if (pool == worker_.idle_.end()) {
      return;
    }
    auto& list = pool->second;
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->get() == this) {
        std::unique_ptr<IdleConnection> self = std::move(*it);
        list.erase(it);
        if (list.empty()) {
          // An endpoint unused for a whole idle timeout (or gone from the config) leaves no
          // entry behind. (takeIdle() keeps empty entries: the next putIdle() reuses them.)
          worker_.idle_.erase(pool);
        }
        worker_.loop().deferDelete(std::move(self));
        return;
      }
    }
  }
  Worker& worker_;
  std::string endpoint_;
  std::unique_ptr<Connection> conn_;
  Timer expiry_;
};

Worker::Worker(Runtime& runtime, int index) : runtime_(runtime), index_(index) {}

Worker::~Worker() {
  stop();
  while (sessions_) {
    Session* s = sessions_;
    sessions_ = s->next_;
    delete s;
  }
  idle_.clear();
  spare_idle_.clear();
  h2_.clear();
  listeners_.clear();
}

Result<void> Worker::open(std::vector<uint16_t>& ports) {
  auto loop = EventLoop::create();
  if (!loop) {
    return std::unexpected(loop.error());
  }
  loop_ = std::make_unique<EventLoop>(std::move(*loop));
  const auto snap = runtime_.snapshot();
  loop_->setBusyPoll(snap->config->busy_poll);
  for (size_t i = 0; i < snap->config->listeners.size(); i++) {
    const Listener& l = snap->config->listeners[i];
    const uint16_t port = ports.size() > i ? ports[i] : l.port;
    auto addr = SockAddr::parse(l.address, port);
    if (!addr) {
      return fail("listeners[" + std::to_string(i) + "]: " + addr.error().message);
    }
    auto fd = listenTcp(*addr, 4096);
    if (!fd) {
      return fail("listener '" + l.name + "': " + fd.error().message);
    }
    if (ports.size() <= i) {
      auto local = localAddress(fd->get());
      ports.push_back(local ? local->port() : port);
    }
    auto sock = std::make_unique<ListenerSocket>(*this, i, std::move(*fd));
    if (auto r = loop_->add(sock->fd(), EPOLLIN, sock.get()); !r) {
      return r;
    }
    listeners_.push_back(std::move(sock));
  }
  if (index_ == 0 && !snap->config->admin_address.empty()) {
    auto addr = SockAddr::parse(snap->config->admin_address, snap->config->admin_port);
    auto fd = addr ? listenTcp(*addr, 64) : std::unexpected(addr.error());
    if (!fd) {
      return fail("admin: " + fd.error().message);
    }
    auto local = localAddress(fd->get());
    admin_port_ = local ? local->port() : 0;
    auto sock = std::make_unique<ListenerSocket>(*this, kAdminListener, std::move(*fd));
    if (auto r = loop_->add(sock->fd(), EPOLLIN, sock.get()); !r) {
      return r;
    }
    listeners_.push_back(std::move(sock));
  }
  return {};
}

void Worker::start() {
  thread_ = std::thread([this] {
    if (auto r = loop_->run(); !r) {
      std::fprintf(stderr, "meshgate-proxy: worker %d: %s\n", index_, r.error().message.c_str());
    }
  });
}

void Worker::stop() {
  if (thread_.joinable()) {
    loop_->stop();
    thread_.join();
  }
}

std::shared_ptr<WorkerRouting> Worker::routing() {
  if (routing_ && routing_->snapshot->generation == runtime_.generation()) {
    return routing_;  // the common case: no reload since the last request
  }
  auto snap = runtime_.snapshot();
  if (!routing_ || routing_->snapshot != snap) {
    loop_->setBusyPoll(snap->config->busy_poll);
    auto r = std::make_shared<WorkerRouting>();
    r->snapshot = snap;
    for (size_t i = 0; i < snap->config->clusters.size(); i++) {
      r->balancers.emplace_back(snap->config->clusters[i], snap->tables[i],
                                (uint64_t{static_cast<uint32_t>(index_)} << 32) ^ snap->generation);
    }
    routing_ = std::move(r);
  }
  return routing_;
}

std::unique_ptr<Connection> Worker::takeIdle(const std::string& endpoint) {
  auto it = idle_.find(endpoint);
  while (it != idle_.end() && !it->second.empty()) {
    auto idle = std::move(it->second.back());
    it->second.pop_back();
    auto c = idle->take();
    if (spare_idle_.size() < kMaxSpareIdle) {
      spare_idle_.push_back(std::move(idle));
    }
    if (c && c->isOpen()) {
      return c;
    }
  }
  return nullptr;
}

void Worker::putIdle(const std::string& endpoint, std::unique_ptr<Connection> c, uint32_t max_idle,
                     std::chrono::milliseconds idle_timeout) {
  auto& list = idle_[endpoint];
  if (list.size() >= max_idle || !c->isOpen()) {
    c->close();
    loop_->deferDelete(std::move(c));
    return;
  }
  c->input().shrink();
  c->output().shrink();
  Connection* raw = c.get();
  std::unique_ptr<IdleConnection> idle;
  if (spare_idle_.empty()) {
    idle = std::make_unique<IdleConnection>(*this);
  } else {
    idle = std::move(spare_idle_.back());
    spare_idle_.pop_back();
  }
  idle->hold(endpoint, std::move(c), idle_timeout);
  list.push_back(std::move(idle));
  raw->resumeReading();  // a pause from the last response must not outlive it: and an idle
                         // connection must see the server's close
}

std::shared_ptr<H2Connection> Worker::h2Connection(const std::string& endpoint) {
  auto it = h2_.find(endpoint);
  return it == h2_.end() ? nullptr : it->second;
}

void Worker::keepH2Connection(const std::string& endpoint, std::shared_ptr<H2Connection> c) {
  h2_[endpoint] = std::move(c);
}

void Worker::forgetH2Connection(const std::string& endpoint, const H2Connection* c) {
  auto it = h2_.find(endpoint);
  if (it != h2_.end() && it->second.get() == c) {
    // Destroyed after this loop iteration: its own callback may be on the stack.
    loop_->defer([c = std::move(it->second)] {});
    h2_.erase(it);
  }
}

void Worker::adopt(std::unique_ptr<Session> s) {
  Session* raw = s.release();
  raw->next_ = sessions_;
  if (sessions_) {
    sessions_->prev_ = raw;
  }
  sessions_ = raw;
}

void Worker::release(Session* s) {
  loop_->defer([this, s] {
    if (s->prev_) {
      s->prev_->next_ = s->next_;
    } else {
      sessions_ = s->next_;
    }
    if (s->next_) {
      s->next_->prev_ = s->prev_;
    }
    delete s;
  });
}

void Worker::accept(size_t listener, Fd fd, const SockAddr& peer) {
  bump(stats().downstream_cx_total);  // TCP_NODELAY: inherited from the listener (listenTcp)
  if (listener == kAdminListener) {
    auto s = std::make_unique<AdminSession>(*this, std::move(fd));
    AdminSession* raw = s.get();
    adopt(std::move(s));
    raw->start();
    return;
  }
  auto snap = runtime_.snapshot();
  const Listener& l = snap->config->listeners[listener];
  if (l.protocol == ListenerProtocol::kTcp) {
    auto s = std::make_unique<TcpSession>(*this, std::move(fd), snap, l.cluster_index);
    TcpSession* raw = s.get();
    adopt(std::move(s));
    raw->start();
  } else {
    auto s = std::make_unique<HttpSession>(*this, std::move(fd), peer, snap, listener);
    HttpSession* raw = s.get();
    adopt(std::move(s));
    raw->start();
  }
}

}  // namespace meshgate::proxy
