using System.Runtime.InteropServices;
using SharpBpf.Asm;
using SharpBpf.Linux;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Bench;

/// <summary>
/// The interpreter's per-instruction and per-run cost, with in-run references: the same XDP programs run on the
/// interpreter (checked and unchecked memory), on the project's JIT and on the kernel's JIT through
/// BPF_PROG_TEST_RUN. Programs: an ALU loop and a memory loop (1,000 iterations of 6 instructions), a
/// 2-instruction program (<c>r0 = XDP_PASS; exit</c>) and XDP drop-all (<c>r0 = XDP_DROP; exit</c>).
/// Figures are ns per run (median of several batches), and for the loops ns per executed instruction. The managed
/// engines are timed by this thread's CPU clock (CLOCK_THREAD_CPUTIME_ID), so time a shared machine gives to other
/// processes is not counted; the kernel column is the kernel's own BPF_PROG_TEST_RUN figure. Caches and the branch
/// predictor are still shared: on a busy machine compare the columns of one run, not runs of different days.
/// Run: <c>dotnet run -c Release --project bench/SharpBpf.Bench -- interp [--quick] [--batches N] [--min]</c>
/// (<c>--min</c> also prints each measurement's fastest batch).
/// The kernel column needs root and is skipped with the reason otherwise.
/// </summary>
public static class InterpreterComparison
{
    private const int Iterations = 1000;

    private sealed record Case(string Name, Instruction[] Code, long Executed, int Repeat, bool PerInstruction);

    private static Instruction I(byte op, Register dst, Register src, short off, long imm) => new(new OpCode(op), dst, src, off, imm);

    /// <summary>r2 = 0; r3 = N; loop: r2 += r3; r2 ^= 0x55; r2 <<= 1; r2 >>= 1; r3 -= 1; if r3 != 0 goto loop; r0 = 2; exit</summary>
    internal static Instruction[] AluLoop(int iterations) =>
    [
        I(0xb7, Register.R2, 0, 0, 0),
        I(0xb7, Register.R3, 0, 0, iterations),
        I(0x0f, Register.R2, Register.R3, 0, 0),
        I(0xa7, Register.R2, 0, 0, 0x55),
        I(0x67, Register.R2, 0, 0, 1),
        I(0x77, Register.R2, 0, 0, 1),
        I(0x17, Register.R3, 0, 0, 1),
        I(0x55, Register.R3, 0, -6, 0),
        I(0xb7, Register.R0, 0, 0, 2),
        I(0x95, 0, 0, 0, 0),
    ];

    /// <summary>*(u64*)(r10-8) = 0; r2 = N; loop: r3 = *(u64*)(r10-8); r3 += r2; *(u64*)(r10-8) = r3;
    /// r4 = ctx->data; r2 -= 1; if r2 != 0 goto loop; r0 = 2; exit</summary>
    internal static Instruction[] MemoryLoop(int iterations) =>
    [
        I(0x7a, Register.R10, 0, -8, 0),
        I(0xb7, Register.R2, 0, 0, iterations),
        I(0x79, Register.R3, Register.R10, -8, 0),
        I(0x0f, Register.R3, Register.R2, 0, 0),
        I(0x7b, Register.R10, Register.R3, -8, 0),
        I(0x61, Register.R4, Register.R1, 0, 0),
        I(0x17, Register.R2, 0, 0, 1),
        I(0x55, Register.R2, 0, -6, 0),
        I(0xb7, Register.R0, 0, 0, 2),
        I(0x95, 0, 0, 0, 0),
    ];

