// epoll against io_uring for the proxy's workload shape (issue 3: "epoll or io_uring: choose
// by measurement"). One HTTP/1.1 keep-alive responder (a fixed 100-byte body) is written
// twice around the same request scanner: on the proxy's own EventLoop + Connection
// (edge-triggered epoll; the baseline) and on io_uring through liburing (multishot accept,
// multishot recv into a provided-buffer ring, send; the ring set up with SINGLE_ISSUER +
// DEFER_TASKRUN when the kernel takes them). Each serves from one thread of this process,
// on the CPU the bench is pinned to (`taskset -c 1`); wrk runs on CPU 0 against 127.0.0.1 of
// a namespace of the bench's own. The two alternate in every round (A B, then B A); each
// case reports the medians of requests/s and of the server's CPU time per request.
#include <liburing.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/event/event_loop.h"
#include "proxy/http1/grammar.h"
#include "proxy/net/buffer.h"
#include "proxy/net/connection.h"
#include "proxy/net/socket.h"
#include "tests/lib/bench.h"
#include "tests/lib/netns.h"
#include "tests/lib/process.h"
#include "tests/lib/proxy_harness.h"

namespace meshgate::test {
namespace {

using proxy::Buffer;
using proxy::Fd;

constexpr const char* kLoadCpu = "0";
constexpr int kRounds = 5;
constexpr const char* kDuration = "5s";
constexpr double kDurationSeconds = 5;
// A head that has not ended after this many bytes is refused (the connection is closed).
constexpr size_t kMaxHead = 8192;

// ---- the shared HTTP part ----------------------------------------------------------------

const std::string& response(bool close) {
  static const std::string body(100, 'x');
  static const std::string keep_alive =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + body;
  static const std::string closing =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n"
      "Connection: close\r\n\r\n" +
      body;
  return close ? closing : keep_alive;
}

// Whether a request head (without its final CRLF CRLF) lists "close" in a Connection field.
bool asksToClose(std::string_view head) {
  size_t eol = head.find("\r\n");  // the request line ends here
  while (eol != std::string_view::npos) {
    const size_t start = eol + 2;
    eol = head.find("\r\n", start);
    const std::string_view line =
        head.substr(start, eol == std::string_view::npos ? eol : eol - start);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos ||
        !http1::grammar::iequals(line.substr(0, colon), "connection")) {
      continue;
    }
    bool close = false;
    http1::grammar::forEachListElement(line.substr(colon + 1), [&](std::string_view e, size_t) {
      close = http1::grammar::iequals(e, "close");
      return !close;
    });
    if (close) {
      return true;
    }
  }
  return false;
}

struct Answered {
  size_t consumed = 0;  // bytes of the complete heads answered
  bool close = false;   // the last one asked to close: send what is queued, then close
  bool bad = false;     // an unfinished head over kMaxHead: close without answering
};

// Answers each complete request head at the front of `input`, appending one response per
// head to `out`; stops after a head that asks to close. Both servers call this on whatever
// bytes they hold, so they parse and answer identically.
Answered answerRequests(std::string_view input, Buffer& out) {
  Answered a;
  while (true) {
    const std::string_view rest = input.substr(a.consumed);
    const size_t end = rest.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      a.bad = rest.size() > kMaxHead;
      return a;
    }
    a.close = asksToClose(rest.substr(0, end));
    out.append(response(a.close));
    a.consumed += end + 4;
    if (a.close) {
      return a;
    }
  }
}

