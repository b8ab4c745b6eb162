/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing for xdp_lb: Ethernet, IPv4 (options, fragments), IPv6 (extension
 * headers), TCP, UDP and the packet quoted in ICMP / ICMPv6 errors. Produces the
 * client -> VIP flow key that every later step works on.
 */
#ifndef MESHGATE_BPF_LIB_PARSE_H
#define MESHGATE_BPF_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/lb.h>

/*
 * Parse outcome: 0 = a packet to look up; > 0 = pass it to the stack and count that
 * mg_lb_counter; < 0 = drop it, reason -(r + 1) of enum mg_lb_drop.
 */
#define MG_CONTINUE 0
#define MG_PASS(counter) (counter)
#define MG_DROP(reason) (-(int)(reason)-1)
#define MG_DROP_REASON(rc) ((__u32)(-(rc)-1))

#define MG_TCP_FLAG_SYN 0x02
#define MG_TCP_FLAG_RST 0x04
#define MG_TCP_FLAG_ACK 0x10

#define MG_IP_MF 0x2000
#define MG_IP_DF 0x4000
#define MG_IP_OFFSET 0x1fff
#define MG_IP6_FRAG_OFFSET 0xfff8 /* of the fragment header's offset word; bit 0 is M */
#define MG_IP6_FRAG_MORE 0x0001

#define MG_IPV6_MAX_EXT_HDRS 4

/* ICMP error types whose quoted packet names a balanced flow (ICMP header: 8 bytes). */
#define MG_ICMP_HDR_LEN 8
#define MG_ICMP_DEST_UNREACH 3 /* includes code 4, fragmentation needed */
#define MG_ICMP_TIME_EXCEEDED 11
#define MG_ICMPV6_DEST_UNREACH 1
#define MG_ICMPV6_PKT_TOOBIG 2
#define MG_ICMPV6_TIME_EXCEED 3

enum mg_pkt_kind {
	MG_PKT_FLOW = 0,	/* TCP/UDP to a VIP candidate */
	MG_PKT_ICMP_ERROR = 1,	/* ICMP error; flow = the reversed quoted tuple */
	MG_PKT_FRAG_LATER = 2,	/* IPv4 or IPv6 fragment after the first: no L4 header */
};

struct mg_pkt {
	struct mg_flow_key flow; /* client -> VIP */
	__u32 l3_off;		 /* offset of the IP header */
	__u32 l4_off;		 /* offset of the TCP/UDP header (MG_PKT_FLOW) */
	__u32 ip_len;		 /* bytes of the IP packet (header included) */
	__u32 frag_id;		 /* fragments: IPv4 id (host order), IPv6 id (as on the wire) */
	__u8 kind;		 /* enum mg_pkt_kind */
	__u8 tos;		 /* IPv4 TOS / IPv6 traffic class: DSCP + ECN */
	__u8 tcp_flags;
	__u8 first_frag;	 /* first fragment of several */
};

/*
 * Reads the two ports at l4 (TCP or UDP), for TCP also the flags and a data-offset
 * check. `room` is what the IP length leaves for L4: frame padding is not a header.
 */
static __always_inline int mg_parse_ports(void *l4, void *data_end, __u32 room, __u8 proto,
					  __be16 *sport, __be16 *dport, __u8 *tcp_flags)
{
	if (proto == IPPROTO_TCP) {
		__u8 *th = l4;

		if ((void *)(th + 20) > data_end || room < 20)
			return MG_DROP(MG_LB_DROP_TRUNC_L4);
		if ((th[12] >> 4) < 5)
			return MG_DROP(MG_LB_DROP_BAD_L4);
		*tcp_flags = th[13];
	} else {
		if (l4 + 8 > data_end || room < 8)
			return MG_DROP(MG_LB_DROP_TRUNC_L4);
	}
	*sport = ((__be16 *)l4)[0];
	*dport = ((__be16 *)l4)[1];
	return MG_CONTINUE;
}

