/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ABI of the XDP L4 load balancer (bpf/xdp_lb.bpf.c): map names, keys, values,
 * counters and drop reasons. The one definition, shared by BPF C and C++.
 *
 * Addresses are stored as four big-endian words; an IPv4 address uses word 0
 * and leaves words 1-3 zero. `family` is MG_AF_INET or MG_AF_INET6.
 */
#ifndef MESHGATE_ABI_LB_H
#define MESHGATE_ABI_LB_H

#include "common.h"

/* Capacities. Array maps are sized by these; the agent validates against them. */
#define MG_MAX_VIPS 4096
#define MG_MAX_BACKENDS 262144
/* Default Maglev table size per VIP (prime). */
#define MG_DEFAULT_RING_SIZE 65537
/* Largest table size the agent accepts (prime, ~1M). */
#define MG_MAX_RING_SIZE 1048573
/* Ring slot 0 holds the table size M; slots 1..M hold backend ids. */
#define MG_RING_HEADER_SLOTS 1

/* Bits of the VIP address filter: one bit per mg_addr_hash() % MG_VIP_FILTER_BITS. */
#define MG_VIP_FILTER_BITS 65536
#define MG_VIP_FILTER_WORDS (MG_VIP_FILTER_BITS / 64)

/* Map names; the agent pins each one at MG_PIN_ROOT "/" name. */
#define MG_MAP_VIPS "mg_vips"
#define MG_MAP_VIP_FILTER "mg_vip_filter"
#define MG_MAP_VIP_ADDRS "mg_vip_addrs"
#define MG_MAP_RINGS "mg_rings"
#define MG_MAP_BACKENDS "mg_backends"
#define MG_MAP_CONNTRACK "mg_conntrack"
#define MG_MAP_FRAGS "mg_frags"
#define MG_MAP_FRAGS6 "mg_frags6"
#define MG_MAP_GLOBALS "mg_globals"
#define MG_MAP_CONN_RATE "mg_conn_rate"
#define MG_MAP_NEXTHOPS "mg_nexthops"
#define MG_MAP_LB_STATS "mg_lb_stats"
#define MG_MAP_LB_DROPS "mg_lb_drops"
#define MG_MAP_VIP_STATS "mg_vip_stats"
#define MG_MAP_BACKEND_STATS "mg_backend_stats"

/* VIP lookup key. A port-less VIP has port 0 and matches any destination port. */
struct mg_vip_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;
};
MG_ABI_ASSERT(sizeof(struct mg_vip_key) == 20, "mg_vip_key ABI");

/* mg_vip_info.flags */
#define MG_VIP_F_PORTLESS (1u << 0) /* informational: key.port == 0 */
#define MG_VIP_F_QUIC (1u << 1)     /* route UDP by QUIC connection ID (abi/quic.h) */

struct mg_vip_info {
	__u32 vip_id; /* index into mg_rings and mg_vip_stats */
	__u32 flags;
};
MG_ABI_ASSERT(sizeof(struct mg_vip_info) == 8, "mg_vip_info ABI");

/* mg_backend.flags */
#define MG_BACKEND_F_LIVE (1u << 0) /* slot in use; conntrack entries to it are valid */

/*
 * A backend of one VIP: the same address behind two VIPs has two ids, so removing it
 * from one VIP moves exactly that VIP's flows.
 */
struct mg_backend {
	__be32 addr[4];
	__u32 vip_id; /* the VIP whose table names this backend */
	__u32 gen;    /* allocation generation: a reused id gets a new one */
	__u8 family;
	__u8 flags;   /* removal clears LIVE only, so a racing reader never sees a torn address */
	__u8 pad[6];
};
MG_ABI_ASSERT(sizeof(struct mg_backend) == 32, "mg_backend ABI");

/* Connection-tracking key: the client's 5-tuple as it arrives at the VIP. */
struct mg_flow_key {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};
MG_ABI_ASSERT(sizeof(struct mg_flow_key) == 40, "mg_flow_key ABI");

/* mg_flow_state.flags */
#define MG_FLOW_F_QUIC (1u << 0) /* a QUIC VIP's flow: a routable CID overrides the entry */

