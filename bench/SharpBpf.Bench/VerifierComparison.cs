using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using SharpBpf.Linux;
using SharpBpf.Objects;
using SharpBpf.Verifier;

namespace SharpBpf.Bench;

/// <summary>
/// SharpBpf's verifier beside the kernel's on every program of the project's objects (programs/, programs/bench/,
/// tests/testdata/, the verifier tests' objects, or the objects given on the command line), in one run: processed instructions and verification
/// time (median of several runs) for both. The kernel's figures are the ones its own log prints at
/// BPF_LOG_STATS ("processed N insns", "verification time N usec"), so map creation and the syscall are not counted.
/// Run: <c>dotnet run -c Release --project bench/SharpBpf.Bench -- verifier [--quick] [--cold] [FILE.o ...]</c>
/// (--cold: no warm-up, the first runs then include .NET's compilation of the verifier). The kernel
/// columns need root and are left empty with the reason otherwise.
/// </summary>
public static partial class VerifierComparison
{
    public static int Run(string[] args)
    {
        bool quick = args.Contains("--quick");
        int runs = quick ? 3 : 7;
        var files = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToList();
        if (files.Count == 0)
        {
            string root = FindRoot();
            foreach (var dir in new[] { "programs", Path.Combine("programs", "bench"), Path.Combine("tests", "testdata"), Path.Combine("tests", "SharpBpf.Tests", "Verifier", "Objects") })
                files.AddRange(Directory.GetFiles(Path.Combine(root, dir), "*.o").Order(StringComparer.Ordinal));
        }
        string? kernelSkip = Environment.IsPrivilegedProcess ? null : "not root: BPF_PROG_LOAD needs CAP_BPF";

        // Read every object first, then warm the verifier up on all of them (unless --cold): .NET compiles a method
        // quickly first and optimises it only after it has run for a while, so without a warm-up the first programs
        // are timed with unoptimised code and the table measures the JIT's tiering, not the verifier. The kernel's
        // verifier is compiled ahead of time; a long-running loader sees the warm figures.
        var objects = new List<(string File, CollectionSpec? Spec, string? Error)>();
        foreach (var file in files)
        {
            try
            {
                objects.Add((file, ObjectFile.Read(File.ReadAllBytes(file), Path.GetFileName(file)), null));
            }
            catch (BpfException e)
            {
                objects.Add((file, null, e.Message));
            }
        }
        bool cold = args.Contains("--cold");
        if (!cold)
            WarmUp(objects.Where(o => o.Spec is not null).Select(o => o.Spec!).ToList());

        Console.WriteLine($"Verifier vs kernel verifier: processed instructions and verification time, median of {runs} runs" +
            (cold ? " (cold: no warm-up)" : " (after a warm-up over all programs)"));
        if (kernelSkip is not null)
            Console.WriteLine($"kernel columns skipped: {kernelSkip}");
        Console.WriteLine($"{"object",-18} {"program",-18} {"verdict",-9} {"insns",6} {"processed",10} {"kernel",10} {"states",7} {"ours ms",9} {"kernel ms",10} {"ours/kernel",12}");
        var ratios = new List<double>();
        int disagreements = 0;
        foreach (var (file, objectSpec, readError) in objects)
        {
            if (objectSpec is not { } spec)
            {
                Console.WriteLine($"{Path.GetFileName(file),-18} unreadable: {readError}");
                continue;
            }
            foreach (var program in spec.Programs)
            {
                VerifierResult first;
                try
                {
                    first = BpfVerifier.Verify(spec, program.Name);
                }
                catch (BpfNotSupportedException)
                {
                    continue; // kprobes, tracing: not modelled
                }
                // The first run is not timed (with --cold it also compiles the code paths this program reaches).
                var ours = new List<double>();
                for (int i = 0; i < runs; i++)
                    ours.Add(BpfVerifier.Verify(spec, program.Name).Elapsed.TotalMilliseconds);

                KernelStats? kernel = null;
                string? kernelError = null;
                if (kernelSkip is null)
                {
                    var stats = new List<KernelStats>();
                    try
                    {
                        for (int i = 0; i < runs; i++)
                        {
                            var s = KernelLoad(spec, program.Name);
                            stats.Add(s);
                            if (!s.Accepted)
                                break;
                        }
                        kernel = stats[0] with { Milliseconds = Median(stats.Select(s => s.Milliseconds)) };
                    }
                    catch (BpfException e) when (e is not BpfVerifierException)
                    {
                        // The kernel never verified it (e.g. a map it cannot create): no kernel figures.
                        kernelError = e.Message;
                    }
                }
                double oursMs = Median(ours);
                string verdict = first.Accepted ? "accepted" : "refused";
                if (kernel is not null && kernel.Accepted != first.Accepted)
                {
                    verdict += "!";
                    disagreements++;
                }
                double? ratio = kernel is { Milliseconds: > 0 } ? oursMs / kernel.Milliseconds : null;
                if (ratio is { } r && first.Accepted && kernel!.Accepted)
                    ratios.Add(r);
                Console.WriteLine($"{Trim(Path.GetFileName(file), 18),-18} {Trim(program.Name, 18),-18} {verdict,-9} {program.Instructions.Count,6} " +
                    $"{first.ProcessedInstructions,10} {(kernel?.Processed is { } kp ? kp.ToString(CultureInfo.InvariantCulture) : "-"),10} {first.TotalStates,7} " +
                    $"{oursMs,9:F3} {(kernel is null ? "-" : kernel.Milliseconds.ToString("F3", CultureInfo.InvariantCulture)),10} {(ratio is { } rr ? rr.ToString("F2", CultureInfo.InvariantCulture) : "-"),12}" +
                    (kernelError is null ? "" : $"  (kernel: {kernelError})"));
            }
        }
        if (ratios.Count > 0)
            Console.WriteLine($"median ours/kernel time over {ratios.Count} programs accepted by both: {Median(ratios):F2}");
        if (kernelSkip is null)
            Console.WriteLine($"verdicts that differ from the kernel's (marked !): {disagreements}");
        return 0;
    }

