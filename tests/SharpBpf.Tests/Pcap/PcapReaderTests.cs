using System.Buffers.Binary;
using SharpBpf.Pcap;

namespace SharpBpf.Tests.Pcap;

public class PcapReaderTests
{
    private static byte[] Frame(int length, byte seed) => Enumerable.Range(0, length).Select(i => (byte)(seed + i)).ToArray();

    private static List<PcapPacket> Read(byte[] file, int max = PcapReader.DefaultMaxPacketLength)
    {
        using var reader = new PcapReader(new MemoryStream(file), maxPacketLength: max);
        return reader.ToList();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WriterOutputReadsBackExactly(bool nanoseconds)
    {
        var stream = new MemoryStream();
        var t0 = 1_700_000_000_123_456_789L;
        using (var writer = new PcapWriter(stream, snapLength: 100, nanosecondTimestamps: nanoseconds, leaveOpen: true))
        {
            writer.Write(Frame(60, 1), t0);
            writer.Write(Frame(150, 2), t0 + 1_000_000_001); // truncated to the snap length
            writer.Write(Frame(14, 3), t0 + 2_000_000_000, originalLength: 1514);
            Assert.Equal(3, writer.Count);
        }
        stream.Position = 0;
        using var reader = new PcapReader(stream);
        Assert.Equal(CaptureFormat.Pcap, reader.Format);
        Assert.Equal(LinkType.Ethernet, reader.LinkType);
        Assert.Equal(100, reader.SnapLength);
        Assert.Equal(nanoseconds, reader.NanosecondTimestamps);
        var packets = reader.ToList();
        Assert.Equal(3, packets.Count);
        var precision = nanoseconds ? 1 : 1000;
        Assert.Equal(t0 / precision * precision, packets[0].TimestampNanoseconds);
        Assert.Equal((t0 + 1_000_000_001) / precision * precision, packets[1].TimestampNanoseconds);
        Assert.Equal(Frame(60, 1), packets[0].Data);
        Assert.Equal(Frame(100, 2), packets[1].Data);
        Assert.Equal(150, packets[1].OriginalLength);
        Assert.Equal(1514, packets[2].OriginalLength);
        Assert.Equal([0L, 1L, 2L], packets.Select(p => p.Index));
        Assert.Equal(new DateTime(2023, 11, 14, 22, 13, 20, DateTimeKind.Utc), packets[0].Timestamp.UtcDateTime.AddTicks(-(packets[0].Timestamp.UtcDateTime.Ticks % TimeSpan.TicksPerSecond)));
        // A seekable stream can be read again.
        Assert.Equal(3, reader.Count());
    }

    [Theory]
    [InlineData(0xa1b2c3d4u, 1000L)]
    [InlineData(0xa1b23c4du, 1L)]
    public void BigEndianClassicFilesRead(uint magic, long scale)
    {
        var file = new List<byte>();
        void U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); file.AddRange(b); }
        void U16(ushort v) { var b = new byte[2]; BinaryPrimitives.WriteUInt16BigEndian(b, v); file.AddRange(b); }
        U32(magic); U16(2); U16(4); U32(0); U32(0); U32(65535); U32(101);
        U32(10); U32(20); U32(3); U32(5); file.AddRange([1, 2, 3]);
        var packets = Read([.. file]);
        var p = Assert.Single(packets);
        Assert.Equal(LinkType.Raw, p.LinkType);
        Assert.Equal(10_000_000_000L + 20 * scale, p.TimestampNanoseconds);
        Assert.Equal([1, 2, 3], p.Data);
        Assert.Equal(5, p.OriginalLength);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PcapNgWithSeveralInterfacesResolutionsAndSections(bool bigEndian)
    {
        var file = new PcapNgBuilder(bigEndian)
            .Section()
            .Interface(1) // Ethernet, microseconds (default)
            .Interface(101, snap: 64, tsresol: 9, tsoffset: 100) // raw IP, nanoseconds, +100 s
            .Interface(1, tsresol: 0x80 | 10) // 2^-10 s
            .Enhanced(0, 1_500_000, Frame(60, 1))
            .Statistics()
            .Enhanced(1, 42, Frame(20, 2), original: 1500)
            .Enhanced(2, 1024 * 3 + 512, Frame(7, 3))
            .Simple(Frame(30, 4))
            // A new section in the other byte order forgets the interfaces.
            .Section(!bigEndian)
            .Interface(113, tsresol: 3)
            .Enhanced(0, 5, Frame(10, 5))
            .ToArray();
        using var reader = new PcapReader(new MemoryStream(file));
        Assert.Equal(CaptureFormat.PcapNg, reader.Format);
        Assert.Equal(bigEndian, reader.IsBigEndian);
        var packets = reader.ToList();
        Assert.Equal(5, packets.Count);
        Assert.Equal((LinkType.Ethernet, 0, 1_500_000_000L), (packets[0].LinkType, packets[0].InterfaceId, packets[0].TimestampNanoseconds));
        Assert.Equal((LinkType.Raw, 1, 100_000_000_042L), (packets[1].LinkType, packets[1].InterfaceId, packets[1].TimestampNanoseconds));
        Assert.Equal(1500, packets[1].OriginalLength);
        Assert.Equal(Frame(20, 2), packets[1].Data);
        Assert.Equal(3_500_000_000L, packets[2].TimestampNanoseconds);
        Assert.Equal(Frame(30, 4), packets[3].Data);
        Assert.Equal(LinkType.Ethernet, packets[3].LinkType);
        Assert.Equal((LinkType.LinuxSll, 5_000_000L), (packets[4].LinkType, packets[4].TimestampNanoseconds));
        Assert.Equal([0L, 1, 2, 3, 4], packets.Select(p => p.Index));
    }

