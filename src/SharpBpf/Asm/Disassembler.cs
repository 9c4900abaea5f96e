using System.Globalization;
using System.Text;

namespace SharpBpf.Asm;

/// <summary>The text syntax the disassembler writes.</summary>
public enum AsmSyntax
{
    /// <summary>The C-like syntax <c>llvm-objdump -d</c> prints for BPF: <c>r0 = *(u32 *)(r1 + 8)</c>, <c>if r1 &gt; 5 goto +3</c>.</summary>
    Llvm,
    /// <summary>The bpf_conformance assembler syntax <see cref="Assembler"/> reads: <c>ldxw %r0, [%r1+8]</c>.</summary>
    Conformance,
}

/// <summary>
/// Turns instructions into text, reading operand forms from <see cref="IsaTable"/>. The LLVM syntax matches
/// llvm-objdump (version 14 for the v1-v3 instructions, the later LLVM spellings for v4: <c>s/=</c>, <c>s%=</c>,
/// <c>(s8)</c> movsx, <c>*(s8 *)</c> loads, <c>bswap16</c>, <c>gotol</c>, <c>*(u32 *)(r1 + 0) = 5</c> for
/// stores of immediates, and the alu32 spellings of the 32-bit atomics other than lock add). The conformance syntax reassembles to the same instructions.
/// </summary>
public static class Disassembler
{
    /// <summary>One instruction as text. Invalid instructions print as <c>&lt;invalid ...&gt;</c> rather than throwing.</summary>
    public static string Format(in Instruction insn, AsmSyntax syntax = AsmSyntax.Llvm)
    {
        var entry = IsaTable.Find(insn);
        if (entry is null)
            return $"<invalid opcode {insn.OpCode}: dst {(byte)insn.Dst} src {(byte)insn.Src} off {insn.Offset} imm {insn.Immediate}>";
        return syntax == AsmSyntax.Llvm ? FormatLlvm(entry, insn) : FormatConformance(entry, insn);
    }

    /// <summary>Every instruction, one a line, without addresses.</summary>
    public static string Disassemble(IReadOnlyList<Instruction> instructions, AsmSyntax syntax = AsmSyntax.Llvm)
    {
        var sb = new StringBuilder();
        foreach (var insn in instructions)
            sb.Append(Format(insn, syntax)).Append('\n');
        return sb.ToString();
    }

