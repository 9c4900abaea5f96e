using SharpBpf.Asm;

namespace SharpBpf.Tests.Asm;

public class AssemblerTests
{
    private static string Hex(string asm) =>
        string.Join(" ", Convert.ToHexString(InstructionCodec.Encode(Assembler.Assemble(asm))).ToLowerInvariant().Chunk(16).Select(c => new string(c)));

    [Theory]
    [InlineData("mov32 %r0, 1", "b400000001000000")]
    [InlineData("mov %r0, -1", "b7000000ffffffff")]
    [InlineData("add32 %r0, %r1", "0c10000000000000")]
    [InlineData("add64 %r3, 0x10", "0703000010000000")]
    [InlineData("neg %r2", "8702000000000000")]
    [InlineData("neg32 %r2", "8402000000000000")]
    [InlineData("sdiv %r0, 3", "3700010003000000")]
    [InlineData("smod32 %r0, %r1", "9c10010000000000")]
    [InlineData("movsx864 %r0, %r1", "bf10080000000000")]
    [InlineData("movsx1632 %r4, %r3", "bc34100000000000")]
    [InlineData("movsx3264 %r0, %r9", "bf90200000000000")]
    [InlineData("be16 %r1", "dc01000010000000")]
    [InlineData("le64 %r1", "d401000040000000")]
    [InlineData("bswap32 %r0", "d700000020000000")]
    [InlineData("swap16 %r0", "d700000010000000")]
    [InlineData("lddw %r0, 0x1122334455667788", "1800000088776655 0000000044332211")]
    [InlineData("lddw %r1, -1", "18010000ffffffff 00000000ffffffff")]
    [InlineData("lddw %r1, map_fd 3", "1811000003000000 0000000000000000")]
    [InlineData("lddw %r1, map_value 0x800000003", "1821000003000000 0000000008000000")]
    [InlineData("lddw %r1, map_idx_value 0", "1861000000000000 0000000000000000")]
    [InlineData("ldxdw %r0, [%r1+8]", "7910080000000000")]
    [InlineData("ldxb %r0, [%r1]", "7110000000000000")]
    [InlineData("ldxh %r0, [%r10-2]", "69a0feff00000000")]
    [InlineData("ldxsb %r0, [%r10-1]", "91a0ffff00000000")]
    [InlineData("ldxsw %r0, [%r1 + 4]", "8110040000000000")]
    [InlineData("stw [%r1+2], 0x11223344", "6201020044332211")]
    [InlineData("stxdw [%r10-8], %r1", "7b1af8ff00000000")]
    [InlineData("lock add [%r10-8], %r1", "db1af8ff00000000")]
    [InlineData("lock fetch add32 [%r10-4], %r1", "c31afcff01000000")]
    [InlineData("lock fetch xor [%r1], %r3", "db310000a1000000")]
    [InlineData("lock xchg [%r10-8], %r1", "db1af8ffe1000000")]
    [InlineData("lock cmpxchg32 [%r10-8], %r1", "c31af8fff1000000")]
    [InlineData("jeq %r1, 0x80000000, +1", "1501010000000080")]
    [InlineData("jne32 %r1, %r2, -2", "5e21feff00000000")]
    [InlineData("ja +0", "0500000000000000")]
    [InlineData("ja32 +5", "0600000005000000")]
    [InlineData("gotol -1", "06000000ffffffff")]
    [InlineData("call 5", "8500000005000000")]
    [InlineData("call %r2", "8d02000000000000")]
    [InlineData("call kfunc 77", "852000004d000000")]
    [InlineData("exit", "9500000000000000")]
    [InlineData("ldabsw 0x10", "2000000010000000")]
    [InlineData("ldindb %r1, 2", "5010000002000000")]
    public void AssemblesToTheExpectedBytes(string asm, string hex) => Assert.Equal(hex, Hex(asm));

    [Fact]
    public void LabelsResolveToRawSlotOffsetsCountingLddwAsTwo()
    {
        var insns = Assembler.Assemble("""
            start:
              jeq %r1, 0, end   # forward over an lddw
              lddw %r0, 1
              ja start
            end: exit
            """);
        Assert.Equal(3, insns[0].Offset);   // slots: 0 jeq, 1-2 lddw, 3 ja, 4 exit
        Assert.Equal(-4, insns[2].Offset);
    }

    [Fact]
    public void LocalCallsAndJa32PutTheOffsetInTheImmediate()
    {
        var insns = Assembler.Assemble("call local f\nja32 done\nf: mov %r0, 1\ndone: exit");
        Assert.Equal(1, insns[0].Immediate);
        Assert.Equal(CallKind.Local, (CallKind)insns[0].Src);
        Assert.Equal(1, insns[1].Immediate);
    }

    [Fact]
    public void ExitIsADefaultLabelForTheFirstExit()
    {
        var insns = Assembler.Assemble("jne %r0, 0, exit\nmov %r0, 1\nexit\nmov %r0, 2\nexit");
        Assert.Equal(1, insns[0].Offset);
    }

    [Theory]
    [InlineData("mov %r0, 1\n  mvo %r0, 2", 2, 3, "unknown mnemonic 'mvo'")]
    [InlineData("mov %r11, 1", 1, 5, "invalid register '%r11'")]
    [InlineData("mov32 %r0, 2147483648", 1, 12, "out of the 32-bit range")]
    [InlineData("mov32 %r0, -2147483649", 1, 12, "out of the 32-bit range")]
    [InlineData("mov32 %r0, 0x100000000", 1, 12, "out of the 32-bit range")]
    [InlineData("ldxw %r0, [%r1+32768]", 1, 15, "out of the 16-bit range")]
    [InlineData("ja nowhere", 1, 4, "unknown label 'nowhere'")]
    [InlineData("a:\na:\nexit", 2, 1, "defined twice")]
    [InlineData("add %r0", 1, 1, "takes 2 operands, found 1")]
    [InlineData("exit %r0", 1, 6, "takes 0 operands, found 1")]
    [InlineData("neg %r0, 1", 1, 10, "takes 1 operand, found 2")]
    [InlineData("lock nand [%r1], %r2", 1, 6, "unknown atomic operation 'nand'")]
    [InlineData("lddw %r1, map_ptr 3", 1, 11, "unknown lddw form 'map_ptr'")]
    [InlineData("stxw [%r1], 5", 1, 13, "expected a register")]
    [InlineData("ldxw %r0, %r1", 1, 11, "expected a memory operand")]
    [InlineData("mov %r0, zz", 1, 10, "expected an immediate")]
    public void ErrorsSayLineAndColumn(string asm, int line, int column, string message)
    {
        var e = Assert.Throws<AssemblerException>(() => Assembler.Assemble(asm));
        Assert.Equal(line, e.Line);
        Assert.Equal(column, e.Column);
        Assert.Contains(message, e.Message);
        Assert.StartsWith($"line {line}, column {column}: ", e.Message);
        Assert.IsAssignableFrom<BpfException>(e);
    }
}
