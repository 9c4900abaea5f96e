using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SharpBpf.Linux.Tests.Support;

/// <summary>
/// Bounded test traffic: Ethernet/IPv4/UDP frames written with an AF_PACKET socket onto one veth end, so they
/// arrive on its peer (where the program under test is attached). Call from inside the test's namespace
/// (<see cref="NetNs.Run{T}"/> or <see cref="NetNs.RunConcurrently{T}"/>).
/// </summary>
public static unsafe class Traffic
{
    /// <summary>UDP destination port of the fixture's frames; test programs count only these.</summary>
    public const ushort Port = 9999;

    /// <summary>
    /// Sends <paramref name="count"/> UDP frames out of <paramref name="ifIndex"/> and returns how many the kernel
    /// took. A veth whose peer's queue is full refuses a frame with ENOBUFS; that frame is retried, so the result
    /// is <paramref name="count"/> unless <paramref name="timeout"/> ran out first. Every taken frame reaches the
    /// peer's XDP hook.
    /// </summary>
    public static int SendUdp(int ifIndex, int count, TimeSpan timeout, int payloadBytes = 64)
    {
        var fd = TestLibc.socket(TestLibc.AF_PACKET, TestLibc.SOCK_RAW | TestLibc.SOCK_CLOEXEC, 0);
        if (fd < 0)
            throw new InvalidOperationException("socket(AF_PACKET): " + TestLibc.LastError());
        try
        {
            var tv = new TestLibc.Timeval { Seconds = 1 };
            TestLibc.setsockopt(fd, TestLibc.SOL_SOCKET, TestLibc.SO_SNDTIMEO, &tv, (uint)sizeof(TestLibc.Timeval));
            var address = new TestLibc.SockaddrLl
            {
                Family = TestLibc.AF_PACKET,
                Protocol = BinaryPrimitives.ReverseEndianness((ushort)0x0800),
                IfIndex = ifIndex,
                HaLength = 6,
                Address = 0xffff_ffff_ffff,
            };
            var frame = BuildUdpFrame(payloadBytes, 0);
            var clock = Stopwatch.StartNew();
            var sent = 0;
            while (sent < count && clock.Elapsed < timeout)
            {
                // The sequence number in the payload lets a test tell frames apart if it wants to.
                BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(42), sent);
                fixed (byte* p = frame)
                {
                    if (TestLibc.sendto(fd, p, (nuint)frame.Length, 0, &address, (uint)sizeof(TestLibc.SockaddrLl)) >= 0)
                    {
                        sent++;
                        continue;
                    }
                }
                var errno = Marshal.GetLastPInvokeError();
                if (errno is TestLibc.ENOBUFS or TestLibc.EAGAIN or TestLibc.EINTR)
                {
                    Thread.Yield();
                    continue;
                }
                throw new InvalidOperationException($"sendto ifindex {ifIndex}: {Errno.Name(errno)}");
            }
            return sent;
        }
        finally
        {
            TestLibc.close(fd);
        }
    }

    /// <summary>
    /// An Ethernet II / IPv4 / UDP frame to the broadcast address, from 10.11.0.1:1234 to 10.11.0.2:<see cref="Port"/>,
    /// with a correct IPv4 header checksum and a zero UDP checksum; the payload starts with a 4-byte sequence.
    /// </summary>
    public static byte[] BuildUdpFrame(int payloadBytes, int sequence)
    {
        payloadBytes = Math.Max(payloadBytes, 4);
        var frame = new byte[14 + 20 + 8 + payloadBytes];
        var span = frame.AsSpan();
        span[..6].Fill(0xff);                                       // destination: broadcast
        ReadOnlySpan<byte> source = [0x02, 0x00, 0x5b, 0x9f, 0x00, 0x01];
        source.CopyTo(span[6..]);                                   // source: locally administered
        BinaryPrimitives.WriteUInt16BigEndian(span[12..], 0x0800);  // IPv4
        var ip = span.Slice(14, 20);
        ip[0] = 0x45;                                               // version 4, IHL 5
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + payloadBytes));
        ip[8] = 64;                                                 // TTL
        ip[9] = 17;                                                 // UDP
        ReadOnlySpan<byte> addresses = [10, 11, 0, 1, 10, 11, 0, 2];
        addresses.CopyTo(ip[12..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip));
        var udp = span.Slice(34, 8);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 1234);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], Port);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + payloadBytes));
        BinaryPrimitives.WriteInt32BigEndian(span[42..], sequence);
        return frame;
    }

    private static ushort Checksum(ReadOnlySpan<byte> header)
    {
        uint sum = 0;
        for (var i = 0; i + 1 < header.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(header[i..]);
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }
}
