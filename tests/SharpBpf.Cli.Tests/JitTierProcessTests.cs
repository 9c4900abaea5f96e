using System.Diagnostics;

namespace SharpBpf.Cli.Tests;

/// <summary>
/// The JIT's quick tier relies on a RyuJIT rule (a method with more than 2,000 locals is compiled with MinOpts; see
/// docs/jit.md, "Tiers"). This runs the tool in a child process with RyuJIT's own summary switched on and checks that
/// the quick code of a program was compiled MinOpts and its optimised code FullOpts: if a runtime drops the rule, this
/// test says so (the results would stay right, only the quick tier would stop being quick). The baseline tier, which
/// tiered programs start with where it runs, is switched off in the child (SHARPBPF_NO_BASELINE), so the program's
/// first code is quick IL as on other platforms.
/// </summary>
public class JitTierProcessTests
{
    private static string RepoRoot() => RepoPaths.Root();

    [Fact]
    public async Task QuickCodeIsMinOptsAndOptimizedCodeIsFullOpts()
    {
        var summary = Path.Combine(Path.GetTempPath(), $"sharpbpf-jit-summary-{Guid.NewGuid():N}.txt");
        var obj = Path.Combine(RepoRoot(), "programs", "bench", "xdp_parse.o");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Repeat: the optimised code is compiled on a thread-pool thread while the runs go on with the quick code.
        foreach (var arg in new[] { typeof(CliApp).Assembly.Location, "test-run", obj, "--engine", "jit", "--repeat", "20000000",
            "--data-hex", "00112233445566778899aabb08004500001c0001000040110000c0a80001c0a800020035003500080000" })
            start.ArgumentList.Add(arg);
        start.Environment["DOTNET_JitStdOutFile"] = summary;
        start.Environment["DOTNET_JitDisasmSummary"] = "1";
        start.Environment["SHARPBPF_NO_BASELINE"] = "1";
        try
        {
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(120));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail("the tool did not finish in 120 s");
            }
            Assert.True(process.ExitCode == 0, $"test-run failed: {await stderr}{await stdout}");
            var compiled = File.ReadAllLines(summary).Where(l => l.Contains("bpf_xdp_parse", StringComparison.Ordinal)).ToList();
            Assert.True(compiled.Count >= 1, "RyuJIT's summary names no compile of bpf_xdp_parse");
            Assert.True(compiled[0].Contains("MinOpts", StringComparison.Ordinal), $"the quick tier was not compiled MinOpts: {compiled[0]}");
            Assert.Contains(compiled, l => l.Contains("FullOpts", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(summary);
        }
    }
}
