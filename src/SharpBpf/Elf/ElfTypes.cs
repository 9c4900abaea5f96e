namespace SharpBpf.Elf;

/// <summary>sh_type values the BPF object reader cares about (others are kept as their number).</summary>
public enum ElfSectionType : uint
{
    Null = 0,
    ProgBits = 1,
    SymbolTable = 2,
    StringTable = 3,
    Rela = 4,
    Hash = 5,
    Dynamic = 6,
    Note = 7,
    NoBits = 8,
    Rel = 9,
    DynamicSymbols = 11,
    LlvmAddrsig = 0x6fff4c03,
}

/// <summary>sh_flags bits.</summary>
[Flags]
public enum ElfSectionFlags : ulong
{
    None = 0,
    Write = 0x1,
    Alloc = 0x2,
    Executable = 0x4,
}

/// <summary>The low 4 bits of st_info.</summary>
public enum ElfSymbolType : byte
{
    NoType = 0,
    Object = 1,
    Function = 2,
    Section = 3,
    File = 4,
}

/// <summary>The high 4 bits of st_info.</summary>
public enum ElfSymbolBinding : byte
{
    Local = 0,
    Global = 1,
    Weak = 2,
}

/// <summary>BPF relocation types (r_info low 32 bits), as LLVM emits them.</summary>
public enum ElfRelocationType : uint
{
    None = 0,
    /// <summary>R_BPF_64_64: an lddw's 64-bit immediate (map or global variable address).</summary>
    Bpf64 = 1,
    /// <summary>R_BPF_64_ABS64: a 64-bit data word.</summary>
    BpfAbs64 = 2,
    /// <summary>R_BPF_64_ABS32: a 32-bit data word (DWARF, BTF.ext section offsets).</summary>
    BpfAbs32 = 3,
    /// <summary>R_BPF_64_NODYLD32: a 32-bit data word not resolved by dynamic loaders (.BTF, .BTF.ext).</summary>
    BpfNoDyld32 = 4,
    /// <summary>R_BPF_64_32: a call instruction's 32-bit immediate (bpf-to-bpf call or kfunc).</summary>
    Bpf32 = 10,
}

/// <summary>One section header, with its name resolved.</summary>
public sealed record ElfSection(
    int Index,
    string Name,
    ElfSectionType Type,
    ElfSectionFlags Flags,
    ulong FileOffset,
    ulong Size,
    uint Link,
    uint Info,
    ulong Alignment,
    ulong EntrySize)
{
    public bool IsExecutable => Type == ElfSectionType.ProgBits && (Flags & ElfSectionFlags.Executable) != 0;
}

/// <summary>One symbol table entry, with its name resolved.</summary>
public readonly record struct ElfSymbol(
    int Index,
    string Name,
    ulong Value,
    ulong Size,
    ElfSymbolType Type,
    ElfSymbolBinding Binding,
    byte Visibility,
    ushort SectionIndex)
{
    /// <summary>SHN_UNDEF: the symbol is defined elsewhere (an extern).</summary>
    public bool IsUndefined => SectionIndex == 0;

    /// <summary>True when the section index is a reserved value (SHN_ABS, SHN_COMMON, ...) rather than a section.</summary>
    public bool IsSpecialSection => SectionIndex >= 0xff00;
}

/// <summary>One relocation (REL has no explicit addend: it is in the patched bytes; RELA gives it here).</summary>
public readonly record struct ElfRelocation(ulong Offset, int SymbolIndex, ElfRelocationType Type, long Addend);
