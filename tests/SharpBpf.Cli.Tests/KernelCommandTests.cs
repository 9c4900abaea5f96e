using System.Diagnostics;
using System.Text.Json;
using SharpBpf.Linux.Features;

namespace SharpBpf.Cli.Tests;

/// <summary>prog, map and features against the real kernel, in a private bpffs.</summary>
public sealed class KernelCommandTests : IDisposable
{
    private readonly string _bpffs;

    public KernelCommandTests()
    {
        if (BpfFeatures.Unavailable is { } why)
            Assert.Skip(why);
        _bpffs = Directory.CreateTempSubdirectory("sharpbpf-cli-").FullName;
        if (Exec("mount", $"-t bpf bpf {_bpffs}") != 0)
        {
            Directory.Delete(_bpffs);
            Assert.Skip("cannot mount a bpffs here");
        }
    }

    public void Dispose()
    {
        if (_bpffs is null)
            return;
        Exec("umount", _bpffs); // drops every pin made under it
        Directory.Delete(_bpffs, recursive: true);
    }

    private static int Exec(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit(30_000);
        return p.ExitCode;
    }

    private static string Fixture(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return Path.Combine(dir.FullName, "tests", "testdata", name + ".o");
        throw new InvalidOperationException("cannot find the repository root");
    }

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public async Task VerifyKernelShowsALoadThatFailedBeforeTheKernelVerifierAsNotVerifiedNotAsADisagreement()
    {
        // The map has no max_entries: the kernel cannot create it, so its verifier never sees the program.
        var (code, output, error) = await Run("verify", Fixture("map_no_max_entries"), "--kernel", "--json");
        Assert.Equal(1, code);
        using var doc = JsonDocument.Parse(output);
        var verdict = doc.RootElement[0];
        Assert.True(verdict.GetProperty("accepted").GetBoolean(), error);
        var kernel = verdict.GetProperty("kernel");
        Assert.False(kernel.GetProperty("verified").GetBoolean());
        Assert.False(kernel.GetProperty("accepted").GetBoolean());
        Assert.Contains("counters", kernel.GetProperty("message").GetString());
        Assert.False(verdict.GetProperty("disagreement").GetBoolean());

        var (_, table, _) = await Run("verify", Fixture("map_no_max_entries"), "--kernel");
        Assert.Contains("not verified", table);
        Assert.DoesNotContain("disagrees", table);
        Assert.Contains("the kernel did not verify it", table);

        // A program the kernel's verifier does refuse still reads as verified and refused.
        var (_, trapOut, _) = await Run("verify", Fixture("xdp_trap"), "--kernel", "--json");
        using var trap = JsonDocument.Parse(trapOut);
        Assert.True(trap.RootElement[0].GetProperty("kernel").GetProperty("verified").GetBoolean());
        Assert.False(trap.RootElement[0].GetProperty("kernel").GetProperty("accepted").GetBoolean());
    }

