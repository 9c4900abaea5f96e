using SharpBpf.Asm;
using SharpBpf.Elf;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Tests.Objects;

/// <summary>multi_prog.c: programs in many section kinds, two per "xdp", subprograms, a loop and a bpf_loop callback.</summary>
public class MultiProgramTests
{
    private readonly CollectionSpec spec = Fixtures.Open("multi_prog");

    [Fact]
    public void FindsEveryProgramWithItsSectionConventions()
    {
        List<(string, string, ProgramType, uint?, uint)> expected =
        [
            ("xdp_first", "xdp", ProgramType.Xdp, 37u, 0u),
            ("xdp_second", "xdp", ProgramType.Xdp, 37u, 0u),
            ("xdp_frags", "xdp.frags", ProgramType.Xdp, 37u, SectionDefinitions.FlagXdpHasFrags),
            ("xdp_devmap", "xdp/devmap", ProgramType.Xdp, 33u, 0u),
            ("tc_prog", "tc", ProgramType.SchedCls, null, 0u),
            ("classifier_prog", "classifier", ProgramType.SchedCls, null, 0u),
            ("socket_prog", "socket", ProgramType.SocketFilter, null, 0u),
            ("kprobe_prog", "kprobe/do_nanosleep", ProgramType.Kprobe, null, 0u),
            ("tracepoint_prog", "tracepoint/syscalls/sys_enter_execve", ProgramType.Tracepoint, null, 0u),
        ];
        Assert.Equal(expected, spec.Programs.Select(p => (p.Name, p.SectionName, p.Type, p.ExpectedAttachType, p.Flags)).ToList());
        Assert.Equal("Dual BSD/GPL", spec.License);
    }

    [Theory]
    [InlineData("xdp_first", new[] { "packet_length" })]
    [InlineData("xdp_second", new[] { "sum_squares", "square" })]
    [InlineData("classifier_prog", new[] { "sum_squares", "square" })]
    [InlineData("xdp_frags", new[] { "loop_step" })]
    [InlineData("socket_prog", new string[0])] // bump() is inlined
    public void LinksCalledSubprogramsAfterTheProgram(string programName, string[] callees)
    {
        var program = spec.FindProgram(programName)!;
        var slots = RawSlots(program.Instructions);
        var own = FunctionFromElf(programName);
        Assert.Equal(Shape(own), Shape(program.Instructions.Take(own.Count)));

        var linked = new HashSet<string>();
        for (int i = 0; i < program.Instructions.Count; i++)
        {
            var insn = program.Instructions[i];
            bool call = insn.OpCode.Value == 0x85 && insn.Src == (Register)CallKind.Local;
            bool pointer = insn.IsLoadImmediate64 && insn.Src == (Register)LoadImmediateSource.Function;
            if (!call && !pointer)
                continue;
            Assert.NotNull(insn.Reference);
            int target = slots[i] + insn.Immediate + 1;
            int index = Array.IndexOf(slots, target);
            Assert.True(index > 0, $"{programName}: instruction {i} goes to slot {target}, which starts no instruction");
            var callee = FunctionFromElf(insn.Reference);
            Assert.Equal(Shape(callee), Shape(program.Instructions.Skip(index).Take(callee.Count)));
            linked.Add(insn.Reference);
        }
        Assert.Equal(callees.Order(), linked.Order());

        // Every instruction belongs to the program or one of its callees: nothing else was appended.
        int expectedLength = own.Count + callees.Sum(c => FunctionFromElf(c).Count);
        Assert.Equal(expectedLength, program.Instructions.Count);
    }

    [Fact]
    public void FuncInfoMarksTheProgramAndEachAppendedSubprogram()
    {
        var program = spec.FindProgram("xdp_second")!;
        var slots = RawSlots(program.Instructions);
        var names = program.FuncInfos.Select(f => spec.Btf![f.TypeId].Name).ToList();
        Assert.Equal("xdp_second", names[0]);
        Assert.Equal(0, program.FuncInfos[0].InstructionOffset);
        Assert.Equal(["square", "sum_squares", "xdp_second"], names.Order());
        // Each func info offset is where the call instructions go.
        var callTargets = program.Instructions.Select((insn, i) => (insn, i))
            .Where(p => p.insn.OpCode.Value == 0x85 && p.insn.Src == (Register)CallKind.Local)
            .Select(p => slots[p.i] + p.insn.Immediate + 1).ToHashSet();
        Assert.Equal(callTargets.Order(), program.FuncInfos.Skip(1).Select(f => f.InstructionOffset).Order());
    }

    [Fact]
    public void LineInfoFollowsSubprogramsIntoTheLinkedProgram()
    {
        var program = spec.FindProgram("xdp_second")!;
        var source = File.ReadAllLines(Path.Combine(Support.TestPaths.TestData, "src", "multi_prog.c"));
        Assert.All(program.Lines.Where(l => l.Line > 0), l => Assert.Equal(source[l.Line - 1], l.Text));
        Assert.Contains(program.Lines, l => l.Text.Contains("return x * x;"));
        Assert.True(program.Lines.Zip(program.Lines.Skip(1)).All(p => p.First.InstructionIndex <= p.Second.InstructionIndex));
        Assert.All(program.Lines, l => Assert.InRange(l.InstructionIndex, 0, program.Instructions.Count - 1));
    }

    [Fact]
    public void ProgramsShareMapsAndGlobalData()
    {
        Assert.All(spec.Programs.Where(p => p.Name is not ("xdp_frags" or "classifier_prog")),
            p => Assert.Contains(p.Instructions, i => i.Reference == "stats" && i.Src == (Register)LoadImmediateSource.MapFd));
        var frags = spec.FindProgram("xdp_frags")!;
        Assert.Contains(frags.Instructions, i => i.Reference == ".bss" && i.Src == (Register)LoadImmediateSource.MapValue);
    }

    private static int[] RawSlots(IReadOnlyList<Instruction> instructions)
    {
        var slots = new int[instructions.Count];
        int slot = 0;
        for (int i = 0; i < instructions.Count; i++)
        {
            slots[i] = slot;
            slot += instructions[i].RawSize;
        }
        return slots;
    }

    /// <summary>What relocation and linking leave alone: opcode, destination register and offset.</summary>
    private static List<(byte, Register, short)> Shape(IEnumerable<Instruction> instructions) =>
        instructions.Select(i => (i.OpCode.Value, i.Dst, i.Offset)).ToList();

    private static List<Instruction> FunctionFromElf(string name)
    {
        var elf = ElfFile.Parse(Fixtures.Bytes("multi_prog"));
        var symbol = elf.Symbols.Single(s => s.Name == name && s.Type == ElfSymbolType.Function);
        var code = elf.GetContents(elf.Sections[symbol.SectionIndex]).Span.Slice((int)symbol.Value, (int)symbol.Size);
        return InstructionCodec.Decode(code);
    }
}
