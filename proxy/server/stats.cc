#include "proxy/server/stats.h"

namespace meshgate::proxy {

std::string Stats::prometheus() const {
  std::string out;
#define MESHGATE_PROXY_STAT_TEXT(name, help)                                                    \
  out += "# HELP meshgate_proxy_" #name " " help "\n# TYPE meshgate_proxy_" #name " " +         \
         std::string(std::string_view(#name).ends_with("_active") ? "gauge" : "counter") +      \
         "\nmeshgate_proxy_" #name " " + std::to_string(name.load(std::memory_order_relaxed)) + \
         "\n";
  MESHGATE_PROXY_STATS(MESHGATE_PROXY_STAT_TEXT)
#undef MESHGATE_PROXY_STAT_TEXT
  return out;
}

}  // namespace meshgate::proxy
