using SharpBpf.Asm;
using SharpBpf.Conformance;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Asm;

/// <summary>Mutated assembly (from the conformance files, or a built-in sample) gives AssemblerException or a program, never another exception.</summary>
public class AssemblerFuzzTests
{
    private const string Sample = """
        mov32 %r0, 1
        lddw %r1, 0x1122334455667788
        ldxdw %r2, [%r1+8]
        lock fetch add [%r10-8], %r2
        jne %r0, 0x10, done
        call local f
        done: exit
        f: movsx864 %r0, %r1
        exit
        """;

    private static IEnumerable<string> Corpus()
    {
        yield return Sample;
        if (TestPaths.ConformanceDir is { } dir)
        {
            foreach (var path in Directory.GetFiles(dir, "*.data").Order(StringComparer.Ordinal).Take(80))
            {
                if (ConformanceFile.Load(path).AssemblySource is { } asm)
                    yield return asm;
            }
        }
    }

    [Fact]
    public void MutatedSourcesOnlyEverThrowAssemblerException()
    {
        var random = new Random(20261123);
        const string alphabet = "%r0123456789abcdefx[]+-,: #\n\tlockfetchjalddw";
        int runs = 0, refused = 0;
        foreach (var text in Corpus())
        {
            for (int i = 0; i < 60; i++)
            {
                var chars = text.ToCharArray().ToList();
                int edits = random.Next(1, 4);
                for (int e = 0; e < edits && chars.Count > 0; e++)
                {
                    int at = random.Next(chars.Count);
                    switch (random.Next(3))
                    {
                        case 0: chars.RemoveAt(at); break;
                        case 1: chars.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
                        default: chars[at] = alphabet[random.Next(alphabet.Length)]; break;
                    }
                }
                runs++;
                try
                {
                    var program = Assembler.Assemble(new string(chars.ToArray()));
                    // Whatever assembles must print and validate without crashing.
                    _ = Disassembler.Disassemble(program);
                    try { InstructionValidator.Validate(program); } catch (InstructionException) { }
                }
                catch (AssemblerException e)
                {
                    refused++;
                    Assert.Matches(@"^line \d+, column \d+: ", e.Message);
                }
            }
        }
        Assert.True(refused > 0 && refused < runs, $"{refused} of {runs} mutations refused");
    }
}

/// <summary>Random instruction bytes: validation only ever throws InstructionException, and both syntaxes print them.</summary>
public class RandomInstructionTests
{
    [Fact]
    public void RandomSlotsAreRefusedCleanlyOrPrintAndReassemble()
    {
        var random = new Random(9669);
        var bytes = new byte[64];
        int valid = 0;
        for (int run = 0; run < 5000; run++)
        {
            random.NextBytes(bytes);
            // Bias the opcodes towards valid ones so the accepting path is exercised too.
            for (int slot = 0; slot < 8; slot++)
            {
                if (random.Next(2) == 0)
                    bytes[slot * 8] = IsaTable.Entries[random.Next(IsaTable.Entries.Count)].OpCode;
            }
            List<Instruction> program;
            try
            {
                program = InstructionCodec.Decode(bytes);
            }
            catch (InstructionException)
            {
                continue; // a trailing lddw without its second slot
            }
            foreach (var insn in program)
            {
                _ = Disassembler.Format(insn);
                if (IsaTable.Find(insn) is not null)
                {
                    try
                    {
                        InstructionValidator.ValidateInstruction(insn, 0);
                    }
                    catch (InstructionException)
                    {
                        continue;
                    }
                    valid++;
                    // The second lddw slot's reserved fields are not part of the logical instruction.
                    Assert.Equal([insn], Assembler.Assemble(Disassembler.Format(insn, AsmSyntax.Conformance)));
                }
            }
            try { InstructionValidator.ValidateBytes(bytes); } catch (InstructionException) { }
        }
        Assert.True(valid > 100, $"only {valid} valid instructions were generated");
    }
}
