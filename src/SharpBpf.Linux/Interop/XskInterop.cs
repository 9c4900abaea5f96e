using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Interop;

// AF_XDP's user-space ABI (linux/if_xdp.h), and the socket/mmap/poll calls of libc it needs. Kernel spellings stay
// in this file; SharpBpf.Linux.AfXdp wraps them in .NET names.

[StructLayout(LayoutKind.Sequential)]
internal struct sockaddr_xdp
{
    public ushort sxdp_family;
    public ushort sxdp_flags;
    public uint sxdp_ifindex;
    public uint sxdp_queue_id;
    public uint sxdp_shared_umem_fd;
}

[StructLayout(LayoutKind.Sequential)]
internal struct xdp_ring_offset
{
    public ulong producer;
    public ulong consumer;
    public ulong desc;
    public ulong flags;
}

[StructLayout(LayoutKind.Sequential)]
internal struct xdp_mmap_offsets
{
    public xdp_ring_offset rx;
    public xdp_ring_offset tx;
    public xdp_ring_offset fr;
    public xdp_ring_offset cr;
}

[StructLayout(LayoutKind.Sequential)]
internal struct xdp_umem_reg
{
    public ulong addr;
    public ulong len;
    public uint chunk_size;
    public uint headroom;
    public uint flags;
    // Since 6.6 the struct has tx_metadata_len (u32) here; the kernel takes the shorter form by its optlen.
}

[StructLayout(LayoutKind.Sequential)]
internal struct xdp_statistics
{
    public ulong rx_dropped;
    public ulong rx_invalid_descs;
    public ulong tx_invalid_descs;
    public ulong rx_ring_full;
    public ulong rx_fill_ring_empty_descs;
    public ulong tx_ring_empty_descs;
}

[StructLayout(LayoutKind.Sequential)]
internal struct PollFd
{
    public int fd;
    public short events;
    public short revents;
}

internal static unsafe partial class Xsk
{
    public const int AF_XDP = 44;
    public const int SOL_XDP = 283;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;

    public const ushort XDP_SHARED_UMEM = 1 << 0;
    public const ushort XDP_COPY = 1 << 1;
    public const ushort XDP_ZEROCOPY = 1 << 2;
    public const ushort XDP_USE_NEED_WAKEUP = 1 << 3;
    public const uint XDP_UMEM_UNALIGNED_CHUNK_FLAG = 1 << 0;
    public const uint XDP_RING_NEED_WAKEUP = 1 << 0;
    public const uint XDP_OPTIONS_ZEROCOPY = 1 << 0;

    public const int XDP_MMAP_OFFSETS = 1;
    public const int XDP_RX_RING = 2;
    public const int XDP_TX_RING = 3;
    public const int XDP_UMEM_REG = 4;
    public const int XDP_UMEM_FILL_RING = 5;
    public const int XDP_UMEM_COMPLETION_RING = 6;
    public const int XDP_STATISTICS = 7;
    public const int XDP_OPTIONS = 8;

    public const long XDP_PGOFF_RX_RING = 0;
    public const long XDP_PGOFF_TX_RING = 0x80000000;
    public const long XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
    public const long XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;
    public const int XSK_UNALIGNED_BUF_OFFSET_SHIFT = 48;
    public const ulong XSK_UNALIGNED_BUF_ADDR_MASK = (1UL << XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1;
    public const int XDP_PACKET_HEADROOM = 256;

    public const int PROT_READ = 1, PROT_WRITE = 2;
    public const int MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, MAP_POPULATE = 0x8000;
    public const int MSG_DONTWAIT = 0x40;
    public const short POLLIN = 0x1, POLLOUT = 0x4;

    private const string Library = "libc";

    [LibraryImport(Library, SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int setsockopt(int fd, int level, int name, void* value, uint length);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int getsockopt(int fd, int level, int name, void* value, uint* length);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int bind(int fd, sockaddr_xdp* address, uint length);

    [LibraryImport(Library, SetLastError = true)]
    public static partial void* mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int munmap(void* address, nuint length);

    [LibraryImport(Library, SetLastError = true)]
    public static partial nint sendto(int fd, void* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport(Library, SetLastError = true)]
    public static partial nint recvfrom(int fd, void* buffer, nuint length, int flags, void* address, uint* addressLength);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int poll(PollFd* fds, ulong count, int timeoutMs);

    public static readonly void* MAP_FAILED = (void*)-1;
}
