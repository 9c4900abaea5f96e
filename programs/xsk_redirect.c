// SPDX-License-Identifier: GPL-2.0
/* xsk_redirect: the default program behind an AF_XDP socket. A frame arriving on rx queue N goes to the
 * socket user space placed at index N of xsks_map; with no socket there it continues to the kernel stack
 * (the low bits of bpf_redirect_map's flags are the action taken when the lookup fails). */
#include "include/bpf_defs.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

SEC("xdp")
int xsk_redirect(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
