using System.Diagnostics;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Programs;

/// <summary>
/// The objects under programs/ are committed so that users need no compiler. These tests make sure every source
/// has its object and that the committed objects are exactly what programs/build.sh builds from the sources.
/// </summary>
public sealed class ProgramObjectsTests
{
    private static string ProgramsDir => Path.Combine(TestPaths.RepoRoot, "programs");

    private static IEnumerable<string> Sources() =>
        Directory.EnumerateFiles(ProgramsDir, "*.c", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(ProgramsDir, path))
            .Order(StringComparer.Ordinal);

    [Fact]
    public void EverySourceHasACommittedObject()
    {
        var sources = Sources().ToList();
        Assert.Contains("xdp_filter.c", sources);
        Assert.Contains("xsk_redirect.c", sources);
        foreach (var source in sources)
        {
            var obj = Path.Combine(ProgramsDir, Path.ChangeExtension(source, ".o"));
            Assert.True(File.Exists(obj), $"programs/{source} has no object: run programs/build.sh and commit it");
            // An ELF64 little-endian object for machine EM_BPF (247).
            var bytes = File.ReadAllBytes(obj);
            Assert.True(bytes.AsSpan(0, 4).SequenceEqual("\u007fELF"u8), $"{obj} is not an ELF file");
            Assert.Equal(247, BitConverter.ToUInt16(bytes, 18));
        }
    }

    [Fact]
    public async Task CommittedObjectsAreCurrent()
    {
        if (!OperatingSystem.IsLinux() || FindOnPath("clang-14") is null)
            Assert.Skip("clang-14 is not installed: cannot rebuild programs/ to compare with the committed objects");

        var output = Directory.CreateTempSubdirectory("sharpbpf-programs-");
        try
        {
            var start = new ProcessStartInfo("bash", [Path.Combine(ProgramsDir, "build.sh"), output.FullName])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using var build = Process.Start(start)!;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            timeout.CancelAfter(TimeSpan.FromMinutes(2));
            var stderr = build.StandardError.ReadToEndAsync(timeout.Token);
            var stdout = build.StandardOutput.ReadToEndAsync(timeout.Token);
            try
            {
                await build.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                build.Kill(entireProcessTree: true);
                throw new TimeoutException("programs/build.sh did not finish within 2 minutes");
            }
            await stdout;
            Assert.True(build.ExitCode == 0, "programs/build.sh failed: " + await stderr);

            var stale = new List<string>();
            foreach (var source in Sources())
            {
                var name = Path.ChangeExtension(source, ".o");
                var built = File.ReadAllBytes(Path.Combine(output.FullName, name));
                var committed = File.ReadAllBytes(Path.Combine(ProgramsDir, name));
                if (!built.AsSpan().SequenceEqual(committed))
                    stale.Add("programs/" + name);
            }
            Assert.True(stale.Count == 0, "stale objects (run programs/build.sh and commit): " + string.Join(", ", stale));
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);
}
