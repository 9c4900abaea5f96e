using System.Globalization;
using SharpBpf.Asm;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// A small assembler for verifier test cases, in the bpf_conformance syntax (<c>mov r0, 1</c>,
/// <c>ldxw r2, [r1+0]</c>, <c>jgt r3, r2, +4</c>) with three additions that make cases readable: labels
/// (<c>out:</c> and <c>jgt r3, r2, out</c>), map references (<c>lddw r1, map:counters</c>,
/// <c>lddw r1, mapvalue:.rodata+4</c>) and local calls or function addresses by label (<c>call local:f</c>, kernel functions by name: <c>call kfunc:bpf_cast_to_kern_ctx</c>,
/// <c>lddw r2, func:cb</c>). It stays in the tests: the project's assembler (Asm/) is the general one.
/// </summary>
public static class CaseAssembler
{
    private static readonly Dictionary<string, AluOperation> AluOps = new()
    {
        ["add"] = AluOperation.Add, ["sub"] = AluOperation.Sub, ["mul"] = AluOperation.Mul, ["div"] = AluOperation.Div,
        ["or"] = AluOperation.Or, ["and"] = AluOperation.And, ["lsh"] = AluOperation.Lsh, ["rsh"] = AluOperation.Rsh,
        ["neg"] = AluOperation.Neg, ["mod"] = AluOperation.Mod, ["xor"] = AluOperation.Xor, ["mov"] = AluOperation.Mov,
        ["arsh"] = AluOperation.Arsh, ["sdiv"] = AluOperation.Div, ["smod"] = AluOperation.Mod,
    };

    private static readonly Dictionary<string, JumpOperation> JumpOps = new()
    {
        ["jeq"] = JumpOperation.Jeq, ["jgt"] = JumpOperation.Jgt, ["jge"] = JumpOperation.Jge, ["jset"] = JumpOperation.Jset,
        ["jne"] = JumpOperation.Jne, ["jsgt"] = JumpOperation.Jsgt, ["jsge"] = JumpOperation.Jsge, ["jlt"] = JumpOperation.Jlt,
        ["jle"] = JumpOperation.Jle, ["jslt"] = JumpOperation.Jslt, ["jsle"] = JumpOperation.Jsle,
    };

    private static readonly Dictionary<string, AccessSize> Sizes = new()
    {
        ["b"] = AccessSize.Byte, ["h"] = AccessSize.Half, ["w"] = AccessSize.Word, ["dw"] = AccessSize.DoubleWord,
    };

    public static List<Instruction> Assemble(string text)
    {
        var lines = new List<(int LineNumber, string Text)>();
        int number = 0;
        foreach (var raw in text.Split('\n'))
        {
            number++;
            var line = raw;
            foreach (var marker in new[] { "#", "//", ";" })
            {
                int at = line.IndexOf(marker, StringComparison.Ordinal);
                if (at >= 0)
                    line = line[..at];
            }
            line = line.Trim();
            if (line.Length > 0)
                lines.Add((number, line));
        }
        // First pass: label -> raw slot index.
        var labels = new Dictionary<string, int>();
        int slot = 0;
        foreach (var (_, line) in lines)
        {
            if (line.EndsWith(':'))
            {
                labels[line[..^1]] = slot;
                continue;
            }
            slot += line.StartsWith("lddw", StringComparison.Ordinal) ? 2 : 1;
        }
        var result = new List<Instruction>();
        slot = 0;
        foreach (var (lineNumber, line) in lines)
        {
            if (line.EndsWith(':'))
                continue;
            try
            {
                var insn = Parse(line, slot, labels);
                result.Add(insn);
                slot += insn.RawSize;
            }
            catch (FormatException e)
            {
                throw new FormatException($"line {lineNumber}: '{line}': {e.Message}");
            }
        }
        return result;
    }

