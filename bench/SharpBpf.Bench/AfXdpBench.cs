using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using SharpBpf.Linux.AfXdp;

namespace SharpBpf.Bench;

/// <summary>
/// <c>dotnet run -c Release --project bench/SharpBpf.Bench -- afxdp [SECONDS] [ROUNDS]</c> (root): received-and-dropped
/// packets per second of an AF_XDP socket in copy mode on a veth pair, SharpBpf against the C reference
/// <c>bench/afxdp-ref/xsk_ref.c</c> (built here with cc), measured alternately in the same run with the same
/// generator (<c>xsk_ref gen</c>, AF_PACKET on the peer). Both receivers run one thread; the machine's other core runs
/// the generator, so a receiver that keeps up shows the generator's rate: the drop counts say which side limits.
/// Not a BenchmarkDotNet benchmark: the figure is a rate over live traffic, reported as medians and their ratio.
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
                        managed[r] = Managed(ns, reference, ifIndex, redirect, seconds);
                        native[r] = Native(ns, reference, redirect, seconds);
                        Console.WriteLine($"round {r + 1}: SharpBpf {managed[r] / 1e6:F3} Mpps, C reference {native[r] / 1e6:F3} Mpps");
                    }
                }
                for (int r = 0; r < rounds; r++)
                {
                    user[r] = RunUser(ns, reference, ifIndex, dropObject, seconds);
                    kernel[r] = Attached(ns, reference, ifIndex, dropObject, seconds);
                    Console.WriteLine($"round {r + 1}: xdp_drop run-user {user[r] / 1e6:F3} Mpps, attached natively {kernel[r] / 1e6:F3} Mpps");
                }
            });
            thread.Start();
            thread.Join();
            double m = Median(managed), c = Median(native);
            Console.WriteLine($"AF_XDP copy mode, veth, receive+drop, one receiving thread, {seconds} s x {rounds} rounds (medians):");
            Console.WriteLine($"  SharpBpf XskSocket  {m / 1e6:F3} Mpps");
            Console.WriteLine($"  C reference         {c / 1e6:F3} Mpps");
            Console.WriteLine($"  ratio SharpBpf / C  {m / c:F3}");
            double u = Median(user), k = Median(kernel);
            Console.WriteLine($"xdp_drop, same generator: run-user (interpreter) {u / 1e6:F3} Mpps = {1e9 / u:F0} ns/packet; attached natively {k / 1e6:F3} Mpps = {1e9 / k:F0} ns/packet (generator-bound); ratio {k / u:F2}");
            return 0;
        }
        finally
        {
            Exec("ip", ["netns", "del", ns]);
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>The C# receive-and-drop loop: batches of 64, refill at once, poll when idle.</summary>
    private static double Managed(string ns, string reference, int ifIndex, XskRedirect redirect, double seconds)
    {
        using var umem = new Umem(new UmemOptions { FrameCount = 4096, FrameSize = 2048 });
        using var socket = XskSocket.Create(ifIndex, 0, umem, new XskSocketOptions { Mode = XskBindMode.Copy });
        redirect.Register(socket);
        using var generator = Start(ns, reference, ["gen", "veth0", F(seconds)]);
        Span<XdpDesc> batch = stackalloc XdpDesc[64];
        long received = 0;
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
        var stats = socket.GetStatistics();
        var sent = generator.StandardOutput.ReadToEnd().Trim();
        generator.WaitForExit();
        Console.WriteLine($"  SharpBpf: received {received}, generator {sent}, ring full {stats.RxRingFull}, fill empty {stats.RxFillRingEmpty}, dropped {stats.RxDropped}");
        redirect.Unregister(0);
        return rate;
    }

    private static double Native(string ns, string reference, XskRedirect redirect, double seconds)
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
        return long.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture) / elapsed;
    }

    /// <summary>xdp_drop run in the managed VM by <see cref="UserXdpDatapath"/>: frames dropped per second.</summary>
    private static double RunUser(string ns, string reference, int ifIndex, string dropObject, double seconds)
    {
        using var collection = Vm.VmCollection.Load(Objects.ObjectFile.Open(dropObject));
        using var generator = Start(ns, reference, ["gen", "veth0", F(seconds)]);
        var clock = Stopwatch.StartNew();
        var counters = UserXdpDatapath.Run(ifIndex, collection.Program("xdp_drop"),
            new UserXdpOptions { Duration = TimeSpan.FromSeconds(seconds), Mode = XskBindMode.Copy });
        double rate = counters.Drop / clock.Elapsed.TotalSeconds;
        var sent = generator.StandardOutput.ReadToEnd().Trim();
        generator.WaitForExit();
        Console.WriteLine($"  run-user: dropped {counters.Drop} of {counters.Received}, generator {sent}");
        return rate;
    }

    /// <summary>xdp_drop attached natively: every generated frame is dropped at the hook, so the rate is the generator's.</summary>
    private static double Attached(string ns, string reference, int ifIndex, string dropObject, double seconds)
    {
        using var collection = Linux.BpfCollection.Load(Objects.ObjectFile.Open(dropObject));
        using var attachment = Linux.Links.XdpHook.Attach(ifIndex, collection.Program("xdp_drop"), new Linux.Links.XdpAttachOptions { Mode = Linux.Links.XdpAttachMode.Native });
        using var generator = Start(ns, reference, ["gen", "veth0", F(seconds)]);
        var sent = generator.StandardOutput.ReadToEnd().Trim();
        generator.WaitForExit();
        Console.WriteLine($"  attached: generator {sent}");
        return long.Parse(sent.Split(' ')[1], CultureInfo.InvariantCulture) / seconds;
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

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial uint if_nametoindex(string name);
}
