/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of xdp_lb, declared once, each with its purpose. Key and value types come
 * from the ABI header; the agent pins each map at MG_PIN_ROOT/<name>.
 */
#ifndef MESHGATE_BPF_LIB_MAPS_H
#define MESHGATE_BPF_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/lb.h>
#include <meshgate/abi/quic.h>

#include "lib/crypto.h"
#include "lib/globals.h" /* mg_globals: runtime settings (key 0), written by the agent */

/* VIP (address, port, protocol) -> vip id; port 0 = port-less VIP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_MAX_VIPS);
	__type(key, struct mg_vip_key);
	__type(value, struct mg_vip_info);
} mg_vips SEC(".maps");

/*
 * One bit per VIP address hash: most traffic that is not for a VIP leaves after one
 * inlined array read instead of two hash-map lookups.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MG_VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} mg_vip_filter SEC(".maps");

/*
 * (address, protocol) of every VIP, port 0 -> how many VIPs it has: the exact answer
 * behind the filter, for later fragments, which carry no ports. Twice MG_MAX_VIPS: while a
 * config is applied it holds the old VIPs' addresses and the new ones'.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_MAX_VIPS * 2);
	__type(key, struct mg_vip_key);
	__type(value, __u32);
} mg_vip_addrs SEC(".maps");

/*
 * vip id -> that VIP's Maglev table, an inner ARRAY of __u32: slot 0 holds the table
 * size M, slots 1..M the backend ids. The agent fills a spare table and swaps this
 * entry, so a packet sees one whole table, never half of two.
 */
struct mg_ring_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP); /* inner tables differ in size */
	__uint(max_entries, MG_DEFAULT_RING_SIZE + MG_RING_HEADER_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MG_MAX_VIPS);
	__type(key, __u32);
	__array(values, struct mg_ring_inner);
} mg_rings SEC(".maps");

/* backend id -> address; an entry without MG_BACKEND_F_LIVE is free. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct mg_backend);
} mg_backends SEC(".maps");

/*
 * Connection tracking: client 5-tuple -> backend. LRU with per-CPU LRU lists (RSS keeps
 * a flow on one CPU, so lists need no cross-CPU locking); the agent sizes it before load.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, 262144);
	__type(key, struct mg_flow_key);
	__type(value, struct mg_flow_state);
} mg_conntrack SEC(".maps");

/* IPv4 fragment (source, destination, id, protocol) -> the backend of its first fragment. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mg_frag_key);
	__type(value, struct mg_frag_state);
} mg_frags SEC(".maps");

/* The same for IPv6 fragments. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mg_frag6_key);
	__type(value, struct mg_frag_state);
} mg_frags6 SEC(".maps");


/* Per-CPU window of the conntrack insert guard (key 0). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_conn_rate);
} mg_conn_rate SEC(".maps");

/* backend id -> cached FIB result on this CPU (see struct mg_nexthop). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct mg_nexthop);
} mg_nexthops SEC(".maps");

/* QUIC-LB: (VIP, config rotation) -> CID layout. Two codepoints may be live at once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_MAX_VIPS * 2);
	__type(key, struct mg_quic_config_key);
	__type(value, struct mg_quic_config);
} mg_quic_configs SEC(".maps");

/* QUIC-LB: (VIP, config rotation, server ID) -> backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mg_quic_server_key);
	__type(value, __u32);
} mg_quic_servers SEC(".maps");

/*
 * QUIC-LB: (VIP, config rotation) -> the AES-128-ECB context of an encrypted config.
 * BPF-only value (a kptr is invisible to user space: a lookup reads 0); written only by
 * the SEC("syscall") program mg_quic_set_key. `gen` (the install time) tells cached
 * decodes of an earlier key apart.
 */
struct mg_quic_key_slot {
	struct bpf_crypto_ctx __kptr *ctx;
	__u64 gen;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MG_MAX_VIPS * 2);
	__type(key, struct mg_quic_config_key);
	__type(value, struct mg_quic_key_slot);
} mg_quic_keys SEC(".maps");

/* QUIC-LB: decoded encrypted CIDs -> server ID; a connection's later packets skip AES. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mg_quic_cid_key);
	__type(value, struct mg_quic_cid_entry);
} mg_quic_cid_cache SEC(".maps");

/*
 * Per-CPU AES scratch: bpf_dynptr_from_mem() takes map memory, not the stack. Also holds
 * the Feistel halves so that their variable indexes stay inside one map value.
 */
struct mg_quic_scratch {
	__u8 in[16]; /* AES block, encrypted or decrypted in place */
	__u8 left[16];
	__u8 right[16];
	__u8 text[32];
	struct mg_quic_cid_key cache_key;
	struct mg_quic_cid_entry entry;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_quic_scratch);
} mg_quic_scratch SEC(".maps");

/* Global counters, indexed by enum mg_lb_counter. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_LB_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mg_lb_stats SEC(".maps");

/* Drops, indexed by enum mg_lb_drop. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_LB_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mg_lb_drops SEC(".maps");

/* Traffic per VIP (by vip id), as received. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct mg_traffic);
} mg_vip_stats SEC(".maps");

/* Traffic per backend (by backend id), as received, before encapsulation. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct mg_traffic);
} mg_backend_stats SEC(".maps");

#endif /* MESHGATE_BPF_LIB_MAPS_H */
