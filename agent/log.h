// The agent's log: one line per event on stderr, "meshgate-agent: LEVEL: message".
// journald (systemd) and kubectl logs pick it up from there.
#pragma once

#include <string_view>

namespace meshgate::agent {

void logInfo(std::string_view msg);
void logWarn(std::string_view msg);
void logError(std::string_view msg);

}  // namespace meshgate::agent
