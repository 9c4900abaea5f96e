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

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = await CliApp.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
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
}
