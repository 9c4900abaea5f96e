using SharpBpf.Asm;

namespace SharpBpf.Vm;

/// <summary>
/// Refuses programs that may read a register before writing it, as the kernel's verifier does ("R3 !read_ok").
/// A forward must-be-written analysis over the control-flow graph: the set of registers written on every path,
/// met by intersection. Path-insensitive, so it is stricter than the kernel on code whose reads are guarded by the
/// same condition as the writes; it is therefore an option (<see cref="VmOptions.RequireInitializedRegisters"/>).
/// </summary>
internal static class RegisterInitialization
{
    private const ushort Arguments = 0b11_1110;  // r1-r5
    private const ushort R0 = 1;

    public static void Check(string program, DecodedInstruction[] code, int n, SortedSet<int> entries, ushort mainEntry)
    {
        var state = new ushort[n];
        var known = new bool[n];
        var work = new Stack<int>();
        foreach (var entry in entries)
        {
            // Subprograms receive their arguments in r1-r5; the frame pointer is always set.
            ushort initial = entry == 0 ? (ushort)(mainEntry | 1 << 10) : (ushort)(Arguments | 1 << 10);
            state[entry] = initial;
            known[entry] = true;
            work.Push(entry);
        }
        while (work.Count > 0)
        {
            int pc = work.Pop();
            ushort s = state[pc];
            var ins = code[pc];
            var (use, def, kill) = Effects(ins);
            ushort missing = (ushort)(use & ~s);
            if (missing != 0)
                throw new VmLoadException(program, pc, $"r{System.Numerics.BitOperations.TrailingZeroCount(missing)} is read before it is written");
            ushort after = (ushort)((s & ~kill) | def);
            void Flow(int target)
            {
                if (target >= n)
                    return;
                if (!known[target])
                {
                    known[target] = true;
                    state[target] = after;
                    work.Push(target);
                }
                else if ((state[target] & after) != state[target])
                {
                    state[target] &= after;
                    work.Push(target);
                }
            }
            switch (ins.Op)
            {
                case VmOp.Exit:
                    break;
                case VmOp.Jump:
                    Flow(ins.Offset);
                    break;
                default:
                    if (IsConditionalJump(ins.Op))
                        Flow(ins.Offset);
                    Flow(pc + 1);
                    break;
            }
        }
    }

    private static bool IsConditionalJump(byte op)
    {
        var cls = op & 7;
        if (cls is not (5 or 6))
            return false;
        int jop = op & 0xf0;
        return jop is not (0x00 or 0x80 or 0x90) && op is not (VmOp.TailCall or VmOp.LocalCall);
    }

    private static (ushort Use, ushort Def, ushort Kill) Effects(DecodedInstruction ins)
    {
        ushort D = (ushort)(1 << ins.Dst), S = (ushort)(1 << ins.Src);
        switch (ins.Op)
        {
            case VmOp.LoadImm64: return (0, D, 0);
            case VmOp.Jump: return (0, 0, 0);
            case VmOp.Exit: return (R0, 0, 0);
            case VmOp.CallHelper:
            case VmOp.TailCall:
            case VmOp.LocalCall:
                return (0, R0, Arguments);
            case VmOp.CallRegister: return (D, R0, Arguments);
            case VmOp.MovSx64From8: case VmOp.MovSx64From16: case VmOp.MovSx64From32:
            case VmOp.MovSx32From8: case VmOp.MovSx32From16:
                return (S, D, 0);
            case VmOp.Truncate16: case VmOp.Truncate32: case VmOp.Nop:
            case VmOp.Swap16: case VmOp.Swap32: case VmOp.Swap64:
                return (D, D, 0);
            case VmOp.SDiv32Imm: case VmOp.SDiv64Imm: case VmOp.SMod32Imm: case VmOp.SMod64Imm:
                return (D, D, 0);
            case VmOp.SDiv32Reg: case VmOp.SDiv64Reg: case VmOp.SMod32Reg: case VmOp.SMod64Reg:
                return ((ushort)(D | S), D, 0);
        }
        var cls = (InstructionClass)(ins.Op & 7);
        bool reg = (ins.Op & 0x08) != 0;
        switch (cls)
        {
            case InstructionClass.Alu:
            case InstructionClass.Alu64:
                if ((ins.Op & 0xf0) == (int)AluOperation.Mov)
                    return (reg ? S : (ushort)0, D, 0);
                if ((ins.Op & 0xf0) == (int)AluOperation.Neg)
                    return (D, D, 0);
                return (reg ? (ushort)(D | S) : D, D, 0);
            case InstructionClass.Jmp:
            case InstructionClass.Jmp32:
                return (reg ? (ushort)(D | S) : D, 0, 0);
            case InstructionClass.Ldx:
                return (S, D, 0);
            case InstructionClass.St:
                return (D, 0, 0);
            case InstructionClass.Stx:
                if ((ins.Op & 0xe0) == (int)AccessMode.Atomic)
                {
                    var aop = (AtomicOperation)ins.Imm;
                    if (aop == AtomicOperation.CmpXchg)
                        return ((ushort)(D | S | R0), R0, 0);
                    return ((ushort)(D | S), ((int)aop & 1) != 0 ? S : (ushort)0, 0);
                }
                return ((ushort)(D | S), 0, 0);
            default:
                return (0, 0, 0);
        }
    }
}
