using SharpBpf.Linux.Features;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Platform;

namespace SharpBpf.Linux.Tests;

public class FeatureTests
{
    [Fact]
    public void ProgramTypesThisKernelHasAndOneItCannotHave()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var xdp = BpfFeatures.Probe(ProgramType.Xdp);
        Assert.True(xdp.Supported);
        Assert.Equal("4.8", xdp.SinceKernel);
        Assert.Same(xdp, BpfFeatures.Probe(ProgramType.Xdp)); // cached
        Assert.True(BpfFeatures.Probe(ProgramType.SchedCls).Supported);
        Assert.True(BpfFeatures.Probe(ProgramType.Tracing).Supported); // needs an attach target: probed by log

        var bogus = (ProgramType)4000;
        Assert.False(BpfFeatures.Probe(bogus).Supported);
        var e = Assert.Throws<BpfNotSupportedException>(() => BpfFeatures.Require(bogus));
        Assert.Contains("program type 4000", e.Message);
    }

    [Fact]
    public void MapTypes()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        foreach (var t in new[] { MapType.Hash, MapType.Array, MapType.PercpuArray, MapType.LpmTrie, MapType.ArrayOfMaps,
                     MapType.Queue, MapType.Ringbuf, MapType.BloomFilter, MapType.Devmap, MapType.Xskmap, MapType.CgroupStorage })
            Assert.True(BpfFeatures.Probe(t).Supported, $"{t}: {BpfFeatures.Probe(t)}");
        var e = Assert.Throws<BpfNotSupportedException>(() => BpfFeatures.Require((MapType)4000));
        Assert.Contains("map type 4000", e.Message);
    }

    [Fact]
    public void HelpersPerProgramType()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        Assert.True(BpfFeatures.Probe(ProgramType.Xdp, HelperId.MapLookupElem).Supported);
        Assert.True(BpfFeatures.Probe(ProgramType.Xdp, HelperId.XdpAdjustHead).Supported);
        // Known to the kernel but not allowed for socket filters.
        Assert.False(BpfFeatures.Probe(ProgramType.SocketFilter, HelperId.XdpAdjustHead).Supported);
        // Unknown to every kernel.
        var e = Assert.Throws<BpfNotSupportedException>(() => BpfFeatures.Require(ProgramType.Xdp, (HelperId)100000));
        Assert.Contains("100000 for Xdp", e.Message);
    }

    [Fact]
    public void XdpLinkAndBtfKinds()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        Assert.True(BpfFeatures.XdpLink.Supported, BpfFeatures.XdpLink.ToString());
        Assert.True(BpfFeatures.Btf.Supported);
        // Linux 6.18 has every kind SharpBpf probes for; each blob must be well-formed for this to pass.
        foreach (var kind in BpfFeatures.BtfKinds)
            Assert.True(kind.Supported, kind.ToString());
        Assert.True(BpfFeatures.HasBtfKind("ENUM64"));
    }

    [Fact]
    public void AvailabilityIsOneSentenceOrNull()
    {
        KernelTest.RequireBpf();
        Assert.Null(BpfFeatures.Unavailable);
        Assert.NotEmpty(BpfFeatures.All());
    }
}
