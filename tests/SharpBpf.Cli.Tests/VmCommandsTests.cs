using System.Text.Json;
using SharpBpf.Cli;

namespace SharpBpf.Cli.Tests;

public class VmCommandsTests
{
    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return dir.FullName;
        }
        throw new InvalidOperationException("repository root not found");
    }

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await CliApp.RunAsync(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task TestRunPrintsTheContractAsJson()
    {
        var obj = Path.Combine(RepoRoot(), "tests", "testdata", "xdp_maps.o");
        // 60 bytes: xdp_count passes packets up to max_len (1500).
        var (code, output, error) = await Run("test-run", obj, "--data-hex", new string('a', 120), "--repeat", "3", "--json");
        Assert.True(code == 0, error);
        using var json = JsonDocument.Parse(output);
        Assert.Equal(2, json.RootElement.GetProperty("retval").GetInt32());
        Assert.Equal(new string('a', 120), json.RootElement.GetProperty("data_out").GetString());
        Assert.Equal("interpreter", json.RootElement.GetProperty("engine").GetString());
        Assert.Equal("xdp_count", json.RootElement.GetProperty("program").GetString());
        Assert.True(json.RootElement.GetProperty("ns_per_run").GetDouble() > 0);
    }

    [Fact]
    public async Task EnginesNotBuiltSaySoWithExitCode1()
    {
        var obj = Path.Combine(RepoRoot(), "tests", "testdata", "xdp_maps.o");
        var (code, _, error) = await Run("test-run", obj, "--data-hex", "00", "--engine", "jit");
        Assert.Equal(CliApp.ExitRefused, code);
        Assert.Contains("jit", error);
        Assert.Contains("not built yet", error);
    }

    [Fact]
    public async Task TestRunNeedsExactlyOneInput()
    {
        var obj = Path.Combine(RepoRoot(), "tests", "testdata", "xdp_maps.o");
        var (code, _, _) = await Run("test-run", obj);
        Assert.Equal(CliApp.ExitUsage, code);
    }

    [Fact]
    public async Task ConformanceEndsWithTheSummaryLine()
    {
        var dir = Path.GetFullPath(Path.Combine(RepoRoot(), "..", "shared", "bpf_conformance"));
        if (!Directory.Exists(dir))
        {
            Assert.Skip("the bpf_conformance vectors are absent (../shared/bpf_conformance)");
            return;
        }
        var (code, output, error) = await Run("conformance", Path.Combine(dir, "add.data"), Path.Combine(dir, "negative", "unused-exit-imm.data"), Path.Combine(dir, "callx.data"));
        Assert.True(code == 0, error + output);
        Assert.Equal("3 passed, 0 failed", output.Trim().Split('\n')[^1].Trim());
    }

    [Fact]
    public async Task RunSummarisesActionsAndWritesThePacketsThatLeave()
    {
        var obj = Path.Combine(RepoRoot(), "tests", "testdata", "xdp_maps.o");
        var input = Path.Combine(Path.GetTempPath(), $"sharpbpf-run-{Guid.NewGuid():N}.pcap");
        var output = Path.ChangeExtension(input, ".out.pcap");
        try
        {
            using (var writer = SharpBpf.Pcap.PcapWriter.Create(input))
            {
                writer.Write(new byte[60], 1_000_000_000L);
                writer.Write(new byte[1600], 2_000_000_000L); // over max_len: dropped
                writer.Write(new byte[80], 3_000_000_000L);
            }
            var (code, text, error) = await Run("run", obj, "--pcap", input, "--out", output, "--json");
            Assert.True(code == 0, error);
            using var json = JsonDocument.Parse(text);
            Assert.Equal(3, json.RootElement.GetProperty("packets").GetInt32());
            Assert.Equal(2, json.RootElement.GetProperty("actions").GetProperty("XDP_PASS").GetInt32());
            Assert.Equal(1, json.RootElement.GetProperty("actions").GetProperty("XDP_DROP").GetInt32());
            using var reader = SharpBpf.Pcap.PcapReader.Open(output);
            Assert.Equal(new[] { 60, 80 }, reader.Select(p => p.Data.Length).ToArray());
        }
        finally
        {
            File.Delete(input);
            File.Delete(output);
        }
    }
}
