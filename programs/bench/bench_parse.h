/* Shared by the bench programs: Ethernet / IPv4 / UDP parsing with a bounds check before every read. */
#ifndef SHARPBPF_BENCH_PARSE_H
#define SHARPBPF_BENCH_PARSE_H

#include "../include/bpf_defs.h"
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>

/* Returns the IPv4 header of an Ethernet/IPv4/UDP frame, or 0 for anything else. */
static __always_inline struct iphdr *parse_udp4(void *data, void *data_end, struct udphdr **udp_out)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl < 5)
		return 0;
	struct udphdr *udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end || ip->protocol != IPPROTO_UDP)
		return 0;
	*udp_out = udp;
	return ip;
}

#endif
