using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace SharpBpf.Linux.Filter;

/// <summary>
/// Builds Ethernet frames for exercising the filter: IPv4 or IPv6 with TCP, UDP or ICMP, optional VLAN tags.
/// Checksums are correct (IPv4 header, TCP/UDP/ICMP with their pseudo-headers) so the frames are also valid on a
/// real link. The demo, the tests and the benchmarks use it.
/// </summary>
public sealed record FramePacket
{
    public byte[] SourceMac { get; init; } = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    public byte[] DestinationMac { get; init; } = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
    public required IPAddress Source { get; init; }
    public required IPAddress Destination { get; init; }

    /// <summary>6 (TCP), 17 (UDP), 1 (ICMP) or 58 (ICMPv6); other numbers get <see cref="Payload"/> as their body.</summary>
    public byte Protocol { get; init; } = 17;
    public ushort SourcePort { get; init; } = 40000;
    public ushort DestinationPort { get; init; } = 9;

    /// <summary>VLAN ids, outermost first (the outer tag of two is 802.1ad, an inner or single one 802.1Q).</summary>
    public IReadOnlyList<ushort> VlanIds { get; init; } = [];
    public byte[] Payload { get; init; } = new byte[18];

    /// <summary>IPv4 options (a multiple of 4 bytes, at most 40), which grow the IHL.</summary>
    public byte[] Ipv4Options { get; init; } = [];

    /// <summary>IPv6 extension headers to put before the transport header, by number: 0 hop-by-hop, 43 routing,
    /// 60 destination options (8 bytes each, padding only), 44 fragment (with <see cref="FragmentOffset"/>).</summary>
    public IReadOnlyList<byte> Ipv6Extensions { get; init; } = [];

    /// <summary>Fragment offset in 8-byte units: non-zero makes the packet a non-first fragment (IPv4 header field, or
    /// the IPv6 fragment header, which is added when absent from <see cref="Ipv6Extensions"/>).</summary>
    public ushort FragmentOffset { get; init; }

    public static FramePacket Udp(string source, string destination, ushort sourcePort, ushort destinationPort) =>
        new() { Source = IPAddress.Parse(source), Destination = IPAddress.Parse(destination), Protocol = 17, SourcePort = sourcePort, DestinationPort = destinationPort };

    public static FramePacket Tcp(string source, string destination, ushort sourcePort, ushort destinationPort) =>
        new() { Source = IPAddress.Parse(source), Destination = IPAddress.Parse(destination), Protocol = 6, SourcePort = sourcePort, DestinationPort = destinationPort };

    public static FramePacket Icmp(string source, string destination)
    {
        var v6 = IPAddress.Parse(source).AddressFamily == AddressFamily.InterNetworkV6;
        return new() { Source = IPAddress.Parse(source), Destination = IPAddress.Parse(destination), Protocol = (byte)(v6 ? 58 : 1) };
    }

