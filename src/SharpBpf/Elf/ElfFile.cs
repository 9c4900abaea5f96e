using System.Buffers.Binary;
using System.Text;
using SharpBpf.Objects;

namespace SharpBpf.Elf;

/// <summary>
/// A read-only view of a 64-bit little-endian ELF relocatable object for the BPF machine: section headers,
/// the symbol table and relocations. Every offset and count is checked against the file before it is used,
/// so hostile input gives an <see cref="ObjectFileException"/> rather than another exception or a huge allocation.
/// </summary>
public sealed class ElfFile
{
    /// <summary>EM_BPF.</summary>
    public const ushort MachineBpf = 247;

    private const int HeaderSize = 64;
    private const int SectionHeaderSize = 64;
    private const int SymbolSize = 24;
    private const ushort SectionIndexExtended = 0xffff;

    private readonly ReadOnlyMemory<byte> data;
    private readonly ElfSection[] sections;
    private readonly ElfSymbol[] symbols;
    private Dictionary<string, ElfSection>? sectionsByName;
    private Dictionary<uint, List<ElfSection>>? relocationsByTarget;

    private ElfFile(ReadOnlyMemory<byte> data, ElfSection[] sections, ElfSymbol[] symbols, ushort type)
    {
        this.data = data;
        this.sections = sections;
        this.symbols = symbols;
        FileType = type;
    }

    /// <summary>e_type (1 = ET_REL for objects clang writes).</summary>
    public ushort FileType { get; }

    /// <summary>Every section header, indexed as in the file (index 0 is the null section).</summary>
    public IReadOnlyList<ElfSection> Sections => sections;

    /// <summary>The symbol table (index 0 is the null symbol); empty when the file has none.</summary>
    public IReadOnlyList<ElfSymbol> Symbols => symbols;

    /// <summary>The whole file.</summary>
    public ReadOnlyMemory<byte> Data => data;

