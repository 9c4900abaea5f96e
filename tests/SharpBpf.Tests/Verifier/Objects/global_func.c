/* Global functions (non-static, noinline): the kernel verifies each on its own with BTF-typed arguments.
 * parse_ctx takes the context itself and checks the packet: accepted. read_copy takes a struct holding packet
 * pointers: inside it they are plain numbers, so reading through one is refused, although the same code
 * inlined into the caller (static) would be accepted. */
#include "../../../testdata/src/bpf_defs.h"

struct copy {
	void *data;
	void *data_end;
};

__attribute__((noinline)) int parse_ctx(struct xdp_md *ctx, int offset)
{
	unsigned char *data = (void *)(long)ctx->data;
	unsigned char *data_end = (void *)(long)ctx->data_end;
	if (data + 14 > data_end)
		return XDP_DROP;
	return data[12] == 8 && offset > 0 ? XDP_PASS : XDP_DROP;
}

__attribute__((noinline)) int read_copy(struct copy *c)
{
	if (!c)
		return XDP_DROP;
	unsigned char *data = c->data;
	if ((void *)(data + 14) > c->data_end)
		return XDP_DROP;
	return data[12] == 8 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int global_ctx(struct xdp_md *ctx)
{
	return parse_ctx(ctx, 3);
}

SEC("xdp")
int global_copy(struct xdp_md *ctx)
{
	struct copy c = {
		.data = (void *)(long)ctx->data,
		.data_end = (void *)(long)ctx->data_end,
	};
	return read_copy(&c);
}

/* A global function is verified only when a verified path calls it (the kernel verifies global subprograms
 * lazily since 6.8). unsafe_first_byte reads the packet without a bounds check; the call to it lies behind a
 * branch on a frozen .rodata constant that is 0, which the kernel decides from the map's bytes: the function is
 * never called, never verified, and global_unreached is accepted. global_reached calls it: refused. */
volatile const int use_unchecked = 0;

__attribute__((noinline)) int unsafe_first_byte(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;
	return data[0];
}

SEC("xdp")
int global_unreached(struct xdp_md *ctx)
{
	if (use_unchecked)
		return unsafe_first_byte(ctx);
	return XDP_PASS;
}

SEC("xdp")
int global_reached(struct xdp_md *ctx)
{
	return unsafe_first_byte(ctx) ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
