using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// Hostile input: random and mutated programs must get a verdict, never an exception or a hang; and every XDP
/// program among them that the verifier accepts runs in the VM with bounds checks on (the interpreter, checked), on
/// frames of several lengths and random contents, with random map contents, and must never trap: a trap is a path the
/// verifier got wrong (issue 6's fuzzing bar).
/// </summary>
public class VerifierFuzzTests(ITestOutputHelper output)
{
    private static readonly int[] FrameLengths = [14, 34, 60, 1500];


    /// <summary>Runs an accepted XDP program checked; returns false when the VM cannot load it (a helper the VM
    /// lacks), true after the runs, failing the test on any trap. Programs whose only helpers are the map helpers
    /// also run verified on the JIT's baseline tier, whose accesses the verifier proved are compiled unchecked: the
    /// action, the packet and the arrays' contents must be the checked interpreter's wherever they are deterministic
    /// (a second interpreter collection, with maps elsewhere in memory, gives the same: a program may return or store
    /// a pointer, which the kernel allows a privileged loader).</summary>
    private static bool RunsWithoutTrap(ProgramSpec program, IReadOnlyList<MapSpec> maps, Random rng, string where, ref int compared)
    {
        var spec = new CollectionSpec { License = "GPL" };
        spec.Maps.AddRange(maps);
        spec.Programs.Add(program);
        VmCollection collection;
        try
        {
            collection = VmCollection.Load(spec, new VmOptions { CheckMemory = true, InstructionBudget = 1_000_000 });
        }
        catch (BpfException)
        {
            return false;
        }
        bool deterministic = program.Instructions.All(i => i.OpCode.Value != 0x85 || i.Src != 0 || i.Immediate is 1 or 2 or 3);
        VmCollection? native = null, twin = null;
        if (deterministic && SharpBpf.Vm.Jit.Baseline.BaselineCompiler.IsAvailable)
        {
            twin = VmCollection.Load(spec, new VmOptions { CheckMemory = true, InstructionBudget = 1_000_000 });
            native = VmCollection.Load(spec, new VmOptions
            {
                Engine = VmEngine.Jit, JitTiering = JitTiering.Baseline, Verify = true, InstructionBudget = 1_000_000,
            });
        }
        using (collection)
        using (native)
        using (twin)
        {
            // Random contents for the writable arrays (.rodata keeps the values the verifier read), the same in both.
            var arrays = maps.Where(m => m.Type == MapType.Array && !m.Name.StartsWith('.')).ToList();
            foreach (var map in arrays)
            {
                for (uint k = 0; k < Math.Min(map.MaxEntries, 8u); k++)
                {
                    var value = new byte[map.ValueSize];
                    rng.NextBytes(value);
                    collection.Map(map.Name).Update(BitConverter.GetBytes(k), value);
                    native?.Map(map.Name).Update(BitConverter.GetBytes(k), value);
                    twin?.Map(map.Name).Update(BitConverter.GetBytes(k), value);
                }
            }
            var vm = collection.Program(program.Name);
            var nativeProgram = native?.Program(program.Name);
            var twinProgram = twin?.Program(program.Name);
            using var execution = new VmExecution(new VmOptions { InstructionBudget = 1_000_000 });
            using var twinExecution = new VmExecution(new VmOptions { InstructionBudget = 1_000_000 });
            using var nativeExecution = new VmExecution(new VmOptions { InstructionBudget = 1_000_000 });
            string listing = string.Join("\n", program.Instructions.Select((x, i) => $"{i}: {x}"));
            foreach (int length in FrameLengths)
            {
                var frame = new byte[length];
                rng.NextBytes(frame);
                using var context = new XdpContext();
                context.SetPacket(frame);
                var action = vm.RunXdp(execution, context, out var trap);
                Assert.True(trap is null, $"{where}: accepted, but trapped in the VM on a {length}-byte frame: {trap?.Message}\n{listing}");
                if (nativeProgram is null || twinProgram is null)
                    continue;
                using var twinContext = new XdpContext();
                twinContext.SetPacket(frame);
                var twinAction = twinProgram.RunXdp(twinExecution, twinContext, out _);
                using var nativeContext = new XdpContext();
                nativeContext.SetPacket(frame);
                var nativeAction = nativeProgram.RunXdp(nativeExecution, nativeContext, out var nativeTrap);
                Assert.True(nativeTrap is null, $"{where}: trapped on baseline code on a {length}-byte frame: {nativeTrap?.Message}\n{listing}");
                if (action == twinAction)
                    Assert.True(action == nativeAction, $"{where}: {length}-byte frame: interpreter {action}, baseline code {nativeAction}\n{listing}");
                if (context.Packet.SequenceEqual(twinContext.Packet))
                    Assert.True(context.Packet.SequenceEqual(nativeContext.Packet), $"{where}: {length}-byte frame: the packets differ\n{listing}");
                compared++;
            }
            foreach (var map in nativeProgram is null ? [] : arrays)
            {
                var a = new byte[map.ValueSize];
                var b = new byte[map.ValueSize];
                var c = new byte[map.ValueSize];
                for (uint k = 0; k < Math.Min(map.MaxEntries, 8u); k++)
                {
                    collection.Map(map.Name).TryLookup(BitConverter.GetBytes(k), a);
                    twin!.Map(map.Name).TryLookup(BitConverter.GetBytes(k), c);
                    native!.Map(map.Name).TryLookup(BitConverter.GetBytes(k), b);
                    if (a.AsSpan().SequenceEqual(c))
                        Assert.True(a.AsSpan().SequenceEqual(b), $"{where}: map {map.Name}[{k}] differs after the runs\n{listing}");
                }
            }
        }
        return true;
    }

