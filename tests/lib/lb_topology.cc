#include "tests/lib/lb_topology.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/lb_maps.h"
#include "meshgate/abi/hash.h"

namespace meshgate::test {
namespace {

size_t countInFile(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    n += line.find(needle) != std::string::npos;
  }
  return n;
}

}  // namespace

size_t AgentProcess::countLog(const std::string& needle) const {
  return countInFile(log_, needle);
}

Result<AgentProcess> AgentProcess::start(const NetNs& ns, const std::string& config_path,
                                         const std::string& log_path) {
  const std::string bin = builtBinary("meshgate-agent");
  const size_t started_before = countInFile(log_path, "serving");
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    return failErrno("open agent log '" + log_path + "'", errno);
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log);
    return failErrno("fork agent", errno);
  }
  if (pid == 0) {
    // Network namespace only: the mount namespace (and its /sys/fs/bpf) stays ours.
    if (::setns(ns.fd(), CLONE_NEWNET) != 0) {
      _exit(126);
    }
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    ::execl(bin.c_str(), bin.c_str(), "--config", config_path.c_str(), nullptr);
    _exit(127);
  }
  ::close(log);
  AgentProcess agent(pid, log_path);
  if (auto ready = agent.waitForLog("serving", started_before + 1); !ready) {
    return std::unexpected(ready.error());
  }
  return agent;
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

Result<void> AgentProcess::kill9() {
  if (::kill(pid_, SIGKILL) != 0) {
    return failErrno("kill -9 agent " + std::to_string(pid_), errno);
  }
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return {};
}

Result<void> AgentProcess::sighup() {
  if (::kill(pid_, SIGHUP) != 0) {
    return failErrno("SIGHUP agent " + std::to_string(pid_), errno);
  }
  return {};
}

Result<void> AgentProcess::waitForLog(const std::string& needle, size_t count) {
  const pid_t pid = pid_;
  bool died = false;
  int status = 0;
  auto r = waitFor(
      [&] {
        if (countInFile(log_, needle) >= count) {
          return true;
        }
        died = pid > 0 && ::waitpid(pid, &status, WNOHANG) == pid;
        return died;
      },
      std::chrono::seconds(30), "agent log line '" + needle + "'");
  if (died) {
    pid_ = -1;
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return fail("meshgate-agent exited (status " + std::to_string(WEXITSTATUS(status)) +
                ", signal " + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0) +
                ") before logging '" + needle + "':\n" + ss.str());
  }
  return r;
}

Result<std::unique_ptr<LbTopology>> LbTopology::create(int backends, uint16_t port) {
  std::unique_ptr<LbTopology> t(new LbTopology());
  if (auto r = t->build(backends, port); !r) {
    return std::unexpected(r.error());
  }
  return t;
}

LbTopology::~LbTopology() {
  agent_.reset();
  decap_agents_.clear();
  servers_.clear();
  veths_.clear();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

Result<void> LbTopology::build(int backends, uint16_t port) {
  port_ = port;
  char tmpl[] = "/tmp/meshgate-topo-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    return failErrno("mkdtemp", errno);
  }
  dir_ = tmpl;
  config_path_ = dir_ + "/lb.json";
  log_path_ = dir_ + "/lb-agent.log";

  auto pins = BpffsDir::create("topo");
  auto client = NetNs::create("cli");
  auto lb = NetNs::create("lb");
  if (!pins || !client || !lb) {
    return std::unexpected(!pins ? pins.error() : !client ? client.error() : lb.error());
  }
  lb_pins_.emplace(std::move(*pins));
  client_.emplace(std::move(*client));
  lb_.emplace(std::move(*lb));

  auto cl = VethPair::create(*client_, "198.18.0.2/24", *lb_, "198.18.0.1/24");
  if (!cl) {
    return std::unexpected(cl.error());
  }
  lb_client_if_ = cl->nameB();
  std::vector<Result<void>> steps = {
      client_->addRoute("198.18.100.0/24", "198.18.0.1"),
      client_->addNeighbour(cl->nameA(), "198.18.0.1", cl->macB()),
      lb_->addNeighbour(cl->nameB(), "198.18.0.2", cl->macA()),
      lb_->setSysctl("net.ipv4.ip_forward", "1"),
  };
  veths_.push_back(std::move(*cl));

  for (int i = 1; i <= backends; i++) {
    auto ns = NetNs::create("b" + std::to_string(i));
    auto bp = BpffsDir::create("topo-b" + std::to_string(i));
    if (!ns || !bp) {
      return std::unexpected(!ns ? ns.error() : bp.error());
    }
    const std::string net = "198.18." + std::to_string(10 + i);
    auto v = VethPair::create(*lb_, net + ".1/24", *ns, net + ".2/24", {.mtu = 1600});
    if (!v) {
      return std::unexpected(v.error());
    }
    steps.push_back(ns->addAddress("lo", std::string(kVip) + "/32"));
    steps.push_back(ns->addRoute("198.18.0.0/24", net + ".1"));
    steps.push_back(ns->addNeighbour(v->nameB(), net + ".1", v->macA()));
    steps.push_back(lb_->addNeighbour(v->nameA(), net + ".2", v->macB()));
    steps.push_back(ns->setSysctl("net.ipv4.conf.all.rp_filter", "0"));
    steps.push_back(ns->setSysctl("net.ipv4.conf." + v->nameB() + ".rp_filter", "0"));
    const std::string cfg = dir_ + "/b" + std::to_string(i) + ".json";
    steps.push_back(writeTextFile(cfg, "{\"pin_root\": \"" + bp->path() +
                                           "\", \"decap_interfaces\": [{\"name\": \"" + v->nameB() +
                                           "\"}], \"vips\": []}\n"));
    backend_pins_.push_back(std::move(*bp));
    backend_ns_.push_back(std::move(*ns));
    veths_.push_back(std::move(*v));
  }
  for (auto& s : steps) {
    if (!s) {
      return s;
    }
  }
  for (int i = 1; i <= backends; i++) {
    auto agent = AgentProcess::start(backend_ns_[i - 1], dir_ + "/b" + std::to_string(i) + ".json",
                                     dir_ + "/b" + std::to_string(i) + "-agent.log");
    if (!agent) {
      return std::unexpected(agent.error());
    }
    decap_agents_.push_back(std::move(*agent));
    auto server = BackendServer::start(backend_ns_[i - 1], kVip, port_, backendName(i));
    if (!server) {
      return std::unexpected(server.error());
    }
    servers_.push_back(std::move(*server));
  }
  return {};
}

