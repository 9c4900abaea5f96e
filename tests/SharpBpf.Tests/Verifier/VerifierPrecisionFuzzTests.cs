using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// Precision tracking may only save work, never change a verdict: random branchy programs (values chosen on forked
/// paths, then used as stack offsets, branch conditions, spilled and filled, stored as narrow zeros, used as map
/// keys) must get the same verdict with and without it. A program accepted with precision and refused without is a
/// path that pruning wrongly skipped: a soundness bug.
/// </summary>
public class VerifierPrecisionFuzzTests
{
    private static Instruction I(byte op, Register dst, Register src, short off, long imm) => new(new OpCode(op), dst, src, off, imm);

    private static List<Instruction> RandomProgram(Random rng)
    {
        var insns = new List<Instruction>();
        Register V() => (Register)rng.Next(6, 10);
        // Every value register starts with a small constant; some paths change them.
        for (int r = 6; r <= 9; r++)
            insns.Add(I(0xb7, (Register)r, 0, 0, rng.Next(-2, 3) * 8));
        int length = rng.Next(15, 45);
        for (int i = 0; i < length; i++)
        {
            int pick = rng.Next(26);
            switch (pick < 12 ? pick : pick < 24 ? (pick - 12) % 12 : pick - 12)
            {
                case 0: insns.Add(I(0xb7, V(), 0, 0, rng.Next(-3, 3) * 8)); break;                 // mov v, k
                case 1: insns.Add(I(0xbf, V(), V(), 0, 0)); break;                                // mov v, v
                case 2: insns.Add(I(0x07, V(), 0, 0, rng.Next(-2, 3) * 8)); break;                 // add v, k
                case 3: insns.Add(I(0x0f, V(), V(), 0, 0)); break;                                // add v, v
                case 4: insns.Add(I(0x57, V(), 0, 0, rng.Next(0, 4) * 8)); break;                 // and v, k
                case 5:                                                                          // v = random & 24
                    insns.Add(I(0x85, 0, 0, 0, (int)HelperId.GetPrandomU32));
                    var v = V();
                    insns.Add(I(0xbf, v, Register.R0, 0, 0));
                    insns.Add(I(0x57, v, 0, 0, 24));
                    break;
                case 6:                                                                          // if v op k goto +n
                case 7:
                    insns.Add(I(new byte[] { 0x15, 0x55, 0x25, 0xa5, 0x65, 0xc5 }[rng.Next(6)], V(), 0, (short)rng.Next(0, 5), rng.Next(-2, 3) * 8));
                    break;
                case 8: insns.Add(I(0x05, 0, 0, 0, 0)); break;                                    // ja +0
                case 9: insns.Add(I(0x7b, Register.R10, V(), (short)(-8 * rng.Next(1, 4)), 0)); break;   // spill
                case 10: insns.Add(I(0x79, V(), Register.R10, (short)(-8 * rng.Next(1, 4)), 0)); break;  // fill
                case 11: insns.Add(I(0x63, Register.R10, V(), (short)(-4 * rng.Next(1, 7)), 0)); break;  // narrow store
                case 12:                                                                         // stack access at fp-16+v
                    insns.Add(I(0xbf, Register.R2, Register.R10, 0, 0));
                    insns.Add(I(0x07, Register.R2, 0, 0, -16));
                    insns.Add(I(0x0f, Register.R2, V(), 0, 0));
                    insns.Add(I(0x7a, Register.R2, 0, 0, 1)); // *(u64 *)(r2 + 0) = 1
                    break;
                case 13:                                                                         // lookup, key at fp-4
                    insns.Add(I(0xbf, Register.R2, Register.R10, 0, 0));
                    insns.Add(I(0x07, Register.R2, 0, 0, -4));
                    insns.Add(new Instruction(new OpCode(0x18), Register.R1, (Register)1, 0, 0) { Reference = "m" });
                    insns.Add(I(0x85, 0, 0, 0, (int)HelperId.MapLookupElem));
                    insns.Add(I(0x79, Register.R3, Register.R0, 0, 0)); // unchecked: fine only for a constant key in range
                    break;
            }
        }
        insns.Add(I(0xb7, Register.R0, 0, 0, 2));
        insns.Add(I(0x95, 0, 0, 0, 0));
        KeepJumpsInside(insns);
        return insns;
    }

