/* CO-RE against the running kernel from an XDP program that BPF_PROG_TEST_RUN can run: kernel structs declared
 * locally (reordered, with ___flavour suffixes, a field the kernel lacks), reached through the kfunc
 * bpf_cast_to_kern_ctx; field/type/enum existence, sizes, enum values and bitfield shifts; a typeless __ksym, a
 * weak __ksym and a weak kfunc the kernel lacks; __kconfig externs. Results go to .bss for the test to read. */
#include "bpf_defs.h"

#define __ksym __attribute__((section(".ksyms")))
#define __kconfig __attribute__((section(".kconfig")))
#define __weak __attribute__((weak))
#define __core __attribute__((preserve_access_index))

#define FIELD_BYTE_OFFSET 0
#define FIELD_BYTE_SIZE 1
#define FIELD_EXISTS 2
#define FIELD_SIGNED 3
#define FIELD_LSHIFT_U64 4
#define FIELD_RSHIFT_U64 5
#define TYPE_EXISTS 0
#define TYPE_SIZE 1
#define TYPE_MATCHES 2
#define ENUMVAL_EXISTS 0
#define ENUMVAL_VALUE 1

/* Local views of kernel types: member order and sizes differ from the kernel's on purpose. */
struct net_device___mine {
	int ifindex;
} __core;

struct xdp_rxq_info___mine {
	struct net_device___mine *dev;
	unsigned int queue_index;
} __core;

struct xdp_buff___mine {
	unsigned int frame_sz; /* inside an anonymous struct in the kernel */
	void *data_end;
	void *data;
	struct xdp_rxq_info___mine *rxq;
	long not_in_the_kernel;
} __core;

struct sk_buff___mine {
	unsigned char pkt_type : 3; /* a bitfield */
	unsigned short protocol;
} __core;

struct no_such_kernel_type {
	int x;
} __core;

enum xdp_action___mine { XDP_TX___mine = 77, XDP_NOT_IN_THE_KERNEL___mine = 78 };

enum libbpf_tristate { TRI_NO = 0, TRI_YES = 1, TRI_MODULE = 2 };

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void bpf_kfunc_not_in_this_kernel(void) __ksym __weak;
extern const void bpf_prog_put __ksym;                 /* typeless: an address from kallsyms */
extern const void no_such_kernel_symbol __ksym __weak; /* typeless and missing: NULL */

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern _Bool LINUX_HAS_BPF_COOKIE __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_HZ __kconfig;
extern char CONFIG_DEFAULT_HOSTNAME[8] __kconfig;
extern int CONFIG_SHARPBPF_NOT_A_CONFIG __kconfig __weak;

struct results {
	__u64 length;
	__u64 prog_put;
	__u64 missing_symbol;
	__u32 frame_sz;
	__u32 ifindex;
	__u32 queue_index;
	__u32 data_offset;
	__u32 frame_sz_exists;
	__u32 missing_field_exists;
	__u32 missing_field_value;
	__u32 type_exists;
	__u32 missing_type_exists;
	__u32 buff_size;
	__u32 tx_value;
	__u32 tx_exists;
	__u32 missing_enum_exists;
	__u32 pkt_type_offset;
	__u32 pkt_type_size;
	__u32 pkt_type_lshift;
	__u32 pkt_type_rshift;
	__u32 protocol_offset;
	__u32 protocol_signed;
	__u32 kernel_version;
	__u32 has_cookie;
	__u32 bpf_jit;
	__u32 bpf_syscall;
	__u32 hz;
	__u32 not_a_config;
	__u32 called_missing_kfunc;
	char hostname[8];
} results;

SEC("xdp")
int core_xdp(struct xdp_md *ctx)
{
	struct xdp_buff___mine *buff = bpf_cast_to_kern_ctx(ctx);
	struct sk_buff___mine *skb = 0;

	results.length = (char *)buff->data_end - (char *)buff->data;
	results.frame_sz = buff->frame_sz;
	results.ifindex = buff->rxq->dev->ifindex;
	results.queue_index = buff->rxq->queue_index;
	results.data_offset = __builtin_preserve_field_info(buff->data, FIELD_BYTE_OFFSET);
	results.frame_sz_exists = __builtin_preserve_field_info(buff->frame_sz, FIELD_EXISTS);
	results.missing_field_exists = __builtin_preserve_field_info(buff->not_in_the_kernel, FIELD_EXISTS);
	/* Guarded: the load of a missing field is poisoned, and the verifier drops it as dead code. */
	if (__builtin_preserve_field_info(buff->not_in_the_kernel, FIELD_EXISTS))
		results.missing_field_value = buff->not_in_the_kernel;
	results.type_exists = __builtin_preserve_type_info(*buff, TYPE_EXISTS);
	results.missing_type_exists = __builtin_preserve_type_info(*(struct no_such_kernel_type *)0, TYPE_EXISTS);
	results.buff_size = __builtin_preserve_type_info(*buff, TYPE_SIZE);
	results.tx_value = __builtin_preserve_enum_value(*(typeof(enum xdp_action___mine) *)XDP_TX___mine, ENUMVAL_VALUE);
	results.tx_exists = __builtin_preserve_enum_value(*(typeof(enum xdp_action___mine) *)XDP_TX___mine, ENUMVAL_EXISTS);
	results.missing_enum_exists = __builtin_preserve_enum_value(*(typeof(enum xdp_action___mine) *)XDP_NOT_IN_THE_KERNEL___mine, ENUMVAL_EXISTS);
	results.pkt_type_offset = __builtin_preserve_field_info(skb->pkt_type, FIELD_BYTE_OFFSET);
	results.pkt_type_size = __builtin_preserve_field_info(skb->pkt_type, FIELD_BYTE_SIZE);
	results.pkt_type_lshift = __builtin_preserve_field_info(skb->pkt_type, FIELD_LSHIFT_U64);
	results.pkt_type_rshift = __builtin_preserve_field_info(skb->pkt_type, FIELD_RSHIFT_U64);
	results.protocol_offset = __builtin_preserve_field_info(skb->protocol, FIELD_BYTE_OFFSET);
	results.protocol_signed = __builtin_preserve_field_info(skb->protocol, FIELD_SIGNED);
	results.prog_put = (__u64)&bpf_prog_put;
	results.missing_symbol = (__u64)&no_such_kernel_symbol;
	results.kernel_version = LINUX_KERNEL_VERSION;
	results.has_cookie = LINUX_HAS_BPF_COOKIE;
	results.bpf_jit = CONFIG_BPF_JIT;
	results.bpf_syscall = CONFIG_BPF_SYSCALL;
	results.hz = CONFIG_HZ;
	results.not_a_config = CONFIG_SHARPBPF_NOT_A_CONFIG;
	__builtin_memcpy(results.hostname, CONFIG_DEFAULT_HOSTNAME, sizeof(results.hostname));
	if (bpf_kfunc_not_in_this_kernel) {
		bpf_kfunc_not_in_this_kernel();
		results.called_missing_kfunc = 1;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
