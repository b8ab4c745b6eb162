// Running a loaded BPF program on one packet with BPF_PROG_TEST_RUN: the verdict, the packet
// as the program left it, and the time per run. No device, namespace or attach is needed.
//
// Kernel rules worth knowing (bpf_prog_test_run_xdp / _skb):
// - the input must be at least 14 bytes (an Ethernet header), else EINVAL: "truncated
//   packet" rows can cut anything after the Ethernet header, not the header itself;
// - with repeat > 1 the packet is NOT restored between runs: a program that rewrites the
//   packet processes its own output from the second run on (see docs/ENVIRONMENT.md);
// - ingress_ifindex must name a device in the calling thread's network namespace (use
//   NetNs::enter()), else ENODEV.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "meshgate/result.h"

namespace meshgate::test {

struct XdpRunOpts {
  uint32_t repeat = 1;
  uint32_t ingress_ifindex = 0;  // 0: no xdp_md context is passed
  size_t out_capacity = 4096;
};

struct XdpRunResult {
  uint32_t retval = 0;       // the XDP action
  std::vector<uint8_t> out;  // the packet after the program (head/tail adjustments applied)
  uint32_t duration_ns = 0;  // average per run
};

// Runs an XDP program. Errors carry the errno of the syscall (ENOSPC: out_capacity too
// small for the output packet).
Result<XdpRunResult> runXdp(int prog_fd, std::span<const uint8_t> in, XdpRunOpts opts = {});

struct TcRunOpts {
  uint32_t repeat = 1;
  uint32_t ifindex = 0;  // skb->dev; 0: the loopback device of the calling thread's netns
  uint32_t mark = 0;     // skb->mark on entry
  size_t out_capacity = 4096;
};

struct TcRunResult {
  int32_t retval = 0;  // the TC action (TC_ACT_OK 0, TC_ACT_SHOT 2, TC_ACT_REDIRECT 7, ...)
  std::vector<uint8_t> out;
  uint32_t duration_ns = 0;
  uint32_t mark = 0;  // skb->mark on exit
};

// Runs a sched_cls (tc) program on an skb built from `in` (which starts with Ethernet).
Result<TcRunResult> runTc(int prog_fd, std::span<const uint8_t> in, TcRunOpts opts = {});

// "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", or "XDP_?" (for messages).
const char* xdpActionName(uint32_t action);
// "TC_ACT_OK", "TC_ACT_SHOT", "TC_ACT_REDIRECT", ... or "TC_ACT_?".
const char* tcActionName(int32_t action);

}  // namespace meshgate::test
