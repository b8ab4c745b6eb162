/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Encrypted QUIC-LB CIDs (draft-ietf-quic-load-balancers-21 §5.4), decoded in the kernel
 * with the BPF crypto kfuncs: single pass = one AES-128-ECB decrypt of the 16 octets
 * after the first; four-pass = the Feistel network run backwards (passes 4, 3, 2, and 1
 * unless the server ID is already whole in the left half), each pass one AES encrypt of
 * expand(). A port of agent/quic_lb.cc (FeistelState), the reference implementation.
 * Decoded server IDs are cached per CID, so only a connection's first packet pays AES.
 */
#ifndef MESHGATE_BPF_LIB_QUIC_CRYPTO_H
#define MESHGATE_BPF_LIB_QUIC_CRYPTO_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/lb.h>
#include <meshgate/abi/quic.h>

#include "lib/counters.h"
#include "lib/crypto.h"
#include "lib/maps.h"
#include "lib/parse.h"

#define MG_QUIC_AES_BLOCK 16
#define MG_QUIC_MAX_PLAINTEXT 19 /* server_id_len + nonce_len */
#define MG_QUIC_MAX_HALF 10      /* ceil(19 / 2) */

/* One AES-128-ECB block of s->in, in place (one dynptr keeps the call chain's stack small). */
static __always_inline int mg_quic_aes(struct bpf_crypto_ctx *cctx, struct mg_quic_scratch *s,
				       int decrypt)
{
	struct bpf_dynptr block;

	bpf_dynptr_from_mem(s->in, sizeof(s->in), 0, &block);
	if (decrypt)
		return bpf_crypto_decrypt(cctx, &block, &block, NULL);
	return bpf_crypto_encrypt(cctx, &block, &block, NULL);
}

/* For odd n both halves hold the middle octet: left its high nibble, right its low one. */
static __always_inline void mg_quic_clear_nibbles(struct mg_quic_scratch *s, __u32 n,
						  __u32 half_len)
{
	if (n & 1) {
		s->left[(half_len - 1) & 15] &= 0xf0;
		s->right[0] &= 0x0f;
	}
}

/*
 * Feistel pass p: odd passes XOR AES(expand(n, p, left)) into right, even ones
 * AES(expand(n, p, right)) into left; expand = half || zeros up to octet 14 || n || p.
 */
static __always_inline int mg_quic_feistel_pass(struct bpf_crypto_ctx *cctx,
						struct mg_quic_scratch *s, __u32 n,
						__u32 half_len, __u8 p)
{
	__u8 *in = (p & 1) ? s->left : s->right;
	__u8 *target = (p & 1) ? s->right : s->left;
	int i;

#pragma unroll
	for (i = 0; i < MG_QUIC_AES_BLOCK - 2; i++)
		s->in[i] = i < half_len ? in[i] : 0;
	s->in[MG_QUIC_AES_BLOCK - 2] = n;
	s->in[MG_QUIC_AES_BLOCK - 1] = p;
	if (mg_quic_aes(cctx, s, 0))
		return -1;
#pragma unroll
	for (i = 0; i < MG_QUIC_MAX_HALF; i++)
		if (i < half_len)
			target[i] ^= s->in[i];
	mg_quic_clear_nibbles(s, n, half_len);
	return 0;
}

/*
 * Decodes s->text[0..n) (the CID after its first octet) with the config's algorithm;
 * the server ID ends up in the first sid_len octets of *sid (a scratch array).
 */