void setNoDelay(int fd) {
  // As the proxy's worker does for every accepted connection.
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A server that answers on `listener` from the thread that calls serve(), until stop().
class Responder {
 public:
  virtual ~Responder() = default;
  virtual Result<void> serve() = 0;
  virtual void stop() = 0;  // thread-safe
};

// ---- (a) the baseline: the proxy's EventLoop + Connection, edge-triggered epoll ----------

class EpollResponder final : public Responder {
 public:
  static Result<std::unique_ptr<EpollResponder>> create(Fd listener) {
    auto loop = proxy::EventLoop::create();
    if (!loop) {
      return std::unexpected(loop.error());
    }
    auto r =
        std::unique_ptr<EpollResponder>(new EpollResponder(std::move(*loop), std::move(listener)));
    if (auto ok = r->loop_.add(r->listener_.fd(), EPOLLIN, &r->listener_); !ok) {
      return std::unexpected(ok.error());
    }
    return r;
  }
  ~EpollResponder() override { loop_.remove(listener_.fd()); }

  Result<void> serve() override { return loop_.run(); }
  void stop() override { loop_.stop(); }

 private:
  class Session final : public proxy::ConnectionObserver {
   public:
    Session(EpollResponder& owner, Fd fd)
        : owner_(owner), conn_(owner.loop_, std::move(fd), this) {}
    Result<void> start() { return conn_.start(); }

    void onData(proxy::Connection& c) override {
      const Answered a = answerRequests(c.input().view(), c.output());
      c.input().consume(a.consumed);
      if (a.bad) {
        finish();
        return;
      }
      c.flush();
      if (!c.isOpen()) {
        return;  // the write failed; onError() follows from the loop
      }
      if (a.close || c.peerClosed()) {
        close_when_drained_ = true;
        if (c.output().empty()) {
          finish();
        }
        return;
      }
      c.resumeReading();  // reads on if the read limit had stopped an earlier read
    }
    void onDrained(proxy::Connection&) override {
      if (close_when_drained_) {
        finish();
      }
    }
    void onError(proxy::Connection&, int) override { finish(); }

   private:
    void finish() {
      if (finished_) {
        return;
      }
      finished_ = true;
      conn_.close();
      owner_.loop_.defer([&owner = owner_, this] { owner.sessions_.erase(this); });
    }

    EpollResponder& owner_;
    proxy::Connection conn_;
    bool close_when_drained_ = false;
    bool finished_ = false;
  };

  // Accepts as the proxy's worker does: until EAGAIN, at most 64 per wakeup.
  class Listener final : public proxy::IoHandler {
   public:
    Listener(EpollResponder& owner, Fd fd) : owner_(owner), fd_(std::move(fd)) {}
    int fd() const { return fd_.get(); }
    void onIo(uint32_t) override {
      for (int i = 0; i < 64; i++) {
        const int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == ECONNABORTED || errno == EINTR) {
            continue;
          }
          return;  // EAGAIN, or out of resources: the next edge retries
        }
        setNoDelay(fd);
        auto s = std::make_unique<Session>(owner_, Fd(fd));
        if (s->start()) {
          Session* key = s.get();
          owner_.sessions_.emplace(key, std::move(s));
        }
      }
      owner_.loop_.defer([this] { onIo(EPOLLIN); });  // a full batch: no new edge for the rest
    }

   private:
    EpollResponder& owner_;
    Fd fd_;
  };

  EpollResponder(proxy::EventLoop loop, Fd listener)
      : loop_(std::move(loop)), listener_(*this, std::move(listener)) {}

  proxy::EventLoop loop_;
  Listener listener_;
  std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
};

// ---- (b) io_uring through liburing -------------------------------------------------------

// What the ring got from the kernel, for the report.
struct UringFeatures {
  std::string setup;  // "SINGLE_ISSUER+DEFER_TASKRUN", "COOP_TASKRUN+TASKRUN_FLAG" or "none"
  bool multishot_accept = true;
  bool multishot_recv = true;
  bool registered_ring_fd = false;
};

class UringResponder final : public Responder {
 public:
  static Result<std::unique_ptr<UringResponder>> create(Fd listener) {
    Fd wake(::eventfd(0, EFD_CLOEXEC));
    if (!wake) {
      return failErrno("eventfd", errno);
    }
    return std::unique_ptr<UringResponder>(
        new UringResponder(std::move(listener), std::move(wake)));
  }

  // The ring is made here, on the serving thread: with SINGLE_ISSUER the creating task is the
  // only one allowed to submit, and DEFER_TASKRUN runs completions when that task waits.
  Result<void> serve() override;
  void stop() override {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
  }
  const UringFeatures& features() const { return features_; }

 private:
  struct Conn {
    explicit Conn(int f) : fd(f) {}
    int fd;
    Buffer in;       // an unfinished head, carried to the next recv
    Buffer sending;  // the bytes of the send in flight: untouched until it completes
    Buffer pending;  // responses made while a send was in flight
    bool recv_armed = false;
    bool send_inflight = false;
    bool close_after_send = false;
    bool closing = false;  // close submitted; freed once no request refers to it
  };

