// Socket set-up for the proxy: addresses, listening sockets shared across workers with
// SO_REUSEPORT, and non-blocking connects.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <utility>

#include "meshgate/result.h"

namespace meshgate::proxy {

// An owned fd (move-only; closes on destruction).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset();
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct SockAddr {
  // IPv4 or IPv6 only: 28 bytes rather than sockaddr_storage's 128 (one per connection).
  union Storage {
    sockaddr sa;
    sockaddr_in in4;
    sockaddr_in6 in6;
  } storage{};
  socklen_t len = 0;

  // "192.0.2.1", "2001:db8::1" and a port.
  static Result<SockAddr> parse(const std::string& ip, uint16_t port);
  const sockaddr* get() const { return &storage.sa; }
  sockaddr* get() { return &storage.sa; }
  int family() const { return storage.sa.sa_family; }
  uint16_t port() const;
  std::string ip() const;
  std::string toString() const;  // "192.0.2.1:80", "[2001:db8::1]:80"
};

// A non-blocking listening TCP socket with SO_REUSEPORT, so that every worker binds its
// own socket to the same address and the kernel spreads connections between them (no
// shared accept queue, no thundering herd). TCP_NODELAY is set on it, so the connections
// it accepts have it too.
Result<Fd> listenTcp(const SockAddr& addr, int backlog);
// The address a socket is bound to (for port 0).
Result<SockAddr> localAddress(int fd);
// Starts a non-blocking connect; completion shows as writability (then check
// socketError()).
Result<Fd> connectTcp(const SockAddr& addr);
// SO_ERROR of a socket (0 when the connect succeeded).
int socketError(int fd);

}  // namespace meshgate::proxy
