// meshgate-agent: loads and attaches meshgate's XDP programs, writes the config into the
// pinned maps and keeps them in sync (SIGHUP reloads). See docs/CONFIG.md.
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "agent/agent.h"
#include "agent/host_settings.h"
#include "agent/log.h"
#include "meshgate/abi/common.h"

namespace {

constexpr const char* kUsage =
    "usage: meshgate-agent --config FILE        run: load, attach, serve (SIGHUP reloads)\n"
    "       meshgate-agent --check --config FILE validate the config and exit\n"
    "       meshgate-agent --detach [--pin-root DIR]\n"
    "                                             remove every program, link and map meshgate\n"
    "                                             installed (default pin root " MG_PIN_ROOT ")\n";

int usage(const char* why) {
  std::fprintf(stderr, "meshgate-agent: %s\n%s", why, kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace meshgate::agent;
  std::string config_path, pin_root;
  bool detach = false, check = false;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if ((arg == "--config" || arg == "--pin-root") && i + 1 < argc) {
      (arg == "--config" ? config_path : pin_root) = argv[++i];
    } else if (arg == "--detach") {
      detach = true;
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      return usage(("unknown or incomplete argument '" + arg + "'").c_str());
    }
  }

  if (detach) {
    if (pin_root.empty() && !config_path.empty()) {
      auto cfg = loadConfigFile(config_path);
      if (!cfg) {
        logError(cfg.error().message);
        return 1;
      }
      pin_root = (*cfg)->pin_root;
    }
    if (pin_root.empty()) {
      pin_root = MG_PIN_ROOT;
    }
    std::error_code ec;
    if (!std::filesystem::exists(pin_root, ec)) {
      // Also what `ip netns exec` shows: it mounts a fresh /sys, without bpffs.
      logInfo("nothing pinned under " + pin_root + ": nothing to detach");
      return 0;
    }
    // Read before the pins go; written back once XDP is detached, so that no packet meets
    // a balancer interface with forwarding already off.
    auto settings = recordedSysctls(pin_root);
    if (!settings) {
      logError(settings.error().message);
      return 1;
    }
    if (auto r = detachEverything(pin_root); !r) {
      logError(r.error().message);
      return 1;
    }
    logInfo("detached: removed every link and map under " + pin_root);
    restoreSysctls(*settings);
    int rc = 0;
    for (const auto& s : *settings) {
      if (s.error.empty()) {
        logInfo("restored /proc/sys/" + s.sysctl + " to " + s.value);
      } else {
        // The record went with the pins: say exactly what is left to do.
        logError("cannot restore /proc/sys/" + s.sysctl + " to " + s.value + ": " + s.error +
                 "; restore it by hand: echo " + s.value + " > /proc/sys/" + s.sysctl);
        rc = 1;
      }
    }
    return rc;
  }
  if (config_path.empty()) {
    return usage("--config FILE is required");
  }
  if (!pin_root.empty()) {
    return usage(
        "--pin-root applies to --detach; a running agent pins where its config's "
        "pin_root says");
  }
  auto cfg = loadConfigFile(config_path);
  if (!cfg) {
    logError(cfg.error().message);
    return 1;
  }
  if (check) {
    std::printf("%s: ok (%zu vips)\n", config_path.c_str(), (*cfg)->vips.size());
    return 0;
  }
  // SIGHUP, SIGTERM and SIGINT wait in the signal mask from here on, for serve()'s signalfd:
  // one that comes during start (a reload as the unit starts) is handled once serving, not
  // by the default action, which would end the agent half way through writing the maps.
  sigset_t signals;
  sigemptyset(&signals);
  for (const int sig : {SIGHUP, SIGTERM, SIGINT}) {
    sigaddset(&signals, sig);
  }
  if (sigprocmask(SIG_BLOCK, &signals, nullptr) != 0) {
    logError(std::string("sigprocmask: ") + std::strerror(errno));
    return 1;
  }
  auto agent = Agent::start(*cfg);
  if (!agent) {
    logError(agent.error().message);
    return 1;
  }
  return agent->serve(config_path);
}
