namespace SharpBpf.Asm;

/// <summary>
/// Converts between raw 8-byte slots and logical <see cref="Instruction"/>s: an lddw's two slots become one
/// instruction with a 64-bit constant. Decoding does not validate; see the validator for that.
/// </summary>
public static class InstructionCodec
{
    /// <summary>Decodes raw bytes (a multiple of 8). A truncated final lddw is an <see cref="InstructionException"/>.</summary>
    public static List<Instruction> Decode(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % RawInstruction.Size != 0)
            throw new InstructionException($"program length {bytes.Length} is not a multiple of 8 bytes", bytes.Length / RawInstruction.Size);
        var result = new List<Instruction>(bytes.Length / RawInstruction.Size);
        for (int slot = 0; slot * RawInstruction.Size < bytes.Length; slot++)
        {
            var raw = RawInstruction.Read(bytes[(slot * RawInstruction.Size)..]);
            long constant = raw.Immediate;
            if (raw.OpCode == 0x18)
            {
                if ((slot + 1) * RawInstruction.Size >= bytes.Length)
                    throw new InstructionException("lddw is missing its second slot", slot);
                var high = RawInstruction.Read(bytes[((slot + 1) * RawInstruction.Size)..]);
                constant = (long)(((ulong)(uint)high.Immediate << 32) | (uint)raw.Immediate);
                slot++;
            }
            result.Add(new Instruction(new OpCode(raw.OpCode), (Register)raw.DstNumber, (Register)raw.SrcNumber, raw.Offset, constant));
        }
        return result;
    }

    /// <summary>Number of raw slots the instructions take.</summary>
    public static int RawLength(IReadOnlyList<Instruction> instructions)
    {
        int n = 0;
        foreach (var insn in instructions)
            n += insn.RawSize;
        return n;
    }

    /// <summary>Encodes instructions to raw slots. References must have been resolved already.</summary>
    public static byte[] Encode(IReadOnlyList<Instruction> instructions)
    {
        var bytes = new byte[RawLength(instructions) * RawInstruction.Size];
        int offset = 0;
        foreach (var insn in instructions)
        {
            new RawInstruction(insn.OpCode.Value, insn.Dst, insn.Src, insn.Offset, insn.Immediate).Write(bytes.AsSpan(offset));
            offset += RawInstruction.Size;
            if (insn.IsLoadImmediate64)
            {
                new RawInstruction(0, 0, 0, (int)(insn.Constant >> 32)).Write(bytes.AsSpan(offset));
                offset += RawInstruction.Size;
            }
        }
        return bytes;
    }
}

/// <summary>An invalid instruction or instruction stream. Says which instruction (raw slot index).</summary>
public class InstructionException : BpfException
{
    public InstructionException(string message, int rawIndex)
        : base($"instruction {rawIndex}: {message}")
    {
        RawIndex = rawIndex;
    }

    /// <summary>Index of the offending 8-byte slot.</summary>
    public int RawIndex { get; }
}
