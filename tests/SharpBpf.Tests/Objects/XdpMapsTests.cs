using System.Buffers.Binary;
using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Tests.Objects;

/// <summary>xdp_maps.c: one XDP program, two BTF-defined maps, global data in .data, .rodata and .bss.</summary>
public class XdpMapsTests
{
    private readonly CollectionSpec spec = Fixtures.Open("xdp_maps");

    [Fact]
    public void ReadsTheXdpProgram()
    {
        var program = Assert.Single(spec.Programs);
        Assert.Equal("xdp_count", program.Name);
        Assert.Equal("xdp", program.SectionName);
        Assert.Equal(ProgramType.Xdp, program.Type);
        Assert.Equal(37u, program.ExpectedAttachType); // BPF_XDP
        Assert.Equal(0u, program.Flags);
        Assert.Equal("GPL", spec.License);
        Assert.Equal("GPL", program.License);
        Assert.Equal(0u, spec.KernelVersion);
        Assert.Equal("xdp_maps", spec.ObjectName);
        Assert.Equal(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Exit, OperandSource.Immediate), program.Instructions[^1].OpCode);
    }

    [Fact]
    public void ReadsBtfDefinedMaps()
    {
        var flows = spec.FindMap("flows")!;
        Assert.Equal(MapType.Hash, flows.Type);
        Assert.Equal(4u, flows.KeySize);
        Assert.Equal(16u, flows.ValueSize);
        Assert.Equal(1024u, flows.MaxEntries);
        Assert.Equal(1u, flows.Flags); // BPF_F_NO_PREALLOC
        Assert.Equal(MapPinning.None, flows.Pinning);
        Assert.Equal("flows", flows.KernelName);
        Assert.Equal(".maps", flows.SectionName);
        Assert.Equal("__u32", spec.Btf![flows.BtfKeyTypeId].Name);
        Assert.Equal("counters", spec.Btf[flows.BtfValueTypeId].Name);

        var verdicts = spec.FindMap("verdicts")!;
        Assert.Equal(MapType.PercpuArray, verdicts.Type);
        Assert.Equal(4u, verdicts.KeySize);
        Assert.Equal(8u, verdicts.ValueSize);
        Assert.Equal(4u, verdicts.MaxEntries);
        Assert.Equal(0u, verdicts.BtfKeyTypeId); // key_size/value_size given as numbers: no BTF type
    }

    [Fact]
    public void ReadsGlobalDataAsSingleEntryArrays()
    {
        var data = spec.FindMap(".data")!;
        Assert.Equal(MapType.Array, data.Type);
        Assert.Equal((4u, 12u, 1u), (data.KeySize, data.ValueSize, data.MaxEntries));
        Assert.Equal(7ul, BinaryPrimitives.ReadUInt64LittleEndian(data.InitialValue));    // packets_seen = 7
        Assert.Equal(9u, BinaryPrimitives.ReadUInt32LittleEndian(data.InitialValue.AsSpan(8))); // drop_port = 9
        Assert.False(data.Freeze);
        Assert.Equal("xdp_maps.data", data.KernelName);

        var rodata = spec.FindMap(".rodata")!;
        Assert.Equal(5u, rodata.ValueSize);
        Assert.Equal(1500u, BinaryPrimitives.ReadUInt32LittleEndian(rodata.InitialValue));
        Assert.True(rodata.Freeze);
        Assert.Equal(0x80u, rodata.Flags); // BPF_F_RDONLY_PROG
        Assert.Equal("xdp_maps.rodata", rodata.KernelName);

        var bss = spec.FindMap(".bss")!;
        Assert.Equal(16u, bss.ValueSize);
        Assert.Equal(new byte[16], bss.InitialValue);
        Assert.Equal("xdp_maps.bss", bss.KernelName);
        Assert.Equal(BtfKind.DataSec, spec.Btf![bss.BtfValueTypeId].Kind);
    }

    [Fact]
    public void RelocatesMapAndVariableLoads()
    {
        var loads = spec.Programs[0].Instructions.Where(i => i.IsLoadImmediate64).ToList();
        var mapLoads = loads.Where(i => i.Reference == "flows").ToList();
        Assert.Equal(2, mapLoads.Count);
        Assert.All(mapLoads, i => Assert.Equal((Register)LoadImmediateSource.MapFd, i.Src));
        Assert.All(mapLoads, i => Assert.Equal(0, i.Constant));
        Assert.Contains(loads, i => i.Reference == "verdicts" && i.Src == (Register)LoadImmediateSource.MapFd);

        // allow_big is at offset 4 of .rodata, too_big at offset 8 of .bss, packets_seen at 0 of .data.
        Assert.Contains(loads, i => i.Reference == ".rodata" && i.Src == (Register)LoadImmediateSource.MapValue && i.Constant == 4L << 32);
        Assert.Contains(loads, i => i.Reference == ".bss" && i.Src == (Register)LoadImmediateSource.MapValue && i.Constant == 8L << 32);
        Assert.Contains(loads, i => i.Reference == ".data" && i.Src == (Register)LoadImmediateSource.MapValue && i.Constant == 0);
        Assert.All(loads, i => Assert.NotNull(i.Reference));
    }

    [Fact]
    public void FixesDataSectionSizesAndOffsetsInBtf()
    {
        var data = (BtfDataSec)spec.Btf!.FindByName(".data", BtfKind.DataSec)!;
        Assert.Equal(12u, data.Size);
        var offsets = data.Variables.Select(v => (spec.Btf[v.Type].Name, v.Offset)).ToList();
        Assert.Equal([("packets_seen", 0u), ("drop_port", 8u)], offsets);

        // The raw bytes carry the same fix-up: parsing them again gives the same sizes.
        var reparsed = BtfSpec.Parse(spec.Btf.RawBytes.Span);
        Assert.Equal(12u, ((BtfDataSec)reparsed.FindByName(".data", BtfKind.DataSec)!).Size);
        Assert.Equal(5u, ((BtfDataSec)reparsed.FindByName(".rodata", BtfKind.DataSec)!).Size);
        Assert.Equal(72u, ((BtfDataSec)reparsed.FindByName(".maps", BtfKind.DataSec)!).Size);
    }

    [Fact]
    public void CarriesFuncAndLineInfo()
    {
        var program = spec.Programs[0];
        var func = Assert.Single(program.FuncInfos);
        Assert.Equal(0, func.InstructionOffset);
        Assert.Equal("xdp_count", spec.Btf![func.TypeId].Name);

        Assert.NotEmpty(program.Lines);
        Assert.Equal(0, program.Lines[0].InstructionIndex);
        Assert.Equal("./src/xdp_maps.c", program.SourceFile); // the compilation directory (.) joined to the relative source path
        // Every line's text is the source file's line with that number.
        var source = File.ReadAllLines(Path.Combine(Support.TestPaths.TestData, "src", "xdp_maps.c"));
        Assert.All(program.Lines.Where(l => l.Line > 0), l => Assert.Equal(source[l.Line - 1], l.Text)); // line 0: compiler-made code
        Assert.Contains(program.Lines, l => l.Text.Contains("packets_seen++"));
        Assert.Equal(program.Lines.Count, program.LineInfos.Count);
        Assert.True(program.Lines.Zip(program.Lines.Skip(1)).All(p => p.First.InstructionIndex <= p.Second.InstructionIndex));
        var last = program.FindLine(program.Instructions.Count - 1);
        Assert.NotNull(last);
        Assert.Contains("return verdict", last.Text);
    }
}
