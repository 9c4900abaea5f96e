using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// Hostile input: random and mutated programs must get a verdict, never an exception or a hang. (Running the accepted
/// ones in the VM with bounds checks on is the other half, once the interpreter is on main.)
/// </summary>
public class VerifierFuzzTests
{
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
        int accepted = 0;
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
                accepted++;
            else
                Assert.False(string.IsNullOrEmpty(result.Error!.Message));
        }
        Assert.True(accepted > 0, "no random program was accepted: the generator is too hostile to reach the analysis");
    }

    [Fact]
    public void MutatedCasesGetAVerdict()
    {
        var rng = new Random(777);
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
            }
        }
    }
}