    private static readonly byte[] Opcodes =
    [
        0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x47, 0x4f, 0x57, 0x5f, 0x67, 0x6f, 0x77, 0x7f, 0x87, 0x97, 0x9f,
        0xa7, 0xaf, 0xb7, 0xbf, 0xc7, 0xcf, 0xd4, 0xdc, 0x04, 0x0c, 0x14, 0x24, 0x34, 0x3c, 0x44, 0x54, 0x64, 0x74, 0x84,
        0x94, 0xa4, 0xb4, 0xbc, 0xc4, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d, 0x55, 0x5d, 0x65, 0x6d, 0x75,
        0x7d, 0xa5, 0xad, 0xb5, 0xbd, 0xc5, 0xcd, 0xd5, 0xdd, 0x16, 0x1e, 0x26, 0x56, 0xa6, 0x85, 0x95, 0x61, 0x69, 0x71,
        0x79, 0x62, 0x6a, 0x72, 0x7a, 0x63, 0x6b, 0x73, 0x7b, 0xc3, 0xdb, 0x18, 0x91, 0x89, 0x81, 0x30, 0x28,
    ];

    private static Instruction RandomInstruction(Random rng)
    {
        byte op = Opcodes[rng.Next(Opcodes.Length)];
        var dst = (Register)rng.Next(0, 11);
        var src = (Register)rng.Next(0, 11);
        short off = (short)(rng.Next(3) switch { 0 => rng.Next(-8, 8), 1 => -8 * rng.Next(0, 70), _ => rng.Next(short.MinValue, short.MaxValue) });
        long imm = rng.Next(4) switch { 0 => rng.Next(-4, 16), 1 => rng.Next(0, 200), 2 => 0, _ => rng.Next() };
        if (op == 0x85)
            src = rng.Next(4) == 0 ? (Register)1 : 0;
        // Short forward jumps, few stray exits: enough programs get past the structure checks to test the analysis.
        if ((op & 0x07) is 0x05 or 0x06 && op is not (0x85 or 0x95))
            off = (short)rng.Next(0, 3);
        if (op == 0x95 && rng.Next(4) != 0)
            op = 0xb7;
        if (op == 0x18)
            src = (Register)(rng.Next(3) == 0 ? 1 : 0);
        if (op == 0xc3 || op == 0xdb)
            imm = new[] { 0x00, 0x01, 0x40, 0x41, 0x50, 0xa0, 0xe1, 0xf1 }[rng.Next(8)];
        return new Instruction(new OpCode(op), dst, op == 0xb7 ? 0 : src, off, op == 0xb7 ? imm & 0xff : imm) { Reference = op == 0x18 && src != 0 ? "m" : null };
    }

