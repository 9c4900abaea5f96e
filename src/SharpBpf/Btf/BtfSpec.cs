using System.Buffers.Binary;
using SharpBpf.Elf;
using SharpBpf.Objects;

namespace SharpBpf.Btf;

/// <summary>
/// The parsed .BTF section of an object: every type (index = type id, 0 = void), the string table, and the raw
/// bytes a loader passes to the kernel (with data-section sizes fixed up, see <see cref="BtfDataSec"/>).
/// <code>
///   struct btf_header { u16 magic = 0xeb9f; u8 version = 1; u8 flags; u32 hdr_len;
///                       u32 type_off; u32 type_len; u32 str_off; u32 str_len; }   offsets after the header
/// </code>
/// </summary>
public sealed class BtfSpec
{
    public const ushort Magic = 0xeb9f;
    private const int MinHeaderSize = 24;

    /// <summary>libbpf's bound on chains of modifiers/typedefs/arrays; deeper chains are treated as loops.</summary>
    public const int MaxResolveDepth = 32;

    private readonly BtfType[] types;
    private readonly byte[] raw;
    private readonly int typeStart;
    private readonly int stringStart;
    private readonly int stringLength;
    private readonly Dictionary<uint, string> strings = [];
    private Dictionary<string, BtfType>? firstByName;
    private Dictionary<(string, BtfKind), BtfType>? byNameAndKind;

    private BtfSpec(BtfType[] types, byte[] raw, int typeStart, int stringStart, int stringLength)
    {
        this.types = types;
        this.raw = raw;
        this.typeStart = typeStart;
        this.stringStart = stringStart;
        this.stringLength = stringLength;
    }

    /// <summary>All types; <c>Types[id]</c> is the type with that id, <c>Types[0]</c> is void.</summary>
    public IReadOnlyList<BtfType> Types => types;

    /// <summary>The .BTF bytes to give the kernel (BPF_BTF_LOAD), with DATASEC fix-ups applied.</summary>
    public ReadOnlyMemory<byte> RawBytes => raw;

    /// <summary>Size of the string table in bytes.</summary>
    public int StringTableLength => stringLength;

    public BtfType this[uint id] => id < (uint)types.Length
        ? types[id]
        : throw new ObjectFileException($"type id {id} is out of range ({types.Length} types)", ".BTF");

    /// <summary>The first type with this name (and kind, when given), or null.</summary>
    public BtfType? FindByName(string name, BtfKind? kind = null)
    {
        if (firstByName is null)
        {
            var index = new Dictionary<string, BtfType>(types.Length, StringComparer.Ordinal);
            foreach (var t in types)
                index.TryAdd(t.Name, t);
            firstByName = index;
        }
        if (!firstByName.TryGetValue(name, out var first))
            return null;
        if (kind is not { } k || first.Kind == k)
            return first;
        // Several types share the name (a struct and its typedef, say): index by name and kind, once.
        if (byNameAndKind is null)
        {
            var index = new Dictionary<(string, BtfKind), BtfType>();
            foreach (var t in types)
                index.TryAdd((t.Name, t.Kind), t);
            byNameAndKind = index;
        }
        return byNameAndKind.GetValueOrDefault((name, k));
    }

    private Dictionary<string, List<uint>>? byEssentialName;

    /// <summary>
    /// Ids of the named types whose name, without a <c>___flavour</c> suffix, is <paramref name="essentialName"/>
    /// (CO-RE candidates). The index is built on first use.
    /// </summary>
    internal IReadOnlyList<uint> WithEssentialName(string essentialName)
    {
        var index = byEssentialName;
        if (index is null)
        {
            index = new Dictionary<string, List<uint>>(StringComparer.Ordinal);
            for (uint id = 1; id < (uint)types.Length; id++)
            {
                string name = types[id].Name;
                if (name.Length == 0)
                    continue;
                int length = BtfCoreRelocator.EssentialNameLength(name);
                string key = length == name.Length ? name : name[..length];
                if (!index.TryGetValue(key, out var list))
                    index[key] = list = new List<uint>(1);
                list.Add(id);
            }
            byEssentialName = index;
        }
        return index.TryGetValue(essentialName, out var found) ? found : [];
    }

    /// <summary>
    /// The first type with exactly this name and kind, found through the essential-name index (so a large BTF, the
    /// kernel's, needs one index for CO-RE candidates and for lookups by name).
    /// </summary>
    internal BtfType? FindExact(string name, BtfKind kind)
    {
        foreach (var id in WithEssentialName(BtfCoreRelocator.EssentialName(name)))
        {
            var t = types[id];
            if (t.Kind == kind && t.Name == name)
                return t;
        }
        return null;
    }