static __always_inline int mg_quic_decrypt(struct bpf_crypto_ctx *cctx,
					   struct mg_quic_scratch *s, __u32 sid_len, __u32 n,
					   __u8 algorithm, __u8 **sid)
{
	__u32 half_len = (n + 1) / 2;
	int i;

	if (algorithm == MG_QUIC_ALG_SINGLE_PASS) {
		__builtin_memcpy(s->in, s->text, MG_QUIC_AES_BLOCK);
		if (mg_quic_aes(cctx, s, 1))
			return -1;
		*sid = s->in;
		return 0;
	}
#pragma unroll
	for (i = 0; i < 16; i++) {
		s->left[i] = i < half_len ? s->text[i] : 0;
		s->right[i] = i < half_len ? s->text[(n - half_len + i) & 31] : 0;
	}
	mg_quic_clear_nibbles(s, n, half_len);
	if (mg_quic_feistel_pass(cctx, s, n, half_len, 4) ||
	    mg_quic_feistel_pass(cctx, s, n, half_len, 3) ||
	    mg_quic_feistel_pass(cctx, s, n, half_len, 2))
		return -1;
	/* left is now left_0: a server ID within its whole octets needs no fourth pass. */
	if (sid_len <= n / 2) {
		*sid = s->left;
		return 0;
	}
	if (mg_quic_feistel_pass(cctx, s, n, half_len, 1))
		return -1;
	/* left || right, merging the shared middle octet when n is odd. */
#pragma unroll
	for (i = 0; i < 32; i++)
		s->text[i] = 0;
#pragma unroll
	for (i = 0; i < MG_QUIC_MAX_HALF; i++) {
		if (i < half_len) {
			s->text[i] |= s->left[i];
			s->text[(n - half_len + i) & 31] |= s->right[i];
		}
	}
	*sid = s->text;
	return 0;
}

/*
 * Fills sk->server_id from an encrypted CID of config cfg at codepoint ck. `dcid` points
 * at the CID's first octet, whose 1 + server_id_len + nonce_len octets the caller has
 * found inside the packet. Returns MG_CONTINUE, or MG_PASS(reason) when no key is
 * installed for the codepoint or the config cannot be decoded.
 */
static __noinline int mg_quic_decode_sid(__u8 *dcid, void *data_end,
					      const struct mg_quic_config_key *ck,
					      const struct mg_quic_config *cfg,
					      struct mg_quic_server_key *sk)
{
	struct mg_quic_cid_entry *hit;
	struct mg_quic_key_slot *slot;
	struct bpf_crypto_ctx *cctx;
	struct mg_quic_scratch *s;
	__u32 sid_len = cfg->server_id_len, n = sid_len + cfg->nonce_len, zero = 0;
	__u8 algorithm = cfg->algorithm;
	__u8 *sid = NULL;
	__u64 gen;
	int i;

	if (sid_len == 0 || sid_len > MG_QUIC_MAX_SID_LEN || n > MG_QUIC_MAX_PLAINTEXT ||
	    (algorithm == MG_QUIC_ALG_SINGLE_PASS) != (n == MG_QUIC_AES_BLOCK))
		return MG_PASS(MG_LB_QUIC_NO_DECODER);
	slot = bpf_map_lookup_elem(&mg_quic_keys, ck);
	if (!slot)
		return MG_PASS(MG_LB_QUIC_NO_DECODER);
	gen = slot->gen;
	asm volatile("" ::: "memory"); /* gen before ctx (see mg_quic_set_key_body) */
	cctx = slot->ctx;              /* RCU-protected in XDP; NULL once cleared */
	if (!cctx)
		return MG_PASS(MG_LB_QUIC_NO_DECODER);
	s = bpf_map_lookup_elem(&mg_quic_scratch, &zero);
	if (!s)
		return MG_PASS(MG_LB_QUIC_NO_DECODER);

