/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Counting verdicts and traffic into the per-CPU arrays declared in maps.h. */
#ifndef MESHGATE_BPF_LIB_COUNTERS_H
#define MESHGATE_BPF_LIB_COUNTERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "lib/parse.h"

static __always_inline void mg_count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&mg_lb_stats, &counter);

	if (v)
		*v += 1;
}

static __always_inline int mg_drop(int rc)
{
	__u32 reason = MG_DROP_REASON(rc);
	__u64 *v = bpf_map_lookup_elem(&mg_lb_drops, &reason);

	if (v)
		*v += 1;
	mg_count(MG_LB_DROP);
	return XDP_DROP;
}

static __always_inline void mg_account(void *map, __u32 id, __u32 bytes)
{
	struct mg_traffic *t = bpf_map_lookup_elem(map, &id);

	if (t) {
		t->packets += 1;
		t->bytes += bytes;
	}
}

#endif /* MESHGATE_BPF_LIB_COUNTERS_H */
