// SPDX-License-Identifier: GPL-2.0
/* Bench: parse, look the source address up in a hash map (the bench fills 1, 1k or 1M entries; max_entries
 * may be lowered by the loader), count the packet in a per-CPU array, drop sources found in the map. */
#include "bench_parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
} sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

SEC("xdp")
int xdp_hash_lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct udphdr *udp;
	struct iphdr *ip = parse_udp4(data, data_end, &udp);
	if (!ip)
		return XDP_PASS;
	__u32 source = ip->saddr;
	__u32 *found = bpf_map_lookup_elem(&sources, &source);
	__u32 slot = found ? 1 : 0;
	__u64 *count = bpf_map_lookup_elem(&counters, &slot);
	if (count)
		*count += 1;
	return found ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