    public static int Run(string[] args)
    {
        bool quick = args.Contains("--quick");
        int batches = int.TryParse(args.SkipWhile(a => a != "--batches").Skip(1).FirstOrDefault(), out int b) ? b : 7;
        int repeat = quick ? 200_000 : 2_000_000;
        string? kernelSkip = Environment.IsPrivilegedProcess ? null : "not root: BPF_PROG_TEST_RUN needs CAP_BPF/CAP_NET_ADMIN";

        Case[] cases =
        [
            new("ALU loop", AluLoop(Iterations), 2 + 6L * Iterations + 2, repeat / 1000, true),
            new("memory loop", MemoryLoop(Iterations), 2 + 6L * Iterations + 2, repeat / 1000, true),
            new("2-insn (pass)", [I(0xb7, Register.R0, 0, 0, 2), I(0x95, 0, 0, 0, 0)], 2, repeat, false),
            new("drop-all", [I(0xb7, Register.R0, 0, 0, 1), I(0x95, 0, 0, 0, 0)], 2, repeat, false),
        ];
        var packet = new byte[64];

        Console.WriteLine($"Interpreter vs JIT vs kernel JIT (BPF_PROG_TEST_RUN): ns per run, median of {batches} batches " +
            "(managed engines: thread CPU time; kernel: its test-run figure)");
        if (kernelSkip is not null)
            Console.WriteLine($"kernel column skipped: {kernelSkip}");
        Console.WriteLine($"{"program",-14} {"insns run",9} {"interp",9} {"unchecked",9} {"jit",9} {"kernel",9} {"raw call",9} {"interp/kernel",13} {"interp/jit",10}");
        foreach (var c in cases)
        {
            var spec = new ProgramSpec { Name = "bench", SectionName = "xdp", Type = ProgramType.Xdp, Instructions = [.. c.Code], License = "GPL" };
            var interp = VmProgram.Create(c.Name, c.Code, ProgramType.Xdp, new VmOptions { Engine = VmEngine.Interpreter });
            var interpUnchecked = VmProgram.Create(c.Name, c.Code, ProgramType.Xdp, new VmOptions { Engine = VmEngine.Interpreter, CheckMemory = false });
            var jit = VmProgram.Create(c.Name, c.Code, ProgramType.Xdp, new VmOptions { Engine = VmEngine.Jit, JitTiering = JitTiering.Optimized });
            double interpNs = Median(batches, () => TimeXdp(interp, packet, c.Repeat));
            double uncheckedNs = Median(batches, () => TimeXdp(interpUnchecked, packet, c.Repeat));
            double jitNs = Median(batches, () => TimeXdp(jit, packet, c.Repeat * (c.PerInstruction ? 10 : 1)));
            // A plain call: VmProgram.Run(execution, memory), no XDP frame (a call without the XDP set-up).
            double rawNs = Median(batches, () => TimeRaw(interp, c.Repeat));
            double? kernelNs = null;
            if (kernelSkip is null)
            {
                using var kp = BpfProgram.Load(spec);
                kernelNs = Median(batches, () => kp.TestRun(new TestRunOptions { Data = packet, Repeat = c.Repeat * (c.PerInstruction ? 10 : 1) }).NanosecondsPerRun);
            }
            if (args.Contains("--min"))
            {
                string[] names = ["interp", "unchecked", "jit", "raw call", "kernel"];
                Console.WriteLine("  fastest batch: " + string.Join(", ", Minimums.Select((m, i) => $"{names[i]} {m:F1}")));
            }
            Minimums.Clear();
            Console.WriteLine($"{c.Name,-14} {c.Executed,9} {interpNs,9:F1} {uncheckedNs,9:F1} {jitNs,9:F1} {(kernelNs is { } k ? k.ToString("F1") : "-"),9} {rawNs,9:F1} " +
                $"{(kernelNs is { } k2 ? (interpNs / k2).ToString("F1") : "-"),13} {interpNs / jitNs,10:F1}");
            if (c.PerInstruction)
            {
                Console.WriteLine($"  {c.Name}: ns/insn interpreter {interpNs / c.Executed:F3}, unchecked {uncheckedNs / c.Executed:F3}, " +
                    $"jit {jitNs / c.Executed:F3}" + (kernelNs is { } kk ? $", kernel {kk / c.Executed:F3}" : ""));
            }
        }
        AllocationCheck(packet);
        return 0;
    }

    /// <summary>ns per run of <see cref="VmProgram.RunXdp"/> on one frame (what TestRun does, timed here directly).</summary>
    private static double TimeXdp(VmProgram program, byte[] packet, int repeat)
    {
        using var execution = new VmExecution();
        using var context = new XdpContext();
        context.SetPacket(packet);
        var action = program.RunXdp(execution, context, out var trap);
        if (trap is not null || action is not (XdpAction.Pass or XdpAction.Drop))
            throw new InvalidOperationException($"{program.Name}: unexpected result {action} {trap?.Message}");
        long start = ThreadCpuNanoseconds();
        for (int i = 0; i < repeat; i++)
            program.RunXdp(execution, context, out _);
        return (double)(ThreadCpuNanoseconds() - start) / repeat;
    }

    /// <summary>ns per plain call, <see cref="VmProgram.Run(VmExecution, Span{byte})"/> over a 64-byte block (no XDP
    /// frame: r1 = the block, r2 = its length), as the conformance runner calls programs.</summary>
    private static double TimeRaw(VmProgram program, int repeat)
    {
        using var execution = new VmExecution();
        var memory = new byte[64];
        if (program.Run(execution, memory) != 2 && program.Run(execution, memory) != 1)
            throw new InvalidOperationException($"{program.Name}: unexpected return value");
        long start = ThreadCpuNanoseconds();
        for (int i = 0; i < repeat; i++)
            program.Run(execution, memory);
        return (double)(ThreadCpuNanoseconds() - start) / repeat;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    private const int ClockThreadCpuTime = 3; // CLOCK_THREAD_CPUTIME_ID

    /// <summary>CPU time of this thread: on a shared machine, the wall clock also counts time given to others.</summary>
    private static long ThreadCpuNanoseconds()
    {
        if (ClockGetTime(ClockThreadCpuTime, out var t) != 0)
            throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        return t.Seconds * 1_000_000_000 + t.Nanoseconds;
    }

    /// <summary>Bytes allocated per run by warmed programs (must be 0: a run allocates nothing).</summary>
    private static void AllocationCheck(byte[] packet)
    {
        var program = VmProgram.Create("alloc", AluLoop(10), ProgramType.Xdp, new VmOptions());
        using var execution = new VmExecution();
        using var context = new XdpContext();
        context.SetPacket(packet);
        for (int i = 0; i < 1000; i++)
            program.RunXdp(execution, context, out _);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100_000; i++)
            program.RunXdp(execution, context, out _);
        long after = GC.GetAllocatedBytesForCurrentThread();
        Console.WriteLine($"allocated per XDP run (interpreter, warmed): {(after - before) / 100_000.0:F2} bytes");
    }

    private static double Median(int batches, Func<double> measure)
    {
        measure(); // warm-up (tiering: the second batch runs optimized code)
        measure();
        var values = new double[batches];
        for (int i = 0; i < batches; i++)
            values[i] = measure();
        Array.Sort(values);
        Minimums.Add(values[0]);
        return values[batches / 2];
    }

    /// <summary>The fastest batch of each measurement, in order (printed with --min: less sensitive to a busy machine).</summary>
    private static readonly List<double> Minimums = [];
}
