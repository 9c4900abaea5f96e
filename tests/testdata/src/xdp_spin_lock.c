/* bpf_spin_lock/bpf_spin_unlock on a map value whose BTF holds a struct bpf_spin_lock, and a devmap program
 * (xdp/devmap: expected attach type BPF_XDP_DEVMAP) reading egress_ifindex: the kernel accepts both. */
#include "bpf_defs.h"

static long (*bpf_spin_lock)(struct bpf_spin_lock *lock) = (void *)93;
static long (*bpf_spin_unlock)(struct bpf_spin_lock *lock) = (void *)94;

struct locked_value {
	struct bpf_spin_lock lock;
	__u64 packets;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct locked_value);
	__uint(max_entries, 1);
} locked SEC(".maps");

SEC("xdp")
int xdp_count_locked(struct xdp_md *ctx)
{
	__u32 key = 0;
	struct locked_value *v = bpf_map_lookup_elem(&locked, &key);
	if (!v)
		return XDP_ABORTED;
	bpf_spin_lock(&v->lock);
	v->packets++;
	bpf_spin_unlock(&v->lock);
	return XDP_PASS;
}

SEC("xdp/devmap")
int xdp_devmap_egress(struct xdp_md *ctx)
{
	return ctx->egress_ifindex == 7 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
