using System.Collections.Frozen;

namespace SharpBpf.Asm;

/// <summary>ISA versions as the kernel and LLVM (-mcpu=v1..v4) name them: the first version an opcode appears in.</summary>
public enum IsaVersion
{
    /// <summary>The original eBPF set (incl. the legacy packet loads and, as LLVM has it, the 64-bit atomics).</summary>
    V1 = 1,
    /// <summary>Adds jlt/jle/jslt/jsle.</summary>
    V2 = 2,
    /// <summary>Adds alu32 use, the JMP32 class and the 32-bit atomics beyond lock add.</summary>
    V3 = 3,
    /// <summary>Adds sdiv/smod, movsx, sign-extending loads, bswap, ja32 (gotol) and callx.</summary>
    V4 = 4,
}

/// <summary>How an instruction's operands are written, the same for the assembler and the disassembler.</summary>
public enum OperandForm
{
    /// <summary><c>exit</c></summary>
    None,
    /// <summary><c>neg %r0</c>, <c>be16 %r0</c></summary>
    Dst,
    /// <summary><c>add %r0, 1</c></summary>
    DstImm,
    /// <summary><c>add %r0, %r1</c></summary>
    DstSrc,
    /// <summary><c>lddw %r0, 0x1122334455667788</c> (and the pseudo forms, see <see cref="LoadImmediateSource"/>)</summary>
    DstImm64,
    /// <summary><c>ldxw %r0, [%r1+8]</c></summary>
    DstMem,
    /// <summary><c>stw [%r1+8], 5</c></summary>
    MemImm,
    /// <summary><c>stxw [%r1+8], %r2</c>, <c>lock add [%r1+8], %r2</c></summary>
    MemSrc,
    /// <summary><c>ja +3</c> (offset field)</summary>
    Target,
    /// <summary><c>ja32 +3</c> (imm field)</summary>
    TargetImm,
    /// <summary><c>jeq %r1, 5, +3</c></summary>
    DstImmTarget,
    /// <summary><c>jeq %r1, %r2, +3</c></summary>
    DstSrcTarget,
    /// <summary><c>call 1</c></summary>
    Helper,
    /// <summary><c>call local +3</c> (imm is the relative slot offset)</summary>
    LocalCall,
    /// <summary><c>call kfunc 1234</c> (imm is a kernel BTF id)</summary>
    KernelFunction,
    /// <summary><c>call %r2</c> (callx; the register is in dst)</summary>
    RegisterCall,
    /// <summary>Legacy <c>ldabsw 0x10</c></summary>
    AbsImm,
    /// <summary>Legacy <c>ldindw %r1, 0x10</c></summary>
    IndSrcImm,
}

/// <summary>Instruction fields an opcode does not use: they must be zero.</summary>
[Flags]
public enum UnusedFields
{
    None = 0,
    Dst = 1,
    Src = 2,
    Offset = 4,
    Immediate = 8,
}

/// <summary>The field that tells apart several instructions that share one opcode byte (e.g. div/sdiv by offset).</summary>
public enum SelectorField
{
    /// <summary>The opcode alone says what the instruction is.</summary>
    None,
    Offset,
    Immediate,
    Src,
}

