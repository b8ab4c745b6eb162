// The end-to-end topology of the load balancer, used by the namespace tests and the demo:
//
//   [client] 198.18.0.2 --- 198.18.0.1 [lb: xdp_lb + meshgate-agent] 198.18.1N.1 --- 198.18.1N.2
//   [bN]
//                                                                       (N = 1..backends)
//   VIP 198.18.100.1:port. Each backend holds the VIP on lo, runs xdp_decap (through its own
//   meshgate-agent) and answers the client directly (DSR); replies are routed back via lb.
//
// Every agent is a real meshgate-agent process started in its namespace with setns() (not
// `ip netns exec`, which would hide /sys/fs/bpf), pinning under a test-owned bpffs dir.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshgate/result.h"
#include "tests/lib/netns.h"
#include "tests/lib/process.h"
#include "tests/lib/tcp_peer.h"

namespace meshgate::test {

// A meshgate-agent process in a network namespace, logging to a file.
class AgentProcess {
 public:
  static Result<AgentProcess> start(const NetNs& ns, const std::string& config_path,
                                    const std::string& log_path);
  AgentProcess(AgentProcess&& o) noexcept : pid_(std::exchange(o.pid_, -1)), log_(o.log_) {}
  AgentProcess& operator=(AgentProcess&&) = delete;
  ~AgentProcess();  // SIGTERM (the data path stays), then reap
  pid_t pid() const { return pid_; }
  // SIGKILL, as a crash would; waits for the process to be gone.
  Result<void> kill9();
  Result<void> sighup();
  // Blocks until the log holds `count` lines containing `needle`, or errors on deadline
  // or if the process died.
  Result<void> waitForLog(const std::string& needle, size_t count = 1);
  // How many log lines contain `needle` now (for a waitForLog() of one more).
  size_t countLog(const std::string& needle) const;

 private:
  AgentProcess(pid_t pid, std::string log) : pid_(pid), log_(std::move(log)) {}
  pid_t pid_ = -1;
  std::string log_;
};

struct BackendSpec {
  std::string address;
  uint32_t weight = 1;
};

class LbTopology {
 public:
  static constexpr const char* kVip = "198.18.100.1";

  static Result<std::unique_ptr<LbTopology>> create(int backends, uint16_t port);
  ~LbTopology();

  // Writes the balancer's config with these backends (addresses from backendAddress()).
  Result<void> writeConfig(const std::vector<BackendSpec>& backends);
  // The config text writeConfig() would write, for tests that break it on purpose.
  std::string configText(const std::vector<BackendSpec>& backends) const;
  Result<void> writeConfigText(const std::string& text);
  const std::string& configPath() const { return config_path_; }
  const std::string& clientInterface() const { return lb_client_if_; }
  Result<void> startAgent();   // writes nothing; uses the last config
  Result<void> reloadAgent();  // SIGHUP and wait for the "reloaded" log line
  AgentProcess& agent() { return *agent_; }
  void forgetAgent() { agent_.reset(); }

  const NetNs& client() const { return *client_; }
  const NetNs& lb() const { return *lb_; }
  const NetNs& backend(int i) const { return backend_ns_.at(i - 1); }  // i = 1..backends()
  std::string backendAddress(int i) const { return "198.18." + std::to_string(10 + i) + ".2"; }
  std::string backendName(int i) const { return "b" + std::to_string(i); }
  int backends() const { return static_cast<int>(backend_ns_.size()); }
  uint16_t port() const { return port_; }
  const std::string& pinRoot() const { return lb_pins_->path(); }
  // The pin root of backend i's agent (xdp_decap), i from 0.
  const std::string& backendPinRoot(size_t i) const { return backend_pins_.at(i).path(); }
  const std::string& logPath() const { return log_path_; }

 private:
  LbTopology() = default;
  Result<void> build(int backends, uint16_t port);

  uint16_t port_ = 0;
  std::string dir_;  // configs and logs
  std::string config_path_, log_path_;
  std::optional<BpffsDir> lb_pins_;
  std::vector<BpffsDir> backend_pins_;
  std::optional<NetNs> client_, lb_;
  std::vector<NetNs> backend_ns_;
  std::vector<VethPair> veths_;
  std::string lb_client_if_;
  std::vector<std::unique_ptr<BackendServer>> servers_;
  std::vector<AgentProcess> decap_agents_;
  std::optional<AgentProcess> agent_;
};

// The Maglev table the agent installed for the topology's (single) VIP, read from the
// pinned maps, so a test can predict where a client 4-tuple lands, as xdp_lb will.
class InstalledTable {
 public:
  static Result<InstalledTable> read(const LbTopology& topo);
  // The backend name ("b1".."bN") for client `client`:`sport` -> VIP:`dport`, hash seed 7
  // as in the topology's configs; "?" for a slot whose backend is not the topology's.
  std::string backendFor(const std::string& client, uint16_t sport, uint16_t dport,
                         uint8_t proto) const;
  const std::map<std::string, uint32_t>& ids() const { return ids_; }  // name -> backend id

 private:
  std::vector<uint32_t> table_;
  std::map<uint32_t, std::string> names_;
  std::map<std::string, uint32_t> ids_;
};

}  // namespace meshgate::test