  // user_data: a Conn pointer (8-aligned) with the operation in its low bits, or one of the
  // small constants below (never a valid pointer).
  static constexpr uint64_t kIgnore = 0, kAccept = 1, kWake = 2;
  static constexpr uint64_t kRecv = 1, kSend = 2, kOpMask = 7;
  static constexpr unsigned kBufGroup = 0;
  static constexpr unsigned kBufCount = 4096;  // power of two (ring mask)
  static constexpr unsigned kBufSize = 2048;

  UringResponder(Fd listener, Fd wake) : listener_(std::move(listener)), wake_(std::move(wake)) {}

  Result<void> setUp();
  void tearDown();
  io_uring_sqe* sqe();
  void armAccept();
  void armWake();
  void armRecv(Conn* c);
  void handle(const io_uring_cqe* cqe);
  void onAccept(const io_uring_cqe* cqe);
  void onRecv(Conn* c, const io_uring_cqe* cqe);
  void onSend(Conn* c, int res);
  void consume(Conn* c, std::string_view chunk);
  void send(Conn* c);
  void close(Conn* c);
  void freeIfDone(Conn* c);
  char* bufferAt(unsigned bid) { return buffers_ + static_cast<size_t>(bid) * kBufSize; }

  Fd listener_;
  Fd wake_;
  uint64_t wake_count_ = 0;  // the eventfd read lands here
  UringFeatures features_;
  io_uring ring_{};
  bool ring_ready_ = false;
  io_uring_buf_ring* buf_ring_ = nullptr;
  size_t buf_ring_bytes_ = 0;
  char* buffers_ = nullptr;
  int buffers_returned_ = 0;  // added to the buffer ring, published once per batch
  bool stopping_ = false;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns_;
};

Result<void> UringResponder::setUp() {
  struct Mode {
    unsigned flags;
    const char* name;
  };
  const Mode modes[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER+DEFER_TASKRUN"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "COOP_TASKRUN+TASKRUN_FLAG"},
      {0, "none"}};
  int ret = -EINVAL;
  for (const Mode& m : modes) {
    io_uring_params p{};
    // Room for a completion per connection and then some: 1000 connections each with a recv
    // and a send completing in one batch must not overflow the CQ.
    p.flags = m.flags | IORING_SETUP_CQSIZE;
    p.cq_entries = 16384;
    ret = io_uring_queue_init_params(4096, &ring_, &p);
    if (ret == 0) {
      features_.setup = m.name;
      break;
    }
  }
  if (ret != 0) {
    return failErrno("io_uring_queue_init_params", -ret);
  }
  ring_ready_ = true;
  // Saves the fd lookup in every io_uring_enter().
  features_.registered_ring_fd = io_uring_register_ring_fd(&ring_) == 1;

  // The provided-buffer ring (liburing 2.3 has no io_uring_setup_buf_ring(): done by hand).
  buf_ring_bytes_ = kBufCount * sizeof(io_uring_buf);
  void* ring_mem =
      ::mmap(nullptr, buf_ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (ring_mem == MAP_FAILED) {
    return failErrno("mmap(buffer ring)", errno);
  }
  buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(ring_mem);
  reg.ring_entries = kBufCount;
  reg.bgid = kBufGroup;
  if (const int r = io_uring_register_buf_ring(&ring_, &reg, 0); r != 0) {
    return failErrno("io_uring_register_buf_ring", -r);
  }
  buffers_ = new char[static_cast<size_t>(kBufCount) * kBufSize];
  io_uring_buf_ring_init(buf_ring_);
  for (unsigned bid = 0; bid < kBufCount; bid++) {
    io_uring_buf_ring_add(buf_ring_, bufferAt(bid), kBufSize, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(kBufCount), static_cast<int>(bid));
  }
  io_uring_buf_ring_advance(buf_ring_, kBufCount);
  return {};
}

void UringResponder::tearDown() {
  if (ring_ready_) {
    // Submit the closes still queued; queue_exit then cancels the rest and drops the
    // ring's file references.
    io_uring_submit(&ring_);
    io_uring_queue_exit(&ring_);
    ring_ready_ = false;
  }
  for (auto& [c, owned] : conns_) {
    if (!c->closing) {
      ::close(c->fd);
    }
  }
  conns_.clear();
  if (buf_ring_) {
    ::munmap(buf_ring_, buf_ring_bytes_);
    buf_ring_ = nullptr;
  }
  delete[] buffers_;
  buffers_ = nullptr;
}

Result<void> UringResponder::serve() {
  if (auto ok = setUp(); !ok) {
    tearDown();
    return ok;
  }
  armAccept();
  armWake();
  Result<void> result;
  while (!stopping_) {
    const int ret = io_uring_submit_and_wait(&ring_, 1);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
      result = failErrno("io_uring_submit_and_wait", -ret);
      break;
    }
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      handle(cqe);
      seen++;
    }
    io_uring_cq_advance(&ring_, seen);
    if (buffers_returned_ > 0) {
      io_uring_buf_ring_advance(buf_ring_, buffers_returned_);
      buffers_returned_ = 0;
    }
  }
  tearDown();
  return result;
}

