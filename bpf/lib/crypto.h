/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel's BPF crypto kfuncs (kernel/bpf/crypto.c, 6.10+), declared by hand so the
 * objects keep building from UAPI headers without a vmlinux.h. create/release may be
 * called only from SEC("syscall") programs, encrypt/decrypt only from XDP and TC; a ctx
 * is kept in a map as a __kptr (clang 18+ emits the btf_type_tag the kernel needs).
 */
#ifndef MESHGATE_BPF_LIB_CRYPTO_H
#define MESHGATE_BPF_LIB_CRYPTO_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Opaque; a struct with a body because the kptr field is matched by name in vmlinux BTF. */
struct bpf_crypto_ctx {
	int __opaque;
};

/* The kernel's layout: bpf_crypto_ctx_create() fails with -EINVAL unless the size is 408. */
struct bpf_crypto_params {
	char type[14];
	__u8 reserved[2];
	char algo[128];
	__u8 key[256];
	__u32 key_len;
	__u32 authsize;
};

extern struct bpf_crypto_ctx *bpf_crypto_ctx_create(const struct bpf_crypto_params *params,
						    __u32 params__sz, int *err) __ksym;
extern void bpf_crypto_ctx_release(struct bpf_crypto_ctx *ctx) __ksym;
extern int bpf_crypto_encrypt(struct bpf_crypto_ctx *ctx, const struct bpf_dynptr *src,
			      const struct bpf_dynptr *dst,
			      const struct bpf_dynptr *siv__nullable) __ksym;
extern int bpf_crypto_decrypt(struct bpf_crypto_ctx *ctx, const struct bpf_dynptr *src,
			      const struct bpf_dynptr *dst,
			      const struct bpf_dynptr *siv__nullable) __ksym;

#endif /* MESHGATE_BPF_LIB_CRYPTO_H */
