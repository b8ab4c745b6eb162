#include "proxy/net/socket.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace meshgate::proxy {

void Fd::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Result<SockAddr> SockAddr::parse(const std::string& ip, uint16_t port) {
  SockAddr a;
  auto* in4 = &a.storage.in4;
  auto* in6 = &a.storage.in6;
  if (::inet_pton(AF_INET, ip.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
  } else {
    return fail("'" + ip + "' is not an IPv4 or IPv6 address");
  }
  return a;
}

uint16_t SockAddr::port() const {
  if (family() == AF_INET) {
    return ntohs(storage.in4.sin_port);
  }
  return ntohs(storage.in6.sin6_port);
}

std::string SockAddr::ip() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    // Every request's X-Forwarded-For needs it: four to_chars instead of inet_ntop's
    // sprintf, same text.
    const auto* b = reinterpret_cast<const uint8_t*>(&storage.in4.sin_addr);
    char* p = buf;
    for (int i = 0; i < 4; i++) {
      if (i > 0) {
        *p++ = '.';
      }
      p = std::to_chars(p, buf + sizeof buf, b[i]).ptr;
    }
    return std::string(buf, p);
  } else {
    ::inet_ntop(AF_INET6, &storage.in6.sin6_addr, buf, sizeof buf);
  }
  return buf;
}

std::string SockAddr::toString() const {
  return family() == AF_INET6 ? "[" + ip() + "]:" + std::to_string(port())
                              : ip() + ":" + std::to_string(port());
}

Result<Fd> listenTcp(const SockAddr& addr, int backlog) {
  Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    return failErrno("socket", errno);
  }
  const int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return failErrno("listener " + addr.toString() + ": setsockopt(SO_REUSEPORT)", errno);
  }
  if (addr.family() == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  // Accepted sockets inherit TCP_NODELAY from their listener on Linux: one setsockopt
  // here instead of one per connection.
  if (::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    return failErrno("listener " + addr.toString() + ": setsockopt(TCP_NODELAY)", errno);
  }
  if (::bind(fd.get(), addr.get(), addr.len) != 0) {
    return failErrno("listener " + addr.toString() + ": bind", errno);
  }
  if (::listen(fd.get(), backlog) != 0) {
    return failErrno("listener " + addr.toString() + ": listen", errno);
  }
  return fd;
}

Result<SockAddr> localAddress(int fd) {
  SockAddr a;
  a.len = sizeof a.storage;
  if (::getsockname(fd, a.get(), &a.len) != 0) {
    return failErrno("getsockname", errno);
  }
  return a;
}

Result<Fd> connectTcp(const SockAddr& addr) {
  Fd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    return failErrno("socket", errno);
  }
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd.get(), addr.get(), addr.len) != 0 && errno != EINPROGRESS) {
    return failErrno("connect " + addr.toString(), errno);
  }
  return fd;
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    return errno;
  }
  return err;
}

}  // namespace meshgate::proxy
