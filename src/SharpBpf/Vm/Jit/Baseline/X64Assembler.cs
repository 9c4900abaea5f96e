using System.Buffers.Binary;

namespace SharpBpf.Vm.Jit.Baseline;

/// <summary>x86-64 general-purpose registers, numbered as the encoding numbers them.</summary>
internal enum Reg : byte
{
    Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsp = 4, Rbp = 5, Rsi = 6, Rdi = 7,
    R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15,
}

/// <summary>x86 condition codes (the low nibble of Jcc).</summary>
internal enum Cond : byte
{
    Below = 0x2, AboveOrEqual = 0x3, Equal = 0x4, NotEqual = 0x5, BelowOrEqual = 0x6, Above = 0x7,
    Less = 0xc, GreaterOrEqual = 0xd, LessOrEqual = 0xe, Greater = 0xf,
}

/// <summary>Group-1 ALU operations: the opcode of the register form and the /digit of the immediate form.</summary>
internal enum Alu : byte
{
    Add = 0, Or = 1, And = 4, Sub = 5, Xor = 6, Cmp = 7,
}

/// <summary>Shift operations (the /digit of C1 and D3).</summary>
internal enum Shift : byte
{
    Shl = 4, Shr = 5, Sar = 7,
}

/// <summary>A position in the code that jumps can target before it is known.</summary>
internal readonly record struct AsmLabel(int Id);

/// <summary>
/// The x86-64 encoder of the baseline tier: just the instructions the code generator uses, each written in one call
/// into a growing byte buffer. Jumps are rel32 to labels, patched by <see cref="Finish"/>. Memory operands are
/// [base + disp] with a disp8 or disp32 (never mod 00, so rbp and r13 need no special case; rsp and r12 get their SIB).
/// </summary>
internal sealed class X64Assembler
{
    private byte[] _buffer;
    private int _length;
    private readonly List<int> _labels = [];
    private readonly List<(int At, int Label)> _fixups = [];

    public X64Assembler(int capacity) => _buffer = new byte[Math.Max(64, capacity)];

    public int Length => _length;

    public AsmLabel DefineLabel()
    {
        _labels.Add(-1);
        return new AsmLabel(_labels.Count - 1);
    }

    public void Mark(AsmLabel label) => _labels[label.Id] = _length;

    public bool IsMarked(AsmLabel label) => _labels[label.Id] >= 0;