    [Fact]
    public async Task LoadPinShowAndEditMaps()
    {
        var (code, output, error) = await Run("prog", "load", Fixture("xdp_maps"), "--pin", _bpffs, "--json");
        Assert.True(code == 0, error);
        using var load = JsonDocument.Parse(output);
        var program = load.RootElement.GetProperty("programs")[0];
        Assert.Equal("xdp_count", program.GetProperty("name").GetString());
        uint id = program.GetProperty("id").GetUInt32();
        var pin = Path.Combine(_bpffs, "xdp_count");
        Assert.True(File.Exists(pin));

        // The program outlived the command (pinned): show it by pin path and by id.
        (code, output, _) = await Run("prog", "show", "--pinned", pin, "--json");
        Assert.Equal(0, code);
        using (var show = JsonDocument.Parse(output))
            Assert.Equal(id, show.RootElement.GetProperty("id").GetUInt32());
        (code, output, _) = await Run("prog", "show", id.ToString());
        Assert.Equal(0, code);
        Assert.Contains("xdp_count", output);
        (code, output, _) = await Run("prog", "list", "--json");
        Assert.Equal(0, code);
        using (var list = JsonDocument.Parse(output))
            Assert.Contains(list.RootElement.EnumerateArray(), p => p.GetProperty("id").GetUInt32() == id);

        // The flows map is used by the program: find its id, then edit it by id.
        uint flowsId = load.RootElement.GetProperty("maps").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "flows").GetProperty("id").GetUInt32();
        var value = "01 00 00 00 00 00 00 00 40 00 00 00 00 00 00 00";
        (code, _, error) = await Run("map", "update", flowsId.ToString(), "--key", "07 00 00 00", "--value", value, "--flags", "noexist");
        Assert.True(code == 0, error);
        (code, _, error) = await Run("map", "update", flowsId.ToString(), "--key", "07 00 00 00", "--value", value, "--flags", "noexist");
        Assert.Equal(1, code);
        Assert.Contains("EEXIST", error);
        (code, output, _) = await Run("map", "lookup", flowsId.ToString(), "--key", "07000000", "--json");
        Assert.Equal(0, code);
        using (var entry = JsonDocument.Parse(output))
            Assert.Equal(value, entry.RootElement.GetProperty("value").GetString());
        (code, output, _) = await Run("map", "dump", flowsId.ToString(), "--json");
        Assert.Equal(0, code);
        using (var dump = JsonDocument.Parse(output))
        {
            Assert.Equal("Hash", dump.RootElement.GetProperty("map").GetProperty("type").GetString());
            Assert.Single(dump.RootElement.GetProperty("entries").EnumerateArray());
        }
        (code, _, _) = await Run("map", "delete", flowsId.ToString(), "--key", "07 00 00 00");
        Assert.Equal(0, code);
        (code, _, error) = await Run("map", "lookup", flowsId.ToString(), "--key", "07 00 00 00");
        Assert.Equal(1, code);
        Assert.Contains("has no key 07 00 00 00", error);
    }

    [Fact]
    public async Task PerCpuDumpShowsEveryCpu()
    {
        var (code, output, error) = await Run("prog", "load", Fixture("xdp_maps"), "--pin", _bpffs, "--json");
        Assert.True(code == 0, error);
        using var load = JsonDocument.Parse(output);
        uint verdictsId = load.RootElement.GetProperty("maps").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "verdicts").GetProperty("id").GetUInt32();
        (code, _, error) = await Run("map", "update", verdictsId.ToString(), "--key", "02 00 00 00", "--value", "05 00 00 00 00 00 00 00");
        Assert.True(code == 0, error);
        (code, output, _) = await Run("map", "lookup", verdictsId.ToString(), "--key", "02 00 00 00", "--json");
        Assert.Equal(0, code);
        using var entry = JsonDocument.Parse(output);
        var values = entry.RootElement.GetProperty("values").EnumerateArray().Select(v => v.GetString()).ToList();
        Assert.Equal(SharpBpf.Linux.BpfMap.PossibleCpus.Count, values.Count);
        Assert.All(values, v => Assert.Equal("05 00 00 00 00 00 00 00", v));
    }

    [Fact]
    public async Task RefusalsAreExitOneWithAMessage()
    {
        var (code, _, error) = await Run("map", "show", "--pinned", Path.Combine(_bpffs, "missing"));
        Assert.Equal(1, code);
        Assert.Contains("BPF_OBJ_GET: ENOENT", error);
        (code, _, error) = await Run("prog", "show");
        Assert.Equal(2, code);
        Assert.Contains("give either an ID or --pinned PATH", error);
        (code, _, error) = await Run("map", "lookup", "1", "--key", "zz");
        Assert.Equal(1, code);
    }

    [Fact]
    public async Task FeaturesJsonListsXdpAndBtfKinds()
    {
        var (code, output, _) = await Run("features", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        var features = doc.RootElement.GetProperty("features").EnumerateArray().ToList();
        Assert.Contains(features, f => f.GetProperty("category").GetString() == "program type" && f.GetProperty("name").GetString() == "Xdp" && f.GetProperty("supported").GetBoolean());
        Assert.Contains(features, f => f.GetProperty("name").GetString() == "bpf_link for XDP");
        Assert.Contains(features, f => f.GetProperty("category").GetString() == "btf kind");
    }

    private static string Program(string name)
    {
        var testdata = Path.GetDirectoryName(Fixture("x"))!;
        return Path.Combine(testdata, "..", "..", "programs", name);
    }

    private const string Frame = "101112131415202122232425" + "0800" + "4500000000000000" + "4011" + "000000000000000000000000000000000000000000000000000000000000000000000000";

    [Fact]
    public async Task TestRunOnTheKernelAgreesWithTheInterpreter()
    {
        var (code, kernelOut, error) = await Run("test-run", Program("bench/xdp_mac_swap.o"), "--data-hex", Frame, "--engine", "kernel", "--repeat", "3", "--json");
        Assert.True(code == 0, error);
        (code, var vmOut, error) = await Run("test-run", Program("bench/xdp_mac_swap.o"), "--data-hex", Frame, "--engine", "interpreter", "--repeat", "3", "--json");
        Assert.True(code == 0, error);
        using var kernel = JsonDocument.Parse(kernelOut);
        using var vm = JsonDocument.Parse(vmOut);
        Assert.Equal("kernel", kernel.RootElement.GetProperty("engine").GetString());
        Assert.Equal(vm.RootElement.GetProperty("retval").GetUInt64(), kernel.RootElement.GetProperty("retval").GetUInt64());
        Assert.Equal(vm.RootElement.GetProperty("data_out").GetString(), kernel.RootElement.GetProperty("data_out").GetString());
    }

    [Fact]
    public async Task LoadOfAProgramWhoseSectionNamesNoTypeSaysSo()
    {
        var (code, _, error) = await Run("prog", "load", Fixture("unknown_section"));
        Assert.Equal(1, code);
        Assert.Contains("program 'xdp_pass_func': section 'xdp_pass' names no program type", error);
        Assert.DoesNotContain("EINVAL", error);
    }

    [Fact]
    public async Task TestRunOnTheKernelPinsNoMap()
    {
        // xdp_outer uses a pin-by-name map: a test run must neither need a bpffs at the default place nor leave a pin
        // there (nor reuse one: the managed engines start from empty maps too).
        const string defaultPin = "/sys/fs/bpf/pinned_counts";
        if (File.Exists(defaultPin))
            Assert.Skip($"{defaultPin} exists already (not ours)");
        var (code, output, error) = await Run("test-run", Fixture("map_in_map"), "--program", "xdp_outer", "--data-hex", Frame, "--engine", "kernel", "--json");
        var leftover = File.Exists(defaultPin);
        if (leftover)
            File.Delete(defaultPin);
        Assert.True(code == 0, error);
        Assert.False(leftover, "test-run --engine kernel left a pin at " + defaultPin);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal("kernel", doc.RootElement.GetProperty("engine").GetString());
    }

    [Fact]
    public async Task RunOnTheKernelWritesPacketsWithoutTheirMetadata()
    {
        // xdp_meta reserves 8 bytes of metadata and passes the packet: the kernel's test run returns metadata and
        // packet together, but what leaves (and what the managed engines write) is the packet alone.
        var pcap = Path.Combine(Path.GetTempPath(), $"sharpbpf-kernel-meta-{Environment.ProcessId}.pcap");
        try
        {
            using (var writer = SharpBpf.Pcap.PcapWriter.Create(pcap, SharpBpf.Pcap.LinkType.Ethernet, 65535))
                for (int i = 0; i < 3; i++)
                    writer.Write(Convert.FromHexString(Frame), i * 1000L);
            var outputs = new Dictionary<string, List<string>>();
            foreach (var engine in new[] { "interpreter", "kernel" })
            {
                var outPcap = $"{pcap}.{engine}.out";
                var (code, _, error) = await Run("run", Fixture("xdp_meta"), "--pcap", pcap, "--out", outPcap, "--engine", engine, "--json");
                Assert.True(code == 0, error);
                using var stream = File.OpenRead(outPcap);
                using var reader = new SharpBpf.Pcap.PcapReader(stream);
                outputs[engine] = [.. reader.Select(p => Convert.ToHexString(p.Data))];
                File.Delete(outPcap);
            }
            Assert.Equal(Enumerable.Repeat(Frame.ToUpperInvariant(), 3), outputs["kernel"]);
            Assert.Equal(outputs["interpreter"], outputs["kernel"]);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public async Task RunOverAPcapOnTheKernel()
    {
        var pcap = Path.Combine(Path.GetTempPath(), $"sharpbpf-kernel-run-{Environment.ProcessId}.pcap");
        var outPcap = pcap + ".out";
        try
        {
            using (var writer = SharpBpf.Pcap.PcapWriter.Create(pcap, SharpBpf.Pcap.LinkType.Ethernet, 65535))
                for (int i = 0; i < 5; i++)
                    writer.Write(Convert.FromHexString(Frame), i * 1000L);
            var (code, output, error) = await Run("run", Program("bench/xdp_mac_swap.o"), "--pcap", pcap, "--out", outPcap, "--engine", "kernel", "--json");
            Assert.True(code == 0, error);
            using var doc = JsonDocument.Parse(output);
            Assert.Equal(5, doc.RootElement.GetProperty("packets").GetInt32());
            Assert.Equal(5, doc.RootElement.GetProperty("actions").GetProperty("XDP_TX").GetInt32());
            Assert.Equal(5, doc.RootElement.GetProperty("written").GetInt32());
        }
        finally
        {
            File.Delete(pcap);
            File.Delete(outPcap);
        }
    }

    [Fact]
    public async Task RunWithMapsLeavesTheSameMapsInTheKernelAndTheVm()
    {
        var input = VmCommandsTests.WriteThreeFrames();
        var mapsIn = Path.ChangeExtension(input, ".in.json");
        var kernelOut = Path.ChangeExtension(input, ".kernel.json");
        var vmOut = Path.ChangeExtension(input, ".vm.json");
        try
        {
            // allow_big in .rodata (set before the load) lets the 1,600-byte frame pass; a flow is counted on.
            File.WriteAllText(mapsIn, """
                { "maps": {
                    ".rodata": [ { "key": "00000000", "value": "dc05000001" } ],
                    "flows": [ { "key": "01000000", "value": "0a000000000000000000000000000000" } ]
                } }
                """);
            var (code, _, error) = await Run("run", Fixture("xdp_maps"), "--pcap", input, "--engine", "kernel", "--maps", mapsIn, "--maps-out", kernelOut);
            Assert.True(code == 0, error);
            (code, _, error) = await Run("run", Fixture("xdp_maps"), "--pcap", input, "--maps", mapsIn, "--maps-out", vmOut);
            Assert.True(code == 0, error);
            using var kernel = JsonDocument.Parse(File.ReadAllText(kernelOut));
            using var vm = JsonDocument.Parse(File.ReadAllText(vmOut));
            Assert.Equal(3UL, VmCommandsTests.Counter(kernel.RootElement, "verdicts", "02 00 00 00"));
            Assert.Equal(13UL, VmCommandsTests.Counter(kernel.RootElement, "flows", "01 00 00 00"));
            foreach (var (map, key) in new[] { ("verdicts", "01 00 00 00"), ("verdicts", "02 00 00 00"), ("flows", "01 00 00 00"), (".bss", "00 00 00 00"), (".data", "00 00 00 00") })
                Assert.Equal(VmCommandsTests.Counter(kernel.RootElement, map, key), VmCommandsTests.Counter(vm.RootElement, map, key));
        }
        finally
        {
            foreach (var f in new[] { input, mapsIn, kernelOut, vmOut })
                File.Delete(f);
        }
    }

    [Fact]
    public async Task FilterRunGivesTheKernelsCountsInEveryEngine()
    {
        var pins = Path.Combine(_bpffs, "filter");
        var input = Path.Combine(Path.GetTempPath(), $"sharpbpf-filter-run-{Guid.NewGuid():N}.pcap");
        try
        {
            var frames = new List<byte[]>();
            for (int i = 0; i < 40; i++)
                frames.Add(UdpFrame(source: (byte)(1 + i % 4), port: (ushort)(i % 3 == 0 ? 53 : 5000 + i)));
            using (var writer = SharpBpf.Pcap.PcapWriter.Create(input))
                foreach (var frame in frames)
                    writer.Write(frame, 1_000_000_000L);
            foreach (var rule in new[] { new[] { "ip", "10.0.0.2", "--src" }, ["port", "53", "--udp", "--dst"] })
            {
                var (added, _, addError) = await Run(["filter", "--pin-dir", pins, "add", .. rule]);
                Assert.True(added == 0, addError);
            }
            var reports = new Dictionary<string, string>();
            foreach (var engine in new[] { "kernel", "interpreter", "jit" })
            {
                var (code, output, error) = await Run("filter", "run", "--pin-dir", pins, "--pcap", input, "--engine", engine, "--json");
                Assert.True(code == 0, error);
                using var json = JsonDocument.Parse(output);
                var actions = json.RootElement.GetProperty("run").GetProperty("actions");
                var hits = string.Join(", ", json.RootElement.GetProperty("rules").EnumerateArray()
                    .Select(r => $"{r.GetProperty("rule").GetString()}: {r.GetProperty("packets").GetUInt64()}"));
                reports[engine] = $"drop {actions.GetProperty("XDP_DROP").GetInt32()}, pass {actions.GetProperty("XDP_PASS").GetInt32()}; {hits}";
            }
            // 10 frames from 10.0.0.2, 14 to port 53, 3 of them both (i = 9, 21, 33): 21 dropped.
            Assert.StartsWith("drop 21, pass 19;", reports["kernel"]);
            Assert.Equal(reports["kernel"], reports["interpreter"]);
            Assert.Equal(reports["kernel"], reports["jit"]);
            // The live state was copied, not used: the pinned counters did not move.
            var (listed, list, listError) = await Run("filter", "--pin-dir", pins, "list", "--json");
            Assert.True(listed == 0, listError);
            using var rules = JsonDocument.Parse(list);
            Assert.All(rules.RootElement.GetProperty("rules").EnumerateArray(), r => Assert.Equal(0UL, r.GetProperty("packets").GetUInt64()));
        }
        finally
        {
            File.Delete(input);
        }
    }

    /// <summary>An Ethernet/IPv4/UDP frame from 10.0.0.SOURCE to 10.0.0.100:PORT.</summary>
    private static byte[] UdpFrame(byte source, ushort port)
    {
        var frame = new byte[14 + 20 + 8 + 18];
        frame[12] = 0x08;
        var ip = frame.AsSpan(14);
        ip[0] = 0x45;
        ip[2] = 0;
        ip[3] = 20 + 8 + 18;
        ip[8] = 64;
        ip[9] = 17;
        ip[12] = 10; ip[15] = source;
        ip[16] = 10; ip[19] = 100;
        var udp = ip[20..];
        udp[0] = 0x30; udp[1] = 0x39;
        udp[2] = (byte)(port >> 8); udp[3] = (byte)port;
        udp[5] = 8 + 18;
        return frame;
    }

    [Fact]
    public async Task KernelTestRunLoadsTheTailCallTargetsOfAStaticProgramArray()
    {
        var (code, output, error) = await Run("test-run", Fixture("map_in_map"), "--program", "xdp_outer", "--data-hex", "0200000000020200000000010800", "--engine", "kernel", "--json");
        Assert.True(code == 0, error);
        using var json = JsonDocument.Parse(output);
        Assert.Equal("XDP_DROP", json.RootElement.GetProperty("action").GetString());
    }
}
