/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared ABI basics for meshgate: included verbatim by BPF C (clang -target bpf)
 * and by C++ (g++ -std=c++2b). Only fixed-width kernel types, explicit padding.
 */
#ifndef MESHGATE_ABI_COMMON_H
#define MESHGATE_ABI_COMMON_H

#include <linux/types.h>

/* g++ 12 rejects _Static_assert; C and BPF C reject static_assert without <assert.h>. */
#ifdef __cplusplus
#define MG_ABI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MG_ABI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Root of everything the agent pins in bpffs. */
#define MG_PIN_ROOT "/sys/fs/bpf/meshgate"
/* Sub-directory of the pin root that holds the per-VIP Maglev ring pairs. */
#define MG_PIN_RINGS_DIR "rings"
/* Sub-directory of the pin root that holds XDP links, one per interface. */
#define MG_PIN_LINKS_DIR "links"

/*
 * Host settings the agent changed (sysctls such as a balancer interface's forwarding),
 * with the value each had before, so that `meshgate-agent --detach` can put them back
 * after any number of agent restarts or crashes. The agent creates this hash map itself
 * (no program uses it) and pins it at <pin root>/mg_host_settings.
 */
#define MG_MAP_HOST_SETTINGS "mg_host_settings"
#define MG_HOST_SETTINGS_MAX 256

struct mg_host_setting_key {
	char sysctl[64]; /* below /proc/sys, NUL-padded: "net/ipv6/conf/eth0/forwarding" */
};
MG_ABI_ASSERT(sizeof(struct mg_host_setting_key) == 64, "mg_host_setting_key ABI");

struct mg_host_setting_value {
	__u64 netns_ino; /* the agent's network namespace (inode of /proc/self/ns/net) */
	char before[16]; /* the value read before the first change, NUL-padded */
};
MG_ABI_ASSERT(sizeof(struct mg_host_setting_value) == 24, "mg_host_setting_value ABI");

/* Address families as stored in map keys (values of AF_INET / AF_INET6). */
#define MG_AF_INET 2
#define MG_AF_INET6 10

#endif /* MESHGATE_ABI_COMMON_H */
