// libFuzzer target for meshgate-proxy's client side as a whole: the bytes a client sends on
// one connection, through the real HttpSession (HTTP/1.1 parsing, routing, upstream
// exchanges, error pages) and, when they start with the HTTP/2 preface, the real
// Http2Session (nghttp2 framing, stream state, header validation, flow control, resets),
// to a real upstream that answers every request it can parse. Sanitizers catch memory and
// undefined-behaviour errors; LeakSanitizer at exit catches what a session failed to free,
// and a session still alive once its client has closed and the loop has gone quiet aborts.
//
// Byte 0 steers the run: bit 0 prepends the HTTP/2 connection preface (so most inputs
// exercise HTTP/2 framing rather than failing on the preface), bit 1 lets the client's
// half-close arrive before the proxy has answered, bit 2 makes the upstream answer with
// a chunked body instead of a Content-Length one. The rest is what the client sends.
//
// Bit 3 fuzzes the upstream's side instead: bytes 1-2 (big-endian, modulo what is left)
// give the length of the client's part, and the bytes after it are what every upstream
// connection answers, whatever it was asked (garbage, a truncated or oversized response, a
// 101 nobody asked for, a broken chunked body, HTTP/2 frames). Bit 4 routes to a cluster
// that speaks HTTP/2 to the upstream (H2Upstream: the proxy's preface and HEADERS, then
// whatever frames the answer holds); bit 5 makes the upstream close its side after its
// answer.
//
// Everything runs on one thread, in a network namespace of the fuzzer's own (127.0.0.1
// only): one worker's event loop, driven step by step, serves the client over a
// socketpair and the upstream over loopback TCP.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "proxy/http1/parser.h"
#include "proxy/net/socket.h"
#include "proxy/routing/config.h"
#include "proxy/server/http_session.h"
#include "proxy/server/runtime.h"
#include "proxy/server/worker.h"

namespace {

namespace mp = meshgate::proxy;
namespace h1 = meshgate::http1;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "http_session fuzz setup: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

bool g_chunked = false;
const std::string* g_raw_answer = nullptr;  // bit 3: what every upstream connection answers
bool g_raw_close = false;                   // bit 5: ... and then it closes its side

// One upstream connection: answers every request it parses, in order; closes on a parse
// error, as a server would.
class UpstreamConn : public mp::IoHandler, public h1::Sink {
 public:
  UpstreamConn(mp::EventLoop& loop, int fd)
      : loop_(loop), fd_(fd), parser_(h1::Mode::kRequest, *this) {
    if (!loop_.add(fd_, EPOLLIN | EPOLLRDHUP, this)) {
      die("upstream add");
    }
  }
  ~UpstreamConn() override {
    loop_.remove(fd_);
    ::close(fd_);
  }
  bool closed() const { return closed_; }

  void onIo(uint32_t) override {
    char buf[16384];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      }
      if (n > 0 && g_raw_answer) {
        answerRaw();
        continue;  // the rest of what the proxy sends is read and ignored
      }
      if (n <= 0 || !feed(std::span<const char>(buf, static_cast<size_t>(n)))) {
        closed_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        return;
      }
    }
  }

 private:
  // An Upgrade or CONNECT request stops the parser until its response; this server never
  // switches protocols, so HTTP goes on after each answer, as at a server that declines.
  bool feed(std::span<const char> data) {
    while (!data.empty()) {
      auto fed = parser_.feed(data);
      if (!fed) {
        return false;
      }
      data = data.subspan(fed->consumed);
      if (fed->progress != h1::Progress::kAwaitingResponse) {
        return true;
      }
      parser_.resume();
    }
    return true;
  }

  // Once, after the proxy's first bytes, so that its request (or preface) went first.
  void answerRaw() {
    if (raw_sent_) {
      return;
    }
    raw_sent_ = true;
    (void)::send(fd_, g_raw_answer->data(), g_raw_answer->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (g_raw_close) {
      ::shutdown(fd_, SHUT_WR);
    }
  }

  void onMessageComplete() override {
    static const std::string fixed = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    static const std::string chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n";
    const std::string& r = g_chunked ? chunked : fixed;
    (void)::send(fd_, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  mp::EventLoop& loop_;
  int fd_;
  h1::Parser parser_;
  bool closed_ = false;
  bool raw_sent_ = false;
};

class Upstream : public mp::IoHandler {
 public:
  Upstream(mp::EventLoop& loop, int fd) : loop_(loop), fd_(fd) {
    if (!loop_.add(fd_, EPOLLIN, this)) {
      die("listener add");
    }
  }
  void onIo(uint32_t) override {
    for (;;) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) {
        break;
      }
      conns_.push_back(std::make_unique<UpstreamConn>(loop_, c));
    }
    std::erase_if(conns_, [](const auto& c) { return c->closed(); });
  }
  // Ends every connection, so that no pooled connection (HTTP/1.1 keep-alive or a shared
  // HTTP/2 one) carries one run's state into the next.
  void closeAll() { conns_.clear(); }

 private:
  mp::EventLoop& loop_;
  int fd_;
  std::vector<std::unique_ptr<UpstreamConn>> conns_;
};

struct World {
  std::unique_ptr<mp::Runtime> runtime;
  std::unique_ptr<mp::Worker> worker;
  std::unique_ptr<Upstream> upstream;
  mp::SnapshotPtr snapshot;
  mp::SnapshotPtr snapshot_h2;  // the same, but the catch-all route's cluster speaks HTTP/2
  mp::SockAddr peer;
};

World* g_world = nullptr;

