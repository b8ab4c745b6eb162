/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash, shared by BPF C and C++ so that tests and tools can predict the
 * data path's choices. Bob Jenkins' lookup3 mixing (public domain), the same
 * construction as the kernel's jhash_3words. Every balancer given the same seed
 * computes the same hash for a flow: that is what keeps ECMP peers in agreement.
 */
#ifndef MESHGATE_ABI_HASH_H
#define MESHGATE_ABI_HASH_H

#include "lb.h"

#define MG_JHASH_INITVAL 0xdeadbeefu

static inline __u32 mg_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

#define MG_JHASH_MIX(a, b, c)                                                      \
	do {                                                                       \
		a -= c; a ^= mg_rol32(c, 4);  c += b;                              \
		b -= a; b ^= mg_rol32(a, 6);  a += c;                              \
		c -= b; c ^= mg_rol32(b, 8);  b += a;                              \
		a -= c; a ^= mg_rol32(c, 16); c += b;                              \
		b -= a; b ^= mg_rol32(a, 19); a += c;                              \
		c -= b; c ^= mg_rol32(b, 4);  b += a;                              \
	} while (0)

#define MG_JHASH_FINAL(a, b, c)                                                    \
	do {                                                                       \
		c ^= b; c -= mg_rol32(b, 14);                                      \
		a ^= c; a -= mg_rol32(c, 11);                                      \
		b ^= a; b -= mg_rol32(a, 25);                                      \
		c ^= b; c -= mg_rol32(b, 16);                                      \
		a ^= c; a -= mg_rol32(c, 4);                                       \
		b ^= a; b -= mg_rol32(a, 14);                                      \
		c ^= b; c -= mg_rol32(b, 24);                                      \
	} while (0)

/* The 5-tuple hash used for Maglev slot choice and the outer source address. */
static inline __u32 mg_flow_hash(const struct mg_flow_key *k, __u32 seed)
{
	__u32 ports = ((__u32)k->sport << 16) | (__u32)k->dport;
	__u32 a, b, c;

	if (k->family == MG_AF_INET) {
		a = k->src[0] + MG_JHASH_INITVAL + (3 << 2) + seed;
		b = k->dst[0] + MG_JHASH_INITVAL + (3 << 2) + seed;
		c = (ports ^ k->proto) + MG_JHASH_INITVAL + (3 << 2) + seed;
		MG_JHASH_FINAL(a, b, c);
		return c;
	}
	a = b = c = MG_JHASH_INITVAL + (9 << 2) + seed;
	a += k->src[0]; b += k->src[1]; c += k->src[2];
	MG_JHASH_MIX(a, b, c);
	a += k->src[3]; b += k->dst[0]; c += k->dst[1];
	MG_JHASH_MIX(a, b, c);
	a += k->dst[2]; b += k->dst[3]; c += ports ^ k->proto;
	MG_JHASH_FINAL(a, b, c);
	return c;
}

/*
 * Hash of a destination address for the VIP address filter (mg_vip_filter): a packet whose
 * address bit is clear is not for any VIP, and passes without a hash-map lookup.
 */
static inline __u32 mg_addr_hash(const __be32 *addr, __u8 family)
{
	__u32 a = addr[0] + MG_JHASH_INITVAL, b = MG_JHASH_INITVAL, c = MG_JHASH_INITVAL + family;

	if (family == MG_AF_INET6) {
		b += addr[1];
		c += addr[2];
		MG_JHASH_MIX(a, b, c);
		a += addr[3];
	}
	MG_JHASH_FINAL(a, b, c);
	return c;
}

#endif /* MESHGATE_ABI_HASH_H */
