using System.Collections;
using SharpBpf.Platform;

namespace SharpBpf.Asm;

/// <summary>Short names for memory access sizes in the <see cref="Insn"/> DSL.</summary>
public enum Size : byte
{
    /// <summary>1 byte.</summary>
    B = AccessSize.Byte,
    /// <summary>2 bytes.</summary>
    H = AccessSize.Half,
    /// <summary>4 bytes.</summary>
    W = AccessSize.Word,
    /// <summary>8 bytes.</summary>
    DW = AccessSize.DoubleWord,
}

/// <summary>A label in an <see cref="InsnBuilder"/>: names the next instruction.</summary>
public readonly record struct InsnLabel(string Name);

/// <summary>
/// A DSL for writing programs in C#, one method an instruction, named after the assembler mnemonics:
/// <code>
///   using static SharpBpf.Asm.Register;
///   var program = new InsnBuilder
///   {
///       Insn.Mov(R0, 2),
///       Insn.LoadMem(Size.W, R2, R1, 4),
///       Insn.JumpIf(JumpOperation.Jgt, R2, 10, "out"),
///       Insn.Call(HelperId.KtimeGetNs),
///       Insn.Label("out"),
///       Insn.Exit(),
///   }.Build();
/// </code>
/// Jumps to labels carry the label in <see cref="Instruction.Reference"/> until <see cref="InsnBuilder.Build"/>
/// resolves them; map loads keep their map name as the loader expects (see ProgramSpec).
/// </summary>
public static class Insn
{
    private static Instruction Alu(InstructionClass cls, AluOperation op, Register dst, int imm, short offset = 0) =>
        new(OpCode.Alu(cls, op, OperandSource.Immediate), dst, Register.R0, offset, imm);

    private static Instruction Alu(InstructionClass cls, AluOperation op, Register dst, Register src, short offset = 0) =>
        new(OpCode.Alu(cls, op, OperandSource.Register), dst, src, offset, 0);

    // 64-bit ALU
    public static Instruction Mov(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Mov, dst, imm);
    public static Instruction Mov(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Mov, dst, src);
    public static Instruction Add(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Add, dst, imm);
    public static Instruction Add(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Add, dst, src);
    public static Instruction Sub(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Sub, dst, imm);
    public static Instruction Sub(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Sub, dst, src);
    public static Instruction Mul(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Mul, dst, imm);
    public static Instruction Mul(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Mul, dst, src);
    public static Instruction Div(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Div, dst, imm);
    public static Instruction Div(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Div, dst, src);
    public static Instruction SDiv(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Div, dst, imm, 1);
    public static Instruction SDiv(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Div, dst, src, 1);
    public static Instruction Mod(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Mod, dst, imm);
    public static Instruction Mod(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Mod, dst, src);
    public static Instruction SMod(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Mod, dst, imm, 1);
    public static Instruction SMod(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Mod, dst, src, 1);
    public static Instruction Or(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Or, dst, imm);
    public static Instruction Or(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Or, dst, src);
    public static Instruction And(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.And, dst, imm);
    public static Instruction And(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.And, dst, src);
    public static Instruction Xor(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Xor, dst, imm);
    public static Instruction Xor(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Xor, dst, src);
    public static Instruction Lsh(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Lsh, dst, imm);
    public static Instruction Lsh(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Lsh, dst, src);
    public static Instruction Rsh(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Rsh, dst, imm);
    public static Instruction Rsh(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Rsh, dst, src);
    public static Instruction Arsh(Register dst, int imm) => Alu(InstructionClass.Alu64, AluOperation.Arsh, dst, imm);
    public static Instruction Arsh(Register dst, Register src) => Alu(InstructionClass.Alu64, AluOperation.Arsh, dst, src);
    public static Instruction Neg(Register dst) => Alu(InstructionClass.Alu64, AluOperation.Neg, dst, 0);

    /// <summary>movsx: dst = (s8/s16/s32)src, sign-extended to 64 bits.</summary>
    public static Instruction MovSx(Register dst, Register src, int fromBits) => Alu(InstructionClass.Alu64, AluOperation.Mov, dst, src, CheckedBits(fromBits, 32));

