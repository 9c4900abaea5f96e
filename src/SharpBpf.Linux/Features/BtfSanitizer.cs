using System.Buffers.Binary;

namespace SharpBpf.Linux.Features;

/// <summary>
/// Rewrites BTF kinds an older kernel does not know into kinds it does, keeping every type id and record size so
/// that map and program references stay valid (the same substitutions libbpf makes):
/// <code>
///   VAR -> INT (1 byte)          DATASEC -> STRUCT ('.' in its name becomes '_')
///   FUNC -> TYPEDEF              FUNC_PROTO -> ENUM (params become values)
///   FLOAT -> empty STRUCT        DECL_TAG -> INT (1 byte)     TYPE_TAG -> CONST
/// </code>
/// ENUM64 has no same-size stand-in and is left alone (the loader then goes on without BTF if refused).
/// </summary>
internal static class BtfSanitizer
{
    private const int Int = 1, Ptr = 2, Array = 3, Struct = 4, Union = 5, Enum = 6, Fwd = 7, Typedef = 8, Volatile = 9,
        Const = 10, Restrict = 11, Func = 12, FuncProto = 13, Var = 14, Datasec = 15, Float = 16, DeclTag = 17,
        TypeTag = 18, Enum64 = 19;

    /// <summary>A copy of <paramref name="btf"/> with unknown kinds replaced; <paramref name="has"/> answers per kind group.</summary>
    public static byte[] Sanitize(ReadOnlySpan<byte> btf, Func<string, bool> has)
    {
        var bytes = btf.ToArray();
        bool func = has("FUNC"), var = has("VAR"), @float = has("FLOAT"), declTag = has("DECL_TAG"), typeTag = has("TYPE_TAG");
        if (func && var && @float && declTag && typeTag)
            return bytes;

        var s = bytes.AsSpan();
        int hdrLen = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[4..]);
        int typeStart = hdrLen + (int)BinaryPrimitives.ReadUInt32LittleEndian(s[8..]);
        int typeEnd = typeStart + (int)BinaryPrimitives.ReadUInt32LittleEndian(s[12..]);
        int strStart = hdrLen + (int)BinaryPrimitives.ReadUInt32LittleEndian(s[16..]);
        for (int pos = typeStart; pos + 12 <= typeEnd;)
        {
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(s[(pos + 4)..]);
            int kind = (int)((info >> 24) & 0x1f);
            int vlen = (int)(info & 0xffff);
            int extra = ExtraBytes(kind, vlen);
            var t = s.Slice(pos, 12 + extra);
            switch (kind)
            {
                case Var when !var:
                case DeclTag when !declTag:
                    SetInfo(t, Int, 0);
                    BinaryPrimitives.WriteUInt32LittleEndian(t[8..], 1);
                    BinaryPrimitives.WriteUInt32LittleEndian(t[12..], 8); // encoding 0, offset 0, 8 bits
                    if (kind == DeclTag)
                        BinaryPrimitives.WriteUInt32LittleEndian(t, 0);
                    break;
                case Datasec when !var:
                    SetInfo(t, Struct, vlen);
                    uint nameOff = BinaryPrimitives.ReadUInt32LittleEndian(t);
                    for (int i = strStart + (int)nameOff; i < bytes.Length && bytes[i] != 0; i++)
                        if (bytes[i] == (byte)'.')
                            bytes[i] = (byte)'_';
                    for (int i = 0; i < vlen; i++)
                    {
                        var entry = t.Slice(12 + i * 12, 12); // secinfo {type, offset, size} -> member {name_off, type, offset in bits}
                        uint type = BinaryPrimitives.ReadUInt32LittleEndian(entry);
                        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(entry[4..]);
                        BinaryPrimitives.WriteUInt32LittleEndian(entry, 0);
                        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], type);
                        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], offset * 8);
                    }
                    break;
                case Func when !func:
                    SetInfo(t, Typedef, 0);
                    break;
                case FuncProto when !func:
                    SetInfo(t, Enum, vlen);
                    BinaryPrimitives.WriteUInt32LittleEndian(t[8..], 4);
                    break; // param {name_off, type} reads as enum value {name_off, val}
                case Float when !@float:
                    SetInfo(t, Struct, 0);
                    BinaryPrimitives.WriteUInt32LittleEndian(t, 0);
                    break;
                case TypeTag when !typeTag:
                    SetInfo(t, Const, 0);
                    BinaryPrimitives.WriteUInt32LittleEndian(t, 0);
                    break;
            }
            pos += 12 + extra;
        }
        return bytes;
    }

    /// <summary>
    /// Makes extern declarations acceptable to any kernel, in place (the kernel refuses extern linkage): an extern
    /// VAR becomes a 1-byte INT, an extern FUNC a TYPEDEF of its prototype, and the <c>.ksyms</c> DATASEC (size 0,
    /// entries that are not allocated variables) a STRUCT of INT members, as libbpf fakes them. Each record keeps its
    /// size, so type ids do not move. The <c>.kconfig</c> DATASEC is real data, fixed by the object reader.
    /// </summary>
    public static void SanitizeExterns(Span<byte> bytes)
    {
        int hdrLen = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]);
        int typeStart = hdrLen + (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
        int typeEnd = typeStart + (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[12..]);
        int strStart = hdrLen + (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[16..]);
        int strLen = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[20..]);
        var ksyms = new List<int>();
        uint intId = 0, intSize = 0;
        uint id = 1;
        for (int pos = typeStart; pos + 12 <= typeEnd; id++)
        {
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(pos + 4)..]);
            int kind = (int)((info >> 24) & 0x1f);
            int vlen = (int)(info & 0xffff);
            int extra = ExtraBytes(kind, vlen);
            var t = bytes.Slice(pos, 12 + extra);
            switch (kind)
            {
                case Var when BinaryPrimitives.ReadUInt32LittleEndian(t[12..]) == 2: // BTF_VAR_GLOBAL_EXTERN
                    SetInfo(t, Int, 0);
                    BinaryPrimitives.WriteUInt32LittleEndian(t[8..], 1);
                    BinaryPrimitives.WriteUInt32LittleEndian(t[12..], 8);
                    break;
                case Func when vlen == 2: // BTF_FUNC_EXTERN
                    SetInfo(t, Typedef, 0);
                    break;
                case Int when intId == 0:
                    intId = id;
                    intSize = BinaryPrimitives.ReadUInt32LittleEndian(t[8..]);
                    break;
                case Datasec when NameIs(bytes, strStart, strLen, BinaryPrimitives.ReadUInt32LittleEndian(t), ".ksyms"u8):
                    ksyms.Add(pos);
                    break;
            }
            pos += 12 + extra;
        }
        foreach (int pos in ksyms)
        {
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(pos + 4)..]);
            int vlen = (int)(info & 0xffff);
            var t = bytes.Slice(pos, 12 + 12 * vlen);
            if (intId == 0 && vlen > 0)
                continue; // no integer type to stand in for the members: the kernel may refuse the BTF (loaded without it then)
            // An anonymous struct whose members are all an integer at offset 0.
            BinaryPrimitives.WriteUInt32LittleEndian(t, 0);
            SetInfo(t, Struct, vlen);
            BinaryPrimitives.WriteUInt32LittleEndian(t[8..], Math.Max(1, intSize));
            for (int i = 0; i < vlen; i++)
            {
                var entry = t.Slice(12 + i * 12, 12);
                BinaryPrimitives.WriteUInt32LittleEndian(entry, 0);
                BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], intId);
                BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], 0);
            }
        }
    }

    private static bool NameIs(ReadOnlySpan<byte> bytes, int strStart, int strLen, uint offset, ReadOnlySpan<byte> name) =>
        offset + (uint)name.Length < (uint)strLen
        && bytes.Slice(strStart + (int)offset, name.Length).SequenceEqual(name)
        && bytes[strStart + (int)offset + name.Length] == 0;

    private static void SetInfo(Span<byte> type, int kind, int vlen) =>
        BinaryPrimitives.WriteUInt32LittleEndian(type[4..], ((uint)kind << 24) | (uint)vlen);

    private static int ExtraBytes(int kind, int vlen) => kind switch
    {
        Int or Var or DeclTag => 4,
        Array => 12,
        Struct or Union or Datasec or Enum64 => 12 * vlen,
        Enum or FuncProto => 8 * vlen,
        Ptr or Fwd or Typedef or Volatile or Const or Restrict or Func or Float or TypeTag => 0,
        _ => throw new BpfException($"BTF: unknown kind {kind}; cannot sanitise it for this kernel"),
    };
}