    public static ElfFile Parse(ReadOnlyMemory<byte> data)
    {
        var span = data.Span;
        if (span.Length < HeaderSize)
            throw new ObjectFileException($"file is {span.Length} bytes, shorter than an ELF64 header", offset: 0);
        if (span[0] != 0x7f || span[1] != (byte)'E' || span[2] != (byte)'L' || span[3] != (byte)'F')
            throw new ObjectFileException("not an ELF file (bad magic)", offset: 0);
        if (span[4] != 2)
            throw new ObjectFileException($"ELF class {span[4]} is not ELFCLASS64", offset: 4);
        if (span[5] != 1)
            throw new ObjectFileException(span[5] == 2
                ? "ELF file is big-endian; only little-endian BPF objects are supported"
                : $"ELF data encoding {span[5]} is not little-endian", offset: 5);
        if (span[6] != 1)
            throw new ObjectFileException($"ELF version {span[6]} is not EV_CURRENT", offset: 6);

        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(span[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(span[18..]);
        if (machine != MachineBpf)
            throw new ObjectFileException($"ELF machine {machine} is not EM_BPF ({MachineBpf})", offset: 18);

        ulong sectionHeaderOffset = BinaryPrimitives.ReadUInt64LittleEndian(span[40..]);
        ushort sectionHeaderEntrySize = BinaryPrimitives.ReadUInt16LittleEndian(span[58..]);
        ulong sectionCount = BinaryPrimitives.ReadUInt16LittleEndian(span[60..]);
        uint namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(span[62..]);

        if (sectionHeaderOffset == 0)
            return new ElfFile(data, [], [], type);
        if (sectionHeaderEntrySize != SectionHeaderSize)
            throw new ObjectFileException($"section header size {sectionHeaderEntrySize} is not {SectionHeaderSize}", offset: 58);
        CheckRange(span.Length, sectionHeaderOffset, SectionHeaderSize, "section header table");

        // Extended numbering: with more than 0xff00 sections the real count and names index live in section 0.
        var first = span.Slice((int)sectionHeaderOffset, SectionHeaderSize);
        if (sectionCount == 0)
            sectionCount = BinaryPrimitives.ReadUInt64LittleEndian(first[32..]);
        if (namesIndex == SectionIndexExtended)
            namesIndex = BinaryPrimitives.ReadUInt32LittleEndian(first[40..]);

        if (sectionCount > (ulong)span.Length / SectionHeaderSize)
            throw new ObjectFileException($"section count {sectionCount} cannot fit in a {span.Length}-byte file", offset: (long)sectionHeaderOffset);
        CheckRange(span.Length, sectionHeaderOffset, sectionCount * SectionHeaderSize, "section header table");

        var raw = new RawSection[sectionCount];
        for (int i = 0; i < raw.Length; i++)
        {
            var h = span.Slice((int)sectionHeaderOffset + i * SectionHeaderSize, SectionHeaderSize);
            raw[i] = new RawSection(
                BinaryPrimitives.ReadUInt32LittleEndian(h),
                (ElfSectionType)BinaryPrimitives.ReadUInt32LittleEndian(h[4..]),
                (ElfSectionFlags)BinaryPrimitives.ReadUInt64LittleEndian(h[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[24..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[32..]),
                BinaryPrimitives.ReadUInt32LittleEndian(h[40..]),
                BinaryPrimitives.ReadUInt32LittleEndian(h[44..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[48..]),
                BinaryPrimitives.ReadUInt64LittleEndian(h[56..]));
            if (i != 0 && raw[i].Type != ElfSectionType.NoBits && raw[i].Type != ElfSectionType.Null)
                CheckRange(span.Length, raw[i].Offset, raw[i].Size, $"section {i}");
        }

        ReadOnlySpan<byte> names = default;
        if (namesIndex != 0)
        {
            if (namesIndex >= raw.Length)
                throw new ObjectFileException($"section name table index {namesIndex} is out of range ({raw.Length} sections)", offset: 62);
            var n = raw[namesIndex];
            if (n.Type != ElfSectionType.StringTable)
                throw new ObjectFileException($"section name table (section {namesIndex}) is not a string table", offset: 62);
            names = span.Slice((int)n.Offset, (int)n.Size);
        }

        var sections = new ElfSection[raw.Length];
        for (int i = 0; i < raw.Length; i++)
        {
            var r = raw[i];
            string name = i == 0 || names.IsEmpty ? "" : ReadString(names, r.NameOffset, "name of section", i);
            sections[i] = new ElfSection(i, name, r.Type, r.Flags, r.Offset, r.Size, r.Link, r.Info, r.Alignment, r.EntrySize);
        }

        var symbols = ReadSymbols(span, sections);
        return new ElfFile(data, sections, symbols, type);
    }

    /// <summary>The bytes of a section (empty for SHT_NOBITS, such as .bss).</summary>
    public ReadOnlyMemory<byte> GetContents(ElfSection section) =>
        section.Type is ElfSectionType.NoBits or ElfSectionType.Null ? ReadOnlyMemory<byte>.Empty : data.Slice((int)section.FileOffset, (int)section.Size);

    /// <summary>The first section with this name, or null.</summary>
    public ElfSection? FindSection(string name)
    {
        if (sectionsByName is null)
        {
            var index = new Dictionary<string, ElfSection>(StringComparer.Ordinal);
            foreach (var s in sections)
            {
                if (s.Index != 0)
                    index.TryAdd(s.Name, s);
            }
            sectionsByName = index;
        }
        return sectionsByName.GetValueOrDefault(name);
    }

    /// <summary>The SHT_REL / SHT_RELA sections that apply to a section (sh_info = its index).</summary>
    public IReadOnlyList<ElfSection> RelocationSectionsFor(ElfSection target)
    {
        if (relocationsByTarget is null)
        {
            var index = new Dictionary<uint, List<ElfSection>>();
            foreach (var s in sections)
            {
                if (s.Type is ElfSectionType.Rel or ElfSectionType.Rela)
                {
                    if (!index.TryGetValue(s.Info, out var list))
                        index[s.Info] = list = [];
                    list.Add(s);
                }
            }
            relocationsByTarget = index;
        }
        return relocationsByTarget.TryGetValue((uint)target.Index, out var found) ? found : [];
    }

    /// <summary>The section a symbol is defined in, or null for undefined, absolute and common symbols.</summary>
    public ElfSection? SectionOf(ElfSymbol symbol) =>
        symbol.IsUndefined || symbol.IsSpecialSection || symbol.SectionIndex >= sections.Length ? null : sections[symbol.SectionIndex];

    /// <summary>Reads the entries of a SHT_REL or SHT_RELA section, checking the symbol indexes.</summary>
    public ElfRelocation[] ReadRelocations(ElfSection relocationSection)
    {
        bool rela = relocationSection.Type == ElfSectionType.Rela;
        if (!rela && relocationSection.Type != ElfSectionType.Rel)
            throw new ObjectFileException("not a relocation section", relocationSection.Name);
        int entrySize = rela ? 24 : 16;
        if (relocationSection.Size % (ulong)entrySize != 0)
            throw new ObjectFileException($"size {relocationSection.Size} is not a multiple of the entry size {entrySize}", relocationSection.Name);
        var bytes = GetContents(relocationSection).Span;
        var result = new ElfRelocation[bytes.Length / entrySize];
        for (int i = 0; i < result.Length; i++)
        {
            var e = bytes.Slice(i * entrySize, entrySize);
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(e);
            ulong info = BinaryPrimitives.ReadUInt64LittleEndian(e[8..]);
            long addend = rela ? BinaryPrimitives.ReadInt64LittleEndian(e[16..]) : 0;
            ulong symbol = info >> 32;
            if (symbol >= (ulong)symbols.Length)
                throw new ObjectFileException($"relocation {i} names symbol {symbol}, but the symbol table has {symbols.Length}", relocationSection.Name, offset: (long)(i * entrySize));
            result[i] = new ElfRelocation(offset, (int)symbol, (ElfRelocationType)(uint)info, addend);
        }
        return result;
    }

    private static ElfSymbol[] ReadSymbols(ReadOnlySpan<byte> span, ElfSection[] sections)
    {
        ElfSection? table = null;
        foreach (var s in sections)
        {
            if (s.Type == ElfSectionType.SymbolTable)
            {
                if (table is not null)
                    throw new ObjectFileException("more than one symbol table", s.Name);
                table = s;
            }
        }
        if (table is null)
            return [];
        if (table.EntrySize != SymbolSize || table.Size % SymbolSize != 0)
            throw new ObjectFileException($"symbol table entry size {table.EntrySize} / size {table.Size} do not fit {SymbolSize}-byte symbols", table.Name);
        if (table.Link == 0 || table.Link >= sections.Length || sections[table.Link].Type != ElfSectionType.StringTable)
            throw new ObjectFileException($"symbol table links to section {table.Link}, which is not a string table", table.Name);
        var strings = span.Slice((int)sections[table.Link].FileOffset, (int)sections[table.Link].Size);
        var bytes = span.Slice((int)table.FileOffset, (int)table.Size);
        var result = new ElfSymbol[bytes.Length / SymbolSize];
        for (int i = 0; i < result.Length; i++)
        {
            var e = bytes.Slice(i * SymbolSize, SymbolSize);
            uint nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(e);
            byte info = e[4];
            ushort sectionIndex = BinaryPrimitives.ReadUInt16LittleEndian(e[6..]);
            if (sectionIndex != 0 && sectionIndex < 0xff00 && sectionIndex >= sections.Length)
                throw new ObjectFileException($"symbol {i} is in section {sectionIndex}, which does not exist", table.Name, offset: i * SymbolSize);
            string name = nameOffset == 0 ? "" : ReadString(strings, nameOffset, "name of symbol", i);
            result[i] = new ElfSymbol(i, name, BinaryPrimitives.ReadUInt64LittleEndian(e[8..]), BinaryPrimitives.ReadUInt64LittleEndian(e[16..]),
                (ElfSymbolType)(info & 0xf), (ElfSymbolBinding)(info >> 4), (byte)(e[5] & 0x3), sectionIndex);
        }
        return result;
    }

    /// <summary>Reads a NUL-terminated string at an offset of a string table.</summary>
    /// <remarks><paramref name="what"/> says what the string is ("name of symbol") and <paramref name="index"/> (when
    /// not -1) which one, for the error message; they are separate so that reading a name builds no message.</remarks>
    internal static string ReadString(ReadOnlySpan<byte> table, uint offset, string what, long index = -1)
    {
        if (offset >= (uint)table.Length)
            throw new ObjectFileException($"{Describe(what, index)}: string offset {offset} is outside the {table.Length}-byte string table");
        var rest = table[(int)offset..];
        int end = rest.IndexOf((byte)0);
        if (end < 0)
            throw new ObjectFileException($"{Describe(what, index)}: string at offset {offset} is not NUL-terminated");
        return end == 0 ? "" : Encoding.UTF8.GetString(rest[..end]);
    }

    private static string Describe(string what, long index) => index < 0 ? what : $"{what} {index}";

    private static void CheckRange(int fileLength, ulong offset, ulong size, string what)
    {
        if (offset > (ulong)fileLength || size > (ulong)fileLength - offset)
            throw new ObjectFileException($"{what} (offset {offset}, size {size}) runs past the end of the {fileLength}-byte file", offset: (long)Math.Min(offset, long.MaxValue));
    }

    private readonly record struct RawSection(uint NameOffset, ElfSectionType Type, ElfSectionFlags Flags, ulong Offset, ulong Size, uint Link, uint Info, ulong Alignment, ulong EntrySize);
}
