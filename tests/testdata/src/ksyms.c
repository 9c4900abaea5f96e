/* Externs resolved against kernel BTF at load time: a kernel function (kfunc) and a kernel variable (__ksym). */
#include "bpf_defs.h"

#define __ksym __attribute__((section(".ksyms")))

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern const int bpf_prog_active __ksym;

static void *(*bpf_this_cpu_ptr)(const void *percpu_ptr) = (void *)154;

SEC("tp_btf/sched_switch")
int ksym_user(void *ctx)
{
	const int *active;

	bpf_rcu_read_lock();
	active = bpf_this_cpu_ptr(&bpf_prog_active);
	bpf_rcu_read_unlock();
	return active ? *active : 0;
}

char _license[] SEC("license") = "GPL";
