using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using SharpBpf.Linux.AfXdp;

namespace SharpBpf.Bench;

/// <summary>
/// <c>dotnet run -c Release --project bench/SharpBpf.Bench -- afxdp [SECONDS] [ROUNDS]</c> (root), on a veth pair in
/// its own namespace, all measured in one run, medians of ROUNDS:
/// <list type="number">
/// <item>received-and-dropped packets of an AF_XDP socket in copy mode, SharpBpf against the C reference
/// <c>bench/afxdp-ref/xsk_ref.c</c> (built here with cc), alternately under the same generator (<c>xsk_ref gen</c>:
/// live-frames test runs of an XDP_TX program on veth0): rates, and CPU time per packet of the receiving thread;</item>
/// <item>xdp_drop run by <see cref="UserXdpDatapath"/> in the interpreter against the same object attached natively:
/// rates under the generator, run-user's CPU per packet against the kernel's per-frame time at veth1's hook
/// (live-frames test run) and the program's own (plain test run);</item>
/// <item>what XDP_PASS back to the stack costs: one live-frames call per frame, 64 a call through the attached
/// xsk_redirect program (what run-user does), 64 a call through a program not attached; and run-user passing
/// everything.</item>
/// </list>
/// Rates move with whatever else the machine runs; CPU time per packet much less. Not a BenchmarkDotNet benchmark.
/// </summary>
public static partial class AfXdpBench
{
    public static int Run(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 3;
        int rounds = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        var root = FindRoot();
        var work = Directory.CreateTempSubdirectory("sharpbpf-afxdp-bench-").FullName;
        var reference = Path.Combine(work, "xsk_ref");
        Exec("cc", ["-O2", "-o", reference, Path.Combine(root, "bench", "afxdp-ref", "xsk_ref.c")]);
        var ns = $"sbpfb-{Environment.ProcessId}";
        Exec("ip", ["netns", "add", ns]);
        try
        {
            Exec("ip", ["-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"]);
            Exec("ip", ["-n", ns, "link", "set", "veth0", "up"]);
            Exec("ip", ["-n", ns, "link", "set", "veth1", "up"]);
            double[] managed = new double[rounds], native = new double[rounds], user = new double[rounds], kernel = new double[rounds];
            double[] managedCpu = new double[rounds], nativeCpu = new double[rounds];
            double[] userCpu = new double[rounds], passRate = new double[rounds], passCpu = new double[rounds];
            double[] hookNs = new double[rounds], testRunNs = new double[rounds], injectNs = new double[rounds], injectKernelNs = new double[rounds], batchNs = new double[rounds], unattachedNs = new double[rounds];
            var dropObject = Path.Combine(root, "programs", "bench", "xdp_drop.o");
            var thread = new Thread(() =>
            {
                int fd = open("/var/run/netns/" + ns, 0x80000);
                if (fd < 0 || setns(fd, 0x40000000) != 0)
                    throw new InvalidOperationException("cannot enter the benchmark's network namespace");
                close(fd);
                int ifIndex = (int)if_nametoindex("veth1");
                using (var redirect = XskRedirect.Load())
                {
                    redirect.Attach(ifIndex);
                    for (int r = 0; r < rounds; r++)
                    {
                        (managed[r], managedCpu[r]) = Managed(ns, reference, ifIndex, redirect, seconds);
                        (native[r], nativeCpu[r]) = Native(ns, reference, redirect, seconds);
                        Console.WriteLine($"round {r + 1}: SharpBpf {managed[r] / 1e6:F3} Mpps ({managedCpu[r]:F0} ns CPU/packet), C reference {native[r] / 1e6:F3} Mpps ({nativeCpu[r]:F0} ns CPU/packet)");
                    }
                }
                using var dropVm = Vm.VmCollection.Load(Objects.ObjectFile.Open(dropObject));
                using var passVm = Vm.VmCollection.Load(PassSpec());
                using var dropKernel = Linux.BpfCollection.Load(Objects.ObjectFile.Open(dropObject));
                for (int r = 0; r < rounds; r++)
                {
                    (user[r], userCpu[r]) = RunUser(ns, reference, ifIndex, dropVm.Program("xdp_drop"), seconds, c => c.Drop);
                    kernel[r] = Attached(ns, reference, ifIndex, dropKernel.Program("xdp_drop"), seconds);
                    (passRate[r], passCpu[r]) = RunUser(ns, reference, ifIndex, passVm.Program("pass"), seconds, c => c.Pass);
                    (hookNs[r], testRunNs[r]) = KernelCost(ifIndex, dropKernel.Program("xdp_drop"));
                    (injectNs[r], injectKernelNs[r], batchNs[r], unattachedNs[r]) = PassInjectionCost(ifIndex);
                    Console.WriteLine($"round {r + 1}: xdp_drop run-user {user[r] / 1e6:F3} Mpps ({userCpu[r]:F0} ns CPU/packet), "
                        + $"attached natively {kernel[r] / 1e6:F3} Mpps; kernel hook {hookNs[r]:F0} ns/frame, test-run {testRunNs[r]:F0} ns/run; "
                        + $"run-user PASS {passRate[r] / 1e6:F3} Mpps ({passCpu[r]:F0} ns CPU/packet); PASS injection one frame a call {injectNs[r]:F0} ns/frame ({injectKernelNs[r]:F0} timed by the kernel), 64 a call {batchNs[r]:F0} ns/frame ({unattachedNs[r]:F0} through a program not attached)");
                }
            });
            thread.Start();
            thread.Join();
            double m = Median(managed), c = Median(native);
            Console.WriteLine($"AF_XDP copy mode, veth, receive+drop, one receiving thread, {seconds} s x {rounds} rounds (medians):");
            Console.WriteLine($"  SharpBpf XskSocket  {m / 1e6:F3} Mpps");
            Console.WriteLine($"  C reference         {c / 1e6:F3} Mpps");
            Console.WriteLine($"  ratio SharpBpf / C  {m / c:F3} (rates: the generator and other load on the machine move them)");
            double mc = Median(managedCpu), cc = Median(nativeCpu);
            Console.WriteLine($"  CPU per packet of the receiving thread: SharpBpf {mc:F0} ns, C {cc:F0} ns, ratio {mc / cc:F2}");
            double u = Median(user), k = Median(kernel);
            Console.WriteLine($"xdp_drop, same generator: run-user (interpreter) {u / 1e6:F3} Mpps, attached natively {k / 1e6:F3} Mpps (generator-bound); rate ratio {k / u:F2}");
            double uc = Median(userCpu), hook = Median(hookNs), tr = Median(testRunNs);
            Console.WriteLine($"xdp_drop per packet: run-user {uc:F0} ns of its thread's CPU; in the kernel at veth1's hook {hook:F0} ns (live-frames test run: frame setup + program + drop), the program alone {tr:F0} ns (test run); ratio run-user / hook {uc / hook:F1}");
            double pc = Median(passCpu), inj = Median(injectNs), injk = Median(injectKernelNs), bat = Median(batchNs);
            Console.WriteLine($"XDP_PASS back to the stack, per frame: one frame a call {inj:F0} ns wall ({injk:F0} ns timed by the kernel inside the call), 64 frames a call through the attached program (what run-user does) {bat:F0} ns, ratio {inj / bat:F1}; 64 a call through a program not attached {Median(unattachedNs):F0} ns");
            Console.WriteLine($"run-user passing everything: {Median(passRate) / 1e6:F3} Mpps, {pc:F0} ns CPU/packet; PASS / DROP CPU per packet {pc / uc:F2}");
            return 0;
        }
        finally
        {
            Exec("ip", ["netns", "del", ns]);
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The C# receive-and-drop loop: batches of 64, refill at once, poll when idle.</summary>
    private static (double Rate, double CpuNs) Managed(string ns, string reference, int ifIndex, XskRedirect redirect, double seconds)
    {
        using var umem = new Umem(new UmemOptions { FrameCount = 4096, FrameSize = 2048 });
        using var socket = XskSocket.Create(ifIndex, 0, umem, new XskSocketOptions { Mode = XskBindMode.Copy });
        redirect.Register(socket);
        using var generator = Start(ns, reference, ["gen", "veth0", F(seconds)]);
        Span<XdpDesc> batch = stackalloc XdpDesc[64];
        long received = 0;
        long cpu0 = ThreadCpuNs();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            int n = socket.Receive(batch);
            if (n == 0)
            {
                socket.WaitForReceive(TimeSpan.FromMilliseconds(50));
                continue;
            }
            socket.Refill(batch[..n]);
            received += n;
        }
        double rate = received / clock.Elapsed.TotalSeconds;
        double cpu = (double)(ThreadCpuNs() - cpu0) / Math.Max(1, received);
        var stats = socket.GetStatistics();
        var sent = generator.StandardOutput.ReadToEnd().Trim();
        generator.WaitForExit();
        Console.WriteLine($"  SharpBpf: received {received}, {cpu:F0} ns CPU/packet, generator {sent}, ring full {stats.RxRingFull}, fill empty {stats.RxFillRingEmpty}, dropped {stats.RxDropped}");
        redirect.Unregister(0);
        return (rate, cpu);
    }

    private static (double Rate, double CpuNs) Native(string ns, string reference, XskRedirect redirect, double seconds)
    {
        using var rx = Start(ns, reference, ["rx", "veth1", "0", redirect.Map.Id.ToString(CultureInfo.InvariantCulture), F(seconds)]);
        var ready = rx.StandardOutput.ReadLine();
        if (ready != "ready")
            throw new InvalidOperationException("xsk_ref rx did not start: " + rx.StandardError.ReadToEnd());
        var started = Stopwatch.StartNew();
        using var generator = Start(ns, reference, ["gen", "veth0", F(seconds)]);
        var line = rx.StandardOutput.ReadToEnd().Trim();
        double elapsed = Math.Min(started.Elapsed.TotalSeconds, seconds);
        rx.WaitForExit();
        var sent = generator.StandardOutput.ReadToEnd().Trim();
        generator.WaitForExit();
        Console.WriteLine($"  C: {line}, generator {sent}");
        redirect.Unregister(0);
        var fields = line.Split(' ');
        long received = long.Parse(fields[1], CultureInfo.InvariantCulture);
        return (received / elapsed, double.Parse(fields[3], CultureInfo.InvariantCulture) / Math.Max(1, received));
    }

    /// <summary>A VM program run by <see cref="UserXdpDatapath"/> under the generator: frames per second (those
    /// <paramref name="counted"/> says) and CPU ns of the running thread per frame received.</summary>
    private static (double Rate, double CpuNs) RunUser(string ns, string reference, int ifIndex, Vm.VmProgram program, double seconds, Func<UserXdpCounters, long> counted)
    {
        using var generator = Start(ns, reference, ["gen", "veth0", F(seconds)]);
        var clock = Stopwatch.StartNew();
        long cpu0 = ThreadCpuNs();
        var counters = UserXdpDatapath.Run(ifIndex, program,
            new UserXdpOptions { Duration = TimeSpan.FromSeconds(seconds), Mode = XskBindMode.Copy });
        long cpu = ThreadCpuNs() - cpu0;
        double rate = counted(counters) / clock.Elapsed.TotalSeconds;
        var sent = generator.StandardOutput.ReadToEnd().Trim();
        generator.WaitForExit();
        Console.WriteLine($"  run-user {program.Name}: {counted(counters)} of {counters.Received} (pass refused {counters.PassFailed}), generator {sent}");
        return (rate, counters.Received == 0 ? double.NaN : (double)cpu / counters.Received);
    }

    /// <summary>xdp_drop attached natively: every generated frame is dropped at the hook, so the rate is the generator's.</summary>
    private static double Attached(string ns, string reference, int ifIndex, Linux.BpfProgram program, double seconds)
    {
        using var attachment = Linux.Links.XdpHook.Attach(ifIndex, program, new Linux.Links.XdpAttachOptions { Mode = Linux.Links.XdpAttachMode.Native });
        using var generator = Start(ns, reference, ["gen", "veth0", F(seconds)]);
        var sent = generator.StandardOutput.ReadToEnd().Trim();
        generator.WaitForExit();
        Console.WriteLine($"  attached: generator {sent}");
        return long.Parse(sent.Split(' ')[1], CultureInfo.InvariantCulture) / seconds;
    }

    private static readonly byte[] s_frame = BuildFrame();

    /// <summary>The kernel's cost of the program per frame: at veth1's XDP hook on live frames (the kernel's frame
    /// setup, the JIT-compiled program, the drop), and the program alone (plain test run).</summary>
    private static (double Hook, double TestRun) KernelCost(int ifIndex, Linux.BpfProgram program)
    {
        using var injector = LiveFrameInjector.Through(program);
        int errno = injector.Inject(s_frame, ifIndex, 0, 100_000, out uint hook);
        if (errno != 0)
            throw new InvalidOperationException($"live-frames test run of {program.Name}: errno {errno}");
        var run = program.TestRun(new Xdp.TestRunOptions { Data = s_frame, Repeat = 1_000_000 });
        return (hook, run.NanosecondsPerRun);
    }

    /// <summary>What handing PASS frames back to the stack costs per frame on veth1 (the stack then drops them:
    /// nothing there wants them), wall time: one live-frames test run per frame of a <c>return XDP_PASS</c> program
    /// (and the part the kernel times inside the call); what run-user does, 64 frames a call through the attached
    /// xsk_redirect program; and 64 a call through a program that is not attached (the XDP dispatcher's update).</summary>
    private static (double Single, double SingleKernel, double Batched, double Unattached) PassInjectionCost(int ifIndex)
    {
        const int frames = 64 * 1024;
        long kernel = 0;
        var clock = Stopwatch.StartNew();
        using (var single = LiveFrameInjector.Pass())
        {
            for (int i = 0; i < frames / 8; i++)
            {
                if (single.Inject(s_frame, ifIndex, 0, 1, out uint ns) is var errno and not 0)
                    throw new InvalidOperationException($"PASS injection: errno {errno}");
                kernel += ns;
            }
        }
        double singleNs = clock.Elapsed.TotalNanoseconds / (frames / 8);
        double Batched(StackInjector batch, int calls)
        {
            clock.Restart();
            for (int i = 0; i < calls; i++)
            {
                for (int k = 0; k < StackInjector.Capacity; k++)
                    batch.Add(s_frame, ifIndex, 0);
                int errno = batch.Flush(out int passed);
                if (errno != 0 || passed != StackInjector.Capacity)
                    throw new InvalidOperationException($"batched PASS injection: errno {errno}, passed {passed}");
            }
            return clock.Elapsed.TotalNanoseconds / (calls * StackInjector.Capacity);
        }
        double attached, unattached;
        using (var redirect = XskRedirect.Load())
        {
            redirect.Attach(ifIndex);
            using var batch = StackInjector.Over(redirect);
            attached = Batched(batch, frames / StackInjector.Capacity);
        }
        using (var redirect = XskRedirect.Load())
        using (var batch = StackInjector.Over(redirect))
            unattached = Batched(batch, 8);
        return (singleNs, (double)kernel / (frames / 8), attached, unattached);
    }

    /// <summary>A 60-byte UDP frame to the broadcast address, as the generator sends.</summary>
    private static byte[] BuildFrame() =>
    [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0x5b, 0x9f, 0, 1, 0x08, 0x00,
        0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 10, 11, 0, 1, 10, 11, 0, 2,
        0x04, 0xd2, 0x27, 0x0f, 0, 26, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// <summary>return XDP_PASS, for the managed VM.</summary>
    private static Objects.CollectionSpec PassSpec()
    {
        var spec = new Objects.CollectionSpec { License = "GPL" };
        spec.Programs.Add(new Objects.ProgramSpec
        {
            Name = "pass", SectionName = "xdp", Type = Platform.ProgramType.Xdp, License = "GPL",
            Instructions = [new Asm.Instruction(new Asm.OpCode(0xb7), Asm.Register.R0, 0, 0, 2), new Asm.Instruction(new Asm.OpCode(0x95), 0, 0, 0, 0)],
        });
        return spec;
    }

    private static unsafe long ThreadCpuNs()
    {
        long* ts = stackalloc long[2];
        if (clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, ts) != 0)
            throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        return ts[0] * 1_000_000_000 + ts[1];
    }

    private static string F(double x) => x.ToString(CultureInfo.InvariantCulture);

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static Process Start(string ns, string program, string[] args)
    {
        var info = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["netns", "exec", ns, program, .. args])
            info.ArgumentList.Add(a);
        return Process.Start(info) ?? throw new InvalidOperationException("cannot start " + program);
    }

    private static void Exec(string program, string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        using var p = Process.Start(info) ?? throw new InvalidOperationException("cannot start " + program);
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)) || p.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed: {error}{output.Result}");
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return dir.FullName;
        throw new InvalidOperationException("SharpBpf.slnx not found above " + AppContext.BaseDirectory);
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc")]
    private static partial int setns(int fd, int type);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    [LibraryImport("libc")]
    private static unsafe partial int clock_gettime(int clock, long* timespec);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint if_nametoindex(string name);
}