io_uring_sqe* UringResponder::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (s == nullptr) {  // the SQ is full: hand it to the kernel and take a fresh one
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

void UringResponder::armAccept() {
  io_uring_sqe* s = sqe();
  if (features_.multishot_accept) {
    io_uring_prep_multishot_accept(s, listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  } else {
    io_uring_prep_accept(s, listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  }
  io_uring_sqe_set_data64(s, kAccept);
}

void UringResponder::armWake() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, wake_.get(), &wake_count_, sizeof wake_count_, 0);
  io_uring_sqe_set_data64(s, kWake);
}

void UringResponder::armRecv(Conn* c) {
  io_uring_sqe* s = sqe();
  if (features_.multishot_recv) {
    io_uring_prep_recv_multishot(s, c->fd, nullptr, 0, 0);
  } else {
    io_uring_prep_recv(s, c->fd, nullptr, kBufSize, 0);
  }
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufGroup;
  io_uring_sqe_set_data64(s, reinterpret_cast<uint64_t>(c) | kRecv);
  c->recv_armed = true;
}

void UringResponder::handle(const io_uring_cqe* cqe) {
  const uint64_t data = cqe->user_data;
  if (data == kIgnore) {
    return;
  }
  if (data == kWake) {
    stopping_ = true;
    return;
  }
  if (data == kAccept) {
    onAccept(cqe);
    return;
  }
  auto* c = reinterpret_cast<Conn*>(data & ~kOpMask);
  if ((data & kOpMask) == kRecv) {
    onRecv(c, cqe);
  } else {
    onSend(c, cqe->res);
  }
}

void UringResponder::onAccept(const io_uring_cqe* cqe) {
  const bool armed = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (cqe->res == -EINVAL && features_.multishot_accept) {
    features_.multishot_accept = false;  // a kernel without multishot accept: one at a time
  } else if (cqe->res >= 0) {
    setNoDelay(cqe->res);
    auto owned = std::make_unique<Conn>(cqe->res);
    Conn* c = owned.get();
    conns_.emplace(c, std::move(owned));
    armRecv(c);
  }
  // Other errors (ECONNABORTED, EMFILE) leave the listener as it was: accept again.
  if (!armed && !stopping_) {
    armAccept();
  }
}

void UringResponder::onRecv(Conn* c, const io_uring_cqe* cqe) {
  if ((cqe->flags & IORING_CQE_F_MORE) == 0) {
    c->recv_armed = false;
  }
  const int res = cqe->res;
  if (res > 0) {
    const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (!c->closing) {
      consume(c, std::string_view(bufferAt(bid), static_cast<size_t>(res)));
    }
    io_uring_buf_ring_add(buf_ring_, bufferAt(bid), kBufSize, static_cast<unsigned short>(bid),
                          io_uring_buf_ring_mask(kBufCount), buffers_returned_++);
  } else if (res == -EINVAL && features_.multishot_recv) {
    features_.multishot_recv = false;  // a kernel without multishot recv: one recv at a time
  } else if (res != -ENOBUFS) {
    close(c);  // EOF, a reset, or our own cancel
  }
  // -ENOBUFS: every provided buffer was in use; they come back at the end of this batch.
  if (!c->recv_armed && !c->closing) {
    armRecv(c);
  }
  freeIfDone(c);
}

void UringResponder::consume(Conn* c, std::string_view chunk) {
  Buffer& out = c->send_inflight ? c->pending : c->sending;
  Answered a;
  if (c->in.empty()) {
    // The usual case: whole requests in one recv, parsed in the provided buffer (no copy).
    a = answerRequests(chunk, out);
    if (!a.close && !a.bad && a.consumed < chunk.size()) {
      c->in.append(chunk.substr(a.consumed));
    }
  } else {
    c->in.append(chunk);
    a = answerRequests(c->in.view(), out);
    c->in.consume(a.consumed);
  }
  if (a.bad) {
    close(c);
    return;
  }
  c->close_after_send = c->close_after_send || a.close;
  send(c);
}

void UringResponder::send(Conn* c) {
  if (c->send_inflight) {
    return;
  }
  if (c->sending.empty()) {
    if (c->close_after_send) {
      close(c);
    }
    return;
  }
  const auto bytes = c->sending.data();
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c->fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, reinterpret_cast<uint64_t>(c) | kSend);
  c->send_inflight = true;
}

