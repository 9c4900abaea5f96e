using BenchmarkDotNet.Attributes;
using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier;

namespace SharpBpf.Bench;

/// <summary>
/// Verification time per program. The kernel's own figure (the "verification time" line of its log for the same
/// instructions) is the reference to put beside it once the Linux backend can load raw programs; processed
/// instructions are printed by <see cref="Report"/> for comparison with the kernel's "processed N insns".
/// </summary>
[MemoryDiagnoser]
public class VerifierBench
{
    private static Instruction Alu(AluOperation op, Register dst, long imm) => new(OpCode.Alu(InstructionClass.Alu64, op, OperandSource.Immediate), dst, 0, 0, imm);
    private static Instruction AluX(AluOperation op, Register dst, Register src) => new(OpCode.Alu(InstructionClass.Alu64, op, OperandSource.Register), dst, src, 0, 0);
    private static Instruction Ldx(AccessSize size, Register dst, Register src, short off) => new(OpCode.Memory(InstructionClass.Ldx, AccessMode.Mem, size), dst, src, off, 0);
    private static Instruction JmpX(JumpOperation op, Register a, Register b, short off) => new(OpCode.Jump(InstructionClass.Jmp, op, OperandSource.Register), a, b, off, 0);
    private static Instruction Jmp(JumpOperation op, Register a, long imm, short off) => new(OpCode.Jump(InstructionClass.Jmp, op, OperandSource.Immediate), a, 0, off, imm);
    private static readonly Instruction Exit = new(new OpCode(0x95), 0, 0, 0, 0);

    /// <summary>Ethernet + IPv4 parse: bounds checks, a protocol switch, a TTL read.</summary>
    public static ProgramSpec PacketParser() => new()
    {
        Name = "parse", SectionName = "xdp", Type = ProgramType.Xdp, License = "GPL",
        Instructions =
        [
            Ldx(AccessSize.Word, Register.R2, Register.R1, 0),
            Ldx(AccessSize.Word, Register.R3, Register.R1, 4),
            AluX(AluOperation.Mov, Register.R4, Register.R2),
            Alu(AluOperation.Add, Register.R4, 34),
            JmpX(JumpOperation.Jgt, Register.R4, Register.R3, 9),
            Ldx(AccessSize.Half, Register.R5, Register.R2, 12),
            Jmp(JumpOperation.Jne, Register.R5, 8, 7),
            Ldx(AccessSize.Byte, Register.R6, Register.R2, 23),
            Jmp(JumpOperation.Jeq, Register.R6, 6, 2),
            Jmp(JumpOperation.Jeq, Register.R6, 17, 1),
            Alu(AluOperation.Mov, Register.R0, 2),
            Ldx(AccessSize.Byte, Register.R7, Register.R2, 22),
            Alu(AluOperation.Mov, Register.R0, 2),
            Exit,
            Alu(AluOperation.Mov, Register.R0, 1),
            Exit,
        ],
    };

    /// <summary>A counted loop of 1000 iterations: the verifier walks every iteration, as the kernel does.</summary>
    public static ProgramSpec Loop() => new()
    {
        Name = "loop", SectionName = "xdp", Type = ProgramType.Xdp, License = "GPL",
        Instructions =
        [
            Alu(AluOperation.Mov, Register.R0, 0),
            Alu(AluOperation.Mov, Register.R1, 0),
            AluX(AluOperation.Add, Register.R0, Register.R1),
            Alu(AluOperation.Add, Register.R1, 1),
            Jmp(JumpOperation.Jlt, Register.R1, 1000, -3),
            Alu(AluOperation.Mov, Register.R0, 2),
            Exit,
        ],
    };

    private readonly ProgramSpec _parser = PacketParser();
    private readonly ProgramSpec _loop = Loop();

    [Benchmark(Baseline = true)]
    public bool VerifyPacketParser() => BpfVerifier.Verify(_parser).Accepted;

    [Benchmark]
    public bool VerifyLoop1000() => BpfVerifier.Verify(_loop).Accepted;

    /// <summary>Prints processed instructions and states per program (run with `--report`).</summary>
    public static void Report(TextWriter output)
    {
        foreach (var program in new[] { PacketParser(), Loop() })
        {
            var result = BpfVerifier.Verify(program);
            output.WriteLine($"{program.Name}: accepted={result.Accepted} processed={result.ProcessedInstructions} states={result.TotalStates} time={result.Elapsed.TotalMicroseconds:F0}us");
        }
    }
}