    /// <summary>
    /// An llvm-objdump style listing: raw slot index, the instruction bytes (16 for an lddw) and the text.
    /// <code>       2:	61 10 08 00 00 00 00 00	r0 = *(u32 *)(r1 + 8)</code>
    /// </summary>
    public static string Listing(IReadOnlyList<Instruction> instructions, AsmSyntax syntax = AsmSyntax.Llvm)
    {
        var sb = new StringBuilder();
        int slot = 0;
        foreach (var insn in instructions)
        {
            var bytes = InstructionCodec.Encode([insn]);
            sb.Append(slot.ToString(CultureInfo.InvariantCulture).PadLeft(8)).Append(":\t");
            sb.AppendJoin(' ', bytes.Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
            sb.Append('\t').Append(Format(insn, syntax)).Append('\n');
            slot += insn.RawSize;
        }
        return sb.ToString();
    }

    private static string D(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Rel(long value) => value >= 0 ? "+" + D(value) : D(value);

    private static string LlvmMem(string type, Register reg, short offset) =>
        $"*({type} *)(r{(byte)reg} {(offset < 0 ? "-" : "+")} {D(Math.Abs((int)offset))})";

    private static string SizeType(OpCode op, bool signed = false) => (signed ? "s" : "u") + (op.SizeInBytes * 8).ToString(CultureInfo.InvariantCulture);

    private static readonly Dictionary<AluOperation, string> AluOperators = new()
    {
        [AluOperation.Add] = "+=", [AluOperation.Sub] = "-=", [AluOperation.Mul] = "*=", [AluOperation.Div] = "/=",
        [AluOperation.Or] = "|=", [AluOperation.And] = "&=", [AluOperation.Lsh] = "<<=", [AluOperation.Rsh] = ">>=",
        [AluOperation.Mod] = "%=", [AluOperation.Xor] = "^=", [AluOperation.Mov] = "=", [AluOperation.Arsh] = "s>>=",
    };

    private static readonly Dictionary<JumpOperation, string> JumpOperators = new()
    {
        [JumpOperation.Jeq] = "==", [JumpOperation.Jgt] = ">", [JumpOperation.Jge] = ">=", [JumpOperation.Jset] = "&",
        [JumpOperation.Jne] = "!=", [JumpOperation.Jsgt] = "s>", [JumpOperation.Jsge] = "s>=", [JumpOperation.Jlt] = "<",
        [JumpOperation.Jle] = "<=", [JumpOperation.Jslt] = "s<", [JumpOperation.Jsle] = "s<=",
    };

    private static string FormatLlvm(IsaEntry entry, in Instruction insn)
    {
        var op = insn.OpCode;
        bool alu32 = op.Class is InstructionClass.Alu or InstructionClass.Jmp32;
        string p = alu32 ? "w" : "r";
        string dst = p + (byte)insn.Dst;
        string src = p + (byte)insn.Src;
        switch (entry.Form)
        {
            case OperandForm.None:
                return "exit";
            case OperandForm.Dst when op.AluOperation == AluOperation.Neg:
                return $"{dst} = -{dst}";
            case OperandForm.Dst:
                // le16/be32/bswap64: always printed on the 64-bit register.
                return $"r{(byte)insn.Dst} = {entry.Mnemonic} r{(byte)insn.Dst}";
            case OperandForm.DstImm:
            {
                string oper = AluOperators[op.AluOperation];
                if (insn.Offset == 1)
                    oper = "s" + oper; // sdiv, smod
                return $"{dst} {oper} {D(insn.Immediate)}";
            }
            case OperandForm.DstSrc:
            {
                if (op.AluOperation == AluOperation.Mov && insn.Offset != 0)
                    return $"{dst} = (s{D(insn.Offset)}){src}";
                string oper = AluOperators[op.AluOperation];
                if (insn.Offset == 1)
                    oper = "s" + oper;
                return $"{dst} {oper} {src}";
            }
            case OperandForm.DstImm64:
            {
                if (insn.Src == 0)
                    return $"r{(byte)insn.Dst} = {D(insn.Constant)} ll";
                // LLVM prints the pseudo forms as ld_pseudo dst, src, imm; we add the second imm when it is set.
                string text = $"ld_pseudo r{(byte)insn.Dst}, {(byte)insn.Src}, {D(insn.Immediate)}";
                int high = (int)(insn.Constant >> 32);
                return high != 0 ? $"{text}, {D(high)}" : text;
            }
            case OperandForm.DstMem:
                return $"r{(byte)insn.Dst} = {LlvmMem(SizeType(op, op.Mode == AccessMode.MemSx), insn.Src, insn.Offset)}";
            case OperandForm.MemImm:
                return $"{LlvmMem(SizeType(op), insn.Dst, insn.Offset)} = {D(insn.Immediate)}";
            case OperandForm.MemSrc when op.Mode == AccessMode.Atomic:
                return FormatAtomicLlvm(insn);
            case OperandForm.MemSrc:
                return $"{LlvmMem(SizeType(op), insn.Dst, insn.Offset)} = r{(byte)insn.Src}";
            case OperandForm.Target:
                return $"goto {Rel(insn.Offset)}";
            case OperandForm.TargetImm:
                return $"gotol {Rel(insn.Immediate)}";
            case OperandForm.DstImmTarget:
                return $"if {dst} {JumpOperators[op.JumpOperation]} {D(insn.Immediate)} goto {Rel(insn.Offset)}";
            case OperandForm.DstSrcTarget:
                return $"if {dst} {JumpOperators[op.JumpOperation]} {src} goto {Rel(insn.Offset)}";
            case OperandForm.Helper:
            case OperandForm.LocalCall:
            case OperandForm.KernelFunction:
                return $"call {D(insn.Immediate)}";
            case OperandForm.RegisterCall:
                return $"callx r{(byte)insn.Dst}";
            case OperandForm.AbsImm:
                return $"r0 = *({SizeType(op)} *)skb[{D(insn.Immediate)}]";
            case OperandForm.IndSrcImm:
                return insn.Immediate == 0
                    ? $"r0 = *({SizeType(op)} *)skb[r{(byte)insn.Src}]"
                    : $"r0 = *({SizeType(op)} *)skb[r{(byte)insn.Src} + {D(insn.Immediate)}]";
            default:
                throw new System.Diagnostics.UnreachableException($"operand form {entry.Form}");
        }
    }

    private static string FormatAtomicLlvm(in Instruction insn)
    {
        bool is32 = insn.OpCode.Size == AccessSize.Word;
        string type = is32 ? "u32" : "u64";
        // llvm-objdump-14 (no alu32) prints the one 32-bit atomic it decodes, lock add, on an r register; the
        // other 32-bit atomics only exist in LLVM's alu32 mode, which prints them on w registers.
        string p = is32 && insn.Immediate != (int)AtomicOperation.Add ? "w" : "r";
        string src = p + (byte)insn.Src;
        string addr = $"r{(byte)insn.Dst} {(insn.Offset < 0 ? "-" : "+")} {D(Math.Abs((int)insn.Offset))}";
        var operation = (AtomicOperation)insn.Immediate;
        return operation switch
        {
            AtomicOperation.Add => $"lock *({type} *)({addr}) += {src}",
            AtomicOperation.Or => $"lock *({type} *)({addr}) |= {src}",
            AtomicOperation.And => $"lock *({type} *)({addr}) &= {src}",
            AtomicOperation.Xor => $"lock *({type} *)({addr}) ^= {src}",
            AtomicOperation.FetchAdd => $"{src} = atomic_fetch_add(({type} *)({addr}), {src})",
            AtomicOperation.FetchOr => $"{src} = atomic_fetch_or(({type} *)({addr}), {src})",
            AtomicOperation.FetchAnd => $"{src} = atomic_fetch_and(({type} *)({addr}), {src})",
            AtomicOperation.FetchXor => $"{src} = atomic_fetch_xor(({type} *)({addr}), {src})",
            AtomicOperation.Xchg => is32 ? $"{src} = xchg32_32({addr}, {src})" : $"{src} = xchg_64({addr}, {src})",
            AtomicOperation.CmpXchg => is32 ? $"w0 = cmpxchg32_32({addr}, w0, {src})" : $"r0 = cmpxchg_64({addr}, r0, {src})",
            _ => throw new System.Diagnostics.UnreachableException($"atomic operation {insn.Immediate}"),
        };
    }

    private static string AsmMem(Register reg, short offset) =>
        offset == 0 ? $"[%r{(byte)reg}]" : $"[%r{(byte)reg}{(offset < 0 ? "-" : "+")}{D(Math.Abs((int)offset))}]";

    private static string FormatConformance(IsaEntry entry, in Instruction insn)
    {
        string dst = "%r" + (byte)insn.Dst;
        string src = "%r" + (byte)insn.Src;
        return entry.Form switch
        {
            OperandForm.None => entry.Mnemonic,
            OperandForm.Dst => $"{entry.Mnemonic} {dst}",
            OperandForm.DstImm => $"{entry.Mnemonic} {dst}, {D(insn.Immediate)}",
            OperandForm.DstSrc => $"{entry.Mnemonic} {dst}, {src}",
            OperandForm.DstImm64 when insn.Src == 0 => $"lddw {dst}, 0x{insn.Constant:x}",
            OperandForm.DstImm64 => $"lddw {dst}, {Assembler.LoadImmediateKeyword((LoadImmediateSource)insn.Src)} 0x{insn.Constant:x}",
            OperandForm.DstMem => $"{entry.Mnemonic} {dst}, {AsmMem(insn.Src, insn.Offset)}",
            OperandForm.MemImm => $"{entry.Mnemonic} {AsmMem(insn.Dst, insn.Offset)}, {D(insn.Immediate)}",
            OperandForm.MemSrc => $"{entry.Mnemonic} {AsmMem(insn.Dst, insn.Offset)}, {src}",
            OperandForm.Target => $"ja {Rel(insn.Offset)}",
            OperandForm.TargetImm => $"ja32 {Rel(insn.Immediate)}",
            OperandForm.DstImmTarget => $"{entry.Mnemonic} {dst}, {D(insn.Immediate)}, {Rel(insn.Offset)}",
            OperandForm.DstSrcTarget => $"{entry.Mnemonic} {dst}, {src}, {Rel(insn.Offset)}",
            OperandForm.Helper => $"call {D(insn.Immediate)}",
            OperandForm.LocalCall => $"call local {Rel(insn.Immediate)}",
            OperandForm.KernelFunction => $"call kfunc {D(insn.Immediate)}",
            OperandForm.RegisterCall => $"call {dst}",
            OperandForm.AbsImm => $"{entry.Mnemonic} {D(insn.Immediate)}",
            OperandForm.IndSrcImm => $"{entry.Mnemonic} {src}, {D(insn.Immediate)}",
            _ => throw new System.Diagnostics.UnreachableException($"operand form {entry.Form}"),
        };
    }
}
