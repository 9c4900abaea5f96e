using System.Buffers.Binary;
using System.Collections;

namespace SharpBpf.Pcap;

/// <summary>
/// Reads capture files as a stream of packets: classic pcap (either byte order; microsecond or nanosecond
/// timestamps) and pcapng (sections in either byte order; interface description, enhanced, simple and obsolete
/// packet blocks; several interfaces with their own link types and timestamp resolutions; other blocks skipped).
/// <para>Reading is streaming and bounded: nothing is allocated beyond one block, a packet longer than
/// <see cref="MaxPacketLength"/> or a block longer than that plus 64 KiB is refused, and every malformed or
/// truncated structure is a <see cref="PcapException"/> naming the packet and byte offset, never a hang.</para>
/// <para>A reader over a seekable stream may be enumerated again (it starts over); over another stream, once.</para>
/// </summary>
public sealed class PcapReader : IEnumerable<PcapPacket>, IDisposable
{
    /// <summary>Wireshark's bound on an ordinary packet.</summary>
    public const int DefaultMaxPacketLength = 262144;

    private const uint MagicMicro = 0xa1b2c3d4, MagicNano = 0xa1b23c4d;
    private const uint SectionHeaderType = 0x0a0d0d0a, ByteOrderMagic = 0x1a2b3c4d;
    private const uint InterfaceBlockType = 1, ObsoletePacketType = 2, SimplePacketType = 3, EnhancedPacketType = 6;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly long _start;
    private Parser? _fresh;
    private bool _enumerated;

