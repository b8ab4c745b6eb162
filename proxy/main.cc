// meshgate-proxy: the userspace L7 proxy. Loads a config (docs/CONFIG.md), starts the
// workers, then waits for signals: SIGHUP reloads the file (a bad one is rejected, naming
// the field, and the running config stays), SIGTERM or SIGINT stops.
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "proxy/routing/config.h"
#include "proxy/server/runtime.h"

namespace {

constexpr const char* kUsage =
    "usage: meshgate-proxy --config FILE [--check]\n"
    "  --config FILE  the proxy config (JSON, docs/CONFIG.md)\n"
    "  --check        validate the config and exit (0 = valid)\n"
    "Signals: SIGHUP reloads FILE, SIGTERM/SIGINT stop.\n";

void log(const std::string& line) {
  std::fprintf(stderr, "meshgate-proxy: %s\n", line.c_str());
}

// Every connection, client or upstream, holds a descriptor, and each worker one socket per
// listener: raise the soft limit on descriptors to the hard one (what a unit's LimitNOFILE
// sets), as nginx's worker_rlimit_nofile would, and say when the listeners alone take
// most of it. Returns the soft limit in force.
rlim_t raiseFileLimit(const meshgate::proxy::ProxyConfig& cfg) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return 0;
  }
  if (rl.rlim_cur < rl.rlim_max) {
    const rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      log("cannot raise the descriptor limit from " + std::to_string(soft) + ": " +
          std::strerror(errno));
      rl.rlim_cur = soft;
    }
  }
  const uint64_t sockets = uint64_t{cfg.workers} * cfg.listeners.size();
  if (rl.rlim_cur != RLIM_INFINITY && sockets * 2 > rl.rlim_cur) {
    log("warning: " + std::to_string(cfg.workers) + " worker(s) x " +
        std::to_string(cfg.listeners.size()) + " listeners take " + std::to_string(sockets) +
        " of the " + std::to_string(rl.rlim_cur) +
        " descriptors allowed (RLIMIT_NOFILE); raise LimitNOFILE");
  }
  return rl.rlim_cur;
}

}  // namespace

// Read by jemalloc, which the release binary links (the Makefile says why); ignored by any
// other malloc. A worker starts and ends up to a hundred HTTP/2 streams (10 connections x 10
// streams) per loop iteration, each allocating objects of the same few sizes; with the
// default per-thread cache (2 x a slab's objects per size, 20 to 200) the larger of these
// sizes overflow it and every batch goes back to the shared arena under its lock. Eight
// times the slots (still at most 200 per size) keeps them in the thread: 3% fewer
// instructions per request for HTTP/1.1 and for h2c (scripts/proxy-instructions.sh).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "lg_tcache_nslots_mul:3";
}

int main(int argc, char** argv) {
  using namespace meshgate::proxy;
  std::string config_path;
  bool check = false;
  for (int i = 1; i < argc; i++) {
    const std::string_view a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--check") {
      check = true;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "meshgate-proxy: unknown or incomplete argument '%s'\n%s", argv[i],
                   kUsage);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "meshgate-proxy: --config is required\n%s", kUsage);
    return 2;
  }
  auto cfg = loadProxyConfigFile(config_path);
  if (!cfg) {
    log(cfg.error().message);
    return 1;
  }
  if (check) {
    std::printf("%s: valid\n", config_path.c_str());
    return 0;
  }
  auto snap = makeSnapshot(*cfg, 1);
  if (!snap) {
    log(snap.error().message);
    return 1;
  }

  // Workers inherit this mask: signals are taken by sigwait() on the main thread only.
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGHUP, SIGTERM, SIGINT}) {
    sigaddset(&set, s);
  }
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const rlim_t files = raiseFileLimit(*(*snap)->config);
  Runtime runtime(*snap);
  if (auto r = runtime.start(); !r) {
    log(r.error().message);
    return 1;
  }
  const auto& listeners = (*snap)->config->listeners;
  for (size_t i = 0; i < listeners.size(); i++) {
    log("listener '" + listeners[i].name + "' on " + listeners[i].address + " port " +
        std::to_string(runtime.listenerPorts()[i]));
  }
  if (runtime.adminPort() != 0) {
    log("admin on " + (*snap)->config->admin_address + " port " +
        std::to_string(runtime.adminPort()));
  }
  log("started " + std::to_string((*snap)->config->workers) + " worker(s), " +
      (files == RLIM_INFINITY ? std::string("no") : std::to_string(files)) + " descriptor limit");
  for (;;) {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig == SIGHUP) {
      auto next = loadProxyConfigFile(config_path);
      auto r = next ? runtime.reload(*next) : meshgate::Result<void>(std::unexpected(next.error()));
      log(r ? "reloaded " + config_path : "reload rejected: " + r.error().message);
      continue;
    }
    log(std::string("stopping on ") + strsignal(sig));
    break;
  }
  runtime.stop();
  return 0;
}
