// SPDX-License-Identifier: MIT
/* xsk_ref: the C reference for the AF_XDP benchmark, using the kernel interface directly (no libxdp, no libbpf).
 *   xsk_ref rx IFNAME QUEUE XSKMAP_ID SECONDS   receive and drop (refill) for SECONDS, print "received N cpu_ns T"
 *   xsk_ref gen IFNAME SECONDS                  send UDP frames out of IFNAME for SECONDS, print "sent N": a
 *                                               BPF_PROG_TEST_RUN in live-frames mode with an XDP_TX program (the
 *                                               fastest generator this kernel has), AF_PACKET where that fails
 * rx mirrors the C# loop of the benchmark: UMEM of 4096 x 2048-byte frames, 2048-entry rings, copy mode with
 * need_wakeup, batches of 64, poll when idle. */
#include <linux/if_xdp.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FRAMES 4096
#define FRAME 2048
#define RING 2048
#define BATCH 64

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

struct ring { __u32 *producer, *consumer, *flags; void *desc; __u32 cached; };

static void map_ring(int fd, struct ring *r, struct xdp_ring_offset *o, size_t entry, off_t pgoff)
{
	char *p = mmap(NULL, o->desc + RING * entry, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
	if (p == MAP_FAILED)
		die("mmap ring");
	r->producer = (__u32 *)(p + o->producer);
	r->consumer = (__u32 *)(p + o->consumer);
	r->flags = (__u32 *)(p + o->flags);
	r->desc = p + o->desc;
}

static int rx(const char *ifname, unsigned queue, unsigned map_id, double seconds)
{
	void *umem = mmap(NULL, (size_t)FRAMES * FRAME, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (umem == MAP_FAILED)
		die("mmap umem");
	int fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	struct xdp_umem_reg reg = { .addr = (__u64)(unsigned long)umem, .len = (__u64)FRAMES * FRAME, .chunk_size = FRAME };
	int size = RING;
	if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) ||
	    setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &size, 4) || setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &size, 4) ||
	    setsockopt(fd, SOL_XDP, XDP_RX_RING, &size, 4) || setsockopt(fd, SOL_XDP, XDP_TX_RING, &size, 4))
		die("setsockopt");
	struct xdp_mmap_offsets off;
	socklen_t len = sizeof(off);
	if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len))
		die("getsockopt");
	struct ring fill, rxr;
	map_ring(fd, &fill, &off.fr, 8, XDP_UMEM_PGOFF_FILL_RING);
	map_ring(fd, &rxr, &off.rx, sizeof(struct xdp_desc), XDP_PGOFF_RX_RING);
	__u64 *fa = fill.desc;
	for (__u32 i = 0; i < RING; i++)
		fa[i] = (__u64)i * FRAME;
	__atomic_store_n(fill.producer, RING, __ATOMIC_RELEASE);
	struct sockaddr_xdp sa = { .sxdp_family = AF_XDP, .sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
				   .sxdp_ifindex = if_nametoindex(ifname), .sxdp_queue_id = queue };
	for (int tries = 0; bind(fd, (struct sockaddr *)&sa, sizeof(sa)); tries++) {
		if (tries > 100)
			die("bind");
		usleep(20000);
	}
	/* Put the socket in the XSKMAP the benchmark loaded (by id, with a raw bpf(2)). */
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_id = map_id;
	int map = syscall(__NR_bpf, BPF_MAP_GET_FD_BY_ID, &a, sizeof(a));
	if (map < 0)
		die("BPF_MAP_GET_FD_BY_ID");
	__u32 key = queue, value = fd;
	memset(&a, 0, sizeof(a));
	a.map_fd = map;
	a.key = (__u64)(unsigned long)&key;
	a.value = (__u64)(unsigned long)&value;
	if (syscall(__NR_bpf, BPF_MAP_UPDATE_ELEM, &a, sizeof(a)))
		die("BPF_MAP_UPDATE_ELEM");
	printf("ready\n");
	fflush(stdout);

	unsigned long long received = 0;
	__u32 rx_cons = 0, fill_prod = RING;
	struct timespec cpu_start;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_start);
	long long cpu0 = (long long)cpu_start.tv_sec * 1000000000LL + cpu_start.tv_nsec;
	struct xdp_desc *rd = rxr.desc;
	double end = now() + seconds;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	while (now() < end) {
		__u32 prod = __atomic_load_n(rxr.producer, __ATOMIC_ACQUIRE);
		__u32 n = prod - rx_cons;
		if (n == 0) {
			if (*fill.flags & XDP_RING_NEED_WAKEUP)
				recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
			poll(&pfd, 1, 50);
			continue;
		}
		if (n > BATCH)
			n = BATCH;
		/* The fill ring always has room: every frame is either in it or just received. */
		for (__u32 i = 0; i < n; i++)
			fa[(fill_prod + i) & (RING - 1)] = rd[(rx_cons + i) & (RING - 1)].addr & ~(__u64)(FRAME - 1);
		rx_cons += n;
		fill_prod += n;
		__atomic_store_n(rxr.consumer, rx_cons, __ATOMIC_RELEASE);
		__atomic_store_n(fill.producer, fill_prod, __ATOMIC_RELEASE);
		received += n;
	}
	/* CPU time of this (single-threaded) process: user + system, syscalls included, as the C# side measures its thread. */
	struct timespec cpu;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	printf("received %llu cpu_ns %lld\n", received, (long long)cpu.tv_sec * 1000000000LL + cpu.tv_nsec - cpu0);
	close(map);
	close(fd);
	return 0;
}

