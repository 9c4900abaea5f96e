using System.Diagnostics;
using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Vm;
using static SharpBpf.Asm.Register;
using static SharpBpf.Tests.Vm.A;

namespace SharpBpf.Tests.Jit;

/// <summary>
/// Random valid programs (straight-line ALU of every kind, forward branches, bounded loops, stack and buffer loads
/// and stores, sign-extending loads, atomics, occasional out-of-bounds accesses, bpf-to-bpf calls into subprograms
/// of the same kinds of code) and random inputs, run on the
/// interpreter and on the JIT: r0, the buffer and the trap (kind and instruction index) must agree.
/// Deterministic seeds; the loop stops after a fixed count or a time bound, whichever comes first.
/// </summary>
public class JitDifferentialTests
{
    private const int MemorySize = 64;

    [Theory]
    [InlineData(1, 1500, JitTiering.Optimized)]
    [InlineData(2, 1500, JitTiering.Optimized)]
    [InlineData(3, 1500, JitTiering.Quick)]
    [InlineData(4, 1500, JitTiering.Quick)]
    [InlineData(5, 1500, JitTiering.Baseline)]
    [InlineData(6, 1500, JitTiering.Baseline)]
    public void JitAgreesWithTheInterpreter(int seed, int programs, JitTiering tiering)
    {
        var random = new Random(seed);
        var watch = Stopwatch.StartNew();
        int done = 0, traps = 0, withCalls = 0;
        for (; done < programs && watch.Elapsed < TimeSpan.FromSeconds(60); done++)
        {
            var program = Generate(random);
            var memory = new byte[MemorySize];
            random.NextBytes(memory);
            var a = Run(VmEngine.Interpreter, program, memory, tiering);
            var b = Run(VmEngine.Jit, program, memory, tiering);
            if (a.Trap is not null)
                traps++;
            if (program.Any(i => i.OpCode.Value == 0x85 && i.Src == (Register)1))
                withCalls++;
            string where = $"seed {seed}, program {done}:\n{string.Join("\n", program.Select((x, i) => $"{i}: {x}"))}";
            Assert.True(a.Trap == b.Trap, $"traps differ: interpreter {a.Trap}, jit {b.Trap}\n{where}");
            Assert.True(a.R0 == b.R0, $"r0 differs: interpreter 0x{a.R0:x}, jit 0x{b.R0:x}\n{where}");
            Assert.True(a.Memory.AsSpan().SequenceEqual(b.Memory), $"memory differs\n{where}");
        }
        Assert.True(done >= 500, $"only {done} programs in the time bound");
        // Both outcomes must be exercised, or the comparison proves little; and bpf-to-bpf calls.
        Assert.InRange(traps, 1, done - 1);
        Assert.True(withCalls * 20 >= done, $"only {withCalls} of {done} programs make bpf-to-bpf calls");
    }

    private sealed record Outcome(ulong R0, byte[] Memory, string? Trap);

    private static Outcome Run(VmEngine engine, List<Instruction> program, byte[] input, JitTiering tiering)
    {
        var options = new VmOptions { Engine = engine, InstructionBudget = 1_000_000, JitTiering = tiering };
        var memory = (byte[])input.Clone();
        using var e = new VmExecution(options);
        try
        {
            var p = VmProgram.Create("diff", program, HelperTable.Generic, options);
            return new(p.Run(e, memory), memory, null);
        }
        catch (VmTrapException trap)
        {
            return new(0, memory, $"{trap.Kind}@{trap.InstructionIndex}");
        }
    }

    // r1 = the buffer (never written); r9 = loop counter (written only by loops); r0, r2-r8 are data registers.
    private static readonly Register[] Data = [R0, R2, R3, R4, R5, R6, R7, R8];

