/* XDP program that hands the packet's request to bpf_fib_lookup or bpf_check_mtu and writes the helper's output back
 * into the packet, so one fixture compares the kernel's answers with the managed VM's for any request. Frame:
 * Ethernet header (type 0x88b5), u32 op (0 = fib_lookup, 1 = check_mtu), u32 flags, then for fib_lookup a struct
 * bpf_fib_lookup (64 bytes, written back after the call), for check_mtu u32 ifindex, u32 mtu_len (written back),
 * s32 len_diff. The program returns the helper's return value (its low 32 bits). */
#include "bpf_defs.h"

static long (*bpf_fib_lookup)(void *ctx, void *params, int plen, __u32 flags) = (void *)69;
static long (*bpf_check_mtu)(void *ctx, __u32 ifindex, __u32 *mtu_len, __s32 len_diff, __u64 flags) = (void *)163;

struct request {
	__u8 eth[14];
	__u32 op;
	__u32 flags;
	union {
		__u8 params[64];
		struct {
			__u32 ifindex;
			__u32 mtu_len;
			__s32 len_diff;
		} mtu;
	};
} __attribute__((packed));

SEC("xdp")
int xdp_fib(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct request *req = data;
	__u8 params[64];
	__u32 mtu_len;
	long rc;

	if ((void *)(req + 1) > data_end)
		return 1000;
	if (req->op == 0) {
		__builtin_memcpy(params, req->params, sizeof(params));
		rc = bpf_fib_lookup(ctx, params, sizeof(params), req->flags);
		/* The helper cannot move the packet: req stays valid, but the verifier wants it checked again. */
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		req = data;
		if ((void *)(req + 1) > data_end)
			return 1001;
		__builtin_memcpy(req->params, params, sizeof(params));
		return (int)rc;
	}
	mtu_len = req->mtu.mtu_len;
	rc = bpf_check_mtu(ctx, req->mtu.ifindex, &mtu_len, req->mtu.len_diff, req->flags);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	req = data;
	if ((void *)(req + 1) > data_end)
		return 1001;
	req->mtu.mtu_len = mtu_len;
	return (int)rc;
}

char _license[] SEC("license") = "GPL";
