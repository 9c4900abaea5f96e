using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Platform;
using SharpBpf.Vm;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Vm;

/// <summary>VM semantics on the interpreter; <c>Jit.JitVmTests</c> runs the same tests on the JIT.</summary>
public class InterpreterTests
{
    /// <summary>The engine every program of these tests is loaded for.</summary>
    protected virtual VmEngine Engine => VmEngine.Interpreter;
    protected virtual JitTiering Tiering => JitTiering.Tiered;

    private VmOptions O(VmOptions? options = null) => (options ?? VmOptions.Default) with { Engine = Engine, JitTiering = Tiering };

    private ulong Run(params Instruction[] program)
    {
        using var e = new VmExecution();
        return VmProgram.Create("t", program, ProgramType.Unspec, options: O()).Run(e);
    }

    private VmTrapException Trap(params Instruction[] program)
    {
        using var e = new VmExecution(new VmOptions { InstructionBudget = 100_000 });
        var p = VmProgram.Create("t", program, ProgramType.Unspec, options: O());
        return Assert.Throws<VmTrapException>(() => p.Run(e));
    }

    [Theory]
    [InlineData(AluOperation.Div, 7UL, 0UL, 0UL)]              // division by zero gives 0
    [InlineData(AluOperation.Mod, 7UL, 0UL, 7UL)]              // modulo by zero leaves the dividend
    [InlineData(AluOperation.Div, 0xffffffffffffff00UL, 0x10UL, 0x0ffffffffffffff0UL)]
    [InlineData(AluOperation.Lsh, 1UL, 65UL, 2UL)]             // shift amounts are masked to 6 bits
    [InlineData(AluOperation.Rsh, 0x8000000000000000UL, 127UL, 1UL)]
    [InlineData(AluOperation.Arsh, 0x8000000000000000UL, 63UL, 0xffffffffffffffffUL)]
    public void Alu64RegisterSemantics(AluOperation op, ulong a, ulong b, ulong expected)
    {
        Assert.Equal(expected, Run(Lddw(R0, (long)a), Lddw(R1, (long)b), Alu64R(op, R0, R1), Exit()));
    }

    [Theory]
    [InlineData(AluOperation.Div, 0xffffffff00000007UL, 0UL, 0UL)]
    [InlineData(AluOperation.Mod, 0xffffffff00000007UL, 0UL, 7UL)]          // 32-bit: dividend truncated and zero-extended
    [InlineData(AluOperation.Add, 0xffffffffffffffffUL, 1UL, 0UL)]           // wraps in 32 bits, upper half cleared
    [InlineData(AluOperation.Lsh, 1UL, 33UL, 2UL)]                           // masked to 5 bits
    [InlineData(AluOperation.Arsh, 0x0000000080000000UL, 31UL, 0xffffffffUL)] // sign of bit 31, zero-extended
    [InlineData(AluOperation.Mov, 0UL, 0xffffffff12345678UL, 0x12345678UL)]
    public void Alu32RegisterSemantics(AluOperation op, ulong a, ulong b, ulong expected)
    {
        Assert.Equal(expected, Run(Lddw(R0, (long)a), Lddw(R1, (long)b), Alu32R(op, R0, R1), Exit()));
    }

    [Fact]
    public void SignedDivisionCornerCases()
    {
        // sdiv: offset 1. INT64_MIN / -1 = INT64_MIN, INT64_MIN % -1 = 0, x sdiv 0 = 0, x smod 0 = x.
        Assert.Equal(0x8000000000000000UL, Run(Lddw(R0, long.MinValue), Alu64(AluOperation.Div, R0, -1, off: 1), Exit()));
        Assert.Equal(0UL, Run(Lddw(R0, long.MinValue), Alu64(AluOperation.Mod, R0, -1, off: 1), Exit()));
        Assert.Equal(0UL, Run(Mov(R0, -9), Mov(R1, 0), Alu64R(AluOperation.Div, R0, R1, off: 1), Exit()));
        Assert.Equal(unchecked((ulong)-9L), Run(Mov(R0, -9), Mov(R1, 0), Alu64R(AluOperation.Mod, R0, R1, off: 1), Exit()));
        Assert.Equal(unchecked((ulong)-3L), Run(Mov(R0, -9), Alu64(AluOperation.Div, R0, 3, off: 1), Exit()));
        Assert.Equal(0x80000000UL, Run(Lddw(R0, int.MinValue), Alu32(AluOperation.Div, R0, -1, off: 1), Exit()));
        Assert.Equal(0xfffffffeUL, Run(Mov(R0, -8), Alu32(AluOperation.Mod, R0, -3, off: 1), Exit()));
    }

