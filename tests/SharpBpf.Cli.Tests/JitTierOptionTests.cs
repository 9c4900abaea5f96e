using System.Runtime.InteropServices;
using System.Text.Json;
using SharpBpf.Cli;

namespace SharpBpf.Cli.Tests;

/// <summary><c>--jit-tier</c>: every command with <c>--engine</c> takes it, and the jit compiles to the code asked for.</summary>
public class JitTierOptionTests
{
    private static string RepoRoot() => RepoPaths.Root();

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRunner.Run(args);

    /// <summary>The baseline code generator runs on x86-64 Linux (unless switched off for the process); elsewhere
    /// programs asking for it get quick code.</summary>
    private static bool BaselineHere =>
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64
        && Environment.GetEnvironmentVariable("SHARPBPF_NO_BASELINE") is null or "" or "0";

    /// <summary>An IPv4/UDP frame for xdp_parse (parses Ethernet, IP and UDP) and xdp_mac_swap (rewrites the MACs).</summary>
    private const string UdpFrame = "00112233445566778899aabb08004500001c0001000040110000c0a80001c0a800020035003500080000";

    [Theory]
    [InlineData("baseline", "programs/bench/xdp_parse.o")]
    [InlineData("quick", "programs/bench/xdp_parse.o")]
    [InlineData("optimized", "programs/bench/xdp_parse.o")]
    [InlineData("tiered", "programs/bench/xdp_parse.o")]
    [InlineData("baseline", "programs/bench/xdp_mac_swap.o")]
    [InlineData("quick", "programs/bench/xdp_mac_swap.o")]
    [InlineData("optimized", "programs/bench/xdp_mac_swap.o")]
    [InlineData("tiered", "programs/bench/xdp_mac_swap.o")]
    [InlineData("baseline", "tests/testdata/xdp_maps.o")]
    [InlineData("optimized", "tests/testdata/xdp_maps.o")]
    public async Task TestRunOnEachTierGivesTheInterpretersAnswerAndSaysWhichCodeRan(string tier, string objectPath)
    {
        var obj = Path.Combine(RepoRoot(), objectPath);
        var (refCode, refOut, refErr) = await Run("test-run", obj, "--data-hex", UdpFrame, "--repeat", "3", "--json");
        Assert.True(refCode == 0, refErr);
        using var reference = JsonDocument.Parse(refOut);
        Assert.Equal(JsonValueKind.Null, reference.RootElement.GetProperty("jit_tier").ValueKind);

        var (code, output, error) = await Run("test-run", obj, "--data-hex", UdpFrame, "--repeat", "3", "--engine", "jit", "--jit-tier", tier, "--json");
        Assert.True(code == 0, error);
        using var json = JsonDocument.Parse(output);
        foreach (var field in new[] { "retval", "action", "data_out", "program", "trap" })
            Assert.Equal(reference.RootElement.GetProperty(field).ToString(), json.RootElement.GetProperty(field).ToString());
        Assert.Equal("jit", json.RootElement.GetProperty("engine").GetString());
        var got = json.RootElement.GetProperty("jit_tier").GetString();
        var program = json.RootElement.GetProperty("program").GetString();

        var (humanCode, human, humanError) = await Run("test-run", obj, "--data-hex", UdpFrame, "--engine", "jit", "--jit-tier", tier);
        Assert.True(humanCode == 0, humanError);
        var first = human.Split('\n')[0].Trim();
        var atLoad = BaselineHere ? "baseline" : "quick";
        switch (tier)
        {
            case "baseline":
                Assert.Equal(atLoad, got);
                Assert.Equal($"program   {program} (jit, {atLoad})", first);
                break;
            case "quick":
            case "optimized":
                Assert.Equal(tier, got);
                Assert.Equal($"program   {program} (jit, {tier})", first);
                break;
            default:
                // Tiered: the load's code, or the optimised code once the background compile has swapped it in.
                Assert.Contains(got, new[] { atLoad, "optimized" });
                Assert.True(first == $"program   {program} (jit, tiered: {atLoad})" || first == $"program   {program} (jit, tiered: optimized)", first);
                break;
        }
    }

