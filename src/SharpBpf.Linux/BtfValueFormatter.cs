using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SharpBpf.Btf;

namespace SharpBpf.Linux;

/// <summary>
/// Renders map keys and values as C-like text from their BTF type, as bpftool's "formatted" output does:
/// <c>{packets = 3, bytes = 192}</c>, arrays in brackets, enums by name, chars as text. Falls back to hex
/// for anything it cannot read (bitfields beyond 64 bits, data shorter than the type).
/// </summary>
public static class BtfValueFormatter
{
    private const int MaxDepth = 16;

    public static string Format(BtfSpec btf, uint typeId, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(btf);
        var text = new StringBuilder();
        Write(text, btf, typeId, data, 0);
        return text.ToString();
    }

    private static void Write(StringBuilder text, BtfSpec btf, uint typeId, ReadOnlySpan<byte> data, int depth)
    {
        var type = btf.SkipQualifiers(typeId);
        ulong size = SafeSize(btf, type.Id);
        if (depth > MaxDepth || (ulong)data.Length < size)
        {
            text.Append(Convert.ToHexStringLower(data));
            return;
        }
        switch (type)
        {
            case BtfInt i:
                WriteInt(text, i, data);
                break;
            case BtfEnum e:
                long value = ReadSigned(data, (int)e.Size, e.Signed);
                var named = e.Values.FirstOrDefault(v => v.Value == value);
                text.Append(named is not null ? named.Name : value.ToString(CultureInfo.InvariantCulture));
                break;
            case BtfFloat f when f.Size is 4 or 8:
                text.Append(f.Size == 4
                    ? BinaryPrimitives.ReadSingleLittleEndian(data).ToString(CultureInfo.InvariantCulture)
                    : BinaryPrimitives.ReadDoubleLittleEndian(data).ToString(CultureInfo.InvariantCulture));
                break;
            case BtfArray a:
                var element = btf.SkipQualifiers(a.ElementType);
                if (element is BtfInt { Encoding: BtfIntEncoding.Char } or BtfInt { Size: 1, Name: "char" })
                {
                    int end = data[..(int)a.Count].IndexOf((byte)0);
                    text.Append('"').Append(Encoding.ASCII.GetString(data[..(end < 0 ? (int)a.Count : end)])).Append('"');
                    break;
                }
                ulong elementSize = SafeSize(btf, a.ElementType);
                text.Append('[');
                for (uint k = 0; k < a.Count; k++)
                {
                    if (k > 0)
                        text.Append(", ");
                    Write(text, btf, a.ElementType, data.Slice((int)(k * elementSize), (int)elementSize), depth + 1);
                }
                text.Append(']');
                break;
            case BtfComposite c:
                text.Append('{');
                bool first = true;
                foreach (var m in c.Members)
                {
                    if (!first)
                        text.Append(", ");
                    first = false;
                    if (m.Name.Length > 0)
                        text.Append(m.Name).Append(" = ");
                    if (m.BitfieldSize != 0)
                    {
                        // A bitfield: read the bits (little-endian) from the bit offset.
                        ulong bits = 0;
                        for (int b = 0; b < m.BitfieldSize && b < 64; b++)
                        {
                            uint bit = m.BitOffset + (uint)b;
                            if (((data[(int)(bit / 8)] >> (int)(bit % 8)) & 1) != 0)
                                bits |= 1UL << b;
                        }
                        text.Append(bits.ToString(CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        int offset = (int)(m.BitOffset / 8);
                        ulong memberSize = SafeSize(btf, m.Type);
                        Write(text, btf, m.Type, data.Slice(offset, (int)Math.Min(memberSize, (ulong)(data.Length - offset))), depth + 1);
                    }
                }
                text.Append('}');
                break;
            case BtfDataSec d:
                // Global data: every variable of the section by name.
                text.Append('{');
                for (int k = 0; k < d.Variables.Count; k++)
                {
                    var v = d.Variables[k];
                    if (k > 0)
                        text.Append(", ");
                    var variable = btf[v.Type];
                    text.Append(variable.Name).Append(" = ");
                    uint varType = variable is BtfVar bv ? bv.Type : v.Type;
                    if (v.Offset + v.Size <= (uint)data.Length)
                        Write(text, btf, varType, data.Slice((int)v.Offset, (int)v.Size), depth + 1);
                }
                text.Append('}');
                break;
            case BtfReference { Kind: BtfKind.Pointer }:
                text.Append("0x").Append(BinaryPrimitives.ReadUInt64LittleEndian(data).ToString("x", CultureInfo.InvariantCulture));
                break;
            default:
                text.Append(Convert.ToHexStringLower(data[..(int)Math.Min(size, (ulong)data.Length)]));
                break;
        }
    }

    private static void WriteInt(StringBuilder text, BtfInt i, ReadOnlySpan<byte> data)
    {
        if ((i.Encoding & BtfIntEncoding.Bool) != 0)
        {
            text.Append(data[0] != 0 ? "true" : "false");
            return;
        }
        if (i.Size > 8)
        {
            text.Append("0x").Append(Convert.ToHexStringLower(data[..(int)i.Size].ToArray().Reverse().ToArray()));
            return;
        }
        bool signed = (i.Encoding & BtfIntEncoding.Signed) != 0;
        text.Append(signed
            ? ReadSigned(data, (int)i.Size, true).ToString(CultureInfo.InvariantCulture)
            : ((ulong)ReadSigned(data, (int)i.Size, false)).ToString(CultureInfo.InvariantCulture));
    }

    private static long ReadSigned(ReadOnlySpan<byte> data, int size, bool signed) => size switch
    {
        1 => signed ? (sbyte)data[0] : data[0],
        2 => signed ? BinaryPrimitives.ReadInt16LittleEndian(data) : BinaryPrimitives.ReadUInt16LittleEndian(data),
        4 => signed ? BinaryPrimitives.ReadInt32LittleEndian(data) : BinaryPrimitives.ReadUInt32LittleEndian(data),
        _ => BinaryPrimitives.ReadInt64LittleEndian(data),
    };

    private static ulong SafeSize(BtfSpec btf, uint id)
    {
        try { return btf.SizeOf(id); }
        catch (BpfException) { return 0; }
    }
}