    [Fact]
    public void MovsxAndByteSwaps()
    {
        Assert.Equal(0xffffffffffffff80UL, Run(Mov(R1, 0x80), Alu64R(AluOperation.Mov, R0, R1, off: 8), Exit()));
        Assert.Equal(0xffff8000UL, Run(Mov(R1, 0x8000), Alu32R(AluOperation.Mov, R0, R1, off: 16), Exit()));
        var be16 = new Instruction(new OpCode(0xdc), R0, 0, 0, 16);
        Assert.Equal(0x3412UL, Run(Lddw(R0, 0x77661234), be16, Exit()));
        var bswap64 = new Instruction(new OpCode(0xd7), R0, 0, 0, 64);
        Assert.Equal(0x0807060504030201UL, Run(Lddw(R0, 0x0102030405060708), bswap64, Exit()));
        var le32 = new Instruction(new OpCode(0xd4), R0, 0, 0, 32);
        Assert.Equal(0x05060708UL, Run(Lddw(R0, 0x0102030405060708), le32, Exit()));
    }

    [Fact]
    public void StackStoresLoadsAndAtomics()
    {
        Assert.Equal(15UL, Run(
            St(AccessSize.DoubleWord, R10, -8, 10),
            Mov(R1, 5),
            Atomic(AccessSize.DoubleWord, R10, R1, -8, AtomicOperation.FetchAdd),
            Ldx(AccessSize.DoubleWord, R0, R10, -8),
            Exit()));
    }

    [Fact]
    public void LoopsAndLocalCallsPreserveCalleeSavedRegisters()
    {
        // r6 = 0; loop 10 times: r6 += call f(r6) where f returns r1 + 1 and clobbers r6 in its own frame.
        Assert.Equal(1023UL, Run(
            Mov(R6, 0),
            Mov(R7, 10),
            MovR(R1, R6),                  // 2: loop
            CallLocal(6),                 // -> 10
            Alu64(AluOperation.Mul, R6, 2),
            Alu64(AluOperation.Add, R6, 1),
            Alu64(AluOperation.Sub, R7, 1),
            Jmp(JumpOperation.Jne, R7, 0, -6),
            MovR(R0, R6),
            Exit(),
            Mov(R6, 99),                  // 10: f
            MovR(R0, R1),
            Alu64(AluOperation.Add, R0, 1),
            Exit()));
    }

    [Fact]
    public void WildPointerLoadTrapsWithInstructionIndex()
    {
        var trap = Trap(Lddw(R1, 0x1000), Mov(R0, 0), Ldx(AccessSize.Word, R0, R1, 0), Exit());
        Assert.Equal(TrapKind.MemoryAccess, trap.Kind);
        Assert.Equal(2, trap.InstructionIndex);
        Assert.Contains("instruction 2", trap.Message);
    }

    [Fact]
    public void StoresBelowTheFrameAndAboveTheStackTrap()
    {
        Assert.Equal(TrapKind.MemoryAccess, Trap(St(AccessSize.DoubleWord, R10, -520, 1), Mov(R0, 0), Exit()).Kind);
        Assert.Equal(TrapKind.MemoryAccess, Trap(St(AccessSize.Byte, R10, 0, 1), Mov(R0, 0), Exit()).Kind);
        // An 8-byte store that straddles the frame's top edge.
        Assert.Equal(TrapKind.MemoryAccess, Trap(St(AccessSize.DoubleWord, R10, -4, 1), Mov(R0, 0), Exit()).Kind);
    }

    [Fact]
    public void MisalignedAtomicTraps()
    {
        var trap = Trap(St(AccessSize.DoubleWord, R10, -16, 0), Mov(R1, 1),
            Atomic(AccessSize.DoubleWord, R10, R1, -12, AtomicOperation.Add), Mov(R0, 0), Exit());
        Assert.Equal(TrapKind.MisalignedAtomic, trap.Kind);
    }

    [Fact]
    public void InfiniteLoopExhaustsTheBudget()
    {
        var trap = Trap(Mov(R0, 0), Ja(-1), Exit());
        Assert.Equal(TrapKind.BudgetExhausted, trap.Kind);
    }

    [Fact]
    public void UnboundedRecursionTrapsAtTheFrameLimit()
    {
        var trap = Trap(CallLocal(-1), Exit());
        Assert.Equal(TrapKind.CallDepthExceeded, trap.Kind);
    }