Result<void> LbTopology::writeConfig(const std::vector<BackendSpec>& backends) {
  return writeConfigText(configText(backends));
}

Result<void> LbTopology::writeConfigText(const std::string& text) {
  return writeTextFile(config_path_, text);
}

std::string LbTopology::configText(const std::vector<BackendSpec>& backends) const {
  std::string list;
  for (const auto& b : backends) {
    list += std::string(list.empty() ? "" : ", ") + "{\"address\": \"" + b.address +
            "\", \"weight\": " + std::to_string(b.weight) + "}";
  }
  const std::string text = "{\n  \"pin_root\": \"" + pinRoot() +
                           "\",\n  \"interfaces\": [{\"name\": \"" + lb_client_if_ +
                           "\"}],\n  \"hash_seed\": 7,\n  \"conntrack\": {\"size\": 65536},\n" +
                           "  \"vips\": [{\"name\": \"web\", \"address\": \"" + kVip +
                           "\", \"port\": " + std::to_string(port_) +
                           ", \"protocol\": \"tcp\", \"ring_size\": 65537,\n" +
                           "            \"backends\": [" + list + "]}]\n}\n";
  return text;
}

Result<void> LbTopology::startAgent() {
  auto agent = AgentProcess::start(*lb_, config_path_, log_path_);
  if (!agent) {
    return std::unexpected(agent.error());
  }
  agent_.emplace(std::move(*agent));
  return {};
}

Result<void> LbTopology::reloadAgent() {
  const size_t before = countInFile(log_path_, "reloaded");
  if (auto r = agent_->sighup(); !r) {
    return r;
  }
  return agent_->waitForLog("reloaded", before + 1);
}

Result<InstalledTable> InstalledTable::read(const LbTopology& topo) {
  auto maps = agent::LbMaps::openPinned(topo.pinRoot());
  if (!maps) {
    return std::unexpected(maps.error());
  }
  auto vips = agent::readVips(maps->vips.get());
  if (!vips || vips->empty()) {
    return fail("no VIP installed");
  }
  auto ring = agent::readRing(maps->rings.get(), vips->at(0).info.vip_id);
  auto live = agent::readLiveBackends(maps->backends.get());
  if (!ring || !live) {
    return std::unexpected(!ring ? ring.error() : live.error());
  }
  InstalledTable t;
  t.table_ = *ring;
  for (const auto& b : *live) {
    const std::string addr = agent::addressText(b.backend.addr, b.backend.family);
    for (int i = 1; i <= topo.backends(); i++) {
      if (topo.backendAddress(i) == addr) {
        t.names_[b.id] = topo.backendName(i);
        t.ids_[topo.backendName(i)] = b.id;
      }
    }
  }
  return t;
}

std::string InstalledTable::backendFor(const std::string& client, uint16_t sport, uint16_t dport,
                                       uint8_t proto) const {
  mg_flow_key k{};
  k.family = MG_AF_INET;
  inet_pton(AF_INET, client.c_str(), k.src);
  inet_pton(AF_INET, LbTopology::kVip, k.dst);
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  if (table_.empty()) {
    return "?";
  }
  const auto it = names_.find(table_[mg_flow_hash(&k, 7) % table_.size()]);
  return it == names_.end() ? "?" : it->second;
}

}  // namespace meshgate::test
