#include "tests/lib/proxy_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace meshgate::test {
namespace {

Result<int> connectIn(const NetNs& ns, uint16_t port, int rcvbuf = 0) {
  auto in = ns.enter();
  if (!in) {
    return std::unexpected(in.error());
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return failErrno("socket", errno);
  }
  if (rcvbuf > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int err = errno;
    ::close(fd);
    return failErrno("connect 127.0.0.1:" + std::to_string(port), err);
  }
  return fd;
}

void drain(int fd, RecordingServer& self) {
  char buf[65536];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    self.record(std::string_view(buf, static_cast<size_t>(n)));
  }
}

}  // namespace

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool readHead(int fd, RecordingServer& self) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      return false;
    }
    head.append(buf, static_cast<size_t>(n));
    self.record(std::string_view(buf, static_cast<size_t>(n)));
  }
  return true;
}

Result<TempDir> TempDir::create(const std::string& tag) {
  std::string tmpl = "/tmp/meshgate-" + tag + "-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    return failErrno("mkdtemp", errno);
  }
  ::chmod(tmpl.c_str(), 0755);  // nginx workers run as nobody
  return TempDir(tmpl);
}

TempDir::~TempDir() {
  if (!path_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

Result<std::unique_ptr<NginxOrigin>> NginxOrigin::start(NetNs& ns, const std::string& dir,
                                                        uint16_t port) {
  auto o = std::unique_ptr<NginxOrigin>(new NginxOrigin());
  o->port_ = port;
  o->root_ = dir + "/www";
  std::filesystem::create_directories(o->root_);
  std::filesystem::create_directories(dir + "/tmp");
  if (auto r = writeTextFile(o->root_ + "/small", std::string(100, 'a')); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = writeTextFile(o->root_ + "/big", std::string(16384, 'b')); !r) {
    return std::unexpected(r.error());
  }
  std::string big;
  big.resize(64 << 20);
  for (size_t i = 0; i < big.size(); i++) {
    big[i] = static_cast<char>((i * 31 + (i >> 11)) % 251);
  }
  if (auto r = writeTextFile(o->root_ + "/file64m", big); !r) {
    return std::unexpected(r.error());
  }
  const std::string conf = dir + "/nginx.conf";
  const std::string text =
      // One process, no master: a test that stops it with SIGKILL leaves no orphan worker.
      "master_process off;\nworker_processes 1;\nerror_log " + dir + "/error.log;\npid " + dir +
      "/nginx.pid;\n" + "events { worker_connections 4096; }\nhttp {\n  access_log off;\n" +
      "  client_body_temp_path " + dir + "/tmp;\n  proxy_temp_path " + dir + "/tmp;\n" +
      "  fastcgi_temp_path " + dir + "/tmp;\n  uwsgi_temp_path " + dir + "/tmp;\n" +
      "  scgi_temp_path " + dir + "/tmp;\n  keepalive_requests 1000000;\n" +
      "  server {\n    listen 127.0.0.1:" + std::to_string(port) + ";\n    root " + o->root_ +
      ";\n    location = /echo { return 200 \"$request_method $request_uri\\n\"; }\n" +
      "    location / { }\n  }\n}\n";
  if (auto r = writeTextFile(conf, text); !r) {
    return std::unexpected(r.error());
  }
  auto p =
      ns.spawn({"nginx", "-c", conf, "-g", "daemon off;"}, {.output_path = dir + "/nginx.out"});
  if (!p) {
    return std::unexpected(p.error());
  }
  auto ready = waitFor(
      [&] {
        auto fd = connectIn(ns, port);
        if (fd) {
          ::close(*fd);
        }
        return fd.has_value();
      },
      std::chrono::seconds(10), "nginx listening on port " + std::to_string(port));
  if (!ready) {
    return std::unexpected(ready.error());
  }
  return o;
}

Result<std::unique_ptr<ProxyProcess>> ProxyProcess::start(NetNs& ns, const std::string& dir,
                                                          const std::string& config) {
  const std::string path = dir + "/proxy.json";
  if (auto r = writeTextFile(path, config); !r) {
    return std::unexpected(r.error());
  }
  auto p = Subprocess::spawn({builtBinary("meshgate-proxy"), "--config", path},
                             {.netns = ns.name(), .capture_output = true});
  if (!p) {
    return std::unexpected(p.error());
  }
  auto proxy = std::unique_ptr<ProxyProcess>(new ProxyProcess(ns, std::move(*p), path));
  for (;;) {
    auto line = proxy->proc_.readLine(std::chrono::seconds(10));
    if (!line) {
      return fail("meshgate-proxy did not start: " + line.error().message);
    }
    // "meshgate-proxy: listener 'web' on 127.0.0.1 port 8080" / "admin on ... port N"
    if (auto q = line->find("listener '"); q != std::string::npos) {
      const auto name_end = line->find('\'', q + 10);
      const std::string name = line->substr(q + 10, name_end - q - 10);
      proxy->ports_[name] = static_cast<uint16_t>(std::stoi(line->substr(line->rfind(' ') + 1)));
    } else if (line->find("admin on ") != std::string::npos) {
      proxy->admin_port_ = static_cast<uint16_t>(std::stoi(line->substr(line->rfind(' ') + 1)));
    } else if (line->find("started") != std::string::npos) {
      break;
    } else if (line->find("meshgate-proxy: ") == 0) {
      return fail("meshgate-proxy: " + *line);
    }
  }
  return proxy;
}

Result<void> ProxyProcess::stop() {
  if (!proc_.running()) {
    auto code = proc_.wait();
    auto out = proc_.readAll(std::chrono::seconds(5));
    return fail("meshgate-proxy had exited (status " + std::to_string(code ? *code : -1) +
                "): " + (out ? *out : ""));
  }
  if (auto r = proc_.kill(SIGTERM); !r) {
    return r;
  }
  auto code = proc_.wait(std::chrono::seconds(20));
  if (!code) {
    return std::unexpected(code.error());
  }
  if (*code != 0) {
    auto out = proc_.readAll(std::chrono::seconds(5));
    std::string text = out ? *out : out.error().message;
    if (text.size() > 6000) {
      text = "..." + text.substr(text.size() - 6000);
    }
    return fail("meshgate-proxy exited with status " + std::to_string(*code) + ":\n" + text);
  }
  return {};
}

ProxyProcess::~ProxyProcess() {
  if (proc_.running()) {
    (void)proc_.kill(SIGTERM);
    (void)proc_.wait(std::chrono::seconds(10));
  }
}

Result<std::string> ProxyProcess::reload(const std::string& config) {
  if (auto r = writeTextFile(config_path_, config); !r) {
    return std::unexpected(r.error());
  }
  if (auto r = proc_.kill(SIGHUP); !r) {
    return std::unexpected(r.error());
  }
  return proc_.readLine(std::chrono::seconds(10));
}

Result<std::map<std::string, uint64_t>> ProxyProcess::metrics() const {
  auto out = rawExchange(ns_, admin_port_, "GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n");
  if (!out) {
    return std::unexpected(out.error());
  }
  std::map<std::string, uint64_t> m;
  std::istringstream in(out->substr(out->find("\r\n\r\n") + 4));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    const auto sp = line.find(' ');
    m[line.substr(0, sp)] = std::stoull(line.substr(sp + 1));
  }
  return m;
}

Result<std::unique_ptr<RecordingServer>> RecordingServer::start(const NetNs& ns, Handler handler) {
  auto s = std::unique_ptr<RecordingServer>(new RecordingServer());
  s->handler_ = std::move(handler);
  {
    auto in = ns.enter();
    if (!in) {
      return std::unexpected(in.error());
    }
    s->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s->listen_fd_ < 0 ||
        ::bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(s->listen_fd_, 128) != 0 ||
        ::getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return failErrno("recording server: listen", errno);
    }
    s->port_ = ntohs(a.sin_port);
  }
  s->stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  s->acceptor_ = std::thread([raw = s.get()] { raw->run(); });
  return s;
}

