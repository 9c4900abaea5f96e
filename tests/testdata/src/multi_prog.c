/* Several programs per section, programs in many section kinds, subprograms in .text (global and static,
 * chained), a bounded loop, and a callback passed to bpf_loop (a function pointer). */
#include "bpf_defs.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

__u64 loop_total;

static __noinline __u64 square(__u64 x)
{
	return x * x;
}

static __noinline __u64 sum_squares(__u32 n)
{
	__u64 total = 0;
	for (__u32 i = 0; i < n && i < 16; i++)
		total += square(i);
	return total;
}

/* A global function: verified on its own by the kernel, called like a subprogram. */
__noinline int packet_length(struct xdp_md *ctx)
{
	if (!ctx)
		return 0;
	return ctx->data_end - ctx->data;
}

static void bump(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static int loop_step(__u32 index, void *ctx)
{
	loop_total += index;
	return 0;
}

SEC("xdp")
int xdp_first(struct xdp_md *ctx)
{
	bump(0);
	return packet_length(ctx) > 1000 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int xdp_second(struct xdp_md *ctx)
{
	bump(1);
	if (sum_squares(ctx->rx_queue_index) > 100)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp.frags")
int xdp_frags(struct xdp_md *ctx)
{
	bpf_loop(4, loop_step, 0, 0);
	return XDP_PASS;
}

SEC("xdp/devmap")
int xdp_devmap(struct xdp_md *ctx)
{
	bump(2);
	return XDP_PASS;
}

SEC("tc")
int tc_prog(struct __sk_buff *skb)
{
	bump(3);
	return skb->len > 100 ? 2 /* TC_ACT_SHOT */ : 0;
}

SEC("classifier")
int classifier_prog(struct __sk_buff *skb)
{
	return (int)sum_squares(skb->len & 7);
}

SEC("socket")
int socket_prog(struct __sk_buff *skb)
{
	bump(4);
	return skb->len;
}

SEC("kprobe/do_nanosleep")
int kprobe_prog(void *ctx)
{
	bump(5);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int tracepoint_prog(void *ctx)
{
	bump(6);
	return 0;
}

char _license[] SEC("license") = "Dual BSD/GPL";