/*
 * The packet quoted by an ICMP error starts at `q`: the original packet from the VIP to
 * the client. Only its IP header and first 4 L4 bytes are needed. `ip_end` is where the
 * outer IP packet ends: frame padding after it is not part of the quote.
 */
static __always_inline int mg_parse_icmp4_quote(void *q, void *data_end, void *ip_end,
						struct mg_pkt *p, __be32 outer_dst)
{
	struct iphdr *in = q;
	__u32 ihl;
	__be16 *ports;

	if ((void *)(in + 1) > data_end || (void *)(in + 1) > ip_end)
		return MG_PASS(MG_LB_PASS_ICMP);
	ihl = in->ihl * 4;
	if (in->version != 4 || ihl < sizeof(*in))
		return MG_PASS(MG_LB_PASS_ICMP);
	if (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP)
		return MG_PASS(MG_LB_PASS_ICMP);
	/* A later fragment of the reply quotes payload, not ports. */
	if (in->frag_off & bpf_htons(MG_IP_OFFSET))
		return MG_PASS(MG_LB_PASS_ICMP);
	/* An error about the VIP's reply is addressed to the VIP. */
	if (in->saddr != outer_dst)
		return MG_PASS(MG_LB_PASS_ICMP);
	ports = q + ihl;
	if ((void *)(ports + 2) > data_end || (void *)(ports + 2) > ip_end)
		return MG_PASS(MG_LB_PASS_ICMP);
	p->flow.src[0] = in->daddr;
	p->flow.dst[0] = in->saddr;
	p->flow.sport = ports[1];
	p->flow.dport = ports[0];
	p->flow.proto = in->protocol;
	p->kind = MG_PKT_ICMP_ERROR;
	return MG_CONTINUE;
}

static __always_inline int mg_parse_ipv4(void *data, void *data_end, struct mg_pkt *p)
{
	struct iphdr *iph = data + p->l3_off;
	__u32 ihl, tot_len;
	__u16 frag;
	void *l4;

	if ((void *)(iph + 1) > data_end)
		return MG_DROP(MG_LB_DROP_TRUNC_IP);
	ihl = iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (iph->version != 4 || ihl < sizeof(*iph) || tot_len < ihl)
		return MG_DROP(MG_LB_DROP_BAD_IP);
	if (data + p->l3_off + tot_len > data_end)
		return MG_DROP(MG_LB_DROP_BAD_IP);

	p->flow.family = MG_AF_INET;
	p->flow.src[0] = iph->saddr;
	p->flow.dst[0] = iph->daddr;
	p->flow.proto = iph->protocol;
	p->ip_len = tot_len;
	p->tos = iph->tos;
	frag = bpf_ntohs(iph->frag_off);
	l4 = (void *)iph + ihl;
	if (l4 > data_end)
		return MG_DROP(MG_LB_DROP_BAD_IP);

	if (frag & MG_IP_OFFSET) {
		p->frag_id = bpf_ntohs(iph->id);
		p->kind = MG_PKT_FRAG_LATER;
		return MG_CONTINUE;
	}
	if (frag & MG_IP_MF) {
		p->frag_id = bpf_ntohs(iph->id);
		p->first_frag = 1;
	}

	switch (iph->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		p->l4_off = p->l3_off + ihl;
		return mg_parse_ports(l4, data_end, tot_len - ihl, iph->protocol, &p->flow.sport,
				      &p->flow.dport, &p->tcp_flags);
	case IPPROTO_ICMP: {
		__u8 *ic = l4;
		void *ip_end;

		/* A fragmented ICMP error (never needed: errors fit 576 bytes) goes to the stack
		 * whole: its later fragments carry no quote to steer them by. */
		if (p->first_frag)
			return MG_PASS(MG_LB_PASS_ICMP);
		if ((void *)(ic + MG_ICMP_HDR_LEN) > data_end || tot_len - ihl < MG_ICMP_HDR_LEN)
			return MG_PASS(MG_LB_PASS_ICMP);
		if (ic[0] != MG_ICMP_DEST_UNREACH && ic[0] != MG_ICMP_TIME_EXCEEDED)
			return MG_PASS(MG_LB_PASS_ICMP);
		ip_end = (void *)iph + tot_len;
		/* The compiler knows ip_end <= data_end and would drop the data_end checks that
		 * the verifier needs: hide where ip_end comes from. */
		barrier_var(ip_end);
		return mg_parse_icmp4_quote(ic + MG_ICMP_HDR_LEN, data_end, ip_end, p, iph->daddr);
	}
	default:
		return MG_PASS(MG_LB_PASS_NOT_VIP);
	}
}

