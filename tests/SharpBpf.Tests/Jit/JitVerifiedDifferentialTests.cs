using System.Diagnostics;
using SharpBpf.Asm;
using SharpBpf.Maps;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier;
using SharpBpf.Vm;
using SharpBpf.Xdp;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Jit;

/// <summary>
/// The verified (unchecked) JIT against the checked interpreter. Random XDP programs: a packet bounds check of a
/// random length, an array-map lookup, then straight-line code and forward branches mixing ALU on scalars read from
/// the packet and the map, packet / stack / map-value loads and stores, and atomics; now and then an access just
/// outside what was proven. Every program is loaded with <see cref="VmOptions.Verify"/>: a refused program must be
/// refused (and still run safely checked); an accepted one runs on the JIT with the verifier's proven accesses
/// compiled unchecked, and must agree with the checked interpreter on the action, the trap, the packet and the map
/// value, on packets both long and short enough for the bounds check. The interpreter on the verified load (which
/// runs unchecked too) is held to the same.
/// </summary>
public class JitVerifiedDifferentialTests(ITestOutputHelper output)
{
    private const int ValueSize = 16;

    [Theory]
    [InlineData(11, 1000, JitTiering.Optimized)]
    [InlineData(12, 1000, JitTiering.Quick)]
    [InlineData(13, 1000, JitTiering.Baseline)]
    public void VerifiedJitAgreesWithTheCheckedInterpreter(int seed, int programs, JitTiering tiering)
    {
        var random = new Random(seed);
        var watch = Stopwatch.StartNew();
        int done = 0, accepted = 0, refusedWild = 0, wildPrograms = 0;
        for (; done < programs && watch.Elapsed < TimeSpan.FromSeconds(60); done++)
        {
            var (code, bound, wild) = Generate(random);
            if (wild)
                wildPrograms++;
            var spec = Spec(code);
            string where = $"seed {seed}, program {done} (bound {bound}):\n{string.Join("\n", code.Select((x, i) => $"{i}: {x}"))}";
            VmCollection verified;
            try
            {
                verified = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Jit, Verify = true, InstructionBudget = 100_000, JitTiering = tiering });
            }
            catch (VerifierException)
            {
                if (wild)
                    refusedWild++;
                // Refused: loaded unverified it still runs, checked, without harm.
                using var unverified = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Jit, JitTiering = tiering });
                Run(unverified, new byte[bound + 8], random);
                continue;
            }
            accepted++;
            using (verified)
            {
                Assert.True(verified.Program("p").Verified, where);
                using var reference = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Interpreter, InstructionBudget = 100_000 });
                using var verifiedInterpreter = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Interpreter, Verify = true, InstructionBudget = 100_000 });
                foreach (int length in new[] { bound + random.Next(0, 16), Math.Max(14, bound - 1 - random.Next(4)) })
                {
                    var packet = new byte[length];
                    random.NextBytes(packet);
                    var value = new byte[ValueSize];
                    random.NextBytes(value);
                    var a = Run(reference, packet, value);
                    var b = Run(verified, packet, value);
                    Assert.True(a.Trap == b.Trap, $"traps differ: interpreter {a.Trap}, verified jit {b.Trap}\n{where}");
                    Assert.True(a.Action == b.Action, $"action differs: interpreter {a.Action}, verified jit {b.Action}\n{where}");
                    Assert.True(a.Packet.AsSpan().SequenceEqual(b.Packet), $"packet differs\n{where}");
                    Assert.True(a.Value.AsSpan().SequenceEqual(b.Value), $"map value differs\n{where}");
                    var c = Run(verifiedInterpreter, packet, value);
                    Assert.True(a.Trap == c.Trap && a.Action == c.Action && a.Packet.AsSpan().SequenceEqual(c.Packet) && a.Value.AsSpan().SequenceEqual(c.Value),
                        $"the verified (unchecked) interpreter differs from the checked one: {c.Action}/{c.Trap} vs {a.Action}/{a.Trap}\n{where}");
                }
            }
        }
        output.WriteLine($"{done} programs: {accepted} accepted, {wildPrograms} with an access beyond the proven range ({refusedWild} of them refused)");
        Assert.True(done >= 300, $"only {done} programs in the time bound");
        // Most programs must load verified, or the comparison proves little; wild programs must mostly be refused.
        Assert.True(accepted >= done / 2, $"only {accepted} of {done} programs were accepted");
        Assert.True(wildPrograms == 0 || refusedWild > 0, $"none of {wildPrograms} programs with an unproven access was refused");
    }

    private sealed record Outcome(XdpAction Action, string? Trap, byte[] Packet, byte[] Value);

    private static Outcome Run(VmCollection collection, byte[] packet, Random random)
    {
        var value = new byte[ValueSize];
        random.NextBytes(value);
        return Run(collection, packet, value);
    }

    private static Outcome Run(VmCollection collection, byte[] packet, byte[] value)
    {
        var map = collection.Map("values");
        var key = new byte[4];
        map.Update(key, value);
        using var e = new VmExecution(new VmOptions { InstructionBudget = 100_000 });
        using var context = new XdpContext();
        context.SetPacket(packet);
        var action = collection.Program("p").RunXdp(e, context, out var trap);
        var after = new byte[ValueSize];
        Assert.True(map.TryLookup(key, after));
        return new(action, trap is null ? null : $"{trap.Kind}@{trap.InstructionIndex}", context.Packet.ToArray(), after);
    }

    private static CollectionSpec Spec(List<Instruction> code)
    {
        var spec = new CollectionSpec();
        spec.Maps.Add(new MapSpec { Name = "values", Type = MapType.Array, KeySize = 4, ValueSize = ValueSize, MaxEntries = 1 });
        spec.Programs.Add(new ProgramSpec { Name = "p", SectionName = "xdp", Type = ProgramType.Xdp, Instructions = code });
        return spec;
    }

    // r6 = ctx, r7 = packet (bound bytes proven), r8 = map value, r10 = frame: never written by the body.
    // r0-r5 and r9 hold scalars.
    private static readonly Register[] Data = [R0, R1, R2, R3, R4, R5, R9];

    private static (List<Instruction> Code, int Bound, bool Wild) Generate(Random random)
    {
        int bound = random.Next(14, 65);
        var code = new List<Instruction>
        {
            MovR(R6, R1),
            Ldx(AccessSize.Word, R7, R6, 0),                      // data
            Ldx(AccessSize.Word, R3, R6, 4),                      // data_end
            MovR(R2, R7),
            Alu64(AluOperation.Add, R2, bound),
        };
        int boundsCheck = code.Count;
        code.Add(default);                                        // if r2 > r3 goto out
        for (int off = -64; off < 0; off += 8)
            code.Add(St(AccessSize.DoubleWord, R10, (short)off, random.Next()));
        code.Add(St(AccessSize.Word, R10, -68, 0));               // key 0
        code.Add(new Instruction(new OpCode(0x18), R1, (Register)LoadImmediateSource.MapFd, 0, 0) { Reference = "values" });
        code.Add(MovR(R2, R10));
        code.Add(Alu64(AluOperation.Add, R2, -68));
        code.Add(Call((int)HelperId.MapLookupElem));
        int nullCheck = code.Count;
        code.Add(default);                                        // if r0 == 0 goto out
        code.Add(MovR(R8, R0));
        // Scalars: from the packet and the map (unknown to the verifier) or constants.
        foreach (var r in Data)
        {
            code.Add(random.Next(3) switch
            {
                0 => Ldx(AccessSize.DoubleWord, r, R8, (short)(8 * random.Next(2))),
                1 => Ldx(AccessSize.Byte, r, R7, (short)random.Next(bound)),
                _ => Lddw(r, random.NextInt64() >> random.Next(64)),
            });
        }
        bool wild = false;
        int blocks = random.Next(1, 6);
        for (int b = 0; b < blocks; b++)
        {
            if (random.Next(2) == 0)
            {
                int at = code.Count;
                code.Add(default);
                wild |= Straight(random, code, random.Next(1, 10), bound);
                code[at] = Branch(random, (short)Raw(code, at + 1, code.Count));
            }
            else
            {
                wild |= Straight(random, code, random.Next(1, 14), bound);
            }
        }
        code.Add(MovR(R0, Data[random.Next(Data.Length)]));
        code.Add(Alu64(AluOperation.And, R0, 3));
        code.Add(Exit());
        int outLabel = code.Count;
        code.Add(Mov(R0, 2));
        code.Add(Exit());
        code[boundsCheck] = JmpR(JumpOperation.Jgt, R2, R3, (short)Raw(code, boundsCheck + 1, outLabel));
        code[nullCheck] = Jmp(JumpOperation.Jeq, R0, 0, (short)Raw(code, nullCheck + 1, outLabel));
        return (code, bound, wild);
    }

    private static Register D(Random r) => Data[r.Next(Data.Length)];

    private static Instruction Branch(Random random, short offset)
    {
        JumpOperation[] ops = [JumpOperation.Jeq, JumpOperation.Jgt, JumpOperation.Jge, JumpOperation.Jset, JumpOperation.Jne,
            JumpOperation.Jsgt, JumpOperation.Jsge, JumpOperation.Jlt, JumpOperation.Jle, JumpOperation.Jslt, JumpOperation.Jsle];
        var op = ops[random.Next(ops.Length)];
        var cls = random.Next(2) == 0 ? InstructionClass.Jmp : InstructionClass.Jmp32;
        return random.Next(2) == 0
            ? new(OpCode.Jump(cls, op, OperandSource.Immediate), D(random), 0, offset, random.Next(-4, 300))
            : new(OpCode.Jump(cls, op, OperandSource.Register), D(random), D(random), offset, 0);
    }

    /// <summary>Appends <paramref name="count"/> instructions; true when one of them may access beyond what is proven.</summary>
    private static bool Straight(Random random, List<Instruction> code, int count, int bound)
    {
        AluOperation[] alu = [AluOperation.Add, AluOperation.Sub, AluOperation.Mul, AluOperation.Div, AluOperation.Or, AluOperation.And,
            AluOperation.Lsh, AluOperation.Rsh, AluOperation.Mod, AluOperation.Xor, AluOperation.Mov, AluOperation.Arsh];
        AccessSize[] sizes = [AccessSize.Byte, AccessSize.Half, AccessSize.Word, AccessSize.DoubleWord];
        bool wild = false;
        for (int i = 0; i < count; i++)
        {
            int kind = random.Next(100);
            var cls = random.Next(2) == 0 ? InstructionClass.Alu64 : InstructionClass.Alu;
            if (kind < 40)
            {
                var op = alu[random.Next(alu.Length)];
                bool reg = random.Next(2) == 0;
                code.Add(reg
                    ? new(OpCode.Alu(cls, op, OperandSource.Register), D(random), D(random), 0, 0)
                    : new(OpCode.Alu(cls, op, OperandSource.Immediate), D(random), 0, 0,
                        op is AluOperation.Lsh or AluOperation.Rsh or AluOperation.Arsh ? random.Next(cls == InstructionClass.Alu64 ? 64 : 32) : random.Next(-100, 100_000)));
            }
            else if (kind < 90)
            {
                var size = sizes[random.Next(sizes.Length)];
                int width = size switch { AccessSize.Byte => 1, AccessSize.Half => 2, AccessSize.Word => 4, _ => 8 };
                bool outside = random.Next(50) == 0;
                wild |= outside;
                Register basis;
                short off;
                switch (random.Next(3))
                {
                    case 0: // packet
                        basis = R7;
                        off = (short)(outside ? bound - width + 1 + random.Next(4) : random.Next(0, bound - width + 1));
                        break;
                    case 1: // stack, aligned as the verifier requires
                        basis = R10;
                        off = (short)(outside ? 8 * random.Next(0, 2) : -width * random.Next(1, 64 / width + 1));
                        break;
                    default: // map value
                        basis = R8;
                        off = (short)(outside ? ValueSize - width + 1 + random.Next(4) : random.Next(0, ValueSize - width + 1));
                        break;
                }
                switch (random.Next(4))
                {
                    case 0: code.Add(Ldx(size, D(random), basis, off)); break;
                    case 1 when size != AccessSize.DoubleWord:
                        code.Add(new(OpCode.Memory(InstructionClass.Ldx, AccessMode.MemSx, size), D(random), basis, off, 0)); break;
                    case 2: code.Add(St(size, basis, off, random.Next(-1000, 1000))); break;
                    default: code.Add(Stx(size, basis, D(random), off)); break;
                }
            }
            else
            {
                // Atomics on the stack or the map value (the verifier refuses them on the packet).
                var size = random.Next(2) == 0 ? AccessSize.Word : AccessSize.DoubleWord;
                int width = size == AccessSize.Word ? 4 : 8;
                bool stack = random.Next(2) == 0;
                short off = stack ? (short)(-width * random.Next(1, 64 / width + 1)) : (short)(width * random.Next(0, ValueSize / width));
                AtomicOperation[] ops = [AtomicOperation.Add, AtomicOperation.Or, AtomicOperation.And, AtomicOperation.Xor,
                    AtomicOperation.FetchAdd, AtomicOperation.FetchOr, AtomicOperation.FetchAnd, AtomicOperation.FetchXor,
                    AtomicOperation.Xchg, AtomicOperation.CmpXchg];
                code.Add(Atomic(size, stack ? R10 : R8, D(random), off, ops[random.Next(ops.Length)]));
            }
        }
        return wild;
    }
}
