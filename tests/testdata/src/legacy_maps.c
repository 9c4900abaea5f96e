/* Legacy struct bpf_map_def maps in the "maps" section and a "version" section. */
#include "bpf_defs.h"

struct bpf_map_def SEC("maps") counters = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 256,
};

struct bpf_map_def SEC("maps") seen = {
	.type = BPF_MAP_TYPE_LRU_HASH,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u32),
	.max_entries = 4096,
	.map_flags = 0,
};

SEC("xdp")
int xdp_legacy(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index & 0xff;
	__u64 *count = bpf_map_lookup_elem(&counters, &key);
	__u32 one = 1;

	if (count)
		*count += 1;
	bpf_map_update_elem(&seen, &key, &one, BPF_ANY);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
__u32 _version SEC("version") = 0x050f00;
