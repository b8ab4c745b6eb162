// Test support for meshgate-proxy: the real binary started in a namespace, an nginx origin
// started by the test, a recording backend that keeps exactly the bytes it received, and
// raw client exchanges. Everything lives in a namespace of the test's own (127.0.0.1 there).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "meshgate/result.h"
#include "tests/lib/netns.h"
#include "tests/lib/process.h"

namespace meshgate::test {

// A scratch directory removed with its contents on destruction.
class TempDir {
 public:
  static Result<TempDir> create(const std::string& tag);
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

// nginx from Debian serving, on 127.0.0.1:port of `ns`: /small (100 bytes), /big (16 KiB),
// /file64m (64 MiB of a pattern), /echo (method and URI) with keep-alive.
class NginxOrigin {
 public:
  static Result<std::unique_ptr<NginxOrigin>> start(NetNs& ns, const std::string& dir,
                                                    uint16_t port);
  uint16_t port() const { return port_; }
  const std::string& root() const { return root_; }

 private:
  uint16_t port_ = 0;
  std::string root_;
};

// meshgate-proxy running `config` (JSON text) in `ns`; stderr is read until it has started.
class ProxyProcess {
 public:
  static Result<std::unique_ptr<ProxyProcess>> start(NetNs& ns, const std::string& dir,
                                                     const std::string& config);
  ~ProxyProcess();
  // The port of the listener named `name` (the proxy logs each one at start).
  uint16_t port(const std::string& name) const { return ports_.at(name); }
  uint16_t adminPort() const { return admin_port_; }
  // Rewrites the config file and sends SIGHUP; returns the proxy's log line about it.
  Result<std::string> reload(const std::string& config);
  // GET /metrics from the admin endpoint, as name -> value.
  Result<std::map<std::string, uint64_t>> metrics() const;
  Subprocess& process() { return proc_; }
  // SIGTERM, then waits: an error (with the proxy's last output) unless it exits 0. Under
  // the sanitizer build, a memory error or a leak found at exit makes it exit non-zero.
  Result<void> stop();

 private:
  ProxyProcess(NetNs& ns, Subprocess p, std::string config_path)
      : ns_(ns), proc_(std::move(p)), config_path_(std::move(config_path)) {}
  NetNs& ns_;
  Subprocess proc_;
  std::string config_path_;
  std::map<std::string, uint16_t> ports_;
  uint16_t admin_port_ = 0;
};

// A TCP server on 127.0.0.1 of `ns` (port chosen by the kernel) that records every byte it
// receives. Each accepted connection is handled by `handler(fd, recorder)` on its own thread.
class RecordingServer {
 public:
  using Handler = std::function<void(int fd, RecordingServer& self)>;
  static Result<std::unique_ptr<RecordingServer>> start(const NetNs& ns, Handler handler);
  ~RecordingServer();
  uint16_t port() const { return port_; }
  void record(std::string_view bytes);
  std::string received() const;
  int connections() const { return connections_.load(); }

  // Handlers. Each reads one request head (until CRLFCRLF) first.
  static Handler respond(std::string response);  // then writes `response`, keeps reading
  static Handler echo();                         // echoes everything until EOF, then closes
  static Handler silent();                       // reads, never answers
  // Reads a head; answers 101 (with `greeting`, the first tunnel bytes, in the same
  // write), then echoes raw bytes.
  static Handler upgradeEcho(std::string greeting = "");
  // The same for CONNECT: answers 200 (with `greeting`), then echoes raw bytes.
  static Handler connectEcho(std::string greeting = "");
  // Reads whole requests (a Content-Length body, a chunked body with its trailers, or none)
  // and answers each "200 ok" once it is complete.
  static Handler answerWholeRequests();

 private:
  RecordingServer() = default;
  void run();
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  uint16_t port_ = 0;
  Handler handler_;
  std::thread acceptor_;
  std::vector<std::thread> conns_;
  std::mutex mu_;
  std::string received_;
  std::atomic<int> connections_{0};
};

// For RecordingServer handlers: reads from `fd` until the end of a message head (CRLFCRLF),
// recording every byte in `self`; false on EOF or an error first.
bool readHead(int fd, RecordingServer& self);
// Writes all of `data` to blocking `fd`; false on an error.
bool writeAll(int fd, std::string_view data);

// Connects to 127.0.0.1:port in `ns`, sends `request`, optionally half-closes, and reads
// until the peer closes (or `deadline`). Returns everything read.
Result<std::string> rawExchange(const NetNs& ns, uint16_t port, const std::string& request,
                                bool half_close = false,
                                std::chrono::milliseconds deadline = std::chrono::seconds(10));

// A chunked message body (what follows the head): its payload and its trailer section
// (the bytes after the last chunk, ending in CRLF).
struct Dechunked {
  std::string body;
  std::string trailers;
};
Dechunked dechunk(std::string_view chunked);

// The status code of the first HTTP response in `bytes`, or 0.
int statusOf(const std::string& bytes);

// A blocking socket connected to 127.0.0.1:port inside `ns`, with SO_RCVBUF set first when
// rcvbuf > 0 (a client that reads slowly). The caller closes it.
Result<int> connectLoopback(const NetNs& ns, uint16_t port, int rcvbuf = 0);
// A port that nothing listens on in `ns` (bound and released; the namespace is the test's).
uint16_t freeLoopbackPort(const NetNs& ns);
// Resident memory of a process in KiB (VmRSS), 0 if unknown.
uint64_t rssKib(pid_t pid);

}  // namespace meshgate::test