	__builtin_memset(&s->cache_key, 0, sizeof(s->cache_key));
	s->cache_key.vip_id = ck->vip_id;
	s->cache_key.config_rotation = ck->config_rotation;
	s->cache_key.cid_len = 1 + n;
	s->cache_key.cid[0] = dcid[0];
#pragma unroll
	for (i = 0; i < MG_QUIC_MAX_PLAINTEXT; i++) {
		if (i < n) {
			if ((void *)(dcid + 2 + i) > data_end)
				return MG_PASS(MG_LB_QUIC_CID_LENGTH);
			s->cache_key.cid[1 + i] = dcid[1 + i];
		}
	}
	hit = bpf_map_lookup_elem(&mg_quic_cid_cache, &s->cache_key);
	if (hit && hit->key_gen == gen && hit->server_id_len == sid_len) {
		__builtin_memcpy(sk->server_id, hit->server_id, MG_QUIC_MAX_SID_LEN);
		mg_count(MG_LB_QUIC_CID_CACHE_HIT);
		return MG_CONTINUE;
	}

	__builtin_memcpy(s->text, &s->cache_key.cid[1], MG_QUIC_MAX_PLAINTEXT);
	if (mg_quic_decrypt(cctx, s, sid_len, n, algorithm, &sid) || !sid)
		return MG_PASS(MG_LB_QUIC_NO_DECODER);
	__builtin_memset(&s->entry, 0, sizeof(s->entry));
	s->entry.key_gen = gen;
	s->entry.server_id_len = sid_len;
#pragma unroll
	for (i = 0; i < MG_QUIC_MAX_SID_LEN; i++) {
		if (i < sid_len)
			s->entry.server_id[i] = sid[i];
	}
	__builtin_memcpy(sk->server_id, s->entry.server_id, MG_QUIC_MAX_SID_LEN);
	bpf_map_update_elem(&mg_quic_cid_cache, &s->cache_key, &s->entry, BPF_ANY);
	mg_count(MG_LB_QUIC_CID_DECODED);
	return MG_CONTINUE;
}

/*
 * Body of the SEC("syscall") program mg_quic_set_key (see struct mg_quic_key_args).
 * Publishing swaps the new context in and releases the old one after an RCU grace
 * period, so XDP programs still using it stay safe.
 */
static __always_inline int mg_quic_set_key_body(struct mg_quic_key_args *args)
{
	struct bpf_crypto_params params = {.type = "skcipher", .algo = "ecb(aes)"};
	struct mg_quic_config_key ck = {};
	struct mg_quic_key_slot fresh = {};
	struct mg_quic_key_slot *slot;
	struct bpf_crypto_ctx *cctx, *old;
	int err = 0;

	ck.vip_id = args->vip_id;
	ck.config_rotation = args->config_rotation;
	if (args->clear) {
		slot = bpf_map_lookup_elem(&mg_quic_keys, &ck);
		if (slot) {
			old = bpf_kptr_xchg(&slot->ctx, NULL);
			if (old)
				bpf_crypto_ctx_release(old);
			bpf_map_delete_elem(&mg_quic_keys, &ck);
		}
		args->err = 0;
		return 0;
	}
	params.key_len = MG_QUIC_KEY_LEN;
	__builtin_memcpy(params.key, args->key, MG_QUIC_KEY_LEN);
	cctx = bpf_crypto_ctx_create(&params, sizeof(params), &err);
	__builtin_memset(params.key, 0, MG_QUIC_KEY_LEN);
	if (!cctx) {
		args->err = err ? err : -22;
		return 0;
	}
	slot = bpf_map_lookup_elem(&mg_quic_keys, &ck);
	if (!slot) {
		err = bpf_map_update_elem(&mg_quic_keys, &ck, &fresh, BPF_NOEXIST);
		slot = bpf_map_lookup_elem(&mg_quic_keys, &ck);
	}
	if (!slot) {
		bpf_crypto_ctx_release(cctx);
		args->err = err ? err : -2;
		return 0;
	}
	/* gen after the swap: XDP reads gen first, so a new gen always comes with the new ctx. */
	old = bpf_kptr_xchg(&slot->ctx, cctx);
	slot->gen = bpf_ktime_get_ns();
	if (old)
		bpf_crypto_ctx_release(old);
	args->err = 0;
	return 0;
}

#endif /* MESHGATE_BPF_LIB_QUIC_CRYPTO_H */