/// <summary>
/// One row of the ISA table: an opcode byte plus, where the byte is shared, the value of the field that selects
/// this instruction (div/sdiv by offset 0/1, mov/movsx by offset 0/8/16/32, le16/32/64 by imm, the atomics by imm,
/// the call kinds and lddw forms by src).
/// </summary>
public sealed record IsaEntry(
    byte OpCode,
    string Mnemonic,
    OperandForm Form,
    UnusedFields Unused,
    SelectorField Selector,
    int SelectorValue,
    IsaVersion MinVersion)
{
    /// <summary>The instruction writes its dst register (so dst must not be r10).</summary>
    public bool WritesDst => Form is OperandForm.Dst or OperandForm.DstImm or OperandForm.DstSrc or OperandForm.DstImm64 or OperandForm.DstMem;

    /// <summary>Atomic fetch/xchg forms write their src register.</summary>
    public bool WritesSrc => Selector == SelectorField.Immediate && (OpCode & 0xe7) == 0xc3 && (SelectorValue & 0x01) != 0 && SelectorValue != (int)AtomicOperation.CmpXchg;

    /// <summary>The instruction reads or writes its dst register field (it is not unused).</summary>
    public bool UsesDst => (Unused & UnusedFields.Dst) == 0;

    /// <summary>The instruction uses its src register field as a register (not a selector such as lddw/call kinds).</summary>
    public bool UsesSrcRegister => (Unused & UnusedFields.Src) == 0 && Selector != SelectorField.Src;

    /// <summary>True for the legacy packet loads (LD_ABS / LD_IND), which the kernel only allows in socket filters.</summary>
    public bool IsLegacy => Form is OperandForm.AbsImm or OperandForm.IndSrcImm;

    /// <summary>True when <paramref name="insn"/> has this entry's opcode and selector value.</summary>
    public bool Matches(in Instruction insn)
    {
        if (insn.OpCode.Value != OpCode)
            return false;
        return Selector switch
        {
            SelectorField.None => true,
            SelectorField.Offset => insn.Offset == SelectorValue,
            SelectorField.Immediate => insn.Immediate == SelectorValue,
            SelectorField.Src => (int)insn.Src == SelectorValue,
            _ => false,
        };
    }

    /// <summary>An instruction of this entry with the selector field set and everything else zero.</summary>
    public Instruction Template => Selector switch
    {
        SelectorField.Offset => new Instruction(new OpCode(OpCode), Register.R0, Register.R0, (short)SelectorValue, 0),
        SelectorField.Immediate => new Instruction(new OpCode(OpCode), Register.R0, Register.R0, 0, SelectorValue),
        SelectorField.Src => new Instruction(new OpCode(OpCode), Register.R0, (Register)SelectorValue, 0, 0),
        _ => new Instruction(new OpCode(OpCode), Register.R0, Register.R0, 0, 0),
    };

    public override string ToString() => $"{Mnemonic} (0x{OpCode:x2})";
}

/// <summary>
/// The one table of eBPF instruction-set facts (RFC 9669 plus the legacy packet loads and callx): every valid
/// opcode, what selects it when opcodes are shared, its operand form, the fields that must be zero and the first
/// ISA version that has it. The decoder, validator, assembler, disassembler and the VM read it; nothing else
/// should switch over opcode bytes to decide validity.
/// </summary>
public static class IsaTable
{
    private static readonly IsaEntry[][] ByOpCode;

    /// <summary>Every entry, in opcode order.</summary>
    public static IReadOnlyList<IsaEntry> Entries { get; }

    /// <summary>Entries by assembler mnemonic (e.g. "add" has the K and X forms; "lddw" has src forms 0-6).</summary>
    public static FrozenDictionary<string, IsaEntry[]> ByMnemonic { get; }

