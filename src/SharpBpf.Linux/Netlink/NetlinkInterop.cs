using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Netlink;

/// <summary>
/// The one place the netlink code calls libc: a route-netlink socket, its options, send and receive, and setns(2)
/// for opening a socket in another network namespace. Everything above works on byte spans.
/// </summary>
internal static unsafe partial class NetlinkInterop
{
    public const int AddressFamilyNetlink = 16;     // AF_NETLINK
    public const int ProtocolRoute = 0;             // NETLINK_ROUTE
    public const int SocketRaw = 3;                 // SOCK_RAW
    public const int SocketCloseOnExec = 0x80000;   // SOCK_CLOEXEC
    public const int LevelSocket = 1;               // SOL_SOCKET
    public const int OptionReceiveTimeout = 20;     // SO_RCVTIMEO
    public const int OptionSendTimeout = 21;        // SO_SNDTIMEO
    public const int OptionReceiveBuffer = 8;       // SO_RCVBUF
    public const int LevelNetlink = 270;            // SOL_NETLINK
    public const int OptionCapAck = 10;             // NETLINK_CAP_ACK: errors do not echo our whole request
    public const int OptionExtendedAck = 11;        // NETLINK_EXT_ACK: errors carry the kernel's message
    public const int NamespaceNetwork = 0x40000000; // CLONE_NEWNET
    public const int OpenReadOnlyCloseOnExec = 0x80000; // O_RDONLY | O_CLOEXEC

    [StructLayout(LayoutKind.Sequential)]
    public struct SocketAddress // sockaddr_nl (12 bytes)
    {
        public ushort Family;
        public ushort Padding;
        public uint PortId;
        public uint Groups;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct TimeValue // struct timeval
    {
        public long Seconds;
        public long Microseconds;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, SocketAddress* address, uint length);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSocketName(int fd, SocketAddress* address, uint* length);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSocketOption(int fd, int level, int name, void* value, uint length);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    public static partial nint Send(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    public static partial nint Receive(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNamespace(int fd, int type);

    public static int LastErrno() => Marshal.GetLastPInvokeError();
}
