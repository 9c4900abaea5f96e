using SharpBpf.Asm;
using SharpBpf.Conformance;
using SharpBpf.Helpers;
using SharpBpf.Platform;
using SharpBpf.Tests.Support;
using SharpBpf.Tests.Vm;
using SharpBpf.Tests.Xdp;
using SharpBpf.Vm;
using SharpBpf.Vm.Jit;
using SharpBpf.Vm.Jit.Baseline;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Jit;

/// <summary>Every interpreter test, on the baseline tier.</summary>
public class BaselineVmTests : InterpreterTests
{
    protected override VmEngine Engine => VmEngine.Jit;
    protected override JitTiering Tiering => JitTiering.Baseline;
}

/// <summary>Every callback and tail-call test, on the baseline tier.</summary>
public class BaselineCallbackAndTailCallTests : CallbackAndTailCallTests
{
    protected override VmEngine Engine => VmEngine.Jit;
    protected override JitTiering Tiering => JitTiering.Baseline;
}

/// <summary>Every XDP runtime test, on the baseline tier.</summary>
public class BaselineXdpRuntimeTests : XdpRuntimeTests
{
    protected override VmEngine Engine => VmEngine.Jit;
    protected override JitTiering Tiering => JitTiering.Baseline;
}

/// <summary>The baseline tier: SharpBpf's own x86-64 code generator.</summary>
public class BaselineTests
{
    private static readonly VmOptions Baseline = new() { Engine = VmEngine.Jit, JitTiering = JitTiering.Baseline, InstructionBudget = 100_000 };

    private static void RequireBaseline()
    {
        if (!BaselineCompiler.IsAvailable)
            Assert.Skip("the baseline tier runs on x86-64 Linux only");
    }

    [Fact]
    public void ConformanceProgramsCompileToNativeCode()
    {
        RequireBaseline();
        if (TestPaths.ConformanceDir is not { } dir)
        {
            Assert.Skip("the bpf_conformance vectors are absent (../shared/bpf_conformance or SHARPBPF_SHARED)");
            return;
        }
        int baseline = 0, il = 0;
        var reasons = new Dictionary<string, int>();
        foreach (var path in Directory.EnumerateFiles(dir, "*.data", SearchOption.AllDirectories))
        {
            var file = ConformanceFile.Load(path);
            if (file.Instructions is not { } instructions || file.SkipReason is not null || file.ExpectsError)
                continue;
            VmProgram p;
            try
            {
                p = VmProgram.Create("c", instructions, HelperTable.Conformance, ConformanceRunner.Options with { Engine = VmEngine.Jit, JitTiering = JitTiering.Baseline });
            }
            catch (BpfException)
            {
                continue;
            }
            if (p.JitCode!.Tier == JitTier.Baseline)
            {
                Assert.True(p.JitCode.NativeBytes > 0);
                baseline++;
            }
            else
            {
                il++;
                var why = BaselineCompiler.Unsupported(p) ?? "?";
                reasons[why] = reasons.GetValueOrDefault(why) + 1;
            }
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"baseline {baseline}, il {il}: {string.Join(", ", reasons.Select(r => $"{r.Key} {r.Value}"))}");
        Assert.True(il == 0, $"{il} conformance programs compiled to IL instead of baseline code: {string.Join(", ", reasons.Select(r => $"{r.Key} {r.Value}"))}");
        Assert.True(baseline > 300, $"only {baseline} conformance programs compiled to baseline code");
    }

    [Fact]
    public void TheCallBlockOffsetsMatchItsLayout()
    {
        int Of(string field) => (int)System.Runtime.InteropServices.Marshal.OffsetOf<CallBlock>(field);
        Assert.Equal(CallBlock.FunctionOffset, Of(nameof(CallBlock.Function)));
        Assert.Equal(CallBlock.PcOffset, Of(nameof(CallBlock.Pc)));
        Assert.Equal(CallBlock.OpOffset, Of(nameof(CallBlock.Op)));
        Assert.Equal(CallBlock.AOffset, Of(nameof(CallBlock.A)));
        Assert.Equal(CallBlock.VOffset, Of(nameof(CallBlock.V)));
        Assert.Equal(CallBlock.SizeOffset, Of(nameof(CallBlock.Size)));
        Assert.Equal(CallBlock.ExtraOffset, Of(nameof(CallBlock.Extra)));
        Assert.Equal(CallBlock.RegsOffset, Of(nameof(CallBlock.Regs)));
        Assert.Equal(CallBlock.SaveOffset, Of(nameof(CallBlock.Save)));
        Assert.Equal(CallBlock.KeepOffset, Of(nameof(CallBlock.Keep)));
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<CallBlock>();
        Assert.InRange(size, 0, CallBlock.FrameBytes);
        Assert.Equal(8, CallBlock.FrameBytes % 16);
    }

