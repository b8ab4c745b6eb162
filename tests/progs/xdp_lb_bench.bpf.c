// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Benchmark harness for xdp_lb under BPF_PROG_TEST_RUN with `repeat`: the kernel does not
 * reset the packet between iterations, so each wrapper saves the first MG_BENCH_SAVE
 * bytes, runs its body, undoes any head adjustment and restores the bytes. The
 * restore-only wrappers measure what restoring costs, so it can be subtracted.
 */
#include "lib/lb.h"

#define MG_BENCH_SAVE 128 /* bench packets are at least this long */
#define MG_BENCH_ENCAP 20

struct mg_bench_bytes {
	__u8 b[MG_BENCH_SAVE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mg_bench_bytes);
} mg_bench_save SEC(".maps");

static __always_inline struct mg_bench_bytes *save(struct xdp_md *ctx, __u32 *len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct mg_bench_bytes *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&mg_bench_save, &zero);
	if (!s || data + MG_BENCH_SAVE > data_end)
		return NULL;
	__builtin_memcpy(s->b, data, MG_BENCH_SAVE);
	*len = data_end - data;
	return s;
}

static __always_inline int restore(struct xdp_md *ctx, struct mg_bench_bytes *s, __u32 len,
				   int act)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 cur = data_end - data;
	int delta;

	/* keep the length a scalar: no pointer arithmetic with an unbounded value */
	asm volatile("" : "+r"(cur));
	delta = (int)cur - (int)len;
	if (delta < -64 || delta > 64)
		return XDP_ABORTED;
	if (delta && bpf_xdp_adjust_head(ctx, delta))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + MG_BENCH_SAVE > data_end)
		return XDP_ABORTED;
	__builtin_memcpy(data, s->b, MG_BENCH_SAVE);
	return act;
}

SEC("xdp")
int bench_lb(struct xdp_md *ctx)
{
	struct mg_bench_bytes *s;
	__u32 len;

	s = save(ctx, &len);
	if (!s)
		return XDP_ABORTED;
	return restore(ctx, s, len, mg_lb_process(ctx));
}

/* Save and restore only: the harness cost for paths that do not move the head. */
SEC("xdp")
int bench_restore_only(struct xdp_md *ctx)
{
	struct mg_bench_bytes *s;
	__u32 len;

	s = save(ctx, &len);
	if (!s)
		return XDP_ABORTED;
	return restore(ctx, s, len, XDP_PASS);
}

/* Save, an encapsulation-sized head move, and restore: the harness cost for encap paths. */
SEC("xdp")
int bench_restore_adjust(struct xdp_md *ctx)
{
	struct mg_bench_bytes *s;
	__u32 len;

	s = save(ctx, &len);
	if (!s)
		return XDP_ABORTED;
	if (bpf_xdp_adjust_head(ctx, -MG_BENCH_ENCAP))
		return XDP_ABORTED;
	return restore(ctx, s, len, XDP_TX);
}

/* Installs QUIC-LB keys into this object's maps, as mg_quic_set_key does for xdp_lb. */
SEC("syscall")
int bench_quic_set_key(struct mg_quic_key_args *args)
{
	return mg_quic_set_key_body(args);
}

/* The floor: a trivial program. */
SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
