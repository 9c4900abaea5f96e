/* XDP program for bpf_strncmp and bpf_probe_read_kernel_str: compares the 8 bytes after the Ethernet header with a
 * constant string, copies them as a string into the next 8 bytes of the packet, and returns both results:
 * (strncmp + 1) | (probe_read_kernel_str's return << 4). */
#include "bpf_defs.h"

static long (*bpf_strncmp)(const char *s1, __u32 s1_sz, const char *s2) = (void *)182;
static long (*bpf_probe_read_kernel_str)(void *dst, __u32 size, const void *src) = (void *)115;

const char want[] = "hello";

SEC("xdp")
int xdp_str(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	char buf[8], out[8];
	long cmp, len;

	if (data + 14 + 16 > data_end)
		return 1000;
	__builtin_memcpy(buf, data + 14, 8);
	/* The copy stops after the NUL: what follows is whatever the stack held, so start from zeroes. */
	__builtin_memset(out, 0, sizeof(out));
	cmp = bpf_strncmp(buf, 8, want);
	len = bpf_probe_read_kernel_str(out, 8, buf);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + 14 + 16 > data_end)
		return 1001;
	__builtin_memcpy(data + 22, out, 8);
	return (int)((cmp + 1) | (len << 4));
}

char _license[] SEC("license") = "GPL";
