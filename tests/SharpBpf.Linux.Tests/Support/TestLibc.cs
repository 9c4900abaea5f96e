using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Tests.Support;

/// <summary>
/// The few libc calls the kernel test fixture needs for itself (namespaces, mounts, packet sockets). The library
/// has its own interop; this one exists so the fixture does not depend on the code it tests.
/// </summary>
internal static unsafe partial class TestLibc
{
    public const int CLONE_NEWNET = 0x40000000;
    public const int O_RDONLY = 0, O_CLOEXEC = 0x80000;
    public const int MNT_DETACH = 2;
    public const int AF_PACKET = 17, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1, SO_SNDTIMEO = 21;
    public const int ENOBUFS = 105, EAGAIN = 11, EINTR = 4;
    private const long SYS_bpf = 321; // x86_64

    [LibraryImport("libc", SetLastError = true)]
    public static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setns(int fd, int nstype);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mount(string source, string target, string fstype, nuint flags, nint data);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int umount2(string target, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint if_nametoindex(string name);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int setsockopt(int fd, int level, int name, void* value, uint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint sendto(int fd, byte* buffer, nuint length, int flags, void* address, uint addressLength);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, long a1, void* a2, long a3);

    /// <summary>
    /// True when the bpf(2) syscall answers: BPF_PROG_GET_NEXT_ID (11) from id 0 gives 0 or ENOENT where BPF is
    /// usable, EPERM or ENOSYS where it is not. A probe only; the library's bpf(2) layer lives elsewhere.
    /// </summary>
    public static bool BpfAnswers(out string reason)
    {
        Span<uint> attr = stackalloc uint[4]; // start_id, next_id, open_flags, pad
        attr.Clear();
        fixed (uint* p = attr)
        {
            var result = syscall(SYS_bpf, 11, p, 16);
            var errno = Marshal.GetLastPInvokeError();
            if (result == 0 || errno == Errno.ENOENT)
            {
                reason = "";
                return true;
            }
            reason = $"bpf(2) refused BPF_PROG_GET_NEXT_ID with {Errno.Name(errno)}";
            return false;
        }
    }

    /// <summary>sockaddr_ll as the kernel lays it out (20 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SockaddrLl
    {
        public ushort Family;
        public ushort Protocol; // network byte order
        public int IfIndex;
        public ushort HaType;
        public byte PacketType;
        public byte HaLength;
        public ulong Address;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Timeval
    {
        public long Seconds;
        public long Microseconds;
    }

    public static string LastError() => Errno.Name(Marshal.GetLastPInvokeError());
}
