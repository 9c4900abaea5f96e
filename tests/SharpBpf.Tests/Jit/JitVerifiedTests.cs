using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Tests.Support;
using SharpBpf.Verifier;
using SharpBpf.Vm;
using SharpBpf.Xdp;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Jit;

/// <summary>Loading with <see cref="VmOptions.Verify"/>: refusals, what runs unchecked, and the project's bench programs.</summary>
public class JitVerifiedTests
{
    private static readonly VmOptions Verified = new() { Engine = VmEngine.Jit, Verify = true };

    [Fact]
    public void AHostileProgramIsRefusedAtLoadAndNeverRunsUnchecked()
    {
        Instruction[] wild = [Lddw(R1, 0x1000), St(AccessSize.DoubleWord, R1, 0, 1), Mov(R0, 0), Exit()];
        var error = Assert.Throws<VerifierException>(() => VmProgram.Create("hostile", wild, ProgramType.Xdp, Verified));
        Assert.Equal(1, error.Error.InstructionIndex);
        Instruction[] pastTheStack = [St(AccessSize.DoubleWord, R10, 0, 1), Mov(R0, 0), Exit()];
        Assert.Throws<VerifierException>(() => VmProgram.Create("hostile", pastTheStack, ProgramType.Xdp, Verified));
    }

    [Fact]
    public void AVerifiedProgramRunsOnlyOnAnXdpFrame()
    {
        var p = VmProgram.Create("ctx", [Ldx(AccessSize.Word, R0, R1, 0), Exit()], ProgramType.Xdp, Verified);
        Assert.True(p.Verified);
        Assert.False(p.CheckMemory);
        using var e = new VmExecution();
        // r1 would be taken for the context without a check: refused instead.
        Assert.Throws<InvalidOperationException>(() => p.Run(e, 0x1000));
        Assert.Throws<InvalidOperationException>(() => p.Run(e, new byte[64]));
        using var frame = new XdpContext();
        frame.SetPacket(new byte[64]);
        p.RunXdp(e, frame, out var trap);
        Assert.Null(trap);
    }

    [Fact]
    public void DeadCodeIsNotCompiled()
    {
        // r1 = 1 makes the branch certain: instructions 3-8 are on no path, as the verifier (and the kernel's
        // opt_remove_dead_code) finds; the JIT compiles one trap there instead of them, and the result is the same.
        Instruction[] program =
        [
            Mov(R0, 2),                                    // XDP_PASS
            Mov(R1, 1),
            Jmp(JumpOperation.Jeq, R1, 1, 7),             // over the lddw (two slots) and five more
            Lddw(R0, 0x1234_5678_9abc),                    // dead from here
            Alu64(AluOperation.Mul, R0, 77),
            Alu64(AluOperation.Xor, R0, 0x55),
            Alu64(AluOperation.Rsh, R0, 3),
            Alu64(AluOperation.Add, R0, 1000),
            Alu64(AluOperation.Sub, R0, 7),                // to here
            Exit(),
        ];
        var verdict = BpfVerifier.Verify(new ProgramSpec { Name = "dead", SectionName = "xdp", Type = ProgramType.Xdp, License = "GPL", Instructions = [.. program] });
        Assert.True(verdict.Accepted);
        Assert.Equal([true, true, true, false, false, false, false, false, false, true], verdict.Reached);
        var verified = VmProgram.Create("dead", program, ProgramType.Xdp, Verified with { JitTiering = JitTiering.Optimized });
        var unverified = VmProgram.Create("dead", program, ProgramType.Xdp, new VmOptions { Engine = VmEngine.Jit, CheckMemory = false, JitTiering = JitTiering.Optimized });
        Assert.True(verified.JitCode!.IlBytes < unverified.JitCode!.IlBytes, $"verified {verified.JitCode.IlBytes} bytes of IL, unverified {unverified.JitCode.IlBytes}");
        foreach (var p in new[] { verified, unverified })
            Assert.Equal(2u, p.TestRun(new TestRunOptions { Data = new byte[64] }).ReturnValue);
    }

    [Fact]
    public void ProgramsOfOtherTypesAreVerifiedButStayChecked()
    {
        var p = VmProgram.Create("filter", [Mov(R0, 0), Exit()], ProgramType.SocketFilter, Verified);
        Assert.False(p.Verified);
        Assert.True(p.CheckMemory);
    }

    [Fact]
    public async Task ABackgroundCompileRunsOnTheInterpreterUntilTheCodeIsThere()
    {
        // A long program, so the first run usually comes before the compile ends; the results must not depend on it.
        var code = new List<Instruction> { Mov(R0, 1) };
        for (int i = 0; i < 600; i++)
            code.Add(i % 3 == 0 ? Alu64(AluOperation.Mul, R0, 3) : Alu64(AluOperation.Add, R0, i));
        code.Add(Exit());
        var p = VmProgram.Create("background", code, ProgramType.Xdp, new VmOptions { Engine = VmEngine.Jit, CompileInBackground = true });
        Assert.NotNull(p.JitCompilation);
        var options = new TestRunOptions { Data = new byte[64] };
        var before = p.TestRun(options).ReturnValue;
        await p.JitCompilation!.WaitAsync(TestContext.Current.CancellationToken);
        Assert.NotNull(p.JitCompileTime);
        Assert.Equal(before, p.TestRun(options).ReturnValue);
        var reference = VmProgram.Create("background", code, ProgramType.Xdp);
        Assert.Equal(reference.TestRun(options).ReturnValue, before);
    }

    public static TheoryData<string> BenchPrograms() =>
        [.. Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "programs", "bench"), "*.o").Select(f => Path.GetFileName(f)!).Order()];

    [Theory]
    [MemberData(nameof(BenchPrograms))]
    public void BenchProgramsLoadVerifiedAndAgreeWithTheCheckedInterpreter(string file)
    {
        var spec = ObjectFile.Read(File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "programs", "bench", file)), file);
        using var verified = VmCollection.Load(spec, Verified);
        using var reference = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Interpreter });
        var name = spec.Programs[0].Name;
        Assert.True(verified.Program(name).Verified);
        // Every access of these programs is proven: none is compiled with a check.
        Assert.False(verified.Program(name).JitCode!.CheckMemory);
        Assert.True(reference.Program(name).CheckMemory);
        foreach (int length in new[] { 64, 40, 20 })
        {
            // Ethernet / IPv4 / UDP, cut to the length (the short ones fail the programs' bounds checks).
            var frame = new byte[64];
            for (int i = 0; i < frame.Length; i++)
                frame[i] = (byte)(i * 7 + 1);
            frame[12] = 0x08; frame[13] = 0x00; frame[14] = 0x45; frame[22] = 64; frame[23] = 17;
            var packet = frame[..length];
            var options = new TestRunOptions { Data = packet, Repeat = 3 };
            var a = reference.Program(name).TestRun(options);
            var b = verified.Program(name).TestRun(options);
            Assert.Equal(a.ReturnValue, b.ReturnValue);
            Assert.Equal(a.DataOut, b.DataOut);
        }
    }
}
