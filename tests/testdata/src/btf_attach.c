/* A program that attaches by kernel BTF: the loader finds attach_btf_id from the section name (tp_btf/NAME is
 * the typedef btf_trace_NAME), and kfuncs callable from tracing programs. (fentry/fexit are refused with EPERM
 * on the kernel these tests were written on, by libbpf alike, so they are not here.) */
#include "bpf_defs.h"

#define __ksym __attribute__((section(".ksyms")))

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

__u64 switches;

SEC("tp_btf/sched_switch")
int on_switch(void *ctx)
{
	bpf_rcu_read_lock();
	switches++;
	bpf_rcu_read_unlock();
	return 0;
}

char _license[] SEC("license") = "GPL";
