/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ABI of the backend-side IPIP decapsulator (bpf/xdp_decap.bpf.c).
 */
#ifndef MESHGATE_ABI_DECAP_H
#define MESHGATE_ABI_DECAP_H

#include "common.h"

#define MG_MAP_DECAP_STATS "mg_decap_stats"

/*
 * Counters of xdp_decap, indexed into mg_decap_stats. Everything that is not a whole,
 * well-formed IPIP packet from a balancer (outer source inside the agent's
 * encap.source_v4/v6, read from mg_globals) is passed to the stack untouched.
 */
#define MG_DECAP_COUNTERS(X)                                                       \
	X(RX, "packets seen")                                                      \
	X(PASS_NOT_IPIP, "not an IPIP packet, passed untouched")                   \
	X(PASS_FOREIGN_SOURCE, "IPIP from outside encap.source_v4/v6, passed untouched") \
	X(PASS_OUTER_FRAGMENT, "fragment of an IPIP packet: left to the stack")    \
	X(DECAP_4IN4, "IPv4-in-IPv4 packets decapsulated")                         \
	X(DECAP_4IN6, "IPv4-in-IPv6 packets decapsulated")                         \
	X(DECAP_6IN6, "IPv6-in-IPv6 packets decapsulated")                         \
	X(ECN_CE_COPIED, "outer CE mark copied to an ECN-capable inner header")   \
	X(ECN_ECT1_COPIED, "outer ECT(1) copied over an inner ECT(0) (RFC 6040)")  \
	X(DROP_TRUNC, "IPIP packet cut short: outer length or inner header")       \
	X(DROP_ECN, "outer CE with a not-ECN-capable inner packet (RFC 6040)")     \
	X(DROP_ADJUST, "bpf_xdp_adjust_head failed")

#define MG_DECAP_X_ENUM(name, help) MG_DECAP_##name,
enum mg_decap_counter { MG_DECAP_COUNTERS(MG_DECAP_X_ENUM) MG_DECAP_COUNTER_MAX };

#endif /* MESHGATE_ABI_DECAP_H */
