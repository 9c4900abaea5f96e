// SPDX-License-Identifier: GPL-2.0
/* xdp_pass_batch: hands a batch of frames to the kernel stack in one BPF_PROG_TEST_RUN call. The call runs in
 * live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES) with repeat N, on the interface and queue the frames came from:
 * each run takes the next frame user space wrote into `frames` (a mmapped array), turns the live frame into a copy
 * of it and returns XDP_PASS, so the kernel builds an skb of it and receives it on that interface. One call per
 * batch instead of one per frame: the kernel sets a page pool up and tears it down around every call.
 * `cursor` says which frame is next (user space sets it to 0 before a call) and counts the frames passed. */
#include "include/bpf_defs.h"

#define SLOTS 64
#define SLOT_DATA 3072

static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_tail;
static long (*bpf_xdp_store_bytes)(struct xdp_md *ctx, __u32 offset, void *from, __u32 len) = (void *)BPF_FUNC_xdp_store_bytes;

struct slot {
	__u32 len;
	__u32 pad;
	__u8 data[SLOT_DATA];
};

struct cursor {
	__u32 next;
	__u32 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct slot);
} frames SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct cursor);
} cursor SEC(".maps");

SEC("xdp")
int xdp_pass_batch(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct cursor *c = bpf_map_lookup_elem(&cursor, &zero);
	if (!c)
		return XDP_ABORTED;
	__u32 i = c->next++;
	struct slot *s = bpf_map_lookup_elem(&frames, &i);
	if (!s)
		return XDP_ABORTED;
	__u32 len = s->len;
	if (len < 14 || len > SLOT_DATA)
		return XDP_ABORTED;
	int delta = (int)len - (int)(ctx->data_end - ctx->data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, s->data, len))
		return XDP_ABORTED;
	c->passed++;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
