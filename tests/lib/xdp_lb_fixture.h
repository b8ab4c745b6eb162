// GoogleTest fixture for BPF_PROG_TEST_RUN tests of xdp_lb: an LbTestBed (namespace with a
// real FIB), the real program loaded through the agent with maps pinned in the test's
// bpffs directory, a config applied by the agent's LbState, and the test thread inside the
// balancer's namespace. Header-only: only test binaries include it.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/datapath.h"
#include "agent/lb_maps.h"
#include "tests/lib/bpf_run.h"
#include "tests/lib/lb_testbed.h"

namespace meshgate::test {

class XdpLbFixture : public ::testing::Test {
 protected:
  // Builds the bed, loads xdp_lb, applies `config` (JSON without pin_root/interfaces).
  void setUpWith(const std::string& tag, const std::string& config) {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: BPF programs and network namespaces";
    }
    auto bed = LbTestBed::create(tag);
    ASSERT_TRUE(bed) << bed.error().message;
    bed_ = std::move(*bed);
    auto prog = agent::LoadedProgram::load(agent::XdpProgram::kLoadBalancer,
                                           {bed_->pinRoot(), 65536});
    ASSERT_TRUE(prog) << prog.error().message;
    prog_.emplace(std::move(*prog));
    bed_->setQuicKeyProgramForTest(prog_->quicKeyProgFd());
    auto maps = agent::LbMaps::openPinned(bed_->pinRoot());
    ASSERT_TRUE(maps) << maps.error().message;
    maps_.emplace(std::move(*maps));
    auto applied = bed_->apply(config);
    ASSERT_TRUE(applied) << applied.error().message;
    auto enter = bed_->lbNs().enter();
    ASSERT_TRUE(enter) << enter.error().message;
    enter_.emplace(std::move(*enter));
  }

  // Runs one packet as if it arrived on the bed's ingress interface.
  XdpRunResult run(const std::vector<uint8_t>& pkt) {
    auto r = runXdp(prog_->progFd(), pkt, {.ingress_ifindex = bed_->ingressIfindex()});
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : XdpRunResult{};
  }
  uint64_t counter(mg_lb_counter c) {
    auto v = agent::sumPerCpuU64(maps_->lb_stats.get(), c, MG_MAP_LB_STATS);
    return v ? *v : ~0ull;
  }
  uint64_t drops(mg_lb_drop d) {
    auto v = agent::sumPerCpuU64(maps_->lb_drops.get(), d, MG_MAP_LB_DROPS);
    return v ? *v : ~0ull;
  }

  std::unique_ptr<LbTestBed> bed_;
  std::optional<agent::LoadedProgram> prog_;
  std::optional<agent::LbMaps> maps_;
  std::optional<ScopedNetnsEnter> enter_;
};

}  // namespace meshgate::test