    /// <summary>Turns a forward jump (JMP or JMP32 class) that would land past the end into a jump to the next instruction.</summary>
    internal static void KeepJumpsInside(List<Instruction> insns)
    {
        for (int i = 0; i < insns.Count; i++)
        {
            if ((insns[i].OpCode.Value & 0x07) is 0x05 or 0x06 && insns[i].OpCode.Value is not (0x85 or 0x95) && i + 1 + insns[i].Offset >= insns.Count)
                insns[i] = insns[i] with { Offset = 0 };
        }
    }

    [Fact]
    public void PrecisionNeverChangesAVerdict()
    {
        var rng = new Random(2026);
        var maps = new List<MapSpec> { new() { Name = "m", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 2 } };
        int accepted = 0, refused = 0, saved = 0;
        for (int n = 0; n < 4000; n++)
        {
            var program = new ProgramSpec { Name = "p", SectionName = "xdp", Type = ProgramType.Xdp, License = "GPL", Instructions = RandomProgram(rng) };
            var with = BpfVerifier.Verify(program, new VerifierOptions { Maps = maps });
            var without = BpfVerifier.Verify(program, new VerifierOptions { Maps = maps, WithoutPrecision = true });
            Assert.True(with.Accepted == without.Accepted,
                $"program {n}: with precision {(with.Accepted ? "accepted" : with.Error!.ToString())}; without {(without.Accepted ? "accepted" : without.Error!.ToString())}\n"
                + string.Join("\n", program.Instructions.Select((x, i) => $"{i}: {InstructionText(x)}")));
            if (with.Accepted)
                accepted++;
            else
                refused++;
            saved += without.ProcessedInstructions - with.ProcessedInstructions;
        }
        // The generator must produce both verdicts, and precision must have pruned something, or the test proves nothing.
        Assert.True(accepted > 200 && refused > 200, $"accepted {accepted}, refused {refused}");
        Assert.True(saved > 0, "precision never saved an instruction");
    }

    /// <summary>
    /// The issue's soundness bar: what the verifier accepts never trips the VM's bounds checks. Every accepted program
    /// of the generator above runs in the interpreter with memory checks on, on frames of several lengths, several
    /// times (bpf_get_prandom_u32 takes a different path each run); any trap is a path the verifier got wrong.
    /// </summary>
    [Fact]
    public void AcceptedProgramsNeverTripTheVmsChecks()
    {
        var rng = new Random(77);
        var frames = new[] { new byte[14], new byte[60], new byte[1500] };
        int ran = 0;
        for (int n = 0; n < 1500; n++)
        {
            var maps = new List<MapSpec> { new() { Name = "m", Type = MapType.Array, KeySize = 4, ValueSize = 8, MaxEntries = 2 } };
            var program = new ProgramSpec { Name = "p", SectionName = "xdp", Type = ProgramType.Xdp, License = "GPL", Instructions = RandomProgram(rng) };
            if (!BpfVerifier.Verify(program, new VerifierOptions { Maps = maps }).Accepted)
                continue;
            var spec = new CollectionSpec { License = "GPL" };
            spec.Maps.AddRange(maps);
            spec.Programs.Add(program);
            using var collection = VmCollection.Load(spec, new VmOptions { CheckMemory = true });
            var vm = collection.Program("p");
            using var execution = new VmExecution();
            foreach (var frame in frames)
            {
                for (int run = 0; run < 4; run++)
                {
                    using var context = new XdpContext();
                    context.SetPacket(frame);
                    vm.RunXdp(execution, context, out var trap);
                    Assert.True(trap is null, $"program {n} was accepted but trapped: {trap?.Message}\n"
                        + string.Join("\n", program.Instructions.Select((x, i) => $"{i}: {InstructionText(x)}")));
                }
            }
            ran++;
        }
        Assert.True(ran > 100, $"only {ran} programs were accepted and run");
    }

    private static string InstructionText(Instruction insn) => $"{insn.OpCode.Value:x2} dst=r{(int)insn.Dst} src=r{(int)insn.Src} off={insn.Offset} imm={insn.Immediate}";
}
