/* Map layouts of xdp_filter.c, shared with user space (docs/filter.md draws them; the C# side mirrors them in
 * src/SharpBpf.Linux/Filter/FilterMaps.cs). Every map is pinned by name, so rules and counters outlive the
 * process that loaded them and survive a detach and re-attach. All fields are host byte order except
 * addresses, which are kept as they appear on the wire. */
#ifndef SHARPBPF_XDP_FILTER_H
#define SHARPBPF_XDP_FILTER_H

#include <linux/types.h>

/* Rule ids index filter_hits; id 0 means "no rule" (an empty filter_protos slot). */
#define FILTER_MAX_RULES 16384

/* A rule's action is the XDP action it asks for. */
#define FILTER_DENY 1  /* XDP_DROP */
#define FILTER_ALLOW 2 /* XDP_PASS */

#define FILTER_SOURCE 0
#define FILTER_DESTINATION 1

/* filter_config, an array of one entry. default_action: XDP_DROP denies what no rule allows; anything else
 * (including the 0 of a fresh map) passes what no rule denies. */
struct filter_config {
	__u32 default_action;
	__u32 flags; /* reserved, 0 */
};

/* The value of every rule map. Several map entries may share one id (an ip rule for both directions, a port
 * rule for TCP and UDP); they count into the same filter_hits slot. */
struct filter_rule {
	__u32 id;
	__u32 action; /* FILTER_DENY or FILTER_ALLOW */
};

/* filter_src_v4 / filter_dst_v4: LPM tries; prefixlen counts bits of addr (network order). */
struct filter_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

/* filter_src_v6 / filter_dst_v6. */
struct filter_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* filter_ports: hash. port in host order, protocol 6 (TCP) or 17 (UDP), direction FILTER_SOURCE/DESTINATION. */
struct filter_port_key {
	__u16 port;
	__u8 protocol;
	__u8 direction;
};

/* filter_macs: hash. addr as on the wire, direction FILTER_SOURCE/DESTINATION, pad 0. */
struct filter_mac_key {
	__u8 addr[6];
	__u8 direction;
	__u8 pad;
};

/* filter_hits (per rule id) and filter_stats (per XDP action 0..4): per-CPU arrays; user space sums the CPUs. */
struct filter_counter {
	__u64 packets;
	__u64 bytes;
};

#endif
