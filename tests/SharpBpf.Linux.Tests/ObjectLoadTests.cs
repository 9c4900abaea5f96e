using System.Buffers.Binary;
using SharpBpf.Linux.Tests.Support;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests;

/// <summary>Real clang-built objects loaded into the kernel: BTF, global data, map-in-map, legacy maps, pinning.</summary>
public class ObjectLoadTests
{
    private static byte[] Udp(int length)
    {
        var p = new byte[length];
        p[12] = 0x08; // IPv4
        p[14] = 0x45;
        p[23] = 17; // UDP
        for (int i = 34; i < length; i++)
            p[i] = (byte)i;
        return p;
    }

    [Fact]
    public void XdpMapsLoadsWithBtfAndGlobalData()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var spec = ObjectFile.Open(Repo.TestData("xdp_maps.o"));
        using var c = BpfCollection.Load(spec);
        Assert.Empty(c.Warnings);
        var program = c.Program("xdp_count");
        Assert.NotEqual(0u, program.GetInfo().BtfId); // BTF (func and line info) was accepted

        var data = c.Maps.Values.Single(m => m.Name == ".data");
        Assert.Contains("xdp_maps", data.GetInfo().Name); // libbpf's global-data name: object prefix + section
        Assert.Equal(XdpAction.Pass, program.TestRun(new TestRunOptions { Data = Udp(100), Repeat = 3 }).Action);
        Assert.Equal(XdpAction.Drop, program.TestRun(new TestRunOptions { Data = Udp(1600) }).Action);

