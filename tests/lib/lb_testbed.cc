#include "tests/lib/lb_testbed.h"

namespace meshgate::test {

MacAddr LbTestBed::backendMac(int n) {
  return {0x02, 0x00, 0x00, 0x00, 0x01, static_cast<uint8_t>(n)};
}

Result<std::unique_ptr<LbTestBed>> LbTestBed::create(std::string_view tag) {
  auto pins = BpffsDir::create(tag);
  if (!pins) {
    return std::unexpected(pins.error());
  }
  auto lb = NetNs::create(std::string(tag) + "-lb");
  auto peer0 = NetNs::create(std::string(tag) + "-p0");
  auto peer1 = NetNs::create(std::string(tag) + "-p1");
  if (!lb || !peer0 || !peer1) {
    return std::unexpected(!lb ? lb.error() : !peer0 ? peer0.error() : peer1.error());
  }
  std::unique_ptr<LbTestBed> bed(
      new LbTestBed(std::move(*pins), std::move(*lb), std::move(*peer0), std::move(*peer1)));
  auto v0 = VethPair::create(bed->lb_, "198.18.0.1/24", bed->peer0_, "198.18.0.2/24");
  if (!v0) {
    return std::unexpected(v0.error());
  }
  bed->veth0_.emplace(std::move(*v0));
  auto v1 = VethPair::create(bed->lb_, "198.18.1.1/24", bed->peer1_, "198.18.1.2/24");
  if (!v1) {
    return std::unexpected(v1.error());
  }
  bed->veth1_.emplace(std::move(*v1));
  const NetNs& ns = bed->lb_;
  const std::string dev0 = bed->veth0_->nameA(), dev1 = bed->veth1_->nameA();
  for (auto r : {ns.addAddress(dev0, "fd00:0::1/64"), ns.addAddress(dev1, "fd00:1::1/64"),
                 ns.setSysctl("net.ipv4.conf.all.forwarding", "1"),
                 ns.setSysctl("net.ipv6.conf.all.forwarding", "1")}) {
    if (!r) {
      return std::unexpected(r.error());
    }
  }
  for (int n = 10; n < 20; n++) {
    if (auto r = ns.addNeighbour(dev1, "198.18.1." + std::to_string(n), backendMac(n)); !r) {
      return std::unexpected(r.error());
    }
    if (auto r = ns.addNeighbour(dev1, "fd00:1::" + std::to_string(n), backendMac(n)); !r) {
      return std::unexpected(r.error());
    }
  }
  if (auto r = ns.addNeighbour(dev0, "198.18.0.20", backendMac(20)); !r) {
    return std::unexpected(r.error());
  }
  bed->ingress_ifindex_ = bed->veth0_->ifindexA();
  return bed;
}

Result<agent::ApplyStats> LbTestBed::apply(std::string_view json) {
  const std::string text = "{\"pin_root\": \"" + pinRoot() + "\", \"interfaces\": [{\"name\": \"" +
                           veth0_->nameA() + "\"}], " + std::string(json.substr(1));
  auto cfg = agent::parseConfig(text, "testbed.json");
  if (!cfg) {
    return std::unexpected(cfg.error());
  }
  if (!state_) {
    auto state = agent::LbState::adopt(pinRoot());
    if (!state) {
      return std::unexpected(state.error());
    }
    state_.emplace(std::move(*state));
    state_->setQuicKeyProgram(quic_key_prog_fd_);
  }
  auto stats = state_->apply(**cfg);
  if (stats) {
    config_ = *cfg;
  }
  return stats;
}

}  // namespace meshgate::test

namespace meshgate::test {

Result<void> LbTestBed::restartAgentForTest() {
  state_.reset();
  auto state = agent::LbState::adopt(pinRoot());
  if (!state) {
    return std::unexpected(state.error());
  }
  state_.emplace(std::move(*state));
  state_->setQuicKeyProgram(quic_key_prog_fd_);
  return {};
}

void LbTestBed::setQuicKeyProgramForTest(int fd) {
  quic_key_prog_fd_ = fd;
  if (state_) {
    state_->setQuicKeyProgram(fd);
  }
}

}  // namespace meshgate::test
