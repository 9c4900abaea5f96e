namespace SharpBpf.Pcap;

/// <summary>Link-layer header types (LINKTYPE_* of the tcpdump.org registry) that capture files name.</summary>
public enum LinkType : ushort
{
    Null = 0,
    Ethernet = 1,
    Raw = 101,
    Ieee80211 = 105,
    Loop = 108,
    LinuxSll = 113,
    Ipv4 = 228,
    Ipv6 = 229,
    LinuxSll2 = 276,
}

/// <summary>Which kind of capture file a reader found.</summary>
public enum CaptureFormat
{
    /// <summary>Classic libpcap format (microsecond or nanosecond timestamps, either byte order).</summary>
    Pcap,
    /// <summary>pcapng (sections, interfaces and packet blocks, either byte order).</summary>
    PcapNg,
}

/// <summary>One captured packet.</summary>
public sealed record PcapPacket
{
    /// <summary>Capture time in nanoseconds since the Unix epoch (UTC).</summary>
    public required long TimestampNanoseconds { get; init; }

    /// <summary>Length of the packet on the wire; may exceed <see cref="Data"/> when the capture was truncated.</summary>
    public required int OriginalLength { get; init; }

    /// <summary>The captured bytes.</summary>
    public required byte[] Data { get; init; }

    /// <summary>The link-layer header type of <see cref="Data"/>.</summary>
    public LinkType LinkType { get; init; } = LinkType.Ethernet;

    /// <summary>pcapng interface id within its section (0 for classic pcap).</summary>
    public int InterfaceId { get; init; }

    /// <summary>0-based position of the packet in the file.</summary>
    public long Index { get; init; }

    /// <summary>Capture time as a date (100 ns resolution).</summary>
    public DateTimeOffset Timestamp => DateTimeOffset.UnixEpoch.AddTicks(TimestampNanoseconds / 100);
}

/// <summary>A malformed or unsupported capture file: says which packet (or block) and at which byte offset.</summary>
public sealed class PcapException : BpfException
{
    public PcapException(string message, long offset, long? packetIndex = null)
        : base(packetIndex is { } index
            ? $"capture file: packet {index} at offset {offset}: {message}"
            : $"capture file: offset {offset}: {message}")
    {
        Offset = offset;
        PacketIndex = packetIndex;
    }

    /// <summary>Byte offset in the file of the header or block that is wrong.</summary>
    public long Offset { get; }

    /// <summary>0-based index of the packet being read, when a packet was being read.</summary>
    public long? PacketIndex { get; }
}
