/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPIP encapsulation for direct server return: IPv4-in-IPv4, IPv4-in-IPv6 and
 * IPv6-in-IPv6. The inner packet is not modified. The outer header carries the inner
 * DSCP and ECN bits, the configured TTL, DF always set (see mg_encap), and a
 * source address whose host bits come from the flow hash, so that the backend's NIC
 * spreads flows over its receive queues.
 */
#ifndef MESHGATE_BPF_LIB_ENCAP_H
#define MESHGATE_BPF_LIB_ENCAP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/lb.h>

#include "lib/csum.h"
#include "lib/maps.h"
#include "lib/parse.h"

static __always_inline int mg_encap(struct xdp_md *ctx, const struct mg_pkt *p,
				    const struct mg_backend *be, const struct mg_lb_globals *g,
				    __u32 hash)
{
	struct ethhdr eth_copy, *eth;
	void *data, *data_end;
	int outer_len;

	if (be->family == MG_AF_INET && p->flow.family == MG_AF_INET6)
		return MG_DROP(MG_LB_DROP_ENCAP_UNSUPPORTED);

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return MG_DROP(MG_LB_DROP_TRUNC_ETH);
	__builtin_memcpy(&eth_copy, eth, sizeof(eth_copy));

	outer_len = be->family == MG_AF_INET ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	if (bpf_xdp_adjust_head(ctx, -outer_len))
		return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;

	if (be->family == MG_AF_INET) {
		struct iphdr *oh = (void *)(eth + 1);

		if ((void *)(oh + 1) > data_end)
			return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
		__builtin_memcpy(eth, &eth_copy, sizeof(*eth));
		eth->h_proto = bpf_htons(ETH_P_IP);
		oh->version = 4;
		oh->ihl = 5;
		oh->tos = p->tos;
		oh->tot_len = bpf_htons(p->ip_len + sizeof(*oh));
		oh->id = 0;
		/* Always DF: a fragmented outer packet cannot be reassembled and decapsulated on
		 * a backend without the ipip module, so it must fail loudly (mtu_exceeded here,
		 * ICMP on the path) instead of being lost; id 0 is fine for atomic datagrams. */
		oh->frag_off = bpf_htons(MG_IP_DF);
		oh->ttl = g->outer_ttl;
		oh->protocol = IPPROTO_IPIP;
		oh->check = 0;
		oh->saddr = g->encap_src4 | (bpf_htonl(hash) & g->encap_src4_mask);
		oh->daddr = be->addr[0];
		oh->check = mg_ipv4_csum(oh);
	} else {
		struct ipv6hdr *oh = (void *)(eth + 1);
		__u32 vtc_flow;

		if ((void *)(oh + 1) > data_end)
			return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
		__builtin_memcpy(eth, &eth_copy, sizeof(*eth));
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		vtc_flow = (6u << 28) | ((__u32)p->tos << 20) | (hash & 0xfffff);
		*(__be32 *)oh = bpf_htonl(vtc_flow);
		oh->payload_len = bpf_htons(p->ip_len);
		oh->nexthdr = p->flow.family == MG_AF_INET ? IPPROTO_IPIP : IPPROTO_IPV6;
		oh->hop_limit = g->outer_ttl;
		__builtin_memcpy(&oh->saddr, g->encap_src6, 12);
		oh->saddr.in6_u.u6_addr32[3] =
			g->encap_src6[3] | (bpf_htonl(hash) & g->encap_src6_mask);
		__builtin_memcpy(&oh->daddr, be->addr, 16);
	}
	return MG_CONTINUE;
}

/*
 * Looks the backend's next hop up in the kernel FIB (for the encapsulated packet in ctx,
 * l3_len bytes after Ethernet) and caches it in *nh. Not inlined: the 64-byte parameter
 * block would take room in mg_lb_process()'s frame, which the QUIC decoder's call needs,
 * and it runs only on a cache miss (once per second per backend and CPU). Returns
 * MG_CONTINUE, MG_PASS(MG_LB_PASS_NO_NEIGH) or a drop.
 */
