/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load-balancing decision: VIP lookup, connection tracking, weighted Maglev table,
 * fragment tracking, ICMP error steering, then encapsulation and forwarding.
 * mg_lb_process() is the whole program; the SEC("xdp") entry in xdp_lb.bpf.c calls it,
 * and so does the benchmark harness.
 */
#ifndef MESHGATE_BPF_LIB_LB_H
#define MESHGATE_BPF_LIB_LB_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/hash.h>
#include <meshgate/abi/lb.h>

#include "lib/counters.h"
#include "lib/encap.h"
#include "lib/quic.h"
#include "lib/maps.h"
#include "lib/parse.h"

#define MG_NSEC_PER_SEC 1000000000ull

/* Looks the flow up in the VIP's Maglev table. Returns the backend id or a drop. */
static __always_inline int mg_ring_pick(__u32 vip_id, __u32 hash, __u32 *backend_id)
{
	__u32 zero = 0, slot, *size, *id;
	void *ring;

	ring = bpf_map_lookup_elem(&mg_rings, &vip_id);
	if (!ring)
		return MG_DROP(MG_LB_DROP_NO_RING);
	size = bpf_map_lookup_elem(ring, &zero);
	if (!size || *size == 0)
		return MG_DROP(MG_LB_DROP_NO_RING);
	slot = MG_RING_HEADER_SLOTS + hash % *size;
	id = bpf_map_lookup_elem(ring, &slot);
	if (!id)
		return MG_DROP(MG_LB_DROP_NO_BACKEND);
	*backend_id = *id;
	return MG_CONTINUE;
}

/* The flood guard: at most max_conn_rate conntrack inserts per CPU per second. */
static __always_inline bool mg_insert_allowed(const struct mg_lb_globals *g, __u64 now)
{
	__u32 zero = 0;
	struct mg_conn_rate *r;

	if (!g->max_conn_rate)
		return true;
	r = bpf_map_lookup_elem(&mg_conn_rate, &zero);
	if (!r)
		return true;
	if (now - r->window_start_ns >= MG_NSEC_PER_SEC) {
		r->window_start_ns = now;
		r->inserts = 0;
	}
	if (r->inserts >= g->max_conn_rate)
		return false;
	r->inserts += 1;
	return true;
}

static __always_inline struct mg_backend *mg_live_backend(__u32 id)
{
	struct mg_backend *be = bpf_map_lookup_elem(&mg_backends, &id);

	if (!be || !(be->flags & MG_BACKEND_F_LIVE))
		return NULL;
	return be;
}

/*
 * Conntrack lookup for a packet that is not a TCP SYN. A hit keeps its backend while that
 * backend lives (and, for UDP, while the entry is not idle past udp_idle_ns); it also
 * names the VIP, so a hit needs no VIP lookup. Returns true on a usable hit.
 */
static __always_inline bool mg_ct_hit(struct mg_pkt *p, const struct mg_lb_globals *g, __u64 now,
				      __u32 *vip_id, __u32 *backend_id, struct mg_backend **be,
				      __u8 *flags)
{
	struct mg_flow_state *st = bpf_map_lookup_elem(&mg_conntrack, &p->flow);

	if (!st) {
		mg_count(MG_LB_CT_MISS);
		return false;
	}
	if (p->flow.proto == IPPROTO_UDP) {
		if (now - st->atime_ns > g->udp_idle_ns) {
			mg_count(MG_LB_CT_UDP_EXPIRED);
			return false;
		}
		st->atime_ns = now;
	}
	*be = mg_live_backend(st->backend_id);
	if (!*be || (*be)->gen != st->backend_gen) {
		*be = NULL;
		mg_count(MG_LB_CT_BACKEND_GONE);
		return false;
	}
	mg_count(MG_LB_CT_HIT);
	*flags = st->flags;
	*vip_id = st->vip_id;
	*backend_id = st->backend_id;
	return true;
}

/*
 * Records a new choice in conntrack, unless the packet is an ICMP error or a TCP RST
 * (they never start a flow) or the flood guard says no.
 */
static __always_inline int mg_track(struct mg_pkt *p, __u32 vip_id, const struct mg_lb_globals *g,
				    __u64 now, __u32 *backend_id, __u8 flags)
{
	struct mg_flow_state fresh = {};
	struct mg_backend *be;

	if (p->kind == MG_PKT_ICMP_ERROR ||
	    (p->flow.proto == IPPROTO_TCP && (p->tcp_flags & MG_TCP_FLAG_RST)))
		return MG_CONTINUE;
	if (!mg_insert_allowed(g, now)) {
		mg_count(MG_LB_CT_INSERT_SKIPPED);
		return MG_CONTINUE;
	}
	be = mg_live_backend(*backend_id);
	if (!be)
		return MG_DROP(MG_LB_DROP_NO_BACKEND);
	fresh.backend_id = *backend_id;
	fresh.vip_id = vip_id;
	fresh.atime_ns = now;
	fresh.backend_gen = be->gen;
	fresh.flags = flags;
	bpf_map_update_elem(&mg_conntrack, &p->flow, &fresh, BPF_ANY);
	mg_count(MG_LB_CT_INSERT);
	return MG_CONTINUE;
}

