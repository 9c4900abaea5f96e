using System.Buffers.Binary;
using SharpBpf.Elf;
using SharpBpf.Objects;
using SharpBpf.Tests.Objects;

namespace SharpBpf.Tests.Elf;

/// <summary>Targeted damage to a good object: each gives an <see cref="ObjectFileException"/> that says where.</summary>
public class HostileElfTests
{
    private static byte[] Fixture() => Fixtures.Bytes("xdp_maps");

    private static ObjectFileException Refused(byte[] bytes) => Assert.Throws<ObjectFileException>(() => ObjectFile.Read(bytes));

    private static int SectionHeader(byte[] bytes, string name)
    {
        var elf = ElfFile.Parse(bytes);
        int index = elf.FindSection(name)!.Index;
        return (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(40)) + index * 64;
    }

    [Fact]
    public void WrongClassEndiannessAndMachineAreRefused()
    {
        var b = Fixture(); b[4] = 1;
        Assert.Contains("ELFCLASS64", Refused(b).Message);
        b = Fixture(); b[5] = 2;
        Assert.Contains("big-endian", Refused(b).Message);
        b = Fixture(); BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), 62);
        var ex = Refused(b);
        Assert.Contains("EM_BPF", ex.Message);
        Assert.Equal(18, ex.Offset);
        b = Fixture(); b[0] = 0;
        Assert.Contains("not an ELF file", Refused(b).Message);
    }

    [Fact]
    public void SectionTableOutsideTheFileIsRefused()
    {
        var b = Fixture();
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), (ulong)b.Length - 10);
        Assert.Contains("section header table", Refused(b).Message);
        b = Fixture();
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(40), ulong.MaxValue - 5);
        Assert.Contains("runs past the end", Refused(b).Message);
    }

    [Fact]
    public void HugeSectionCountIsRefusedWithoutAllocating()
    {
        var b = Fixture();
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(60), 0xfff0);
        Assert.Contains("section count", Refused(b).Message);
        b = Fixture();
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(60), 0); // extended numbering: the count is in section 0
        int header0 = (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(40));
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(header0 + 32), ulong.MaxValue / 2);
        Assert.Contains("section count", Refused(b).Message);
    }

    [Fact]
    public void SectionDataOutsideTheFileIsRefused()
    {
        var b = Fixture();
        int h = SectionHeader(b, ".BTF");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(h + 32), 0x7fff_ffff_ffff);
        Assert.Contains("runs past the end", Refused(b).Message);
    }

    [Fact]
    public void HugeBssIsRefusedWithoutAllocating()
    {
        var b = Fixture();
        int h = SectionHeader(b, ".bss");
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(h + 32), 1UL << 40);
        var ex = Refused(b);
        Assert.Equal(".bss", ex.Section);
    }

    [Fact]
    public void RelocationAgainstAMissingSymbolIsRefused()
    {
        var b = Fixture();
        int h = SectionHeader(b, ".relxdp");
        int table = (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(h + 24));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(table + 12), 0xffff); // r_info high half: symbol index
        var ex = Refused(b);
        Assert.Equal(".relxdp", ex.Section);
        Assert.Contains("symbol 65535", ex.Message);
    }

    [Fact]
    public void RelocationOnTheWrongInstructionIsRefused()
    {
        var b = Fixture();
        int h = SectionHeader(b, ".relxdp");
        int table = (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(h + 24));
        ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(table));
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(table), offset + 8); // second half of the lddw
        var ex = Refused(b);
        Assert.Equal("xdp", ex.Section);
        Assert.Equal("packets_seen", ex.Symbol);

        b = Fixture();
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(table), offset + 3);
        Assert.Contains("not on an instruction", Refused(b).Message);

        b = Fixture();
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(table), 0x100000);
        Assert.Contains("not on an instruction", Refused(b).Message);
    }

    [Fact]
    public void OverlappingFunctionsAreRefused()
    {
        // Make the program symbol claim more bytes than its section has.
        var b = Fixture();
        var elf = ElfFile.Parse(b);
        var symtab = elf.FindSection(".symtab")!;
        var symbol = elf.Symbols.Single(s => s.Name == "xdp_count");
        int at = (int)symtab.FileOffset + symbol.Index * 24;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(at + 8), 4); // st_value: not 8-byte aligned
        var ex = Refused(b);
        Assert.Equal("xdp_count", ex.Symbol);
        Assert.Contains("aligned", ex.Message);
    }

    [Fact]
    public void MissingFileIsAnObjectFileException()
    {
        var ex = Assert.Throws<ObjectFileException>(() => ObjectFile.Open(Path.Combine(Path.GetTempPath(), "no-such-sharpbpf-object.o")));
        Assert.Contains("no such file", ex.Message);
    }
}