    // 32-bit ALU
    public static Instruction Mov32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Mov, dst, imm);
    public static Instruction Mov32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Mov, dst, src);
    public static Instruction Add32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Add, dst, imm);
    public static Instruction Add32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Add, dst, src);
    public static Instruction Sub32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Sub, dst, imm);
    public static Instruction Sub32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Sub, dst, src);
    public static Instruction Mul32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Mul, dst, imm);
    public static Instruction Mul32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Mul, dst, src);
    public static Instruction Div32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Div, dst, imm);
    public static Instruction Div32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Div, dst, src);
    public static Instruction SDiv32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Div, dst, imm, 1);
    public static Instruction SDiv32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Div, dst, src, 1);
    public static Instruction Mod32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Mod, dst, imm);
    public static Instruction Mod32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Mod, dst, src);
    public static Instruction SMod32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Mod, dst, imm, 1);
    public static Instruction SMod32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Mod, dst, src, 1);
    public static Instruction Or32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Or, dst, imm);
    public static Instruction Or32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Or, dst, src);
    public static Instruction And32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.And, dst, imm);
    public static Instruction And32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.And, dst, src);
    public static Instruction Xor32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Xor, dst, imm);
    public static Instruction Xor32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Xor, dst, src);
    public static Instruction Lsh32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Lsh, dst, imm);
    public static Instruction Lsh32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Lsh, dst, src);
    public static Instruction Rsh32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Rsh, dst, imm);
    public static Instruction Rsh32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Rsh, dst, src);
    public static Instruction Arsh32(Register dst, int imm) => Alu(InstructionClass.Alu, AluOperation.Arsh, dst, imm);
    public static Instruction Arsh32(Register dst, Register src) => Alu(InstructionClass.Alu, AluOperation.Arsh, dst, src);
    public static Instruction Neg32(Register dst) => Alu(InstructionClass.Alu, AluOperation.Neg, dst, 0);

    /// <summary>movsx32: w-dst = (s8/s16)w-src, zero-extended above bit 31.</summary>
    public static Instruction MovSx32(Register dst, Register src, int fromBits) => Alu(InstructionClass.Alu, AluOperation.Mov, dst, src, CheckedBits(fromBits, 16));

    // Byte swaps
    /// <summary>le16/le32/le64: convert to little endian (a no-op on little-endian hosts besides truncation).</summary>
    public static Instruction ToLittleEndian(Register dst, int bits) => Alu(InstructionClass.Alu, AluOperation.End, dst, CheckedWidth(bits));
    /// <summary>be16/be32/be64: convert to big endian.</summary>
    public static Instruction ToBigEndian(Register dst, int bits) =>
        new(OpCode.Alu(InstructionClass.Alu, AluOperation.End, OperandSource.Register), dst, Register.R0, 0, CheckedWidth(bits));
    /// <summary>bswap16/32/64: unconditional byte swap (v4).</summary>
    public static Instruction ByteSwap(Register dst, int bits) => Alu(InstructionClass.Alu64, AluOperation.End, dst, CheckedWidth(bits));

    // 64-bit immediates and pseudo loads
    /// <summary>lddw dst, imm64.</summary>
    public static Instruction LoadImm64(Register dst, long value) =>
        new(OpCode.Memory(InstructionClass.Ld, AccessMode.Imm, AccessSize.DoubleWord), dst, Register.R0, 0, value);

    /// <summary>lddw dst, map: the loader puts the map (by name) here.</summary>
    public static Instruction LoadMapFd(Register dst, string map) =>
        new(OpCode.Memory(InstructionClass.Ld, AccessMode.Imm, AccessSize.DoubleWord), dst, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = map };

    /// <summary>lddw dst, &amp;map value + offset (global data): the offset is in the high 32 bits, as the loader expects.</summary>
    public static Instruction LoadMapValue(Register dst, string map, int offset = 0) =>
        new(OpCode.Memory(InstructionClass.Ld, AccessMode.Imm, AccessSize.DoubleWord), dst, (Register)LoadImmediateSource.MapValue, 0, (long)offset << 32) { Reference = map };

    // Memory
    /// <summary>ldx: dst = *(size *)(src + offset).</summary>
    public static Instruction LoadMem(Size size, Register dst, Register src, short offset) =>
        new(OpCode.Memory(InstructionClass.Ldx, AccessMode.Mem, (AccessSize)size), dst, src, offset, 0);

    /// <summary>ldxs: dst = sign-extended *(s8/s16/s32 *)(src + offset) (v4).</summary>
    public static Instruction LoadMemSx(Size size, Register dst, Register src, short offset) =>
        new(OpCode.Memory(InstructionClass.Ldx, AccessMode.MemSx, (AccessSize)size), dst, src, offset, 0);

    /// <summary>st: *(size *)(dst + offset) = imm.</summary>
    public static Instruction StoreImm(Size size, Register dst, short offset, int imm) =>
        new(OpCode.Memory(InstructionClass.St, AccessMode.Mem, (AccessSize)size), dst, Register.R0, offset, imm);

    /// <summary>stx: *(size *)(dst + offset) = src.</summary>
    public static Instruction StoreMem(Size size, Register dst, short offset, Register src) =>
        new(OpCode.Memory(InstructionClass.Stx, AccessMode.Mem, (AccessSize)size), dst, src, offset, 0);

    /// <summary>lock op *(W or DW *)(dst + offset), src.</summary>
    public static Instruction Atomic(AtomicOperation operation, Size size, Register dst, short offset, Register src) =>
        new(OpCode.Memory(InstructionClass.Stx, AccessMode.Atomic, (AccessSize)size), dst, src, offset, (int)operation);

    /// <summary>Legacy r0 = packet[imm] (socket filters).</summary>
    public static Instruction LoadAbs(Size size, int offset) =>
        new(OpCode.Memory(InstructionClass.Ld, AccessMode.Abs, (AccessSize)size), Register.R0, Register.R0, 0, offset);

    /// <summary>Legacy r0 = packet[src + imm] (socket filters).</summary>
    public static Instruction LoadInd(Size size, Register src, int offset) =>
        new(OpCode.Memory(InstructionClass.Ld, AccessMode.Ind, (AccessSize)size), Register.R0, src, 0, offset);

    // Jumps
    /// <summary>ja +offset (raw slots).</summary>
    public static Instruction Ja(short offset) => new(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Ja, OperandSource.Immediate), 0, 0, offset, 0);
    /// <summary>ja label.</summary>
    public static Instruction Ja(string label) => Ja(0) with { Reference = label };
    /// <summary>ja32 / gotol: a jump with a 32-bit offset in imm (v4).</summary>
    public static Instruction Ja32(int offset) => new(OpCode.Jump(InstructionClass.Jmp32, JumpOperation.Ja, OperandSource.Immediate), 0, 0, 0, offset);
    public static Instruction Ja32(string label) => Ja32(0) with { Reference = label };

    /// <summary>if dst op imm goto +offset (64-bit compare).</summary>
    public static Instruction JumpIf(JumpOperation op, Register dst, int imm, short offset) => Cond(InstructionClass.Jmp, op, dst, imm, offset);
    public static Instruction JumpIf(JumpOperation op, Register dst, int imm, string label) => Cond(InstructionClass.Jmp, op, dst, imm, 0) with { Reference = label };
    public static Instruction JumpIf(JumpOperation op, Register dst, Register src, short offset) => Cond(InstructionClass.Jmp, op, dst, src, offset);
    public static Instruction JumpIf(JumpOperation op, Register dst, Register src, string label) => Cond(InstructionClass.Jmp, op, dst, src, 0) with { Reference = label };

    /// <summary>if wdst op imm goto +offset (32-bit compare).</summary>
    public static Instruction JumpIf32(JumpOperation op, Register dst, int imm, short offset) => Cond(InstructionClass.Jmp32, op, dst, imm, offset);
    public static Instruction JumpIf32(JumpOperation op, Register dst, int imm, string label) => Cond(InstructionClass.Jmp32, op, dst, imm, 0) with { Reference = label };
    public static Instruction JumpIf32(JumpOperation op, Register dst, Register src, short offset) => Cond(InstructionClass.Jmp32, op, dst, src, offset);
    public static Instruction JumpIf32(JumpOperation op, Register dst, Register src, string label) => Cond(InstructionClass.Jmp32, op, dst, src, 0) with { Reference = label };

    private static Instruction Cond(InstructionClass cls, JumpOperation op, Register dst, int imm, short offset)
    {
        CheckCondition(op);
        return new(OpCode.Jump(cls, op, OperandSource.Immediate), dst, 0, offset, imm);
    }

    private static Instruction Cond(InstructionClass cls, JumpOperation op, Register dst, Register src, short offset)
    {
        CheckCondition(op);
        return new(OpCode.Jump(cls, op, OperandSource.Register), dst, src, offset, 0);
    }

    /// <summary>call a helper.</summary>
    public static Instruction Call(HelperId helper) => Call((int)helper);
    /// <summary>call a helper by number.</summary>
    public static Instruction Call(int helper) => new(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Call, OperandSource.Immediate), 0, (Register)CallKind.Helper, 0, helper);
    /// <summary>bpf-to-bpf call to a label or function.</summary>
    public static Instruction CallLocal(string function) =>
        new Instruction(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Call, OperandSource.Immediate), 0, (Register)CallKind.Local, 0, -1) { Reference = function };
    /// <summary>bpf-to-bpf call by relative slot offset.</summary>
    public static Instruction CallLocal(int offset) => new(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Call, OperandSource.Immediate), 0, (Register)CallKind.Local, 0, offset);
    /// <summary>callx: call the address in a register (the register is in dst).</summary>
    public static Instruction CallX(Register target) => new(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Call, OperandSource.Register), target, 0, 0, 0);
    /// <summary>exit: return r0.</summary>
    public static Instruction Exit() => new(OpCode.Jump(InstructionClass.Jmp, JumpOperation.Exit, OperandSource.Immediate), 0, 0, 0, 0);

    /// <summary>A label for an <see cref="InsnBuilder"/>.</summary>
    public static InsnLabel Label(string name) => new(name);

    private static short CheckedBits(int bits, int max) =>
        bits is 8 or 16 or 32 && bits <= max ? (short)bits : throw new ArgumentOutOfRangeException(nameof(bits), bits, $"movsx takes 8, 16{(max == 32 ? " or 32" : "")} bits");

    private static int CheckedWidth(int bits) =>
        bits is 16 or 32 or 64 ? bits : throw new ArgumentOutOfRangeException(nameof(bits), bits, "byte swaps take 16, 32 or 64 bits");

    private static void CheckCondition(JumpOperation op)
    {
        if (op is JumpOperation.Ja or JumpOperation.Call or JumpOperation.Exit)
            throw new ArgumentOutOfRangeException(nameof(op), op, "JumpIf takes a conditional operation; use Ja, Call or Exit");
    }
}

