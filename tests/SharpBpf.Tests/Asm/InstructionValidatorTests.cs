using SharpBpf.Asm;

namespace SharpBpf.Tests.Asm;

public class InstructionValidatorTests
{
    private static InstructionException Refused(string asm) =>
        Assert.Throws<InstructionException>(() => InstructionValidator.Validate(Assembler.Assemble(asm)));

    [Theory]
    [InlineData("mov %r0, 0\nexit")]
    [InlineData("ja +0\nexit")]
    [InlineData("mov %r0, 0\nja -2")]
    [InlineData("mov %r0, 0\nja32 -2")]
    [InlineData("jeq %r1, 0, +2\nlddw %r0, 5\nexit")]
    [InlineData("call local f\nexit\nf: mov %r0, 1\nexit")]
    [InlineData("lddw %r1, func f\nexit\nf: exit")]
    public void AcceptsWellFormedPrograms(string asm) => InstructionValidator.Validate(Assembler.Assemble(asm));

    [Theory]
    [InlineData("ja +1\nexit", "instruction 0: ja: target 2 (offset +1) is outside the program (0-1)")]
    [InlineData("mov %r0, 0\njeq %r0, 0, -3\nexit", "instruction 1: jeq: target -1 (offset -3) is outside the program (0-2)")]
    [InlineData("ja32 +5\nexit", "instruction 0: ja32: target 6 (offset +5) is outside the program")]
    [InlineData("call local +9\nexit", "instruction 0: call local: target 10 (offset +9) is outside the program")]
    [InlineData("ja +1\nlddw %r0, 1\nexit", "instruction 0: ja: target 2 (offset +1) is the second slot of an lddw")]
    [InlineData("lddw %r1, func +2\nexit", "instruction 0: lddw: target 3 (offset +2) is outside the program (0-2)")]
    [InlineData("lddw %r1, func +0\nexit", "instruction 0: lddw: target 1 (offset +0) is the second slot of an lddw")]
    [InlineData("mov %r0, 0", "instruction 0: the program must end with exit or an unconditional jump, not mov")]
    [InlineData("exit\njne %r0, 0, -2", "instruction 1: the program must end with exit or an unconditional jump, not jne")]
    [InlineData("mov %r10, 0\nexit", "instruction 0: mov: writes r10, the read-only frame pointer")]
    [InlineData("ldxdw %r10, [%r1]\nexit", "instruction 0: ldxdw: writes r10, the read-only frame pointer")]
    [InlineData("lock fetch add [%r10-8], %r10\nexit", "instruction 0: lock fetch add: writes r10 (its src), the read-only frame pointer")]
    public void RefusesWithTheRawIndex(string asm, string message) => Assert.StartsWith(message, Refused(asm).Message);

    [Fact]
    public void StoresThroughR10AndCmpxchgFromR10AreFine() =>
        InstructionValidator.Validate(Assembler.Assemble("stxdw [%r10-8], %r10\nlock cmpxchg [%r10-8], %r10\nlock add [%r10-8], %r10\nexit"));

    [Fact]
    public void EmptyProgramIsRefused() =>
        Assert.Equal("instruction 0: the program is empty", Assert.Throws<InstructionException>(() => InstructionValidator.Validate([])).Message);

    [Fact]
    public void RawValidationChecksTheSecondLddwSlot()
    {
        var bytes = InstructionCodec.Encode(Assembler.Assemble("lddw %r0, 1\nexit"));
        InstructionValidator.ValidateBytes(bytes);
        bytes[8] = 0x07; // opcode of the second slot
        Assert.Contains("instruction 1: the second slot of lddw must have opcode, registers and offset zero",
            Assert.Throws<InstructionException>(() => InstructionValidator.ValidateBytes(bytes)).Message);
        bytes[8] = 0;
        bytes[10] = 1; // offset of the second slot
        Assert.Throws<InstructionException>(() => InstructionValidator.ValidateBytes(bytes));
    }

    [Fact]
    public void TruncatedLddwAndRaggedLengthsAreInstructionExceptions()
    {
        var bytes = InstructionCodec.Encode(Assembler.Assemble("lddw %r0, 1"));
        Assert.Contains("lddw is missing its second slot", Assert.Throws<InstructionException>(() => InstructionValidator.ValidateBytes(bytes.AsSpan(0, 8))).Message);
        Assert.Contains("not a multiple of 8", Assert.Throws<InstructionException>(() => InstructionValidator.ValidateBytes(bytes.AsSpan(0, 13))).Message);
    }

    [Fact]
    public void UnresolvedReferencesAreNotRangeChecked()
    {
        var program = new List<Instruction> { Insn.CallLocal("elsewhere"), Insn.Exit() };
        InstructionValidator.Validate(program);
    }
}