    static IsaTable()
    {
        var list = new List<IsaEntry>();
        void Add(byte op, string mnemonic, OperandForm form, UnusedFields unused, IsaVersion version,
            SelectorField selector = SelectorField.None, int value = 0) =>
            list.Add(new IsaEntry(op, mnemonic, form, unused, selector, value, version));

        const UnusedFields SrcOff = UnusedFields.Src | UnusedFields.Offset;
        const UnusedFields ImmOff = UnusedFields.Immediate | UnusedFields.Offset;

        // ALU and ALU64: "add32" is the 32-bit ALU class, "add" the 64-bit one.
        (AluOperation Op, string Name)[] binary =
        [
            (AluOperation.Add, "add"), (AluOperation.Sub, "sub"), (AluOperation.Mul, "mul"), (AluOperation.Div, "div"),
            (AluOperation.Or, "or"), (AluOperation.And, "and"), (AluOperation.Lsh, "lsh"), (AluOperation.Rsh, "rsh"),
            (AluOperation.Mod, "mod"), (AluOperation.Xor, "xor"), (AluOperation.Mov, "mov"), (AluOperation.Arsh, "arsh"),
        ];
        foreach (var (cls, suffix) in new[] { (InstructionClass.Alu64, ""), (InstructionClass.Alu, "32") })
        {
            foreach (var (op, name) in binary)
            {
                // div/mod/mov share their opcode with sdiv/smod/movsx, told apart by the offset field.
                bool sharesOffset = op is AluOperation.Div or AluOperation.Mod or AluOperation.Mov;
                var k = OpCode.Alu(cls, op, OperandSource.Immediate);
                var x = OpCode.Alu(cls, op, OperandSource.Register);
                if (sharesOffset)
                {
                    Add(k, name + suffix, OperandForm.DstImm, UnusedFields.Src, IsaVersion.V1, SelectorField.Offset, 0);
                    Add(x, name + suffix, OperandForm.DstSrc, UnusedFields.Immediate, IsaVersion.V1, SelectorField.Offset, 0);
                }
                else
                {
                    Add(k, name + suffix, OperandForm.DstImm, SrcOff, IsaVersion.V1);
                    Add(x, name + suffix, OperandForm.DstSrc, ImmOff, IsaVersion.V1);
                }
                if (op is AluOperation.Div or AluOperation.Mod)
                {
                    string signed = op == AluOperation.Div ? "sdiv" : "smod";
                    Add(k, signed + suffix, OperandForm.DstImm, UnusedFields.Src, IsaVersion.V4, SelectorField.Offset, 1);
                    Add(x, signed + suffix, OperandForm.DstSrc, UnusedFields.Immediate, IsaVersion.V4, SelectorField.Offset, 1);
                }
            }
            // movsx: sign-extend the low 8/16/32 bits of src; the name is movsx<from><to>. mov32 has no 32-bit form.
            var movx = OpCode.Alu(cls, AluOperation.Mov, OperandSource.Register);
            int[] widths = cls == InstructionClass.Alu64 ? [8, 16, 32] : [8, 16];
            foreach (int bits in widths)
                Add(movx, $"movsx{bits}{(cls == InstructionClass.Alu64 ? "64" : "32")}", OperandForm.DstSrc, UnusedFields.Immediate, IsaVersion.V4, SelectorField.Offset, bits);

            Add(OpCode.Alu(cls, AluOperation.Neg, OperandSource.Immediate), "neg" + suffix, OperandForm.Dst, SrcOff | UnusedFields.Immediate, IsaVersion.V1);
        }

        // Byte swaps: ALU|END|K = to little endian, ALU|END|X = to big endian, ALU64|END|K = unconditional (v4).
        foreach (int bits in new[] { 16, 32, 64 })
        {
            Add(OpCode.Alu(InstructionClass.Alu, AluOperation.End, OperandSource.Immediate), $"le{bits}", OperandForm.Dst, SrcOff, IsaVersion.V1, SelectorField.Immediate, bits);
            Add(OpCode.Alu(InstructionClass.Alu, AluOperation.End, OperandSource.Register), $"be{bits}", OperandForm.Dst, SrcOff, IsaVersion.V1, SelectorField.Immediate, bits);
            Add(OpCode.Alu(InstructionClass.Alu64, AluOperation.End, OperandSource.Immediate), $"bswap{bits}", OperandForm.Dst, SrcOff, IsaVersion.V4, SelectorField.Immediate, bits);
        }

        // Jumps.
        const UnusedFields DstSrcImm = UnusedFields.Dst | UnusedFields.Src | UnusedFields.Immediate;
        Add(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Ja, OperandSource.Immediate), "ja", OperandForm.Target, DstSrcImm, IsaVersion.V1);
        Add(OpCode.Jump(InstructionClass.Jmp32, JumpOperation.Ja, OperandSource.Immediate), "ja32", OperandForm.TargetImm, UnusedFields.Dst | UnusedFields.Src | UnusedFields.Offset, IsaVersion.V4);
        (JumpOperation Op, string Name, IsaVersion Version)[] conditions =
        [
            (JumpOperation.Jeq, "jeq", IsaVersion.V1), (JumpOperation.Jgt, "jgt", IsaVersion.V1), (JumpOperation.Jge, "jge", IsaVersion.V1),
            (JumpOperation.Jset, "jset", IsaVersion.V1), (JumpOperation.Jne, "jne", IsaVersion.V1), (JumpOperation.Jsgt, "jsgt", IsaVersion.V1),
            (JumpOperation.Jsge, "jsge", IsaVersion.V1), (JumpOperation.Jlt, "jlt", IsaVersion.V2), (JumpOperation.Jle, "jle", IsaVersion.V2),
            (JumpOperation.Jslt, "jslt", IsaVersion.V2), (JumpOperation.Jsle, "jsle", IsaVersion.V2),
        ];
        foreach (var (cls, suffix) in new[] { (InstructionClass.Jmp, ""), (InstructionClass.Jmp32, "32") })
        {
            foreach (var (op, name, version) in conditions)
            {
                var v = cls == InstructionClass.Jmp32 ? IsaVersion.V3 : version;
                Add(OpCode.Jump(cls, op, OperandSource.Immediate), name + suffix, OperandForm.DstImmTarget, UnusedFields.Src, v);
                Add(OpCode.Jump(cls, op, OperandSource.Register), name + suffix, OperandForm.DstSrcTarget, UnusedFields.Immediate, v);
            }
        }
        var call = OpCode.Jump(InstructionClass.Jmp, JumpOperation.Call, OperandSource.Immediate);
        Add(call, "call", OperandForm.Helper, UnusedFields.Dst | UnusedFields.Offset, IsaVersion.V1, SelectorField.Src, (int)CallKind.Helper);
        Add(call, "call local", OperandForm.LocalCall, UnusedFields.Dst | UnusedFields.Offset, IsaVersion.V1, SelectorField.Src, (int)CallKind.Local);
        Add(call, "call kfunc", OperandForm.KernelFunction, UnusedFields.Dst | UnusedFields.Offset, IsaVersion.V1, SelectorField.Src, (int)CallKind.Kfunc);
        Add(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Call, OperandSource.Register), "callx", OperandForm.RegisterCall, UnusedFields.Src | ImmOff, IsaVersion.V4);
        Add(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Exit, OperandSource.Immediate), "exit", OperandForm.None, UnusedFields.Dst | UnusedFields.Src | ImmOff, IsaVersion.V1);

        // lddw: the src field says what the 64-bit constant means.
        var lddw = OpCode.Memory(InstructionClass.Ld, AccessMode.Imm, AccessSize.DoubleWord);
        for (int src = 0; src <= 6; src++)
            Add(lddw, "lddw", OperandForm.DstImm64, UnusedFields.Offset, IsaVersion.V1, SelectorField.Src, src);

        // Legacy packet loads: r0 = packet[imm] or packet[src + imm] (socket filters only).
        (AccessSize Size, string Suffix)[] legacySizes = [(AccessSize.Word, "w"), (AccessSize.Half, "h"), (AccessSize.Byte, "b")];
        foreach (var (size, s) in legacySizes)
        {
            Add(OpCode.Memory(InstructionClass.Ld, AccessMode.Abs, size), "ldabs" + s, OperandForm.AbsImm, UnusedFields.Dst | UnusedFields.Src | UnusedFields.Offset, IsaVersion.V1);
            Add(OpCode.Memory(InstructionClass.Ld, AccessMode.Ind, size), "ldind" + s, OperandForm.IndSrcImm, UnusedFields.Dst | UnusedFields.Offset, IsaVersion.V1);
        }

        // Memory loads and stores.
        (AccessSize Size, string Suffix)[] sizes = [(AccessSize.Word, "w"), (AccessSize.Half, "h"), (AccessSize.Byte, "b"), (AccessSize.DoubleWord, "dw")];
        foreach (var (size, s) in sizes)
        {
            Add(OpCode.Memory(InstructionClass.Ldx, AccessMode.Mem, size), "ldx" + s, OperandForm.DstMem, UnusedFields.Immediate, IsaVersion.V1);
            if (size != AccessSize.DoubleWord)
                Add(OpCode.Memory(InstructionClass.Ldx, AccessMode.MemSx, size), "ldxs" + s, OperandForm.DstMem, UnusedFields.Immediate, IsaVersion.V4);
            Add(OpCode.Memory(InstructionClass.St, AccessMode.Mem, size), "st" + s, OperandForm.MemImm, UnusedFields.Src, IsaVersion.V1);
            Add(OpCode.Memory(InstructionClass.Stx, AccessMode.Mem, size), "stx" + s, OperandForm.MemSrc, UnusedFields.Immediate, IsaVersion.V1);
        }

        // Atomics: STX|ATOMIC with W or DW size; the operation is in imm.
        (AtomicOperation Op, string Name)[] atomics =
        [
            (AtomicOperation.Add, "add"), (AtomicOperation.Or, "or"), (AtomicOperation.And, "and"), (AtomicOperation.Xor, "xor"),
            (AtomicOperation.FetchAdd, "fetch add"), (AtomicOperation.FetchOr, "fetch or"), (AtomicOperation.FetchAnd, "fetch and"),
            (AtomicOperation.FetchXor, "fetch xor"), (AtomicOperation.Xchg, "xchg"), (AtomicOperation.CmpXchg, "cmpxchg"),
        ];
        foreach (var (size, suffix) in new[] { (AccessSize.DoubleWord, ""), (AccessSize.Word, "32") })
        {
            // As in LLVM: lock add is the original XADD and the 64-bit fetch/xchg/cmpxchg forms (Linux 5.12) are not
            // tied to a -mcpu version (v1); the 32-bit forms beyond lock add need alu32 (v3).
            foreach (var (op, name) in atomics)
                Add(OpCode.Memory(InstructionClass.Stx, AccessMode.Atomic, size), $"lock {name}{suffix}", OperandForm.MemSrc, UnusedFields.None,
                    op == AtomicOperation.Add || size == AccessSize.DoubleWord ? IsaVersion.V1 : IsaVersion.V3, SelectorField.Immediate, (int)op);
        }

        list.Sort((a, b) => a.OpCode != b.OpCode ? a.OpCode.CompareTo(b.OpCode) : a.SelectorValue.CompareTo(b.SelectorValue));
        Entries = list.AsReadOnly();
        var byOp = new List<IsaEntry>[256];
        foreach (var e in list)
            (byOp[e.OpCode] ??= []).Add(e);
        ByOpCode = byOp.Select(l => l?.ToArray() ?? []).ToArray();
        ByMnemonic = list.GroupBy(e => e.Mnemonic).ToFrozenDictionary(g => g.Key, g => g.ToArray());
    }

    /// <summary>The entries for an opcode byte (empty when the opcode is not valid at all).</summary>
    public static ReadOnlySpan<IsaEntry> ForOpCode(byte opCode) => ByOpCode[opCode];

    /// <summary>The entry describing <paramref name="insn"/>, or null when its opcode/selector is not a valid instruction.</summary>
    public static IsaEntry? Find(in Instruction insn)
    {
        foreach (var e in ByOpCode[insn.OpCode.Value])
        {
            if (e.Matches(insn))
                return e;
        }
        return null;
    }

    /// <summary>True when the opcode byte is used by some instruction.</summary>
    public static bool IsKnownOpCode(byte opCode) => ByOpCode[opCode].Length > 0;
}
