// meshgate-proxy keeps its buffers bounded when one side is slower than the other, in the
// paths that had no such test: an HTTP/2 client that stops reading a large response from an
// HTTP/1.1 origin, an HTTP/1.1 upload to an HTTP/1.1 upstream that stops reading, and a TCP
// listener in both directions; and an upstream's chunked response, with its trailers,
// reaches HTTP/1.1 and HTTP/2 clients byte-exact.
//
// How much the proxy holds is measured from the kernel's own counts on the proxy's two
// sockets (ss -ti): what it read from the fast side (bytes_received less its receive queue)
// less what it wrote to the slow side (bytes_acked plus its send queue). That is what sits
// in the proxy's buffers, the sockets' queues excluded.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <thread>

#include "tests/lib/proxy_fixture.h"

namespace meshgate::test {
namespace {

using nlohmann::json;
using std::chrono::seconds;

const std::string kPython = "/usr/bin/python3";  // Debian's, with python3-h2

// The per-connection buffer every test configures (limits.buffer_bytes).
constexpr uint64_t kBuffer = 65536;
// What the proxy may hold for one stalled connection, measured as above. The side being
// read fills an input buffer up to its read limit (kBuffer) and at most one read (16 KiB)
// past it; the buffer for the slow side stops that reading once it holds kBuffer, but takes
// the whole input that crossed the limit first (up to kBuffer + 16 KiB more). For an HTTP/2
// client of an HTTP/1.1 upstream that second buffer is the stream's response body waiting
// for the client's window, which H1Upstream stops filling at kBuffer unconsumed bytes, and
// nghttp2 frames no more than the client's 16 KiB window. About 3 x kBuffer at worst;
// 4 x kBuffer leaves a buffer of slack. A proxy without backpressure holds the whole
// transfer (tens of MiB).
constexpr uint64_t kHeldBound = 4 * kBuffer;
// Resident memory the proxy may gain while a transfer is stalled (KiB): the buffers above,
// allocator and sanitizer overhead; far below the size of any transfer here.
constexpr uint64_t kRssGrowthKib = 8192;

std::string endpoint(uint16_t port) {
  return R"({"address": "127.0.0.1", "port": )" + std::to_string(port) + "}";
}

std::string limits(uint64_t buffer) {
  return R"(, "limits": {"buffer_bytes": )" + std::to_string(buffer) + "}";
}

// Listener "web" (HTTP/1.1 and h2c) routing everything to the HTTP/1.1 cluster "be".
std::string httpConfig(uint16_t be, uint64_t buffer = kBuffer) {
  return R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "routes": [{"cluster": "be"}]}],
             "clusters": [{"name": "be", "endpoints": [)" +
         endpoint(be) + R"(]}], "admin": {"address": "127.0.0.1", "port": 0})" + limits(buffer) +
         "}";
}

// Listener "web" of protocol tcp, piping to cluster "be".
std::string tcpConfig(uint16_t be) {
  return R"({"listeners": [{"name": "web", "address": "127.0.0.1", "port": 0, "protocol": "tcp", "cluster": "be"}],
             "clusters": [{"name": "be", "endpoints": [)" +
         endpoint(be) + R"(]}], "admin": {"address": "127.0.0.1", "port": 0})" + limits(kBuffer) +
         "}";
}

// Byte i of every generated body: its period is 2 MiB (kPatternPeriod), longer than any
// buffer, frame or chunk, so a byte delivered twice or out of place shows.
char patternByte(uint64_t i) {
  return static_cast<char>((i * 7 + (i >> 13)) % 256);
}
constexpr size_t kPatternPeriod = size_t{256} << 13;

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) {
    s[i] = patternByte(i);
  }
  return s;
}

std::string sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; i++) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

// The first index at which `got` differs from pattern() (or got.size() when it is a prefix).
size_t firstPatternMismatch(std::string_view got) {
  for (size_t i = 0; i < got.size(); i++) {
    if (got[i] != patternByte(i)) {
      return i;
    }
  }
  return got.size();
}

// One established TCP socket as ss -ti reports it (or the sum of several).
struct TcpSocket {
  std::string local, peer;  // "127.0.0.1:port"
  uint64_t recvq = 0;       // received, not yet read by the owner
  uint64_t sendq = 0;       // written by the owner, not yet acknowledged by the peer
  uint64_t bytes_received = 0;
  uint64_t bytes_acked = 0;  // counts the SYN too: one byte more than the owner wrote
  uint64_t readByOwner() const { return bytes_received - std::min(bytes_received, recvq); }
  uint64_t writtenByOwner() const { return bytes_acked + sendq; }
  bool localPort(uint16_t p) const { return local.ends_with(":" + std::to_string(p)); }
  bool peerPort(uint16_t p) const { return peer.ends_with(":" + std::to_string(p)); }
  void add(const TcpSocket& o) {
    local = o.local;
    peer = o.peer;
    recvq += o.recvq;
    sendq += o.sendq;
    bytes_received += o.bytes_received;
    bytes_acked += o.bytes_acked;
  }
};

// Every connected socket of `ns` with `port` at either end (also those past a FIN, whose
// counts still say what went through).
std::vector<TcpSocket> tcpSockets(const NetNs& ns, uint16_t port) {
  const std::string p = ":" + std::to_string(port);
  auto out =
      ns.run({"ss", "-tinH", "state", "connected", "( sport = " + p + " or dport = " + p + " )"});
  std::vector<TcpSocket> sockets;
  std::istringstream lines(out ? *out : "");
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) {
      continue;
    }
    std::istringstream words(line);
    if (!std::isspace(static_cast<unsigned char>(line[0]))) {
      TcpSocket s;
      std::string state;  // ss prints the state first when more than one is asked for
      words >> state >> s.recvq >> s.sendq >> s.local >> s.peer;
      sockets.push_back(s);
      continue;
    }
    std::string word;  // the indented line of TCP_INFO under its socket
    while (!sockets.empty() && words >> word) {
      if (word.starts_with("bytes_received:")) {
        sockets.back().bytes_received = std::stoull(word.substr(15));
      } else if (word.starts_with("bytes_acked:")) {
        sockets.back().bytes_acked = std::stoull(word.substr(12));
      }
    }
  }
  return sockets;
}

