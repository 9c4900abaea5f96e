using SharpBpf.Asm;

namespace SharpBpf.Tests.Asm;

public class RawInstructionTests
{
    [Fact]
    public void RoundTripsTheWireLayout()
    {
        // ldxw r0, [r1+8]: opcode 0x61, dst 0, src 1, off 8.
        byte[] bytes = [0x61, 0x10, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00];
        var insn = RawInstruction.Read(bytes);
        Assert.Equal(0x61, insn.OpCode);
        Assert.Equal(0, insn.DstNumber);
        Assert.Equal(1, insn.SrcNumber);
        Assert.Equal(8, insn.Offset);
        var back = new byte[8];
        insn.Write(back);
        Assert.Equal(bytes, back);
    }

    [Fact]
    public void OpCodeFieldsDecode()
    {
        var op = OpCode.Memory(InstructionClass.Stx, AccessMode.Atomic, AccessSize.DoubleWord);
        Assert.Equal(0xdb, op.Value);
        Assert.Equal(AccessMode.Atomic, op.Mode);
        Assert.Equal(8, op.SizeInBytes);
    }
}
