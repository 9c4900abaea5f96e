using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier;

namespace SharpBpf.Tests.Verifier;

/// <summary>The verifier's API beyond the rule cases: encoding checks, results for the JIT, diagnostics.</summary>
public class VerifierApiTests
{
    private static ProgramSpec Program(string asm, ProgramType type = ProgramType.Xdp) => new()
    {
        Name = "test", SectionName = "xdp", Type = type, License = "GPL", Instructions = CaseAssembler.Assemble(asm),
    };

    [Fact]
    public void ReservedSourceFieldOnAnImmediateAluIsRefused()
    {
        var program = Program("mov r0, 0\nexit");
        program.Instructions[0] = program.Instructions[0] with { Src = Register.R3 };
        var result = BpfVerifier.Verify(program);
        Assert.False(result.Accepted);
        Assert.Equal(0, result.Error!.InstructionIndex);
        Assert.Contains("reserved", result.Error.Message);
    }

    [Fact]
    public void UnknownOpcodeIsRefused()
    {
        var program = Program("mov r0, 0\nexit");
        program.Instructions.Insert(0, new Instruction(new OpCode(0xff), 0, 0, 0, 0));
        var result = BpfVerifier.Verify(program);
        Assert.Contains("unknown opcode", result.Error!.Message);
    }

    [Fact]
    public void RawIndexCountsLddwTwice()
    {
        var program = Program("lddw r1, 5\nldxw r0, [r1+0]\nexit");
        var result = BpfVerifier.Verify(program);
        Assert.Equal(1, result.Error!.InstructionIndex);
        Assert.Equal(2, result.Error.RawIndex);
    }

    [Fact]
    public void AccessFactsNameTheRegionOfEveryAccess()
    {
        var program = Program("""
            ldxw r2, [r1+0]
            ldxw r3, [r1+4]
            mov r4, r2
            add r4, 14
            jgt r4, r3, out
            ldxh r5, [r2+12]
            stxdw [r10-8], r5
            out:
            mov r0, 2
            exit
            """);
        var result = BpfVerifier.Verify(program);
        Assert.True(result.Accepted, result.Error?.ToString());
        Assert.Equal(MemoryRegion.Context, result.AccessFacts[0].Regions);
        Assert.Equal(MemoryRegion.Packet, result.AccessFacts[5].Regions);
        Assert.Equal(MemoryRegion.Stack, result.AccessFacts[6].Regions);
        Assert.All(result.AccessFacts.Values, f => Assert.True(f.ProvenInBounds));
        Assert.Equal(8, result.StackDepth);
    }

    [Fact]
    public void RefusalCarriesSourceLineRegisterAndHint()
    {
        var program = Program("""
            ldxw r2, [r1+0]
            ldxw r3, [r1+4]
            ldxw r0, [r2+30]
            exit
            """);
        program.Lines.Add(new SourceLine(2, "xdp.c", 41, 5, "    if (ip->protocol == IPPROTO_TCP)"));
        var result = BpfVerifier.Verify(program);
        var error = result.Error!;
        Assert.Equal(2, error.InstructionIndex);
        Assert.Equal(41, error.SourceLine!.Line);
        Assert.StartsWith("R2 = pkt", error.RegisterState);
        Assert.Contains("data + 34", error.Hint);
        Assert.Contains("line 41", error.Hint);
        Assert.Contains("IPv4", error.Hint);
        var exception = Assert.Throws<VerifierException>(result.ThrowIfRefused);
        Assert.Contains("xdp.c:41", exception.Message);
    }

    [Fact]
    public void LogTracesEveryInstruction()
    {
        var result = BpfVerifier.Verify(Program("mov r0, 2\nexit"), new VerifierOptions { Log = true });
        Assert.Contains("0: r0 = 2", result.Log);
        Assert.Contains("1: exit", result.Log);
        Assert.Equal(2, result.ProcessedInstructions);
    }

    [Fact]
    public void UnmodelledProgramTypeSaysSo()
    {
        var program = Program("mov r0, 0\nexit", ProgramType.Kprobe);
        Assert.Throws<BpfNotSupportedException>(() => BpfVerifier.Verify(program));
    }
}
