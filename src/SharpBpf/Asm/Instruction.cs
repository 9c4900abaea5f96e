namespace SharpBpf.Asm;

/// <summary>
/// One logical eBPF instruction. An lddw is a single instruction with a 64-bit <see cref="Constant"/> that
/// occupies two raw slots (<see cref="RawSize"/> = 2). All other instructions occupy one slot and keep their
/// 32-bit immediate, sign-extended, in <see cref="Constant"/>.
/// <para>
/// <see cref="Reference"/> names a symbol the instruction refers to until it is linked or encoded: the target of a
/// jump or bpf-to-bpf call (a label or function name), or the map or variable an lddw loads. Offsets in jumps are
/// in raw slots, as in the kernel.
/// </para>
/// </summary>
public readonly record struct Instruction(OpCode OpCode, Register Dst, Register Src, short Offset, long Constant)
{
    /// <summary>A symbol this instruction refers to (label, function, map or variable), or null.</summary>
    public string? Reference { get; init; }

    /// <summary>The 32-bit immediate as encoded in the first slot.</summary>
    public int Immediate => unchecked((int)Constant);

    /// <summary>True for lddw (LD|IMM|DW), the only 16-byte instruction.</summary>
    public bool IsLoadImmediate64 => OpCode.Value == 0x18;

    /// <summary>Raw 8-byte slots this instruction takes: 2 for lddw, 1 otherwise.</summary>
    public int RawSize => IsLoadImmediate64 ? 2 : 1;
}
