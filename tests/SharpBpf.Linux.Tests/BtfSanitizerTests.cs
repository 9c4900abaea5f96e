using SharpBpf.Btf;
using SharpBpf.Linux.Features;
using SharpBpf.Linux.Interop;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;

namespace SharpBpf.Linux.Tests;

public unsafe class BtfSanitizerTests
{
    [Fact]
    public void NothingChangesWhenTheKernelHasEveryKind()
    {
        var btf = ObjectFile.Open(Repo.TestData("xdp_maps.o")).Btf!;
        Assert.Equal(btf.RawBytes.ToArray(), BtfSanitizer.Sanitize(btf.RawBytes.Span, _ => true));
    }

    [Fact]
    public void NewerKindsBecomeOlderOnesWithTheSameIdsAndTheKernelAcceptsThem()
    {
        var original = ObjectFile.Open(Repo.TestData("xdp_maps.o")).Btf!;
        var kinds = original.CountByKind();
        Assert.True(kinds.ContainsKey(BtfKind.Var) && kinds.ContainsKey(BtfKind.DataSec) && kinds.ContainsKey(BtfKind.Func));

        var sanitized = BtfSanitizer.Sanitize(original.RawBytes.Span, _ => false);
        var parsed = BtfSpec.Parse(sanitized);
        Assert.Equal(original.Types.Count, parsed.Types.Count);
        var left = parsed.CountByKind();
        foreach (var k in new[] { BtfKind.Var, BtfKind.DataSec, BtfKind.Func, BtfKind.FuncProto, BtfKind.Float, BtfKind.DeclTag, BtfKind.TypeTag })
            Assert.False(left.ContainsKey(k), $"{k} left after sanitising");
        // Types that were old already keep their identity.
        for (uint id = 1; id < original.Types.Count; id++)
            if (original[id].Kind is BtfKind.Int or BtfKind.Pointer or BtfKind.Struct or BtfKind.Array)
                Assert.Equal(original[id].Kind, parsed[id].Kind);

        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        fixed (byte* p = sanitized)
        {
            var attr = new BtfLoadAttr { Btf = (ulong)p, BtfSize = (uint)sanitized.Length };
            int fd = Bpf.Default.TryBtfLoad(ref attr);
            Assert.True(fd >= 0, $"the kernel refused sanitised BTF: {Errno.Name(-fd)}");
            LinuxSyscalls.Instance.Close(fd);
        }
    }
}