    /// <summary>The string at an offset of the string table.</summary>
    public string GetString(uint offset)
    {
        // Line info names the same file and source lines many times over: decode each string once.
        lock (strings)
        {
            if (strings.TryGetValue(offset, out var cached))
                return cached;
        }
        var text = ElfFile.ReadString(raw.AsSpan(stringStart, stringLength), offset, ".BTF string");
        lock (strings)
            strings[offset] = text;
        return text;
    }

    /// <summary>Skips typedefs, modifiers (const, volatile, restrict), type tags and vars, with loop detection.</summary>
    public BtfType SkipQualifiers(uint id)
    {
        for (int depth = 0; depth < MaxResolveDepth; depth++)
        {
            var t = this[id];
            switch (t)
            {
                case BtfReference { Kind: not BtfKind.Pointer } r:
                    id = r.Type;
                    break;
                case BtfVar v:
                    id = v.Type;
                    break;
                default:
                    return t;
            }
        }
        throw new ObjectFileException($"type {id}: more than {MaxResolveDepth} typedefs/modifiers (a loop?)", ".BTF");
    }

    /// <summary>The size in bytes of a type, as the kernel computes it. Loops and absurd sizes are errors.</summary>
    public ulong SizeOf(uint id) => SizeOf(id, 0);

    private ulong SizeOf(uint id, int depth)
    {
        for (; depth < MaxResolveDepth; depth++)
        {
            var t = this[id];
            switch (t)
            {
                case BtfInt i: return i.Size;
                case BtfFloat f: return f.Size;
                case BtfComposite c: return c.Size;
                case BtfEnum e: return e.Size;
                case BtfDataSec d: return d.Size;
                case BtfReference { Kind: BtfKind.Pointer }: return 8;
                case BtfReference r: id = r.Type; break;
                case BtfVar v: id = v.Type; break;
                case BtfArray a:
                    {
                        ulong element = SizeOf(a.ElementType, depth + 1);
                        ulong total = element * a.Count;
                        if (a.Count != 0 && total / a.Count != element || total > uint.MaxValue)
                            throw new ObjectFileException($"type {t.Id}: array size overflows 32 bits", ".BTF");
                        return total;
                    }
                default:
                    throw new ObjectFileException($"type {t}: has no size", ".BTF");
            }
        }
        throw new ObjectFileException($"type {id}: more than {MaxResolveDepth} nested types (a loop?)", ".BTF");
    }

