using System.Buffers.Binary;

namespace SharpBpf.Pcap;

/// <summary>
/// Writes classic pcap files (the format tcpdump -w writes and every tool reads), little-endian, with microsecond
/// (magic a1b2c3d4) or nanosecond (magic a1b23c4d) timestamps.
/// <code>
///   file header (24): magic 4 | version 2.4 | thiszone 4 = 0 | sigfigs 4 = 0 | snaplen 4 | link type 4
///   record (16 + n):  seconds 4 | micro/nanoseconds 4 | captured length 4 | original length 4 | n bytes
/// </code>
/// Packets longer than the snap length are truncated to it, keeping their original length.
/// </summary>
public sealed class PcapWriter : IDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly bool _nanoseconds;
    private readonly byte[] _header = new byte[16];

    public PcapWriter(Stream stream, LinkType linkType = LinkType.Ethernet, int snapLength = 262144,
        bool nanosecondTimestamps = false, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(snapLength, 1);
        _stream = stream;
        _leaveOpen = leaveOpen;
        _nanoseconds = nanosecondTimestamps;
        SnapLength = snapLength;
        LinkType = linkType;
        Span<byte> header = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, nanosecondTimestamps ? 0xa1b23c4du : 0xa1b2c3d4u);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(header[16..], snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], (uint)linkType);
        _stream.Write(header);
    }

    /// <summary>Creates (or overwrites) a file.</summary>
    public static PcapWriter Create(string path, LinkType linkType = LinkType.Ethernet, int snapLength = 262144,
        bool nanosecondTimestamps = false) =>
        new(File.Create(path), linkType, snapLength, nanosecondTimestamps);

    public LinkType LinkType { get; }
    public int SnapLength { get; }

    /// <summary>Packets written so far.</summary>
    public long Count { get; private set; }

    /// <summary>Writes one packet captured at <paramref name="timestampNanoseconds"/> (since the Unix epoch).
    /// <paramref name="originalLength"/> defaults to the data length.</summary>
    public void Write(ReadOnlySpan<byte> data, long timestampNanoseconds, int? originalLength = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(timestampNanoseconds);
        var captured = Math.Min(data.Length, SnapLength);
        var original = Math.Max(originalLength ?? data.Length, captured);
        var seconds = timestampNanoseconds / 1_000_000_000;
        var fraction = timestampNanoseconds % 1_000_000_000;
        if (!_nanoseconds)
            fraction /= 1000;
        if (seconds > uint.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(timestampNanoseconds), "pcap timestamps end in 2106");
        BinaryPrimitives.WriteUInt32LittleEndian(_header, (uint)seconds);
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(4), (uint)fraction);
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(8), captured);
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(12), original);
        _stream.Write(_header);
        _stream.Write(data[..captured]);
        Count++;
    }

    /// <summary>Writes one packet captured at <paramref name="timestamp"/>.</summary>
    public void Write(ReadOnlySpan<byte> data, DateTimeOffset timestamp, int? originalLength = null) =>
        Write(data, (timestamp - DateTimeOffset.UnixEpoch).Ticks * 100, originalLength);

    /// <summary>Writes a packet read from another file, keeping its time and original length.</summary>
    public void Write(PcapPacket packet)
    {
        ArgumentNullException.ThrowIfNull(packet);
        Write(packet.Data, packet.TimestampNanoseconds, packet.OriginalLength);
    }

    public void Flush() => _stream.Flush();

    public void Dispose()
    {
        _stream.Flush();
        if (!_leaveOpen)
            _stream.Dispose();
    }
}
