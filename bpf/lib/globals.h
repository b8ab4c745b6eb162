/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mg_globals, the agent's runtime settings (key 0), shared by xdp_lb (flow hash seed,
 * encapsulation) and xdp_decap (which outer sources are a balancer's). Both programs pin
 * it at MG_PIN_ROOT/mg_globals, so one host has one copy whichever program loads first.
 */
#ifndef MESHGATE_BPF_LIB_GLOBALS_H
#define MESHGATE_BPF_LIB_GLOBALS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/lb.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_lb_globals);
} mg_globals SEC(".maps");

#endif /* MESHGATE_BPF_LIB_GLOBALS_H */
