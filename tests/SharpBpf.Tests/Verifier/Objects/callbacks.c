/* bpf_loop callbacks that change the caller's state: a counter on the caller's stack, incremented by the callback
 * through its context pointer, then used by the caller as an index. The kernel checks the code after the call for
 * every number of runs (0 up to nr_loops): 8 runs stay inside the 16-byte buffer (accepted), 64 do not (refused),
 * and `count - 1` is negative when the callback never ran (a map value offset of -1: refused unless checked). */
#include "../../../testdata/src/bpf_defs.h"

struct loop_ctx {
	__u64 count;
};

static long count_run(__u32 index, void *data)
{
	struct loop_ctx *c = data;
	c->count++;
	return 0;
}

SEC("xdp")
int loop_index_in_bounds(struct xdp_md *ctx)
{
	struct loop_ctx c = { 0 };
	volatile __u8 buf[16] = { 0 };
	bpf_loop(8, count_run, &c, 0);
	buf[c.count] = 1;
	return buf[3] ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int loop_index_overflow(struct xdp_md *ctx)
{
	struct loop_ctx c = { 0 };
	volatile __u8 buf[16] = { 0 };
	bpf_loop(64, count_run, &c, 0);
	buf[c.count] = 1;
	return buf[3] ? XDP_PASS : XDP_DROP;
}

struct bytes {
	__u8 b[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct bytes);
	__uint(max_entries, 1);
} slots SEC(".maps");

SEC("xdp")
int loop_last_index_unchecked(struct xdp_md *ctx)
{
	struct loop_ctx c = { 0 };
	__u32 key = 0;
	bpf_loop(8, count_run, &c, 0);
	struct bytes *v = bpf_map_lookup_elem(&slots, &key);
	if (!v)
		return XDP_DROP;
	v->b[c.count - 1] = 1;
	return XDP_PASS;
}

SEC("xdp")
int loop_last_index_checked(struct xdp_md *ctx)
{
	struct loop_ctx c = { 0 };
	__u32 key = 0;
	bpf_loop(8, count_run, &c, 0);
	struct bytes *v = bpf_map_lookup_elem(&slots, &key);
	if (!v || c.count == 0)
		return XDP_DROP;
	v->b[c.count - 1] = 1;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
