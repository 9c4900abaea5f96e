using System.Runtime.CompilerServices;
using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Xdp;

namespace SharpBpf.Vm.Jit;

/// <summary>
/// The static methods compiled code calls: slow paths of memory accesses, atomics, the budget charge (inlined),
/// and the cold ones (traps, frames, tail calls), NoInlining so they do not bloat the compiled program.
/// </summary>
internal static unsafe class JitRuntime
{
    private const ulong ContextSize = XdpContext.MetadataSize;

    // ---- checked mode: the compiled code checks stack and packet inline and calls these for everything else ----

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong LoadSlow(VmExecution e, ulong a, int size, int pc)
    {
        e.CurrentInstruction = pc;
        return e.LoadSlow(a, size);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void StoreSlow(VmExecution e, ulong a, int size, ulong v, int pc)
    {
        e.CurrentInstruction = pc;
        e.StoreSlow(a, size, v);
    }

    // ---- checked mode, quick tier: the whole check in one call per access (less IL than the inline check) ----------

    public static ulong Load1(VmExecution e, ulong a, int pc) => e.InFastRegion(a, 1) ? *(byte*)a : LoadSlow(e, a, 1, pc);
    public static ulong Load2(VmExecution e, ulong a, int pc) => e.InFastRegion(a, 2) ? Unsafe.ReadUnaligned<ushort>((void*)a) : LoadSlow(e, a, 2, pc);
    public static ulong Load4(VmExecution e, ulong a, int pc) => e.InFastRegion(a, 4) ? Unsafe.ReadUnaligned<uint>((void*)a) : LoadSlow(e, a, 4, pc);
    public static ulong Load8(VmExecution e, ulong a, int pc) => e.InFastRegion(a, 8) ? Unsafe.ReadUnaligned<ulong>((void*)a) : LoadSlow(e, a, 8, pc);

    public static void Store1(VmExecution e, ulong a, ulong v, int pc)
    {
        if (e.InFastRegion(a, 1)) *(byte*)a = (byte)v;
        else StoreSlow(e, a, 1, v, pc);
    }

    public static void Store2(VmExecution e, ulong a, ulong v, int pc)
    {
        if (e.InFastRegion(a, 2)) Unsafe.WriteUnaligned((void*)a, (ushort)v);
        else StoreSlow(e, a, 2, v, pc);
    }

    public static void Store4(VmExecution e, ulong a, ulong v, int pc)
    {
        if (e.InFastRegion(a, 4)) Unsafe.WriteUnaligned((void*)a, (uint)v);
        else StoreSlow(e, a, 4, v, pc);
    }

    public static void Store8(VmExecution e, ulong a, ulong v, int pc)
    {
        if (e.InFastRegion(a, 8)) Unsafe.WriteUnaligned((void*)a, v);
        else StoreSlow(e, a, 8, v, pc);
    }

    // ---- unchecked mode: plain accesses, except 4-byte loads from the xdp_md block (data/data_end/data_meta) --------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Load4Unchecked(VmExecution e, ulong a, int pc) =>
        a - e.CtxLow < ContextSize ? LoadSlow(e, a, 4, pc) : Unsafe.ReadUnaligned<uint>((void*)a);

    // ---- atomics: checked mode validates the operand first (allowed, writable, aligned) ----------------------------

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void CheckAtomic(VmExecution e, ulong a, int size, int pc)
    {
        e.CurrentInstruction = pc;
        e.CheckAtomic(a, size);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void MisalignedAtomic(VmExecution e, ulong a, int size, int pc) =>
        throw e.Trap(pc, TrapKind.MisalignedAtomic, $"{size}-byte atomic at 0x{a:x}");

    // Not inlined: the operand is r-src narrowed to 32 bits, and inlined narrowings of a live register are what
    // RyuJIT has miscompiled (see JitArithmetic).
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static uint Atomic32(ulong a, uint v, int op)
    {
        ref uint cell = ref *(uint*)a;
        switch ((AtomicOperation)op)
        {
            case AtomicOperation.Add: case AtomicOperation.FetchAdd: return Interlocked.Add(ref cell, v) - v;
            case AtomicOperation.Or: case AtomicOperation.FetchOr: return Interlocked.Or(ref cell, v);
            case AtomicOperation.And: case AtomicOperation.FetchAnd: return Interlocked.And(ref cell, v);
            case AtomicOperation.Xor: case AtomicOperation.FetchXor: return Interpreter.Xor32(ref cell, v);
            case AtomicOperation.Xchg: return Interlocked.Exchange(ref cell, v);
            default: throw new System.Diagnostics.UnreachableException($"atomic operation 0x{op:x} reached the JIT");
        }
    }

    public static ulong Atomic64(ulong a, ulong v, int op)
    {
        ref ulong cell = ref *(ulong*)a;
        switch ((AtomicOperation)op)
        {
            case AtomicOperation.Add: case AtomicOperation.FetchAdd: return Interlocked.Add(ref cell, v) - v;
            case AtomicOperation.Or: case AtomicOperation.FetchOr: return Interlocked.Or(ref cell, v);
            case AtomicOperation.And: case AtomicOperation.FetchAnd: return Interlocked.And(ref cell, v);
            case AtomicOperation.Xor: case AtomicOperation.FetchXor: return Interpreter.Xor64(ref cell, v);
            case AtomicOperation.Xchg: return Interlocked.Exchange(ref cell, v);
            default: throw new System.Diagnostics.UnreachableException($"atomic operation 0x{op:x} reached the JIT");
        }
    }

    /// <summary>
    /// 32-bit compare-exchange; r0 gets the old value zero-extended. Inlined into optimised code, RyuJIT (10.0.12) was
    /// seen to keep the upper half of a 64-bit r0 after a successful exchange (x86 cmpxchg writes eax only when it
    /// fails, and the comparand was r0's own register, so no zero-extending move came first): found by the
    /// differential test. Not inlined, the comparand arrives in a register of its own, and the result is read back
    /// as 32 bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong CmpXchg32(ulong a, ulong v, ulong expected)
    {
        uint old = Interlocked.CompareExchange(ref *(uint*)a, (uint)v, (uint)expected);
        return Volatile.Read(ref old);
    }

    public static ulong CmpXchg64(ulong a, ulong v, ulong expected) => Interlocked.CompareExchange(ref *(ulong*)a, v, expected);

    // ---- budget, traps ---------------------------------------------------------------------------------------------

    /// <summary>Charges a backward jump to the budget (as the interpreter: by the length of the jumped-over span).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Charge(VmExecution e, long cost, int pc)
    {
        if ((e.Budget -= cost) < 0)
            BudgetExhausted(e, pc);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void BudgetExhausted(VmExecution e, int pc) =>
        throw e.Trap(pc, TrapKind.BudgetExhausted, $"more than {e.Options.InstructionBudget} instructions in one run");

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Unreachable(VmExecution e, int pc) =>
        throw e.Trap(pc, TrapKind.Unreachable, $"instruction {pc} was proved unreachable at load, and no code was compiled for it");

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void FellOff(VmExecution e, int pc, int op) =>
        throw e.Trap(pc, TrapKind.FellOffEnd, $"no instruction at index {pc} (op 0x{op:x2})");

    // ---- calls -----------------------------------------------------------------------------------------------------

    public static void SetPc(VmExecution e, int pc) => e.CurrentInstruction = pc;

    /// <summary>bpf-to-bpf call: saves r6-r9 and the return index in the next frame; returns the callee's r10.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong PushFrame(VmExecution e, int returnPc, ulong r6, ulong r7, ulong r8, ulong r9)
    {
        if (e.CallDepth + 1 >= e.Options.MaxCallDepth)
            throw e.Trap(returnPc - 1, TrapKind.CallDepthExceeded, $"bpf-to-bpf calls nest deeper than {e.Options.MaxCallDepth} frames");
        ref var frame = ref e.Frames[e.CallDepth++];
        frame.ReturnPc = returnPc;
        frame.Program = e.Program!;
        frame.R6 = r6; frame.R7 = r7; frame.R8 = r8; frame.R9 = r9;
        ulong r10 = e.StackLow;
        e.StackLow -= VmExecution.FrameSize;
        return r10;
    }

    /// <summary>Exit of a called function: pops its frame. Returns the caller's return index, or its bitwise
    /// complement when the caller is another program (after a tail call), which the compiled code hands back to
    /// the driver. The saved registers are read afterwards with <see cref="Saved"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int PopFrame(VmExecution e)
    {
        ref var frame = ref e.Frames[--e.CallDepth];
        int pc = frame.ReturnPc;
        e.StackLow += VmExecution.FrameSize;
        if (!ReferenceEquals(frame.Program, e.Program))
        {
            e.SwitchProgram(frame.Program);
            pc = ~pc;
        }
        return pc;
    }

    /// <summary>Register r6+k saved in the frame <see cref="PopFrame"/> just popped; the last read releases the frame.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Saved(VmExecution e, int k)
    {
        ref var frame = ref e.Frames[e.CallDepth];
        switch (k)
        {
            case 0: return frame.R6;
            case 1: return frame.R7;
            case 2: return frame.R8;
            default:
                frame.Program = null!;
                return frame.R9;
        }
    }

    /// <summary>bpf_tail_call: true when the run continues in another program (already switched to).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static bool TailCall(VmExecution e, ulong map, ulong index, int pc)
    {
        e.CurrentInstruction = pc;
        var target = VmHelpers.ResolveTailCall(e, map, index);
        if (target is null)
            return false;
        e.SwitchProgram(target);
        return true;
    }

    /// <summary>callx: the function index to call, or -1 after calling a helper (its result in <paramref name="r0"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int CallRegister(VmExecution e, ulong target, int pc, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, ref ulong r0)
    {
        var program = e.Program!;
        int index = program.FunctionIndexOf(target);
        if (index >= 0)
            return index;
        e.CurrentInstruction = pc;
        var helpers = program.HelperFunctions;
        if (target < HelperTable.Capacity && helpers[target] != 0)
        {
            if (target == (ulong)Platform.HelperId.TailCall)
                throw e.Trap(TrapKind.BadCall, "callx to bpf_tail_call is not supported");
            r0 = ((delegate*<VmExecution, ulong, ulong, ulong, ulong, ulong, ulong>)helpers[target])(e, r1, r2, r3, r4, r5);
            return -1;
        }
        throw e.Trap(TrapKind.BadCall, $"callx target 0x{target:x} is neither a function of the program nor a helper it may call");
    }
}

/// <summary>
/// Division and modulo by a register, with eBPF's answers for a zero divisor (and, signed, for -1).
/// <para>The 32-bit forms are not inlined. Inlined into optimised code, RyuJIT 10.0.12 was seen to copy the divisor
/// register with a 32-bit move for <c>(uint)b</c> and then use that copy as the whole 64-bit register b at a later
/// use (a 64-bit atomic or of the same register lost its upper half): found by the differential test. Not inlined,
/// the narrowing happens on the callee's own copy of the argument.</para>
/// </summary>
internal static class JitArithmetic
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Div64(ulong a, ulong b) => b == 0 ? 0 : a / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mod64(ulong a, ulong b) => b == 0 ? a : a % b;

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Div32(ulong a, ulong b) => (uint)b == 0 ? 0 : (uint)a / (uint)b;

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong Mod32(ulong a, ulong b) => (uint)b == 0 ? (uint)a : (uint)a % (uint)b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SDiv64(ulong a, ulong b) => (ulong)Interpreter.SDiv64((long)a, (long)b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SMod64(ulong a, ulong b) => (ulong)Interpreter.SMod64((long)a, (long)b);

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong SDiv32(ulong a, ulong b) => (uint)Interpreter.SDiv32((int)a, (int)b);

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ulong SMod32(ulong a, ulong b) => (uint)Interpreter.SMod32((int)a, (int)b);
}