    /// <summary>Rewrites a VAR's linkage in <see cref="RawBytes"/> (the parsed type keeps what the object said).</summary>
    internal void SetVarLinkage(BtfVar variable, BtfLinkage linkage) =>
        BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan(typeStart + variable.RecordOffset + 12), (uint)linkage);

    /// <summary>Number of types of each kind (void excluded).</summary>
    public IReadOnlyDictionary<BtfKind, int> CountByKind()
    {
        var counts = new SortedDictionary<BtfKind, int>();
        for (int i = 1; i < types.Length; i++)
            counts[types[i].Kind] = counts.GetValueOrDefault(types[i].Kind) + 1;
        return counts;
    }

    /// <summary>
    /// Gives a data section its real size and variable offsets (clang writes 0 for both in some versions), in the
    /// parsed type and in <see cref="RawBytes"/>. Variables are kept sorted by offset, as the kernel requires.
    /// </summary>
    internal void FixDataSection(BtfDataSec section, uint size, IReadOnlyList<BtfVarSecInfo> variables)
    {
        var span = raw.AsSpan(typeStart + section.RecordOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], size);
        var sorted = variables.OrderBy(v => v.Offset).ToArray();
        for (int i = 0; i < sorted.Length; i++)
        {
            var entry = span[(12 + i * 12)..];
            BinaryPrimitives.WriteUInt32LittleEndian(entry, sorted[i].Type);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], sorted[i].Offset);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], sorted[i].Size);
        }
        section.Size = size;
        section.Variables = sorted;
    }

    /// <summary>Parses .BTF bytes. Every offset, count and string is checked; references between types are checked when followed.</summary>
    public static BtfSpec Parse(ReadOnlySpan<byte> bytes)
    {
        const string Section = ".BTF";
        if (bytes.Length < MinHeaderSize)
            throw new ObjectFileException($"{bytes.Length} bytes is shorter than the BTF header", Section, offset: 0);
        ushort magic = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
        if (magic != Magic)
            throw new ObjectFileException(magic == 0x9feb ? "big-endian BTF is not supported" : $"bad magic 0x{magic:x4}", Section, offset: 0);
        if (bytes[2] != 1)
            throw new ObjectFileException($"BTF version {bytes[2]} is not supported", Section, offset: 2);
        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]);
        uint typeOffset = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
        uint typeLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes[12..]);
        uint stringOffset = BinaryPrimitives.ReadUInt32LittleEndian(bytes[16..]);
        uint stringLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes[20..]);
        if (headerLength < MinHeaderSize || headerLength > (uint)bytes.Length)
            throw new ObjectFileException($"header length {headerLength} is invalid", Section, offset: 4);
        ulong available = (ulong)bytes.Length - headerLength;
        if ((ulong)typeOffset + typeLength > available)
            throw new ObjectFileException($"type section (offset {typeOffset}, length {typeLength}) runs past the end", Section, offset: 8);
        if ((ulong)stringOffset + stringLength > available)
            throw new ObjectFileException($"string section (offset {stringOffset}, length {stringLength}) runs past the end", Section, offset: 16);
        if (typeOffset % 4 != 0)
            throw new ObjectFileException($"type section offset {typeOffset} is not 4-byte aligned", Section, offset: 8);

        var raw = bytes.ToArray();
        int typeStart = (int)(headerLength + typeOffset);
        int stringStart = (int)(headerLength + stringOffset);
        var strings = bytes.Slice(stringStart, (int)stringLength);
        if (stringLength > 0 && (strings[0] != 0 || strings[^1] != 0))
            throw new ObjectFileException("string table must start and end with NUL", Section, offset: stringStart);
        var typeBytes = bytes.Slice(typeStart, (int)typeLength);

        var list = new List<BtfType> { new BtfVoid() };
        int pos = 0;
        while (pos < typeBytes.Length)
        {
            int recordOffset = pos;
            long fileOffset = typeStart + pos;
            if (typeBytes.Length - pos < 12)
                throw new ObjectFileException("truncated type record", Section, offset: fileOffset);
            uint id = (uint)list.Count;
            uint nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(typeBytes[pos..]);
            uint info = BinaryPrimitives.ReadUInt32LittleEndian(typeBytes[(pos + 4)..]);
            uint sizeOrType = BinaryPrimitives.ReadUInt32LittleEndian(typeBytes[(pos + 8)..]);
            pos += 12;
            int vlen = (int)(info & 0xffff);
            var kind = (BtfKind)((info >> 24) & 0x1f);
            bool kindFlag = (info >> 31) != 0;
            string name = Str(strings, nameOffset, id, fileOffset);

            BtfType type;
            switch (kind)
            {
                case BtfKind.Int:
                    {
                        uint data = BinaryPrimitives.ReadUInt32LittleEndian(Take(typeBytes, 1, 4, ref pos, id, kind, fileOffset));
                        byte bits = (byte)(data & 0xff);
                        byte bitOffset = (byte)((data >> 16) & 0xff);
                        if (sizeOrType is 0 or > 16 || bits > 128 || bitOffset + bits > sizeOrType * 8)
                            throw new ObjectFileException($"type {id} (int '{name}'): bad size {sizeOrType} / bits {bits} / offset {bitOffset}", Section, offset: fileOffset);
                        type = new BtfInt(id, name, sizeOrType, (BtfIntEncoding)((data >> 24) & 0xf), bitOffset, bits);
                        break;
                    }
                case BtfKind.Pointer or BtfKind.Typedef or BtfKind.Volatile or BtfKind.Const or BtfKind.Restrict or BtfKind.TypeTag:
                    type = new BtfReference(id, kind, name, sizeOrType);
                    break;
                case BtfKind.Float:
                    type = new BtfFloat(id, name, sizeOrType);
                    break;
                case BtfKind.Forward:
                    type = new BtfForward(id, name, kindFlag);
                    break;
                case BtfKind.Func:
                    type = new BtfFunc(id, name, sizeOrType, (BtfLinkage)vlen);
                    break;
                case BtfKind.Array:
                    {
                        var a = Take(typeBytes, 1, 12, ref pos, id, kind, fileOffset);
                        type = new BtfArray(id, BinaryPrimitives.ReadUInt32LittleEndian(a), BinaryPrimitives.ReadUInt32LittleEndian(a[4..]), BinaryPrimitives.ReadUInt32LittleEndian(a[8..]));
                        break;
                    }
                case BtfKind.Struct or BtfKind.Union:
                    {
                        var m = Take(typeBytes, vlen, 12, ref pos, id, kind, fileOffset);
                        var members = new BtfMember[vlen];
                        for (int i = 0; i < vlen; i++)
                        {
                            var e = m[(i * 12)..];
                            uint offset = BinaryPrimitives.ReadUInt32LittleEndian(e[8..]);
                            members[i] = kindFlag
                                ? new BtfMember(Str(strings, BinaryPrimitives.ReadUInt32LittleEndian(e), id, fileOffset), BinaryPrimitives.ReadUInt32LittleEndian(e[4..]), offset & 0xffffff, (byte)(offset >> 24))
                                : new BtfMember(Str(strings, BinaryPrimitives.ReadUInt32LittleEndian(e), id, fileOffset), BinaryPrimitives.ReadUInt32LittleEndian(e[4..]), offset, 0);
                        }
                        type = new BtfComposite(id, kind, name, sizeOrType, members);
                        break;
                    }
                case BtfKind.Enum:
                    {
                        var v = Take(typeBytes, vlen, 8, ref pos, id, kind, fileOffset);
                        var values = new BtfEnumValue[vlen];
                        for (int i = 0; i < vlen; i++)
                        {
                            int value = BinaryPrimitives.ReadInt32LittleEndian(v[(i * 8 + 4)..]);
                            values[i] = new BtfEnumValue(Str(strings, BinaryPrimitives.ReadUInt32LittleEndian(v[(i * 8)..]), id, fileOffset), kindFlag ? value : (uint)value);
                        }
                        type = new BtfEnum(id, kind, name, sizeOrType, kindFlag, values);
                        break;
                    }
                case BtfKind.Enum64:
                    {
                        var v = Take(typeBytes, vlen, 12, ref pos, id, kind, fileOffset);
                        var values = new BtfEnumValue[vlen];
                        for (int i = 0; i < vlen; i++)
                        {
                            var e = v[(i * 12)..];
                            ulong value = BinaryPrimitives.ReadUInt32LittleEndian(e[4..]) | ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(e[8..]) << 32);
                            values[i] = new BtfEnumValue(Str(strings, BinaryPrimitives.ReadUInt32LittleEndian(e), id, fileOffset), unchecked((long)value));
                        }
                        type = new BtfEnum(id, kind, name, sizeOrType, kindFlag, values);
                        break;
                    }
                case BtfKind.FuncProto:
                    {
                        var p = Take(typeBytes, vlen, 8, ref pos, id, kind, fileOffset);
                        var parameters = new BtfParameter[vlen];
                        for (int i = 0; i < vlen; i++)
                            parameters[i] = new BtfParameter(Str(strings, BinaryPrimitives.ReadUInt32LittleEndian(p[(i * 8)..]), id, fileOffset), BinaryPrimitives.ReadUInt32LittleEndian(p[(i * 8 + 4)..]));
                        type = new BtfFuncProto(id, sizeOrType, parameters);
                        break;
                    }
                case BtfKind.Var:
                    type = new BtfVar(id, name, sizeOrType, (BtfLinkage)BinaryPrimitives.ReadUInt32LittleEndian(Take(typeBytes, 1, 4, ref pos, id, kind, fileOffset)));
                    break;
                case BtfKind.DataSec:
                    {
                        var s = Take(typeBytes, vlen, 12, ref pos, id, kind, fileOffset);
                        var vars = new BtfVarSecInfo[vlen];
                        for (int i = 0; i < vlen; i++)
                        {
                            var e = s[(i * 12)..];
                            vars[i] = new BtfVarSecInfo(BinaryPrimitives.ReadUInt32LittleEndian(e), BinaryPrimitives.ReadUInt32LittleEndian(e[4..]), BinaryPrimitives.ReadUInt32LittleEndian(e[8..]));
                        }
                        type = new BtfDataSec(id, name, sizeOrType, vars);
                        break;
                    }
                case BtfKind.DeclTag:
                    type = new BtfDeclTag(id, name, sizeOrType, BinaryPrimitives.ReadInt32LittleEndian(Take(typeBytes, 1, 4, ref pos, id, kind, fileOffset)));
                    break;
                default:
                    throw new ObjectFileException($"type {id}: unknown kind {(int)kind}", Section, offset: fileOffset);
            }
            list.Add(type);
            type.RecordOffset = recordOffset;
        }

        return new BtfSpec([.. list], raw, typeStart, stringStart, (int)stringLength);
    }

    private static ReadOnlySpan<byte> Take(ReadOnlySpan<byte> typeBytes, int count, int size, ref int p, uint id, BtfKind kind, long fileOffset)
    {
        long need = (long)count * size;
        if (need > typeBytes.Length - p)
            throw new ObjectFileException($"type {id} ({kind}): {count} entries of {size} bytes run past the end of the type section", ".BTF", offset: fileOffset);
        var s = typeBytes.Slice(p, (int)need);
        p += (int)need;
        return s;
    }

    private static string Str(ReadOnlySpan<byte> strings, uint offset, uint id, long fileOffset)
    {
        if (offset == 0 && strings.Length == 0)
            return "";
        try
        {
            // A constant description: kernel BTF has hundreds of thousands of names, formatting one each is costly.
            return ElfFile.ReadString(strings, offset, "name");
        }
        catch (ObjectFileException e)
        {
            throw new ObjectFileException($"type {id}: {e.Message}", ".BTF", offset: fileOffset);
        }
    }
}
