using SharpBpf.Asm;
using SharpBpf.Platform;

namespace SharpBpf.Verifier.Cfg;

/// <summary>
/// Which registers may be read before being written from each instruction on (backward data flow inside each
/// function). A register that is dead at a prune point cannot influence the rest of the path, so state comparison
/// ignores it: the static counterpart of the kernel's REG_LIVE_READ marks, and what makes pruning effective.
/// </summary>
internal static class Liveness
{
    /// <summary>Bit r set in result[i] when r may be read before written from instruction i on.</summary>
    public static ushort[] Compute(ProgramGraph graph, PlatformTable platform)
    {
        int n = graph.Count;
        var use = new ushort[n];
        var def = new ushort[n];
        for (int i = 0; i < n; i++)
            (use[i], def[i]) = UseDef(graph[i], platform);
        var liveIn = new ushort[n];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int i = n - 1; i >= 0; i--)
            {
                graph.SuccessorsOf(i, out int a, out int b);
                ushort liveOut = (ushort)((a >= 0 ? liveIn[a] : 0) | (b >= 0 ? liveIn[b] : 0));
                ushort value = (ushort)(use[i] | (liveOut & ~def[i]));
                if (value != liveIn[i])
                {
                    liveIn[i] = value;
                    changed = true;
                }
            }
        }
        return liveIn;
    }

    private static ushort Bit(Register r) => (ushort)(1 << (int)r);

    private static (ushort Use, ushort Def) UseDef(Instruction insn, PlatformTable platform)
    {
        var op = insn.OpCode;
        ushort dst = Bit(insn.Dst), src = Bit(insn.Src);
        switch (op.Class)
        {
            case InstructionClass.Alu:
            case InstructionClass.Alu64:
                if (op.AluOperation == AluOperation.Mov)
                    return (op.Source == OperandSource.Register ? src : (ushort)0, dst);
                // A byte swap's source bit chooses big or little endian; negation has no operand: both read dst only.
                if (op.AluOperation is AluOperation.End or AluOperation.Neg)
                    return (dst, dst);
                return ((ushort)(dst | (op.Source == OperandSource.Register ? src : 0)), dst);
            case InstructionClass.Jmp:
            case InstructionClass.Jmp32:
                switch (op.JumpOperation)
                {
                    case JumpOperation.Exit:
                        return (1, 0);
                    case JumpOperation.Call:
                    {
                        ushort args = 0x3e; // r1-r5
                        if (insn.Src == 0 && platform.TryGetHelper((HelperId)insn.Immediate, out var proto))
                        {
                            args = 0;
                            for (int a = 0; a < proto.Arguments.Count; a++)
                                args |= (ushort)(1 << (a + 1));
                        }
                        return (args, 0x3f);
                    }
                    case JumpOperation.Ja:
                        return (0, 0);
                    default:
                        return ((ushort)(dst | (op.Source == OperandSource.Register ? src : 0)), 0);
                }
            case InstructionClass.Ld:
                if (insn.IsLoadImmediate64)
                    return (0, dst);
                // LD_ABS/IND read r6 (and src), clobber r0-r5.
                return ((ushort)(Bit(Register.R6) | (op.Mode == AccessMode.Ind ? src : 0)), 0x3f);
            case InstructionClass.Ldx:
                return (src, dst);
            case InstructionClass.St:
                return (dst, 0);
            default:
                if (op.Mode == AccessMode.Atomic)
                {
                    ushort u = (ushort)(dst | src);
                    if (insn.Immediate == (int)AtomicOperation.CmpXchg)
                        return ((ushort)(u | 1), 1);
                    return (u, (insn.Immediate & 1) != 0 ? src : (ushort)0);
                }
                return ((ushort)(dst | src), 0);
        }
    }
}

