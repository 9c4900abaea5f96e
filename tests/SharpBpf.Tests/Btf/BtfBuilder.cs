using System.Buffers.Binary;
using System.Text;

namespace SharpBpf.Tests.Btf;

/// <summary>Writes small .BTF blobs by hand, for kinds clang-14 does not emit (ENUM64) and for broken input.</summary>
public sealed class BtfBuilder
{
    private readonly MemoryStream types = new();
    private readonly MemoryStream strings = new();

    public BtfBuilder() => strings.WriteByte(0);

    public uint Name(string name)
    {
        uint offset = (uint)strings.Length;
        var bytes = Encoding.UTF8.GetBytes(name);
        strings.Write(bytes);
        strings.WriteByte(0);
        return offset;
    }

    public BtfBuilder Type(uint nameOffset, int kind, int vlen, uint sizeOrType, bool kindFlag = false, params uint[] extra)
    {
        Word(nameOffset);
        Word((uint)vlen | (uint)kind << 24 | (kindFlag ? 1u << 31 : 0));
        Word(sizeOrType);
        foreach (var w in extra)
            Word(w);
        return this;
    }

    public BtfBuilder Int(string name, uint size, bool signed = false) =>
        Type(Name(name), 1, 0, size, false, (signed ? 1u << 24 : 0) | size * 8);

    public byte[] Build()
    {
        var header = new byte[24];
        BinaryPrimitives.WriteUInt16LittleEndian(header, 0xeb9f);
        header[2] = 1;
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), 24);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)types.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), (uint)types.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), (uint)strings.Length);
        return [.. header, .. types.ToArray(), .. strings.ToArray()];
    }

    private void Word(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        types.Write(b);
    }
}
