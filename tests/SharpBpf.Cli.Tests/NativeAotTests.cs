using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SharpBpf.Cli.Tests;

/// <summary>
/// The jit engine in a NativeAOT process, where no IL can be compiled: tests/SharpBpf.AotSmoke is published with
/// NativeAOT (into a temporary artifacts folder, so nothing of the repository's own build is touched) and run. Programs
/// the baseline tier handles must run as baseline code; a tail call into a program it does not handle (unverified, with
/// both bpf-to-bpf and tail calls) must go on in the interpreter, with the same results; a trap must come back as the
/// interpreter's.
/// Skipped off x86-64 Linux (no baseline tier), and with the reason when the NativeAOT toolchain or its packages
/// cannot be had.
/// </summary>
public class NativeAotTests
{
    [Fact]
    public async Task TheJitEngineRunsBaselineCodeUnderNativeAot()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            Assert.Skip("the baseline tier runs on x86-64 Linux only");
            return;
        }
        var work = Path.Combine(Path.GetTempPath(), $"sharpbpf-aot-{Guid.NewGuid():N}");
        try
        {
            var project = Path.Combine(RepoPaths.Root(), "tests", "SharpBpf.AotSmoke", "SharpBpf.AotSmoke.csproj");
            var output = Path.Combine(work, "out");
            var (publishCode, publishText) = await Run("dotnet",
                ["publish", project, "-c", "Release", "-r", "linux-x64", "--artifacts-path", work, "-o", output, "-nologo", "-p:UseSharedCompilation=false"],
                TimeSpan.FromMinutes(10));
            if (publishCode != 0)
            {
                // No package registry, or no native linker: the environment cannot build NativeAOT at all.
                string[] environmental = ["NU1101", "NU1102", "NU1301", "Unable to load the service index", "Platform linker",
                    "clang", "'lld'", "ld.lld", "objcopy"];
                if (environmental.FirstOrDefault(m => publishText.Contains(m, StringComparison.Ordinal)) is { } reason)
                {
                    Assert.Skip($"NativeAOT cannot be built here ({reason}): {LastLines(publishText)}");
                    return;
                }
                Assert.Fail($"dotnet publish of the NativeAOT smoke app failed ({publishCode}):\n{LastLines(publishText)}");
            }
            var (code, text) = await Run(Path.Combine(output, "SharpBpf.AotSmoke"), [], TimeSpan.FromMinutes(2));
            Assert.True(code == 0, $"the smoke app failed ({code}):\n{text}");
            var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Contains("dynamic-code False", lines);
            Assert.Contains("alu 42 baseline", lines);
            Assert.Contains("calls 55 baseline", lines);
            Assert.Contains("callx 5 baseline", lines);
            Assert.Contains("tailcall-action 2 baseline", lines);
            Assert.Contains("tailcall-count 33 none", lines);
            Assert.Contains(lines, l => l.StartsWith("trap ", StringComparison.Ordinal) && l.EndsWith(" baseline", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains("program 'chain' uses tail calls in an unverified program with bpf-to-bpf calls; the jit engine runs it on the interpreter", StringComparison.Ordinal));
        }
        finally
        {
            if (Directory.Exists(work))
                Directory.Delete(work, recursive: true);
        }
    }

    private static string LastLines(string text) => string.Join('\n', text.Split('\n').TakeLast(25));

    /// <summary>Runs a process to its end (killed past <paramref name="limit"/>); stdout and stderr together.</summary>
    private static async Task<(int Code, string Output)> Run(string file, string[] args, TimeSpan limit)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        // The child builds on its own: no build server of this test run's MSBuild is shared with it.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(file)} did not finish in {limit.TotalSeconds} s");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
