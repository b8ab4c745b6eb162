// Real TCP endpoints for namespace tests and the demo. A backend server answers
//   "ID\n"          with "<name>\n"
//   "STREAM <n>\n"  with "<name>\n" followed by n bytes of patternByte(0..n-1)
// on every connection, any number of requests per connection; a client connects from a
// chosen source address and port so that every flow's hash is known in advance.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/bpf_util.h"
#include "meshgate/result.h"
#include "tests/lib/netns.h"

namespace meshgate::test {

inline uint8_t patternByte(uint64_t i) { return static_cast<uint8_t>((i * 31 + (i >> 9)) % 251); }

class BackendServer {
 public:
  // Listens on addr:port inside `ns` (the VIP must be a local address there).
  static Result<std::unique_ptr<BackendServer>> start(const NetNs& ns, const std::string& addr,
                                                      uint16_t port, std::string name);
  ~BackendServer();  // closes every socket and joins every thread
  const std::string& name() const { return name_; }
  uint64_t connections() const { return connections_.load(); }

 private:
  BackendServer(agent::UniqueFd listener, std::string name)
      : listener_(std::move(listener)), name_(std::move(name)) {}
  void acceptLoop();
  void serve(int fd);

  agent::UniqueFd listener_;
  std::string name_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connections_{0};
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

class TcpClient {
 public:
  // Connects from src_addr:src_port (0 = any) inside `ns` to dst:port, with a timeout on
  // every later read and write so that a broken path fails the test instead of hanging.
  static Result<TcpClient> connect(const NetNs& ns, const std::string& src_addr,
                                   uint16_t src_port, const std::string& dst, uint16_t port);
  // Sends "ID\n" and returns the backend's name.
  Result<std::string> askId();
  // Sends "STREAM n\n" and reads the name line; then readStream() reads the bytes.
  Result<std::string> startStream(uint64_t n);
  // Reads up to `n` more stream bytes and checks each against patternByte(offset).
  Result<void> readStream(uint64_t n);
  uint64_t streamOffset() const { return offset_; }
  int fd() const { return fd_.get(); }

 private:
  explicit TcpClient(agent::UniqueFd fd) : fd_(std::move(fd)) {}
  Result<std::string> readLine();

  agent::UniqueFd fd_;
  uint64_t offset_ = 0;
};

}  // namespace meshgate::test
