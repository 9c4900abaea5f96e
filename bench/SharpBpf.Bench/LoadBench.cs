using System.Diagnostics;
using SharpBpf.Linux;
using SharpBpf.Objects;

namespace SharpBpf.Bench;

/// <summary>
/// <c>-- load [runs]</c>: open + load + close of the four-map object, SharpBpf and libbpf alternating in one process
/// so that both see the same machine load; prints the median of each and their ratio. BenchmarkDotNet's
/// <see cref="KernelLoad"/> measures the same, but its batches of back-to-back loads are at the mercy of a busy
/// machine; alternating runs give the ratio that holds.
/// </summary>
internal static class LoadBench
{
    /// <summary>One SharpBpf open+load+close, then one libbpf open+load+close; microseconds.</summary>
    private static (double Open, double Ours, double LibBpf) Round(string path)
    {
        var watch = Stopwatch.StartNew();
        var spec = ObjectFile.Open(path);
        double opened = watch.Elapsed.TotalMicroseconds;
        using (BpfCollection.Load(spec)) { }
        double ours = watch.Elapsed.TotalMicroseconds;

        watch.Restart();
        LibBpfReference.OpenLoadClose(path);
        return (opened, ours, watch.Elapsed.TotalMicroseconds);
    }

    public static int Run(string[] args)
    {
        int runs = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 300;
        if (!LibBpfReference.Available)
        {
            Console.Error.WriteLine("load: libbpf.so.1 is not installed: no reference to compare with");
            return 1;
        }
        LibBpfReference.libbpf_set_print(0);
        var path = KernelBench.BuildFourMapObject();
        try
        {
            var ours = new List<double>(runs);
            var libbpf = new List<double>(runs);
            var open = new List<double>(runs);
            // The first round includes JIT compilation of the loader (libbpf is compiled ahead): printed apart.
            var first = Round(path);
            // Warm-up until tiered compilation has replaced the loader's quickly compiled (and then instrumented)
            // code with optimised code, so that both loaders are measured in their steady state: at least 20
            // rounds and two seconds, and until the JIT has compiled nothing for a second (on a busy machine
            // its background thread takes seconds), at most 30 seconds.
            var warmUp = Stopwatch.StartNew();
            long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
            var lastCompile = warmUp.Elapsed;
            for (int i = 0; i < 20 || warmUp.Elapsed < TimeSpan.FromSeconds(2) || warmUp.Elapsed - lastCompile < TimeSpan.FromSeconds(1); i++)
            {
                Round(path);
                long now = System.Runtime.JitInfo.GetCompiledMethodCount();
                if (now != compiled)
                    (compiled, lastCompile) = (now, warmUp.Elapsed);
                if (warmUp.Elapsed > TimeSpan.FromSeconds(30))
                    break;
            }
            for (int i = 0; i < runs; i++)
            {
                var (opened, ourTime, theirs) = Round(path);
                ours.Add(ourTime);
                open.Add(opened);
                libbpf.Add(theirs);
            }
            double Median(List<double> xs) { xs.Sort(); return xs[xs.Count / 2]; }
            double o = Median(ours), l = Median(libbpf), r = Median(open);
            Console.WriteLine($"open+load+close of a 4-map XDP object, median of {runs} alternating runs after {warmUp.Elapsed.TotalSeconds:F1} s of warm-up");
            Console.WriteLine($"  {"loader",-10} {"us",8} {"ratio",7}");
            Console.WriteLine($"  {"libbpf",-10} {l,8:F0} {1.0,7:F2}");
            Console.WriteLine($"  {"SharpBpf",-10} {o,8:F0} {o / l,7:F2}   (of which ObjectFile.Open {r:F0} us)");
            Console.WriteLine($"first round of the process (JIT compilation included): SharpBpf {first.Ours:F0} us, libbpf {first.LibBpf:F0} us");
            return 0;
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }
}
