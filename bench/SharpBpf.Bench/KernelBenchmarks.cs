using System.Diagnostics;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using SharpBpf.Linux;
using SharpBpf.Linux.Features;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Bench;

/// <summary>
/// libbpf through P/Invoke, only as the reference these benchmarks measure against in the same run (SharpBpf
/// itself never calls it).
/// </summary>
internal static unsafe partial class LibBpfReference
{
    private const string Library = "libbpf.so.1";

    public static bool Available { get; } = NativeLibrary.TryLoad(Library, out _);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint bpf_object__open_file(string path, nint opts);

    [LibraryImport(Library)]
    public static partial int bpf_object__load(nint obj);

    [LibraryImport(Library)]
    public static partial void bpf_object__close(nint obj);

    [LibraryImport(Library)]
    public static partial nint libbpf_set_print(nint fn);

    /// <summary>bpf_object__open_file + load + close: the reference the load benchmarks measure against.</summary>
    public static int OpenLoadClose(string path)
    {
        if (!Available)
            throw new InvalidOperationException("libbpf.so.1 is not installed: no reference to compare with");
        var obj = bpf_object__open_file(path, 0);
        if (obj == 0)
            throw new InvalidOperationException("libbpf could not open the object");
        try
        {
            int r = bpf_object__load(obj);
            return r == 0 ? 1 : throw new InvalidOperationException($"libbpf load failed: {r}");
        }
        finally
        {
            bpf_object__close(obj);
        }
    }

    [LibraryImport(Library)]
    public static partial int bpf_map_lookup_batch(int fd, void* inBatch, void* outBatch, void* keys, void* values, uint* count, nint opts);
}

/// <summary>Helpers shared by the kernel benchmarks: skip politely where there is no BPF, build the fixture.</summary>
internal static class KernelBench
{
    /// <summary>
    /// An XDP program with four BTF-defined maps (hash, array, per-CPU array, LRU hash), compiled with clang-14
    /// at setup so the bench needs no committed object.
    /// </summary>
    private const string FourMapSource = """
        #include <linux/bpf.h>
        #define SEC(name) __attribute__((section(name), used))
        #define __uint(name, val) int (*name)[val]
        #define __type(name, val) typeof(val) *name
        static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
        struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, __u32); __type(value, __u64); } flows SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); } config SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 8); __type(key, __u32); __type(value, __u64); } stats SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 4096); __type(key, __u64); __type(value, __u32); } recent SEC(".maps");
        SEC("xdp")
        int four_maps(struct xdp_md *ctx)
        {
            __u32 k = ctx->ingress_ifindex;
            __u64 k64 = k;
            __u64 *a = bpf_map_lookup_elem(&flows, &k), *b = bpf_map_lookup_elem(&config, &k), *c = bpf_map_lookup_elem(&stats, &k);
            __u32 *d = bpf_map_lookup_elem(&recent, &k64);
            return (a && b && c && d) ? XDP_TX : XDP_PASS;
        }
        char _license[] SEC("license") = "GPL";
        """;

    /// <summary>SharpBpf's open + load + close of an object, as the load benchmarks measure it.</summary>
    public static int OpenLoadClose(string path)
    {
        var spec = ObjectFile.Open(path);
        using var collection = BpfCollection.Load(spec);
        return collection.Maps.Count;
    }

    public static string BuildFourMapObject()
    {
        if (BpfFeatures.Unavailable is { } why)
            throw new InvalidOperationException(why);
        var dir = Directory.CreateTempSubdirectory("sharpbpf-bench-").FullName;
        File.WriteAllText(Path.Combine(dir, "four_maps.c"), FourMapSource);
        using var p = Process.Start(new ProcessStartInfo("clang-14",
            "-O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c four_maps.c -o four_maps.o") { WorkingDirectory = dir, RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException("clang-14 failed: " + err);
        return Path.Combine(dir, "four_maps.o");
    }
}

/// <summary>
/// Kernel benchmarks run in process (they share the machine's kernel anyway, and the default out-of-process build
/// is slow on a busy machine): a few monitored iterations, since each operation is tens of microseconds or more.
/// </summary>
public sealed class KernelBenchConfig : ManualConfig
{
    public KernelBenchConfig() =>
        AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithStrategy(RunStrategy.Monitoring)
            .WithWarmupCount(3).WithIterationCount(15).WithInvocationCount(16).WithUnrollFactor(1));
}

/// <summary>
/// Open + load of an object with four maps and one XDP program: SharpBpf (read, create maps, load BTF and the
/// program, close) against libbpf doing the same in the same process (baseline; about 0.5 ms on this machine).
/// </summary>
[Config(typeof(KernelBenchConfig))]
public class KernelLoad
{
    private string _path = null!;

