// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_decap: runs on backends. Removes the outer IPv4 or IPv6 header that xdp_lb added
 * (IPv4-in-IPv4, IPv4-in-IPv6, IPv6-in-IPv6), applies RFC 6040 ECN decapsulation, and
 * passes the client's original packet to the stack, which answers the client directly
 * from the VIP (bound on the backend's loopback). Only packets whose outer source is a
 * balancer's (inside encap.source_v4/v6, the prefixes xdp_lb draws outer sources from)
 * are decapsulated: anyone else's IPIP would deliver a spoofed client packet past every
 * filter in front of the balancers. Everything else passes untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/decap.h>

#include "lib/csum.h"
#include "lib/globals.h"

#define MG_ECN_MASK 0x3
#define MG_ECN_ECT0 0x2
#define MG_ECN_ECT1 0x1
#define MG_ECN_CE 0x3
#define MG_IP_MF_OFFSET 0x3fff

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_DECAP_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mg_decap_stats SEC(".maps");

static __always_inline void count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&mg_decap_stats, &counter);

	if (v)
		*v += 1;
}

/*
 * Whether an outer source is one xdp_lb uses: the encap prefix, host bits free. Until the
 * agent has written mg_globals (outer_ttl is 1..255 once it has) nothing is.
 */
static __always_inline int from_balancer4(__be32 saddr)
{
	__u32 zero = 0;
	struct mg_lb_globals *g = bpf_map_lookup_elem(&mg_globals, &zero);

	return g && g->outer_ttl && (saddr & ~g->encap_src4_mask) == g->encap_src4;
}

static __always_inline int from_balancer6(const __be32 *saddr)
{
	__u32 zero = 0;
	struct mg_lb_globals *g = bpf_map_lookup_elem(&mg_globals, &zero);

	/* The prefix is at least /96: the first three words are all prefix. */
	return g && g->outer_ttl && saddr[0] == g->encap_src6[0] && saddr[1] == g->encap_src6[1] &&
	       saddr[2] == g->encap_src6[2] &&
	       (saddr[3] & ~g->encap_src6_mask) == g->encap_src6[3];
}

/*
 * RFC 6040 decapsulation (figure 4): outer CE marks an ECN-capable inner packet CE and
 * drops a not-ECT one; outer ECT(1) turns an inner ECT(0) into ECT(1); every other
 * combination leaves the inner field alone. Returns 0, or -1 to drop.
 */
static __always_inline int propagate_ecn(__u8 outer_tos, void *inner, void *data_end,
					 __u16 inner_proto)
{
	__u8 outer = outer_tos & MG_ECN_MASK, in, want;

	if (outer != MG_ECN_CE && outer != MG_ECN_ECT1)
		return 0;
	if (inner_proto == ETH_P_IP) {
		struct iphdr *ih = inner;
		__u16 old, new;

		if ((void *)(ih + 1) > data_end)
			return -1;
		in = ih->tos & MG_ECN_MASK;
		if (outer == MG_ECN_CE && in == 0)
			return -1;
		want = outer == MG_ECN_CE ? MG_ECN_CE : (in == MG_ECN_ECT0 ? MG_ECN_ECT1 : in);
		if (want == in)
			return 0;
		old = *(__u16 *)ih;
		ih->tos = (ih->tos & ~MG_ECN_MASK) | want;
		new = *(__u16 *)ih;
		ih->check = mg_csum_replace16(ih->check, old, new);
	} else {
		__u8 *w = inner; /* traffic class: low nibble of byte 0, high nibble of byte 1 */

		if ((void *)(w + 2) > data_end)
			return -1;
		in = (w[1] >> 4) & MG_ECN_MASK;
		if (outer == MG_ECN_CE && in == 0)
			return -1;
		want = outer == MG_ECN_CE ? MG_ECN_CE : (in == MG_ECN_ECT0 ? MG_ECN_ECT1 : in);
		if (want == in)
			return 0;
		w[1] = (w[1] & ~(MG_ECN_MASK << 4)) | (want << 4);
	}
	count(want == MG_ECN_CE ? MG_DECAP_ECN_CE_COPIED : MG_DECAP_ECN_ECT1_COPIED);
	return 0;
}

SEC("xdp")
int xdp_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data, eth_copy;
	__u32 outer_len, counter;
	__u16 inner_proto;
	__u8 outer_tos;
	void *inner;

	count(MG_DECAP_RX);
	if ((void *)(eth + 1) > data_end)
		goto pass;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *oh = (void *)(eth + 1);

		if ((void *)(oh + 1) > data_end || oh->protocol != IPPROTO_IPIP ||
		    oh->version != 4 || oh->ihl < 5)
			goto pass;
		if (!from_balancer4(oh->saddr))
			goto foreign;
		outer_len = oh->ihl * 4;
		if ((void *)(eth + 1) + bpf_ntohs(oh->tot_len) > data_end ||
		    bpf_ntohs(oh->tot_len) < outer_len) {
			count(MG_DECAP_DROP_TRUNC);
			return XDP_DROP;
		}
		/* A fragment holds part of an inner packet: the stack reassembles it. */
		if (oh->frag_off & bpf_htons(MG_IP_MF_OFFSET)) {
			count(MG_DECAP_PASS_OUTER_FRAGMENT);
			return XDP_PASS;
		}
		outer_tos = oh->tos;
		inner_proto = ETH_P_IP;
		counter = MG_DECAP_DECAP_4IN4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *oh = (void *)(eth + 1);

		if ((void *)(oh + 1) > data_end || oh->version != 6)
			goto pass;
		if (oh->nexthdr == IPPROTO_IPIP) {
			inner_proto = ETH_P_IP;
			counter = MG_DECAP_DECAP_4IN6;
		} else if (oh->nexthdr == IPPROTO_IPV6) {
			inner_proto = ETH_P_IPV6;
			counter = MG_DECAP_DECAP_6IN6;
		} else {
			goto pass;
		}
		if (!from_balancer6(oh->saddr.in6_u.u6_addr32))
			goto foreign;
		if ((void *)(oh + 1) + bpf_ntohs(oh->payload_len) > data_end) {
			count(MG_DECAP_DROP_TRUNC);
			return XDP_DROP;
		}
		outer_len = sizeof(*oh);
		outer_tos = (bpf_ntohs(*(__be16 *)oh) >> 4) & 0xff;
	} else {
		goto pass;
	}

	inner = (void *)(eth + 1) + outer_len;
	if (inner + (inner_proto == ETH_P_IP ? sizeof(struct iphdr) : sizeof(struct ipv6hdr)) >
	    data_end) {
		count(MG_DECAP_DROP_TRUNC);
		return XDP_DROP;
	}
	if (propagate_ecn(outer_tos, inner, data_end, inner_proto)) {
		count(MG_DECAP_DROP_ECN);
		return XDP_DROP;
	}

	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));
	eth_copy.h_proto = bpf_htons(inner_proto);
	if (bpf_xdp_adjust_head(ctx, outer_len)) {
		count(MG_DECAP_DROP_ADJUST);
		return XDP_DROP;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end) {
		count(MG_DECAP_DROP_ADJUST);
		return XDP_DROP;
	}
	__builtin_memcpy(eth, &eth_copy, sizeof(*eth));
	count(counter);
	return XDP_PASS;

pass:
	count(MG_DECAP_PASS_NOT_IPIP);
	return XDP_PASS;
foreign:
	/* Not ours to open; the stack drops it unless a tunnel of its own accepts it. */
	count(MG_DECAP_PASS_FOREIGN_SOURCE);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
