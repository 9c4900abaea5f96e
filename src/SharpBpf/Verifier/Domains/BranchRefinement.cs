using SharpBpf.Asm;

namespace SharpBpf.Verifier.Domains;

/// <summary>
/// What a conditional jump teaches about two scalars on each of its two edges (the kernel's reg_set_min_max).
/// An empty result means that edge cannot be taken.
/// </summary>
public static class BranchRefinement
{
    /// <summary>The comparison that holds on the fall-through edge of <paramref name="op"/>.</summary>
    public static JumpOperation Negate(JumpOperation op) => op switch
    {
        JumpOperation.Jeq => JumpOperation.Jne,
        JumpOperation.Jne => JumpOperation.Jeq,
        JumpOperation.Jgt => JumpOperation.Jle,
        JumpOperation.Jle => JumpOperation.Jgt,
        JumpOperation.Jge => JumpOperation.Jlt,
        JumpOperation.Jlt => JumpOperation.Jge,
        JumpOperation.Jsgt => JumpOperation.Jsle,
        JumpOperation.Jsle => JumpOperation.Jsgt,
        JumpOperation.Jsge => JumpOperation.Jslt,
        JumpOperation.Jslt => JumpOperation.Jsge,
        _ => op,
    };

    /// <summary>The same comparison with its operands swapped (a &lt; b is b &gt; a).</summary>
    public static JumpOperation Swap(JumpOperation op) => op switch
    {
        JumpOperation.Jgt => JumpOperation.Jlt,
        JumpOperation.Jlt => JumpOperation.Jgt,
        JumpOperation.Jge => JumpOperation.Jle,
        JumpOperation.Jle => JumpOperation.Jge,
        JumpOperation.Jsgt => JumpOperation.Jslt,
        JumpOperation.Jslt => JumpOperation.Jsgt,
        JumpOperation.Jsge => JumpOperation.Jsle,
        JumpOperation.Jsle => JumpOperation.Jsge,
        _ => op,
    };

    /// <summary>
    /// Refines <paramref name="a"/> and <paramref name="b"/> assuming "a op b" holds (taken) or does not (not taken),
    /// on 64 bits or on the low 32 bits. Returns false when that cannot hold.
    /// </summary>
    public static bool Refine(JumpOperation op, bool taken, bool is32, ref Scalar a, ref Scalar b)
    {
        if (op == JumpOperation.Jset)
            return RefineJset(taken, is32, ref a, b);
        if (!taken)
            op = Negate(op);
        if (!is32)
        {
            if (!Refine64(op, ref a, ref b))
                return false;
            return !a.IsEmpty && !b.IsEmpty;
        }
        bool signed = op is JumpOperation.Jsgt or JumpOperation.Jsge or JumpOperation.Jslt or JumpOperation.Jsle;
        var a32 = signed ? a.SignExtend32() : a.ZeroExtend32();
        var b32 = signed ? b.SignExtend32() : b.ZeroExtend32();
        if (!Refine64(op, ref a32, ref b32) || a32.IsEmpty || b32.IsEmpty)
            return false;
        a = Merge32(a, a32, signed);
        b = Merge32(b, b32, signed);
        return !a.IsEmpty && !b.IsEmpty;
    }

    private static Scalar Merge32(Scalar full, Scalar low, bool signed)
    {
        var lowBits = low.Bits.Truncate(4);
        var bits = full.Bits.Intersect(new Tnum(lowBits.Value, lowBits.Mask | 0xffff_ffff_0000_0000UL));
        if (((full.Bits.Value ^ lowBits.Value) & ~(full.Bits.Mask | lowBits.Mask) & 0xffff_ffffUL) != 0)
            return full with { UMin = 1, UMax = 0 };
        var r = full with { Bits = bits };
        if (signed)
            r = r with { S32Min = Math.Max(r.S32Min, (int)low.SMin), S32Max = Math.Min(r.S32Max, (int)low.SMax) };
        else
            r = r with { U32Min = Math.Max(r.U32Min, (uint)low.UMin), U32Max = Math.Min(r.U32Max, (uint)low.UMax) };
        return r.Normalize();
    }