    /// <summary>Verifies every program at least three times and for at least two seconds in all, so that the
    /// verifier's code is optimised before anything is timed.</summary>
    /// <summary>
    /// .NET compiles a method with its optimising tier once it has been called 30 times (after a short delay, on a
    /// background thread). So each program is verified at least 40 times (or for 300 ms when it is a large one) and
    /// the background compiles are given time, twice: code paths only one program reaches (callbacks, kfuncs) get
    /// their calls too, not only the paths every program shares.
    /// </summary>
    private static void WarmUp(List<CollectionSpec> specs)
    {
        for (int pass = 0; pass < 2; pass++)
        {
            foreach (var spec in specs)
            {
                foreach (var program in spec.Programs)
                {
                    var clock = Stopwatch.StartNew();
                    try
                    {
                        for (int i = 0; i < 40 && clock.ElapsedMilliseconds < 300; i++)
                            BpfVerifier.Verify(spec, program.Name);
                    }
                    catch (BpfNotSupportedException)
                    {
                    }
                }
            }
            Thread.Sleep(300);
        }
    }

    private sealed record KernelStats(bool Accepted, int? Processed, double Milliseconds);

    /// <summary>Loads one program with a BPF_LOG_STATS log and reads the kernel's own figures from it.</summary>
    private static KernelStats KernelLoad(CollectionSpec spec, string program)
    {
        foreach (var map in spec.Maps)
            map.Pinning = MapPinning.None;
        string log;
        bool accepted;
        try
        {
            using var loaded = BpfCollection.Load(spec, new BpfCollectionOptions { Programs = [program], VerifierLogLevel = 4 });
            log = loaded.Program(program).VerifierLog ?? "";
            accepted = true;
        }
        catch (BpfVerifierException e)
        {
            log = e.Log;
            accepted = false;
        }
        var processed = ProcessedLine().Match(log);
        var time = TimeLine().Match(log);
        return new KernelStats(accepted,
            processed.Success ? int.Parse(processed.Groups[1].Value, CultureInfo.InvariantCulture) : null,
            time.Success ? long.Parse(time.Groups[1].Value, CultureInfo.InvariantCulture) / 1000.0 : double.NaN);
    }

    [GeneratedRegex(@"processed (\d+) insns")]
    private static partial Regex ProcessedLine();

    [GeneratedRegex(@"verification time (\d+) usec")]
    private static partial Regex TimeLine();

    private static string Trim(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "programs", "build.sh")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException("the repository root (with programs/build.sh) was not found above the bench binary");
    }
}