    public byte[] Build()
    {
        var v6 = Source.AddressFamily == AddressFamily.InterNetworkV6;
        if (Destination.AddressFamily != Source.AddressFamily)
            throw new ArgumentException("source and destination are of different address families");

        if (Ipv4Options.Length % 4 != 0 || Ipv4Options.Length > 40)
            throw new ArgumentException("IPv4 options must be a multiple of 4 bytes, at most 40");
        var extensions = Ipv6Extensions.ToList();
        if (v6 && FragmentOffset != 0 && !extensions.Contains(44))
            extensions.Add(44);
        var transport = Transport(v6);
        var headerLength = v6 ? 40 + 8 * extensions.Count : 20 + Ipv4Options.Length;
        var ipLength = headerLength + transport.Length;
        var frame = new byte[14 + 4 * VlanIds.Count + ipLength];
        var span = frame.AsSpan();
        DestinationMac.CopyTo(span);
        SourceMac.CopyTo(span[6..]);
        var offset = 12;
        for (var i = 0; i < VlanIds.Count; i++)
        {
            var tpid = VlanIds.Count == 2 && i == 0 ? (ushort)0x88a8 : (ushort)0x8100;
            BinaryPrimitives.WriteUInt16BigEndian(span[offset..], tpid);
            BinaryPrimitives.WriteUInt16BigEndian(span[(offset + 2)..], (ushort)(VlanIds[i] & 0x0fff));
            offset += 4;
        }
        BinaryPrimitives.WriteUInt16BigEndian(span[offset..], v6 ? (ushort)0x86dd : (ushort)0x0800);
        offset += 2;

        var ip = span[offset..];
        var source = Source.GetAddressBytes();
        var destination = Destination.GetAddressBytes();
        if (v6)
        {
            ip[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(ipLength - 40));
            ip[6] = extensions.Count > 0 ? extensions[0] : Protocol;
            ip[7] = 64;
            source.CopyTo(ip[8..]);
            destination.CopyTo(ip[24..]);
            for (var i = 0; i < extensions.Count; i++)
            {
                // Every header here is 8 bytes: next header, then hdrlen 0 (8 bytes) or the fragment fields.
                var header = ip.Slice(40 + 8 * i, 8);
                header[0] = i + 1 < extensions.Count ? extensions[i + 1] : Protocol;
                if (extensions[i] == 44)
                    BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)(FragmentOffset << 3));
                else
                    header[2] = 1; // a PadN option filling the 6 bytes
                if (extensions[i] != 44)
                    header[3] = 4;
            }
            transport.CopyTo(ip[headerLength..]);
        }
        else
        {
            ip[0] = (byte)(0x40 | headerLength / 4);
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ipLength);
            BinaryPrimitives.WriteUInt16BigEndian(ip[6..], (ushort)(FragmentOffset & 0x1fff));
            ip[8] = 64;
            ip[9] = Protocol;
            source.CopyTo(ip[12..]);
            destination.CopyTo(ip[16..]);
            Ipv4Options.CopyTo(ip[20..]);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Fold(Sum(ip[..headerLength])));
            transport.CopyTo(ip[headerLength..]);
        }

        // Transport checksums cover a pseudo-header (addresses, protocol, length); ICMPv4 covers only itself.
        var body = ip[headerLength..];
        var checksumOffset = Protocol switch { 6 => 16, 17 => 6, 1 or 58 => 2, _ => -1 };
        if (checksumOffset >= 0)
        {
            uint sum = Sum(body);
            if (Protocol != 1)
                sum += Sum(source) + Sum(destination) + Protocol + (uint)body.Length;
            var checksum = Fold(sum);
            if (Protocol == 17 && checksum == 0)
                checksum = 0xffff;
            BinaryPrimitives.WriteUInt16BigEndian(body[checksumOffset..], checksum);
        }
        return frame;
    }

    private byte[] Transport(bool v6)
    {
        switch (Protocol)
        {
            case 17:
            {
                var udp = new byte[8 + Payload.Length];
                BinaryPrimitives.WriteUInt16BigEndian(udp, SourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(2), DestinationPort);
                BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), (ushort)udp.Length);
                Payload.CopyTo(udp, 8);
                return udp;
            }
            case 6:
            {
                var tcp = new byte[20 + Payload.Length];
                BinaryPrimitives.WriteUInt16BigEndian(tcp, SourcePort);
                BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), DestinationPort);
                tcp[12] = 0x50;  // data offset 5 words
                tcp[13] = 0x02;  // SYN
                BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), 65535);
                Payload.CopyTo(tcp, 20);
                return tcp;
            }
            case 1 or 58:
            {
                var icmp = new byte[8 + Payload.Length];
                icmp[0] = (byte)(v6 ? 128 : 8); // echo request
                Payload.CopyTo(icmp, 8);
                return icmp;
            }
            default:
                return (byte[])Payload.Clone();
        }
    }

    private static uint Sum(ReadOnlySpan<byte> bytes)
    {
        uint sum = 0;
        for (var i = 0; i + 1 < bytes.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(bytes[i..]);
        if (bytes.Length % 2 == 1)
            sum += (uint)bytes[^1] << 8;
        return sum;
    }

    private static ushort Fold(uint sum)
    {
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }
}