    [Fact]
    public void HelperOutsideTheProgramTypeIsRefusedByName()
    {
        var ex = Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Call((int)HelperId.GetCurrentPidTgid), Exit()], options: O()));
        Assert.Contains("bpf_get_current_pid_tgid", ex.Message);
        Assert.Contains("xdp", ex.Message);
        Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Call(100_000), Exit()], options: O()));
    }

    [Fact]
    public void InvalidInstructionsAreRefused()
    {
        Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Mov(R10, 1), Exit()], options: O()));                  // r10 written
        Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Ja(5), Exit()], options: O()));                       // jump out
        Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Mov(R0, 1)], options: O()));                          // no exit
        Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Alu64(AluOperation.Add, R0, 1, off: 1), Exit()], options: O())); // reserved offset
        Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Lddw(R0, 1), Ja(-2), Exit()], options: O()));          // into lddw? (-2 -> slot 1)
    }

    [Fact]
    public void UninitializedRegisterReadIsRefusedWhenAsked()
    {
        var options = new VmOptions { RequireInitializedRegisters = true };
        var ex = Assert.Throws<VmLoadException>(() => VmProgram.Create("t", [Alu64R(AluOperation.Or, R0, R10), Exit()], HelperTable.Generic, options));
        Assert.Contains("r0 is read before it is written", ex.Message);
        VmProgram.Create("t", [Mov(R0, 1), Exit()], HelperTable.Generic, options);
    }

    [Fact]
    public void ConformanceMemoryIsReadableAndWritable()
    {
        var memory = new byte[] { 1, 2, 3, 4 };
        var p = VmProgram.Create("t", [Ldx(AccessSize.Word, R0, R1, 0), St(AccessSize.Byte, R1, 3, 9), Exit()], HelperTable.Conformance, options: O());
        using var e = new VmExecution();
        Assert.Equal(0x04030201UL, p.Run(e, memory));
        Assert.Equal(9, memory[3]);
        Assert.Throws<VmTrapException>(() => VmProgram.Create("t", [Ldx(AccessSize.Word, R0, R1, 1), Exit()], HelperTable.Conformance, options: O()).Run(e, memory));
    }
}

/// <summary>Callbacks, tail calls and callx on the interpreter; <c>Jit.JitCallbackAndTailCallTests</c> runs them on the JIT.</summary>
public class CallbackAndTailCallTests
{
    /// <summary>The engine every program of these tests is loaded for.</summary>
    protected virtual VmEngine Engine => VmEngine.Interpreter;
    protected virtual JitTiering Tiering => JitTiering.Tiered;

    private VmOptions O() => VmOptions.Default with { Engine = Engine, JitTiering = Tiering };

    [Fact]
    public void BpfLoopRunsTheCallbackUntilItReturnsOne()
    {
        // r1 = 100 (iterations), r2 = &callback, r3 = r10 - 8 (ctx: a counter), r4 = 0; call bpf_loop.
        // callback(i, ctx): *ctx += i; return i == 9 ? 1 : 0
        var program = VmProgram.Create("loop",
        [
            St(AccessSize.DoubleWord, R10, -8, 0),
            Mov(R1, 100),
            new Instruction(new OpCode(0x18), R2, (Register)4, 0, 9),   // lddw r2, callback: raw slot 2 + 1 + 9 = 12
            MovR(R3, R10),
            Alu64(AluOperation.Add, R3, -8),
            Mov(R4, 0),
            Call((int)global::SharpBpf.Platform.HelperId.Loop),
            Ldx(AccessSize.DoubleWord, R1, R10, -8),
            Alu64(AluOperation.Lsh, R0, 32),
            Alu64R(AluOperation.Or, R0, R1),
            Exit(),
            // callback at raw slot 12
            Ldx(AccessSize.DoubleWord, R3, R2, 0),
            Alu64R(AluOperation.Add, R3, R1),
            Stx(AccessSize.DoubleWord, R2, R3, 0),
            Mov(R0, 0),
            Jmp(JumpOperation.Jne, R1, 9, 1),
            Mov(R0, 1),
            Exit(),
        ], global::SharpBpf.Platform.ProgramType.Xdp, options: O());
        using var e = new VmExecution();
        // 10 iterations (0..9), sum 45.
        Assert.Equal((10UL << 32) | 45UL, program.Run(e));
    }

