using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.AfXdp;

/// <summary>
/// Receives the frames arriving on one interface with an AF_PACKET socket (ETH_P_ALL), skipping the ones the
/// host sends itself (PACKET_OUTGOING). Open it inside the test's namespace before the traffic starts.
/// </summary>
internal sealed unsafe partial class PacketCapture : IDisposable
{
    private const int EthPAll = 0x0003, PacketOutgoing = 4, SoRcvTimeo = 20;
    private readonly int _fd;

    public PacketCapture(int ifIndex)
    {
        _fd = TestLibc.socket(TestLibc.AF_PACKET, TestLibc.SOCK_RAW | TestLibc.SOCK_CLOEXEC, BinaryPrimitives.ReverseEndianness((ushort)EthPAll));
        if (_fd < 0)
            throw new InvalidOperationException("socket(AF_PACKET): " + TestLibc.LastError());
        var address = new TestLibc.SockaddrLl
        {
            Family = TestLibc.AF_PACKET,
            Protocol = BinaryPrimitives.ReverseEndianness((ushort)EthPAll),
            IfIndex = ifIndex,
        };
        if (bind(_fd, &address, (uint)sizeof(TestLibc.SockaddrLl)) != 0)
        {
            var error = TestLibc.LastError();
            TestLibc.close(_fd);
            throw new InvalidOperationException("bind(AF_PACKET): " + error);
        }
        var tv = new TestLibc.Timeval { Seconds = 0, Microseconds = 100_000 };
        TestLibc.setsockopt(_fd, TestLibc.SOL_SOCKET, SoRcvTimeo, &tv, (uint)sizeof(TestLibc.Timeval));
    }

    /// <summary>Frames that arrive within <paramref name="timeout"/>, stopping early once <paramref name="max"/> matched <paramref name="match"/>.</summary>
    public List<byte[]> Receive(int max, TimeSpan timeout, Func<byte[], bool> match)
    {
        var result = new List<byte[]>();
        var buffer = new byte[2048];
        var deadline = DateTime.UtcNow + timeout;
        while (result.Count < max && DateTime.UtcNow < deadline)
        {
            TestLibc.SockaddrLl from;
            uint fromLength = (uint)sizeof(TestLibc.SockaddrLl);
            nint n;
            fixed (byte* p = buffer)
                n = recvfrom(_fd, p, (nuint)buffer.Length, 0, &from, &fromLength);
            if (n < 0)
                continue; // timeout slice (EAGAIN) or EINTR: the deadline bounds the loop
            if (from.PacketType == PacketOutgoing)
                continue;
            var frame = buffer.AsSpan(0, (int)n).ToArray();
            if (match(frame))
                result.Add(frame);
        }
        return result;
    }

    public void Dispose() => TestLibc.close(_fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int bind(int fd, TestLibc.SockaddrLl* address, uint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recvfrom(int fd, byte* buffer, nuint length, int flags, TestLibc.SockaddrLl* address, uint* addressLength);
}
