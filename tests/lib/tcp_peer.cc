#include "tests/lib/tcp_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>

namespace meshgate::test {
namespace {

Result<sockaddr_in> v4(const std::string& addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    return fail("bad IPv4 address '" + addr + "'");
  }
  return sa;
}

bool writeAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) {
      return false;
    }
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<BackendServer>> BackendServer::start(const NetNs& ns,
                                                            const std::string& addr,
                                                            uint16_t port, std::string name) {
  auto entered = ns.enter();
  if (!entered) {
    return std::unexpected(entered.error());
  }
  auto sa = v4(addr, port);
  if (!sa) {
    return std::unexpected(sa.error());
  }
  agent::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*sa), sizeof(*sa)) != 0 ||
      ::listen(fd.get(), 1024) != 0) {
    return failErrno("server " + name + ": listen on " + addr + ":" + std::to_string(port),
                     errno);
  }
  std::unique_ptr<BackendServer> s(new BackendServer(std::move(fd), std::move(name)));
  s->acceptor_ = std::thread([p = s.get()] { p->acceptLoop(); });
  return s;
}

BackendServer::~BackendServer() {
  stopping_ = true;
  ::shutdown(listener_.get(), SHUT_RDWR);
  if (acceptor_.joinable()) {
    acceptor_.join();
  }
  {
    std::lock_guard lock(mu_);
    for (int fd : conns_) {
      ::shutdown(fd, SHUT_RDWR);
    }
  }
  for (auto& t : threads_) {
    t.join();
  }
}

void BackendServer::acceptLoop() {
  while (!stopping_) {
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      return;
    }
    connections_++;
    std::lock_guard lock(mu_);
    conns_.push_back(fd);
    threads_.emplace_back([this, fd] { serve(fd); });
  }
}

void BackendServer::serve(int fd) {
  std::string buf;
  char tmp[512];
  for (;;) {
    const auto nl = buf.find('\n');
    if (nl == std::string::npos) {
      const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        break;
      }
      buf.append(tmp, static_cast<size_t>(n));
      continue;
    }
    const std::string req = buf.substr(0, nl);
    buf.erase(0, nl + 1);
    const std::string hello = name_ + "\n";
    if (!writeAll(fd, hello.data(), hello.size())) {
      break;
    }
    if (req.rfind("STREAM ", 0) == 0) {
      const uint64_t total = std::stoull(req.substr(7));
      std::vector<uint8_t> chunk(64 * 1024);
      bool ok = true;
      for (uint64_t off = 0; off < total && ok;) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), total - off));
        for (size_t i = 0; i < n; i++) {
          chunk[i] = patternByte(off + i);
        }
        ok = writeAll(fd, chunk.data(), n);
        off += n;
      }
      if (!ok) {
        break;
      }
    }
  }
  std::lock_guard lock(mu_);
  std::erase(conns_, fd);
  ::close(fd);
}

Result<TcpClient> TcpClient::connect(const NetNs& ns, const std::string& src_addr,
                                     uint16_t src_port, const std::string& dst, uint16_t port) {
  auto entered = ns.enter();
  if (!entered) {
    return std::unexpected(entered.error());
  }
  auto local = v4(src_addr, src_port);
  auto remote = v4(dst, port);
  if (!local || !remote) {
    return std::unexpected(!local ? local.error() : remote.error());
  }
  agent::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const std::string what = "connect " + src_addr + ":" + std::to_string(src_port) + " -> " +
                           dst + ":" + std::to_string(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*local), sizeof(*local)) != 0) {
    return failErrno(what + ": bind", errno);
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*remote), sizeof(*remote)) != 0) {
    return failErrno(what, errno);
  }
  return TcpClient(std::move(fd));
}

Result<std::string> TcpClient::readLine() {
  std::string line;
  char c;
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), &c, 1, 0);
    if (n == 0) {
      return fail("connection closed by peer");
    }
    if (n < 0) {
      return failErrno("recv", errno);
    }
    if (c == '\n') {
      return line;
    }
    line += c;
  }
}

Result<std::string> TcpClient::askId() {
  if (!writeAll(fd_.get(), "ID\n", 3)) {
    return failErrno("send ID", errno);
  }
  return readLine();
}

Result<std::string> TcpClient::startStream(uint64_t n) {
  const std::string req = "STREAM " + std::to_string(n) + "\n";
  if (!writeAll(fd_.get(), req.data(), req.size())) {
    return failErrno("send STREAM", errno);
  }
  offset_ = 0;
  return readLine();
}

Result<void> TcpClient::readStream(uint64_t n) {
  std::vector<uint8_t> buf(64 * 1024);
  while (n > 0) {
    const ssize_t got = ::recv(fd_.get(), buf.data(), std::min<uint64_t>(n, buf.size()), 0);
    if (got == 0) {
      return fail("stream closed at byte " + std::to_string(offset_));
    }
    if (got < 0) {
      return failErrno("stream recv at byte " + std::to_string(offset_), errno);
    }
    for (ssize_t i = 0; i < got; i++) {
      if (buf[i] != patternByte(offset_ + i)) {
        return fail("stream byte " + std::to_string(offset_ + i) + " differs");
      }
    }
    offset_ += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
  return {};
}

}  // namespace meshgate::test
