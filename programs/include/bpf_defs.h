/* Minimal definitions the project's BPF programs need, written for this project so the programs build with
 * clang alone (no libbpf headers). Map definitions follow the BTF-defined map convention (.maps section):
 * every member is a pointer whose pointee type carries the number (__uint) or the key/value type (__type). */
#ifndef SHARPBPF_BPF_DEFS_H
#define SHARPBPF_BPF_DEFS_H

#include <linux/types.h>
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]

/* libbpf's pinning convention: the loader pins the map under its name and reuses a pinned map of that name. */
#define PIN_NONE 0
#define PIN_BY_NAME 1

/* Helper calls: a call to a fixed address is a call instruction with that helper id. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)BPF_FUNC_map_update_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

#define bpf_htons(x) __builtin_bswap16(x)
#define bpf_ntohs(x) __builtin_bswap16(x)
#define bpf_htonl(x) __builtin_bswap32(x)
#define bpf_ntohl(x) __builtin_bswap32(x)

#endif
