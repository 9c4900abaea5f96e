using System.Diagnostics;
using SharpBpf.Asm;
using SharpBpf.Conformance;
using SharpBpf.Tests.Conformance;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Asm;

public class DisassemblerTests
{
    [Theory]
    [InlineData("mov %r3, 6", "r3 = 6")]
    [InlineData("mov32 %r1, -1", "w1 = -1")]
    [InlineData("add %r1, -1", "r1 += -1")]
    [InlineData("arsh32 %r1, %r2", "w1 s>>= w2")]
    [InlineData("neg32 %r1", "w1 = -w1")]
    [InlineData("mod %r1, %r2", "r1 %= r2")]
    [InlineData("sdiv %r1, 4", "r1 s/= 4")]
    [InlineData("smod32 %r1, %r2", "w1 s%= w2")]
    [InlineData("movsx864 %r1, %r2", "r1 = (s8)r2")]
    [InlineData("movsx1632 %r1, %r2", "w1 = (s16)w2")]
    [InlineData("movsx3264 %r1, %r2", "r1 = (s32)r2")]
    [InlineData("le16 %r1", "r1 = le16 r1")]
    [InlineData("be64 %r1", "r1 = be64 r1")]
    [InlineData("bswap32 %r1", "r1 = bswap32 r1")]
    [InlineData("lddw %r1, 0x500000004", "r1 = 21474836484 ll")]
    [InlineData("lddw %r1, -1", "r1 = -1 ll")]
    [InlineData("lddw %r1, map_fd 3", "ld_pseudo r1, 1, 3")]
    [InlineData("lddw %r1, map_value 0x800000003", "ld_pseudo r1, 2, 3, 8")]
    [InlineData("ldxw %r0, [%r1+8]", "r0 = *(u32 *)(r1 + 8)")]
    [InlineData("ldxw %r0, [%r1]", "r0 = *(u32 *)(r1 + 0)")]
    [InlineData("ldxsh %r0, [%r10-2]", "r0 = *(s16 *)(r10 - 2)")]
    [InlineData("stxdw [%r10-8], %r1", "*(u64 *)(r10 - 8) = r1")]
    [InlineData("stb [%r1+3], 4", "*(u8 *)(r1 + 3) = 4")]
    [InlineData("lock add32 [%r1+3], %r2", "lock *(u32 *)(r1 + 3) += r2")]
    [InlineData("lock or32 [%r1+3], %r2", "lock *(u32 *)(r1 + 3) |= w2")]
    [InlineData("lock fetch xor32 [%r1-3], %r2", "w2 = atomic_fetch_xor((u32 *)(r1 - 3), w2)")]
    [InlineData("lock fetch and [%r1+3], %r2", "r2 = atomic_fetch_and((u64 *)(r1 + 3), r2)")]
    [InlineData("lock xchg [%r1+3], %r2", "r2 = xchg_64(r1 + 3, r2)")]
    [InlineData("lock cmpxchg32 [%r1+3], %r2", "w0 = cmpxchg32_32(r1 + 3, w0, w2)")]
    [InlineData("ja -3", "goto -3")]
    [InlineData("ja32 +70000", "gotol +70000")]
    [InlineData("jeq %r1, 0x80000000, +3", "if r1 == -2147483648 goto +3")]
    [InlineData("jsgt %r3, %r2, +2", "if r3 s> r2 goto +2")]
    [InlineData("jset32 %r1, 4, +3", "if w1 & 4 goto +3")]
    [InlineData("call 4", "call 4")]
    [InlineData("call %r2", "callx r2")]
    [InlineData("exit", "exit")]
    [InlineData("ldabsh 4", "r0 = *(u16 *)skb[4]")]
    [InlineData("ldindb %r2, 0", "r0 = *(u8 *)skb[r2]")]
    public void LlvmSyntax(string asm, string expected) =>
        Assert.Equal(expected, Disassembler.Format(Assembler.Assemble(asm)[0]));

    [Fact]
    public void ListingLooksLikeObjdump()
    {
        var listing = Disassembler.Listing(Assembler.Assemble("lddw %r1, 0x500000004\nldxw %r0, [%r1+8]\nexit"));
        Assert.Equal(
            "       0:\t18 01 00 00 04 00 00 00 00 00 00 00 05 00 00 00\tr1 = 21474836484 ll\n" +
            "       2:\t61 10 08 00 00 00 00 00\tr0 = *(u32 *)(r1 + 8)\n" +
            "       3:\t95 00 00 00 00 00 00 00\texit\n", listing);
    }