void UringResponder::onSend(Conn* c, int res) {
  c->send_inflight = false;
  if (res < 0) {
    close(c);
  } else if (!c->closing) {
    c->sending.consume(static_cast<size_t>(res));  // a short send resends the rest
    if (c->sending.empty()) {
      std::swap(c->sending, c->pending);
    }
    send(c);
  }
  freeIfDone(c);
}

void UringResponder::close(Conn* c) {
  if (c->closing) {
    return;
  }
  c->closing = true;
  // A multishot recv holds the socket: cancel it, or the close would not release it.
  if (c->recv_armed) {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, reinterpret_cast<uint64_t>(c) | kRecv, 0);
    io_uring_sqe_set_data64(s, kIgnore);
    io_uring_sqe_set_flags(s, IOSQE_CQE_SKIP_SUCCESS);
  }
  io_uring_sqe* s = sqe();
  io_uring_prep_close(s, c->fd);
  io_uring_sqe_set_data64(s, kIgnore);
  io_uring_sqe_set_flags(s, IOSQE_CQE_SKIP_SUCCESS);
}

void UringResponder::freeIfDone(Conn* c) {
  if (c->closing && !c->recv_armed && !c->send_inflight) {
    conns_.erase(c);
  }
}

// ---- measurement -------------------------------------------------------------------------

enum class Server { kEpoll, kUring };

struct Case {
  std::string name;
  int connections;
  bool close;  // wrk sends "Connection: close": a new connection per request
};

struct Sample {
  double rps = 0;
  double cpu_us_per_request = 0;
  double cpu_utilisation = 0;  // server CPU seconds / wall seconds of the run
  double kernel_share = 0;     // the part of the server's CPU spent in the kernel
  uint64_t errors = 0;         // wrk: non-2xx, connect, write and timeout errors
  int io_workers = 0;          // iou-wrk threads alive at the end of the run
};

struct CpuTime {
  double user = 0, system = 0;
  CpuTime operator-(const CpuTime& o) const { return {user - o.user, system - o.system}; }
};

// CPU time of `who` (RUSAGE_SELF or RUSAGE_THREAD), in seconds.
CpuTime cpuTime(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return {s(ru.ru_utime), s(ru.ru_stime)};
}

// Threads of this process named iou-wrk-* (io_uring's async workers), which would do
// server work outside the server thread.
int ioWorkerThreads() {
  int n = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    n += name.starts_with("iou-wrk") ? 1 : 0;
  }
  return n;
}

