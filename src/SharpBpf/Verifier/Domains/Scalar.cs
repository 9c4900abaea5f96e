namespace SharpBpf.Verifier.Domains;

/// <summary>
/// What is known of a 64-bit value: its known bits (<see cref="Tnum"/>) and four ranges, unsigned and signed, over
/// the full 64 bits and over the low 32 bits. Each view can prove things the others cannot (a masked value has a
/// tight tnum, a compared one tight ranges); <see cref="Normalize"/> lets each tighten the others, as the kernel's
/// reg_bounds_sync does. An empty scalar (<see cref="IsEmpty"/>) means the path that produced it is impossible.
/// </summary>
public readonly record struct Scalar(
    Tnum Bits,
    ulong UMin, ulong UMax, long SMin, long SMax,
    uint U32Min, uint U32Max, int S32Min, int S32Max)
{
    public static readonly Scalar Unknown = new(Tnum.Unknown, 0, ulong.MaxValue, long.MinValue, long.MaxValue,
        0, uint.MaxValue, int.MinValue, int.MaxValue);

    public static Scalar Const(ulong value) => new(Tnum.Const(value), value, value, (long)value, (long)value,
        (uint)value, (uint)value, (int)(uint)value, (int)(uint)value);

    public static Scalar Const(long value) => Const((ulong)value);

    /// <summary>Any value in [min, max] (unsigned).</summary>
    public static Scalar URange(ulong min, ulong max) => (Unknown with { UMin = min, UMax = max }).Normalize();

    /// <summary>Any value in [min, max] (signed).</summary>
    public static Scalar SRange(long min, long max) => (Unknown with { SMin = min, SMax = max }).Normalize();

    /// <summary>Any value that fits in <paramref name="bytes"/> bytes, zero-extended.</summary>
    public static Scalar OfSize(int bytes) => bytes switch
    {
        >= 8 => Unknown,
        4 => s_size4,
        2 => s_size2,
        1 => s_size1,
        _ => URange(0, (1UL << (bytes * 8)) - 1),
    };

    // Every load makes one: normalising it each time was a tenth of the verifier's time.
    private static readonly Scalar s_size1 = URange(0, 0xff), s_size2 = URange(0, 0xffff), s_size4 = URange(0, 0xffff_ffff);

    public bool IsConst => Bits.IsConst && UMin == UMax;
    public ulong ConstValue => Bits.Value;

    public bool IsEmpty => UMin > UMax || SMin > SMax || U32Min > U32Max || S32Min > S32Max
        || !Bits.Contains(Bits.Value) || UMin > Bits.UMax || UMax < Bits.UMin;

    /// <summary>True when every value of this scalar is a value of <paramref name="outer"/>.</summary>
    public bool IsWithin(Scalar outer) =>
        UMin >= outer.UMin && UMax <= outer.UMax && SMin >= outer.SMin && SMax <= outer.SMax
        && U32Min >= outer.U32Min && U32Max <= outer.U32Max && S32Min >= outer.S32Min && S32Max <= outer.S32Max
        && Bits.IsWithin(outer.Bits);

    /// <summary>Lets the five views tighten each other (several rounds, as each can feed the next).</summary>
    public Scalar Normalize()
    {
        var s = this;
        for (int round = 0; round < 3; round++)
        {
            var before = s;
            s = s.FromBits().CrossSign64().CrossSign32().Between32And64();
            s = s with { Bits = s.Bits.Intersect(Tnum.Range(s.UMin, s.UMax)) };
            var low = Tnum.Range(s.U32Min, s.U32Max);
            s = s with { Bits = s.Bits.Intersect(new Tnum(low.Value, low.Mask | 0xffff_ffff_0000_0000UL)) };
            if (s == before || s.IsEmpty)
                break;
        }
        return s;
    }

    private Scalar FromBits()
    {
        var low = Bits.Truncate(4);
        int s32min = (int)(uint)(low.Value | (low.Mask & 0x8000_0000));
        int s32max = (int)(uint)(low.Value | (low.Mask & 0x7fff_ffff));
        return this with
        {
            UMin = Math.Max(UMin, Bits.UMin),
            UMax = Math.Min(UMax, Bits.UMax),
            SMin = Math.Max(SMin, Bits.SMin),
            SMax = Math.Min(SMax, Bits.SMax),
            U32Min = Math.Max(U32Min, (uint)low.UMin),
            U32Max = Math.Min(U32Max, (uint)low.UMax),
            S32Min = Math.Max(S32Min, s32min),
            S32Max = Math.Min(S32Max, s32max),
        };
    }

    private Scalar CrossSign64()
    {
        var s = this;
        // A signed range that does not cross zero is also an unsigned range, and the other way round.
        if (s.SMin >= 0 || s.SMax < 0)
            s = s with { UMin = Math.Max(s.UMin, (ulong)s.SMin), UMax = Math.Min(s.UMax, (ulong)s.SMax) };
        if ((long)s.UMin >= 0 == (long)s.UMax >= 0)
            s = s with { SMin = Math.Max(s.SMin, (long)s.UMin), SMax = Math.Min(s.SMax, (long)s.UMax) };
        return s;
    }

    private Scalar CrossSign32()
    {
        var s = this;
        if (s.S32Min >= 0 || s.S32Max < 0)
            s = s with { U32Min = Math.Max(s.U32Min, (uint)s.S32Min), U32Max = Math.Min(s.U32Max, (uint)s.S32Max) };
        if ((int)s.U32Min >= 0 == (int)s.U32Max >= 0)
            s = s with { S32Min = Math.Max(s.S32Min, (int)s.U32Min), S32Max = Math.Min(s.S32Max, (int)s.U32Max) };
        return s;
    }

    private Scalar Between32And64()
    {
        var s = this;
        // 64 -> 32: when the upper halves of the ends agree, the low halves form a range.
        if ((s.UMin >> 32) == (s.UMax >> 32))
            s = s with { U32Min = Math.Max(s.U32Min, (uint)s.UMin), U32Max = Math.Min(s.U32Max, (uint)s.UMax) };
        if ((s.SMin >> 32) == (s.SMax >> 32) && (int)s.SMin <= (int)s.SMax)
            s = s with { S32Min = Math.Max(s.S32Min, (int)s.SMin), S32Max = Math.Min(s.S32Max, (int)s.SMax) };
        // 32 -> 64: when the upper 32 bits are known, the 64-bit value is those bits over the 32-bit range.
        if ((s.Bits.Mask >> 32) == 0)
        {
            ulong high = s.Bits.Value & 0xffff_ffff_0000_0000UL;
            ulong lo = high | s.U32Min, hi = high | s.U32Max;
            s = s with { UMin = Math.Max(s.UMin, lo), UMax = Math.Min(s.UMax, hi) };
            if ((long)lo >= 0 == (long)hi >= 0)
                s = s with { SMin = Math.Max(s.SMin, (long)lo), SMax = Math.Min(s.SMax, (long)hi) };
        }
        return s;
    }

    /// <summary>The low 32 bits, zero-extended (what a 32-bit ALU result or a 32-bit load leaves).</summary>
    public Scalar ZeroExtend32()
    {
        var bits = Bits.Truncate(4);
        return new Scalar(bits, U32Min, U32Max, U32Min, U32Max, U32Min, U32Max,
            (int)U32Min <= (int)U32Max && ((int)U32Min >= 0) == ((int)U32Max >= 0) ? (int)U32Min : int.MinValue,
            (int)U32Min <= (int)U32Max && ((int)U32Min >= 0) == ((int)U32Max >= 0) ? (int)U32Max : int.MaxValue).Normalize();
    }

    /// <summary>The low 32 bits, sign-extended to 64 bits.</summary>
    public Scalar SignExtend32()
    {
        var bits = Bits.Truncate(4);
        ulong sign = 0x8000_0000;
        Tnum ext;
        if ((bits.Mask & sign) != 0)
            ext = new Tnum(bits.Value, bits.Mask | 0xffff_ffff_0000_0000UL);
        else if ((bits.Value & sign) != 0)
            ext = new Tnum(bits.Value | 0xffff_ffff_0000_0000UL, bits.Mask);
        else
            ext = bits;
        return (Unknown with { Bits = ext, SMin = S32Min, SMax = S32Max, S32Min = S32Min, S32Max = S32Max }).Normalize();
    }

    /// <summary>Every value of either (used where two paths meet in a register copy, e.g. helper sizes).</summary>
    public Scalar Union(Scalar other) => new(Bits.Union(other.Bits),
        Math.Min(UMin, other.UMin), Math.Max(UMax, other.UMax), Math.Min(SMin, other.SMin), Math.Max(SMax, other.SMax),
        Math.Min(U32Min, other.U32Min), Math.Max(U32Max, other.U32Max), Math.Min(S32Min, other.S32Min), Math.Max(S32Max, other.S32Max));

    /// <summary>Values allowed by both; may be empty.</summary>
    public Scalar Intersect(Scalar other) => new Scalar(Bits.Intersect(other.Bits),
        Math.Max(UMin, other.UMin), Math.Min(UMax, other.UMax), Math.Max(SMin, other.SMin), Math.Min(SMax, other.SMax),
        Math.Max(U32Min, other.U32Min), Math.Min(U32Max, other.U32Max), Math.Max(S32Min, other.S32Min), Math.Min(S32Max, other.S32Max))
        .NormalizeUnlessDisjoint(Bits.DisjointFrom(other.Bits));

    private Scalar NormalizeUnlessDisjoint(bool disjoint) => disjoint ? this with { UMin = 1, UMax = 0 } : Normalize();

    public override string ToString()
    {
        if (IsConst)
            return $"{(long)ConstValue}";
        var parts = new List<string>();
        if (SMin != long.MinValue) parts.Add($"smin={SMin}");
        if (SMax != long.MaxValue) parts.Add($"smax={SMax}");
        if (UMin != 0) parts.Add($"umin={UMin}");
        if (UMax != ulong.MaxValue) parts.Add($"umax={UMax}");
        if (S32Min != int.MinValue && S32Min != SMin) parts.Add($"smin32={S32Min}");
        if (S32Max != int.MaxValue && S32Max != SMax) parts.Add($"smax32={S32Max}");
        if (U32Min != 0 && U32Min != UMin) parts.Add($"umin32={U32Min}");
        if (U32Max != uint.MaxValue && U32Max != UMax) parts.Add($"umax32={U32Max}");
        if (Bits.Mask != ulong.MaxValue) parts.Add($"var_off={Bits}");
        return parts.Count == 0 ? "?" : string.Join(",", parts);
    }
}