void RecordingServer::run() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 || (p[1].revents & POLLIN)) {
      return;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    connections_++;
    std::lock_guard lock(mu_);
    conns_.emplace_back([this, fd] {
      handler_(fd, *this);
      ::close(fd);
    });
  }
}

RecordingServer::~RecordingServer() {
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
  acceptor_.join();
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  // Connection threads end when their peer (the proxy) closes; the proxy is stopped first
  // by the test fixture's member order.
  for (auto& t : conns_) {
    t.join();
  }
  ::close(stop_fd_);
}

void RecordingServer::record(std::string_view bytes) {
  std::lock_guard lock(mu_);
  received_.append(bytes);
}

std::string RecordingServer::received() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu_));
  return received_;
}

RecordingServer::Handler RecordingServer::respond(std::string response) {
  return [response](int fd, RecordingServer& self) {
    while (readHead(fd, self)) {
      if (!writeAll(fd, response)) {
        return;
      }
    }
  };
}

RecordingServer::Handler RecordingServer::echo() {
  return [](int fd, RecordingServer& self) {
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
      self.record(std::string_view(buf, static_cast<size_t>(n)));
      if (!writeAll(fd, std::string_view(buf, static_cast<size_t>(n)))) {
        return;
      }
    }
  };
}

RecordingServer::Handler RecordingServer::answerWholeRequests() {
  return [](int fd, RecordingServer& self) {
    std::string got;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        return;
      }
      got.append(buf, static_cast<size_t>(n));
      self.record(std::string_view(buf, static_cast<size_t>(n)));
      const size_t head_end = got.find("\r\n\r\n");
      if (head_end == std::string::npos) {
        continue;
      }
      std::string head = got.substr(0, head_end);
      for (char& c : head) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      bool complete = true;  // no body
      if (const size_t cl = head.find("content-length: "); cl != std::string::npos) {
        complete = got.size() - head_end - 4 >= std::stoull(head.substr(cl + 16));
      } else if (head.find("transfer-encoding: chunked") != std::string::npos) {
        complete =
            got.ends_with("\r\n\r\n") && got.find("\r\n0\r\n", head_end) != std::string::npos;
      }
      if (complete) {
        if (!writeAll(fd, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")) {
          return;
        }
        got.clear();
      }
    }
  };
}

