#include "tests/lib/bpf_run.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <string>

namespace meshgate::test {

Result<XdpRunResult> runXdp(int prog_fd, std::span<const uint8_t> in, XdpRunOpts opts) {
  XdpRunResult result;
  result.out.resize(opts.out_capacity);
  xdp_md ctx{};
  LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = in.data(), .data_out = result.out.data(),
              .data_size_in = static_cast<uint32_t>(in.size()),
              .data_size_out = static_cast<uint32_t>(result.out.size()),
              .repeat = static_cast<int>(opts.repeat));
  if (opts.ingress_ifindex != 0) {
    // The kernel insists on data == 0 and data_end == the input size.
    ctx.data_end = static_cast<uint32_t>(in.size());
    ctx.ingress_ifindex = opts.ingress_ifindex;
    run.ctx_in = &ctx;
    run.ctx_size_in = sizeof(ctx);
  }
  if (bpf_prog_test_run_opts(prog_fd, &run) != 0) {
    return failErrno("BPF_PROG_TEST_RUN (xdp, prog fd " + std::to_string(prog_fd) + ", " +
                         std::to_string(in.size()) + " bytes in)",
                     errno);
  }
  result.out.resize(run.data_size_out);
  result.retval = run.retval;
  result.duration_ns = run.duration;
  return result;
}

Result<TcRunResult> runTc(int prog_fd, std::span<const uint8_t> in, TcRunOpts opts) {
  TcRunResult result;
  result.out.resize(opts.out_capacity);
  __sk_buff ctx{};
  ctx.ifindex = opts.ifindex;
  ctx.mark = opts.mark;
  LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = in.data(), .data_out = result.out.data(),
              .data_size_in = static_cast<uint32_t>(in.size()),
              .data_size_out = static_cast<uint32_t>(result.out.size()), .ctx_in = &ctx,
              .ctx_out = &ctx, .ctx_size_in = sizeof(ctx), .ctx_size_out = sizeof(ctx),
              .repeat = static_cast<int>(opts.repeat));
  if (bpf_prog_test_run_opts(prog_fd, &run) != 0) {
    return failErrno("BPF_PROG_TEST_RUN (tc, prog fd " + std::to_string(prog_fd) + ", " +
                         std::to_string(in.size()) + " bytes in)",
                     errno);
  }
  result.out.resize(run.data_size_out);
  result.retval = static_cast<int32_t>(run.retval);
  result.duration_ns = run.duration;
  result.mark = ctx.mark;
  return result;
}

const char* xdpActionName(uint32_t action) {
  switch (action) {
    case XDP_ABORTED:
      return "XDP_ABORTED";
    case XDP_DROP:
      return "XDP_DROP";
    case XDP_PASS:
      return "XDP_PASS";
    case XDP_TX:
      return "XDP_TX";
    case XDP_REDIRECT:
      return "XDP_REDIRECT";
    default:
      return "XDP_?";
  }
}

const char* tcActionName(int32_t action) {
  switch (action) {
    case TC_ACT_UNSPEC:
      return "TC_ACT_UNSPEC";
    case TC_ACT_OK:
      return "TC_ACT_OK";
    case TC_ACT_RECLASSIFY:
      return "TC_ACT_RECLASSIFY";
    case TC_ACT_SHOT:
      return "TC_ACT_SHOT";
    case TC_ACT_PIPE:
      return "TC_ACT_PIPE";
    case TC_ACT_STOLEN:
      return "TC_ACT_STOLEN";
    case TC_ACT_QUEUED:
      return "TC_ACT_QUEUED";
    case TC_ACT_REPEAT:
      return "TC_ACT_REPEAT";
    case TC_ACT_REDIRECT:
      return "TC_ACT_REDIRECT";
    default:
      return "TC_ACT_?";
  }
}

}  // namespace meshgate::test