// One leg of a proxied connection, named by its port that is not the proxy's ephemeral
// one: the proxy's listener (the proxy's socket has it as local port) or an upstream's
// (the proxy's socket has it as peer port).
struct Leg {
  uint16_t port;
  bool proxy_listens;
};

// What the kernel says about a leg: the proxy's socket and the socket at the other end.
struct LegState {
  TcpSocket proxy, other;
  std::string text;  // every socket, for failure messages
};

LegState look(const NetNs& ns, const Leg& leg) {
  LegState st;
  for (const auto& s : tcpSockets(ns, leg.port)) {
    const bool proxy_side = leg.proxy_listens ? s.localPort(leg.port) : s.peerPort(leg.port);
    (proxy_side ? st.proxy : st.other).add(s);
    st.text += s.local + " -> " + s.peer + ": recvq " + std::to_string(s.recvq) + ", sendq " +
               std::to_string(s.sendq) + ", received " + std::to_string(s.bytes_received) +
               ", acked " + std::to_string(s.bytes_acked) + "\n";
  }
  return st;
}

// Waits until a transfer through the proxy has stalled on the leg the fast side writes
// into: what the proxy read there has not moved between two looks and the fast side's
// send queue holds over a megabyte; or the proxy has read `total` (no backpressure at all:
// the caller's bounds then fail with the figures). Returns the last look.
Result<LegState> waitForStall(const NetNs& ns, const Leg& fast, uint64_t total) {
  LegState st;
  uint64_t last = UINT64_MAX;
  auto stalled = waitFor(
      [&] {
        st = look(ns, fast);
        const uint64_t read = st.proxy.readByOwner();
        const bool still = read == std::exchange(last, read);
        return still && (st.other.sendq > (1u << 20) || read >= total);
      },
      seconds(20), "the proxy to stop reading the side on port " + std::to_string(fast.port));
  if (!stalled) {
    return fail(stalled.error().message + "\n" + st.text);
  }
  return st;
}

// A one-shot gate that backend handler threads wait on until the test opens it. Copies
// share it. Open it on every path out of a test (GateOpener), or a handler thread waits for
// ever and the backend's destructor with it.
class Gate {
 public:
  void wait() const {
    std::unique_lock lock(s_->mu);
    s_->cv.wait(lock, [&] { return s_->open; });
  }
  void open() const {
    std::lock_guard lock(s_->mu);
    s_->open = true;
    s_->cv.notify_all();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
  };
  std::shared_ptr<State> s_ = std::make_shared<State>();
};