    /// <summary>
    /// Table rows whose text LLVM 14 can produce: it has no decoding for mod, jset, stores of immediates and the
    /// v4 set. It prints lddw pseudo forms without the second imm and ldind without its imm (we print both when
    /// they are set), so those samples leave them zero.
    /// </summary>
    private static bool ComparableWithLlvm14(IsaEntry e)
    {
        var op = new OpCode(e.OpCode);
        if (e.MinVersion == IsaVersion.V4)
            return false;
        if (op.IsAlu && op.AluOperation == AluOperation.Mod)
            return false;
        if (op.IsJump && op.JumpOperation == JumpOperation.Jset)
            return false;
        if (e.Form == OperandForm.MemImm)
            return false;
        return true;
    }

    [Fact]
    public async Task LlvmSyntaxMatchesLlvmMc14ForEveryInstructionItKnows()
    {
        string? tool = new[] { "/usr/bin/llvm-mc-14", "/usr/lib/llvm-14/bin/llvm-mc" }.FirstOrDefault(File.Exists);
        if (tool is null)
            Assert.Skip("llvm-mc-14 is not installed; the LLVM syntax is still covered by the explicit cases");
        var entries = IsaTable.Entries.Where(ComparableWithLlvm14).ToList();
        var samples = entries.Select(IsaTableTests.Sample)
            .Select(s => s.IsLoadImmediate64 && s.Src != 0 ? s with { Constant = (uint)s.Immediate } : s)
            .Select(s => IsaTable.Find(s)!.Form == OperandForm.IndSrcImm ? s with { Constant = 0 } : s).ToList();
        // llvm-objdump's default (no alu32) prints loads, stores and the 32-bit lock add on r registers, which we
        // follow; the other 32-bit atomics only decode with +alu32, which prints them on w registers.
        bool IsAtomic32(Instruction s) => s.OpCode.Value == 0xc3 && s.Immediate != 0;
        var plain = await RunLlvmMc(tool, samples.Where(s => !IsAtomic32(s)).ToList(), "");
        var alu32 = await RunLlvmMc(tool, samples.Where(IsAtomic32).ToList(), "-mattr=+alu32");
        int p = 0, a = 0;
        for (int i = 0; i < samples.Count; i++)
        {
            string llvm = IsAtomic32(samples[i]) ? alu32[a++] : plain[p++];
            Assert.True(llvm == Disassembler.Format(samples[i]), $"{entries[i]}: llvm-mc prints '{llvm}', we print '{Disassembler.Format(samples[i])}'");
        }
    }

    private static async Task<List<string>> RunLlvmMc(string tool, List<Instruction> samples, string extra)
    {
        var input = string.Join("\n", samples.Select(s => string.Join(" ", InstructionCodec.Encode([s]).Select(b => $"0x{b:x2}"))));
        var psi = new ProcessStartInfo(tool, $"-disassemble -triple=bpfel {extra}")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var process = Process.Start(psi)!;
        await process.StandardInput.WriteAsync(input + "\n");
        process.StandardInput.Close();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var stdoutTask = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = await process.StandardError.ReadToEndAsync(timeout.Token);
        var stdout = await stdoutTask;
        await process.WaitForExitAsync(timeout.Token);
        var lines = stdout.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && l != ".text")
            .Select(l => System.Text.RegularExpressions.Regex.Replace(l, @"\s+", " ")).ToList();
        Assert.True(lines.Count == samples.Count, $"llvm-mc printed {lines.Count} lines for {samples.Count} instructions: {stderr}");
        return lines;
    }

    [Theory]
    [MemberData(nameof(ConformanceFilesTests.PositiveFiles), MemberType = typeof(ConformanceFilesTests))]
    public void AssembleDisassembleAssembleIsTheIdentity(string name)
    {
        if (TestPaths.ConformanceDir is null)
            Assert.Skip($"the bpf_conformance vectors are not at {TestPaths.SharedDir}/bpf_conformance");
        var file = ConformanceFile.Load(Path.Combine(TestPaths.ConformanceDir, name));
        Assert.NotNull(file.Instructions);
        var text = Disassembler.Disassemble(file.Instructions, AsmSyntax.Conformance);
        Assert.Equal(file.Instructions, Assembler.Assemble(text));
        Assert.DoesNotContain("<invalid", Disassembler.Disassemble(file.Instructions));
    }
}
