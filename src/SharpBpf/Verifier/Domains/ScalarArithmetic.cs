using SharpBpf.Asm;

namespace SharpBpf.Verifier.Domains;

/// <summary>
/// How ALU instructions change what is known of scalars. 64-bit operations compute each view of the result and let
/// <see cref="Scalar.Normalize"/> combine them; 32-bit operations work on the zero-extended low halves and keep the
/// low 32 bits of the result (so one set of rules serves both widths). Every rule over-approximates: when a range
/// could wrap, it is dropped and the known bits decide.
/// </summary>
public static class ScalarArithmetic
{
    /// <summary>Applies <paramref name="op"/> (not Mov, Neg handled as 0 - a, End and MovSx elsewhere).</summary>
    public static Scalar Apply(AluOperation op, Scalar a, Scalar b, bool is64, bool signed = false)
    {
        if (!is64)
        {
            if (op == AluOperation.Arsh)
                return Apply64(op, a.SignExtend32(), b.ZeroExtend32(), 32, signed).ZeroExtend32();
            if (signed && op is AluOperation.Div or AluOperation.Mod)
            {
                if (a.IsConst && b.IsConst)
                    return Scalar.Const((ulong)(uint)SignedDivMod32(op, (int)(uint)a.ConstValue, (int)(uint)b.ConstValue));
                return Scalar.OfSize(4);
            }
            return Apply64(op, a.ZeroExtend32(), b.ZeroExtend32(), 32, signed).ZeroExtend32();
        }
        return Apply64(op, a, b, 64, signed);
    }

    private static Scalar Apply64(AluOperation op, Scalar a, Scalar b, int width, bool signed)
    {
        if (a.IsConst && b.IsConst)
            return Scalar.Const(Evaluate(op, a.ConstValue, b.ConstValue, width, signed));
        switch (op)
        {
            case AluOperation.Add:
            {
                var r = Scalar.Unknown with { Bits = a.Bits + b.Bits };
                if (!AddOverflows(a.UMax, b.UMax))
                    r = r with { UMin = a.UMin + b.UMin, UMax = a.UMax + b.UMax };
                if (!SignedAddOverflows(a.SMin, b.SMin) && !SignedAddOverflows(a.SMax, b.SMax))
                    r = r with { SMin = a.SMin + b.SMin, SMax = a.SMax + b.SMax };
                return r.Normalize();
            }
            case AluOperation.Sub:
            {
                var r = Scalar.Unknown with { Bits = a.Bits - b.Bits };
                if (a.UMin >= b.UMax)
                    r = r with { UMin = a.UMin - b.UMax, UMax = a.UMax - b.UMin };
                if (!SignedSubOverflows(a.SMin, b.SMax) && !SignedSubOverflows(a.SMax, b.SMin))
                    r = r with { SMin = a.SMin - b.SMax, SMax = a.SMax - b.SMin };
                return r.Normalize();
            }
            case AluOperation.Mul:
            {
                var r = Scalar.Unknown with { Bits = a.Bits * b.Bits };
                if (a.UMax <= uint.MaxValue && b.UMax <= uint.MaxValue)
                    r = r with { UMin = a.UMin * b.UMin, UMax = a.UMax * b.UMax };
                return r.Normalize();
            }
            case AluOperation.Div:
                if (signed)
                    return Scalar.Unknown;
                // Division by zero gives 0, so 0 is always possible unless the divisor is known non-zero.
                if (b.UMin > 0)
                    return Scalar.URange(a.UMin / b.UMax, a.UMax / b.UMin);
                return Scalar.URange(0, a.UMax);
            case AluOperation.Mod:
                if (signed)
                    return Scalar.Unknown;
                // Modulo by zero leaves the dividend unchanged.
                if (b.UMin > 0)
                    return Scalar.URange(0, Math.Min(a.UMax, b.UMax - 1));
                return Scalar.URange(0, a.UMax);
            case AluOperation.And:
            {
                var r = Scalar.Unknown with { Bits = a.Bits & b.Bits, UMax = Math.Min(a.UMax, b.UMax) };
                if (a.SMin >= 0 || b.SMin >= 0)
                    r = r with { SMin = 0, SMax = Math.Min(a.SMin >= 0 ? a.SMax : long.MaxValue, b.SMin >= 0 ? b.SMax : long.MaxValue) };
                return r.Normalize();
            }
            case AluOperation.Or:
                return (Scalar.Unknown with { Bits = a.Bits | b.Bits, UMin = Math.Max(a.UMin, b.UMin) }).Normalize();
            case AluOperation.Xor:
                return (Scalar.Unknown with { Bits = a.Bits ^ b.Bits }).Normalize();
            case AluOperation.Lsh:
            case AluOperation.Rsh:
            case AluOperation.Arsh:
                return Shift(op, a, b, width);
            default:
                return Scalar.Unknown;
        }
    }

