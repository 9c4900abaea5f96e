namespace SharpBpf.Asm;

/// <summary>The three low bits of the opcode.</summary>
public enum InstructionClass : byte
{
    Ld = 0x00, Ldx = 0x01, St = 0x02, Stx = 0x03, Alu = 0x04, Jmp = 0x05, Jmp32 = 0x06, Alu64 = 0x07,
}

/// <summary>Bit 3 of an ALU or jump opcode: immediate (K) or register (X) operand. For END it selects to_le/to_be.</summary>
public enum OperandSource : byte
{
    Immediate = 0x00,
    Register = 0x08,
}

/// <summary>Bits 4-7 of an ALU/ALU64 opcode.</summary>
public enum AluOperation : byte
{
    Add = 0x00, Sub = 0x10, Mul = 0x20, Div = 0x30, Or = 0x40, And = 0x50, Lsh = 0x60, Rsh = 0x70,
    Neg = 0x80, Mod = 0x90, Xor = 0xa0, Mov = 0xb0, Arsh = 0xc0, End = 0xd0,
}

/// <summary>Bits 4-7 of a JMP/JMP32 opcode.</summary>
public enum JumpOperation : byte
{
    Ja = 0x00, Jeq = 0x10, Jgt = 0x20, Jge = 0x30, Jset = 0x40, Jne = 0x50, Jsgt = 0x60, Jsge = 0x70,
    Call = 0x80, Exit = 0x90, Jlt = 0xa0, Jle = 0xb0, Jslt = 0xc0, Jsle = 0xd0,
}

/// <summary>Bits 5-7 of a load/store opcode.</summary>
public enum AccessMode : byte
{
    Imm = 0x00, Abs = 0x20, Ind = 0x40, Mem = 0x60, MemSx = 0x80, Atomic = 0xc0,
}

/// <summary>Bits 3-4 of a load/store opcode.</summary>
public enum AccessSize : byte
{
    Word = 0x00, Half = 0x08, Byte = 0x10, DoubleWord = 0x18,
}

/// <summary>
/// The 8-bit opcode of an instruction, with typed views of its fields.
/// <code>
///   ALU / JMP:        | op:4 | source:1 | class:3 |
///   LD / LDX / ST / STX: | mode:3 | size:2 | class:3 |
/// </code>
/// </summary>
public readonly record struct OpCode(byte Value)
{
    public InstructionClass Class => (InstructionClass)(Value & 0x07);
    public OperandSource Source => (OperandSource)(Value & 0x08);
    public AluOperation AluOperation => (AluOperation)(Value & 0xf0);
    public JumpOperation JumpOperation => (JumpOperation)(Value & 0xf0);
    public AccessMode Mode => (AccessMode)(Value & 0xe0);
    public AccessSize Size => (AccessSize)(Value & 0x18);

    public bool IsAlu => Class is InstructionClass.Alu or InstructionClass.Alu64;
    public bool IsJump => Class is InstructionClass.Jmp or InstructionClass.Jmp32;
    public bool IsLoadStore => !IsAlu && !IsJump;

    /// <summary>Size in bytes of a memory access opcode (1, 2, 4 or 8).</summary>
    public int SizeInBytes => Size switch
    {
        AccessSize.Byte => 1,
        AccessSize.Half => 2,
        AccessSize.Word => 4,
        _ => 8,
    };

    public static OpCode Alu(InstructionClass @class, AluOperation op, OperandSource source) =>
        new((byte)((byte)@class | (byte)op | (byte)source));

    public static OpCode Jump(InstructionClass @class, JumpOperation op, OperandSource source) =>
        new((byte)((byte)@class | (byte)op | (byte)source));

    public static OpCode Memory(InstructionClass @class, AccessMode mode, AccessSize size) =>
        new((byte)((byte)@class | (byte)mode | (byte)size));

    public static implicit operator byte(OpCode opCode) => opCode.Value;

    public override string ToString() => $"0x{Value:x2}";
}

/// <summary>Atomic operations, carried in the immediate of a STX|ATOMIC instruction.</summary>
public enum AtomicOperation : int
{
    Add = 0x00, Or = 0x40, And = 0x50, Xor = 0xa0,
    FetchAdd = 0x01, FetchOr = 0x41, FetchAnd = 0x51, FetchXor = 0xa1,
    Xchg = 0xe1, CmpXchg = 0xf1,
}

/// <summary>The src field of an lddw (LD|IMM|DW) instruction: what its 64-bit constant means.</summary>
public enum LoadImmediateSource : byte
{
    /// <summary>A plain 64-bit constant.</summary>
    Immediate = 0,
    /// <summary>BPF_PSEUDO_MAP_FD: imm is a map fd; the register gets the map pointer.</summary>
    MapFd = 1,
    /// <summary>BPF_PSEUDO_MAP_VALUE: imm is a map fd, next imm an offset into value 0.</summary>
    MapValue = 2,
    /// <summary>BPF_PSEUDO_BTF_ID: the address of a kernel variable.</summary>
    BtfId = 3,
    /// <summary>BPF_PSEUDO_FUNC: the address of a BPF function (imm is a relative instruction offset).</summary>
    Function = 4,
    /// <summary>BPF_PSEUDO_MAP_IDX: imm is an index into the program's fd array.</summary>
    MapIndex = 5,
    /// <summary>BPF_PSEUDO_MAP_IDX_VALUE: map by index, next imm an offset into value 0.</summary>
    MapIndexValue = 6,
}

/// <summary>The src field of a CALL instruction.</summary>
public enum CallKind : byte
{
    /// <summary>A helper function, imm is its id.</summary>
    Helper = 0,
    /// <summary>BPF_PSEUDO_CALL: a bpf-to-bpf call, imm is the relative instruction offset.</summary>
    Local = 1,
    /// <summary>BPF_PSEUDO_KFUNC_CALL: a kernel function by BTF id.</summary>
    Kfunc = 2,
}
