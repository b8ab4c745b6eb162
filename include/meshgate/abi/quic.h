/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ABI of QUIC connection-ID steering in xdp_lb (IETF QUIC-LB,
 * draft-ietf-quic-load-balancers-21): a VIP flagged MG_VIP_F_QUIC routes UDP packets by
 * the server ID encoded in the QUIC destination connection ID; unroutable CIDs fall back
 * to the 4-tuple Maglev hash with connection tracking.
 */
#ifndef MESHGATE_ABI_QUIC_H
#define MESHGATE_ABI_QUIC_H

#include "common.h"

#define MG_QUIC_MAX_CID_LEN 20
#define MG_QUIC_MAX_SID_LEN 15
#define MG_QUIC_CONFIG_UNROUTABLE 7 /* config rotation codepoint 0b111 */
#define MG_QUIC_V1 0x00000001u
#define MG_QUIC_V2 0x6b3343cfu

#define MG_MAP_QUIC_CONFIGS "mg_quic_configs"
#define MG_MAP_QUIC_SERVERS "mg_quic_servers"
#define MG_MAP_QUIC_KEYS "mg_quic_keys"           /* BPF-only value: holds a kptr */
#define MG_MAP_QUIC_CID_CACHE "mg_quic_cid_cache"
#define MG_PROG_QUIC_SET_KEY "mg_quic_set_key"    /* SEC("syscall"), ctx mg_quic_key_args */
#define MG_QUIC_KEY_LEN 16                        /* AES-128 */

/* mg_quic_config.algorithm */
#define MG_QUIC_ALG_PLAINTEXT 0
#define MG_QUIC_ALG_SINGLE_PASS 1 /* AES-128-ECB of the 16-octet server ID + nonce */
#define MG_QUIC_ALG_FOUR_PASS 2   /* the draft's four-pass Feistel */

/* (VIP, config rotation codepoint) -> how its CIDs are built. */
struct mg_quic_config_key {
	__u32 vip_id;
	__u8 config_rotation;
	__u8 pad[3];
};
MG_ABI_ASSERT(sizeof(struct mg_quic_config_key) == 8, "mg_quic_config_key ABI");

/* mg_quic_config.flags */
#define MG_QUIC_CFG_F_SELF_ENCODED_LEN (1u << 0) /* first octet's low 5 bits = CID length - 1 */

struct mg_quic_config {
	__u8 server_id_len;
	__u8 nonce_len;
	__u8 algorithm;
	__u8 flags; /* MG_QUIC_CFG_F_* */
};
MG_ABI_ASSERT(sizeof(struct mg_quic_config) == 4, "mg_quic_config ABI");

/* (VIP, config rotation, server ID) -> backend id. Unused sid bytes are zero. */
struct mg_quic_server_key {
	__u32 vip_id;
	__u8 config_rotation;
	__u8 server_id_len;
	__u8 server_id[MG_QUIC_MAX_SID_LEN];
	__u8 pad[3];
};
MG_ABI_ASSERT(sizeof(struct mg_quic_server_key) == 24, "mg_quic_server_key ABI");

/*
 * Context of the SEC("syscall") program mg_quic_set_key, run with BPF_PROG_TEST_RUN
 * (ctx_in only): installs the AES-128 key of (vip_id, config_rotation) into mg_quic_keys,
 * releasing the key it replaces, or removes it when `clear` is set. The program writes
 * `err` (0 or a negative errno) back into the caller's buffer.
 */
struct mg_quic_key_args {
	__u32 vip_id;
	__u8 config_rotation;
	__u8 clear;
	__u8 pad[2];
	__u8 key[MG_QUIC_KEY_LEN];
	__s32 err;
};
MG_ABI_ASSERT(sizeof(struct mg_quic_key_args) == 28, "mg_quic_key_args ABI");

/*
 * Decoded CIDs of encrypted configs (LRU): the CID's first octet plus its
 * server_id_len + nonce_len octets, zero-padded -> the server ID, so only a
 * connection's first packet pays for AES.
 */
struct mg_quic_cid_key {
	__u32 vip_id;
	__u8 config_rotation;
	__u8 cid_len; /* octets of cid[] used: 1 + server_id_len + nonce_len */
	__u8 cid[MG_QUIC_MAX_CID_LEN];
	__u8 pad[2];
};
MG_ABI_ASSERT(sizeof(struct mg_quic_cid_key) == 28, "mg_quic_cid_key ABI");

struct mg_quic_cid_entry {
	__u64 key_gen; /* generation of the key that decoded it; another key misses */
	__u8 server_id_len;
	__u8 server_id[MG_QUIC_MAX_SID_LEN];
};
MG_ABI_ASSERT(sizeof(struct mg_quic_cid_entry) == 24, "mg_quic_cid_entry ABI");

#endif /* MESHGATE_ABI_QUIC_H */