        // .data started at packets_seen = 7 and the program counted 4 runs.
        var dataValue = data.Lookup(new byte[4])!;
        Assert.Equal(11ul, BinaryPrimitives.ReadUInt64LittleEndian(dataValue));
        var bss = c.Maps.Values.Single(m => m.Name == ".bss");
        var bssValue = bss.Lookup(new byte[4])!;
        Assert.Contains(1ul, new[] { BinaryPrimitives.ReadUInt64LittleEndian(bssValue), BinaryPrimitives.ReadUInt64LittleEndian(bssValue.AsSpan(8)) });
        var verdicts = c.Map("verdicts");
        Assert.Equal(3ul, verdicts.LookupPerCpu<uint, ulong>((uint)XdpAction.Pass)!.Aggregate(0ul, (a, b) => a + b));
        Assert.Equal(1ul, verdicts.LookupPerCpu<uint, ulong>((uint)XdpAction.Drop)!.Aggregate(0ul, (a, b) => a + b));
    }

    [Fact]
    public void KeysAndValuesPrintAsCValuesFromTheKernelsBtf()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var c = BpfCollection.Load(ObjectFile.Open(Repo.TestData("xdp_maps.o")));
        c.Program("xdp_count").TestRun(new TestRunOptions { Data = Udp(100) });

        var data = c.Maps.Values.Single(m => m.Name == ".data");
        var btf = data.GetBtf()!.Value;
        Assert.Equal("{packets_seen = 8, drop_port = 9}", BtfValueFormatter.Format(btf.Btf, btf.ValueTypeId, data.Lookup(new byte[4])));
        var rodata = c.Maps.Values.Single(m => m.Name == ".rodata");
        var rbtf = rodata.GetBtf()!.Value;
        Assert.Equal("{max_len = 1500, allow_big = 0}", BtfValueFormatter.Format(rbtf.Btf, rbtf.ValueTypeId, rodata.Lookup(new byte[4])));

        var flows = c.Map("flows");
        var fbtf = flows.GetBtf()!.Value;
        var (key, value) = flows.Entries().Single();
        Assert.Equal("1", BtfValueFormatter.Format(fbtf.Btf, fbtf.KeyTypeId, key)); // ingress_ifindex of a test run is lo
        Assert.Equal("{packets = 1, bytes = 100}", BtfValueFormatter.Format(fbtf.Btf, fbtf.ValueTypeId, value));
        Assert.Null(c.Map("verdicts").GetBtf()); // key_size/value_size maps carry no types
    }

    [Fact]
    public void MapInMapAndProgramArrayAreFilledFromInitialValues()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var fs = new Bpffs();
        var spec = ObjectFile.Open(Repo.TestData("map_in_map.o"));
        using var c = BpfCollection.Load(spec, new BpfCollectionOptions { PinDirectory = fs.Path });
        var outer = c.Map("outer");
        Assert.Equal(MapType.ArrayOfMaps, outer.Type);
        // Slots 0 and 2 hold inner_a and inner_b (a map-in-map lookup from user space gives the inner map's id).
        Assert.True(outer.TryLookup(0u, out uint idA));
        Assert.Equal(c.Map("inner_a").Id, idA);
        Assert.False(outer.TryLookup(1u, out uint _));
        Assert.True(outer.TryLookup(2u, out uint idB));
        Assert.Equal(c.Map("inner_b").Id, idB);
        foreach (var m in spec.Maps.Where(m => m.Pinning == MapPinning.ByName))
            Assert.True(File.Exists(Path.Combine(fs.Path, BpfCollection.PinName(m.Name))));
        var jumps = spec.Maps.Single(m => m.Type == MapType.ProgArray);
        foreach (var slot in jumps.InitialReferences)
        {
            Assert.True(c.Map(jumps.Name).TryLookup(slot.Key, out uint progId));
            Assert.Equal(c.Program(slot.Name).Id, progId);
        }
    }

    [Fact]
    public void LegacyMapsLoadAsCiliumAndAyaDo()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        using var c = BpfCollection.Load(ObjectFile.Open(Repo.TestData("legacy_maps.o")));
        Assert.NotEmpty(c.Maps);
        var program = c.Programs.Values.Single();
        program.TestRun(new TestRunOptions { Data = Udp(64) });
    }

    [Fact]
    public void EveryXdpProgramOfTheProjectLoads()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var objects = Directory.GetFiles(Repo.Programs(""), "*.o", SearchOption.AllDirectories)
            .Concat(Directory.GetFiles(Path.Combine(Repo.Root, "tests", "testdata"), "*.o", SearchOption.AllDirectories))
            // A typed __ksym needs CONFIG_KALLSYMS_ALL in the kernel (libbpf fails alike without it): see CoreTests.
            .Where(p => !p.EndsWith("ksyms.o", StringComparison.Ordinal))
            .Where(p => !p.EndsWith("unknown_section.o", StringComparison.Ordinal)) // type Unspec on purpose (CLI tests)
            .Where(p => !p.EndsWith("xdp_trap.o", StringComparison.Ordinal)) // reads past data_end on purpose (CLI tests)
            .Where(p => !p.EndsWith("map_no_max_entries.o", StringComparison.Ordinal)) // map the kernel cannot create, on purpose (CLI tests)
            .ToList();
        Assert.NotEmpty(objects);
        var failures = new List<string>();
        foreach (var path in objects)
        {
            using var fs = new Bpffs();
            try
            {
                using var c = BpfCollection.Load(ObjectFile.Open(path), new BpfCollectionOptions { PinDirectory = fs.Path });
                Assert.NotEmpty(c.Programs);
            }
            catch (BpfException e)
            {
                failures.Add($"{Path.GetRelativePath(Repo.Root, path)}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
    }

    [Fact]
    public void AProgramWithNoTypeIsRefusedWithItsSection()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var spec = ObjectFile.Open(Repo.TestData("xdp_maps.o"));
        spec.Programs[0].Type = SharpBpf.Platform.ProgramType.Unspec;
        spec.Programs[0].SectionName = "xdp_custom";
        var e = Assert.Throws<BpfException>(() => BpfCollection.Load(spec));
        Assert.Contains("its section 'xdp_custom' names no program type", e.Message);
    }

    [Fact]
    public void KernelTestRunSaysWhyAFrameIsTooShort()
    {
        KernelTest.RequireBpf();
        using var collection = BpfCollection.Load(ObjectFile.Open(Repo.TestData("xdp_maps.o")));
        var e = Assert.Throws<BpfException>(() => collection.Program("xdp_count").TestRun(new TestRunOptions { Data = new byte[13] }));
        Assert.Contains("at least 14 bytes", e.Message);
        Assert.Equal(XdpAction.Pass, collection.Program("xdp_count").TestRun(new TestRunOptions { Data = new byte[14] }).Action);
    }

    [Fact]
    public void VerifierRejectionOfACFixtureShowsTheCSourceLine()
    {
        KernelTest.RequireBpf();
        using var leaks = new FdLeakCheck();
        var dir = Directory.CreateTempSubdirectory("sharpbpf-verifier-");
        try
        {
            var obj = Repo.CompileBpf(dir.FullName, "unchecked", """
                #include <linux/bpf.h>
                #define SEC(name) __attribute__((section(name), used))
                static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
                struct {
                    int (*type)[BPF_MAP_TYPE_HASH];
                    int (*max_entries)[16];
                    unsigned int *key;
                    unsigned long long *value;
                } counts SEC(".maps");

                SEC("xdp")
                int unchecked(struct xdp_md *ctx)
                {
                    unsigned int key = ctx->ingress_ifindex;
                    unsigned long long *value = bpf_map_lookup_elem(&counts, &key);
                    return *value > 10 ? XDP_DROP : XDP_PASS;
                }
                char _license[] SEC("license") = "GPL";
                """);
            var spec = ObjectFile.Open(obj);
            var e = Assert.Throws<BpfVerifierException>(() => BpfCollection.Load(spec));
            Assert.NotNull(e.SourceLine);
            Assert.Equal(16, e.SourceLine!.Line);
            Assert.Contains("return *value > 10", e.Message);
            Assert.Contains("unchecked.c:16", e.Message);
            // With BTF line info loaded, the kernel's own log quotes the source too.
            Assert.Contains("; return *value > 10", e.Log);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
