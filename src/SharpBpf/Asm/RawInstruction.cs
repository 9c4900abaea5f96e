using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace SharpBpf.Asm;

/// <summary>
/// One 8-byte instruction slot exactly as it is on the wire and in the kernel (struct bpf_insn), little endian.
/// <code>
///   byte 0     byte 1          bytes 2-3      bytes 4-7
///   opcode  | src:4 | dst:4 | offset (s16) | imm (s32)
/// </code>
/// An lddw takes two slots; the second has opcode 0 and carries the high 32 bits in its imm.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1, Size = 8)]
public readonly record struct RawInstruction(byte OpCode, byte Registers, short Offset, int Immediate)
{
    public const int Size = 8;

    public RawInstruction(byte opCode, Register dst, Register src, short offset, int immediate)
        : this(opCode, (byte)(((byte)src << 4) | ((byte)dst & 0x0f)), offset, immediate) { }

    /// <summary>Destination register number (0-15; only 0-10 are valid).</summary>
    public byte DstNumber => (byte)(Registers & 0x0f);

    /// <summary>Source register number (0-15; only 0-10 are valid).</summary>
    public byte SrcNumber => (byte)(Registers >> 4);

    public static RawInstruction Read(ReadOnlySpan<byte> bytes) => new(
        bytes[0], bytes[1],
        BinaryPrimitives.ReadInt16LittleEndian(bytes[2..]),
        BinaryPrimitives.ReadInt32LittleEndian(bytes[4..]));

    public void Write(Span<byte> bytes)
    {
        bytes[0] = OpCode;
        bytes[1] = Registers;
        BinaryPrimitives.WriteInt16LittleEndian(bytes[2..], Offset);
        BinaryPrimitives.WriteInt32LittleEndian(bytes[4..], Immediate);
    }

    public override string ToString() =>
        $"{OpCode:x2} {Registers:x2} {(ushort)Offset:x4} {(uint)Immediate:x8}";
}
