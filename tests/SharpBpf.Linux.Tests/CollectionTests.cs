using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests;

public class CollectionTests
{
    private static readonly byte[] s_packet = MakePacket();

    private static byte[] MakePacket()
    {
        var p = new byte[64];
        for (int i = 0; i < p.Length; i++)
            p[i] = (byte)i;
        return p;
    }

    [Fact]
    public void LoadsMapsGlobalDataAndProgramAndTestRunsIt()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var collection = BpfCollection.Load(Programs.CountingXdp(verdict: 2));

        var program = collection.Program("count_pass");
        var result = program.TestRun(new TestRunOptions { Data = s_packet, Repeat = 5 });
        Assert.Equal(XdpAction.Pass, result.Action);
        Assert.Equal("kernel", result.Engine);
        Assert.Equal(s_packet, result.DataOut);
        // Repeats share state: the counter saw all five runs.
        Assert.True(collection.Map("counters").TryLookup(0u, out ulong count));
        Assert.Equal(5ul, count);

        var info = program.GetInfo();
        Assert.Equal(program.Id, info.Id);
        Assert.Equal(ProgramType.Xdp, info.Type);
        Assert.Equal("count_pass", info.Name);
        Assert.Equal(16, info.Tag.Length);
        Assert.True(info.GplCompatible);
        Assert.Equal(
            new[] { collection.Map("counters").Id, collection.Map(".rodata").Id }.Order(),
            info.MapIds.Order());
    }

    [Fact]
    public void RodataIsFrozenAndReadOnlyForPrograms()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var collection = BpfCollection.Load(Programs.CountingXdp(verdict: 1));
        var rodata = collection.Map(".rodata");
        Assert.Equal(1u << 7, rodata.Flags & (1u << 7)); // BPF_F_RDONLY_PROG
        Assert.True(rodata.TryLookup(0u, out uint verdict));
        Assert.Equal(1u, verdict);
        var e = Assert.Throws<BpfSyscallException>(() => rodata.Update(0u, 2u));
        Assert.Equal(Errno.EPERM, e.ErrorNumber);
        Assert.Contains("map '.rodata'", e.Message);
        Assert.Equal(XdpAction.Drop, collection.Program("count_pass").TestRun(new TestRunOptions { Data = s_packet }).Action);
    }

    [Fact]
    public void PinnedMapIsReusedByASecondLoad()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var options = new BpfCollectionOptions { PinDirectory = fs.Path };
        var spec = Programs.CountingXdp(pinning: MapPinning.ByName);

        uint firstId;
        using (var first = BpfCollection.Load(spec, options))
        {
            firstId = first.Map("counters").Id;
            Assert.Equal(Path.Combine(fs.Path, "counters"), first.Map("counters").PinPath);
            first.Program("count_pass").TestRun(new TestRunOptions { Data = s_packet, Repeat = 3 });
        }
        // The first collection is closed; the pin keeps the map and its counts.
        Assert.True(File.Exists(Path.Combine(fs.Path, "counters")));
        using (var second = BpfCollection.Load(spec, options))
        {
            Assert.Equal(firstId, second.Map("counters").Id);
            second.Program("count_pass").TestRun(new TestRunOptions { Data = s_packet, Repeat = 2 });
            Assert.True(second.Map("counters").TryLookup(0u, out ulong count));
            Assert.Equal(5ul, count);
        }
        using var opened = BpfMap.OpenPinned(Path.Combine(fs.Path, "counters"));
        Assert.Equal(firstId, opened.Id);
    }

    [Fact]
    public void IncompatiblePinnedMapIsRefusedAndNothingLeaks()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var options = new BpfCollectionOptions { PinDirectory = fs.Path };
        using (BpfCollection.Load(Programs.CountingXdp(pinning: MapPinning.ByName), options)) { }

        var changed = Programs.CountingXdp(pinning: MapPinning.ByName);
        changed.FindMap("counters")!.MaxEntries = 8;
        var e = Assert.Throws<BpfException>(() => BpfCollection.Load(changed, options));
        Assert.Contains("map 'counters'", e.Message);
        Assert.Contains("holds 4 entries, the object wants 8", e.Message);
    }

    [Fact]
    public void GlobalDataNamesArePinnedWithoutDots()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var spec = Programs.CountingXdp();
        spec.FindMap(".rodata")!.Pinning = MapPinning.ByName;
        using (BpfCollection.Load(spec, new BpfCollectionOptions { PinDirectory = fs.Path }))
            Assert.True(File.Exists(Path.Combine(fs.Path, "_rodata")));
    }

    [Fact]
    public void FailureLaterInTheLoadClosesEverythingAndUnpins()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var spec = Programs.CountingXdp(pinning: MapPinning.ByName);
        // A second program the verifier refuses: the maps and the first program were already made.
        spec.Programs.Add(Programs.UncheckedLookup().Programs[0]);
        spec.Maps.Add(Programs.UncheckedLookup().Maps[0]);
        Assert.Throws<BpfVerifierException>(() => BpfCollection.Load(spec, new BpfCollectionOptions { PinDirectory = fs.Path }));
        Assert.False(File.Exists(Path.Combine(fs.Path, "counters")), "a map pinned by the failed load was left pinned");
    }

    [Fact]
    public void MissingMapReferenceSaysWhich()
    {
        var spec = Programs.CountingXdp();
        spec.Maps.RemoveAll(m => m.Name == "counters");
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var e = Assert.Throws<BpfException>(() => BpfCollection.Load(spec));
        Assert.Contains("load program 'count_pass': instruction 4 refers to map 'counters'", e.Message);
    }

    [Fact]
    public void KernelRefusalNamesProgramMapAndCommand()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var spec = Programs.CountingXdp();
        spec.FindMap("counters")!.KeySize = 0; // an array needs 4-byte keys
        var e = Assert.Throws<BpfSyscallException>(() => BpfCollection.Load(spec));
        Assert.StartsWith("map 'counters': BPF_MAP_CREATE: EINVAL", e.Message);
    }
}
