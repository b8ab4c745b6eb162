// One JSON line per request: who asked what, where it went, how it ended, how long it took.
// Shared by the workers; each line is written whole (one fwrite under a lock).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "meshgate/result.h"

namespace meshgate::proxy {

struct AccessRecord {
  std::string client;         // "ip:port"
  std::string_view protocol;  // "HTTP/1.1", "HTTP/1.0", "HTTP/2"
  std::string method;
  std::string target;
  uint16_t status = 0;
  std::string cluster;
  std::string upstream;  // "ip:port" of the last attempt ("" when none)
  uint32_t attempts = 0;
  uint64_t request_body_bytes = 0;
  uint64_t response_body_bytes = 0;
  int64_t duration_us = 0;  // request head received -> response complete
  int64_t upstream_us = 0;  // last attempt started -> response complete
};

class AccessLog {
 public:
  // "-" is stdout; anything else a file opened for append.
  static Result<std::unique_ptr<AccessLog>> open(const std::string& where);
  ~AccessLog();
  void write(const AccessRecord& r);
  static std::string format(const AccessRecord& r);

 private:
  AccessLog(FILE* f, bool owned) : f_(f), owned_(owned) {}
  std::mutex mu_;
  FILE* f_;
  bool owned_;
};

}  // namespace meshgate::proxy