Dechunked dechunk(std::string_view s) {
  Dechunked out;
  size_t i = 0;
  for (;;) {
    const size_t eol = s.find("\r\n", i);
    if (eol == std::string_view::npos) {
      return out;
    }
    const size_t n = std::stoul(std::string(s.substr(i, eol - i)), nullptr, 16);
    i = eol + 2;
    if (n == 0) {
      out.trailers = std::string(s.substr(i));
      return out;
    }
    out.body.append(s.substr(i, n));
    i += n + 2;
  }
}

RecordingServer::Handler RecordingServer::silent() {
  return [](int fd, RecordingServer& self) { drain(fd, self); };
}

namespace {

// Reads a head; answers `head` and `greeting` in one write, then echoes raw bytes.
RecordingServer::Handler tunnelEcho(std::string head, std::string greeting) {
  return [head, greeting](int fd, RecordingServer& self) {
    if (!readHead(fd, self)) {
      return;
    }
    writeAll(fd, head + greeting);
    char buf[65536];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
      if (!writeAll(fd, std::string_view(buf, static_cast<size_t>(n)))) {
        return;
      }
    }
  };
}

}  // namespace

RecordingServer::Handler RecordingServer::upgradeEcho(std::string greeting) {
  return tunnelEcho(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      std::move(greeting));
}

RecordingServer::Handler RecordingServer::connectEcho(std::string greeting) {
  return tunnelEcho("HTTP/1.1 200 Connection Established\r\n\r\n", std::move(greeting));
}

Result<std::string> rawExchange(const NetNs& ns, uint16_t port, const std::string& request,
                                bool half_close, std::chrono::milliseconds deadline) {
  auto fd = connectIn(ns, port);
  if (!fd) {
    return std::unexpected(fd.error());
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(deadline.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((deadline.count() % 1000) * 1000);
  ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (!writeAll(*fd, request)) {
    ::close(*fd);
    return failErrno("send", errno);
  }
  if (half_close) {
    ::shutdown(*fd, SHUT_WR);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(*fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    const int err = errno;
    ::close(*fd);
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      return fail("no EOF within " + std::to_string(deadline.count()) + " ms; got " +
                  std::to_string(out.size()) + " bytes: " + out.substr(0, 200));
    }
    return out;  // EOF (or reset after the response)
  }
}

Result<int> connectLoopback(const NetNs& ns, uint16_t port, int rcvbuf) {
  return connectIn(ns, port, rcvbuf);
}

uint16_t freeLoopbackPort(const NetNs& ns) {
  auto in = ns.enter();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

uint64_t rssKib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.starts_with("VmRSS:")) {
      return std::stoull(line.substr(6));
    }
  }
  return 0;
}

int statusOf(const std::string& bytes) {
  if (bytes.size() < 12 || !bytes.starts_with("HTTP/1.")) {
    return 0;
  }
  return std::atoi(bytes.substr(9, 3).c_str());
}

}  // namespace meshgate::test
