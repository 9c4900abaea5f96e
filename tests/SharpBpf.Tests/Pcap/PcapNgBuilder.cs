using System.Buffers.Binary;

namespace SharpBpf.Tests.Pcap;

/// <summary>Builds pcapng files block by block, in either byte order, for the reader's tests.</summary>
internal sealed class PcapNgBuilder(bool bigEndian = false)
{
    private readonly MemoryStream _out = new();
    private bool _bigEndian = bigEndian;

    public byte[] ToArray() => _out.ToArray();

    private byte[] U32(uint v)
    {
        var b = new byte[4];
        if (_bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, v); else BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private byte[] U16(ushort v)
    {
        var b = new byte[2];
        if (_bigEndian) BinaryPrimitives.WriteUInt16BigEndian(b, v); else BinaryPrimitives.WriteUInt16LittleEndian(b, v);
        return b;
    }

    private static byte[] Pad(byte[] data) => [.. data, .. new byte[(4 - data.Length % 4) % 4]];

    public PcapNgBuilder Block(uint type, byte[] body, uint? trailer = null)
    {
        var padded = Pad(body);
        var length = (uint)(12 + padded.Length);
        _out.Write(U32(type));
        _out.Write(U32(length));
        _out.Write(padded);
        _out.Write(U32(trailer ?? length));
        return this;
    }

    public PcapNgBuilder Section(bool? bigEndian = null)
    {
        if (bigEndian is { } b)
            _bigEndian = b;
        return Block(0x0a0d0d0a, [.. U32(0x1a2b3c4d), .. U16(1), .. U16(0), .. new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }]);
    }

    public PcapNgBuilder Interface(ushort linkType, uint snap = 0, byte? tsresol = null, long? tsoffset = null)
    {
        List<byte> body = [.. U16(linkType), 0, 0, .. U32(snap)];
        // A comment option first, to check options are walked.
        body.AddRange([.. U16(1), .. U16(5), .. "hello"u8.ToArray(), 0, 0, 0]);
        if (tsresol is { } r)
            body.AddRange([.. U16(9), .. U16(1), r, 0, 0, 0]);
        if (tsoffset is { } o)
        {
            var v = new byte[8];
            if (_bigEndian) BinaryPrimitives.WriteInt64BigEndian(v, o); else BinaryPrimitives.WriteInt64LittleEndian(v, o);
            body.AddRange([.. U16(14), .. U16(8), .. v]);
        }
        body.AddRange([.. U16(0), .. U16(0)]);
        return Block(1, [.. body]);
    }

    public PcapNgBuilder Enhanced(uint iface, ulong units, byte[] data, uint? original = null, uint? captured = null) =>
        Block(6, [.. U32(iface), .. U32((uint)(units >> 32)), .. U32((uint)units), .. U32(captured ?? (uint)data.Length),
                  .. U32(original ?? (uint)data.Length), .. Pad(data)]);

    public PcapNgBuilder Simple(byte[] data, uint? original = null) =>
        Block(3, [.. U32(original ?? (uint)data.Length), .. Pad(data)]);

    public PcapNgBuilder Statistics() => Block(5, [.. U32(0), .. U32(0), .. U32(0)]);
}
