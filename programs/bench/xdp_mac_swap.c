// SPDX-License-Identifier: GPL-2.0
/* Bench: a reflector. Swaps the Ethernet addresses, decrements the IPv4 TTL with an incremental checksum update
 * (RFC 1624: HC' = ~(~HC + ~m + m')) and sends the frame back out with XDP_TX. */
#include "bench_parse.h"

SEC("xdp")
int xdp_mac_swap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
		return XDP_PASS;

	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	/* TTL is the high byte of the 16-bit word it shares with the protocol. */
	__u16 old_word = bpf_ntohs(*(__be16 *)&ip->ttl);
	ip->ttl--;
	__u16 new_word = bpf_ntohs(*(__be16 *)&ip->ttl);
	__u32 sum = (__u16)~bpf_ntohs(ip->check) + (__u16)~old_word + new_word;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	ip->check = bpf_htons((__u16)~sum);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
