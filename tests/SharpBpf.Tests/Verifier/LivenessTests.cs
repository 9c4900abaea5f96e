using SharpBpf.Asm;
using SharpBpf.Platform;
using SharpBpf.Verifier.Cfg;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// Register liveness (what pruning may ignore) must equal the kernel's compute_live_registers: a register it
/// believes read keeps states apart for nothing (the kernel prints its table at log level 2, "Live regs before insn").
/// </summary>
public class LivenessTests
{
    private static ushort[] Live(string assembly)
    {
        var graph = ProgramGraph.Build(CaseAssembler.Assemble(assembly), out var error);
        Assert.Null(error);
        return Liveness.Compute(graph, PlatformTable.For(ProgramType.Xdp)!);
    }

    [Fact]
    public void AByteSwapReadsOnlyItsOwnRegister()
    {
        // be16 sets the opcode's source bit (to big endian) with src = r0: r0 is not an operand.
        var live = Live("""
            mov r0, 2
            be16 r1
            mov r0, r1
            exit
            """);
        Assert.Equal(1 << 1, live[1]);
        Assert.Equal(1 << 1, live[2]);
        Assert.Equal(1 << 0, live[3]);
    }

    [Fact]
    public void ARegisterReadOnOnePathIsLiveBeforeTheBranch()
    {
        var live = Live("""
            jeq r1, 0, out
            mov r0, r2
            exit
            out:
            mov r0, r3
            exit
            """);
        Assert.Equal((1 << 1) | (1 << 2) | (1 << 3), live[0]);
        Assert.Equal(1 << 2, live[1]);
        Assert.Equal(1 << 3, live[3]);
    }
}