/// <summary>
/// Which 8-byte slots of a function's own stack frame may be read before being fully written from each instruction
/// on: the static counterpart of the kernel's stack-slot read marks. A slot dead at a prune point cannot influence
/// the rest of the path, so state comparison ignores it (the stack of a key built for one lookup and rebuilt for the
/// next no longer splits states). Stack pointers are followed by a forward pass that knows, per register, "fp plus
/// a constant", "not a pointer into this frame" or "unknown"; an access through an unknown pointer, a bpf-to-bpf call
/// or a callback given a stack pointer counts as reading every slot, so the result only ever over-approximates.
/// </summary>
internal static class StackLiveness
{
    public const ulong All = ulong.MaxValue;
    private const int NotFp = int.MinValue;   // not a pointer into this function's frame
    private const int Unknown = int.MaxValue; // may point anywhere in this frame

    /// <summary>Bit s set in result[i] when the slot at fp-512+8s may be read before written from instruction i on.</summary>
    public static ulong[] Compute(ProgramGraph graph, PlatformTable platform)
    {
        int n = graph.Count;
        var fp = PointersIntoFrame(graph, out var reached);
        var use = new ulong[n];
        var def = new ulong[n];
        for (int i = 0; i < n; i++)
            (use[i], def[i]) = reached[i] ? UseDef(graph[i], fp, i * Width, platform) : (0UL, 0UL);
        var liveIn = new ulong[n];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int i = n - 1; i >= 0; i--)
            {
                graph.SuccessorsOf(i, out int a, out int b);
                ulong liveOut = (a >= 0 ? liveIn[a] : 0) | (b >= 0 ? liveIn[b] : 0);
                ulong value = use[i] | (liveOut & ~def[i]);
                if (value != liveIn[i])
                {
                    liveIn[i] = value;
                    changed = true;
                }
            }
        }
        return liveIn;
    }

    /// <summary>Slots covering the bytes [from, to) relative to the frame pointer.</summary>
    private static ulong Slots(long from, long to)
    {
        from = Math.Max(from, -FrameSize);
        to = Math.Min(to, 0);
        if (from >= to)
            return 0;
        int first = (int)((from + FrameSize) / 8), last = (int)((to - 1 + FrameSize) / 8);
        ulong mask = 0;
        for (int s = first; s <= last; s++)
            mask |= 1UL << s;
        return mask;
    }

    private const int FrameSize = 512;

    private static (ulong Use, ulong Def) UseDef(Instruction insn, int[] fp, int at, PlatformTable platform)
    {
        var op = insn.OpCode;
        int Base(Register r) => fp[at + (int)r];
        ulong Read(int @base, int size) => @base == NotFp ? 0 : @base == Unknown ? All : Slots((long)@base + insn.Offset, (long)@base + insn.Offset + size);
        switch (op.Class)
        {
            case InstructionClass.Ldx:
                return (Read(Base(insn.Src), op.SizeInBytes), 0);
            case InstructionClass.St:
            case InstructionClass.Stx:
            {
                int b = Base(insn.Dst);
                if (op.Class == InstructionClass.Stx && op.Mode == AccessMode.Atomic)
                    return (Read(b, op.SizeInBytes), 0);
                if (b is NotFp or Unknown || op.SizeInBytes != 8 || ((long)b + insn.Offset) % 8 != 0)
                    return (0, 0);
                return (0, Slots((long)b + insn.Offset, (long)b + insn.Offset + 8));
            }
            case InstructionClass.Jmp when op.JumpOperation == JumpOperation.Call:
            {
                bool local = insn.Src == (Register)1;
                HelperPrototype? proto = null;
                if (insn.Src == 0)
                    platform.TryGetHelper((HelperId)insn.Immediate, out proto);
                int count = proto?.Arguments.Count ?? 5;
                ulong used = 0;
                for (int a = 0; a < count; a++)
                {
                    int b = fp[at + a + 1];
                    if (b == NotFp)
                        continue;
                    if (local || proto is null || b == Unknown || !IsPlainMemory(proto.Argument(a)))
                        return (All, 0);
                    used |= Slots(b, 0);
                }
                return (used, 0);
            }
            default:
                return (0, 0);
        }
    }

    private static bool IsPlainMemory(ArgumentKind kind) => kind is ArgumentKind.MapKey or ArgumentKind.MapValue
        or ArgumentKind.UninitMapValue or ArgumentKind.ReadableMemory or ArgumentKind.Memory
        or ArgumentKind.ReadableMemoryOrNull or ArgumentKind.WritableMemory or ArgumentKind.WritableFixedMemory;

    private const int Width = 16; // registers per instruction: a malformed register number cannot index past it

    /// <summary>Forward pass: per instruction, what each register is relative to this function's frame pointer
    /// before the instruction runs: registers of instruction i at [i * 16, i * 16 + 16); <paramref name="reached"/>
    /// false where no path from a function start leads.</summary>
    private static int[] PointersIntoFrame(ProgramGraph graph, out bool[] reached)
    {
        int n = graph.Count;
        var state = new int[n * Width];
        var seen = reached = new bool[n];
        var work = new Stack<int>();
        foreach (int start in graph.Functions)
        {
            var entry = state.AsSpan(start * Width, Width);
            entry.Fill(NotFp);
            entry[10] = 0;
            seen[start] = true;
            work.Push(start);
        }
        var after = new int[Width];
        while (work.Count > 0)
        {
            int i = work.Pop();
            state.AsSpan(i * Width, Width).CopyTo(after);
            Transfer(graph[i], after);
            graph.SuccessorsOf(i, out int a, out int b);
            Merge(a);
            Merge(b);

            void Merge(int s)
            {
                if (s < 0)
                    return;
                var existing = state.AsSpan(s * Width, Width);
                if (!seen[s])
                {
                    seen[s] = true;
                    after.CopyTo(existing);
                    work.Push(s);
                    return;
                }
                bool changed = false;
                for (int r = 0; r < Width; r++)
                {
                    if (existing[r] != after[r] && existing[r] != Unknown)
                    {
                        existing[r] = Unknown;
                        changed = true;
                    }
                }
                if (changed)
                    work.Push(s);
            }
        }
        return state;
    }

    private static void Transfer(Instruction insn, int[] regs)
    {
        var op = insn.OpCode;
        int dst = (int)insn.Dst, src = (int)insn.Src;
        switch (op.Class)
        {
            case InstructionClass.Alu64:
            {
                int d = regs[dst];
                bool immediate = op.Source == OperandSource.Immediate;
                int s = immediate ? NotFp : regs[src];
                switch (op.AluOperation)
                {
                    case AluOperation.Mov:
                        regs[dst] = immediate ? NotFp : insn.Offset != 0 ? (s == NotFp ? NotFp : Unknown) : s;
                        return;
                    case AluOperation.Add or AluOperation.Sub when immediate:
                        if (d is not (NotFp or Unknown))
                        {
                            long k = op.AluOperation == AluOperation.Add ? (long)d + insn.Immediate : (long)d - insn.Immediate;
                            regs[dst] = k is > -1_000_000 and < 1_000_000 ? (int)k : Unknown;
                        }
                        return;
                    case AluOperation.End or AluOperation.Neg:
                        regs[dst] = d == NotFp ? NotFp : Unknown;
                        return;
                    default:
                        regs[dst] = d == NotFp && s == NotFp ? NotFp : Unknown;
                        return;
                }
            }
            case InstructionClass.Alu:
                regs[dst] = NotFp; // 32-bit results are numbers
                return;
            case InstructionClass.Ldx:
                regs[dst] = op.SizeInBytes == 8 ? Unknown : NotFp;
                return;
            case InstructionClass.Ld:
                if (insn.IsLoadImmediate64)
                    regs[dst] = NotFp;
                else
                    for (int r = 0; r <= 5; r++)
                        regs[r] = NotFp;
                return;
            case InstructionClass.Stx when op.Mode == AccessMode.Atomic:
                if (insn.Immediate == (int)AtomicOperation.CmpXchg)
                    regs[0] = op.SizeInBytes == 8 ? Unknown : NotFp;
                else if ((insn.Immediate & 1) != 0)
                    regs[src] = op.SizeInBytes == 8 ? Unknown : NotFp;
                return;
            case InstructionClass.Jmp when op.JumpOperation == JumpOperation.Call:
                for (int r = 1; r <= 5; r++)
                    regs[r] = NotFp;
                // A subprogram cannot return a pointer to its own frame, but may return one it was given.
                regs[0] = insn.Src == (Register)1 ? Unknown : NotFp;
                return;
        }
    }
}
