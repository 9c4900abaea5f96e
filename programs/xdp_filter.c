// SPDX-License-Identifier: GPL-2.0
/* xdp_filter: the project's XDP firewall.
 *
 * Parses Ethernet, up to two VLAN tags (802.1Q / 802.1ad), IPv4 (options skipped by IHL), IPv6 (hop-by-hop,
 * routing, fragment, destination options and AH extension headers, at most IPV6_MAX_EXT of them), TCP, UDP,
 * ICMP and ICMPv6, and matches the packet against deny/allow rules kept in pinned maps:
 *   source/destination MAC   filter_macs         (hash)
 *   source/destination IPv4  filter_src_v4/dst_v4 (LPM tries: the longest prefix of each trie matches)
 *   source/destination IPv6  filter_src_v6/dst_v6 (LPM tries)
 *   IP protocol              filter_protos        (array indexed by protocol number)
 *   TCP/UDP port             filter_ports         (hash keyed by port, protocol, direction)
 * Every rule that matches counts the packet once in filter_hits. The verdict: a matching deny rule drops; else a
 * matching allow rule passes; else the default policy of filter_config decides. Fields the packet does not
 * carry (ports of a non-first fragment, anything past a truncated header) match no rule.
 * filter_stats counts packets and bytes per returned action. No read goes past data_end.
 * Map layouts: include/xdp_filter.h and docs/filter.md. */
#include "include/bpf_defs.h"
#include "include/xdp_filter.h"
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define IPV6_MAX_EXT 6

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_config);
	__uint(pinning, PIN_BY_NAME);
} filter_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FILTER_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct filter_v4_key);
	__type(value, struct filter_rule);
	__uint(pinning, PIN_BY_NAME);
} filter_src_v4 SEC(".maps"), filter_dst_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FILTER_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct filter_v6_key);
	__type(value, struct filter_rule);
	__uint(pinning, PIN_BY_NAME);
} filter_src_v6 SEC(".maps"), filter_dst_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FILTER_MAX_RULES);
	__type(key, struct filter_port_key);
	__type(value, struct filter_rule);
	__uint(pinning, PIN_BY_NAME);
} filter_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FILTER_MAX_RULES);
	__type(key, struct filter_mac_key);
	__type(value, struct filter_rule);
	__uint(pinning, PIN_BY_NAME);
} filter_macs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct filter_rule);
	__uint(pinning, PIN_BY_NAME);
} filter_protos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FILTER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct filter_counter);
	__uint(pinning, PIN_BY_NAME);
} filter_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, struct filter_counter);
	__uint(pinning, PIN_BY_NAME);
} filter_stats SEC(".maps");

struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_fragment {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

struct verdict {
	__u32 deny;
	__u32 allow;
	__u32 last_id;
};

/* Counts a matched rule and notes its action. The entries of one rule (source and destination of an ip, port or
 * mac rule) are looked up one right after the other, so comparing with the last rule counted makes a rule count a
 * packet once even when both its sides match. */
static __always_inline void match(struct filter_rule *rule, __u64 len, struct verdict *v)
{
	if (!rule || rule->id == 0)
		return;
	__u32 id = rule->id;
	if (rule->action == FILTER_DENY)
		v->deny = 1;
	else if (rule->action == FILTER_ALLOW)
		v->allow = 1;
	if (id == v->last_id)
		return;
	v->last_id = id;
	struct filter_counter *hits = bpf_map_lookup_elem(&filter_hits, &id);
	if (hits) {
		hits->packets++;
		hits->bytes += len;
	}
}

static __always_inline void match_mac(const __u8 *addr, __u8 direction, __u64 len, struct verdict *v)
{
	struct filter_mac_key key = {};
	__builtin_memcpy(key.addr, addr, 6);
	key.direction = direction;
	match(bpf_map_lookup_elem(&filter_macs, &key), len, v);
}

static __always_inline void match_port(__be16 port, __u8 protocol, __u8 direction, __u64 len, struct verdict *v)
{
	struct filter_port_key key = {
		.port = bpf_ntohs(port),
		.protocol = protocol,
		.direction = direction,
	};
	match(bpf_map_lookup_elem(&filter_ports, &key), len, v);
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct verdict v = {};
	void *l4 = 0;
	int l4_protocol = -1;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		goto decide;
	match_mac(eth->h_source, FILTER_SOURCE, len, &v);
	match_mac(eth->h_dest, FILTER_DESTINATION, len, &v);

	__be16 proto = eth->h_proto;
	void *cursor = eth + 1;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_tag *tag = cursor;
		if ((void *)(tag + 1) > data_end)
			goto decide;
		proto = tag->encapsulated_proto;
		cursor = tag + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor;
		if ((void *)(ip + 1) > data_end)
			goto decide;
		__u32 header_len = ip->ihl * 4;
		if (header_len < sizeof(*ip) || cursor + header_len > data_end)
			goto decide;

		struct filter_v4_key key = { .prefixlen = 32 };
		__builtin_memcpy(key.addr, &ip->saddr, 4);
		match(bpf_map_lookup_elem(&filter_src_v4, &key), len, &v);
		__builtin_memcpy(key.addr, &ip->daddr, 4);
		match(bpf_map_lookup_elem(&filter_dst_v4, &key), len, &v);

		l4_protocol = ip->protocol;
		/* Only the first fragment carries the transport header. */
		if ((ip->frag_off & bpf_htons(0x1fff)) == 0)
			l4 = cursor + header_len;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor;
		if ((void *)(ip6 + 1) > data_end)
			goto decide;

		struct filter_v6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		match(bpf_map_lookup_elem(&filter_src_v6, &key), len, &v);
		__builtin_memcpy(key.addr, &ip6->daddr, 16);
		match(bpf_map_lookup_elem(&filter_dst_v6, &key), len, &v);

		__u8 next = ip6->nexthdr;
		void *header = ip6 + 1;
		int first_fragment = 1;
		int known = 0;
#pragma unroll
		for (int i = 0; i < IPV6_MAX_EXT; i++) {
			if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
				struct ipv6_ext *ext = header;
				if ((void *)(ext + 1) > data_end)
					goto decide;
				next = ext->nexthdr;
				header += (ext->hdrlen + 1) * 8;
			} else if (next == IPPROTO_AH) {
				struct ipv6_ext *ext = header;
				if ((void *)(ext + 1) > data_end)
					goto decide;
				next = ext->nexthdr;
				header += (ext->hdrlen + 2) * 4;
			} else if (next == IPPROTO_FRAGMENT) {
				struct ipv6_fragment *frag = header;
				if ((void *)(frag + 1) > data_end)
					goto decide;
				next = frag->nexthdr;
				if (frag->frag_off & bpf_htons(0xfff8))
					first_fragment = 0;
				header = frag + 1;
			} else {
				known = 1;
				break;
			}
		}
		/* More extension headers than we follow: the transport protocol is unknown. */
		if (!known)
			goto decide;
		l4_protocol = next;
		if (first_fragment)
			l4 = header;
	} else {
		goto decide;
	}

	{
		__u32 index = l4_protocol & 0xff;
		match(bpf_map_lookup_elem(&filter_protos, &index), len, &v);
	}
	if (!l4)
		goto decide;
	if (l4_protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > data_end)
			goto decide;
		match_port(tcp->source, IPPROTO_TCP, FILTER_SOURCE, len, &v);
		match_port(tcp->dest, IPPROTO_TCP, FILTER_DESTINATION, len, &v);
	} else if (l4_protocol == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > data_end)
			goto decide;
		match_port(udp->source, IPPROTO_UDP, FILTER_SOURCE, len, &v);
		match_port(udp->dest, IPPROTO_UDP, FILTER_DESTINATION, len, &v);
	}
	/* ICMP and ICMPv6 are matched by protocol only: their type and code are not rule fields. */

decide:;
	__u32 action;
	if (v.deny) {
		action = XDP_DROP;
	} else if (v.allow) {
		action = XDP_PASS;
	} else {
		__u32 zero = 0;
		struct filter_config *config = bpf_map_lookup_elem(&filter_config, &zero);
		action = config && config->default_action == XDP_DROP ? XDP_DROP : XDP_PASS;
	}
	struct filter_counter *stats = bpf_map_lookup_elem(&filter_stats, &action);
	if (stats) {
		stats->packets++;
		stats->bytes += len;
	}
	return action;
}

char LICENSE[] SEC("license") = "GPL";
