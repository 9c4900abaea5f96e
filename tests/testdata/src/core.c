/* CO-RE relocations (field offsets, existence, sizes, type ids, enum values), BTF tags, a float, and named
 * global-data sections (.data.counters, .rodata.config, string literals in .rodata.str1.1). */
#include "bpf_defs.h"

#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __user __attribute__((btf_type_tag("user")))

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *parent;
	char comm[16];
} __attribute__((preserve_access_index));

enum pid_type { PIDTYPE_PID, PIDTYPE_TGID, PIDTYPE_PGID };

struct sample {
	float ratio;
	int value __tag("member_tag");
	const char __user *where;
} __tag("struct_tag");

__u64 hits SEC(".data.counters") = 3;
__u64 misses SEC(".data.counters") = 4;
const volatile __u32 config_level SEC(".rodata.config") = 2;
struct sample last_sample;

__noinline int __tag("func_tag") record(struct sample *s __tag("param_tag"), int v)
{
	if (!s)
		return 0;
	s->value = v;
	s->ratio = 0.5f;
	return v;
}

SEC("kprobe/do_exit")
int core_probe(struct task_struct *task)
{
	int pid = 0, ppid = 0;
	struct task_struct *parent = 0;
	char fmt[] = "pid %d\n";

	bpf_probe_read_kernel(&pid, sizeof(pid), &task->pid);
	bpf_probe_read_kernel(&parent, sizeof(parent), &task->parent);
	if (parent)
		bpf_probe_read_kernel(&ppid, sizeof(ppid), &parent->tgid);
	if (__builtin_preserve_field_info(task->comm, 2 /* FIELD_EXISTS */))
		hits += __builtin_preserve_field_info(task->comm, 1 /* FIELD_BYTE_SIZE */);
	misses += __builtin_preserve_type_info(*task, 1 /* TYPE_SIZE */);
	misses += __builtin_preserve_enum_value(*(typeof(enum pid_type) *)PIDTYPE_TGID, 1 /* ENUM_VALUE */);
	misses += __builtin_btf_type_id(*task, 0 /* LOCAL */);
	if (config_level > 1)
		bpf_trace_printk(fmt, sizeof(fmt), pid);
	bpf_trace_printk("ppid %d\n", 9, ppid);
	return record(&last_sample, pid + ppid);
}

char _license[] SEC("license") = "GPL";