    private static global::SharpBpf.Objects.CollectionSpec TailCallSpec(int selfCalls)
    {
        // "entry" tail-calls "chain" (slot 0); "chain" counts in .data and tail-calls itself.
        var spec = new global::SharpBpf.Objects.CollectionSpec();
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "jumps", Type = global::SharpBpf.Platform.MapType.ProgArray, KeySize = 4, ValueSize = 4, MaxEntries = 2 });
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = ".data", Type = global::SharpBpf.Platform.MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 1, InitialValue = new byte[8] });
        Instruction[] TailCall(int slot) =>
        [
            new Instruction(new OpCode(0x18), R2, (Register)1, 0, 0) { Reference = "jumps" },
            Mov(R3, slot),
            Call((int)global::SharpBpf.Platform.HelperId.TailCall),
        ];
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec { Name = "entry", SectionName = "xdp", Type = global::SharpBpf.Platform.ProgramType.Xdp,
            Instructions = [.. TailCall(0), Mov(R0, 1), Exit()] });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec { Name = "chain", SectionName = "xdp", Type = global::SharpBpf.Platform.ProgramType.Xdp,
            Instructions =
            [
                new Instruction(new OpCode(0x18), R6, (Register)2, 0, 0) { Reference = ".data" },
                Ldx(AccessSize.DoubleWord, R7, R6, 0),
                Alu64(AluOperation.Add, R7, 1),
                Stx(AccessSize.DoubleWord, R6, R7, 0),
                .. TailCall(0),
                Mov(R0, 2),
                Exit(),
            ] });
        return spec;
    }

    [Fact]
    public void TailCallsReplaceTheProgramAndStopAt33()
    {
        using var collection = VmCollection.Load(TailCallSpec(0), new VmOptions { Engine = Engine, JitTiering = Tiering, CreateMap = s => new TestArrayMap(s) });
        var chain = collection.Program("chain");
        collection.Map("jumps").Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(chain.Id));
        var result = collection.Program("entry").TestRun(new global::SharpBpf.Xdp.TestRunOptions { Data = new byte[64] });
        // entry -> chain (1) -> chain ... 33 tail calls in all, then the last chain falls through and returns PASS.
        Assert.Equal(global::SharpBpf.Xdp.XdpAction.Pass, result.Action);
        var value = new byte[8];
        collection.Map(".data").TryLookup(BitConverter.GetBytes(0u), value);
        Assert.Equal(33UL, BitConverter.ToUInt64(value));
    }

    /// <summary>"entry" keeps 100 in r6 and calls its subprogram, which tail-calls "leaf" (slot 0) or, when the slot is
    /// empty, returns 1; "leaf" calls a subprogram of its own that returns 5. The tail call replaces the subprogram:
    /// entry goes on after its call with r0 from leaf, and r6 as it was.</summary>
    private static global::SharpBpf.Objects.CollectionSpec SubprogramTailCallSpec()
    {
        var spec = new global::SharpBpf.Objects.CollectionSpec();
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "jumps", Type = global::SharpBpf.Platform.MapType.ProgArray, KeySize = 4, ValueSize = 4, MaxEntries = 2 });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec { Name = "entry", SectionName = "xdp", Type = global::SharpBpf.Platform.ProgramType.Xdp,
            Instructions =
            [
                Mov(R6, 100),
                CallLocal(2),                                                    // raw slot 1 + 1 + 2 = 4
                Alu64R(AluOperation.Add, R0, R6),
                Exit(),
                new Instruction(new OpCode(0x18), R2, (Register)1, 0, 0) { Reference = "jumps" },   // slots 4-5
                Mov(R3, 0),
                Mov(R6, 7),                                                      // the subprogram's own r6
                Call((int)global::SharpBpf.Platform.HelperId.TailCall),
                Mov(R0, 1),
                Exit(),
            ] });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec { Name = "leaf", SectionName = "xdp", Type = global::SharpBpf.Platform.ProgramType.Xdp,
            Instructions = [CallLocal(1), Exit(), Mov(R0, 5), Exit()] });
        return spec;
    }

    [Theory]
    [InlineData(true, 105UL)]
    [InlineData(false, 101UL)]
    public void ATailCallFromASubprogramReturnsToItsCaller(bool fill, ulong expected)
    {
        using var collection = VmCollection.Load(SubprogramTailCallSpec(), new VmOptions { Engine = Engine, JitTiering = Tiering, CreateMap = s => new TestArrayMap(s) });
        if (fill)
            collection.Map("jumps").Update(BitConverter.GetBytes(0u), BitConverter.GetBytes(collection.Program("leaf").Id));
        using var e = new VmExecution();
        var entry = collection.Program("entry");
        Assert.Equal(expected, entry.Run(e));
        Assert.Equal(0, e.CallDepth);
        // Again on the same execution: nothing of the first run is left over.
        Assert.Equal(expected, entry.Run(e));
    }

    [Fact]
    public void AnEmptyTailCallSlotFallsThrough()
    {
        using var collection = VmCollection.Load(TailCallSpec(0), new VmOptions { Engine = Engine, JitTiering = Tiering, CreateMap = s => new TestArrayMap(s) });
        var result = collection.Program("entry").TestRun(new global::SharpBpf.Xdp.TestRunOptions { Data = new byte[64] });
        Assert.Equal(global::SharpBpf.Xdp.XdpAction.Drop, result.Action);
    }

    [Fact]
    public void CallxToGarbageTraps()
    {
        using var e = new VmExecution();
        var callx = new Instruction(new OpCode(0x8d), R2, 0, 0, 0);
        var trap = Assert.Throws<VmTrapException>(() =>
            VmProgram.Create("t", [Lddw(R2, 0x7fff_0000_1234), callx, Mov(R0, 0), Exit()], global::SharpBpf.Platform.ProgramType.Xdp, options: O()).Run(e));
        Assert.Equal(TrapKind.BadCall, trap.Kind);
        Assert.Equal(1, trap.InstructionIndex);
    }

    private static global::SharpBpf.Objects.CollectionSpec SpinLockSpec()
    {
        // value { struct bpf_spin_lock lock; u32 pad; u64 n; }: lookup key 0, lock, n += 1, unlock, XDP_PASS.
        var spec = new global::SharpBpf.Objects.CollectionSpec();
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "locked", Type = global::SharpBpf.Platform.MapType.Array, KeySize = 4, ValueSize = 16, MaxEntries = 1, SpinLockOffset = 0 });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec { Name = "count", SectionName = "xdp", Type = global::SharpBpf.Platform.ProgramType.Xdp, License = "GPL",
            Instructions =
            [
                St(AccessSize.Word, R10, -4, 0),
                MovR(R2, R10),
                Alu64(AluOperation.Add, R2, -4),
                new Instruction(new OpCode(0x18), R1, (Register)1, 0, 0) { Reference = "locked" },
                Call((int)global::SharpBpf.Platform.HelperId.MapLookupElem),
                Jmp(JumpOperation.Jeq, R0, 0, 10), // to `r0 = 0` (lddw takes two slots)
                MovR(R6, R0),
                MovR(R1, R6),
                Call((int)global::SharpBpf.Platform.HelperId.SpinLock),
                Ldx(AccessSize.DoubleWord, R7, R6, 8),
                Alu64(AluOperation.Add, R7, 1),
                Stx(AccessSize.DoubleWord, R6, R7, 8),
                MovR(R1, R6),
                Call((int)global::SharpBpf.Platform.HelperId.SpinUnlock),
                Mov(R0, 2),
                Exit(),
                Mov(R0, 0),
                Exit(),
            ] });
        return spec;
    }

    [Fact]
    public void SpinLockMakesConcurrentIncrementsExact()
    {
        using var collection = VmCollection.Load(SpinLockSpec(), new VmOptions { Engine = Engine, JitTiering = Tiering, Verify = true });
        var program = collection.Program("count");
        const int Threads = 4, Runs = 5_000;
        var workers = Enumerable.Range(0, Threads).Select(_ => new Thread(() =>
        {
            for (int i = 0; i < Runs; i++)
                Assert.Equal(global::SharpBpf.Xdp.XdpAction.Pass, program.TestRun(new global::SharpBpf.Xdp.TestRunOptions { Data = new byte[64] }).Action);
        })).ToList();
        workers.ForEach(t => { t.IsBackground = true; t.Start(); });
        Assert.All(workers, t => Assert.True(t.Join(TimeSpan.FromSeconds(60)), "a run never got the lock"));
        var value = new byte[16];
        Assert.True(collection.Map("locked").TryLookup(BitConverter.GetBytes(0u), value));
        // Every read-modify-write under the lock counted; the lock word is free again.
        Assert.Equal((ulong)(Threads * Runs), BitConverter.ToUInt64(value, 8));
        Assert.Equal(0u, BitConverter.ToUInt32(value, 0));
    }

    [Fact]
    public void SpinUnlockOfAFreeLockTraps()
    {
        // Without the verifier (as a raw run may be), unlocking a lock nobody holds is a clear trap, not a silent no-op.
        var spec = SpinLockSpec();
        var insns = spec.Programs[0].Instructions;
        insns.RemoveAt(8); // drop `call bpf_spin_lock` (r1 stays the value pointer)
        insns.Insert(8, MovR(R1, R6));
        using var collection = VmCollection.Load(spec, new VmOptions { Engine = Engine, JitTiering = Tiering, Verify = false });
        using var e = new VmExecution();
        var trap = Assert.Throws<VmTrapException>(() => collection.Program("count").Run(e));
        Assert.Equal(TrapKind.BadHelperArgument, trap.Kind);
        Assert.Contains("not held", trap.Message);
    }

    private static global::SharpBpf.Objects.CollectionSpec ForEachSpec(global::SharpBpf.Platform.MapType type, bool stopAtFirst)
    {
        // main: sum = 0; n = for_each_map_elem(counts, callback, &sum, 0); return n << 32 | sum
        // callback(map, key, value, ctx): *ctx += *value + *(u32*)key; *value += 1; return stopAtFirst
        var spec = new global::SharpBpf.Objects.CollectionSpec();
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "counts", Type = type, KeySize = 4, ValueSize = 8, MaxEntries = 3 });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec { Name = "main", SectionName = "xdp", Type = global::SharpBpf.Platform.ProgramType.Xdp,
            Instructions =
            [
                new Instruction(new OpCode(0x18), R1, (Register)1, 0, 0) { Reference = "counts" },   // raw slots 0-1
                new Instruction(new OpCode(0x18), R2, (Register)4, 0, 10),                          // slots 2-3: callback at 2 + 1 + 10 = 13
                St(AccessSize.DoubleWord, R10, -8, 0),
                MovR(R3, R10),
                Alu64(AluOperation.Add, R3, -8),
                Mov(R4, 0),
                Call((int)global::SharpBpf.Platform.HelperId.ForEachMapElem),
                Ldx(AccessSize.DoubleWord, R1, R10, -8),
                Alu64(AluOperation.Lsh, R0, 32),
                Alu64R(AluOperation.Or, R0, R1),
                Exit(),
                // callback, raw slot 13
                Ldx(AccessSize.DoubleWord, R0, R4, 0),
                Ldx(AccessSize.DoubleWord, R5, R3, 0),
                Alu64R(AluOperation.Add, R0, R5),
                Ldx(AccessSize.Word, R5, R2, 0),
                Alu64R(AluOperation.Add, R0, R5),
                Stx(AccessSize.DoubleWord, R4, R0, 0),
                Ldx(AccessSize.DoubleWord, R5, R3, 0),
                Alu64(AluOperation.Add, R5, 1),
                Stx(AccessSize.DoubleWord, R3, R5, 0),
                Mov(R0, stopAtFirst ? 1 : 0),
                Exit(),
            ] });
        return spec;
    }

    [Theory]
    [InlineData(global::SharpBpf.Platform.MapType.Array, false, 3UL, 60UL + 0 + 1 + 2)]
    [InlineData(global::SharpBpf.Platform.MapType.Hash, false, 3UL, 60UL + 5 + 6 + 7)]
    [InlineData(global::SharpBpf.Platform.MapType.Array, true, 1UL, 10UL)]
    public void ForEachMapElemVisitsEveryElementWithKeyAndWritableValue(global::SharpBpf.Platform.MapType type, bool stopAtFirst, ulong visited, ulong sum)
    {
        using var collection = VmCollection.Load(ForEachSpec(type, stopAtFirst), new VmOptions { Engine = Engine, JitTiering = Tiering });
        var map = collection.Map("counts");
        uint[] keys = type == global::SharpBpf.Platform.MapType.Array ? [0, 1, 2] : [5, 6, 7];
        for (int i = 0; i < 3; i++)
            map.Update(BitConverter.GetBytes(keys[i]), BitConverter.GetBytes(10UL * (ulong)(i + 1)));
        using var e = new VmExecution();
        Assert.Equal((visited << 32) | sum, collection.Program("main").Run(e));
        // The callback's writes through the value pointer reached the map.
        var value = new byte[8];
        ulong total = 0;
        foreach (uint key in keys)
        {
            Assert.True(map.TryLookup(BitConverter.GetBytes(key), value));
            total += BitConverter.ToUInt64(value);
        }
        Assert.Equal(60UL + visited, total);
    }

    [Fact]
    public void ForEachMapElemKeyIsReadOnlyAndGoneAfterTheCall()
    {
        // A callback that writes through the key pointer traps: the key is the map's, read-only for the program.
        var spec = ForEachSpec(global::SharpBpf.Platform.MapType.Hash, stopAtFirst: false);
        var code = spec.Programs[0].Instructions;
        code[^2] = St(AccessSize.Word, R2, 0, 1);
        using var collection = VmCollection.Load(spec, new VmOptions { Engine = Engine, JitTiering = Tiering });
        collection.Map("counts").Update(BitConverter.GetBytes(5u), BitConverter.GetBytes(1UL));
        using var e = new VmExecution();
        var trap = Assert.Throws<VmTrapException>(() => collection.Program("main").Run(e));
        Assert.Equal(TrapKind.MemoryAccess, trap.Kind);
        Assert.Equal(20, trap.InstructionIndex);
        // And the next run on the same execution starts clean (no region or frame left behind by the trap).
        spec = ForEachSpec(global::SharpBpf.Platform.MapType.Hash, stopAtFirst: false);
        using var clean = VmCollection.Load(spec, new VmOptions { Engine = Engine, JitTiering = Tiering });
        clean.Map("counts").Update(BitConverter.GetBytes(5u), BitConverter.GetBytes(1UL));
        Assert.Equal((1UL << 32) | 6UL, clean.Program("main").Run(e));
    }

    [Theory]
    [InlineData(global::SharpBpf.Platform.MapType.Array)]
    [InlineData(global::SharpBpf.Platform.MapType.Hash)]
    public void ForEachMapElemAllocatesNothingPerRun(global::SharpBpf.Platform.MapType type)
    {
        using var collection = VmCollection.Load(ForEachSpec(type, stopAtFirst: false), new VmOptions { Engine = Engine, JitTiering = Tiering });
        var map = collection.Map("counts");
        for (uint i = 0; i < 3; i++)
            map.Update(BitConverter.GetBytes(i), BitConverter.GetBytes(0UL));
        var program = collection.Program("main");
        using var e = new VmExecution();
        for (int i = 0; i < 200; i++)
            program.Run(e);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 2000; i++)
            program.Run(e);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void HotPathHelpersAllocateNothingPerRun()
    {
        // An XDP program calling map lookups (array and hash), csum_diff, adjust_head, adjust_meta and redirect each run.
        var spec = new global::SharpBpf.Objects.CollectionSpec();
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "arr", Type = global::SharpBpf.Platform.MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 4 });
        spec.Maps.Add(new global::SharpBpf.Objects.MapSpec { Name = "hash", Type = global::SharpBpf.Platform.MapType.Hash, KeySize = 4, ValueSize = 8, MaxEntries = 4 });
        spec.Programs.Add(new global::SharpBpf.Objects.ProgramSpec { Name = "hot", SectionName = "xdp", Type = global::SharpBpf.Platform.ProgramType.Xdp,
            Instructions =
            [
                MovR(R6, R1),
                St(AccessSize.Word, R10, -4, 1),
                St(AccessSize.DoubleWord, R10, -16, 0x1234),
                new Instruction(new OpCode(0x18), R1, (Register)1, 0, 0) { Reference = "arr" },
                MovR(R2, R10),
                Alu64(AluOperation.Add, R2, -4),
                Call((int)global::SharpBpf.Platform.HelperId.MapLookupElem),
                Jmp(JumpOperation.Jeq, R0, 0, 2),
                Ldx(AccessSize.DoubleWord, R7, R0, 0),
                Alu64(AluOperation.Add, R7, 1),
                new Instruction(new OpCode(0x18), R1, (Register)1, 0, 0) { Reference = "hash" },
                MovR(R2, R10),
                Alu64(AluOperation.Add, R2, -4),
                Call((int)global::SharpBpf.Platform.HelperId.MapLookupElem),
                Jmp(JumpOperation.Jeq, R0, 0, 1),
                Ldx(AccessSize.DoubleWord, R7, R0, 0),
                MovR(R1, R10),
                Alu64(AluOperation.Add, R1, -16),
                Mov(R2, 8),
                Mov(R3, 0),
                Mov(R4, 0),
                Mov(R5, 0),
                Call((int)global::SharpBpf.Platform.HelperId.CsumDiff),
                MovR(R1, R6),
                Mov(R2, -4),
                Call((int)global::SharpBpf.Platform.HelperId.XdpAdjustMeta),
                MovR(R1, R6),
                Mov(R2, 4),
                Call((int)global::SharpBpf.Platform.HelperId.XdpAdjustMeta),
                MovR(R1, R6),
                Mov(R2, -8),
                Call((int)global::SharpBpf.Platform.HelperId.XdpAdjustHead),
                MovR(R1, R6),
                Mov(R2, 8),
                Call((int)global::SharpBpf.Platform.HelperId.XdpAdjustHead),
                Mov(R1, 3),
                Mov(R2, 0),
                Call((int)global::SharpBpf.Platform.HelperId.Redirect),
                Exit(),
            ] });
        using var collection = VmCollection.Load(spec, new VmOptions { Engine = Engine, JitTiering = Tiering });
        collection.Map("arr").Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(7UL));
        collection.Map("hash").Update(BitConverter.GetBytes(1u), BitConverter.GetBytes(9UL));
        var program = collection.Program("hot");
        using var e = new VmExecution();
        using var frame = new global::SharpBpf.Xdp.XdpContext();
        frame.SetPacket(new byte[64]);
        for (int i = 0; i < 200; i++)
            Assert.Equal(global::SharpBpf.Xdp.XdpAction.Redirect, program.RunXdp(e, frame, out _));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 2000; i++)
            program.RunXdp(e, frame, out _);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(64, frame.Packet.Length);
        Assert.Equal(new global::SharpBpf.Xdp.XdpRedirect(global::SharpBpf.Xdp.XdpRedirectKind.Interface, 3, null, 0), e.Redirect);
    }

    [Fact]
    public void UnalignedAndOverlappingStackAccessesWork()
    {
        using var e = new VmExecution();
        var p = VmProgram.Create("t",
        [
            Lddw(R1, 0x1122334455667788),
            Stx(AccessSize.DoubleWord, R10, R1, -11),       // unaligned
            St(AccessSize.Half, R10, -7, 0x0000),           // overlaps the middle of it
            Ldx(AccessSize.DoubleWord, R0, R10, -11),
            Exit(),
        ], global::SharpBpf.Platform.ProgramType.Xdp, options: O());
        Assert.Equal(0x1122000055667788UL, p.Run(e));
    }

    [Theory]
    [InlineData(true, "AAAAAAAAAAAAAA")]    // into the packet, no NUL before its end: stops where readable memory ends
    [InlineData(false, "")]                 // a wild pointer: the kernel prints an empty string, the program goes on
    public void TracePrintkStringsNeverTrap(bool intoPacket, string expected)
    {
        using var e = new VmExecution();
        using var context = new global::SharpBpf.Xdp.XdpContext();
        context.SetPacket(Enumerable.Repeat((byte)'A', 14).ToArray());
        var p = VmProgram.Create("t",
        [
            intoPacket ? Ldx(AccessSize.Word, R3, R1, 0) : Lddw(R3, 0x7fff_0000_1234),
            St(AccessSize.Word, R10, -8, 0x7325),           // "%s"
            MovR(R1, R10),
            Alu64(AluOperation.Add, R1, -8),
            Mov(R2, 4),
            Call((int)HelperId.TracePrintk),
            Mov(R0, 2),
            Exit(),
        ], global::SharpBpf.Platform.ProgramType.Xdp, options: O());
        Assert.Equal(global::SharpBpf.Xdp.XdpAction.Pass, p.RunXdp(e, context, out var trap));
        Assert.Null(trap);
        Assert.Equal([expected], e.Trace);
    }

    [Fact]
    public void TestRunHonoursTheOptionsTheProgramWasLoadedWith()
    {
        // r0 = 0; loop: r0 += 1; if r0 != 1000 goto loop; r0 = 2; exit: 2,000 instructions, over a budget of 500.
        var p = VmProgram.Create("t",
        [
            Mov(R0, 0),
            Alu64(AluOperation.Add, R0, 1),
            Jmp(JumpOperation.Jne, R0, 1000, -2),
            Mov(R0, 2),
            Exit(),
        ], global::SharpBpf.Platform.ProgramType.Xdp, options: O() with { InstructionBudget = 500 });
        var result = p.TestRun(new global::SharpBpf.Xdp.TestRunOptions { Data = new byte[60] });
        Assert.Equal(global::SharpBpf.Xdp.XdpAction.Aborted, result.Action);
        Assert.NotNull(result.Trap);
    }
}