    private static bool Refine64(JumpOperation op, ref Scalar a, ref Scalar b)
    {
        switch (op)
        {
            case JumpOperation.Jeq:
            {
                var both = a.Intersect(b);
                if (both.IsEmpty)
                    return false;
                a = both;
                b = both;
                return true;
            }
            case JumpOperation.Jne:
                if (a.IsConst && b.IsConst)
                    return a.ConstValue != b.ConstValue;
                if (b.IsConst)
                    a = ExcludeEnd(a, b.ConstValue);
                else if (a.IsConst)
                    b = ExcludeEnd(b, a.ConstValue);
                return true;
            case JumpOperation.Jgt:
                if (b.UMin == ulong.MaxValue || a.UMax == 0)
                    return false;
                a = (a with { UMin = Math.Max(a.UMin, b.UMin + 1) }).Normalize();
                b = (b with { UMax = Math.Min(b.UMax, a.UMax - 1) }).Normalize();
                return true;
            case JumpOperation.Jge:
                a = (a with { UMin = Math.Max(a.UMin, b.UMin) }).Normalize();
                b = (b with { UMax = Math.Min(b.UMax, a.UMax) }).Normalize();
                return true;
            case JumpOperation.Jlt:
                return Refine64(JumpOperation.Jgt, ref b, ref a);
            case JumpOperation.Jle:
                return Refine64(JumpOperation.Jge, ref b, ref a);
            case JumpOperation.Jsgt:
                if (b.SMin == long.MaxValue || a.SMax == long.MinValue)
                    return false;
                a = (a with { SMin = Math.Max(a.SMin, b.SMin + 1) }).Normalize();
                b = (b with { SMax = Math.Min(b.SMax, a.SMax - 1) }).Normalize();
                return true;
            case JumpOperation.Jsge:
                a = (a with { SMin = Math.Max(a.SMin, b.SMin) }).Normalize();
                b = (b with { SMax = Math.Min(b.SMax, a.SMax) }).Normalize();
                return true;
            case JumpOperation.Jslt:
                return Refine64(JumpOperation.Jsgt, ref b, ref a);
            case JumpOperation.Jsle:
                return Refine64(JumpOperation.Jsge, ref b, ref a);
            default:
                return true;
        }
    }

    private static Scalar ExcludeEnd(Scalar a, ulong c)
    {
        if (a.UMin == c && a.UMin != ulong.MaxValue)
            a = a with { UMin = c + 1 };
        if (a.UMax == c && a.UMax != 0)
            a = a with { UMax = c - 1 };
        if (a.SMin == (long)c && a.SMin != long.MaxValue)
            a = a with { SMin = (long)c + 1 };
        if (a.SMax == (long)c && a.SMax != long.MinValue)
            a = a with { SMax = (long)c - 1 };
        return a.Normalize();
    }

    private static bool RefineJset(bool taken, bool is32, ref Scalar a, Scalar b)
    {
        if (!b.IsConst)
        {
            // Only a known mask teaches anything; both edges stay possible unless a is known.
            return true;
        }
        ulong mask = is32 ? (uint)b.ConstValue : b.ConstValue;
        ulong known1 = a.Bits.Value & mask, maybe = (a.Bits.Value | a.Bits.Mask) & mask;
        if (taken)
        {
            if (maybe == 0)
                return false;
            // A single-bit mask that is set pins that bit.
            if (System.Numerics.BitOperations.PopCount(mask) == 1)
                a = (a with { Bits = a.Bits.Intersect(new Tnum(mask, ~mask)) }).Normalize();
            return !a.IsEmpty;
        }
        if (known1 != 0)
            return false;
        a = (a with { Bits = a.Bits.Intersect(new Tnum(0, ~mask)) }).Normalize();
        return !a.IsEmpty;
    }
}
