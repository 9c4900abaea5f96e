using SharpBpf.Asm;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// Soundness of the abstract domains: for random abstract values and random concrete members of them, the
/// concrete result of an operation must be a member of the abstract result. A failure here is a verifier that could
/// accept an unsafe program.
/// </summary>
public class DomainTests
{
    private static Scalar RandomScalar(Random rng, out ulong member)
    {
        // A random member, then an abstract value around it: a range, known bits, or both.
        ulong v = rng.Next(4) switch
        {
            0 => (ulong)rng.Next(0, 300),
            1 => (ulong)rng.NextInt64(),
            2 => unchecked((ulong)-rng.Next(1, 300)),
            _ => (ulong)rng.Next() << 16,
        };
        member = v;
        switch (rng.Next(4))
        {
            case 0:
                return Scalar.Const(v);
            case 1:
            {
                ulong lo = v - (ulong)rng.Next(0, 50), hi = v + (ulong)rng.Next(0, 50);
                return lo <= v && v <= hi ? Scalar.URange(lo, hi) : Scalar.Unknown;
            }
            case 2:
            {
                ulong mask = (ulong)rng.NextInt64() & (ulong)rng.NextInt64();
                return (Scalar.Unknown with { Bits = new Tnum(v & ~mask, mask) }).Normalize();
            }
            default:
                return Scalar.Unknown;
        }
    }

    private static bool Contains(Scalar s, ulong v) =>
        s.Bits.Contains(v) && v >= s.UMin && v <= s.UMax && (long)v >= s.SMin && (long)v <= s.SMax
        && (uint)v >= s.U32Min && (uint)v <= s.U32Max && (int)(uint)v >= s.S32Min && (int)(uint)v <= s.S32Max;

    [Theory]
    [InlineData(AluOperation.Add)]
    [InlineData(AluOperation.Sub)]
    [InlineData(AluOperation.Mul)]
    [InlineData(AluOperation.Div)]
    [InlineData(AluOperation.Mod)]
    [InlineData(AluOperation.And)]
    [InlineData(AluOperation.Or)]
    [InlineData(AluOperation.Xor)]
    [InlineData(AluOperation.Lsh)]
    [InlineData(AluOperation.Rsh)]
    [InlineData(AluOperation.Arsh)]
    public void AluResultsContainTheConcreteResult(AluOperation op)
    {
        var rng = new Random((int)op);
        for (int i = 0; i < 20_000; i++)
        {
            bool is64 = rng.Next(2) == 0;
            var a = RandomScalar(rng, out ulong x);
            var b = RandomScalar(rng, out ulong y);
            if (op is AluOperation.Lsh or AluOperation.Rsh or AluOperation.Arsh)
            {
                y = (ulong)rng.Next(0, is64 ? 64 : 32);
                b = rng.Next(2) == 0 ? Scalar.Const(y) : Scalar.URange(0, 63);
            }
            Assert.True(Contains(a, x) && Contains(b, y), "generator produced a non-member");
            ulong concrete = is64
                ? ScalarArithmetic.Evaluate(op, x, y, 64, false)
                : (uint)Evaluate32(op, (uint)x, (uint)y);
            var result = ScalarArithmetic.Apply(op, a, b, is64);
            Assert.True(Contains(result, concrete), $"{op}{(is64 ? "" : "32")}: {x} op {y} = {concrete} is not in {result} (a={a}, b={b})");
        }
    }

    private static uint Evaluate32(AluOperation op, uint a, uint b) => op switch
    {
        AluOperation.Arsh => (uint)((int)a >> (int)(b & 31)),
        _ => (uint)ScalarArithmetic.Evaluate(op, a, b, 32, false),
    };

    [Theory]
    [InlineData(JumpOperation.Jeq)]
    [InlineData(JumpOperation.Jne)]
    [InlineData(JumpOperation.Jgt)]
    [InlineData(JumpOperation.Jge)]
    [InlineData(JumpOperation.Jlt)]
    [InlineData(JumpOperation.Jle)]
    [InlineData(JumpOperation.Jsgt)]
    [InlineData(JumpOperation.Jsge)]
    [InlineData(JumpOperation.Jslt)]
    [InlineData(JumpOperation.Jsle)]
    [InlineData(JumpOperation.Jset)]
    public void BranchRefinementKeepsTheConcreteValues(JumpOperation op)
    {
        var rng = new Random(1000 + (int)op);
        for (int i = 0; i < 20_000; i++)
        {
            bool is32 = rng.Next(2) == 0;
            var a = RandomScalar(rng, out ulong x);
            var b = RandomScalar(rng, out ulong y);
            if (rng.Next(3) == 0)
            {
                y = x + (ulong)rng.Next(-2, 3);
                b = Scalar.Const(y);
            }
            bool holds = Compare(op, x, y, is32);
            var ra = a;
            var rb = b;
            bool feasible = BranchRefinement.Refine(op, taken: holds, is32, ref ra, ref rb);
            Assert.True(feasible, $"{op}{(is32 ? "32" : "")} {x},{y}: the edge that holds was called impossible (a={a}, b={b})");
            Assert.True(Contains(ra, x), $"{op}: {x} lost from {a} -> {ra}");
            Assert.True(Contains(rb, y), $"{op}: {y} lost from {b} -> {rb}");
        }
    }

    private static bool Compare(JumpOperation op, ulong x, ulong y, bool is32)
    {
        if (is32)
        {
            x = (uint)x;
            y = (uint)y;
        }
        long sx = is32 ? (int)(uint)x : (long)x, sy = is32 ? (int)(uint)y : (long)y;
        return op switch
        {
            JumpOperation.Jeq => x == y,
            JumpOperation.Jne => x != y,
            JumpOperation.Jgt => x > y,
            JumpOperation.Jge => x >= y,
            JumpOperation.Jlt => x < y,
            JumpOperation.Jle => x <= y,
            JumpOperation.Jsgt => sx > sy,
            JumpOperation.Jsge => sx >= sy,
            JumpOperation.Jslt => sx < sy,
            JumpOperation.Jsle => sx <= sy,
            _ => (x & y) != 0,
        };
    }

    [Fact]
    public void TnumRangeAndKnownBits()
    {
        var t = Tnum.Range(0, 7);
        Assert.Equal(new Tnum(0, 7), t);
        Assert.True(Tnum.Const(5).IsWithin(t));
        Assert.False(Tnum.Const(8).IsWithin(t));
        var masked = Tnum.Unknown & Tnum.Const(0xff);
        Assert.Equal(0xffUL, masked.UMax);
        Assert.Equal(Tnum.Const(12), Tnum.Const(3) * Tnum.Const(4));
    }

    [Fact]
    public void NormalizeTightensEveryView()
    {
        var s = Scalar.URange(0, 100);
        Assert.Equal(0, s.SMin);
        Assert.Equal(100, s.SMax);
        Assert.Equal(100u, s.U32Max);
        Assert.Equal(0UL, s.Bits.Value);
        Assert.Equal(127UL, s.Bits.Mask);
    }
}