/* Live frames: the test run injects the frame at IFNAME's XDP hook, and XDP_TX sends it out to the peer. */
static long long gen_live(const char *ifname, unsigned char *frame, size_t size, double seconds)
{
	struct bpf_insn prog[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_TX },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (__u64)(unsigned long)prog;
	a.insn_cnt = 2;
	a.license = (__u64)(unsigned long)"GPL";
	int fd = syscall(__NR_bpf, BPF_PROG_LOAD, &a, sizeof(a));
	if (fd < 0)
		return -1;
	/* A test run with repeat > 1 adds its program to the kernel's XDP dispatcher and removes it afterwards (two RCU
	 * grace periods, ~30 ms a call) unless the program is attached somewhere already: attach it to IFNAME itself
	 * (frames arriving there bounce back, and none do in the benchmark); the link goes when the process exits. */
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = fd;
	a.link_create.target_ifindex = if_nametoindex(ifname);
	a.link_create.attach_type = BPF_XDP;
	a.link_create.flags = XDP_FLAGS_DRV_MODE;
	int link = syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof(a));
	if (link < 0)
		perror("attaching the generator's program (the generator will be slow)");
	/* data_end must equal the frame size: the kernel checks the context against the data. */
	struct xdp_md ctx = { .data_end = size, .ingress_ifindex = if_nametoindex(ifname) };
	long long sent = 0;
	double end = now() + seconds;
	while (now() < end) {
		memset(&a, 0, sizeof(a));
		a.test.prog_fd = fd;
		a.test.data_in = (__u64)(unsigned long)frame;
		a.test.data_size_in = size;
		a.test.ctx_in = (__u64)(unsigned long)&ctx;
		a.test.ctx_size_in = sizeof(ctx);
		a.test.repeat = 4096;
		a.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
		if (syscall(__NR_bpf, BPF_PROG_TEST_RUN, &a, sizeof(a))) {
			if (!sent)
				perror("live-frames test run (falling back to AF_PACKET)");
			if (link >= 0)
				close(link);
			close(fd);
			return sent ? sent : -1;
		}
		sent += 4096;
	}
	if (link >= 0)
		close(link);
	close(fd);
	return sent;
}

static int gen(const char *ifname, double seconds)
{
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0)
		die("socket AF_PACKET");
	int one = 1;
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(ifname), .sll_halen = 6 };
	unsigned char f[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0x5b, 0x9f, 0, 1, 0x08, 0x00,
				0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 11, 0, 1, 10, 11, 0, 2,
				0x04, 0xd2, 0x27, 0x0f, 0, 26 };
	long long live = gen_live(ifname, f, sizeof(f), seconds);
	if (live >= 0) {
		printf("sent %lld (live frames)\n", live);
		return 0;
	}
	unsigned long long sent = 0;
	double end = now() + seconds;
	while (1) {
		for (int i = 0; i < 256; i++)
			if (sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&ll, sizeof(ll)) > 0)
				sent++;
		if (now() >= end)
			break;
	}
	printf("sent %llu (AF_PACKET)\n", sent);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "rx"))
		return rx(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
	if (argc == 4 && !strcmp(argv[1], "gen"))
		return gen(argv[2], atof(argv[3]));
	fprintf(stderr, "usage: xsk_ref rx IFNAME QUEUE XSKMAP_ID SECONDS | xsk_ref gen IFNAME SECONDS\n");
	return 2;
}
