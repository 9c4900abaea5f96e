using System.Text;
using SharpBpf.Btf;
using SharpBpf.Objects;
using SharpBpf.Tests.Support;
using SharpBpf.Verifier;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// kfuncs verified against a kernel BTF given in <see cref="VerifierOptions.KernelBtf"/> (here a small synthetic one,
/// so the tests run on any OS), and the clear refusal where there is none. The rule cases in Cases/kfuncs.txt check
/// the same rules against the running kernel's BTF, and the Linux agreement test against the kernel's verdicts.
/// </summary>
public class KfuncTests
{
    /// <summary>
    /// [1] int, [2] void *, [3] struct net_device { int ifindex; } (8 bytes), [4] *[3],
    /// [5] struct xdp_rxq_info { struct net_device *dev; int queue_index; } (16), [6] *[5],
    /// [7] struct xdp_buff { void *data; void *data_end; struct xdp_rxq_info *rxq; } (24),
    /// [8] void *(void *obj), [9] FUNC bpf_cast_to_kern_ctx.
    /// </summary>
    private static BtfSpec SyntheticKernel()
    {
        var strings = new List<byte> { 0 };
        uint Str(string s)
        {
            uint at = (uint)strings.Count;
            strings.AddRange(Encoding.ASCII.GetBytes(s));
            strings.Add(0);
            return at;
        }
        var t = new List<uint>();
        t.AddRange([Str("int"), 1u << 24, 4, (1u << 24) | 32]);
        t.AddRange([0, 2u << 24, 0]);
        t.AddRange([Str("net_device"), (4u << 24) | 1, 8, Str("ifindex"), 1, 0]);
        t.AddRange([0, 2u << 24, 3]);
        t.AddRange([Str("xdp_rxq_info"), (4u << 24) | 2, 16, Str("dev"), 4, 0, Str("queue_index"), 1, 64]);
        t.AddRange([0, 2u << 24, 5]);
        t.AddRange([Str("xdp_buff"), (4u << 24) | 3, 24, Str("data"), 2, 0, Str("data_end"), 2, 64, Str("rxq"), 6, 128]);
        t.AddRange([0, (13u << 24) | 1, 2, Str("obj"), 2]);
        t.AddRange([Str("bpf_cast_to_kern_ctx"), (12u << 24) | 0, 8]);
        var types = t.SelectMany(BitConverter.GetBytes).ToArray();
        var header = new List<byte>();
        header.AddRange(BitConverter.GetBytes((ushort)0xeB9F));
        header.AddRange([1, 0]);
        foreach (uint v in new uint[] { 24, 0, (uint)types.Length, (uint)types.Length, (uint)strings.Count })
            header.AddRange(BitConverter.GetBytes(v));
        return BtfSpec.Parse([.. header, .. types, .. strings]);
    }

    private static VerifierResult Verify(string assembly, BtfSpec? kernel) =>
        BpfVerifier.Verify(new ProgramSpec
        {
            Name = "kfunc_test",
            SectionName = "xdp",
            Type = global::SharpBpf.Platform.ProgramType.Xdp,
            Instructions = CaseAssembler.Assemble(assembly),
            License = "GPL",
        }, new VerifierOptions { KernelBtf = kernel, WithoutRunningKernelBtf = kernel is null });

    private const string WalkToIfindex = """
        call kfunc:bpf_cast_to_kern_ctx
        ldxdw r1, [r0+8]
        ldxdw r2, [r0+0]
        sub r1, r2
        ldxdw r3, [r0+16]
        ldxw r4, [r3+8]
        ldxdw r3, [r3+0]
        ldxw r0, [r3+0]
        exit
        """;

    [Fact]
    public void TheKernelsStructsAreWalkedThroughTheGivenKernelBtf()
    {
        var result = Verify(WalkToIfindex, SyntheticKernel());
        Assert.True(result.Accepted, result.Error?.ToString());
    }

    [Theory]
    [InlineData("ldxdw r1, [r0+24]", "access beyond struct xdp_buff at off 24 size 8")]
    [InlineData("ldxw r1, [r0+16]", "cannot access ptr member rxq with moff 16 in struct xdp_buff with off 16 size 4")]
    [InlineData("ldxdw r1, [r0-8]", "R0 is ptr_xdp_buff invalid negative access: off=-8")]
    [InlineData("stxdw [r0+0], r1", "only read is supported")]
    public void AccessesTheStructDoesNotAllowAreRefused(string access, string message)
    {
        var result = Verify($"mov r6, r1\ncall kfunc:bpf_cast_to_kern_ctx\nmov r1, 0\n{access}\nmov r0, 2\nexit", SyntheticKernel());
        Assert.False(result.Accepted);
        Assert.Equal(3, result.Error!.InstructionIndex);
        Assert.Contains(message, result.Error.Message);
    }

    [Fact]
    public void AHoleInAStructIsNoField()
    {
        // xdp_rxq_info: dev at 0 (8 bytes), queue_index at 8 (4 bytes), then 4 bytes of padding.
        var result = Verify("call kfunc:bpf_cast_to_kern_ctx\nldxdw r1, [r0+16]\nldxw r2, [r1+12]\nmov r0, 2\nexit", SyntheticKernel());
        Assert.False(result.Accepted);
        Assert.Contains("struct xdp_rxq_info doesn't have field at offset 12", result.Error!.Message);
    }

    [Fact]
    public void AKfuncTheKernelBtfLacksIsRefusedWhereItIsCalled()
    {
        var result = Verify("call kfunc:bpf_rcu_read_lock\nmov r0, 2\nexit", SyntheticKernel());
        Assert.False(result.Accepted);
        Assert.Equal(0, result.Error!.InstructionIndex);
        Assert.Contains("bpf_rcu_read_lock is not in the kernel's BTF", result.Error.Message);
    }

    [Fact]
    public void WithoutKernelBtfAKfuncCallIsDeclinedAsUnsupported()
    {
        var result = Verify(WalkToIfindex, kernel: null);
        Assert.False(result.Accepted);
        Assert.Equal(0, result.Error!.InstructionIndex);
        Assert.Contains("not supported by this verifier without the kernel's BTF", result.Error.Message);
    }

    [Fact]
    public void CoreXdpIsDeclinedOfflineAndVerifiedAgainstTheRunningKernel()
    {
        var spec = ObjectFile.Open(Path.Combine(TestPaths.RepoRoot, "tests", "testdata", "core_xdp.o"));
        var offline = BpfVerifier.Verify(spec, "core_xdp", new VerifierOptions { WithoutRunningKernelBtf = true });
        Assert.False(offline.Accepted);
        Assert.Contains("bpf_cast_to_kern_ctx", offline.Error!.Message);
        Assert.Contains("not supported by this verifier", offline.Error.Message);
        if (RunningKernelBtf.TryLoad() is null)
            Assert.Skip("no kernel BTF (/sys/kernel/btf/vmlinux) here to verify core_xdp.o against");
        var online = BpfVerifier.Verify(spec, "core_xdp");
        Assert.True(online.Accepted, online.Error?.ToString());
    }
}