void loopbackUp() {
  if (::unshare(CLONE_NEWNET) != 0) {
    die("unshare(CLONE_NEWNET) (the fuzzer needs root for a namespace of its own)");
  }
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (s < 0 || ::ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
    die("SIOCGIFFLAGS lo");
  }
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) != 0) {
    die("SIOCSIFFLAGS lo up");
  }
  ::close(s);
}

// Runs the loop until it has been idle for a few rounds in a row.
void settle(mp::EventLoop& loop, int client_fd) {
  int quiet = 0;
  for (int i = 0; i < 400 && quiet < 3; i++) {
    auto n = loop.runOnce(quiet == 0 ? 0 : 1);  // a short wait only to confirm quiet
    if (!n) {
      die("runOnce");
    }
    bool read_any = false;
    char buf[65536];
    while (client_fd >= 0 && ::recv(client_fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
      read_any = true;  // the client reads whatever it gets, so the proxy never stalls
    }
    quiet = *n == 0 && !read_any ? quiet + 1 : 0;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  loopbackUp();
  auto listen = mp::SockAddr::parse("127.0.0.1", 0);
  auto lfd = listen ? mp::listenTcp(*listen, 128) : std::unexpected(listen.error());
  if (!lfd) {
    die("upstream listen");
  }
  sockaddr_in bound{};
  socklen_t len = sizeof bound;
  ::getsockname(lfd->get(), reinterpret_cast<sockaddr*>(&bound), &len);
  const std::string port = std::to_string(ntohs(bound.sin_port));
  const auto snapshot = [&](const char* catch_all) {
    const std::string cfg_text =
        R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [
              {"match": {"path": {"prefix": "/r"}}, "cluster": "be", "retries": 1},
              {"match": {"headers": [{"name": "x-block", "present": true}]}, "cluster": "closed"},
              {"match": {"host": "*.example.com"}, "cluster": "be"},
              {"cluster": ")" +
        std::string(catch_all) + R"("}]}],
            "clusters": [
              {"name": "be", "endpoints": [{"address": "127.0.0.1", "port": )" +
        port + R"(}]},
              {"name": "be2", "protocol": "http2", "endpoints": [{"address": "127.0.0.1", "port": )" +
        port + R"(}]},
              {"name": "closed", "endpoints": [{"address": "127.0.0.1", "port": 9}]}],
            "limits": {"max_header_bytes": 8192, "max_headers": 32, "buffer_bytes": 16384,
                       "max_concurrent_streams": 16}})";
    auto cfg = mp::parseProxyConfig(cfg_text, "fuzz");
    if (!cfg) {
      std::fprintf(stderr, "%s\n", cfg.error().message.c_str());
      std::abort();
    }
    auto snap = mp::makeSnapshot(*cfg, 1);
    if (!snap) {
      std::fprintf(stderr, "%s\n", snap.error().message.c_str());
      std::abort();
    }
    return *snap;
  };
  g_world = new World;
  g_world->snapshot = snapshot("be");
  g_world->snapshot_h2 = snapshot("be2");
  g_world->runtime = std::make_unique<mp::Runtime>(g_world->snapshot);
  g_world->worker = std::make_unique<mp::Worker>(*g_world->runtime, 0);
  std::vector<uint16_t> ports;
  if (auto opened = g_world->worker->open(ports); !opened) {  // its loop (and a listener)
    std::fprintf(stderr, "%s\n", opened.error().message.c_str());
    std::abort();
  }
  g_world->upstream = std::make_unique<Upstream>(g_world->worker->loop(), lfd->release());
  g_world->peer = *mp::SockAddr::parse("127.0.0.1", 40000);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 65536) {
    return 0;
  }
  const uint8_t steer = data[0];
  g_chunked = steer & 4;
  g_raw_close = steer & 32;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string raw_answer;
  g_raw_answer = nullptr;
  if (steer & 8) {
    if (rest.size() < 2) {
      return 0;
    }
    const size_t client_len =
        (static_cast<uint8_t>(rest[0]) << 8 | static_cast<uint8_t>(rest[1])) % (rest.size() - 1);
    rest.remove_prefix(2);
    raw_answer.assign(rest.substr(client_len));
    rest = rest.substr(0, client_len);
    g_raw_answer = &raw_answer;
  }
  std::string input;
  if (steer & 1) {
    input = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  }
  input.append(rest);

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    die("socketpair");
  }
  const int buf = 1 << 20;
  ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  ::setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  mp::Worker& w = *g_world->worker;
  auto session = std::make_unique<mp::HttpSession>(
      w, mp::Fd(fds[0]), g_world->peer, steer & 16 ? g_world->snapshot_h2 : g_world->snapshot, 0);
  mp::HttpSession* raw = session.get();
  w.adopt(std::move(session));
  raw->start();

  size_t sent = 0;
  while (sent < input.size()) {
    const ssize_t n = ::send(fds[1], input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;  // the proxy closed on us, or its buffer is full: it has what it will read
    }
    sent += static_cast<size_t>(n);
  }
  if (steer & 2) {
    ::shutdown(fds[1], SHUT_WR);
  }
  settle(w.loop(), fds[1]);
  ::close(fds[1]);  // the client goes away; the session must end and free everything
  settle(w.loop(), -1);
  g_world->upstream->closeAll();
  settle(w.loop(), -1);
  if (w.hasSessions()) {
    std::fprintf(stderr, "http_session fuzz: the session outlived its client\n");
    std::abort();
  }
  g_raw_answer = nullptr;
  return 0;
}
