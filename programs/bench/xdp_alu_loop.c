// SPDX-License-Identifier: GPL-2.0
/* Bench: a long ALU loop (ALU_ROUNDS rounds of a xorshift-multiply mix seeded by the frame length), so engines
 * can be compared per instruction. Returns XDP_DROP or XDP_PASS from the low bit so the work is not dead. */
#include "../include/bpf_defs.h"

#define ALU_ROUNDS 1000

SEC("xdp")
int xdp_alu_loop(struct xdp_md *ctx)
{
	__u64 x = ctx->data_end - ctx->data + 0x9e3779b97f4a7c15ULL;
#pragma clang loop unroll(disable)
	for (int i = 0; i < ALU_ROUNDS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		x = x * 0x2545f4914f6cdd1dULL + i;
	}
	return (x & 1) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