    [Fact]
    public void SimplePacketsAreCutToTheSnapLength()
    {
        var file = new PcapNgBuilder().Section().Interface(1, snap: 8).Simple(Frame(20, 0)).ToArray();
        var p = Assert.Single(Read(file));
        Assert.Equal(Frame(8, 0), p.Data);
        Assert.Equal(20, p.OriginalLength);
    }

    public static TheoryData<string, byte[], string> Malformed()
    {
        var good = new MemoryStream();
        using (var w = new PcapWriter(good, leaveOpen: true))
        {
            w.Write(Frame(60, 1), 1_000_000_000L);
            w.Write(Frame(60, 2), 2_000_000_000L);
        }
        var classic = good.ToArray();
        var huge = classic.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(huge.AsSpan(24 + 16 + 60 + 8), 0x7fffffff);
        var badVersion = classic.ToArray();
        badVersion[4] = 9;
        var ng = new PcapNgBuilder().Section().Interface(1).Enhanced(0, 1, Frame(60, 1)).ToArray();
        return new TheoryData<string, byte[], string>
        {
            { "empty", [], "empty" },
            { "garbage", [1, 2, 3, 4, 5, 6, 7, 8], "not a pcap" },
            { "short header", classic[..10], "truncated" },
            { "bad version", badVersion, "version" },
            { "truncated record header", classic[..(24 + 16 + 60 + 5)], "packet 1" },
            { "truncated data", classic[..^10], "packet 1" },
            { "giant length", huge, "over the limit" },
            { "ng bad block length", new PcapNgBuilder().Section().Interface(1).ToArray().Concat(new byte[] { 6, 0, 0, 0, 13, 0, 0, 0 }).ToArray(), "invalid length" },
            { "ng huge block", new PcapNgBuilder().Section().ToArray().Concat(new byte[] { 6, 0, 0, 0, 0, 0, 0, 0x40 }).ToArray(), "over the limit" },
            { "ng trailer mismatch", new PcapNgBuilder().Section().Block(1, [1, 0, 0, 0, 0, 0, 0, 0], trailer: 99).ToArray(), "trailing length" },
            { "ng unknown interface", new PcapNgBuilder().Section().Interface(1).Enhanced(3, 1, Frame(4, 0)).ToArray(), "interface 3" },
            { "ng no interface", new PcapNgBuilder().Section().Simple(Frame(4, 0)).ToArray(), "interface 0" },
            { "ng captured past block", new PcapNgBuilder().Section().Interface(1).Enhanced(0, 1, Frame(8, 0), captured: 400).ToArray(), "runs past" },
            { "ng truncated block", ng[..^6], "truncated" },
            { "ng bad byte order", new PcapNgBuilder().Section().ToArray().Select((b, i) => i == 8 ? (byte)0 : b).ToArray(), "byte-order" },
            { "ng bad option", new PcapNgBuilder().Section().Block(1, [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 200, 0]).ToArray(), "option" },
        };
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void MalformedFilesFailSayingWhere(string name, byte[] file, string expected)
    {
        var e = Assert.Throws<PcapException>(() => Read(file));
        Assert.Contains(expected, e.Message);
        Assert.Contains("offset", e.Message);
        Assert.True(e.Offset >= 0 && e.Offset <= file.Length, name);
    }

    [Fact]
    public void RandomCorruptionNeverEscapesAsAnotherException()
    {
        var stream = new MemoryStream();
        using (var w = new PcapWriter(stream, leaveOpen: true))
            for (var i = 0; i < 20; i++)
                w.Write(Frame(40 + i, (byte)i), i * 1_000_000L);
        var ng = new PcapNgBuilder(bigEndian: true).Section().Interface(1, tsresol: 9).Interface(101)
            .Enhanced(0, 1, Frame(50, 1)).Enhanced(1, 2, Frame(70, 2)).Simple(Frame(30, 3)).Statistics().ToArray();
        var random = new Random(99);
        foreach (var original in new[] { stream.ToArray(), ng })
        {
            for (var round = 0; round < 3000; round++)
            {
                var file = original.ToArray();
                var flips = random.Next(1, 4);
                for (var f = 0; f < flips; f++)
                    file[random.Next(file.Length)] = (byte)random.Next(256);
                if (random.Next(4) == 0)
                    file = file[..random.Next(file.Length)];
                try
                {
                    var packets = Read(file, max: 4096);
                    Assert.All(packets, p => Assert.True(p.Data.Length <= 4096));
                }
                catch (PcapException)
                {
                }
            }
        }
    }

    [Fact]
    public void NonSeekableStreamsReadOnceAndSlowStreamsWork()
    {
        var stream = new MemoryStream();
        using (var w = new PcapWriter(stream, leaveOpen: true))
            for (var i = 0; i < 5; i++)
                w.Write(Frame(100, (byte)i), i);
        using var reader = new PcapReader(new TrickleStream(stream.ToArray()));
        Assert.Equal(5, reader.Count());
        Assert.Throws<InvalidOperationException>(() => reader.Count());
    }

    /// <summary>A forward-only stream that hands out at most 3 bytes a read.</summary>
    private sealed class TrickleStream(byte[] data) : Stream
    {
        private int _at;
        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, 3), data.Length - _at);
            Array.Copy(data, _at, buffer, offset, n);
            _at += n;
            return n;
        }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _at; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