struct mg_flow_state {
	__u32 backend_id;
	__u32 vip_id;
	__u64 atime_ns;    /* last packet, UDP only (coarse clock) */
	__u32 backend_gen; /* mg_backend.gen when chosen: a hit on a reused id is a miss */
	__u8 flags;        /* MG_FLOW_F_* */
	__u8 pad[3];
};
MG_ABI_ASSERT(sizeof(struct mg_flow_state) == 24, "mg_flow_state ABI");

/* Fragment tracking: later fragments follow the first one's backend. IPv4: */
struct mg_frag_key {
	__be32 src;
	__be32 dst;
	__be16 id;
	__u8 proto;
	__u8 pad;
};
MG_ABI_ASSERT(sizeof(struct mg_frag_key) == 12, "mg_frag_key ABI");

/* IPv6 (the fragment header's 32-bit identification, as on the wire): */
struct mg_frag6_key {
	__be32 src[4];
	__be32 dst[4];
	__be32 id;
	__u8 proto; /* the fragment header's next header */
	__u8 pad[3];
};
MG_ABI_ASSERT(sizeof(struct mg_frag6_key) == 40, "mg_frag6_key ABI");

struct mg_frag_state {
	__u32 backend_id; /* 0: the first fragment was passed (a VIP address, no VIP port) */
	__u32 vip_id;
	__u32 backend_gen;
};
MG_ABI_ASSERT(sizeof(struct mg_frag_state) == 12, "mg_frag_state ABI");

/* Runtime settings, one entry at key 0, written by the agent before attach. */
struct mg_lb_globals {
	__be32 encap_src4;       /* outer IPv4 source: prefix bits */
	__be32 encap_src4_mask;  /* host bits taken from the flow hash */
	__be32 encap_src6[4];    /* outer IPv6 source: prefix bits */
	__be32 encap_src6_mask;  /* host bits of the last word taken from the flow hash */
	__u32 hash_seed;         /* flow hash seed; identical on every balancer */
	__u64 udp_idle_ns;       /* UDP conntrack entries older than this are stale */
	__u32 max_conn_rate;     /* conntrack inserts per CPU per second; 0 = no cap */
	__u8 outer_ttl;          /* TTL / hop limit of the outer header */
	__u8 pad[3];
};
MG_ABI_ASSERT(sizeof(struct mg_lb_globals) == 48, "mg_lb_globals ABI");

/* Per-CPU state of the conntrack insert guard. */
struct mg_conn_rate {
	__u64 window_start_ns;
	__u64 inserts;
};
MG_ABI_ASSERT(sizeof(struct mg_conn_rate) == 16, "mg_conn_rate ABI");

/*
 * Per-CPU cache of bpf_fib_lookup() results by backend id: a FIB lookup costs about as
 * much as the rest of the established path. An entry is used for MG_NEXTHOP_CACHE_NS
 * after its lookup (coarse clock), only for the same ingress interface, and only for
 * packets no longer than one the FIB already accepted (the MTU check stays exact).
 */
#define MG_NEXTHOP_CACHE_NS 1000000000ull

struct mg_nexthop {
	__u64 expires_ns;
	__u32 ifindex_in;
	__u32 ifindex_out;
	__u8 dmac[6];
	__u8 smac[6];
	__u16 max_len; /* largest outer L3 length the FIB accepted */
	__u8 pad[2];
};
MG_ABI_ASSERT(sizeof(struct mg_nexthop) == 32, "mg_nexthop ABI");

/* Per-VIP and per-backend traffic counters (per-CPU arrays). */
struct mg_traffic {
	__u64 packets;
	__u64 bytes;
};
MG_ABI_ASSERT(sizeof(struct mg_traffic) == 16, "mg_traffic ABI");

/*
 * Global counters of xdp_lb, indexed into mg_lb_stats. X(name, help):
 * the C enum is MG_LB_<name>; C++ prints the lower-case name.
 */
