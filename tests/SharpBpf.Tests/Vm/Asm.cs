using SharpBpf.Asm;

namespace SharpBpf.Tests.Vm;

/// <summary>Hand-built instructions for VM tests (independent of the assembler).</summary>
internal static class A
{
    /// <summary>Raw slots from instruction <paramref name="from"/> up to <paramref name="to"/>: jump offsets count
    /// them, and lddw takes two.</summary>
    public static int Raw(List<Instruction> code, int from, int to)
    {
        int n = 0;
        for (int i = from; i < to; i++)
            n += code[i].RawSize;
        return n;
    }

    public static Instruction Alu64(AluOperation op, Register dst, long imm, short off = 0) =>
        new(OpCode.Alu(InstructionClass.Alu64, op, OperandSource.Immediate), dst, 0, off, imm);
    public static Instruction Alu64R(AluOperation op, Register dst, Register src, short off = 0) =>
        new(OpCode.Alu(InstructionClass.Alu64, op, OperandSource.Register), dst, src, off, 0);
    public static Instruction Alu32(AluOperation op, Register dst, long imm, short off = 0) =>
        new(OpCode.Alu(InstructionClass.Alu, op, OperandSource.Immediate), dst, 0, off, imm);
    public static Instruction Alu32R(AluOperation op, Register dst, Register src, short off = 0) =>
        new(OpCode.Alu(InstructionClass.Alu, op, OperandSource.Register), dst, src, off, 0);
    public static Instruction Mov(Register dst, long imm) => Alu64(AluOperation.Mov, dst, imm);
    public static Instruction MovR(Register dst, Register src) => Alu64R(AluOperation.Mov, dst, src);
    public static Instruction Lddw(Register dst, long value) => new(new OpCode(0x18), dst, 0, 0, value);
    public static Instruction Jmp(JumpOperation op, Register dst, long imm, short off) =>
        new(OpCode.Jump(InstructionClass.Jmp, op, OperandSource.Immediate), dst, 0, off, imm);
    public static Instruction JmpR(JumpOperation op, Register dst, Register src, short off) =>
        new(OpCode.Jump(InstructionClass.Jmp, op, OperandSource.Register), dst, src, off, 0);
    public static Instruction Ja(short off) => new(new OpCode(0x05), 0, 0, off, 0);
    public static Instruction Exit() => new(new OpCode(0x95), 0, 0, 0, 0);
    public static Instruction Call(int helper) => new(new OpCode(0x85), 0, 0, 0, helper);
    public static Instruction CallLocal(int relative) => new(new OpCode(0x85), 0, (Register)1, 0, relative);
    public static Instruction Ldx(AccessSize size, Register dst, Register src, short off) =>
        new(OpCode.Memory(InstructionClass.Ldx, AccessMode.Mem, size), dst, src, off, 0);
    public static Instruction Stx(AccessSize size, Register dst, Register src, short off) =>
        new(OpCode.Memory(InstructionClass.Stx, AccessMode.Mem, size), dst, src, off, 0);
    public static Instruction St(AccessSize size, Register dst, short off, int imm) =>
        new(OpCode.Memory(InstructionClass.St, AccessMode.Mem, size), dst, 0, off, imm);
    public static Instruction Atomic(AccessSize size, Register dst, Register src, short off, AtomicOperation op) =>
        new(OpCode.Memory(InstructionClass.Stx, AccessMode.Atomic, size), dst, src, off, (int)op);
}
