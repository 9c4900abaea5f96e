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
            for (int i = -20; i < runs; i++) // 20 warm-up rounds
            {
                var watch = Stopwatch.StartNew();
                var spec = ObjectFile.Open(path);
                double opened = watch.Elapsed.TotalMicroseconds;
                using (BpfCollection.Load(spec)) { }
                double ourTime = watch.Elapsed.TotalMicroseconds;

                watch.Restart();
                var obj = LibBpfReference.bpf_object__open_file(path, 0);
                if (obj == 0 || LibBpfReference.bpf_object__load(obj) != 0)
                    throw new InvalidOperationException("libbpf could not open and load the object");
                LibBpfReference.bpf_object__close(obj);
                double theirs = watch.Elapsed.TotalMicroseconds;
                if (i < 0)
                    continue;
                ours.Add(ourTime);
                open.Add(opened);
                libbpf.Add(theirs);
            }
            double Median(List<double> xs) { xs.Sort(); return xs[xs.Count / 2]; }
            double o = Median(ours), l = Median(libbpf), r = Median(open);
            Console.WriteLine($"open+load+close of a 4-map XDP object, median of {runs} alternating runs");
            Console.WriteLine($"  {"loader",-10} {"us",8} {"ratio",7}");
            Console.WriteLine($"  {"libbpf",-10} {l,8:F0} {1.0,7:F2}");
            Console.WriteLine($"  {"SharpBpf",-10} {o,8:F0} {o / l,7:F2}   (of which ObjectFile.Open {r:F0} us)");
            return 0;
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }
}
