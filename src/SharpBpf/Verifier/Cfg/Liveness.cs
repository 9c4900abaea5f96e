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
                ushort liveOut = 0;
                foreach (int s in graph.Successors(i))
                    liveOut |= liveIn[s];
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
