using System.Buffers.Binary;
using SharpBpf.Objects;

namespace SharpBpf.Btf;

/// <summary>A bpf_func_info record: the function whose code starts at an instruction (raw slot index).</summary>
public readonly record struct BtfFuncInfo(int InstructionOffset, uint TypeId);

/// <summary>
/// A bpf_line_info record: the C source line of the code from an instruction (raw slot index) on. The string
/// offsets index the .BTF string table (the kernel wants them); the strings themselves are resolved too.
/// <code>  line_col: | line:22 | column:10 |</code>
/// </summary>
public readonly record struct BtfLineInfo(int InstructionOffset, uint FileNameOffset, uint LineOffset, int Line, int Column)
{
    public string FileName { get; init; } = "";
    public string Text { get; init; } = "";
}

/// <summary>bpf_core_relo_kind.</summary>
public enum BtfCoreRelocationKind : uint
{
    FieldByteOffset = 0,
    FieldByteSize = 1,
    FieldExists = 2,
    FieldSigned = 3,
    FieldLShiftU64 = 4,
    FieldRShiftU64 = 5,
    TypeIdLocal = 6,
    TypeIdTarget = 7,
    TypeExists = 8,
    TypeSize = 9,
    EnumValueExists = 10,
    EnumValue = 11,
    TypeMatches = 12,
}

/// <summary>A bpf_core_relo record: an instruction (raw slot index) whose field access must be adjusted to the running kernel.</summary>
public readonly record struct BtfCoreRelocation(int InstructionOffset, uint TypeId, uint AccessStringOffset, string AccessString, BtfCoreRelocationKind Kind);

/// <summary>
/// The parsed .BTF.ext section: func info, line info and CO-RE relocation records, grouped by the name of the code
/// section they describe. Instruction offsets are converted from bytes (as stored) to raw slot indexes.
/// <code>
///   struct btf_ext_header { u16 magic; u8 version; u8 flags; u32 hdr_len;
///                           u32 func_info_off, func_info_len, line_info_off, line_info_len;
///                           u32 core_relo_off, core_relo_len; }    (core_relo only when hdr_len >= 32)
///   each info block: u32 rec_size; then { u32 sec_name_off; u32 num_info; rec_size * num_info bytes }...
/// </code>
/// </summary>
public sealed class BtfExt
{
    private const string Section = ".BTF.ext";

    public Dictionary<string, List<BtfFuncInfo>> FuncInfos { get; } = [];
    public Dictionary<string, List<BtfLineInfo>> LineInfos { get; } = [];
    public Dictionary<string, List<BtfCoreRelocation>> CoreRelocations { get; } = [];

    public int FuncInfoCount => FuncInfos.Values.Sum(l => l.Count);
    public int LineInfoCount => LineInfos.Values.Sum(l => l.Count);
    public int CoreRelocationCount => CoreRelocations.Values.Sum(l => l.Count);