    [Fact]
    public void ProgramsCompileToNativeCodeAndRun()
    {
        RequireBaseline();
        var p = VmProgram.Create("answer", [Mov(R0, 6), Alu64(AluOperation.Mul, R0, 7), Exit()], ProgramType.Unspec, Baseline);
        Assert.Equal(JitTier.Baseline, p.JitCode!.Tier);
        Assert.Equal(0, p.JitCode.IlBytes);
        Assert.InRange(p.JitCode.NativeBytes, 10, 400);
        using var e = new VmExecution(Baseline);
        Assert.Equal(42UL, p.Run(e));
    }

    [Fact]
    public async Task TieredProgramsStartWithBaselineCodeThenSwitchToOptimizedCode()
    {
        RequireBaseline();
        var options = Baseline with { JitTiering = JitTiering.Tiered };
        var p = VmProgram.Create("tiered", [Mov(R0, 6), Alu64(AluOperation.Mul, R0, 7), Exit()], ProgramType.Unspec, options);
        using var e = new VmExecution(options);
        Assert.Equal(42UL, p.Run(e));
        await p.JitOptimization!.WaitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(JitTier.Optimized, p.JitCode!.Tier);
        Assert.Equal(42UL, p.Run(e));
        Assert.NotNull(p.JitCompileTime);
        Assert.NotNull(p.JitOptimizedCompileTime);
    }

    [Fact]
    public void LocalCallsAreNativeCalls()
    {
        RequireBaseline();
        // main: r6 = 5; r1 = 20; call f; r0 += r6 (r6 survives the call); exit.   f: r6 = 99; r0 = r1 * 2; exit
        Instruction[] program =
        [
            Mov(R6, 5), Mov(R1, 20), CallLocal(2), Alu64R(AluOperation.Add, R0, R6), Exit(),
            Mov(R6, 99), MovR(R0, R1), Alu64(AluOperation.Mul, R0, 2), Exit(),
        ];
        var p = VmProgram.Create("calls", program, ProgramType.Unspec, Baseline);
        Assert.Equal(JitTier.Baseline, p.JitCode!.Tier);
        using var e = new VmExecution(Baseline);
        Assert.Equal(45UL, p.Run(e));
        Assert.Equal(0, e.CallDepth);
    }

    /// <summary>Runs <paramref name="program"/> on the interpreter and on baseline code (which it must compile to):
    /// r0 or the trap (kind, index, message) must be the same. Returns the baseline trap, and leaves the baseline
    /// execution, which must have nothing pending and no frame left, usable for another run.</summary>
    private static VmTrapException? SameAsTheInterpreter(string name, Instruction[] program, ProgramType type = ProgramType.Unspec)
    {
        var interpreted = VmProgram.Create(name, program, type, Baseline with { Engine = VmEngine.Interpreter });
        var p = VmProgram.Create(name, program, type, Baseline);
        Assert.Equal(JitTier.Baseline, p.JitCode!.Tier);
        using var ie = new VmExecution(Baseline);
        using var e = new VmExecution(Baseline);
        (ulong? R0, VmTrapException? Trap) Outcome(VmProgram program, VmExecution execution)
        {
            try { return (program.Run(execution), null); }
            catch (VmTrapException ex) { return (null, ex); }
        }
        var expected = Outcome(interpreted, ie);
        var actual = Outcome(p, e);
        Assert.Equal(expected.R0, actual.R0);
        Assert.Equal(expected.Trap?.Kind, actual.Trap?.Kind);
        Assert.Equal(expected.Trap?.InstructionIndex, actual.Trap?.InstructionIndex);
        Assert.Equal(expected.Trap?.Message, actual.Trap?.Message);
        Assert.Equal(0, e.NativePending);
        Assert.Equal(0, e.CallDepth);
        var ok = VmProgram.Create("ok", [Mov(R0, 3), Exit()], ProgramType.Unspec, Baseline);
        Assert.Equal(3UL, ok.Run(e));
        return actual.Trap;
    }

    [Fact]
    public void RecursionPastTheCallDepthTrapsAtTheCall()
    {
        RequireBaseline();
        // f (index 2) calls itself forever: the call traps once the frames run out, as on the interpreter, and the
        // trap unwinds the depth and the stack bounds.
        var trap = SameAsTheInterpreter("deep", [CallLocal(1), Exit(), CallLocal(-1), Exit()]);
        Assert.Equal(TrapKind.CallDepthExceeded, trap?.Kind);
    }

