using System.Buffers.Binary;
using System.Diagnostics;
using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Linux;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Bench;

/// <summary>
/// The JIT against the kernel's JIT (BPF_PROG_TEST_RUN) and the interpreter, in one run, on the project's XDP bench
/// programs (programs/bench/*.o): ns per test-run (median of 5 batches), ratios, the JIT's compile time per program,
/// and ns per instruction on the long ALU loop; then the compile time of a synthetic program per tier. Run:
/// <c>dotnet run -c Release --project bench/SharpBpf.Bench -- jit</c> (<c>--quick</c> for fewer repeats;
/// <c>--compile [--insns N]</c> for the compile-time section alone, on an N-instruction program, 1,000 by default;
/// <c>--compile --object FILE</c> for the compile time of each program of an object file at each tier).
/// The kernel column needs root and is skipped with the reason otherwise.
/// </summary>
public static class JitComparison
{
    private const int Batches = 9;

    private sealed record Case(string Name, string Object, Action<VmCollection>? FillVm, Action<BpfCollection>? FillKernel, int Repeat);

    public static int Run(string[] args)
    {
        bool quick = args.Contains("--quick");
        int insns = args.SkipWhile(a => a != "--insns").Skip(1).FirstOrDefault() is { } n ? int.Parse(n, System.Globalization.CultureInfo.InvariantCulture) : 1000;
        if (args.Contains("--compile"))
        {
            if (args.SkipWhile(a => a != "--object").Skip(1).FirstOrDefault() is { } objectPath)
                ObjectCompileTime(objectPath);
            else
                CompileTime(insns);
            return 0;
        }
        int repeat = quick ? 100_000 : 1_000_000;
        string root = FindRoot();
        string? kernelSkip = Environment.IsPrivilegedProcess ? null : "not root: BPF_PROG_TEST_RUN needs CAP_BPF/CAP_NET_ADMIN";

        var packet = UdpFrame(source: 0x0a000001, destination: 0xc0a80101);
        Case[] cases =
        [
            new("drop-all", "xdp_drop.o", null, null, repeat),
            new("parse", "xdp_parse.o", null, null, repeat),
            new("hash lookup 1", "xdp_hash_lookup.o", v => FillHash(v.Map("sources"), 1), k => FillHash(k.Map("sources"), 1), repeat),
            new("hash lookup 1k", "xdp_hash_lookup.o", v => FillHash(v.Map("sources"), 1000), k => FillHash(k.Map("sources"), 1000), repeat),
            new("hash lookup 1M", "xdp_hash_lookup.o", v => FillHash(v.Map("sources"), 1 << 20), k => FillHash(k.Map("sources"), 1 << 20), repeat),
            new("LPM 10k", "xdp_lpm_lookup.o", v => FillLpm(v.Map("prefixes"), 10_000), k => FillLpm(k.Map("prefixes"), 10_000), repeat),
            new("MAC swap + TTL", "xdp_mac_swap.o", null, null, repeat),
            new("ALU loop", "xdp_alu_loop.o", null, null, repeat / 100),
        ];

        Console.WriteLine($"JIT vs kernel vs interpreter: ns per test-run, median of {Batches} interleaved batches (each engine's batches alternate, so load on the machine hits all alike)");
        Console.WriteLine("jit = verified load (VmOptions.Verify: the verifier's proven accesses compiled unchecked), optimised tier; jit-b = the same, baseline tier");
        Console.WriteLine("(SharpBpf's own x86-64 code); jit-q = the same, quick tier (RyuJIT MinOpts); jit-chk = unverified load (every access checked), optimised tier;");
        Console.WriteLine("compile = the verified program's baseline / quick / optimised compile");
        if (kernelSkip is not null)
            Console.WriteLine($"kernel column skipped: {kernelSkip}");
        Console.WriteLine($"{"program",-16} {"insns",6} {"compile b/q/opt ms",24} {"jit ns",8} {"jit-b ns",9} {"jit-q ns",9} {"jit-chk ns",10} {"kernel ns",10} {"interp ns",10} {"jit/kernel",11} {"b/kernel",9} {"q/kernel",9} {"chk/kernel",11}");
        string? only = args.SkipWhile(a => a != "--only").Skip(1).FirstOrDefault();
        // The compile column is the JIT's own cost: compile once per tier first, so .NET's compiling of the emitter
        // itself (the first use of each of its paths) is not charged to the first program of the table.
        foreach (var tiering in new[] { JitTiering.Baseline, JitTiering.Quick, JitTiering.Optimized })
        {
            var warm = ObjectFile.Read(File.ReadAllBytes(Path.Combine(root, "programs", "bench", "xdp_hash_lookup.o")), "warm-up");
            using var _ = VmCollection.Load(warm, new VmOptions { Engine = VmEngine.Jit, Verify = true, JitTiering = tiering });
            using var __ = VmCollection.Load(warm, new VmOptions { Engine = VmEngine.Jit, JitTiering = tiering });
        }
        foreach (var c in cases)
        {
            if (only is not null && !c.Name.StartsWith(only, StringComparison.OrdinalIgnoreCase))
                continue;
            var spec = ObjectFile.Read(File.ReadAllBytes(Path.Combine(root, "programs", "bench", c.Object)), c.Object);
            string programName = spec.Programs[0].Name;
            using var verifiedCollection = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Jit, Verify = true, JitTiering = JitTiering.Optimized });
            using var quickCollection = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Jit, Verify = true, JitTiering = JitTiering.Quick });
            using var baselineCollection = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Jit, Verify = true, JitTiering = JitTiering.Baseline });
            using var checkedCollection = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Jit, JitTiering = JitTiering.Optimized });
            using var interpCollection = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Interpreter });
            VmCollection[] collections = [verifiedCollection, quickCollection, checkedCollection, interpCollection, baselineCollection];
            foreach (var collection in collections)
                c.FillVm?.Invoke(collection);
            var jit = verifiedCollection.Program(programName);
            var jitQuick = quickCollection.Program(programName);
            var jitBaseline = baselineCollection.Program(programName);
            var jitChecked = checkedCollection.Program(programName);
            var interp = interpCollection.Program(programName);
            using var kernel = kernelSkip is null ? BpfCollection.Load(spec) : null;
            if (kernel is not null)
                c.FillKernel?.Invoke(kernel);
            var kp = kernel?.Program(programName);
            var measures = new List<Func<double>>
            {
                () => ShortBatches(jit, packet, c.Repeat),
                () => ShortBatches(jitQuick, packet, c.Repeat),
                () => ShortBatches(jitChecked, packet, c.Repeat),
                () => ShortBatches(interp, packet, Math.Max(1, c.Repeat / 10)),
                () => ShortBatches(jitBaseline, packet, c.Repeat),
            };
            if (kp is not null)
                measures.Add(() => kp.TestRun(new TestRunOptions { Data = packet, Repeat = c.Repeat }).NanosecondsPerRun);
            var medians = Interleaved(measures);
            double jitNs = medians[0], quickNs = medians[1], checkedNs = medians[2], interpNs = medians[3];
            double baselineNs = medians[4];
            double? kernelNs = kp is null ? null : medians[5];
            string Ratio(double ns) => kernelNs is { } k ? (ns / k).ToString("F2") : "-";
            string compile = $"{jitBaseline.JitCompileTime!.Value.TotalMilliseconds:F3} / {jitQuick.JitCompileTime!.Value.TotalMilliseconds:F3} / {jit.JitCompileTime!.Value.TotalMilliseconds:F3}";
            string baselineMark = jitBaseline.JitCode!.Tier == SharpBpf.Vm.Jit.JitTier.Baseline ? "" : "*";
            Console.WriteLine($"{c.Name,-16} {jit.InstructionCount,6} {compile,24} {jitNs,8:F1} {baselineNs,8:F1}{baselineMark,1} {quickNs,9:F1} {checkedNs,10:F1} " +
                $"{(kernelNs is { } kn ? kn.ToString("F1") : "-"),10} {interpNs,10:F1} {Ratio(jitNs),11} {Ratio(baselineNs),9} {Ratio(quickNs),9} {Ratio(checkedNs),11}");
            if (c.Name == "ALU loop")
            {
                long executed = ExecutedInstructions(jit, 1000);
                Console.WriteLine($"  ALU loop: {executed} instructions per run; jit {jitNs / executed:F3} ns/insn, baseline tier {baselineNs / executed:F3}, quick tier {quickNs / executed:F3} ns/insn" +
                    (kernelNs is { } kk ? $", kernel {kk / executed:F3} ns/insn" : "") + $", interpreter {interpNs / executed:F3} ns/insn");
            }
        }
        CompileTime(insns);
        return 0;
    }

    /// <summary>Compile time of a synthetic program (ALU, loads/stores, branches) on each tier, checked and unchecked.</summary>
    private static void CompileTime(int total)
    {
        var code = new List<Instruction>();
        var random = new Random(7);
        code.Add(new(new OpCode(0xb7), Register.R0, 0, 0, 0));
        code.Add(new(new OpCode(0xb7), Register.R2, 0, 0, 0));
        while (code.Count < total - 1)
        {
            switch (random.Next(4))
            {
                case 0: code.Add(new(new OpCode(0x7b), Register.R10, Register.R0, (short)(-8 * random.Next(1, 60)), 0)); break;
                case 1: code.Add(new(new OpCode(0x79), Register.R2, Register.R10, (short)(-8 * random.Next(1, 60)), 0)); break;
                case 2 when code.Count < total - 3: code.Add(new(new OpCode(0x25), Register.R0, 0, 1, random.Next())); break;
                default: code.Add(new(new OpCode(0x0f), Register.R0, Register.R2, 0, 0)); break;
            }
        }
        code.Add(new(new OpCode(0x95), 0, 0, 0, 0));
        Console.WriteLine($"Compile time of a synthetic {code.Count}-instruction program (loads, stores, branches, ALU), median of 11 compiles; " +
            "compile = emitting the IL + RyuJIT, as the program records it; RyuJIT alone from JitInfo; load = the whole load on this thread's CPU clock");
        Console.WriteLine("(baseline: the bytes column counts x86-64 machine code, and emit is the whole compile)");
        Console.WriteLine($"{"tier",-10} {"form",-10} {"bytes",9} {"compile ms",11} {"emit ms",8} {"RyuJIT ms",10} {"load CPU ms",12} {"min: compile",8} {"emit",8} {"RyuJIT",8}");
        foreach (var tiering in new[] { JitTiering.Baseline, JitTiering.Quick, JitTiering.Optimized })
        foreach (var (label, checkMemory) in new[] { ("checked", true), ("unchecked", false) })
        {
            // "unchecked" is the form a verified program's stack accesses take (the synthetic program's 250
            // independent branches are beyond the verifier's path limit, so it is compiled unchecked without facts:
            // the same IL).
            var options = new VmOptions { Engine = VmEngine.Jit, CheckMemory = checkMemory, JitTiering = tiering };
            var times = new List<double>();
            var emits = new List<double>();
            var cpu = new List<double>();
            var ryu = new List<double>();
            int il = 0;
            for (int i = 0; i < Compiles; i++)
            {
                double cpuBefore = ThreadCpuMilliseconds();
                var jitBefore = System.Runtime.JitInfo.GetCompilationTime(currentThread: true);
                var p = VmProgram.Create("compile_1000", code, Platform.ProgramType.Xdp, options);
                cpu.Add(ThreadCpuMilliseconds() - cpuBefore);
                ryu.Add((System.Runtime.JitInfo.GetCompilationTime(currentThread: true) - jitBefore).TotalMilliseconds);
                times.Add(p.JitCompileTime!.Value.TotalMilliseconds);
                emits.Add(p.JitCode!.EmitTime.TotalMilliseconds);
                il = p.JitCode.IlBytes + p.JitCode.NativeBytes;
            }
            Console.WriteLine($"{tiering.ToString().ToLowerInvariant(),-10} {label,-10} {il,9} {Median(times),11:F3} {Median(emits),8:F3} {Median(ryu),10:F3} {Median(cpu),12:F3} {times.Min(),8:F3} {emits.Min(),8:F3} {ryu.Min(),8:F3}");
        }
        // Time to the first result: load + one test-run, compiled at load (tiered: the quick code) or in the
        // background (the first runs go through the interpreter); and until the optimised code is in use.
        var packet = new byte[64];
        foreach (bool background in new[] { false, true })
        {
            var first = new List<double>();
            var compiled = new List<double>();
            var optimized = new List<double>();
            for (int i = 0; i < 11; i++)
            {
                var watch = Stopwatch.StartNew();
                var p = VmProgram.Create("compile_1000", code, Platform.ProgramType.Xdp,
                    new VmOptions { Engine = VmEngine.Jit, CheckMemory = false, CompileInBackground = background });
                p.TestRun(new TestRunOptions { Data = packet, Repeat = 1 });
                first.Add(watch.Elapsed.TotalMilliseconds);
                p.JitCompilation?.Wait();
                compiled.Add(watch.Elapsed.TotalMilliseconds);
                p.JitOptimization?.Wait();
                optimized.Add(watch.Elapsed.TotalMilliseconds);
            }
            Console.WriteLine($"{code.Count}-instruction program, tiered, {(background ? "compiled in the background" : "compiled at load")}: " +
                $"load to first result median {Median(first):F3} ms, to first code {Median(compiled):F3} ms, to optimised code {Median(optimized):F3} ms (wall clock)");
        }
    }

    /// <summary>
    /// <c>--compile --object FILE</c>: each program of a real object, loaded verified (as the CLI loads it), compiled
    /// at each tier; median and minimum compile time of <see cref="Compiles"/> loads per tier, and what each program
    /// got (a program the baseline tier does not handle gets quick IL, marked *).
    /// </summary>
    private static void ObjectCompileTime(string path)
    {
        var spec = ObjectFile.Read(File.ReadAllBytes(path), Path.GetFileName(path));
        Console.WriteLine($"Compile time of the programs of {Path.GetFileName(path)}, verified loads, median (min) of {Compiles} loads per tier, ms");
        Console.WriteLine($"{"program",-28} {"insns",6} {"baseline",18} {"quick",18} {"optimized",18}");
        var rows = new Dictionary<string, List<string>>();
        var counts = new Dictionary<string, int>();
        foreach (var tiering in new[] { JitTiering.Baseline, JitTiering.Quick, JitTiering.Optimized })
        {
            var times = new Dictionary<string, List<double>>();
            var marks = new Dictionary<string, string>();
            for (int i = 0; i < Compiles; i++)
            {
                using var collection = VmCollection.Load(spec, new VmOptions { Engine = VmEngine.Jit, Verify = true, JitTiering = tiering });
                foreach (var program in spec.Programs)
                {
                    var p = collection.Program(program.Name);
                    if (p.JitCompileTime is not { } t)
                        continue;
                    (times.TryGetValue(program.Name, out var list) ? list : times[program.Name] = []).Add(t.TotalMilliseconds);
                    counts[program.Name] = p.InstructionCount;
                    marks[program.Name] = tiering == JitTiering.Baseline && p.JitTierName != "baseline" ? "*" : "";
                }
            }
            foreach (var (name, list) in times)
                (rows.TryGetValue(name, out var row) ? row : rows[name] = []).Add($"{Median(list):F3} ({list.Min():F3}){marks[name]}");
        }
        foreach (var (name, row) in rows)
            Console.WriteLine($"{name,-28} {counts[name],6} {string.Join(" ", row.Select(r => $"{r,18}"))}");
    }

    // Compiles per figure: the median is given, and the minimum, which on a shared machine is the closest to the
    // compile's own cost.
    private static readonly int Compiles = int.TryParse(Environment.GetEnvironmentVariable("SHARPBPF_BENCH_COMPILES"), out int n) ? n : 21;

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID): unlike the wall clock, it does not count
    /// time other processes had the CPU, so it shows the compile's own cost on a loaded machine.</summary>
    private static double ThreadCpuMilliseconds() =>
        OperatingSystem.IsLinux() && ClockGetTime(3, out var t) == 0 ? t.Seconds * 1e3 + t.Nanoseconds / 1e6 : double.NaN;

    /// <summary>Instructions one run executes: the loop body (found at its backward jump) times the iterations plus the rest.</summary>
    private static long ExecutedInstructions(VmProgram program, int iterations)
    {
        var code = program.Code;
        for (int i = 0; i < program.InstructionCount; i++)
        {
            ref readonly var ins = ref code[i];
            bool jump = (ins.Op & 0x07) is 0x05 or 0x06 && ins.Op is not (0x85 or 0x95 or 0x8d);
            if (jump && ins.Offset <= i)
            {
                int body = i - ins.Offset + 1;
                return (long)body * iterations + (program.InstructionCount - body);
            }
        }
        return program.InstructionCount;
    }

    /// <summary>
    /// <paramref name="repeat"/> runs of a VM program as 100 test-runs of repeat/100 (0.02-5 ms each): the median
    /// test-run's ns per run. The kernel's BPF_PROG_TEST_RUN stops its clock while it yields the CPU
    /// (bpf_test_timer_continue); on a shared machine a user-space clock cannot, so short batches and their median
    /// leave out the batches another process interrupted instead.
    /// </summary>
    private static double ShortBatches(VmProgram program, byte[] packet, int repeat)
    {
        const int Count = 100;
        var values = new double[Count];
        var options = new TestRunOptions { Data = packet, Repeat = Math.Max(1, repeat / Count) };
        for (int i = 0; i < Count; i++)
            values[i] = program.TestRun(options).NanosecondsPerRun;
        Array.Sort(values);
        return values[Count / 2];
    }

    /// <summary>Median per measure of <see cref="Batches"/> batches, the measures taking turns batch by batch, after a
    /// warm-up of at least 300 ms each (so the .NET driver code has reached its optimised tier).</summary>
    private static double[] Interleaved(List<Func<double>> measures)
    {
        foreach (var measure in measures)
        {
            var warm = Stopwatch.StartNew();
            while (warm.ElapsedMilliseconds < 300)
                measure();
        }
        var values = new double[measures.Count][];
        for (int m = 0; m < measures.Count; m++)
            values[m] = new double[Batches];
        for (int i = 0; i < Batches; i++)
        {
            for (int m = 0; m < measures.Count; m++)
                values[m][i] = measures[m]();
        }
        var medians = new double[measures.Count];
        for (int m = 0; m < measures.Count; m++)
        {
            Array.Sort(values[m]);
            medians[m] = values[m][Batches / 2];
        }
        return medians;
    }

    private static void FillHash(object map, int entries)
    {
        Span<byte> key = stackalloc byte[4];
        Span<byte> value = stackalloc byte[4];
        for (int i = 0; i < entries; i++)
        {
            // 10.0.0.1 (the frame's source, network order) first, then other addresses.
            BinaryPrimitives.WriteUInt32BigEndian(key, 0x0a000001u + (uint)i);
            BinaryPrimitives.WriteUInt32LittleEndian(value, (uint)i);
            Update(map, key.ToArray(), value.ToArray());
        }
    }

    private static void FillLpm(object map, int prefixes)
    {
        var key = new byte[8];
        var value = new byte[4];
        for (int i = 0; i < prefixes; i++)
        {
            // /24 prefixes 10.x.y.0 plus 192.168.1.0/24, which covers the frame's destination.
            uint addr = i == 0 ? 0xc0a80100u : 0x0a000000u + ((uint)i << 8);
            BinaryPrimitives.WriteUInt32LittleEndian(key, 24);
            BinaryPrimitives.WriteUInt32BigEndian(key.AsSpan(4), addr);
            Update(map, key, value);
        }
    }

    private static void Update(object map, byte[] key, byte[] value)
    {
        switch (map)
        {
            case Maps.ManagedMap m: m.Update(key, value); break;
            case BpfMap k: k.Update(key, value); break;
            default: throw new UnreachableException(map.GetType().Name);
        }
    }

    /// <summary>A 64-byte Ethernet / IPv4 / UDP frame.</summary>
    private static byte[] UdpFrame(uint source, uint destination)
    {
        var f = new byte[64];
        for (int i = 0; i < 12; i++)
            f[i] = (byte)(i + 1);
        f[12] = 0x08; f[13] = 0x00;                    // IPv4
        f[14] = 0x45; f[16] = 0; f[17] = 50;           // version/ihl, total length
        f[22] = 64; f[23] = 17;                        // TTL, UDP
        BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(26), source);
        BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(30), destination);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34), 1234);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), 5678);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), 30);
        return f;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "programs", "build.sh")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException("the repository root (programs/build.sh) was not found above the bench binary");
    }
}