    public static BtfExt Parse(ReadOnlySpan<byte> bytes, BtfSpec btf)
    {
        if (bytes.Length < 24)
            throw new ObjectFileException($"{bytes.Length} bytes is shorter than the BTF.ext header", Section, offset: 0);
        if (BinaryPrimitives.ReadUInt16LittleEndian(bytes) != BtfSpec.Magic)
            throw new ObjectFileException("bad magic", Section, offset: 0);
        if (bytes[2] != 1)
            throw new ObjectFileException($"version {bytes[2]} is not supported", Section, offset: 2);
        uint headerLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]);
        if (headerLength < 24 || headerLength > (uint)bytes.Length)
            throw new ObjectFileException($"header length {headerLength} is invalid", Section, offset: 4);
        var body = bytes[(int)headerLength..];
        var ext = new BtfExt();
        // Line records name the same file and source lines over and over: each string is decoded once, here without
        // the lock of the spec's shared cache.
        var strings = new Dictionary<uint, string>();
        string Resolve(BtfSpec btf, uint offset, string context, long at)
        {
            if (!strings.TryGetValue(offset, out var text))
                strings[offset] = text = ResolveString(btf, offset, context, at);
            return text;
        }

        var funcBlock = Block(body, bytes, 8, (int)headerLength, "func info");
        ReadBlock(funcBlock, 8, (int)headerLength + Offset(bytes, 8), btf, "func info", (section, r, at) =>
        {
            Add(ext.FuncInfos, section, new BtfFuncInfo(InsnOffset(r, section, at), BinaryPrimitives.ReadUInt32LittleEndian(r[4..])));
        });

        var lineBlock = Block(body, bytes, 16, (int)headerLength, "line info");
        ReadBlock(lineBlock, 16, (int)headerLength + Offset(bytes, 16), btf, "line info", (section, r, at) =>
        {
            uint file = BinaryPrimitives.ReadUInt32LittleEndian(r[4..]);
            uint line = BinaryPrimitives.ReadUInt32LittleEndian(r[8..]);
            uint lineColumn = BinaryPrimitives.ReadUInt32LittleEndian(r[12..]);
            Add(ext.LineInfos, section, new BtfLineInfo(InsnOffset(r, section, at), file, line, (int)(lineColumn >> 10), (int)(lineColumn & 0x3ff))
            {
                FileName = Resolve(btf, file, section, at),
                Text = Resolve(btf, line, section, at),
            });
        });

        if (headerLength >= 32)
        {
            var coreBlock = Block(body, bytes, 24, (int)headerLength, "CO-RE relocations");
            ReadBlock(coreBlock, 16, (int)headerLength + Offset(bytes, 24), btf, "CO-RE relocations", (section, r, at) =>
            {
                uint access = BinaryPrimitives.ReadUInt32LittleEndian(r[8..]);
                Add(ext.CoreRelocations, section, new BtfCoreRelocation(InsnOffset(r, section, at), BinaryPrimitives.ReadUInt32LittleEndian(r[4..]),
                    access, Resolve(btf, access, section, at), (BtfCoreRelocationKind)BinaryPrimitives.ReadUInt32LittleEndian(r[12..])));
            });
        }
        return ext;
    }

    private delegate void RecordReader(string section, ReadOnlySpan<byte> record, long at);

    private static int Offset(ReadOnlySpan<byte> header, int field) => (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(header[field..]), int.MaxValue);

    private static ReadOnlySpan<byte> Block(ReadOnlySpan<byte> body, ReadOnlySpan<byte> header, int field, int headerLength, string what)
    {
        uint offset = BinaryPrimitives.ReadUInt32LittleEndian(header[field..]);
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(header[(field + 4)..]);
        if ((ulong)offset + length > (ulong)body.Length)
            throw new ObjectFileException($"{what} (offset {offset}, length {length}) runs past the end", Section, offset: field);
        return body.Slice((int)offset, (int)length);
    }

    private static void ReadBlock(ReadOnlySpan<byte> block, int minRecordSize, int blockStart, BtfSpec btf, string what, RecordReader read)
    {
        if (block.IsEmpty)
            return;
        if (block.Length < 4)
            throw new ObjectFileException($"{what}: block too short for its record size", Section, offset: blockStart);
        uint recordSize = BinaryPrimitives.ReadUInt32LittleEndian(block);
        if (recordSize < minRecordSize || recordSize % 4 != 0 || recordSize > 256)
            throw new ObjectFileException($"{what}: record size {recordSize} is invalid (at least {minRecordSize}, a multiple of 4)", Section, offset: blockStart);
        int pos = 4;
        while (pos < block.Length)
        {
            if (block.Length - pos < 8)
                throw new ObjectFileException($"{what}: truncated section header", Section, offset: blockStart + pos);
            uint nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(block[pos..]);
            uint count = BinaryPrimitives.ReadUInt32LittleEndian(block[(pos + 4)..]);
            string section = ResolveString(btf, nameOffset, what, blockStart + pos);
            pos += 8;
            if (count == 0)
                throw new ObjectFileException($"{what}: section '{section}' has no records", Section, offset: blockStart + pos - 8);
            if ((ulong)count * recordSize > (ulong)(block.Length - pos))
                throw new ObjectFileException($"{what}: {count} records for section '{section}' run past the end", Section, offset: blockStart + pos - 8);
            for (uint i = 0; i < count; i++)
            {
                read(section, block.Slice(pos, (int)recordSize), blockStart + pos);
                pos += (int)recordSize;
            }
        }
    }

    private static int InsnOffset(ReadOnlySpan<byte> record, string section, long at)
    {
        uint bytes = BinaryPrimitives.ReadUInt32LittleEndian(record);
        if (bytes % 8 != 0)
            throw new ObjectFileException($"record for section '{section}' has instruction offset {bytes}, not a multiple of 8", Section, offset: at);
        return (int)(bytes / 8);
    }

    private static string ResolveString(BtfSpec btf, uint offset, string context, long at)
    {
        try
        {
            return btf.GetString(offset);
        }
        catch (ObjectFileException e)
        {
            throw new ObjectFileException($"{context}: {e.Message}", Section, offset: at);
        }
    }

    private static void Add<T>(Dictionary<string, List<T>> map, string section, T item)
    {
        if (!map.TryGetValue(section, out var list))
            map[section] = list = [];
        list.Add(item);
    }
}
