using System.Runtime.InteropServices;

namespace SharpBpf.Vm;

/// <summary>
/// One instruction as the engines execute it: 16 bytes, jump targets resolved to absolute instruction indexes,
/// lddw references resolved to their 64-bit value, and variants that the raw encoding tells apart only by a field
/// (sdiv by offset, movsx by offset, bswap width by imm, local call by src) given their own <see cref="Op"/> so
/// the interpreter dispatches once.
/// <code>
///   byte 0  byte 1  byte 2  byte 3   bytes 4-7              bytes 8-15
///   op    | dst   | src   | size  | offset or jump target | imm (64-bit: lddw value, helper id, atomic op)
/// </code>
/// <see cref="Op"/> is the kernel opcode byte for most instructions; the internal codes in <see cref="VmOp"/> use
/// slots of the LD class that eBPF leaves unused (everything but 0x18), and the ALU slots 0xe_/0xf_.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public struct DecodedInstruction
{
    public byte Op;
    public byte Dst;
    public byte Src;
    /// <summary>Access size in bytes for loads, stores and atomics.</summary>
    public byte Size;
    /// <summary>Memory offset for loads and stores; absolute target index for jumps and local calls.</summary>
    public int Offset;
    public long Imm;

    public override readonly string ToString() => $"op=0x{Op:x2} dst=r{Dst} src=r{Src} off={Offset} imm={Imm}";
}

/// <summary>Internal opcodes of <see cref="DecodedInstruction.Op"/> that do not exist in eBPF.</summary>
public static class VmOp
{
    /// <summary>Never produced by the decoder; placed after the last instruction so running off the end traps.</summary>
    public const byte FellOff = 0x00;
    public const byte MovSx64From8 = 0x08;
    public const byte MovSx64From16 = 0x10;
    public const byte MovSx64From32 = 0x20;
    public const byte MovSx32From8 = 0x28;
    public const byte MovSx32From16 = 0x30;
    /// <summary>dst = (u16)dst (to_le 16 on a little-endian host).</summary>
    public const byte Truncate16 = 0x38;
    /// <summary>dst = (u32)dst (to_le 32 on a little-endian host).</summary>
    public const byte Truncate32 = 0x40;
    /// <summary>No operation (to_le 64 on a little-endian host).</summary>
    public const byte Nop = 0x48;
    /// <summary>dst = bswap16((u16)dst).</summary>
    public const byte Swap16 = 0x50;
    /// <summary>dst = bswap32((u32)dst).</summary>
    public const byte Swap32 = 0x58;
    /// <summary>dst = bswap64(dst).</summary>
    public const byte Swap64 = 0x60;
    /// <summary>bpf_tail_call (helper 12): on success the run continues in the target program.</summary>
    public const byte TailCall = 0x70;
    /// <summary>bpf-to-bpf call; <see cref="DecodedInstruction.Offset"/> is the target index.</summary>
    public const byte LocalCall = 0x78;
    /// <summary>Plain 64-bit constant load (every lddw after its reference is resolved).</summary>
    public const byte LoadImm64 = 0x18;
    /// <summary>Unconditional jump (ja and gotol).</summary>
    public const byte Jump = 0x05;
    /// <summary>Helper call; Imm is the helper id.</summary>
    public const byte CallHelper = 0x85;
    /// <summary>Call through a register (callx): dst holds a helper id or a function address.</summary>
    public const byte CallRegister = 0x8d;
    public const byte Exit = 0x95;
    public const byte SDiv32Imm = 0xe4, SDiv32Reg = 0xec, SDiv64Imm = 0xe7, SDiv64Reg = 0xef;
    public const byte SMod32Imm = 0xf4, SMod32Reg = 0xfc, SMod64Imm = 0xf7, SMod64Reg = 0xff;
    public const byte AtomicWord = 0xc3, AtomicDoubleWord = 0xdb;
}