    public PcapReader(Stream stream, bool leaveOpen = false, int maxPacketLength = DefaultMaxPacketLength)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPacketLength, 1);
        _stream = stream;
        _leaveOpen = leaveOpen;
        MaxPacketLength = maxPacketLength;
        _start = stream.CanSeek ? stream.Position : 0;
        _fresh = new Parser(this);
        Format = _fresh.Format;
        LinkType = _fresh.FileLinkType;
        SnapLength = _fresh.FileSnapLength;
        NanosecondTimestamps = _fresh.Nanoseconds;
        IsBigEndian = _fresh.BigEndian;
    }

    /// <summary>Opens a file for reading.</summary>
    public static PcapReader Open(string path, int maxPacketLength = DefaultMaxPacketLength) =>
        new(File.OpenRead(path), leaveOpen: false, maxPacketLength);

    public CaptureFormat Format { get; }

    /// <summary>The file's link type (classic pcap); for pcapng each packet carries its interface's.</summary>
    public LinkType LinkType { get; }

    /// <summary>The file's snap length (classic pcap), 0 for pcapng.</summary>
    public int SnapLength { get; }

    /// <summary>Classic pcap with nanosecond timestamps.</summary>
    public bool NanosecondTimestamps { get; }

    /// <summary>The (first section's) byte order is big-endian.</summary>
    public bool IsBigEndian { get; }

    /// <summary>Longest packet accepted.</summary>
    public int MaxPacketLength { get; }

    public IEnumerator<PcapPacket> GetEnumerator()
    {
        Parser parser;
        if (_fresh is not null)
        {
            parser = _fresh;
            _fresh = null;
        }
        else if (_stream.CanSeek)
        {
            _stream.Position = _start;
            parser = new Parser(this);
        }
        else
        {
            throw new InvalidOperationException("capture file: this stream cannot be read a second time");
        }
        _enumerated = true;
        return parser.Packets().GetEnumerator();
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>True once packets were enumerated.</summary>
    public bool Started => _enumerated;

    public void Dispose()
    {
        if (!_leaveOpen)
            _stream.Dispose();
    }

    private readonly record struct Interface(LinkType LinkType, int SnapLength, bool BinaryResolution, int Exponent, long OffsetSeconds);

    /// <summary>One pass over the stream.</summary>
    private sealed class Parser
    {
        private readonly PcapReader _owner;
        private readonly Stream _stream;
        private readonly List<Interface> _interfaces = [];
        private byte[] _block = new byte[256];
        private long _position;
        private long _packetIndex;

        public CaptureFormat Format;
        public LinkType FileLinkType = LinkType.Ethernet;
        public int FileSnapLength;
        public bool Nanoseconds;
        public bool BigEndian;

        public Parser(PcapReader owner)
        {
            _owner = owner;
            _stream = owner._stream;
            Span<byte> magic = stackalloc byte[4];
            if (!TryRead(magic, "file header", null))
                throw new PcapException("the file is empty", 0);
            var little = BinaryPrimitives.ReadUInt32LittleEndian(magic);
            var big = BinaryPrimitives.ReadUInt32BigEndian(magic);
            if (little is MagicMicro or MagicNano || big is MagicMicro or MagicNano)
            {
                Format = CaptureFormat.Pcap;
                BigEndian = big is MagicMicro or MagicNano;
                Nanoseconds = (BigEndian ? big : little) == MagicNano;
                ReadClassicHeader();
            }
            else if (little == SectionHeaderType)
            {
                Format = CaptureFormat.PcapNg;
                ReadSectionHeader(0);
            }
            else
            {
                throw new PcapException($"not a pcap or pcapng file (magic {little:x8})", 0);
            }
        }

        // ---- reading primitives -----------------------------------------------------------------------------

        /// <summary>Fills <paramref name="buffer"/>; false at a clean end of file, PcapException when it ends
        /// part-way.</summary>
        private bool TryRead(Span<byte> buffer, string what, long? packet)
        {
            var done = 0;
            while (done < buffer.Length)
            {
                var n = _stream.Read(buffer[done..]);
                if (n <= 0)
                {
                    if (done == 0)
                        return false;
                    throw new PcapException($"{what} is truncated ({done} of {buffer.Length} bytes)", _position, packet);
                }
                done += n;
            }
            _position += done;
            return true;
        }

        private void Read(Span<byte> buffer, string what, long? packet)
        {
            var at = _position;
            if (!TryRead(buffer, what, packet))
                throw new PcapException($"{what} is missing: the file ends", at, packet);
        }

        private uint U32(ReadOnlySpan<byte> b) =>
            BigEndian ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);

        private ushort U16(ReadOnlySpan<byte> b) =>
            BigEndian ? BinaryPrimitives.ReadUInt16BigEndian(b) : BinaryPrimitives.ReadUInt16LittleEndian(b);

        // ---- classic pcap -----------------------------------------------------------------------------------

        private void ReadClassicHeader()
        {
            Span<byte> header = stackalloc byte[20];
            Read(header, "file header", null);
            var major = U16(header);
            if (major != 2)
                throw new PcapException($"unsupported pcap version {major}.{U16(header[2..])}", 4);
            FileSnapLength = (int)Math.Min(U32(header[12..]), int.MaxValue);
            // The low 16 bits are the link type; the upper bits may carry FCS information.
            FileLinkType = (LinkType)(U32(header[16..]) & 0xffff);
        }

        private PcapPacket? NextClassic()
        {
            Span<byte> record = stackalloc byte[16];
            var at = _position;
            if (!TryRead(record, "record header", _packetIndex))
                return null;
            var seconds = U32(record);
            var fraction = U32(record[4..]);
            var captured = U32(record[8..]);
            var original = U32(record[12..]);
            if (captured > (uint)_owner.MaxPacketLength)
                throw new PcapException(
                    $"captured length {captured} is over the limit of {_owner.MaxPacketLength} bytes", at, _packetIndex);
            var data = new byte[captured];
            Read(data, "packet data", _packetIndex);
            return new PcapPacket
            {
                TimestampNanoseconds = seconds * 1_000_000_000L + (Nanoseconds ? fraction : fraction * 1000L),
                OriginalLength = (int)Math.Min(original, int.MaxValue),
                Data = data,
                LinkType = FileLinkType,
                InterfaceId = 0,
                Index = _packetIndex++,
            };
        }

        // ---- pcapng -----------------------------------------------------------------------------------------

        private int MaxBlockLength => _owner.MaxPacketLength + 65536;

        /// <summary>Reads a section header block whose type (4 bytes) was read at <paramref name="at"/>.</summary>
        private void ReadSectionHeader(long at)
        {
            Span<byte> head = stackalloc byte[8];
            Read(head, "section header", null);
            var magic = BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
            if (magic == ByteOrderMagic)
                BigEndian = false;
            else if (BinaryPrimitives.ReverseEndianness(magic) == ByteOrderMagic)
                BigEndian = true;
            else
                throw new PcapException($"section header has a bad byte-order magic {magic:x8}", at);
            var length = U32(head);
            if (length < 28 || length % 4 != 0 || length > MaxBlockLength)
                throw new PcapException($"section header length {length} is invalid", at);
            var body = ReadBlockRest(length, 12, at, "section header");
            var major = U16(body);
            if (major != 1)
                throw new PcapException($"unsupported pcapng version {major}.{U16(body[2..])}", at);
            _interfaces.Clear();
        }

        /// <summary>Reads the rest of a block of <paramref name="length"/> bytes of which <paramref name="consumed"/>
        /// are read, checks the trailing length, and returns the body (without the trailing length).</summary>
        private Span<byte> ReadBlockRest(uint length, int consumed, long at, string what)
        {
            var rest = (int)length - consumed - 4;
            if (_block.Length < rest)
                _block = new byte[Math.Max(rest, _block.Length * 2)];
            var body = _block.AsSpan(0, rest);
            Read(body, what, null);
            Span<byte> trailer = stackalloc byte[4];
            Read(trailer, $"{what} trailing length", null);
            if (U32(trailer) != length)
                throw new PcapException($"{what} length {length} does not match its trailing length {U32(trailer)}", at);
            return body;
        }

        private PcapPacket? NextNg()
        {
            Span<byte> head = stackalloc byte[8];
            while (true)
            {
                var at = _position;
                if (!TryRead(head[..4], "block header", null))
                    return null;
                var type = U32(head);
                if (BinaryPrimitives.ReadUInt32LittleEndian(head) == SectionHeaderType)
                {
                    ReadSectionHeader(at);
                    continue;
                }
                Read(head[4..], "block length", null);
                var length = U32(head[4..]);
                if (length < 12 || length % 4 != 0)
                    throw new PcapException($"block of type {type} has an invalid length {length}", at);
                if (length > MaxBlockLength)
                    throw new PcapException(
                        $"block of type {type} is {length} bytes, over the limit of {MaxBlockLength}", at);
                var body = ReadBlockRest(length, 8, at, $"block of type {type}");
                switch (type)
                {
                    case InterfaceBlockType:
                        _interfaces.Add(ParseInterface(body, at));
                        break;
                    case EnhancedPacketType:
                        return ParsePacket(body, at, U32(body), 4, 20);
                    case ObsoletePacketType:
                        return ParsePacket(body, at, U16(body), 4, 20);
                    case SimplePacketType:
                        return ParseSimple(body, at);
                    default:
                        break; // name resolution, statistics, decryption secrets, custom: not packets
                }
            }
        }

        private Interface ParseInterface(ReadOnlySpan<byte> body, long at)
        {
            if (body.Length < 8)
                throw new PcapException("interface description block is too short", at);
            var linkType = (LinkType)U16(body);
            var snap = (int)Math.Min(U32(body[4..]), int.MaxValue);
            var binary = false;
            var exponent = 6;
            long offset = 0;
            var options = body[8..];
            while (options.Length >= 4)
            {
                var code = U16(options);
                var length = U16(options[2..]);
                if (code == 0)
                    break;
                var padded = (length + 3) & ~3;
                if (4 + padded > options.Length)
                    throw new PcapException($"interface option {code} of {length} bytes runs past its block", at);
                var value = options.Slice(4, length);
                if (code == 9 && length >= 1)
                {
                    binary = (value[0] & 0x80) != 0;
                    exponent = value[0] & 0x7f;
                    if (binary ? exponent > 63 : exponent > 18)
                        throw new PcapException($"interface timestamp resolution {value[0]:x2} is not supported", at);
                }
                else if (code == 14 && length >= 8)
                {
                    offset = BigEndian ? BinaryPrimitives.ReadInt64BigEndian(value) : BinaryPrimitives.ReadInt64LittleEndian(value);
                }
                options = options[(4 + padded)..];
            }
            return new Interface(linkType, snap, binary, exponent, offset);
        }

        private Interface InterfaceAt(uint id, long at)
        {
            if (id >= (uint)_interfaces.Count)
                throw new PcapException(
                    $"packet names interface {id} but the section describes {_interfaces.Count}", at, _packetIndex);
            return _interfaces[(int)id];
        }

        /// <summary>Enhanced and obsolete packet blocks: interface, 64-bit timestamp at 4, lengths at 12 and 16.</summary>
        private PcapPacket ParsePacket(ReadOnlySpan<byte> body, long at, uint interfaceId, int timestampAt, int dataAt)
        {
            if (body.Length < dataAt)
                throw new PcapException("packet block is too short", at, _packetIndex);
            var iface = InterfaceAt(interfaceId, at);
            var units = ((ulong)U32(body[timestampAt..]) << 32) | U32(body[(timestampAt + 4)..]);
            var captured = U32(body[(timestampAt + 8)..]);
            var original = U32(body[(timestampAt + 12)..]);
            if (captured > (uint)_owner.MaxPacketLength)
                throw new PcapException(
                    $"captured length {captured} is over the limit of {_owner.MaxPacketLength} bytes", at, _packetIndex);
            if (captured > (uint)(body.Length - dataAt))
                throw new PcapException($"captured length {captured} runs past its block", at, _packetIndex);
            return new PcapPacket
            {
                TimestampNanoseconds = ToNanoseconds(units, iface, at),
                OriginalLength = (int)Math.Min(original, int.MaxValue),
                Data = body.Slice(dataAt, (int)captured).ToArray(),
                LinkType = iface.LinkType,
                InterfaceId = (int)interfaceId,
                Index = _packetIndex++,
            };
        }

        private PcapPacket ParseSimple(ReadOnlySpan<byte> body, long at)
        {
            if (body.Length < 4)
                throw new PcapException("simple packet block is too short", at, _packetIndex);
            var iface = InterfaceAt(0, at);
            var original = U32(body);
            var captured = (int)Math.Min(original, (uint)(body.Length - 4));
            if (iface.SnapLength > 0)
                captured = Math.Min(captured, iface.SnapLength);
            if (captured > _owner.MaxPacketLength)
                throw new PcapException(
                    $"captured length {captured} is over the limit of {_owner.MaxPacketLength} bytes", at, _packetIndex);
            return new PcapPacket
            {
                TimestampNanoseconds = 0, // simple packet blocks carry no timestamp
                OriginalLength = (int)Math.Min(original, int.MaxValue),
                Data = body.Slice(4, captured).ToArray(),
                LinkType = iface.LinkType,
                InterfaceId = 0,
                Index = _packetIndex++,
            };
        }

        private long ToNanoseconds(ulong units, Interface iface, long at)
        {
            UInt128 nanoseconds;
            if (iface.BinaryResolution)
                nanoseconds = ((UInt128)units * 1_000_000_000u) >> iface.Exponent;
            else if (iface.Exponent <= 9)
                nanoseconds = (UInt128)units * (ulong)Math.Pow(10, 9 - iface.Exponent);
            else
                nanoseconds = units / (ulong)Math.Pow(10, iface.Exponent - 9);
            var total = (Int128)nanoseconds + (Int128)iface.OffsetSeconds * 1_000_000_000;
            if (total > long.MaxValue || total < long.MinValue)
                throw new PcapException("timestamp is out of range", at, _packetIndex);
            return (long)total;
        }

        public IEnumerable<PcapPacket> Packets()
        {
            while (true)
            {
                var packet = Format == CaptureFormat.Pcap ? NextClassic() : NextNg();
                if (packet is null)
                    yield break;
                yield return packet;
            }
        }
    }
}
