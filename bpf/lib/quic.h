/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * QUIC connection-ID steering (IETF QUIC-LB, draft-ietf-quic-load-balancers-21) for a VIP
 * flagged MG_VIP_F_QUIC. Version-invariant parsing (RFC 8999): long header -> DCID length
 * on the wire; short header -> the length comes from the config the CID's first octet
 * names. Encrypted configs are decoded in lib/quic_crypto.h. No filtering on the fixed bit, the packet type or unknown versions: a client's
 * Initial with a random DCID is simply unroutable and falls back to the 4-tuple hash.
 */
#ifndef MESHGATE_BPF_LIB_QUIC_H
#define MESHGATE_BPF_LIB_QUIC_H

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <meshgate/abi/lb.h>
#include <meshgate/abi/quic.h>

#include "lib/counters.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/quic_crypto.h"

#define MG_UDP_HDR_LEN 8
#define MG_QUIC_LONG_HDR_DCID_OFF 6 /* byte0, version(4), dcid_len */
#define MG_QUIC_MAX_L4_OFF 0x3ff

/*
 * Finds the backend that the packet's destination CID names. Returns MG_CONTINUE with
 * *backend_id set; MG_PASS(counter) for an unroutable CID (the caller falls back to the
 * 4-tuple and counts the reason); MG_DROP(QUIC_MALFORMED) for a v1/v2 header that is cut
 * short or carries a DCID longer than 20 octets.
 */
static __always_inline int mg_quic_route(void *data, void *data_end, const struct mg_pkt *p,
					 __u32 vip_id, __u32 *backend_id)
{
	struct mg_quic_config_key ck;
	struct mg_quic_server_key sk = {.vip_id = vip_id};
	struct mg_quic_config *cfg;
	__u8 *q, *dcid;
	__u32 *id, need;
	int i;

	/* A bounded offset for the verifier; real headers end far earlier. */
	if (p->l4_off > MG_QUIC_MAX_L4_OFF)
		return MG_DROP(MG_LB_DROP_QUIC_MALFORMED);
	q = data + (p->l4_off & MG_QUIC_MAX_L4_OFF) + MG_UDP_HDR_LEN;
	if ((void *)(q + 1) > data_end)
		return MG_DROP(MG_LB_DROP_QUIC_MALFORMED);
	if (q[0] & 0x80) {
		__u32 version;
		__u8 dcid_len;

		if ((void *)(q + MG_QUIC_LONG_HDR_DCID_OFF + 1) > data_end)
			return MG_DROP(MG_LB_DROP_QUIC_MALFORMED);
		version = bpf_ntohl(*(__be32 *)(q + 1));
		dcid_len = q[5];
		if (dcid_len > MG_QUIC_MAX_CID_LEN) {
			if (version == MG_QUIC_V1 || version == MG_QUIC_V2)
				return MG_DROP(MG_LB_DROP_QUIC_MALFORMED);
			return MG_PASS(MG_LB_QUIC_CID_LENGTH);
		}
		dcid = q + MG_QUIC_LONG_HDR_DCID_OFF;
		if ((void *)(dcid + dcid_len) > data_end)
			return MG_DROP(MG_LB_DROP_QUIC_MALFORMED);
		if (dcid_len == 0)
			return MG_PASS(MG_LB_QUIC_CID_LENGTH);
		need = dcid_len; /* checked against the config below */
	} else {
		dcid = q + 1;
		if ((void *)(dcid + 1) > data_end)
			return MG_DROP(MG_LB_DROP_QUIC_MALFORMED);
		need = MG_QUIC_MAX_CID_LEN + 1; /* unknown: bounded by the packet below */
	}

	/*
	 * The config key in one 8-octet store (vip_id, then the codepoint, then zero padding;
	 * the ABI struct is little-endian on every target we load on): the map hashes it as
	 * two words right away, and a key assembled from narrower stores would make those
	 * loads wait for the stores to retire instead of being forwarded from them.
	 */
	*(__u64 *)&ck = (__u64)vip_id | (__u64)(dcid[0] >> 5) << 32;
	if (ck.config_rotation == MG_QUIC_CONFIG_UNROUTABLE)
		return MG_PASS(MG_LB_QUIC_UNROUTABLE_CR);
	cfg = bpf_map_lookup_elem(&mg_quic_configs, &ck);
	if (!cfg)
		return MG_PASS(MG_LB_QUIC_UNKNOWN_CONFIG);
	/* Long header: the wire length must hold first octet + server ID + nonce. */
	if (need <= MG_QUIC_MAX_CID_LEN && need < 1u + cfg->server_id_len + cfg->nonce_len)
		return MG_PASS(MG_LB_QUIC_CID_LENGTH);
	if ((void *)(dcid + 1 + cfg->server_id_len + cfg->nonce_len) > data_end)
		return MG_PASS(MG_LB_QUIC_CID_LENGTH);
	/* Self-encoded length (draft §2.2): it must cover the config, fit the packet and, in
	 * a long header, agree with the DCID length on the wire. */
	if (cfg->flags & MG_QUIC_CFG_F_SELF_ENCODED_LEN) {
		__u32 cid_len = (dcid[0] & 0x1f) + 1u;

		if (cid_len < 1u + cfg->server_id_len + cfg->nonce_len)
			return MG_PASS(MG_LB_QUIC_CID_LENGTH);
		if (need <= MG_QUIC_MAX_CID_LEN ? cid_len != need
						: (void *)(dcid + cid_len) > data_end)
			return MG_PASS(MG_LB_QUIC_CID_LENGTH);
	}

	sk.config_rotation = ck.config_rotation;
	sk.server_id_len = cfg->server_id_len;
	if (cfg->algorithm != MG_QUIC_ALG_PLAINTEXT) {
		int rc = mg_quic_decode_sid(dcid, data_end, &ck, cfg, &sk);

		if (rc != MG_CONTINUE)
			return rc;
	} else {
#pragma unroll
		for (i = 0; i < MG_QUIC_MAX_SID_LEN; i++) {
			if (i >= cfg->server_id_len)
				break;
			if ((void *)(dcid + 2 + i) > data_end)
				return MG_PASS(MG_LB_QUIC_CID_LENGTH);
			sk.server_id[i] = dcid[1 + i];
		}
	}
	id = bpf_map_lookup_elem(&mg_quic_servers, &sk);
	if (!id)
		return MG_PASS(MG_LB_QUIC_UNKNOWN_SERVER);
	*backend_id = *id;
	return MG_CONTINUE;
}