Result<Sample> wrk(const NetNs& ns, uint16_t port, const Case& c) {
  std::vector<std::string> argv = {"taskset", "-c", kLoadCpu, "wrk", "-t1", "-d", kDuration,
                                   "-c", std::to_string(c.connections)};
  if (c.close) {
    argv.insert(argv.end(), {"-H", "Connection: close"});
  }
  argv.push_back("http://127.0.0.1:" + std::to_string(port) + "/");
  auto out = ns.run(argv, std::chrono::seconds(60));
  if (!out) {
    return std::unexpected(out.error());
  }
  Sample s;
  std::smatch m;
  if (std::regex_search(*out, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) {
    s.rps = std::stod(m[1]);
  }
  if (std::regex_search(*out, m, std::regex(R"(Non-2xx or 3xx responses:\s+([0-9]+))"))) {
    s.errors += std::stoull(m[1]);
  }
  // Read errors are left out: wrk counts a server's close after "Connection: close" as one.
  if (std::regex_search(
          *out, m,
          std::regex(
              R"(Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+))"))) {
    s.errors += std::stoull(m[1]) + std::stoull(m[3]) + std::stoull(m[4]);
  }
  if (s.rps == 0) {
    return fail("wrk on port " + std::to_string(port) + ": " + *out);
  }
  return s;
}

// Two pipelined requests, the second asking to close: both servers must answer both (same
// bytes) and close. Checked before every measured run.
Result<void> checkAnswers(const NetNs& ns, uint16_t port) {
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  auto got =
      rawExchange(ns, port, request + "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  if (!got) {
    return std::unexpected(got.error());
  }
  if (*got != response(false) + response(true)) {
    return fail("unexpected answer: " + *got);
  }
  return {};
}

Result<Sample> measure(NetNs& ns, Server server, const Case& c, UringFeatures* features) {
  Result<Fd> listener = fail("no namespace");
  {
    auto in = ns.enter();
    if (!in) {
      return std::unexpected(in.error());
    }
    auto addr = proxy::SockAddr::parse("127.0.0.1", 0);
    if (!addr) {
      return std::unexpected(addr.error());
    }
    listener = proxy::listenTcp(*addr, 4096);
  }
  if (!listener) {
    return std::unexpected(listener.error());
  }
  auto bound = proxy::localAddress(listener->get());
  if (!bound) {
    return std::unexpected(bound.error());
  }
  auto epoll = server == Server::kEpoll ? EpollResponder::create(std::move(*listener)) : nullptr;
  auto uring = server == Server::kUring ? UringResponder::create(std::move(*listener)) : nullptr;
  if (!epoll || !uring) {
    return std::unexpected(!epoll ? epoll.error() : uring.error());
  }
  Responder* responder = *epoll ? static_cast<Responder*>(epoll->get()) : uring->get();
  Result<void> served;
  std::thread thread([&] { served = responder->serve(); });
  auto checked = checkAnswers(ns, bound->port());
  Result<Sample> sample = fail("not run");
  CpuTime server_cpu;
  if (checked) {
    // This thread only waits for wrk meanwhile; the rest of the process is the server.
    const CpuTime process0 = cpuTime(RUSAGE_SELF), self0 = cpuTime(RUSAGE_THREAD);
    sample = wrk(ns, bound->port(), c);
    server_cpu = (cpuTime(RUSAGE_SELF) - process0) - (cpuTime(RUSAGE_THREAD) - self0);
  }
  if (*uring) {
    *features = (*uring)->features();
  }
  const int io_workers = ioWorkerThreads();
  responder->stop();
  thread.join();
  if (!served) {
    return std::unexpected(served.error());
  }
  if (!checked) {
    return std::unexpected(checked.error());
  }
  if (!sample) {
    return sample;
  }
  sample->io_workers = io_workers;
  const double server_seconds = server_cpu.user + server_cpu.system;
  sample->cpu_us_per_request = server_seconds * 1e6 / (sample->rps * kDurationSeconds);
  sample->cpu_utilisation = server_seconds / kDurationSeconds;
  sample->kernel_share = server_seconds > 0 ? server_cpu.system / server_seconds : 0;
  return sample;
}

std::string spread(const std::vector<double>& v, const char* format) {
  char buf[96];
  std::snprintf(buf, sizeof buf, format, minOf(v), maxOf(v));
  return buf;
}

// Adds a case from paired rounds. The machine's speed drifts between rounds (up to 2x here),
// so the figures are the two of the round whose io_uring/epoll ratio is the median: both
// measured back to back, and their ratio is the median ratio.
void addPaired(BenchReport& report, const std::string& name, const std::string& metric,
               const std::string& unit, bool lower_is_better, const std::vector<double>& ours,
               const std::vector<double>& base, const std::string& note) {
  std::vector<double> ratios;
  for (size_t i = 0; i < ours.size(); i++) {
    ratios.push_back(ours[i] / base[i]);
  }
  const double mid = median(ratios);
  size_t pick = 0;
  for (size_t i = 0; i < ratios.size(); i++) {
    pick = std::abs(ratios[i] - mid) < std::abs(ratios[pick] - mid) ? i : pick;
  }
  char medians[160];
  std::snprintf(medians, sizeof medians,
                "round with the median ratio of %zu (ratios %.2f-%.2f); medians io_uring %.2f, "
                "epoll %.2f; ",
                ratios.size(), minOf(ratios), maxOf(ratios), median(ours), median(base));
  report.add({name, metric, unit, ours[pick], base[pick], "epoll (proxy EventLoop)",
              lower_is_better, medians + note});
}

int run(int argc, char** argv) {
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;  // 1000 connections on each side, wrk inherits it
  setrlimit(RLIMIT_NOFILE, &nofile);
  auto ns = NetNs::create("evbench");
  if (!ns) {
    std::fprintf(stderr, "setup: %s\n", ns.error().message.c_str());
    return 1;
  }
  const std::vector<Case> cases = {{"keepalive_50c", 50, false},
                                   {"keepalive_1000c", 1000, false},
                                   {"new_connection_per_request_50c", 50, true}};
  struct Series {
    std::vector<double> rps, cpu_us, utilisation, kernel_share;
    uint64_t errors = 0;
    int io_workers = 0;
  };
  std::map<std::string, std::map<Server, Series>> results;
  UringFeatures features;
  for (int round = 0; round < kRounds; round++) {
    // A B in even rounds, B A in odd ones: a drift in the machine's speed hits both alike.
    const std::vector<Server> order = round % 2 == 0 ? std::vector{Server::kEpoll, Server::kUring}
                                                     : std::vector{Server::kUring, Server::kEpoll};
    for (const Case& c : cases) {
      for (Server server : order) {
        auto s = measure(*ns, server, c, &features);
        const char* name = server == Server::kEpoll ? "epoll" : "io_uring";
        if (!s) {
          std::fprintf(stderr, "%s %s: %s\n", name, c.name.c_str(), s.error().message.c_str());
          return 1;
        }
        std::fprintf(stderr,
                     "round %d %-32s %-8s %9.0f req/s %6.2f us/req cpu %.2f (kernel %.2f)\n", round,
                     c.name.c_str(), name, s->rps, s->cpu_us_per_request, s->cpu_utilisation,
                     s->kernel_share);
        Series& series = results[c.name][server];
        series.rps.push_back(s->rps);
        series.cpu_us.push_back(s->cpu_us_per_request);
        series.utilisation.push_back(s->cpu_utilisation);
        series.kernel_share.push_back(s->kernel_share);
        series.errors += s->errors;
        series.io_workers = std::max(series.io_workers, s->io_workers);
      }
    }
  }

  utsname host{};
  ::uname(&host);
  const std::string uring_used =
      "io_uring setup " + features.setup + (features.multishot_accept ? ", multishot accept" : "") +
      (features.multishot_recv ? ", multishot recv" : ", recv") + " with a provided-buffer ring" +
      (features.registered_ring_fd ? ", registered ring fd" : "") + "; kernel " + host.release;
  std::printf("%s\n", uring_used.c_str());
  BenchReport report("event_loop");
  for (const Case& c : cases) {
    const Series& ours = results[c.name][Server::kUring];
    const Series& base = results[c.name][Server::kEpoll];
    addPaired(report, "io_uring_" + c.name, "requests_per_second", "req/s", false, ours.rps,
              base.rps,
              "wrk errors " + std::to_string(ours.errors) + " / " + std::to_string(base.errors));
    addPaired(report, "io_uring_" + c.name + "_cpu", "server_cpu_per_request", "us", true,
              ours.cpu_us, base.cpu_us,
              "server CPU busy " + spread(ours.utilisation, "%.2f-%.2f") + " / " +
                  spread(base.utilisation, "%.2f-%.2f") + ", in the kernel " +
                  spread(ours.kernel_share, "%.2f-%.2f") + " / " +
                  spread(base.kernel_share, "%.2f-%.2f") + "; iou-wrk threads " +
                  std::to_string(ours.io_workers));
  }
  return report.finish(argc, argv);
}

}  // namespace
}  // namespace meshgate::test

int main(int argc, char** argv) { return meshgate::test::run(argc, argv); }