    /// <summary>The code with every jump resolved.</summary>
    public ReadOnlySpan<byte> Finish()
    {
        foreach (var (at, label) in _fixups)
        {
            int target = _labels[label];
            if (target < 0)
                throw new InvalidOperationException($"label {label} was never placed");
            BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(at), target - (at + 4));
        }
        return _buffer.AsSpan(0, _length);
    }

    // ---- raw bytes ----------------------------------------------------------------------------------------------

    private void Byte(int b)
    {
        if (_length == _buffer.Length)
            Array.Resize(ref _buffer, _buffer.Length * 2);
        _buffer[_length++] = (byte)b;
    }

    private void Int32(int v)
    {
        if (_length + 4 > _buffer.Length)
            Array.Resize(ref _buffer, _buffer.Length * 2);
        BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(_length), v);
        _length += 4;
    }

    private void Int64(long v)
    {
        Int32((int)v);
        Int32((int)(v >> 32));
    }

    /// <summary>REX prefix when needed: W for 64-bit operands, R/B (and X) for r8-r15, and a bare REX for the byte
    /// registers spl, bpl, sil and dil (<paramref name="byteReg"/>).</summary>
    private void Rex(bool w, int reg, int rm, bool byteReg = false)
    {
        int rex = (w ? 8 : 0) | ((reg & 8) != 0 ? 4 : 0) | ((rm & 8) != 0 ? 1 : 0);
        if (rex != 0 || (byteReg && (reg is >= 4 and < 8 || rm is >= 4 and < 8)))
            Byte(0x40 | rex);
    }

    private void ModRmReg(int reg, int rm) => Byte(0xc0 | ((reg & 7) << 3) | (rm & 7));

    private void ModRmMem(int reg, Reg baseReg, int disp)
    {
        int b = (int)baseReg & 7;
        bool small = disp == (sbyte)disp;
        Byte((small ? 0x40 : 0x80) | ((reg & 7) << 3) | b);
        if (b == 4)
            Byte(0x24); // SIB: base rsp/r12, no index
        if (small) Byte(disp);
        else Int32(disp);
    }

    // ---- moves -------------------------------------------------------------------------------------------------

    /// <summary>mov dst, src (64-bit, or 32-bit which zero-extends).</summary>
    public void Mov(bool w, Reg dst, Reg src)
    {
        Rex(w, (int)src, (int)dst);
        Byte(0x89);
        ModRmReg((int)src, (int)dst);
    }

    /// <summary>dst = the 64-bit constant, in the shortest form.</summary>
    public void MovImm(Reg dst, long value)
    {
        if (value >= 0 && value <= uint.MaxValue)
        {
            MovImm32(dst, (uint)value);
        }
        else if (value == (int)value)
        {
            Rex(true, 0, (int)dst);
            Byte(0xc7);
            ModRmReg(0, (int)dst);
            Int32((int)value);
        }
        else
        {
            Rex(true, 0, (int)dst);
            Byte(0xb8 | ((int)dst & 7));
            Int64(value);
        }
    }

    /// <summary>mov r32, imm32 (zero-extends; xor for 0).</summary>
    public void MovImm32(Reg dst, uint value)
    {
        if (value == 0)
        {
            AluRR(Alu.Xor, false, dst, dst);
            return;
        }
        Rex(false, 0, (int)dst);
        Byte(0xb8 | ((int)dst & 7));
        Int32((int)value);
    }

    /// <summary>Loads <paramref name="size"/> bytes from [base+disp] into dst, zero- or sign-extended to 64 bits.</summary>
    public void Load(Reg dst, Reg baseReg, int disp, int size, bool signed)
    {
        int r = (int)dst, b = (int)baseReg;
        switch (size, signed)
        {
            case (1, false): Rex(false, r, b); Byte(0x0f); Byte(0xb6); break;
            case (2, false): Rex(false, r, b); Byte(0x0f); Byte(0xb7); break;
            case (4, false): Rex(false, r, b); Byte(0x8b); break;
            case (1, true): Rex(true, r, b); Byte(0x0f); Byte(0xbe); break;
            case (2, true): Rex(true, r, b); Byte(0x0f); Byte(0xbf); break;
            case (4, true): Rex(true, r, b); Byte(0x63); break;
            default: Rex(true, r, b); Byte(0x8b); break;
        }
        ModRmMem(r, baseReg, disp);
    }

    /// <summary>Stores the low <paramref name="size"/> bytes of src to [base+disp].</summary>
    public void Store(Reg baseReg, int disp, Reg src, int size)
    {
        int r = (int)src, b = (int)baseReg;
        switch (size)
        {
            case 1: Rex(false, r, b, byteReg: true); Byte(0x88); break;
            case 2: Byte(0x66); Rex(false, r, b); Byte(0x89); break;
            case 4: Rex(false, r, b); Byte(0x89); break;
            default: Rex(true, r, b); Byte(0x89); break;
        }
        ModRmMem(r, baseReg, disp);
    }

    /// <summary>Stores an immediate of <paramref name="size"/> bytes to [base+disp] (8 bytes: the imm32 sign-extended).</summary>
    public void StoreImm(Reg baseReg, int disp, int value, int size)
    {
        int b = (int)baseReg;
        switch (size)
        {
            case 1: Rex(false, 0, b); Byte(0xc6); ModRmMem(0, baseReg, disp); Byte(value); return;
            case 2:
                Byte(0x66); Rex(false, 0, b); Byte(0xc7); ModRmMem(0, baseReg, disp);
                Byte(value); Byte(value >> 8);
                return;
            case 4: Rex(false, 0, b); Byte(0xc7); ModRmMem(0, baseReg, disp); Int32(value); return;
            default: Rex(true, 0, b); Byte(0xc7); ModRmMem(0, baseReg, disp); Int32(value); return;
        }
    }

    /// <summary>lea dst, [base+disp].</summary>
    public void Lea(Reg dst, Reg baseReg, int disp)
    {
        Rex(true, (int)dst, (int)baseReg);
        Byte(0x8d);
        ModRmMem((int)dst, baseReg, disp);
    }

    /// <summary>movsx dst, src8/src16/src32 (to 64 bits, or to 32 bits zero-extended when !w).</summary>
    public void MovSx(bool w, Reg dst, Reg src, int fromSize)
    {
        int r = (int)dst, m = (int)src;
        switch (fromSize)
        {
            case 1: Rex(w, r, m, byteReg: true); Byte(0x0f); Byte(0xbe); break;
            case 2: Rex(w, r, m); Byte(0x0f); Byte(0xbf); break;
            default: Rex(true, r, m); Byte(0x63); break;
        }
        ModRmReg(r, m);
    }

    /// <summary>movzx dst32, src16 (zero-extends to 64).</summary>
    public void MovZx16(Reg dst, Reg src)
    {
        Rex(false, (int)dst, (int)src);
        Byte(0x0f);
        Byte(0xb7);
        ModRmReg((int)dst, (int)src);
    }

    // ---- arithmetic --------------------------------------------------------------------------------------------

    /// <summary>op dst, src.</summary>
    public void AluRR(Alu op, bool w, Reg dst, Reg src)
    {
        Rex(w, (int)src, (int)dst);
        Byte(((int)op << 3) | 0x01);
        ModRmReg((int)src, (int)dst);
    }

    /// <summary>op dst, imm32 (sign-extended for 64-bit operations).</summary>
    public void AluRI(Alu op, bool w, Reg dst, int imm)
    {
        Rex(w, 0, (int)dst);
        if (imm == (sbyte)imm)
        {
            Byte(0x83);
            ModRmReg((int)op, (int)dst);
            Byte(imm);
        }
        else
        {
            Byte(0x81);
            ModRmReg((int)op, (int)dst);
            Int32(imm);
        }
    }

    /// <summary>op dst, [base+disp] (64-bit, or 32-bit when !w).</summary>
    public void AluRM(Alu op, bool w, Reg dst, Reg baseReg, int disp)
    {
        Rex(w, (int)dst, (int)baseReg);
        Byte(((int)op << 3) | 0x03);
        ModRmMem((int)dst, baseReg, disp);
    }

    /// <summary>op qword (or dword when !w) [base+disp], imm32.</summary>
    public void AluMI(Alu op, bool w, Reg baseReg, int disp, int imm)
    {
        Rex(w, 0, (int)baseReg);
        bool small = imm == (sbyte)imm;
        Byte(small ? 0x83 : 0x81);
        ModRmMem((int)op, baseReg, disp);
        if (small) Byte(imm);
        else Int32(imm);
    }

    /// <summary>call rel32 to a label.</summary>
    public void Call(AsmLabel target)
    {
        Byte(0xe8);
        _fixups.Add((_length, target.Id));
        Int32(0);
    }

    /// <summary>cmp byte [base+disp], imm8.</summary>
    public void CmpByteMI(Reg baseReg, int disp, int imm)
    {
        Rex(false, 0, (int)baseReg);
        Byte(0x80);
        ModRmMem(7, baseReg, disp);
        Byte(imm);
    }

    /// <summary>test dst, src.</summary>
    public void Test(bool w, Reg a, Reg b)
    {
        Rex(w, (int)b, (int)a);
        Byte(0x85);
        ModRmReg((int)b, (int)a);
    }

    /// <summary>test dst, imm32 (sign-extended for 64-bit).</summary>
    public void TestImm(bool w, Reg a, int imm)
    {
        Rex(w, 0, (int)a);
        Byte(0xf7);
        ModRmReg(0, (int)a);
        Int32(imm);
    }

    /// <summary>imul dst, src (the low bits equal the unsigned product's).</summary>
    public void Imul(bool w, Reg dst, Reg src)
    {
        Rex(w, (int)dst, (int)src);
        Byte(0x0f);
        Byte(0xaf);
        ModRmReg((int)dst, (int)src);
    }

    /// <summary>imul dst, dst, imm32.</summary>
    public void ImulImm(bool w, Reg dst, int imm)
    {
        Rex(w, (int)dst, (int)dst);
        if (imm == (sbyte)imm)
        {
            Byte(0x6b);
            ModRmReg((int)dst, (int)dst);
            Byte(imm);
        }
        else
        {
            Byte(0x69);
            ModRmReg((int)dst, (int)dst);
            Int32(imm);
        }
    }

    public void Neg(bool w, Reg dst)
    {
        Rex(w, 0, (int)dst);
        Byte(0xf7);
        ModRmReg(3, (int)dst);
    }

    /// <summary>div src (unsigned: rdx:rax / src) or idiv src (signed).</summary>
    public void Div(bool w, Reg src, bool signed)
    {
        Rex(w, 0, (int)src);
        Byte(0xf7);
        ModRmReg(signed ? 7 : 6, (int)src);
    }

    /// <summary>cqo (64) or cdq (32): sign-extends rax into rdx.</summary>
    public void SignExtendAccumulator(bool w)
    {
        if (w) Byte(0x48);
        Byte(0x99);
    }

    public void ShiftImm(Shift op, bool w, Reg dst, int count)
    {
        Rex(w, 0, (int)dst);
        Byte(0xc1);
        ModRmReg((int)op, (int)dst);
        Byte(count);
    }

    /// <summary>Shift by cl.</summary>
    public void ShiftCl(Shift op, bool w, Reg dst)
    {
        Rex(w, 0, (int)dst);
        Byte(0xd3);
        ModRmReg((int)op, (int)dst);
    }

    /// <summary>rol r16, 8: swaps the two low bytes.</summary>
    public void Swap16(Reg dst)
    {
        Byte(0x66);
        Rex(false, 0, (int)dst);
        Byte(0xc1);
        ModRmReg(0, (int)dst);
        Byte(8);
    }

    public void Bswap(bool w, Reg dst)
    {
        Rex(w, 0, (int)dst);
        Byte(0x0f);
        Byte(0xc8 | ((int)dst & 7));
    }

    // ---- atomics -----------------------------------------------------------------------------------------------

    /// <summary>lock op [base], src for add, or, and, xor.</summary>
    public void LockAlu(Alu op, bool w, Reg baseReg, Reg src)
    {
        Byte(0xf0);
        Rex(w, (int)src, (int)baseReg);
        Byte(((int)op << 3) | 0x01);
        ModRmMem((int)src, baseReg, 0);
    }

    /// <summary>lock xadd [base], src.</summary>
    public void LockXadd(bool w, Reg baseReg, Reg src)
    {
        Byte(0xf0);
        Rex(w, (int)src, (int)baseReg);
        Byte(0x0f);
        Byte(0xc1);
        ModRmMem((int)src, baseReg, 0);
    }

    /// <summary>xchg [base], src (locked by the processor).</summary>
    public void Xchg(bool w, Reg baseReg, Reg src)
    {
        Rex(w, (int)src, (int)baseReg);
        Byte(0x87);
        ModRmMem((int)src, baseReg, 0);
    }

    /// <summary>lock cmpxchg [base], src (compares with rax; rax receives the old value when they differ).</summary>
    public void LockCmpXchg(bool w, Reg baseReg, Reg src)
    {
        Byte(0xf0);
        Rex(w, (int)src, (int)baseReg);
        Byte(0x0f);
        Byte(0xb1);
        ModRmMem((int)src, baseReg, 0);
    }

    // ---- control flow ------------------------------------------------------------------------------------------

    public void Jmp(AsmLabel target)
    {
        Byte(0xe9);
        _fixups.Add((_length, target.Id));
        Int32(0);
    }

    public void Jcc(Cond cond, AsmLabel target)
    {
        Byte(0x0f);
        Byte(0x80 | (int)cond);
        _fixups.Add((_length, target.Id));
        Int32(0);
    }

    /// <summary>call reg.</summary>
    public void Call(Reg target)
    {
        Rex(false, 0, (int)target);
        Byte(0xff);
        ModRmReg(2, (int)target);
    }

    public void Push(Reg r)
    {
        Rex(false, 0, (int)r);
        Byte(0x50 | ((int)r & 7));
    }

    public void Pop(Reg r)
    {
        Rex(false, 0, (int)r);
        Byte(0x58 | ((int)r & 7));
    }

    public void Ret() => Byte(0xc3);

    /// <summary>int3: padding that traps if ever executed.</summary>
    public void Int3() => Byte(0xcc);
}