    [Fact]
    public void CodeThatFallsIntoAnotherFunctionRunsAsOnTheInterpreter()
    {
        RequireBaseline();
        // Unverified code the verifier would refuse: main calls f (index 1), which is also where main goes on after
        // the call, and f jumps back into main's code. Frames must stay balanced whatever the layout.
        Assert.Null(SameAsTheInterpreter("fall",
        [
            CallLocal(0),                                  // 0: call f (index 1)
            Alu64(AluOperation.Add, R0, 1),                // 1: f: r0 += 1 (also reached by falling through)
            Jmp(JumpOperation.Jgt, R0, 3, 1),              // 2: if r0 > 3 goto 4
            Ja(-4),                                        // 3: goto 0 (into main's code)
            Exit(),                                        // 4
        ]));
    }

    [Fact]
    public void HelperTrapsComeBackAsTheSameException()
    {
        RequireBaseline();
        // bpf_map_lookup_elem with a null map pointer: the helper throws inside native code; the exception crosses
        // the native frames and the run traps as on the interpreter.
        var trap = SameAsTheInterpreter("bad", [Mov(R1, 0), Mov(R2, 0), Call(1), Mov(R0, 7), Exit()], ProgramType.Xdp);
        Assert.NotNull(trap);
    }

    [Fact]
    public void BudgetExhaustionInANativeLoopTraps()
    {
        RequireBaseline();
        var trap = SameAsTheInterpreter("spin", [Mov(R0, 0), Alu64(AluOperation.Add, R0, 1), Ja(-2), Exit()]);
        Assert.Equal(TrapKind.BudgetExhausted, trap?.Kind);
    }