/* True when the destination address may be a VIP (its filter bit is set). */
static __always_inline bool mg_maybe_vip(const struct mg_pkt *p)
{
	__u32 bit = mg_addr_hash(p->flow.dst, p->flow.family) % MG_VIP_FILTER_BITS;
	__u32 word = bit / 64;
	__u64 *w = bpf_map_lookup_elem(&mg_vip_filter, &word);

	return w && (*w & (1ull << (bit % 64)));
}

static __always_inline int mg_lookup_vip(const struct mg_pkt *p, __u32 *vip_id, __u32 *flags)
{
	struct mg_vip_key key = {};
	struct mg_vip_info *vip;

	__builtin_memcpy(key.addr, p->flow.dst, sizeof(key.addr));
	key.port = p->flow.dport;
	key.proto = p->flow.proto;
	key.family = p->flow.family;
	vip = bpf_map_lookup_elem(&mg_vips, &key);
	if (!vip) {
		key.port = 0;
		vip = bpf_map_lookup_elem(&mg_vips, &key);
		if (!vip)
			return p->kind == MG_PKT_ICMP_ERROR ? MG_PASS(MG_LB_PASS_ICMP)
							    : MG_PASS(MG_LB_PASS_NOT_VIP);
	}
	*vip_id = vip->vip_id;
	*flags = vip->flags;
	return MG_CONTINUE;
}

/* Whether a VIP has this packet's destination address and protocol (any port). Only
 * fragments ask: not inlined, so its key takes no room in mg_lb_process()'s frame. */
static __noinline bool mg_vip_address(const struct mg_pkt *p)
{
	struct mg_vip_key key = {};

	__builtin_memcpy(key.addr, p->flow.dst, sizeof(key.addr));
	key.proto = p->flow.proto;
	key.family = p->flow.family;
	return bpf_map_lookup_elem(&mg_vip_addrs, &key) != NULL;
}

/*
 * The fragment-table entry of a packet's (source, destination, id, protocol): looked up,
 * or, given `put`, written (then NULL). Not inlined: its keys (up to 40 bytes) then live in
 * a frame of its own, not in mg_lb_process()'s, whose stack plus the QUIC decoder's was
 * close to the 512-byte limit.
 */
static __noinline struct mg_frag_state *mg_frag_entry(const struct mg_pkt *p,
						      const struct mg_frag_state *put)
{
	if (p->flow.family == MG_AF_INET) {
		struct mg_frag_key key = {
			.src = p->flow.src[0],
			.dst = p->flow.dst[0],
			.id = (__u16)p->frag_id,
			.proto = p->flow.proto,
		};

		if (put) {
			bpf_map_update_elem(&mg_frags, &key, put, BPF_ANY);
			return NULL;
		}
		return bpf_map_lookup_elem(&mg_frags, &key);
	}
	struct mg_frag6_key key6 = {.id = p->frag_id, .proto = p->flow.proto};

	__builtin_memcpy(key6.src, p->flow.src, sizeof(key6.src));
	__builtin_memcpy(key6.dst, p->flow.dst, sizeof(key6.dst));
	if (put) {
		bpf_map_update_elem(&mg_frags6, &key6, put, BPF_ANY);
		return NULL;
	}
	return bpf_map_lookup_elem(&mg_frags6, &key6);
}

/*
 * A later fragment carries no ports, so it goes where its first fragment went: to that
 * backend, or to the stack if the first was passed. One that arrives before its first
 * (reordered, or the first was lost) is dropped if a VIP has its address and protocol,
 * since it may belong to a balanced flow, and passed otherwise.
 */
static __always_inline int mg_follow_fragment(const struct mg_pkt *p, __u32 *vip_id,
					      __u32 *backend_id, struct mg_backend **be)
{
	struct mg_frag_state *st = mg_frag_entry(p, NULL);

	if (!st)
		return mg_vip_address(p) ? MG_DROP(MG_LB_DROP_FRAG_UNTRACKED)
					 : MG_PASS(MG_LB_PASS_NOT_VIP);
	if (st->backend_id == 0)
		return MG_PASS(MG_LB_PASS_NOT_VIP);
	*be = mg_live_backend(st->backend_id);
	if (!*be || (*be)->gen != st->backend_gen) {
		*be = NULL;
		return MG_DROP(MG_LB_DROP_NO_BACKEND);
	}
	*vip_id = st->vip_id;
	*backend_id = st->backend_id;
	mg_count(MG_LB_FRAG_FOLLOWED);
	return MG_CONTINUE;
}

static __always_inline void mg_track_fragment(const struct mg_pkt *p, __u32 vip_id,
					      __u32 backend_id, __u32 backend_gen)
{
	struct mg_frag_state st = {
		.backend_id = backend_id, .vip_id = vip_id, .backend_gen = backend_gen};

	mg_frag_entry(p, &st);
	mg_count(MG_LB_FRAG_FIRST);
}

