// A network namespace in which xdp_lb can run under BPF_PROG_TEST_RUN with a real FIB:
//
//   [peer0] --- veth0 (198.18.0.1/24, fd00:0::1/64) [lb] veth1 (198.18.1.1/24, fd00:1::1/64) --- [peer1]
//
// Backends 198.18.1.10-19 and fd00:1::10-19 sit behind veth1 and 198.18.0.20 behind veth0,
// each with a static neighbour entry (kBackendMac(n)), so bpf_fib_lookup() resolves them
// without ARP. Packets "arrive" on veth0 (ingress ifindex). Config is applied through
// the agent's real LbState, into maps pinned in a test-specific bpffs directory.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "agent/config.h"
#include "agent/lb_maps.h"
#include "agent/lb_state.h"
#include "meshgate/result.h"
#include "tests/lib/netns.h"
#include "tests/lib/packet_builder.h"

namespace meshgate::test {

class LbTestBed {
 public:
  static Result<std::unique_ptr<LbTestBed>> create(std::string_view tag);

  const std::string& pinRoot() const { return pins_.path(); }
  const NetNs& lbNs() const { return lb_; }
  uint32_t ingressIfindex() const { return ingress_ifindex_; }
  const MacAddr& ingressMac() const { return veth0_->macA(); }
  const MacAddr& backendSideMac() const { return veth1_->macA(); }
  // MAC of the static neighbour entry for backend number n (address suffix n).
  static MacAddr backendMac(int n);

  // Writes the config into the pinned maps with the agent's LbState (adopting on first use).
  Result<agent::ApplyStats> apply(std::string_view json);
  const agent::LbState& state() const { return *state_; }
  // The loaded xdp_lb's mg_quic_set_key program (LoadedProgram::quicKeyProgFd), given to
  // every LbState this bed adopts so encrypted QUIC-LB configs get their keys; -1: none.
  void setQuicKeyProgramForTest(int fd);
  // Forgets the agent state and adopts it again from the pins, as a restarted agent does.
  Result<void> restartAgentForTest();
  const agent::ConfigPtr& config() const { return config_; }

 private:
  LbTestBed(BpffsDir pins, NetNs lb, NetNs peer0, NetNs peer1)
      : pins_(std::move(pins)), lb_(std::move(lb)), peer0_(std::move(peer0)),
        peer1_(std::move(peer1)) {}

  BpffsDir pins_;
  NetNs lb_, peer0_, peer1_;
  std::optional<VethPair> veth0_, veth1_;
  uint32_t ingress_ifindex_ = 0;
  int quic_key_prog_fd_ = -1;
  std::optional<agent::LbState> state_;
  agent::ConfigPtr config_;
};

}  // namespace meshgate::test
