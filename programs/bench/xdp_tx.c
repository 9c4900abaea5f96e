// SPDX-License-Identifier: GPL-2.0
/* Bench: a traffic generator. Run with BPF_PROG_TEST_RUN in live-frames mode on one veth end, it sends every
 * frame out of that end (XDP_TX), so the frames arrive at the peer's XDP hook as real traffic. */
#include "../include/bpf_defs.h"

SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
