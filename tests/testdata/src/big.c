/* A large program: an unrolled mixing loop over packet bytes with map updates, for throughput figures and for
 * reading objects with many instructions and line records. ROUNDS sets the size (the committed object uses the
 * default; build bigger ones with -DROUNDS=N). */
#include "bpf_defs.h"

#ifndef ROUNDS
#define ROUNDS 512
#endif

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} mix SEC(".maps");

SEC("xdp")
int xdp_big(struct xdp_md *ctx)
{
	__u8 *data = (void *)(long)ctx->data;
	__u8 *end = (void *)(long)ctx->data_end;
	__u64 h = 0xcbf29ce484222325ull;

	if (data + 64 > end)
		return XDP_PASS;
#pragma clang loop unroll(full)
	for (int i = 0; i < ROUNDS; i++) {
		h ^= data[i & 63];
		h *= 0x100000001b3ull;
		h ^= h >> (i % 13 + 1);
		if ((i & 31) == 31) {
			__u32 key = i & 63;
			__u64 *slot = bpf_map_lookup_elem(&mix, &key);
			if (slot)
				*slot += h;
		}
	}
	return h & 1 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