static __always_inline int mg_lb_process(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0, vip_id = 0, vip_flags = 0, backend_id = 0, quic_backend = 0, hash,
	      counter = 0;
	__u8 ct_flags = 0;
	struct mg_lb_globals *g;
	struct mg_backend *be = NULL;
	struct mg_pkt p;
	__u64 now;
	int rc;

	mg_count(MG_LB_RX);
	rc = mg_parse(data, data_end, &p);
	if (rc > 0)
		goto pass;
	if (rc < 0)
		return mg_drop(rc);

	if (!mg_maybe_vip(&p)) {
		rc = p.kind == MG_PKT_ICMP_ERROR ? MG_LB_PASS_ICMP : MG_LB_PASS_NOT_VIP;
		goto pass;
	}
	g = bpf_map_lookup_elem(&mg_globals, &zero);
	if (!g)
		return mg_drop(MG_DROP(MG_LB_DROP_NO_GLOBALS));
	/* Coarse clock: UDP idle times, the flood guard and next-hop expiry are seconds. */
	now = bpf_ktime_get_coarse_ns();
	hash = mg_flow_hash(&p.flow, g->hash_seed);

	if (p.kind == MG_PKT_FRAG_LATER) {
		rc = mg_follow_fragment(&p, &vip_id, &backend_id, &be);
		if (rc > 0)
			goto pass;
		if (rc < 0)
			return mg_drop(rc);
		goto forward;
	}
	if (p.flow.proto == IPPROTO_TCP &&
	    (p.tcp_flags & (MG_TCP_FLAG_SYN | MG_TCP_FLAG_ACK)) == MG_TCP_FLAG_SYN) {
		mg_count(MG_LB_TCP_SYN); /* a SYN always chooses afresh */
	} else if (mg_ct_hit(&p, g, now, &vip_id, &backend_id, &be, &ct_flags)) {
		if (!(ct_flags & MG_FLOW_F_QUIC))
			goto forward;
		/* QUIC: a routable CID outranks the 4-tuple (QUIC-LB forwarding order). */
		rc = mg_quic_choose(data, data_end, &p, vip_id, &quic_backend);
		if (rc < 0)
			return mg_drop(rc);
		if (rc == MG_CONTINUE && quic_backend != backend_id) {
			backend_id = quic_backend;
			be = NULL;
			rc = mg_track(&p, vip_id, g, now, &backend_id, MG_FLOW_F_QUIC);
			if (rc < 0)
				return mg_drop(rc);
		}
		goto forward;
	}
	rc = mg_lookup_vip(&p, &vip_id, &vip_flags);
	if (rc > 0) {
		/* Later fragments of a packet to a VIP's address and protocol passed here are
		 * passed too (backend id 0); elsewhere they pass anyway. */
		if (p.first_frag && mg_vip_address(&p))
			mg_track_fragment(&p, 0, 0, 0);
		goto pass;
	}
	rc = MG_PASS(MG_LB_QUIC_FALLBACK);
	if ((vip_flags & MG_VIP_F_QUIC) && p.kind == MG_PKT_FLOW && p.flow.proto == IPPROTO_UDP) {
		ct_flags = MG_FLOW_F_QUIC;
		rc = mg_quic_choose(data, data_end, &p, vip_id, &backend_id);
		if (rc < 0)
			return mg_drop(rc);
	}
	if (rc != MG_CONTINUE) {
		rc = mg_ring_pick(vip_id, hash, &backend_id);
		if (rc)
			return mg_drop(rc);
	}
	rc = mg_track(&p, vip_id, g, now, &backend_id, ct_flags);
	if (rc < 0)
		return mg_drop(rc);

forward:
	if (!be)
		be = mg_live_backend(backend_id);
	if (!be)
		return mg_drop(MG_DROP(MG_LB_DROP_NO_BACKEND));
	/* Whatever chose the backend (conntrack or table), later fragments follow. */
	if (p.first_frag)
		mg_track_fragment(&p, vip_id, backend_id, be->gen);
	mg_account(&mg_vip_stats, vip_id, p.ip_len);
	mg_account(&mg_backend_stats, backend_id, p.ip_len);
	if (p.kind == MG_PKT_ICMP_ERROR)
		mg_count(MG_LB_ICMP_STEERED);

	rc = mg_encap(ctx, &p, be, g, hash);
	if (rc < 0)
		return mg_drop(rc);
	rc = mg_forward(ctx, backend_id, be, now, &counter);
	if (rc < 0)
		return mg_drop(rc);
	mg_count(counter);
	if (rc == XDP_TX)
		mg_count(MG_LB_TX);
	else if (rc == XDP_REDIRECT)
		mg_count(MG_LB_REDIRECT);
	return rc;

pass:
	mg_count(rc);
	return XDP_PASS;
}

#endif /* MESHGATE_BPF_LIB_LB_H */