static __noinline int mg_fib_refresh(struct xdp_md *ctx, const struct mg_backend *be,
				     struct mg_nexthop *nh, __u64 now, __u32 l3_len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth = data;
	int rc;

	if ((void *)(eth + 1) > data_end)
		return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
	fib.ifindex = ctx->ingress_ifindex;
	fib.tot_len = l3_len;
	if (be->family == MG_AF_INET) {
		struct iphdr *oh = (void *)(eth + 1);

		if ((void *)(oh + 1) > data_end)
			return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
		fib.family = MG_AF_INET;
		fib.tos = oh->tos;
		fib.l4_protocol = IPPROTO_IPIP;
		fib.ipv4_src = oh->saddr;
		fib.ipv4_dst = oh->daddr;
	} else {
		struct ipv6hdr *oh = (void *)(eth + 1);

		if ((void *)(oh + 1) > data_end)
			return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
		fib.family = MG_AF_INET6;
		fib.flowinfo = *(__be32 *)oh & bpf_htonl(0x0fffffff);
		fib.l4_protocol = oh->nexthdr;
		__builtin_memcpy(fib.ipv6_src, &oh->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &oh->daddr, 16);
	}

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return MG_PASS(MG_LB_PASS_NO_NEIGH);
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return MG_DROP(MG_LB_DROP_MTU_EXCEEDED);
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return MG_DROP(MG_LB_DROP_FIB_FWD_DISABLED);
	default:
		return MG_DROP(MG_LB_DROP_FIB_FAILED);
	}
	/* A fresh entry starts from this packet's length; a refresh only raises it. */
	if (nh->expires_ns <= now || nh->ifindex_in != ctx->ingress_ifindex ||
	    nh->ifindex_out != fib.ifindex || __builtin_memcmp(nh->dmac, fib.dmac, ETH_ALEN))
		nh->max_len = 0;
	nh->expires_ns = now + MG_NEXTHOP_CACHE_NS;
	nh->ifindex_in = ctx->ingress_ifindex;
	nh->ifindex_out = fib.ifindex;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	if (l3_len > nh->max_len)
		nh->max_len = l3_len;
	return MG_CONTINUE;
}

/*
 * Sends the encapsulated frame towards the backend: the kernel FIB gives the egress
 * interface and next-hop MAC. Same interface -> XDP_TX; another -> XDP_REDIRECT;
 * next hop not resolved yet -> XDP_PASS, so the stack resolves it and forwards this one.
 * Results are cached per CPU and backend for MG_NEXTHOP_CACHE_NS (struct mg_nexthop).
 */
static __always_inline int mg_forward(struct xdp_md *ctx, __u32 backend_id,
				      const struct mg_backend *be, __u64 now, __u32 *counter)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 l3_len = data_end - data - sizeof(*eth);
	struct mg_nexthop *nh;
	int rc;

	if ((void *)(eth + 1) > data_end)
		return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
	nh = bpf_map_lookup_elem(&mg_nexthops, &backend_id);
	if (!nh)
		return MG_DROP(MG_LB_DROP_FIB_FAILED);
	if (nh->expires_ns > now && nh->ifindex_in == ctx->ingress_ifindex &&
	    l3_len <= nh->max_len) {
		*counter = MG_LB_NEXTHOP_CACHED;
	} else {
		rc = mg_fib_refresh(ctx, be, nh, now, l3_len);
		if (rc > 0) {
			*counter = rc;
			return XDP_PASS;
		}
		if (rc < 0)
			return rc;
		*counter = MG_LB_NEXTHOP_LOOKUP;
		/* Packet pointers do not outlive a subprogram call for every verifier (newer
		 * ones track whether it may change the packet): take them again. */
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return MG_DROP(MG_LB_DROP_ENCAP_FAILED);
	}
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	if (nh->ifindex_out == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(nh->ifindex_out, 0);
}

#endif /* MESHGATE_BPF_LIB_ENCAP_H */
