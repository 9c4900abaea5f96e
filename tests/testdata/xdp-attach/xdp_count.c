// Two XDP programs for the attach tests of `sharpbpf xdp`: xdp_count counts UDP frames to port 9999 in the array
// map `frames` and drops them (other frames pass); xdp_pass passes everything.
// Build: see build.sh (clang-14, no libbpf headers needed).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} frames SEC(".maps");

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != __builtin_bswap16(ETH_P_IP) || ip->protocol != IPPROTO_UDP || udp->dest != __builtin_bswap16(9999))
        return XDP_PASS;
    __u32 key = 0;
    __u64 *count = bpf_map_lookup_elem(&frames, &key);
    if (count)
        __sync_fetch_and_add(count, 1);
    return XDP_DROP;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