    private static Instruction Parse(string line, int slot, Dictionary<string, int> labels)
    {
        int space = line.IndexOf(' ');
        string mnemonic = space < 0 ? line : line[..space];
        var operands = space < 0 ? [] : line[(space + 1)..].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

        if (mnemonic == "exit")
            return new Instruction(new OpCode(0x95), 0, 0, 0, 0);
        if (mnemonic == "call")
        {
            if (operands[0].StartsWith("local:", StringComparison.Ordinal))
                return new Instruction(new OpCode(0x85), 0, (Register)CallKind.Local, 0, labels[operands[0][6..]] - slot - 1);
            if (operands[0].StartsWith("kfunc:", StringComparison.Ordinal))
                return new Instruction(new OpCode(0x85), 0, (Register)CallKind.Kfunc, 0, 0) { Reference = operands[0][6..] };
            return new Instruction(new OpCode(0x85), 0, 0, 0, Number(operands[0]));
        }
        if (mnemonic == "ja")
            return new Instruction(new OpCode(0x05), 0, 0, (short)Target(operands[0], slot, labels), 0);
        if (mnemonic == "lddw")
        {
            var dst = Reg(operands[0]);
            string value = operands[1];
            if (value.StartsWith("map:", StringComparison.Ordinal))
                return new Instruction(new OpCode(0x18), dst, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = value[4..] };
            if (value.StartsWith("mapvalue:", StringComparison.Ordinal))
            {
                var spec = value[9..];
                int plus = spec.LastIndexOf('+');
                long offset = plus > 0 ? long.Parse(spec[(plus + 1)..], CultureInfo.InvariantCulture) : 0;
                string name = plus > 0 ? spec[..plus] : spec;
                return new Instruction(new OpCode(0x18), dst, (Register)LoadImmediateSource.MapValue, 0, offset << 32) { Reference = name };
            }
            if (value.StartsWith("func:", StringComparison.Ordinal))
                return new Instruction(new OpCode(0x18), dst, (Register)LoadImmediateSource.Function, 0, labels[value[5..]] - slot - 1);
            return new Instruction(new OpCode(0x18), dst, 0, 0, Number(value));
        }

        // Byte swaps: be16, le32, bswap64.
        foreach (var (prefix, cls, source) in new[] { ("be", InstructionClass.Alu, OperandSource.Register), ("le", InstructionClass.Alu, OperandSource.Immediate), ("bswap", InstructionClass.Alu64, OperandSource.Immediate) })
        {
            if (mnemonic.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(mnemonic[prefix.Length..], out int bits))
                return new Instruction(OpCode.Alu(cls, AluOperation.End, source), Reg(operands[0]), 0, 0, bits);
        }

        // Loads and stores: ldxw dst, [src+off]; stw [dst+off], imm; stxdw [dst+off], src; xadddw [dst+off], src.
        foreach (var (prefix, cls) in new[] { ("ldxs", InstructionClass.Ldx), ("ldx", InstructionClass.Ldx), ("stx", InstructionClass.Stx), ("st", InstructionClass.St), ("xadd", InstructionClass.Stx) })
        {
            if (!mnemonic.StartsWith(prefix, StringComparison.Ordinal) || !Sizes.TryGetValue(mnemonic[prefix.Length..], out var size))
                continue;
            var mode = prefix switch { "ldxs" => AccessMode.MemSx, "xadd" => AccessMode.Atomic, _ => AccessMode.Mem };
            var op = OpCode.Memory(cls, mode, size);
            if (cls == InstructionClass.Ldx)
            {
                var (baseReg, off) = MemoryOperand(operands[1]);
                return new Instruction(op, Reg(operands[0]), baseReg, off, 0);
            }
            var (dstReg, dstOff) = MemoryOperand(operands[0]);
            if (cls == InstructionClass.St)
                return new Instruction(op, dstReg, 0, dstOff, Number(operands[1]));
            return new Instruction(op, dstReg, Reg(operands[1]), dstOff, prefix == "xadd" ? (int)AtomicOperation.Add : 0);
        }

        // Jumps: jgt r1, r2|imm, +off|label (32 suffix for JMP32).
        string baseName = mnemonic.EndsWith("32", StringComparison.Ordinal) ? mnemonic[..^2] : mnemonic;
        bool wide = !mnemonic.EndsWith("32", StringComparison.Ordinal);
        if (JumpOps.TryGetValue(baseName, out var jump))
        {
            var cls = wide ? InstructionClass.Jmp : InstructionClass.Jmp32;
            int offset = Target(operands[2], slot, labels);
            if (IsRegister(operands[1]))
                return new Instruction(OpCode.Jump(cls, jump, OperandSource.Register), Reg(operands[0]), Reg(operands[1]), (short)offset, 0);
            return new Instruction(OpCode.Jump(cls, jump, OperandSource.Immediate), Reg(operands[0]), 0, (short)offset, Number(operands[1]));
        }

        // ALU: add r1, r2|imm (32 suffix for 32-bit); movsx8/16/32 for sign-extending moves.
        if (mnemonic.StartsWith("movsx", StringComparison.Ordinal))
        {
            int bits = int.Parse(mnemonic[5..], CultureInfo.InvariantCulture);
            return new Instruction(OpCode.Alu(InstructionClass.Alu64, AluOperation.Mov, OperandSource.Register), Reg(operands[0]), Reg(operands[1]), (short)bits, 0);
        }
        if (AluOps.TryGetValue(baseName, out var alu))
        {
            var cls = wide ? InstructionClass.Alu64 : InstructionClass.Alu;
            short signedOffset = (short)(baseName is "sdiv" or "smod" ? 1 : 0);
            if (alu == AluOperation.Neg)
                return new Instruction(OpCode.Alu(cls, alu, OperandSource.Immediate), Reg(operands[0]), 0, 0, 0);
            if (IsRegister(operands[1]))
                return new Instruction(OpCode.Alu(cls, alu, OperandSource.Register), Reg(operands[0]), Reg(operands[1]), signedOffset, 0);
            return new Instruction(OpCode.Alu(cls, alu, OperandSource.Immediate), Reg(operands[0]), 0, signedOffset, Number(operands[1]));
        }
        throw new FormatException($"unknown mnemonic '{mnemonic}'");
    }

    private static bool IsRegister(string s) => s.Length >= 2 && s[0] == 'r' && char.IsDigit(s[1]);

    private static Register Reg(string s)
    {
        if (!IsRegister(s))
            throw new FormatException($"'{s}' is not a register");
        return (Register)int.Parse(s[1..], CultureInfo.InvariantCulture);
    }

    private static long Number(string s)
    {
        s = s.Trim();
        bool negative = s.StartsWith('-');
        if (negative)
            s = s[1..];
        long value = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? (long)ulong.Parse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : long.Parse(s, CultureInfo.InvariantCulture);
        return negative ? -value : value;
    }

    private static int Target(string s, int slot, Dictionary<string, int> labels)
    {
        if (labels.TryGetValue(s, out int target))
            return target - slot - 1;
        return (int)Number(s.TrimStart('+'));
    }

    private static (Register Reg, short Offset) MemoryOperand(string s)
    {
        s = s.Trim().TrimStart('[').TrimEnd(']');
        int sign = s.IndexOfAny(['+', '-'], 1);
        if (sign < 0)
            return (Reg(s), 0);
        return (Reg(s[..sign].Trim()), (short)Number(s[sign..].Replace("+", "")));
    }
}