struct GateOpener {
  Gate gate;
  ~GateOpener() { gate.open(); }
};

// Closes a client socket on every path out of a test.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

// Sends `total` pattern bytes on blocking `fd` from a thread, counting what the kernel took.
// Destroyed before it is done (a failed assertion, a proxy that never reads on), it shuts
// the socket down first, which ends a blocked send().
class PatternSender {
 public:
  PatternSender(int fd, uint64_t total) : fd_(fd), total_(total) {
    thread_ = std::thread([this, fd] {
      const std::string block = pattern(kPatternPeriod);
      while (sent_ < total_) {
        // 64 KiB at a time: sent() lags the kernel's count by at most that much.
        const uint64_t at = sent_ % block.size();
        const size_t n = static_cast<size_t>(
            std::min<uint64_t>({block.size() - at, total_ - sent_, uint64_t{65536}}));
        const ssize_t w = ::send(fd, block.data() + at, n, MSG_NOSIGNAL);
        if (w <= 0) {
          break;
        }
        sent_ += static_cast<uint64_t>(w);
      }
      done_ = true;
    });
  }
  ~PatternSender() {
    if (!done_) {
      ::shutdown(fd_, SHUT_RDWR);
    }
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  // Waits until the sender has stopped (all sent, or the socket failed), at most `deadline`.
  Result<void> finishWithin(std::chrono::milliseconds deadline) {
    auto r = waitFor([this] { return done_.load(); }, deadline, "the client to send everything");
    if (r && thread_.joinable()) {
      thread_.join();
    }
    return r;
  }
  uint64_t sent() const { return sent_.load(); }

 private:
  int fd_;
  uint64_t total_;
  std::atomic<uint64_t> sent_{0};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

class ProxyBackpressureTest : public ProxyFixture {
 protected:
  pid_t proxyPid() { return proxy_->process().pid(); }
  uint16_t webPort() { return proxy_->port("web"); }
};

// An HTTP/2 client with a 16 KiB stream window that it never opens further: the proxy
// frames 16 KiB for it, then must stop reading the 64 MiB response from nginx (HTTP/1.1)
// instead of buffering it. Then the client opens its windows and gets every byte.
TEST_F(ProxyBackpressureTest, AStalledHttp2ClientMakesTheProxyStopReadingItsHttp1Upstream) {
  constexpr uint64_t kFile = uint64_t{64} << 20;
  startProxy(httpConfig(nginx_->port()));
  const uint64_t rss_before = rssKib(proxyPid());
  auto probe = ns_->spawn(
      {kPython, sourceFile("tests/integration/h2/h2_probe.py"), "stall-get", "--port",
       std::to_string(webPort()), "--path", "/file64m", "--window", "16384", "--deadline", "40"},
      {.capture_output = true});
  ASSERT_TRUE(probe) << probe.error().message;
  auto line = (*probe)->readLine(seconds(20));
  ASSERT_TRUE(line) << line.error().message;
  ASSERT_TRUE(line->starts_with("STALLED ")) << *line;
  const uint64_t stalled = std::stoull(line->substr(8));
  EXPECT_EQ(stalled, 16384u) << "the client got exactly its stream window";

  auto st = waitForStall(*ns_, Leg{nginx_->port(), false}, kFile);
  const uint64_t rss_stalled = rssKib(proxyPid());
  ASSERT_TRUE(st) << st.error().message;
  // All the proxy read from nginx, less the body the client got: the response head (~250
  // bytes) counts as held too.
  const uint64_t read = st->proxy.readByOwner();
  const uint64_t held = read - std::min(read, stalled);
  EXPECT_LT(held, kHeldBound) << "bytes of response the proxy read from nginx and holds (read "
                              << read << ", " << stalled << " went to the client)\n"
                              << st->text;
  EXPECT_LT(rss_stalled, rss_before + kRssGrowthKib)
      << "KiB of resident memory; before the request: " << rss_before;
  std::cout << "[ measured ] HTTP/2 download stalled: the proxy read " << read
            << " from nginx and holds " << held << " (kernel queues: " << st->proxy.recvq
            << " to the proxy, " << st->other.sendq << " in nginx's socket); RSS " << rss_before
            << " -> " << rss_stalled << " KiB\n";

  // The client reads on: the whole file arrives, exact.
  auto sha = runCommand({"sha256sum", nginx_->root() + "/file64m"});
  ASSERT_TRUE(sha) << sha.error().message;
  ASSERT_TRUE((*probe)->kill(SIGUSR1)) << "the probe is gone";
  auto report = (*probe)->readLine(seconds(40));
  ASSERT_TRUE(report) << report.error().message;
  const json j = json::parse(*report, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << *report;
  EXPECT_EQ(j["resumed"], true) << j.dump();
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(j["body_bytes"], kFile) << j.dump();
  EXPECT_EQ(j["body_sha256"], sha->substr(0, 64)) << "the body is nginx's file, byte-exact";
  EXPECT_FALSE(j["flow_control_violation"].get<bool>()) << j.dump();
  EXPECT_TRUE(j["reset"].is_null()) << j.dump();
}

// An HTTP/1.1 upload (Content-Length, 32 MiB) to an HTTP/1.1 upstream that reads the head
// and then nothing: the proxy must stop reading the client once a buffer waits for the
// upstream. Then the upstream reads on, and gets every byte of the body once.
TEST_F(ProxyBackpressureTest, AnUploadToAStalledHttp1UpstreamStopsReadingTheClient) {
  constexpr uint64_t kUpload = uint64_t{32} << 20;
  Gate gate;
  RecordingServer& be = backend([gate](int fd, RecordingServer& self) {
    std::string got;
    char buf[65536];
    while (got.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, 4096, 0);
      if (n <= 0) {
        return;
      }
      got.append(buf, static_cast<size_t>(n));
      self.record(std::string_view(buf, static_cast<size_t>(n)));
    }
    gate.wait();  // a stalled upstream: reads nothing more until the test says
    uint64_t body = got.size() - got.find("\r\n\r\n") - 4;
    while (body < kUpload) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return;
      }
      body += static_cast<uint64_t>(n);
      self.record(std::string_view(buf, static_cast<size_t>(n)));
    }
    if (!writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")) {
      return;
    }
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  startProxy(httpConfig(be.port()));
  const uint64_t rss_before = rssKib(proxyPid());
  auto client = connectLoopback(*ns_, webPort());
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  FdCloser close_fd{fd};
  const std::string head =
      "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kUpload) + "\r\n\r\n";
  ASSERT_TRUE(writeAll(fd, head));
  PatternSender sender(fd, kUpload);
  GateOpener open_on_exit{gate};  // before the sender is joined: it may wait on the backend

  auto front = waitForStall(*ns_, Leg{webPort(), true}, head.size() + kUpload);
  const LegState back = look(*ns_, Leg{be.port(), false});
  const uint64_t rss_stalled = rssKib(proxyPid());
  const uint64_t sent = sender.sent();
  ASSERT_TRUE(front) << front.error().message;
  const std::string got_head = be.received();
  ASSERT_NE(got_head.find("\r\n\r\n"), std::string::npos) << "the backend has the head";
  const uint64_t up_head = got_head.find("\r\n\r\n") + 4;
  const uint64_t taken =
      front->proxy.readByOwner() - std::min<uint64_t>(front->proxy.readByOwner(), head.size());
  const uint64_t written =
      back.proxy.writtenByOwner() - std::min(back.proxy.writtenByOwner(), up_head);
  const uint64_t held = taken - std::min(taken, written);
  EXPECT_LT(held, kHeldBound) << "body bytes the proxy read from the client and holds (" << taken
                              << " taken, " << written << " written to the backend)\n"
                              << front->text << back.text;
  EXPECT_LT(sent, kUpload) << "the client could send everything: the proxy kept reading";
  EXPECT_LT(rss_stalled, rss_before + kRssGrowthKib)
      << "KiB of resident memory; before the upload: " << rss_before;
  std::cout << "[ measured ] HTTP/1.1 upload stalled: the client sent " << sent << " (its queue "
            << front->other.sendq << "), the proxy took " << taken << " of body and wrote "
            << written
            << " to the backend (kernel queues to it: " << back.proxy.sendq + back.other.recvq
            << "): it holds " << held << "; RSS " << rss_before << " -> " << rss_stalled
            << " KiB\n";

  // The backend reads on: the whole body arrives once, exact, and is answered.
  gate.open();
  auto finished = sender.finishWithin(std::chrono::seconds(60));
  ASSERT_TRUE(finished) << finished.error().message;
  EXPECT_EQ(sender.sent(), kUpload) << "the client sent the whole upload";
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string response;
  char buf[4096];
  while (!response.ends_with("\r\n\r\nok")) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    response.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(statusOf(response), 200) << response;
  const std::string got = be.received();
  EXPECT_TRUE(got.starts_with("PUT /up HTTP/1.1\r\n")) << got.substr(0, 300);
  EXPECT_NE(got.substr(0, up_head).find("content-length: " + std::to_string(kUpload)),
            std::string::npos)
      << got.substr(0, up_head);
  const std::string_view body = std::string_view(got).substr(up_head);
  EXPECT_EQ(body.size(), kUpload) << "body bytes the backend got (each once)";
  EXPECT_EQ(firstPatternMismatch(body), body.size()) << "the body differs from the upload there";
}

// A TCP listener, client to upstream: an upstream that reads nothing makes the proxy stop
// reading the client. Then it reads on, and gets the stream exact, with the FIN after it.
TEST_F(ProxyBackpressureTest, ATcpUpstreamThatStopsReadingStopsTheProxyReadingTheClient) {
  constexpr uint64_t kStream = uint64_t{32} << 20;
  Gate gate;
  RecordingServer& be = backend([gate](int fd, RecordingServer& self) {
    gate.wait();
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
      self.record(std::string_view(buf, static_cast<size_t>(n)));
    }
  });
  startProxy(tcpConfig(be.port()));
  const uint64_t rss_before = rssKib(proxyPid());
  auto client = connectLoopback(*ns_, webPort());
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  FdCloser close_fd{fd};
  PatternSender sender(fd, kStream);
  GateOpener open_on_exit{gate};  // before the sender is joined: it may wait on the backend

  auto front = waitForStall(*ns_, Leg{webPort(), true}, kStream);
  const LegState back = look(*ns_, Leg{be.port(), false});
  const uint64_t rss_stalled = rssKib(proxyPid());
  const uint64_t sent = sender.sent();
  ASSERT_TRUE(front) << front.error().message;
  const uint64_t taken = front->proxy.readByOwner(), written = back.proxy.writtenByOwner();
  const uint64_t held = taken - std::min(taken, written);
  EXPECT_LT(held, kHeldBound) << "bytes the proxy read from the client and holds (" << taken
                              << " taken, " << written << " written)\n"
                              << front->text << back.text;
  EXPECT_LT(sent, kStream) << "the client could send everything: the proxy kept reading";
  EXPECT_LT(rss_stalled, rss_before + kRssGrowthKib)
      << "KiB of resident memory; before the stream: " << rss_before;
  std::cout << "[ measured ] TCP client->upstream stalled: the client sent " << sent
            << ", the proxy took " << taken << " and wrote " << written << ": it holds " << held
            << "; RSS " << rss_before << " -> " << rss_stalled << " KiB\n";

  gate.open();
  auto finished = sender.finishWithin(std::chrono::seconds(60));
  ASSERT_TRUE(finished) << finished.error().message;
  EXPECT_EQ(sender.sent(), kStream);
  ::shutdown(fd, SHUT_WR);  // the backend's read loop ends on the FIN the proxy passes on
  auto all = waitFor([&] { return be.received().size() >= kStream; }, seconds(20),
                     "the backend to receive the whole stream");
  EXPECT_TRUE(all) << all.error().message << " (got " << be.received().size() << ")";
  const std::string got = be.received();
  EXPECT_EQ(got.size(), kStream);
  EXPECT_EQ(firstPatternMismatch(got), got.size()) << "the stream differs there";
  // The backend closed after our FIN: the proxy passes its FIN back.
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << "EOF from the proxy after the backend closed";
}

// A TCP listener, upstream to client: a client that reads nothing (small receive buffer)
// makes the proxy stop reading the upstream. Then it reads on and gets the stream exact.
TEST_F(ProxyBackpressureTest, ATcpClientThatStopsReadingStopsTheProxyReadingTheUpstream) {
  constexpr uint64_t kStream = uint64_t{32} << 20;
  auto backend_sent = std::make_shared<std::atomic<uint64_t>>(0);
  RecordingServer& be = backend([backend_sent](int fd, RecordingServer&) {
    const std::string block = pattern(kPatternPeriod);
    while (*backend_sent < kStream) {
      const size_t at = *backend_sent % block.size();
      const ssize_t n =
          ::send(fd, block.data() + at, std::min<size_t>(block.size() - at, 65536), MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      *backend_sent += static_cast<uint64_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    char buf[4096];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  startProxy(tcpConfig(be.port()));
  const uint64_t rss_before = rssKib(proxyPid());
  auto client = connectLoopback(*ns_, webPort(), /*rcvbuf=*/4096);
  ASSERT_TRUE(client) << client.error().message;
  const int fd = *client;
  FdCloser close_fd{fd};

  auto back = waitForStall(*ns_, Leg{be.port(), false}, kStream);
  const LegState front = look(*ns_, Leg{webPort(), true});
  const uint64_t rss_stalled = rssKib(proxyPid());
  const uint64_t sent = backend_sent->load();
  ASSERT_TRUE(back) << back.error().message;
  const uint64_t taken = back->proxy.readByOwner(), written = front.proxy.writtenByOwner();
  const uint64_t held = taken - std::min(taken, written);
  EXPECT_LT(held, kHeldBound) << "bytes the proxy read from the backend and holds (" << taken
                              << " taken, " << written << " written)\n"
                              << front.text << back->text;
  EXPECT_LT(sent, kStream) << "the backend could send everything: the proxy kept reading";
  EXPECT_LT(rss_stalled, rss_before + kRssGrowthKib)
      << "KiB of resident memory; before the stream: " << rss_before;
  std::cout << "[ measured ] TCP upstream->client stalled: the backend sent " << sent
            << ", the proxy took " << taken << " and wrote " << written << ": it holds " << held
            << "; RSS " << rss_before << " -> " << rss_stalled << " KiB\n";

  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  got.reserve(kStream);
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(n, 0) << "EOF after the stream (not a timeout or a reset): " << std::strerror(errno);
  EXPECT_EQ(got.size(), kStream);
  EXPECT_EQ(firstPatternMismatch(got), got.size()) << "the stream differs there";
}

// An upstream response with Transfer-Encoding: chunked: chunks of several sizes (one much
// larger than the buffer, so it crosses backpressure mid-chunk), a chunk extension, an
// upper-case size, and a trailer section. Returns the raw response; `payload` and `trailers`
// get what a client must see.
std::string chunkedResponse(std::string& payload,
                            std::vector<std::pair<std::string, std::string>>& trailers) {
  const std::vector<size_t> sizes = {1, 15, 4096, 100000, 70001, 3};
  payload = pattern(std::accumulate(sizes.begin(), sizes.end(), size_t{0}));
  trailers = {{"x-checksum", sha256Hex(payload)}, {"x-parts", std::to_string(sizes.size())}};
  std::string r =
      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n"
      "Trailer: x-checksum, x-parts\r\n\r\n";
  size_t at = 0;
  for (size_t i = 0; i < sizes.size(); i++) {
    char hex[32];
    std::snprintf(hex, sizeof hex, i == 3 ? "%zX" : "%zx", sizes[i]);
    r += hex;
    r += i == 2 ? ";name=value\r\n" : "\r\n";
    r.append(payload, at, sizes[i]);
    r += "\r\n";
    at += sizes[i];
  }
  r += "0\r\n";
  for (const auto& [name, value] : trailers) {
    r += name + ": " + value + "\r\n";
  }
  // Hop-by-hop and framing fields have no place in a trailer section: never forwarded.
  return r + "Keep-Alive: timeout=5\r\nContent-Length: 9\r\n\r\n";
}

// An HTTP/1.1 client gets the body re-chunked (the proxy's own chunk sizes, no extensions)
// and the upstream's trailer fields after the last chunk.
TEST_F(ProxyBackpressureTest, AChunkedUpstreamResponseReachesAnHttp1ClientExactWithItsTrailers) {
  std::string payload;
  std::vector<std::pair<std::string, std::string>> trailers;
  RecordingServer& be = backend(RecordingServer::respond(chunkedResponse(payload, trailers)));
  startProxy(httpConfig(be.port(), /*buffer=*/16384));
  auto r =
      rawExchange(*ns_, webPort(), "GET /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(statusOf(*r), 200) << r->substr(0, 300);
  const size_t head_end = r->find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << r->substr(0, 300);
  const std::string head = r->substr(0, head_end + 2);
  EXPECT_NE(head.find("transfer-encoding: chunked\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.find("content-length"), std::string::npos) << head;
  EXPECT_NE(head.find("Trailer: x-checksum, x-parts\r\n"), std::string::npos)
      << "the announcement of the trailer fields, end to end: " << head;
  const Dechunked got = dechunk(std::string_view(*r).substr(head_end + 4));
  EXPECT_EQ(got.body.size(), payload.size()) << "payload bytes after dechunking";
  EXPECT_TRUE(got.body == payload)
      << "the payload differs at byte " << firstPatternMismatch(got.body);
  std::string want_trailers;
  for (const auto& [name, value] : trailers) {
    want_trailers += name + ": " + value + "\r\n";
  }
  EXPECT_EQ(got.trailers, want_trailers + "\r\n") << "the trailer section, after the last chunk";
}

// An HTTP/1.0 client has no chunked coding: it gets the payload delimited by the close, and
// no trailer section, so the head announces none.
TEST_F(ProxyBackpressureTest, AChunkedUpstreamResponseReachesAnHttp10ClientWithoutTrailers) {
  std::string payload;
  std::vector<std::pair<std::string, std::string>> trailers;
  RecordingServer& be = backend(RecordingServer::respond(chunkedResponse(payload, trailers)));
  startProxy(httpConfig(be.port(), /*buffer=*/16384));
  auto r = rawExchange(*ns_, webPort(), "GET /chunked HTTP/1.0\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(statusOf(*r), 200) << r->substr(0, 300);
  const size_t head_end = r->find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos) << r->substr(0, 300);
  std::string head = r->substr(0, head_end + 2);
  for (char& c : head) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  EXPECT_EQ(head.find("\r\ntrailer:"), std::string::npos) << "no trailer section follows: " << head;
  EXPECT_EQ(head.find("transfer-encoding"), std::string::npos) << head;
  const std::string body = r->substr(head_end + 4);
  EXPECT_EQ(body.size(), payload.size()) << "the payload, delimited by the close";
  EXPECT_TRUE(body == payload) << "the payload differs at byte " << firstPatternMismatch(body);
}

// An HTTP/2 client gets the payload in DATA frames and the trailer fields as a trailing
// HEADERS frame.
TEST_F(ProxyBackpressureTest, AChunkedUpstreamResponseReachesAnHttp2ClientExactWithItsTrailers) {
  std::string payload;
  std::vector<std::pair<std::string, std::string>> trailers;
  RecordingServer& be = backend(RecordingServer::respond(chunkedResponse(payload, trailers)));
  startProxy(httpConfig(be.port(), /*buffer=*/16384));
  auto out = ns_->run({kPython, sourceFile("tests/integration/h2/h2_probe.py"), "get", "--port",
                       std::to_string(webPort()), "--path", "/chunked", "--window", "16384"},
                      seconds(30));
  ASSERT_TRUE(out) << out.error().message;
  const json j = json::parse(*out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << *out;
  EXPECT_EQ(j["status"], 200) << j.dump();
  EXPECT_EQ(j["body_bytes"], payload.size()) << j.dump();
  EXPECT_EQ(j["body_sha256"], sha256Hex(payload)) << "the payload, byte-exact";
  EXPECT_FALSE(j["flow_control_violation"].get<bool>()) << j.dump();
  EXPECT_TRUE(j["reset"].is_null()) << j.dump();
  json want = json::array();
  for (const auto& [name, value] : trailers) {
    want.push_back(json::array({name, value}));
  }
  EXPECT_EQ(j["trailers"], want) << "the upstream's trailers, as HTTP/2 trailers";
  bool announced = false;
  for (const auto& field : j["headers"]) {
    EXPECT_NE(field[0], "transfer-encoding") << "connection-specific in HTTP/2: " << j.dump();
    announced |= field == json::array({"trailer", "x-checksum, x-parts"});
  }
  EXPECT_TRUE(announced) << "Trailer is end to end, allowed in HTTP/2: " << j.dump();
}

}  // namespace
}  // namespace meshgate::test
