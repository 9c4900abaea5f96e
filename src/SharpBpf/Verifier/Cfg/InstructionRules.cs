using SharpBpf.Asm;

namespace SharpBpf.Verifier.Cfg;

/// <summary>
/// Per-instruction encoding rules: known opcodes, valid registers, reserved fields zero, as the kernel's do_check
/// enforces them ("BPF_ALU uses reserved fields", "unknown opcode"). The ISA validator in Asm/ is the general one;
/// these are the rules the kernel's verifier applies, with its wording kept recognisable.
/// </summary>
internal static class InstructionRules
{
    public readonly record struct Fault(string Message, string? Hint = null);

    public static Fault? Check(Instruction insn)
    {
        var op = insn.OpCode;
        if ((byte)insn.Dst > 10)
            return new Fault($"register r{(int)insn.Dst} does not exist (registers are r0-r10)");
        if ((byte)insn.Src > 10 && !(op.Class is InstructionClass.Ld or InstructionClass.Jmp))
            return new Fault($"register r{(int)insn.Src} does not exist (registers are r0-r10)");
        switch (op.Class)
        {
            case InstructionClass.Alu:
            case InstructionClass.Alu64:
                return CheckAlu(insn);
            case InstructionClass.Jmp:
            case InstructionClass.Jmp32:
                return CheckJump(insn);
            case InstructionClass.Ld:
                if (insn.IsLoadImmediate64)
                {
                    if (insn.Offset != 0 || (byte)insn.Src > 6)
                        return new Fault("invalid lddw: reserved fields in use");
                    if (insn.Src is (Register)LoadImmediateSource.MapIndex or (Register)LoadImmediateSource.MapIndexValue)
                        return new Fault($"lddw with src={(int)insn.Src} (fd-array maps) is not supported by this verifier");
                    return null;
                }
                if (op.Mode is AccessMode.Abs or AccessMode.Ind)
                {
                    if (op.Size == AccessSize.DoubleWord || insn.Offset != 0 || insn.Dst != 0 || (op.Mode == AccessMode.Abs && insn.Src != 0))
                        return new Fault("legacy packet load (LD_ABS/LD_IND) uses reserved fields");
                    return null;
                }
                return new Fault($"unknown opcode 0x{op.Value:x2}");
            case InstructionClass.Ldx:
                if (op.Mode is not (AccessMode.Mem or AccessMode.MemSx) || (op.Mode == AccessMode.MemSx && op.Size == AccessSize.DoubleWord))
                    return new Fault($"unknown opcode 0x{op.Value:x2}");
                if (insn.Immediate != 0)
                    return new Fault("load (LDX) uses reserved fields: imm must be 0");
                return null;
            case InstructionClass.St:
                if (op.Mode != AccessMode.Mem)
                    return new Fault($"unknown opcode 0x{op.Value:x2}");
                if (insn.Src != 0)
                    return new Fault("store of an immediate (ST) uses reserved fields: src must be 0");
                return null;
            default: // Stx
                if (op.Mode == AccessMode.Mem)
                    return insn.Immediate != 0 ? new Fault("store (STX) uses reserved fields: imm must be 0") : null;
                if (op.Mode == AccessMode.Atomic)
                {
                    if (op.Size is not (AccessSize.Word or AccessSize.DoubleWord))
                        return new Fault("atomic operations work on 32- or 64-bit words only");
                    if (!Enum.IsDefined((AtomicOperation)insn.Immediate))
                        return new Fault($"unknown atomic operation 0x{insn.Immediate:x}");
                    return null;
                }
                return new Fault($"unknown opcode 0x{op.Value:x2}");
        }
    }

    private static Fault? CheckAlu(Instruction insn)
    {
        var op = insn.OpCode;
        bool is64 = op.Class == InstructionClass.Alu64;
        var alu = op.AluOperation;
        if ((byte)alu > 0xd0)
            return new Fault($"unknown opcode 0x{op.Value:x2}");
        if (alu == AluOperation.End)
        {
            if (insn.Src != 0 || insn.Offset != 0 || insn.Immediate is not (16 or 32 or 64) || (is64 && op.Source != 0))
                return new Fault("byte swap (END) uses reserved fields or a size other than 16, 32, 64");
            return null;
        }
        if (alu == AluOperation.Neg)
        {
            if (op.Source != 0 || insn.Src != 0 || insn.Offset != 0 || insn.Immediate != 0)
                return new Fault("negation (NEG) uses reserved fields");
            return null;
        }
        bool offsetOk = insn.Offset == 0
            || (alu is AluOperation.Div or AluOperation.Mod && insn.Offset == 1)
            || (alu == AluOperation.Mov && (insn.Offset is 8 or 16 || (is64 && insn.Offset == 32)) && op.Source == OperandSource.Register);
        if (!offsetOk)
            return new Fault($"ALU instruction uses reserved fields: offset {insn.Offset}");
        if (op.Source == OperandSource.Immediate && insn.Src != 0)
            return new Fault("ALU instruction with an immediate operand uses reserved fields: src must be 0");
        if (op.Source == OperandSource.Register && insn.Immediate != 0)
            return new Fault("ALU instruction with a register operand uses reserved fields: imm must be 0");
        if (op.Source == OperandSource.Immediate && alu is AluOperation.Lsh or AluOperation.Rsh or AluOperation.Arsh
            && (uint)insn.Immediate >= (is64 ? 64u : 32u))
            return new Fault($"invalid shift by {insn.Immediate}: the amount must be below {(is64 ? 64 : 32)}");
        if (insn.Dst == Register.R10)
            return new Fault("r10 (the frame pointer) is read-only", "copy r10 to another register and change the copy");
        return null;
    }

    private static Fault? CheckJump(Instruction insn)
    {
        var op = insn.OpCode;
        var j = op.JumpOperation;
        if ((byte)j > 0xd0)
            return new Fault($"unknown opcode 0x{op.Value:x2}");
        bool is32 = op.Class == InstructionClass.Jmp32;
        switch (j)
        {
            case JumpOperation.Exit:
                if (is32 || op.Source != 0 || insn.Src != 0 || insn.Dst != 0 || insn.Offset != 0 || insn.Immediate != 0)
                    return new Fault("exit uses reserved fields");
                return null;
            case JumpOperation.Call:
                if (is32 || op.Source != 0 || insn.Dst != 0 || insn.Offset != 0 || (byte)insn.Src > 2)
                    return new Fault("call uses reserved fields");
                return null;
            case JumpOperation.Ja:
                if (op.Source != 0 || insn.Src != 0 || insn.Dst != 0 || (is32 ? insn.Offset != 0 : insn.Immediate != 0))
                    return new Fault("goto uses reserved fields");
                return null;
            default:
                if (op.Source == OperandSource.Immediate && insn.Src != 0)
                    return new Fault("conditional jump with an immediate operand uses reserved fields: src must be 0");
                if (op.Source == OperandSource.Register && insn.Immediate != 0)
                    return new Fault("conditional jump with a register operand uses reserved fields: imm must be 0");
                return null;
        }
    }
}