    private static Scalar Shift(AluOperation op, Scalar a, Scalar b, int width)
    {
        // The kernel only tracks shifts by a known amount below the width; anything else is unknown.
        if (!b.IsConst || b.ConstValue >= (ulong)width)
            return width == 32 ? Scalar.OfSize(4) : Scalar.Unknown;
        int n = (int)b.ConstValue;
        switch (op)
        {
            case AluOperation.Lsh:
            {
                var r = Scalar.Unknown with { Bits = a.Bits.ShiftLeft(n) };
                if (n == 0 || a.UMax >> (64 - n) == 0)
                    r = r with { UMin = a.UMin << n, UMax = a.UMax << n };
                return r.Normalize();
            }
            case AluOperation.Rsh:
                return (Scalar.Unknown with { Bits = a.Bits.ShiftRight(n), UMin = a.UMin >> n, UMax = a.UMax >> n }).Normalize();
            default:
                // 32-bit operands arrive sign-extended to 64 bits, so a 64-bit arithmetic shift is right for both.
                return (Scalar.Unknown with { Bits = a.Bits.ArithmeticShiftRight(n, 64), SMin = a.SMin >> n, SMax = a.SMax >> n }).Normalize();
        }
    }

    /// <summary>The exact result on known operands, with the kernel's semantics for corner cases.</summary>
    public static ulong Evaluate(AluOperation op, ulong a, ulong b, int width, bool signed)
    {
        int shiftMask = width - 1;
        return op switch
        {
            AluOperation.Add => a + b,
            AluOperation.Sub => a - b,
            AluOperation.Mul => a * b,
            AluOperation.Div when signed => b == 0 ? 0 : (long)b == -1 ? (ulong)(-(long)a) : (ulong)((long)a / (long)b),
            AluOperation.Div => b == 0 ? 0 : a / b,
            AluOperation.Mod when signed => b == 0 ? a : (long)b == -1 ? 0 : (ulong)((long)a % (long)b),
            AluOperation.Mod => b == 0 ? a : a % b,
            AluOperation.Or => a | b,
            AluOperation.And => a & b,
            AluOperation.Xor => a ^ b,
            AluOperation.Lsh => a << (int)(b & (ulong)shiftMask),
            AluOperation.Rsh => a >> (int)(b & (ulong)shiftMask),
            AluOperation.Arsh => (ulong)((long)a >> (int)(b & (ulong)shiftMask)),
            _ => 0,
        };
    }

    private static int SignedDivMod32(AluOperation op, int a, int b)
    {
        if (op == AluOperation.Div)
            return b == 0 ? 0 : b == -1 ? unchecked(-a) : a / b;
        return b == 0 ? a : b == -1 ? 0 : a % b;
    }

    /// <summary>BPF_END: to_le of 64 bits is a no-op on a little-endian machine; narrower sizes truncate; byte swaps
    /// of unknown values keep only the width.</summary>
    public static Scalar ByteSwap(Scalar a, int bits, bool swap)
    {
        int bytes = bits / 8;
        if (!swap)
            return bytes >= 8 ? a : (a.Bits.Truncate(bytes) is var t ? (Scalar.OfSize(bytes) with { Bits = t }).Normalize() : a);
        if (a.IsConst)
        {
            ulong v = a.ConstValue;
            ulong r = bytes switch
            {
                2 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)v),
                4 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)v),
                _ => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v),
            };
            return Scalar.Const(r);
        }
        return Scalar.OfSize(bytes);
    }

    /// <summary>movsx: the low <paramref name="bits"/> bits sign-extended to 64 bits.</summary>
    public static Scalar SignExtend(Scalar a, int bits)
    {
        if (bits >= 64)
            return a;
        if (a.IsConst)
        {
            int shift = 64 - bits;
            return Scalar.Const((ulong)(((long)a.ConstValue << shift) >> shift));
        }
        ulong half = 1UL << (bits - 1);
        if (a.UMax < half)
            return a;
        return Scalar.SRange(-(long)half, (long)half - 1);
    }

    private static bool AddOverflows(ulong a, ulong b) => a + b < a;
    private static bool SignedAddOverflows(long a, long b) => b > 0 ? a > long.MaxValue - b : a < long.MinValue - b;
    private static bool SignedSubOverflows(long a, long b) => b < 0 ? a > long.MaxValue + b : a < long.MinValue + b;
}
