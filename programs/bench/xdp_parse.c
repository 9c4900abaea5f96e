// SPDX-License-Identifier: GPL-2.0
/* Bench: parse Ethernet/IPv4/UDP with bounds checks; pass UDP to port 9, drop the rest. */
#include "bench_parse.h"

SEC("xdp")
int xdp_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct udphdr *udp;
	struct iphdr *ip = parse_udp4(data, data_end, &udp);
	if (!ip)
		return XDP_DROP;
	return udp->dest == bpf_htons(9) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
