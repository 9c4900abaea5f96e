/* XDP program with a read far past data_end and no bounds check: the kernel's verifier refuses it; the managed VM,
 * run unverified, traps on the read and reports XDP_ABORTED with the instruction and this line. */
#include "bpf_defs.h"

SEC("xdp")
int xdp_trap(struct xdp_md *ctx)
{
	volatile unsigned char *data = (void *)(long)ctx->data;

	return data[8192] ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