/// <summary>
/// Collects instructions and labels and resolves jumps to labels into raw-slot offsets. Local calls to names
/// that are not labels here keep their <see cref="Instruction.Reference"/> for the linker; map references stay.
/// </summary>
public sealed class InsnBuilder : IEnumerable<Instruction>
{
    private readonly List<Instruction> _instructions = [];
    private readonly Dictionary<string, int> _labels = new(StringComparer.Ordinal);

    public InsnBuilder Add(Instruction instruction)
    {
        _instructions.Add(instruction);
        return this;
    }

    public InsnBuilder Add(InsnLabel label)
    {
        if (!_labels.TryAdd(label.Name, _instructions.Count))
            throw new ArgumentException($"label '{label.Name}' is defined twice", nameof(label));
        return this;
    }

    public InsnBuilder AddRange(IEnumerable<Instruction> instructions)
    {
        _instructions.AddRange(instructions);
        return this;
    }

    /// <summary>The instructions with label references resolved. An unknown jump label is an <see cref="InstructionException"/>.</summary>
    public List<Instruction> Build()
    {
        var slots = new int[_instructions.Count + 1];
        for (int i = 0; i < _instructions.Count; i++)
            slots[i + 1] = slots[i] + _instructions[i].RawSize;

        var result = new List<Instruction>(_instructions.Count);
        for (int i = 0; i < _instructions.Count; i++)
        {
            var insn = _instructions[i];
            if (insn.Reference is { } name && !insn.IsLoadImmediate64)
            {
                var entry = IsaTable.Find(insn);
                if (_labels.TryGetValue(name, out int target))
                {
                    int delta = slots[target] - slots[i] - 1;
                    insn = entry?.Form switch
                    {
                        OperandForm.TargetImm or OperandForm.LocalCall => insn with { Constant = delta, Reference = null },
                        _ when delta is < short.MinValue or > short.MaxValue =>
                            throw new InstructionException($"jump to '{name}' is too far for a 16-bit offset ({delta})", slots[i]),
                        _ => insn with { Offset = (short)delta, Reference = null },
                    };
                }
                else if (entry?.Form != OperandForm.LocalCall)
                {
                    throw new InstructionException($"unknown label '{name}'", slots[i]);
                }
            }
            result.Add(insn);
        }
        return result;
    }

    public IEnumerator<Instruction> GetEnumerator() => _instructions.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