    private static List<Instruction> Generate(Random random)
    {
        var code = new List<Instruction>();
        foreach (var r in Data)
            code.Add(Lddw(r, random.NextInt64() >> random.Next(64)));
        // Initialize the stack words the program may read.
        for (int off = -64; off < 0; off += 8)
            code.Add(Stx(AccessSize.DoubleWord, R10, Data[random.Next(Data.Length)], (short)off));
        int blocks = random.Next(1, 8);
        // bpf-to-bpf calls: the call sites (patched once the subprograms are placed after the main exit) and the
        // subprogram each calls.
        var calls = new List<(int At, int Sub)>();
        int subprograms = random.Next(3) == 0 ? random.Next(1, 3) : 0;
        for (int b = 0; b < blocks; b++)
        {
            if (subprograms > 0 && random.Next(4) == 0)
            {
                calls.Add((code.Count, random.Next(subprograms)));
                code.Add(default);
                continue;
            }
            switch (random.Next(4))
            {
                case 0: // bounded loop around straight-line code
                {
                    code.Add(Mov(R9, random.Next(1, 20)));
                    int start = code.Count;
                    Straight(random, code, random.Next(1, 12));
                    code.Add(Alu64(AluOperation.Sub, R9, 1));
                    code.Add(Jmp(JumpOperation.Jne, R9, 0, (short)(-Raw(code, start, code.Count) - 1)));
                    break;
                }
                case 1: // forward branch over straight-line code
                {
                    int at = code.Count;
                    code.Add(default);
                    Straight(random, code, random.Next(1, 10));
                    code[at] = Branch(random, (short)Raw(code, at + 1, code.Count));
                    break;
                }
                default:
                    Straight(random, code, random.Next(1, 16));
                    break;
            }
        }
        code.Add(Exit());
        // Subprograms: straight-line code (data registers, r6-r8 among them, which the call must give back), now and
        // then a loop on r9, then exit. They see the caller's r1 (the buffer) and a stack frame of their own.
        var starts = new int[subprograms];
        for (int sub = 0; sub < subprograms; sub++)
        {
            starts[sub] = Raw(code, 0, code.Count);
            if (random.Next(2) == 0)
            {
                code.Add(Mov(R9, random.Next(1, 6)));
                int start = code.Count;
                Straight(random, code, random.Next(1, 8));
                code.Add(Alu64(AluOperation.Sub, R9, 1));
                code.Add(Jmp(JumpOperation.Jne, R9, 0, (short)(-Raw(code, start, code.Count) - 1)));
            }
            Straight(random, code, random.Next(1, 10));
            code.Add(Exit());
        }
        foreach (var (at, sub) in calls)
            code[at] = CallLocal(starts[sub] - Raw(code, 0, at) - 1);
        return code;
    }

    private static Register D(Random r) => Data[r.Next(Data.Length)];

    /// <summary>
    /// A deterministic helper call: bpf_get_smp_processor_id, or bpf_csum_diff / bpf_strncmp over the buffer (r1,
    /// which stays the buffer) and a stack slot, sizes now and then past the end (a trap). r0 gets the result; r2, r4
    /// and r5 keep what the call was given, as the interpreter leaves them, and later code may read them (r3, the
    /// stack address, is overwritten: an address differs from run to run).
    /// </summary>
    private static void HelperCall(Random random, List<Instruction> code)
    {
        switch (random.Next(3))
        {
            case 0:
                code.Add(Call((int)global::SharpBpf.Platform.HelperId.GetSmpProcessorId));
                return;
            case 1:
                // csum_diff(from = r1, from_size = r2, to = r10 - 16, to_size = r4, seed = r5): sizes multiples of 4.
                code.Add(Mov(R2, 4 * random.Next(0, random.Next(30) == 0 ? 20 : 5)));
                code.Add(MovR(R3, R10));
                code.Add(Alu64(AluOperation.Add, R3, -16));
                code.Add(Mov(R4, 4 * random.Next(0, 5)));
                code.Add(Call((int)global::SharpBpf.Platform.HelperId.CsumDiff));
                code.Add(Mov(R3, (int)SmallOrAny(random))); // a stack address differs from run to run: not data
                return;
            default:
                // strncmp(s1 = r1, s1_sz = r2, s2 = r10 - 24): the stack string is the data already there.
                code.Add(Mov(R2, random.Next(1, random.Next(30) == 0 ? MemorySize + 8 : 17)));
                code.Add(MovR(R3, R10));
                code.Add(Alu64(AluOperation.Add, R3, -24));
                code.Add(Call((int)global::SharpBpf.Platform.HelperId.Strncmp));
                code.Add(Mov(R3, (int)SmallOrAny(random)));
                return;
        }
    }

    private static Instruction Branch(Random random, short offset)
    {
        JumpOperation[] ops = [JumpOperation.Jeq, JumpOperation.Jgt, JumpOperation.Jge, JumpOperation.Jset, JumpOperation.Jne,
            JumpOperation.Jsgt, JumpOperation.Jsge, JumpOperation.Jlt, JumpOperation.Jle, JumpOperation.Jslt, JumpOperation.Jsle];
        var op = ops[random.Next(ops.Length)];
        var cls = random.Next(2) == 0 ? InstructionClass.Jmp : InstructionClass.Jmp32;
        return random.Next(2) == 0
            ? new(OpCode.Jump(cls, op, OperandSource.Immediate), D(random), 0, offset, SmallOrAny(random))
            : new(OpCode.Jump(cls, op, OperandSource.Register), D(random), D(random), offset, 0);
    }

    private static long SmallOrAny(Random random) => random.Next(3) switch
    {
        0 => random.Next(-4, 5),
        1 => random.Next(),
        _ => random.Next() - (long)int.MaxValue,
    };

