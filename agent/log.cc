#include "agent/log.h"

#include <cstdio>

namespace meshgate::agent {
namespace {

void emit(const char* level, std::string_view msg) {
  std::fprintf(stderr, "meshgate-agent: %s: %.*s\n", level, static_cast<int>(msg.size()),
               msg.data());
}

}  // namespace

void logInfo(std::string_view msg) { emit("info", msg); }
void logWarn(std::string_view msg) { emit("warning", msg); }
void logError(std::string_view msg) { emit("error", msg); }

}  // namespace meshgate::agent