    [GlobalSetup]
    public void Setup()
    {
        _path = KernelBench.BuildFourMapObject();
        if (LibBpfReference.Available)
            LibBpfReference.libbpf_set_print(0);
    }

    [Benchmark(Baseline = true)]
    public int LibBpf() => LibBpfReference.OpenLoadClose(_path);

    [Benchmark]
    public int SharpBpf() => KernelBench.OpenLoadClose(_path);

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(Path.GetDirectoryName(_path)!, recursive: true);
}

/// <summary>
/// Open + load of tests/testdata/core_xdp.o, an object with 24 CO-RE relocations against kernel structs, kfuncs, a
/// typeless ksym and kconfig externs: SharpBpf against libbpf in the same process (baseline). libbpf reads and
/// parses the kernel's BTF on every load; SharpBpf parses it once a process, so its first load (printed at setup)
/// pays for that and later loads do not.
/// </summary>
[Config(typeof(KernelBenchConfig))]
public class KernelCoreLoad
{
    private string _path = null!;

    [GlobalSetup]
    public void Setup()
    {
        if (BpfFeatures.Unavailable is { } why)
            throw new InvalidOperationException(why);
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "SharpBpf.slnx")))
            dir = Path.GetDirectoryName(dir);
        _path = Path.Combine(dir ?? throw new InvalidOperationException("run from the repository"), "tests", "testdata", "core_xdp.o");
        if (LibBpfReference.Available)
            LibBpfReference.libbpf_set_print(0);
        var watch = Stopwatch.StartNew();
        SharpBpf();
        Console.WriteLine($"// SharpBpf first load in this process (parses /sys/kernel/btf/vmlinux): {watch.Elapsed.TotalMilliseconds:F1} ms");
    }

    [Benchmark(Baseline = true)]
    public int LibBpf() => LibBpfReference.OpenLoadClose(_path);

    [Benchmark]
    public int SharpBpf() => KernelBench.OpenLoadClose(_path);
}

/// <summary>
/// Reading every entry of a 10k-entry hash map, per entry: one GET_NEXT_KEY + LOOKUP per entry against
/// BPF_MAP_LOOKUP_BATCH (SharpBpf and libbpf, batches of 1024). Baseline: libbpf batched (about 0.3 us per entry).
/// </summary>
[Config(typeof(KernelBenchConfig))]
public unsafe class KernelMapIteration
{
    private const int Entries = 10_000;
    private BpfMap _map = null!;

    [GlobalSetup]
    public void Setup()
    {
        if (BpfFeatures.Unavailable is { } why)
            throw new InvalidOperationException(why);
        _map = BpfMap.Create(new MapSpec { Name = "bench_iter", Type = MapType.Hash, KeySize = 4, ValueSize = 8, MaxEntries = Entries });
        var keys = new byte[Entries * 4];
        var values = new byte[Entries * 8];
        for (int i = 0; i < Entries; i++)
        {
            BitConverter.TryWriteBytes(keys.AsSpan(i * 4), (uint)i * 2654435761u);
            BitConverter.TryWriteBytes(values.AsSpan(i * 8), (ulong)i);
        }
        _map.UpdateBatch(keys, values, Entries);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Entries)]
    public int LibBpfBatched()
    {
        if (!LibBpfReference.Available)
            throw new InvalidOperationException("libbpf.so.1 is not installed: no reference to compare with");
        const int batch = 1024;
        var keys = new byte[batch * 4];
        var values = new byte[batch * 8];
        uint cursor = 0;
        int total = 0;
        bool first = true;
        fixed (byte* k = keys)
        fixed (byte* v = values)
        {
            while (true)
            {
                uint count = batch;
                int r = LibBpfReference.bpf_map_lookup_batch(_map.Fd.Value, first ? null : &cursor, &cursor, k, v, &count, 0);
                total += (int)count;
                if (r < 0)
                    break; // -ENOENT: done
                first = false;
            }
        }
        return total == Entries ? total : throw new InvalidOperationException($"libbpf read {total} entries");
    }

    [Benchmark(OperationsPerInvoke = Entries)]
    public int SharpBpfBatched() => Check(_map.EntriesBatched(batchSize: 1024).Count);

    [Benchmark(OperationsPerInvoke = Entries)]
    public int SharpBpfPerEntry() => Check(_map.Entries().Count());

    private static int Check(int count) => count == Entries ? count : throw new InvalidOperationException($"read {count} entries");

    [GlobalCleanup]
    public void Cleanup() => _map.Dispose();
}