    [Fact]
    public void ArrayLookupsInlinedInVerifiedCodeGiveTheHelpersAnswers()
    {
        RequireBaseline();
        // Verified: a per-CPU counter at key 2 (incremented), then a lookup past the end of a plain array (null), on
        // CPUs 0, 1 and one past the possible CPUs (null as well). The baseline code inlines both lookups; the
        // counters and the actions must be the interpreter's.
        var spec = new global::SharpBpf.Objects.CollectionSpec { License = "GPL" };
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "counts", Type = MapType.PercpuArray, KeySize = 4, ValueSize = 8, MaxEntries = 4 });
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "cfg", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 2 });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec
        {
            Name = "count", SectionName = "xdp", Type = ProgramType.Xdp,
            Instructions =
            [
                St(AccessSize.Word, R10, -4, 2),
                MovR(R2, R10), Alu64(AluOperation.Add, R2, -4),
                new Instruction(new OpCode(0x18), R1, (Register)1, 0, 0) { Reference = "counts" },
                Call(1),
                Jmp(JumpOperation.Jeq, R0, 0, 3),
                Ldx(AccessSize.DoubleWord, R1, R0, 0), Alu64(AluOperation.Add, R1, 1), Stx(AccessSize.DoubleWord, R0, R1, 0),
                St(AccessSize.Word, R10, -8, 7),
                MovR(R2, R10), Alu64(AluOperation.Add, R2, -8),
                new Instruction(new OpCode(0x18), R1, (Register)1, 0, 0) { Reference = "cfg" },
                Call(1),
                Mov(R6, 2),                                   // XDP_PASS when the lookup past the end gave null
                Jmp(JumpOperation.Jeq, R0, 0, 1),
                Mov(R6, 1),
                MovR(R0, R6),
                Exit(),
            ],
        });
        ulong[] Counters(VmCollection collection)
        {
            var value = new byte[collection.Map("counts").UserValueSize];
            collection.Map("counts").TryLookup(BitConverter.GetBytes(2u), value);
            return [.. Enumerable.Range(0, value.Length / 8).Select(i => BitConverter.ToUInt64(value, i * 8))];
        }
        var outcomes = new List<(ulong[] Counters, List<global::SharpBpf.Xdp.XdpAction> Actions)>();
        foreach (var options in new[] { new VmOptions { Verify = true }, Baseline with { Verify = true, CheckMemory = false } })
        {
            using var collection = VmCollection.Load(spec, options);
            var program = collection.Program("count");
            if (options.Engine == VmEngine.Jit)
                Assert.Equal(JitTier.Baseline, program.JitCode!.Tier);
            var actions = new List<global::SharpBpf.Xdp.XdpAction>();
            using var e = new VmExecution(options);
            foreach (int cpu in new[] { 0, 1, 1, global::SharpBpf.Maps.ManagedMap.PossibleCpus })
            {
                e.Cpu = cpu;
                using var context = new global::SharpBpf.Xdp.XdpContext();
                context.SetPacket(new byte[64]);
                actions.Add(program.RunXdp(e, context, out var trap));
                Assert.Null(trap);
            }
            outcomes.Add((Counters(collection), actions));
        }
        Assert.Equal(outcomes[0].Counters, outcomes[1].Counters);
        Assert.Equal(outcomes[0].Actions, outcomes[1].Actions);
        Assert.Equal(1UL, outcomes[1].Counters[0]);
        if (outcomes[1].Counters.Length > 1)
            Assert.Equal(2UL, outcomes[1].Counters[1]);
        Assert.All(outcomes[1].Actions, action => Assert.Equal(global::SharpBpf.Xdp.XdpAction.Pass, action));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void VerifiedTailCallsFromSubprogramsRunNested(bool fill)
    {
        RequireBaseline();
        // Verified: entry keeps 1 in r6 and calls its subprogram, which tail-calls leaf (slot 0) or returns 0 when
        // the slot is empty; leaf returns 2 through a subprogram of its own. Entry goes on after its call: XDP_TX (3)
        // or XDP_DROP (1), as on the interpreter.
        var spec = new global::SharpBpf.Objects.CollectionSpec { License = "GPL" };
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "jumps", Type = MapType.ProgArray, KeySize = 4, ValueSize = 4, MaxEntries = 2 });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec
        {
            Name = "entry", SectionName = "xdp", Type = ProgramType.Xdp,
            Instructions =
            [
                Mov(R6, 1),
                CallLocal(2),                                                    // raw slot 1 + 1 + 2 = 4
                Alu64R(AluOperation.Add, R0, R6),
                Exit(),
                new Instruction(new OpCode(0x18), R2, (Register)1, 0, 0) { Reference = "jumps" },
                Mov(R3, 0),
                Call((int)global::SharpBpf.Platform.HelperId.TailCall),
                Mov(R0, 0),
                Exit(),
            ],
        });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec
        {
            Name = "leaf", SectionName = "xdp", Type = ProgramType.Xdp,
            Instructions = [CallLocal(1), Exit(), Mov(R0, 2), Exit()],
        });
        var results = new List<ulong>();
        foreach (var options in new[] { new VmOptions { Verify = true }, Baseline with { Verify = true, CheckMemory = false } })
        {
            using var collection = VmCollection.Load(spec, options);
            var entry = collection.Program("entry");
            if (options.Engine == VmEngine.Jit)
            {
                Assert.Null(BaselineCompiler.Unsupported(entry));
                Assert.Equal(JitTier.Baseline, entry.JitCode!.Tier);
            }
            if (fill)
                collection.Map("jumps").Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(collection.Program("leaf").Id));
            using var e = new VmExecution(options);
            using var context = new global::SharpBpf.Xdp.XdpContext();
            context.SetPacket(new byte[64]);
            results.Add((ulong)entry.RunXdp(e, context, out var trap));
            Assert.Null(trap);
            Assert.Equal(0, e.CallDepth);
            Assert.Same(entry, e.Program);
        }
        Assert.Equal(results[0], results[1]);
        Assert.Equal(fill ? 3UL : 1UL, results[1]);
    }

    [Fact]
    public void CallxRunsAsOnTheInterpreter()
    {
        RequireBaseline();
        // callx of a function (through an lddw of its address), of a helper (bpf_get_smp_processor_id), and of
        // something that is neither (a trap).
        Instruction[] functions =
        [
            new(new OpCode(0x18), R2, (Register)4, 0, 5),                   // lddw r2, f: raw slot 0 + 1 + 5 = 6
            Mov(R1, 20),
            new(new OpCode(0x8d), R2, 0, 0, 0),                             // callx r2
            Alu64(AluOperation.Add, R0, 1),
            Exit(),
            MovR(R0, R1), Alu64(AluOperation.Mul, R0, 2), Exit(),           // f at raw slot 6
        ];
        Assert.Null(SameAsTheInterpreter("callx_function", functions));
        Assert.Null(SameAsTheInterpreter("callx_helper", [Mov(R3, 8), new(new OpCode(0x8d), R3, 0, 0, 0), Alu64(AluOperation.Add, R0, 5), Exit()], ProgramType.Xdp));
        var trap = SameAsTheInterpreter("callx_bad", [Mov(R3, 12345), new(new OpCode(0x8d), R3, 0, 0, 0), Exit()], ProgramType.Xdp);
        Assert.Equal(TrapKind.BadCall, trap?.Kind);
    }

    [Fact]
    public void UnverifiedTailCallsWithBpfToBpfCallsFallBackToQuickIl()
    {
        RequireBaseline();
        Instruction[] program = [CallLocal(1), Exit(), Mov(R1, 0), Mov(R2, 0), Mov(R3, 0), new(new OpCode(0x85), 0, 0, 0, 12), Exit()];
        var p = VmProgram.Create("mixed", program, ProgramType.Xdp, Baseline);
        Assert.Equal("tail calls in an unverified program with bpf-to-bpf calls", BaselineCompiler.Unsupported(p));
        Assert.Equal(JitTier.Quick, p.JitCode!.Tier);
    }
}
