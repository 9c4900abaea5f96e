/* XDP program with BTF-defined maps and global data in .data, .rodata and .bss. */
#include "bpf_defs.h"

struct counters {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct counters);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
} verdicts SEC(".maps");

/* .data: initialised, writable. */
__u64 packets_seen = 7;
__u32 drop_port = 9;
/* .rodata: constant configuration. */
const volatile __u32 max_len = 1500;
const volatile __u8 allow_big = 0;
/* .bss: zero-initialised. */
__u64 too_big;
__u64 total_bytes;

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 len = data_end - data;
	__u32 key = ctx->ingress_ifindex;
	__u32 verdict = XDP_PASS;
	struct counters *c;
	__u64 *v;

	packets_seen++;
	total_bytes += len;
	if (len > max_len && !allow_big) {
		too_big++;
		verdict = XDP_DROP;
	}
	c = bpf_map_lookup_elem(&flows, &key);
	if (c) {
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, len);
	} else {
		struct counters init = { 1, len };
		bpf_map_update_elem(&flows, &key, &init, BPF_NOEXIST);
	}
	v = bpf_map_lookup_elem(&verdicts, &verdict);
	if (v)
		*v += 1;
	return verdict;
}

char _license[] SEC("license") = "GPL";