static __always_inline int mg_parse_icmp6_quote(void *q, void *data_end, void *ip_end,
						struct mg_pkt *p,
						const struct in6_addr *outer_dst)
{
	struct ipv6hdr *in = q;
	__be16 *ports;
	__u8 proto;

	if ((void *)(in + 1) > data_end || (void *)(in + 1) > ip_end)
		return MG_PASS(MG_LB_PASS_ICMP);
	if (in->version != 6)
		return MG_PASS(MG_LB_PASS_ICMP);
	if (__builtin_memcmp(&in->saddr, outer_dst, sizeof(in->saddr)))
		return MG_PASS(MG_LB_PASS_ICMP);
	proto = in->nexthdr;
	ports = (void *)(in + 1);
	/* The first fragment of a fragmented reply quotes its fragment header, then the
	 * ports; a later one quotes payload. */
	if (proto == IPPROTO_FRAGMENT) {
		__u8 *fh = (void *)(in + 1);

		if ((void *)(fh + 8) > data_end || (void *)(fh + 8) > ip_end)
			return MG_PASS(MG_LB_PASS_ICMP);
		if (*(__be16 *)(fh + 2) & bpf_htons(MG_IP6_FRAG_OFFSET))
			return MG_PASS(MG_LB_PASS_ICMP);
		proto = fh[0];
		ports = (void *)(fh + 8);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return MG_PASS(MG_LB_PASS_ICMP);
	if ((void *)(ports + 2) > data_end || (void *)(ports + 2) > ip_end)
		return MG_PASS(MG_LB_PASS_ICMP);
	__builtin_memcpy(p->flow.src, &in->daddr, 16);
	__builtin_memcpy(p->flow.dst, &in->saddr, 16);
	p->flow.sport = ports[1];
	p->flow.dport = ports[0];
	p->flow.proto = proto;
	p->kind = MG_PKT_ICMP_ERROR;
	return MG_CONTINUE;
}

static __always_inline int mg_parse_ipv6(void *data, void *data_end, struct mg_pkt *p)
{
	struct ipv6hdr *ip6 = data + p->l3_off;
	__u32 payload_len;
	__u8 nexthdr;
	void *l4;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return MG_DROP(MG_LB_DROP_TRUNC_IP);
	payload_len = bpf_ntohs(ip6->payload_len);
	if (ip6->version != 6 || (void *)(ip6 + 1) + payload_len > data_end)
		return MG_DROP(MG_LB_DROP_BAD_IP);

	p->flow.family = MG_AF_INET6;
	__builtin_memcpy(p->flow.src, &ip6->saddr, 16);
	__builtin_memcpy(p->flow.dst, &ip6->daddr, 16);
	p->ip_len = sizeof(*ip6) + payload_len;
	p->tos = (bpf_ntohs(*(__be16 *)ip6) >> 4) & 0xff;
	nexthdr = ip6->nexthdr;
	l4 = ip6 + 1;

#pragma unroll
	for (i = 0; i < MG_IPV6_MAX_EXT_HDRS; i++) {
		__u8 *ext = l4;

		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS)
			break;
		if ((void *)(ext + 2) > data_end)
			return MG_DROP(MG_LB_DROP_BAD_EXT_HDR);
		nexthdr = ext[0];
		l4 += (ext[1] + 1) * 8;
	}
	if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS)
		return MG_DROP(MG_LB_DROP_BAD_EXT_HDR);
	if (nexthdr == IPPROTO_FRAGMENT) {
		__u8 *fh = l4;
		__u16 off;

		if ((void *)(fh + 8) > data_end || (__u32)((void *)(fh + 8) - (void *)ip6) > p->ip_len)
			return MG_DROP(MG_LB_DROP_BAD_EXT_HDR);
		off = bpf_ntohs(*(__be16 *)(fh + 2));
		nexthdr = fh[0];
		l4 = fh + 8;
		p->frag_id = *(__u32 *)(fh + 4);
		if (off & MG_IP6_FRAG_OFFSET) {
			p->flow.proto = nexthdr;
			p->kind = MG_PKT_FRAG_LATER;
			return MG_CONTINUE;
		}
		/* Offset 0 without M is an atomic fragment (RFC 6946): a whole packet. */
		p->first_frag = off & MG_IP6_FRAG_MORE;
		/* The first fragment balances by its ports: only an L4 header right after the
		 * fragment header is looked for. */
		if (p->first_frag && nexthdr != IPPROTO_TCP && nexthdr != IPPROTO_UDP &&
		    nexthdr != IPPROTO_ICMPV6)
			return MG_PASS(MG_LB_PASS_IPV6_FRAG);
	}
	p->flow.proto = nexthdr;

	switch (nexthdr) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		p->l4_off = (__u32)(l4 - data);
		if ((__u32)(l4 - (void *)ip6) > p->ip_len)
			return MG_DROP(MG_LB_DROP_BAD_EXT_HDR);
		return mg_parse_ports(l4, data_end, p->ip_len - (__u32)(l4 - (void *)ip6), nexthdr,
				      &p->flow.sport, &p->flow.dport, &p->tcp_flags);
	case IPPROTO_ICMPV6: {
		__u8 *ic = l4;
		void *ip_end = (void *)(ip6 + 1) + payload_len;

		if (p->first_frag) /* passed whole, as for IPv4 */
			return MG_PASS(MG_LB_PASS_ICMP);
		barrier_var(ip_end); /* as for IPv4: keep the data_end checks */
		if ((void *)(ic + MG_ICMP_HDR_LEN) > data_end || (void *)(ic + MG_ICMP_HDR_LEN) > ip_end)
			return MG_PASS(MG_LB_PASS_ICMP);
		if (ic[0] != MG_ICMPV6_DEST_UNREACH && ic[0] != MG_ICMPV6_PKT_TOOBIG &&
		    ic[0] != MG_ICMPV6_TIME_EXCEED)
			return MG_PASS(MG_LB_PASS_ICMP);
		return mg_parse_icmp6_quote(ic + MG_ICMP_HDR_LEN, data_end, ip_end, p, &ip6->daddr);
	}
	default:
		return MG_PASS(MG_LB_PASS_NOT_VIP);
	}
}

/* Parses the frame into p. See MG_CONTINUE / MG_PASS / MG_DROP for the result. */
static __always_inline int mg_parse(void *data, void *data_end, struct mg_pkt *p)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return MG_DROP(MG_LB_DROP_TRUNC_ETH);
	/* Only what every path reads is cleared: the flow key is hashed and used as a map
	 * key whole, so its unused words and padding must be zero. */
	__builtin_memset(&p->flow, 0, sizeof(p->flow));
	p->kind = MG_PKT_FLOW;
	p->tcp_flags = 0;
	p->first_frag = 0;
	p->frag_id = 0;
	p->l4_off = 0;
	p->l3_off = sizeof(*eth);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return mg_parse_ipv4(data, data_end, p);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return mg_parse_ipv6(data, data_end, p);
	return MG_PASS(MG_LB_PASS_NOT_IP);
}

#endif /* MESHGATE_BPF_LIB_PARSE_H */
