// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* xdp_lb: the XDP L4 load balancer. All logic lives in lib/lb.h. */
#include "lib/lb.h"

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	return mg_lb_process(ctx);
}

/* Installs or clears the AES key of an encrypted QUIC-LB config; run by the agent. */
SEC("syscall")
int mg_quic_set_key(struct mg_quic_key_args *args)
{
	return mg_quic_set_key_body(args);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
