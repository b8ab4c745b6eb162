#include "proxy/server/access_log.h"

#include <cerrno>
#include <chrono>
#include <nlohmann/json.hpp>

namespace meshgate::proxy {

Result<std::unique_ptr<AccessLog>> AccessLog::open(const std::string& where) {
  if (where == "-") {
    return std::unique_ptr<AccessLog>(new AccessLog(stdout, false));
  }
  FILE* f = std::fopen(where.c_str(), "ae");
  if (!f) {
    return failErrno("access_log '" + where + "'", errno);
  }
  return std::unique_ptr<AccessLog>(new AccessLog(f, true));
}

AccessLog::~AccessLog() {
  if (owned_) {
    std::fclose(f_);
  } else {
    std::fflush(f_);
  }
}

std::string AccessLog::format(const AccessRecord& r) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  nlohmann::ordered_json j = {
      {"time_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now).count()},
      {"client", r.client},
      {"protocol", r.protocol},
      {"method", r.method},
      {"target", r.target},
      {"status", r.status},
      {"cluster", r.cluster},
      {"upstream", r.upstream},
      {"attempts", r.attempts},
      {"request_body_bytes", r.request_body_bytes},
      {"response_body_bytes", r.response_body_bytes},
      {"duration_us", r.duration_us},
      {"upstream_us", r.upstream_us},
  };
  // Bytes from the wire may not be UTF-8: replace, never throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void AccessLog::write(const AccessRecord& r) {
  const std::string line = format(r);
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), f_);
  std::fflush(f_);
}

}  // namespace meshgate::proxy