    [Fact]
    public void RandomProgramsGetAVerdict()
    {
        var rng = new Random(12345);
        var maps = new List<MapSpec> { new() { Name = "m", Type = MapType.Array, KeySize = 4, ValueSize = 16, MaxEntries = 4 } };
        int accepted = 0, ran = 0, compared = 0;
        for (int n = 0; n < 3000; n++)
        {
            var insns = new List<Instruction>();
            int length = rng.Next(1, 24);
            for (int i = 0; i < length; i++)
                insns.Add(RandomInstruction(rng));
            // Most programs end in exit so that more of them reach the value analysis.
            if (rng.Next(4) != 0)
            {
                insns.Insert(0, new Instruction(new OpCode(0xb7), Register.R0, 0, 0, 0));
                insns.Add(new Instruction(new OpCode(0x95), 0, 0, 0, 0));
            }
            var program = new ProgramSpec { Name = "fuzz", SectionName = "xdp", Type = ProgramType.Xdp, License = "GPL", Instructions = insns };
            var result = BpfVerifier.Verify(program, new VerifierOptions { Maps = maps, ComplexityLimit = 20_000 });
            if (result.Accepted)
            {
                accepted++;
                if (RunsWithoutTrap(program, maps, rng, $"random program {n}", ref compared))
                    ran++;
            }
            else
            {
                Assert.False(string.IsNullOrEmpty(result.Error!.Message));
            }
        }
        output.WriteLine($"3000 random programs: {accepted} accepted, {ran} of them run in the VM, {compared} frames compared with baseline code");
        Assert.True(accepted > 0, "no random program was accepted: the generator is too hostile to reach the analysis");
        Assert.True(ran * 10 >= accepted * 9, $"only {ran} of {accepted} accepted programs could be loaded in the VM");
    }

    private static Instruction I(byte op, Register dst, Register src, short off, long imm) => new(new OpCode(op), dst, src, off, imm);

