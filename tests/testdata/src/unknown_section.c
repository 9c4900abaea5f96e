/* An XDP-shaped program in a section that names no program type (the pre-libbpf-1.0 style SEC("xdp_pass")):
 * its type is Unspec, which no loader can load and the verifier does not model. */
#include "bpf_defs.h"

SEC("xdp_pass")
int xdp_pass_func(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