    private static void Straight(Random random, List<Instruction> code, int count)
    {
        AluOperation[] alu = [AluOperation.Add, AluOperation.Sub, AluOperation.Mul, AluOperation.Div, AluOperation.Or, AluOperation.And,
            AluOperation.Lsh, AluOperation.Rsh, AluOperation.Neg, AluOperation.Mod, AluOperation.Xor, AluOperation.Mov, AluOperation.Arsh];
        AccessSize[] sizes = [AccessSize.Byte, AccessSize.Half, AccessSize.Word, AccessSize.DoubleWord];
        for (int i = 0; i < count; i++)
        {
            int kind = random.Next(100);
            var cls = random.Next(2) == 0 ? InstructionClass.Alu64 : InstructionClass.Alu;
            if (random.Next(40) == 0)
            {
                HelperCall(random, code);
                continue;
            }
            if (kind < 45)
            {
                var op = alu[random.Next(alu.Length)];
                short off = 0;
                if (op is AluOperation.Div or AluOperation.Mod && random.Next(2) == 0)
                    off = 1; // sdiv, smod
                bool reg = op != AluOperation.Neg && random.Next(2) == 0;
                if (reg && op == AluOperation.Mov && random.Next(2) == 0)
                    off = (short)(cls == InstructionClass.Alu64 ? new short[] { 8, 16, 32 }[random.Next(3)] : new short[] { 8, 16 }[random.Next(2)]);
                code.Add(reg
                    ? new(OpCode.Alu(cls, op, OperandSource.Register), D(random), D(random), off, 0)
                    : new(OpCode.Alu(cls, op, OperandSource.Immediate), D(random), 0, off,
                        op == AluOperation.Neg ? 0 : op is AluOperation.Div or AluOperation.Mod && random.Next(4) == 0 ? 0 : SmallOrAny(random)));
            }
            else if (kind < 50)
            {
                // Byte swaps: to_le / to_be (ALU) and bswap (ALU64), 16/32/64 bits.
                var src = random.Next(2) == 0 ? OperandSource.Immediate : OperandSource.Register;
                code.Add(new(OpCode.Alu(cls, AluOperation.End, cls == InstructionClass.Alu64 ? OperandSource.Immediate : src),
                    D(random), 0, 0, new[] { 16, 32, 64 }[random.Next(3)]));
            }
            else if (kind < 53)
            {
                code.Add(Lddw(D(random), random.NextInt64()));
            }
            else if (kind < 85)
            {
                // Loads and stores: the stack (r10) or the buffer (r1); now and then just outside, which must trap.
                var size = sizes[random.Next(sizes.Length)];
                int width = size switch { AccessSize.Byte => 1, AccessSize.Half => 2, AccessSize.Word => 4, _ => 8 };
                bool stack = random.Next(2) == 0;
                bool wild = random.Next(40) == 0;
                short off = stack
                    ? (short)(wild ? random.Next(-520, 8) : -random.Next(width, 65))
                    : (short)(wild ? random.Next(-8, MemorySize + 8) : random.Next(0, MemorySize - width + 1));
                var basis = stack ? R10 : R1;
                switch (random.Next(4))
                {
                    case 0: code.Add(Ldx(size, D(random), basis, off)); break;
                    case 1 when size != AccessSize.DoubleWord:
                        code.Add(new(OpCode.Memory(InstructionClass.Ldx, AccessMode.MemSx, size), D(random), basis, off, 0)); break;
                    case 2: code.Add(St(size, basis, off, (int)SmallOrAny(random))); break;
                    default: code.Add(Stx(size, basis, D(random), off)); break;
                }
            }
            else
            {
                // Atomics on aligned stack or buffer words (now and then misaligned, which must trap).
                var size = random.Next(2) == 0 ? AccessSize.Word : AccessSize.DoubleWord;
                int width = size == AccessSize.Word ? 4 : 8;
                bool stack = random.Next(2) == 0;
                short off = stack ? (short)(-width * random.Next(1, 64 / width + 1)) : (short)(width * random.Next(0, MemorySize / width));
                if (random.Next(30) == 0)
                    off += 2;
                AtomicOperation[] ops = [AtomicOperation.Add, AtomicOperation.Or, AtomicOperation.And, AtomicOperation.Xor,
                    AtomicOperation.FetchAdd, AtomicOperation.FetchOr, AtomicOperation.FetchAnd, AtomicOperation.FetchXor,
                    AtomicOperation.Xchg, AtomicOperation.CmpXchg];
                code.Add(Atomic(size, stack ? R10 : R1, D(random), off, ops[random.Next(ops.Length)]));
            }
        }
    }
}
