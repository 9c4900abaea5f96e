using SharpBpf.Asm;

namespace SharpBpf.Verifier;

/// <summary>
/// Short assembly text for verifier messages, in the kernel log's C-like syntax ("r2 = *(u32 *)(r1 +0)"). The
/// project's disassembler (Asm/) is the full one; this only needs to name an instruction in a sentence.
/// </summary>
internal static class InstructionText
{
    public static string Format(Instruction insn)
    {
        var op = insn.OpCode;
        string dst = $"r{(int)insn.Dst}", src = $"r{(int)insn.Src}";
        string SizeName() => op.Size switch
        {
            AccessSize.Byte => "u8",
            AccessSize.Half => "u16",
            AccessSize.Word => "u32",
            _ => "u64",
        };
        string Off(short off) => off >= 0 ? $"+{off}" : $"{off}";
        switch (op.Class)
        {
            case InstructionClass.Alu:
            case InstructionClass.Alu64:
            {
                bool is64 = op.Class == InstructionClass.Alu64;
                string d = is64 ? dst : $"w{(int)insn.Dst}";
                string s = op.Source == OperandSource.Register ? (is64 ? src : $"w{(int)insn.Src}") : $"{insn.Immediate}";
                return op.AluOperation switch
                {
                    AluOperation.Neg => $"{d} = -{d}",
                    AluOperation.End => $"{d} = {(op.Source == OperandSource.Register ? "be" : is64 ? "bswap" : "le")}{insn.Immediate} {d}",
                    AluOperation.Mov when insn.Offset != 0 => $"{d} = (s{insn.Offset}){s}",
                    AluOperation.Mov => $"{d} = {s}",
                    _ => $"{d} {AluSymbol(op.AluOperation, insn.Offset != 0)}= {s}",
                };
            }
            case InstructionClass.Jmp:
            case InstructionClass.Jmp32:
            {
                var j = op.JumpOperation;
                if (j == JumpOperation.Exit)
                    return "exit";
                if (j == JumpOperation.Call)
                    return insn.Src == (Register)CallKind.Local ? $"call pc{Off((short)insn.Immediate)}" : $"call {insn.Immediate}";
                if (j == JumpOperation.Ja)
                    return op.Class == InstructionClass.Jmp32 ? $"gotol {Off((short)insn.Immediate)}" : $"goto {Off(insn.Offset)}";
                bool is32 = op.Class == InstructionClass.Jmp32;
                string l = is32 ? $"w{(int)insn.Dst}" : dst;
                string r = op.Source == OperandSource.Register ? (is32 ? $"w{(int)insn.Src}" : src) : $"{insn.Immediate}";
                return $"if {l} {JumpSymbol(j)} {r} goto {Off(insn.Offset)}";
            }
            case InstructionClass.Ld:
                if (insn.IsLoadImmediate64)
                {
                    return (LoadImmediateSource)insn.Src switch
                    {
                        LoadImmediateSource.MapFd => $"{dst} = map[{insn.Reference ?? "?"}] ll",
                        LoadImmediateSource.MapValue => $"{dst} = map_value[{insn.Reference ?? "?"}]+{insn.Constant >> 32} ll",
                        LoadImmediateSource.Function => $"{dst} = func pc{Off((short)insn.Immediate)} ll",
                        _ => $"{dst} = {insn.Constant} ll",
                    };
                }
                return op.Mode == AccessMode.Abs
                    ? $"r0 = *({SizeName()} *)skb[{insn.Immediate}]"
                    : $"r0 = *({SizeName()} *)skb[{src} + {insn.Immediate}]";
            case InstructionClass.Ldx:
                return $"{dst} = *({(op.Mode == AccessMode.MemSx ? "s" + SizeName()[1..] : SizeName())} *)({src} {Off(insn.Offset)})";
            case InstructionClass.St:
                return $"*({SizeName()} *)({dst} {Off(insn.Offset)}) = {insn.Immediate}";
            default:
                if (op.Mode == AccessMode.Atomic)
                    return $"lock *({SizeName()} *)({dst} {Off(insn.Offset)}) {(AtomicOperation)insn.Immediate} {src}";
                return $"*({SizeName()} *)({dst} {Off(insn.Offset)}) = {src}";
        }
    }

    private static string AluSymbol(AluOperation op, bool signed) => op switch
    {
        AluOperation.Add => "+",
        AluOperation.Sub => "-",
        AluOperation.Mul => "*",
        AluOperation.Div => signed ? "s/" : "/",
        AluOperation.Mod => signed ? "s%" : "%",
        AluOperation.Or => "|",
        AluOperation.And => "&",
        AluOperation.Lsh => "<<",
        AluOperation.Rsh => ">>",
        AluOperation.Arsh => "s>>",
        AluOperation.Xor => "^",
        _ => "?",
    };

    private static string JumpSymbol(JumpOperation op) => op switch
    {
        JumpOperation.Jeq => "==",
        JumpOperation.Jne => "!=",
        JumpOperation.Jgt => ">",
        JumpOperation.Jge => ">=",
        JumpOperation.Jlt => "<",
        JumpOperation.Jle => "<=",
        JumpOperation.Jsgt => "s>",
        JumpOperation.Jsge => "s>=",
        JumpOperation.Jslt => "s<",
        JumpOperation.Jsle => "s<=",
        JumpOperation.Jset => "&",
        _ => "?",
    };
}
