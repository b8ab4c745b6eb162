/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Inline checksums: no bpf_csum_diff calls (about 23 ns each on these machines). */
#ifndef MESHGATE_BPF_LIB_CSUM_H
#define MESHGATE_BPF_LIB_CSUM_H

#include <linux/ip.h>
#include <linux/types.h>

static __always_inline __u16 mg_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Header checksum of a 20-byte IPv4 header (its check field must be 0). */
static __always_inline __u16 mg_ipv4_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*iph) / 2); i++)
		sum += w[i];
	return mg_csum_fold(sum);
}

/* RFC 1624 incremental update of a checksum when a 16-bit word changes from old to new. */
static __always_inline __u16 mg_csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32) new;

	return mg_csum_fold(sum);
}

#endif /* MESHGATE_BPF_LIB_CSUM_H */