    /// <summary>
    /// A random program built to be mostly acceptable, so that many reach the VM: every register written first, the
    /// stack initialised, then ALU64/ALU32 of every kind on scalars (shift amounts in range), stack loads, stores and
    /// atomics of every width at random in-frame offsets, forward branches of every condition, packet reads after a
    /// bounds check of a random length (some reads a little past it: those must be refused), and map lookups with a
    /// null check (some without: refused).
    /// </summary>
    private static List<Instruction> RandomMostlyValidProgram(Random rng)
    {
        var insns = new List<Instruction> { I(0xbf, Register.R6, Register.R1, 0, 0) }; // r6 = ctx
        // Scalars live in r0 and r7-r9 (r0 is reset after a lookup); r2-r5 are the blocks' scratch (helpers clobber them).
        Register[] data = [Register.R0, Register.R7, Register.R8, Register.R9];
        Register D() => data[rng.Next(data.Length)];
        foreach (var r in data)
            insns.Add(I(0xb7, r, 0, 0, rng.Next(-1000, 1000)));
        for (int off = -64; off < 0; off += 8)
            insns.Add(I(0x7a, Register.R10, 0, (short)off, rng.Next()));
        byte[] alu = [0x07, 0x17, 0x27, 0x37, 0x47, 0x57, 0x67, 0x77, 0x87, 0x97, 0xa7, 0xb7, 0xc7];
        int length = rng.Next(10, 40);
        for (int i = 0; i < length; i++)
        {
            switch (rng.Next(9))
            {
                case 0:
                case 1:
                {
                    byte op = alu[rng.Next(alu.Length)];
                    bool wide = rng.Next(3) != 0;
                    bool reg = op != 0x87 && rng.Next(2) == 0;
                    bool shift = op is 0x67 or 0x77 or 0xc7;
                    op = (byte)((wide ? op : op & 0xf0 | 0x04) | (reg && !shift ? 0x08 : 0));
                    bool neg = (op & 0xf0) == 0x80;
                    long imm = reg || neg ? 0 : shift ? rng.Next(wide ? 64 : 32) : rng.Next(4) == 0 ? 0 : rng.Next(-50000, 50000);
                    insns.Add(I(op, D(), reg && !shift ? D() : 0, 0, imm));
                    break;
                }
                case 2: // stack store of a register or a constant, any width, aligned in the initialised words
                {
                    int size = 1 << rng.Next(4);
                    short off = (short)(-64 + size * rng.Next(64 / size));
                    byte width = size switch { 1 => 0x10, 2 => 0x08, 4 => 0x00, _ => 0x18 };
                    insns.Add(rng.Next(2) == 0 ? I((byte)(0x63 | width), Register.R10, D(), off, 0) : I((byte)(0x62 | width), Register.R10, 0, off, rng.Next()));
                    break;
                }
                case 3: // stack load, any width, signed or not
                {
                    int size = 1 << rng.Next(4);
                    short off = (short)(-64 + size * rng.Next(64 / size));
                    byte width = size switch { 1 => 0x10, 2 => 0x08, 4 => 0x00, _ => 0x18 };
                    byte op = size < 8 && rng.Next(3) == 0 ? (byte)(0x81 | width) : (byte)(0x61 | width);
                    insns.Add(I(op, D(), Register.R10, off, 0));
                    break;
                }
                case 4: // forward branch
                {
                    byte[] jumps = [0x15, 0x1d, 0x25, 0x2d, 0x35, 0x45, 0x55, 0x5d, 0x65, 0x6d, 0x75, 0xa5, 0xad, 0xb5, 0xc5, 0xd5, 0x16, 0x26, 0x56, 0xa6];
                    byte op = jumps[rng.Next(jumps.Length)];
                    bool reg = (op & 0x08) != 0;
                    insns.Add(I(op, D(), reg ? D() : 0, (short)rng.Next(0, 4), reg ? 0 : rng.Next(-100, 100)));
                    break;
                }
                case 5: // atomic add / fetch-add / xchg on an aligned stack word
                {
                    bool wide = rng.Next(2) == 0;
                    short off = (short)(wide ? -8 * rng.Next(1, 9) : -4 * rng.Next(1, 17));
                    insns.Add(I(wide ? (byte)0xdb : (byte)0xc3, Register.R10, D(), off, new[] { 0x00, 0x01, 0x40, 0xa0, 0xe1 }[rng.Next(5)]));
                    break;
                }
                case 6: // packet read after a bounds check (now and then one byte past it)
                {
                    int bound = rng.Next(1, 64);
                    int size = 1 << rng.Next(3);
                    int at = Math.Max(0, bound - size - rng.Next(0, 8)) + (rng.Next(12) == 0 ? 1 : 0);
                    insns.Add(I(0x61, Register.R2, Register.R6, 0, 0));    // data
                    insns.Add(I(0x61, Register.R3, Register.R6, 4, 0));    // data_end
                    insns.Add(I(0xbf, Register.R4, Register.R2, 0, 0));
                    insns.Add(I(0x07, Register.R4, 0, 0, bound));
                    insns.Add(I(0x2d, Register.R4, Register.R3, 1, 0));    // if r4 > data_end skip the read
                    insns.Add(I(size switch { 1 => (byte)0x71, 2 => (byte)0x69, _ => (byte)0x61 }, D(), Register.R2, (short)at, 0));
                    break;
                }
                case 7: // array lookup, key 0..3 at fp-68, value read if not null (now and then without the check)
                {
                    bool check = rng.Next(12) != 0;
                    insns.Add(I(0x62, Register.R10, 0, -68, rng.Next(0, 4)));
                    insns.Add(I(0xbf, Register.R2, Register.R10, 0, 0));
                    insns.Add(I(0x07, Register.R2, 0, 0, -68));
                    insns.Add(new Instruction(new OpCode(0x18), Register.R1, (Register)1, 0, 0) { Reference = "m" });
                    insns.Add(I(0x85, 0, 0, 0, 1));                        // bpf_map_lookup_elem
                    if (check)
                        insns.Add(I(0x15, Register.R0, 0, 1, 0));
                    insns.Add(I(0x79, D() is var v && v != Register.R0 ? v : Register.R7, Register.R0, (short)(8 * rng.Next(2)), 0));
                    insns.Add(I(0xb7, Register.R0, 0, 0, rng.Next(5)));
                    break;
                }
                default: // register move
                    insns.Add(I(rng.Next(2) == 0 ? (byte)0xbf : (byte)0xbc, D(), D(), 0, 0));
                    break;
            }
        }
        insns.Add(I(0xb7, Register.R0, 0, 0, rng.Next(5)));
        insns.Add(I(0x95, 0, 0, 0, 0));
        VerifierPrecisionFuzzTests.KeepJumpsInside(insns);
        return insns;
    }

