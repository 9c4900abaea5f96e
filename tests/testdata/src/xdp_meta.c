/* XDP program that reserves 8 bytes of metadata in front of the packet and passes it on: the packet that leaves
 * is the packet alone, the metadata travels beside it (BPF_PROG_TEST_RUN returns both, from data_meta). */
#include "bpf_defs.h"

static long (*bpf_xdp_adjust_meta)(struct xdp_md *xdp_md, int delta) = (void *)54;

SEC("xdp")
int xdp_meta(struct xdp_md *ctx)
{
	__u32 *meta;
	void *data;

	if (bpf_xdp_adjust_meta(ctx, -8))
		return XDP_ABORTED;
	meta = (void *)(long)ctx->data_meta;
	data = (void *)(long)ctx->data;
	if ((void *)(meta + 2) > data)
		return XDP_ABORTED;
	meta[0] = 0x11223344;
	meta[1] = 0x55667788;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
