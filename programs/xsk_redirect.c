// SPDX-License-Identifier: GPL-2.0
/* xsk_redirect: the default program behind an AF_XDP socket. A frame arriving on rx queue N goes to the
 * socket user space placed at index N of xsks_map; with no socket there it continues to the kernel stack
 * (the low bits of bpf_redirect_map's flags are the action taken when the lookup fails).
 *
 * It also hands frames user space took back to the kernel stack (the PASS of SharpBpf's user-space datapath), a
 * batch per BPF_PROG_TEST_RUN call: user space writes the frames into inject_frames (a mmapped array), sets
 * inject_cursor to 0 and test-runs this program in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES) with repeat N
 * on the frames' interface and queue, on a frame whose 4 bytes of metadata hold INJECT_MAGIC. Each run turns the
 * live frame into the next stored frame and returns XDP_PASS, so the kernel builds an skb of it and receives it
 * on that interface; a frame whose slot names an entry of inject_xsks is redirected into that AF_XDP socket
 * instead (the call then names the socket's interface and queue). Why here and not in a program of its own: a test run with repeat > 1 adds its program to
 * the kernel's XDP dispatcher and removes it afterwards, two RCU grace periods (~30 ms) per call, unless the
 * program is attached already, as this one is. Frames from a wire never carry metadata at this hook. */
#include "include/bpf_defs.h"

#define INJECT_MAGIC 0x53425046 /* "FPBS" in memory: SharpBpf */
#define INJECT_SLOTS 64
#define INJECT_DATA 3072

static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_tail;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *ctx, int delta) = (void *)BPF_FUNC_xdp_adjust_meta;
static long (*bpf_xdp_store_bytes)(struct xdp_md *ctx, __u32 offset, void *from, __u32 len) = (void *)BPF_FUNC_xdp_store_bytes;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct inject_slot {
	__u32 len;
	__u32 xsk;    /* 0: XDP_PASS; k: redirect to inject_xsks[k - 1] */
	__u8 data[INJECT_DATA];
};

struct inject_cursor {
	__u32 next;   /* the run's position in order */
	__u32 passed; /* runs that passed or redirected their frame */
	__u32 order[INJECT_SLOTS]; /* the slots this call's runs take, in turn */
};

/* AF_XDP sockets frames are delivered to (the target socket must be bound to the interface and queue the call names). */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, INJECT_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} inject_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INJECT_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct inject_slot);
} inject_frames SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct inject_cursor);
} inject_cursor SEC(".maps");

static __always_inline int inject(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct inject_cursor *c = bpf_map_lookup_elem(&inject_cursor, &zero);
	if (!c)
		return XDP_ABORTED;
	__u32 n = c->next++;
	if (n >= INJECT_SLOTS)
		return XDP_ABORTED;
	__u32 i = c->order[n];
	struct inject_slot *s = bpf_map_lookup_elem(&inject_frames, &i);
	if (!s)
		return XDP_ABORTED;
	__u32 len = s->len;
	if (len < 14 || len > INJECT_DATA)
		return XDP_ABORTED;
	if (bpf_xdp_adjust_meta(ctx, 4)) /* the marker does not go up the stack */
		return XDP_ABORTED;
	int delta = (int)len - (int)(ctx->data_end - ctx->data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, s->data, len))
		return XDP_ABORTED;
	__u32 xsk = s->xsk;
	if (xsk) {
		long action = bpf_redirect_map(&inject_xsks, xsk - 1, XDP_ABORTED);
		if (action == XDP_REDIRECT)
			c->passed++;
		return action;
	}
	c->passed++;
	return XDP_PASS;
}

SEC("xdp")
int xsk_redirect(struct xdp_md *ctx)
{
	void *meta = (void *)(long)ctx->data_meta, *data = (void *)(long)ctx->data;
	if (meta + 4 <= data && *(__u32 *)meta == INJECT_MAGIC)
		return inject(ctx);
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