#define MG_LB_COUNTERS(X)                                                          \
	X(RX, "packets seen by xdp_lb")                                            \
	X(PASS_NOT_IP, "non-IP frames passed to the stack")                        \
	X(PASS_NOT_VIP, "IP packets not addressed to a VIP, passed")               \
	X(PASS_ICMP, "ICMP not about a balanced flow (echo, ...), passed")         \
	X(PASS_IPV6_FRAG, "IPv6 first fragments with no L4 header after the fragment header") \
	X(PASS_NO_NEIGH, "encapsulated packets handed to the stack for ARP/ND")    \
	X(TX, "packets forwarded with XDP_TX")                                     \
	X(REDIRECT, "packets forwarded with XDP_REDIRECT")                         \
	X(DROP, "packets dropped (see mg_lb_drops)")                               \
	X(CT_HIT, "conntrack hits")                                                \
	X(CT_MISS, "conntrack misses (new or unknown flow)")                       \
	X(CT_INSERT, "conntrack entries written")                                  \
	X(CT_INSERT_SKIPPED, "conntrack inserts skipped by the flood guard")       \
	X(CT_UDP_EXPIRED, "UDP entries found idle past udp_idle and re-chosen")   \
	X(CT_BACKEND_GONE, "entries whose backend was removed, re-chosen")         \
	X(TCP_SYN, "TCP SYNs, always chosen afresh")                               \
	X(ICMP_STEERED, "ICMP errors sent to the backend of their flow")           \
	X(FRAG_FIRST, "first fragments to a VIP address, tracked")                 \
	X(FRAG_FOLLOWED, "non-first fragments sent after their first")              \
	X(NEXTHOP_CACHED, "next hops taken from the per-CPU FIB cache")             \
	X(NEXTHOP_LOOKUP, "next hops looked up in the kernel FIB")                  \
	X(QUIC_ROUTED_CID, "QUIC packets routed by the server ID in their CID")     \
	X(QUIC_FALLBACK, "QUIC packets with an unroutable CID, routed by 4-tuple")  \
	X(QUIC_UNROUTABLE_CR, "unroutable: config rotation 0b111")                  \
	X(QUIC_UNKNOWN_CONFIG, "unroutable: no config at the CID's codepoint")      \
	X(QUIC_CID_LENGTH, "unroutable: CID length does not fit its config")      \
	X(QUIC_UNKNOWN_SERVER, "unroutable: server ID not mapped to a live backend") \
	X(QUIC_NO_DECODER, "unroutable: encrypted config, no key installed")        \
	X(QUIC_CID_CACHE_HIT, "encrypted CIDs whose server ID came from the cache") \
	X(QUIC_CID_DECODED, "encrypted CIDs decoded with AES (cache misses)")

#define MG_LB_X_ENUM(name, help) MG_LB_##name,
enum mg_lb_counter { MG_LB_COUNTERS(MG_LB_X_ENUM) MG_LB_COUNTER_MAX };

/* Drop reasons of xdp_lb, indexed into mg_lb_drops. */
#define MG_LB_DROPS(X)                                                             \
	X(TRUNC_ETH, "frame shorter than an Ethernet header")                      \
	X(TRUNC_IP, "truncated IPv4/IPv6 header")                                  \
	X(BAD_IP, "IP header invalid: version, IHL or total length")               \
	X(TRUNC_L4, "TCP/UDP header truncated")                                    \
	X(BAD_L4, "TCP data offset invalid")                                       \
	X(BAD_EXT_HDR, "IPv6 extension header chain truncated or too long")        \
	X(NO_RING, "VIP has no Maglev table (no backends)")                        \
	X(NO_BACKEND, "table slot names no live backend")                          \
	X(ENCAP_UNSUPPORTED, "IPv6 VIP with an IPv4 backend")                      \
	X(ENCAP_FAILED, "bpf_xdp_adjust_head failed")                              \
	X(FIB_FAILED, "no route to the backend (bpf_fib_lookup)")                  \
	X(FIB_FWD_DISABLED, "forwarding is off on the ingress interface")          \
	X(MTU_EXCEEDED, "encapsulated packet exceeds the egress MTU")              \
	X(NO_GLOBALS, "agent has not written mg_globals")                          \
	X(QUIC_MALFORMED, "QUIC v1/v2 header truncated or DCID longer than 20")    \
	X(FRAG_UNTRACKED, "non-first fragment to a VIP address before its first")

#define MG_LB_DROP_X_ENUM(name, help) MG_LB_DROP_##name,
enum mg_lb_drop { MG_LB_DROPS(MG_LB_DROP_X_ENUM) MG_LB_DROP_MAX };

#endif /* MESHGATE_ABI_LB_H */