    [Fact]
    public async Task OtherEnginesAcceptTheOptionAndIgnoreIt()
    {
        var obj = Path.Combine(RepoRoot(), "tests", "testdata", "xdp_maps.o");
        var (code, output, error) = await Run("test-run", obj, "--data-hex", UdpFrame, "--jit-tier", "baseline");
        Assert.True(code == 0, error);
        Assert.StartsWith("program   xdp_count (interpreter)", output);
    }

    [Theory]
    [InlineData("test-run", "OBJ", "--data-hex", "00")]
    [InlineData("run", "OBJ", "--pcap", "in.pcap")]
    [InlineData("conformance", "x.data")]
    [InlineData("filter", "run", "--pcap", "in.pcap")]
    [InlineData("xdp", "run-user", "lo", "OBJ")]
    public async Task AnUnknownTierIsAUsageErrorNamingTheAllowedOnes(params string[] command)
    {
        var obj = Path.Combine(RepoRoot(), "tests", "testdata", "xdp_maps.o");
        var args = command.Select(a => a == "OBJ" ? obj : a).Concat(["--engine", "jit", "--jit-tier", "fastest"]).ToArray();
        var (code, output, error) = await Run(args);
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("unknown jit tier 'fastest': use tiered, baseline, quick or optimized", error + output);
    }

    [Fact]
    public async Task RunReportsTheTierInJson()
    {
        var obj = Path.Combine(RepoRoot(), "tests", "testdata", "xdp_maps.o");
        var input = VmCommandsTests.WriteThreeFrames();
        try
        {
            var (code, output, error) = await Run("run", obj, "--pcap", input, "--engine", "jit", "--jit-tier", "quick", "--json");
            Assert.True(code == 0, error);
            using var json = JsonDocument.Parse(output);
            Assert.Equal("quick", json.RootElement.GetProperty("jit_tier").GetString());
            Assert.Equal(2, json.RootElement.GetProperty("actions").GetProperty("XDP_PASS").GetInt32());
            Assert.Equal(1, json.RootElement.GetProperty("actions").GetProperty("XDP_DROP").GetInt32());

            (code, output, error) = await Run("run", obj, "--pcap", input, "--json");
            Assert.True(code == 0, error);
            using var interpreted = JsonDocument.Parse(output);
            Assert.Equal(JsonValueKind.Null, interpreted.RootElement.GetProperty("jit_tier").ValueKind);
        }
        finally
        {
            File.Delete(input);
        }
    }

    [Fact]
    public async Task ConformanceOnTheBaselineTierPassesAsTheDefaultDoes()
    {
        var dir = Path.GetFullPath(Path.Combine(RepoRoot(), "..", "shared", "bpf_conformance"));
        if (!Directory.Exists(dir))
        {
            Assert.Skip("the bpf_conformance vectors are absent (../shared/bpf_conformance)");
            return;
        }
        var (defaultCode, defaultOut, defaultError) = await Run("conformance", dir, "--engine", "jit");
        var (code, output, error) = await Run("conformance", dir, "--engine", "jit", "--jit-tier", "baseline");
        Assert.True(defaultCode == 0, defaultError + defaultOut);
        Assert.True(code == 0, error + output);
        var summary = output.Trim().Split('\n')[^1].Trim();
        Assert.Equal(defaultOut.Trim().Split('\n')[^1].Trim(), summary);
        Assert.EndsWith(" 0 failed", summary.Split(',')[1]);
        Assert.True(int.Parse(summary.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) > 300, summary);

        var (jsonCode, jsonOut, jsonError) = await Run("conformance", Path.Combine(dir, "add.data"), "--engine", "jit", "--jit-tier", "baseline", "--json");
        Assert.True(jsonCode == 0, jsonError);
        using var json = JsonDocument.Parse(jsonOut);
        Assert.Equal("baseline", json.RootElement.GetProperty("jitTiering").GetString());
        Assert.Equal(1, json.RootElement.GetProperty("passed").GetInt32());
    }
}