/*
 * mg_quic_route() plus the live-backend check and the counters: MG_CONTINUE when the CID
 * names a live backend (quic_routed_cid), MG_PASS(...) when it is unroutable (reason and
 * quic_fallback counted; the caller uses the 4-tuple), MG_DROP(...) when malformed.
 * `known`/`known_id`: a backend the caller has already validated (the conntrack hit's), or
 * NULL.
 */
static __always_inline int mg_quic_choose(void *data, void *data_end, const struct mg_pkt *p,
					  __u32 vip_id, __u32 *backend_id, __u32 known_id,
					  const struct mg_backend *known)
{
	const struct mg_backend *be;
	int rc = mg_quic_route(data, data_end, p, vip_id, backend_id);

	if (rc < 0)
		return rc;
	/* The usual case on an established flow: the CID names the backend that conntrack
	 * already found live (and of the right generation), so it needs no second look. */
	if (rc == MG_CONTINUE && !(known && *backend_id == known_id)) {
		be = bpf_map_lookup_elem(&mg_backends, backend_id);
		if (!be || !(be->flags & MG_BACKEND_F_LIVE))
			rc = MG_PASS(MG_LB_QUIC_UNKNOWN_SERVER);
	}
	if (rc == MG_CONTINUE) {
		mg_count(MG_LB_QUIC_ROUTED_CID);
		return MG_CONTINUE;
	}
	mg_count(rc);
	mg_count(MG_LB_QUIC_FALLBACK);
	return rc;
}

#endif /* MESHGATE_BPF_LIB_QUIC_H */