    [Fact]
    public void RandomMostlyValidProgramsRunWithoutTrapping()
    {
        var rng = new Random(4242);
        var maps = new List<MapSpec> { new() { Name = "m", Type = MapType.Array, KeySize = 4, ValueSize = 16, MaxEntries = 4 } };
        int accepted = 0, refused = 0, ran = 0, compared = 0;
        for (int n = 0; n < 2000; n++)
        {
            var program = new ProgramSpec { Name = "fuzz", SectionName = "xdp", Type = ProgramType.Xdp, License = "GPL", Instructions = RandomMostlyValidProgram(rng) };
            var result = BpfVerifier.Verify(program, new VerifierOptions { Maps = maps, ComplexityLimit = 100_000 });
            if (!result.Accepted)
            {
                refused++;
                continue;
            }
            accepted++;
            if (RunsWithoutTrap(program, maps, rng, $"program {n}", ref compared))
                ran++;
        }
        output.WriteLine($"2000 mostly valid random programs: {accepted} accepted ({ran} run in the VM, {compared} frames compared with baseline code), {refused} refused");
        if (SharpBpf.Vm.Jit.Baseline.BaselineCompiler.IsAvailable)
            Assert.True(compared >= ran * 2, $"only {compared} frames of {ran} programs compared with baseline code");
        // Both verdicts must be common (the generator plants unchecked reads), and every accepted program must run.
        Assert.True(accepted > 500 && refused > 100, $"accepted {accepted}, refused {refused}");
        Assert.Equal(accepted, ran);
    }

    [Fact]
    public void MutatedCasesGetAVerdict()
    {
        var rng = new Random(777);
        int accepted = 0, ran = 0, compared = 0;
        foreach (var c in VerifierCase.LoadAll())
        {
            var original = c.ToProgram();
            for (int n = 0; n < 30; n++)
            {
                var insns = original.Instructions.ToList();
                int at = rng.Next(insns.Count);
                var insn = insns[at];
                insns[at] = rng.Next(4) switch
                {
                    0 => insn with { Offset = (short)(insn.Offset + rng.Next(-9, 10)) },
                    1 => insn with { Constant = insn.Constant + rng.Next(-9, 10) },
                    2 => insn with { Dst = (Register)rng.Next(0, 11) },
                    _ => insn with { Src = (Register)rng.Next(0, 11) },
                };
                var program = new ProgramSpec
                {
                    Name = c.Name, SectionName = "x", Type = original.Type, License = "GPL", Instructions = insns,
                };
                var result = BpfVerifier.Verify(program, new VerifierOptions { Maps = c.Maps, ComplexityLimit = 20_000 });
                Assert.True(result.Accepted || result.Error!.Message.Length > 0);
                if (result.Accepted && program.Type == ProgramType.Xdp)
                {
                    accepted++;
                    if (RunsWithoutTrap(program, c.Maps, rng, $"{c.Id}, mutation {n}", ref compared))
                        ran++;
                }
            }
        }
        output.WriteLine($"mutated XDP cases: {accepted} accepted, {ran} of them run in the VM, {compared} frames compared with baseline code");
        // Most accepted XDP mutants must run (a few use helpers the VM leaves out), or the VM half proves little.
        Assert.True(accepted > 100, $"only {accepted} mutated XDP programs were accepted");
        Assert.True(ran * 10 >= accepted * 8, $"only {ran} of {accepted} accepted mutated programs could be loaded in the VM");
    }
}
