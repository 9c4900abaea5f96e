using System.Numerics;

namespace SharpBpf.Verifier.Domains;

/// <summary>
/// A tristate number: for each of 64 bits, known 0, known 1 or unknown. <see cref="Value"/> holds the known ones,
/// <see cref="Mask"/> the unknown bits; a bit is never set in both. (The abstract domain the kernel calls tnum.)
/// <code>
///   bit:   Mask=0 Value=0 -> 0    Mask=0 Value=1 -> 1    Mask=1 Value=0 -> x (unknown)
/// </code>
/// </summary>
public readonly record struct Tnum(ulong Value, ulong Mask)
{
    public static readonly Tnum Unknown = new(0, ulong.MaxValue);

    public static Tnum Const(ulong value) => new(value, 0);

    /// <summary>The smallest tnum containing every value of [min, max] (unsigned).</summary>
    public static Tnum Range(ulong min, ulong max)
    {
        ulong chi = min ^ max;
        int bits = 64 - BitOperations.LeadingZeroCount(chi);
        if (bits > 63)
            return Unknown;
        ulong delta = (1UL << bits) - 1;
        return new(min & ~delta, delta);
    }

    public bool IsConst => Mask == 0;

    /// <summary>True when every value this tnum allows is also allowed by <paramref name="outer"/>.</summary>
    public bool IsWithin(Tnum outer) => (Mask & ~outer.Mask) == 0 && outer.Value == (Value & ~outer.Mask);

    /// <summary>True when <paramref name="v"/> is one of the values.</summary>
    public bool Contains(ulong v) => (v & ~Mask) == Value;

    /// <summary>Smallest and largest unsigned values.</summary>
    public ulong UMin => Value;
    public ulong UMax => Value | Mask;

    /// <summary>Smallest signed value: sign bit set if it may be, other unknown bits clear.</summary>
    public long SMin => (long)(Value | (Mask & 0x8000_0000_0000_0000UL));
    public long SMax => (long)(Value | (Mask & 0x7fff_ffff_ffff_ffffUL));

    public static Tnum operator +(Tnum a, Tnum b)
    {
        ulong sm = a.Mask + b.Mask;
        ulong sv = a.Value + b.Value;
        ulong carries = (sm + sv) ^ sv;
        ulong mu = carries | a.Mask | b.Mask;
        return new(sv & ~mu, mu);
    }

    public static Tnum operator -(Tnum a, Tnum b)
    {
        ulong dv = a.Value - b.Value;
        ulong alpha = dv + a.Mask;
        ulong beta = dv - b.Mask;
        ulong mu = (alpha ^ beta) | a.Mask | b.Mask;
        return new(dv & ~mu, mu);
    }

    public static Tnum operator &(Tnum a, Tnum b)
    {
        ulong alpha = a.Value | a.Mask;
        ulong beta = b.Value | b.Mask;
        ulong v = a.Value & b.Value;
        return new(v, alpha & beta & ~v);
    }

    public static Tnum operator |(Tnum a, Tnum b)
    {
        ulong v = a.Value | b.Value;
        ulong mu = a.Mask | b.Mask;
        return new(v, mu & ~v);
    }

    public static Tnum operator ^(Tnum a, Tnum b)
    {
        ulong v = a.Value ^ b.Value;
        ulong mu = a.Mask | b.Mask;
        return new(v & ~mu, mu);
    }

    /// <summary>Multiplication by shift-and-add: every partial product of a possibly-set bit of a adds
    /// uncertainty; known bits of both give the exact product of the known parts.</summary>
    public static Tnum operator *(Tnum a, Tnum b)
    {
        ulong exact = a.Value * b.Value;
        var uncertainty = Const(0);
        while (a.Value != 0 || a.Mask != 0)
        {
            if ((a.Value & 1) != 0)
                uncertainty += new Tnum(0, b.Mask);
            else if ((a.Mask & 1) != 0)
                uncertainty += new Tnum(0, b.Value | b.Mask);
            a = a.ShiftRight(1);
            b = b.ShiftLeft(1);
        }
        return Const(exact) + uncertainty;
    }

    public Tnum ShiftLeft(int n) => new(Value << n, Mask << n);
    public Tnum ShiftRight(int n) => new(Value >> n, Mask >> n);

    /// <summary>Arithmetic shift right of the low <paramref name="bits"/> (32 or 64) bits; the result is
    /// zero-extended from that width.</summary>
    public Tnum ArithmeticShiftRight(int n, int bits)
    {
        if (bits == 32)
            return new((uint)((int)(uint)Value >> n), (uint)((int)(uint)Mask >> n));
        return new((ulong)((long)Value >> n), (ulong)((long)Mask >> n));
    }

    /// <summary>Values allowed by both.</summary>
    public Tnum Intersect(Tnum other)
    {
        ulong v = Value | other.Value;
        ulong mu = Mask & other.Mask;
        return new(v & ~mu, mu);
    }

    /// <summary>True when no value is allowed by both (a bit known 0 in one and 1 in the other).</summary>
    public bool DisjointFrom(Tnum other) => ((Value ^ other.Value) & ~(Mask | other.Mask)) != 0;

    /// <summary>The low <paramref name="bytes"/> bytes, zero-extended.</summary>
    public Tnum Truncate(int bytes)
    {
        if (bytes >= 8)
            return this;
        ulong keep = (1UL << (bytes * 8)) - 1;
        return new(Value & keep, Mask & keep);
    }

    /// <summary>The union: every value of either (and more).</summary>
    public Tnum Union(Tnum other)
    {
        ulong mu = Mask | other.Mask | (Value ^ other.Value);
        return new(Value & ~mu, mu);
    }

    public override string ToString()
    {
        if (IsConst)
            return $"{(long)Value}";
        return $"(0x{Value:x}; 0x{Mask:x})";
    }
}
