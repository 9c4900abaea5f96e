// SPDX-License-Identifier: GPL-2.0
/* Bench: the smallest XDP program, the reference every other figure is compared with. */
#include "../include/bpf_defs.h"

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
