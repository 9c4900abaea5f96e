// SPDX-License-Identifier: GPL-2.0
/* Bench: parse, look the destination address up in an LPM trie (the bench fills 10k prefixes), drop on a hit. */
#include "bench_parse.h"

struct lpm_v4_key {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} prefixes SEC(".maps");

SEC("xdp")
int xdp_lpm_lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct udphdr *udp;
	struct iphdr *ip = parse_udp4(data, data_end, &udp);
	if (!ip)
		return XDP_PASS;
	struct lpm_v4_key key = { .prefixlen = 32, .addr = ip->daddr };
	return bpf_map_lookup_elem(&prefixes, &key) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
