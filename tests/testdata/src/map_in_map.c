/* Map-in-map with initial values, a pinned map, a program array filled with programs, and a devmap. */
#include "bpf_defs.h"

static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)12;

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
};

struct inner inner_a SEC(".maps");
struct inner inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [2] = &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 16);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 64);
		__type(key, __u64);
		__type(value, __u64);
	});
} outer_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, PIN_BY_NAME);
} pinned_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 8);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct bpf_devmap_val));
} ports SEC(".maps");

int tail_target(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__array(values, int(void *));
} jump_table SEC(".maps") = {
	.values = { [1] = (void *)&tail_target },
};

SEC("xdp")
int tail_target(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int xdp_outer(struct xdp_md *ctx)
{
	__u32 key = 0, idx = 1;
	__u64 k64 = 5, *count;
	void *inner = bpf_map_lookup_elem(&outer, &key);
	__u32 *v;

	if (inner) {
		v = bpf_map_lookup_elem(inner, &idx);
		if (v)
			*v += 1;
	}
	inner = bpf_map_lookup_elem(&outer_hash, &key);
	if (inner) {
		count = bpf_map_lookup_elem(inner, &k64);
		if (count)
			*count += 1;
	}
	count = bpf_map_lookup_elem(&pinned_counts, &key);
	if (count)
		*count += 1;
	bpf_tail_call(ctx, &jump_table, 1);
	return bpf_redirect_map(&ports, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
