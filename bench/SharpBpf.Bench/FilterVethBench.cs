using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using SharpBpf.Linux;
using SharpBpf.Linux.Filter;
using SharpBpf.Linux.Interop;
using SharpBpf.Linux.Links;
using SharpBpf.Objects;

namespace SharpBpf.Bench;

/// <summary>
/// Packets per second the XDP filter handles on a veth in native mode, with 1 and 10,000 rules, beside a plain
/// XDP_DROP program measured in the same run. Every frame matches a deny rule, so the filter drops them all.
/// <para>Generator: BPF_PROG_TEST_RUN in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES) runs programs/bench/xdp_tx.o
/// on veth0, which sends every frame out of veth0 (XDP_TX) to veth1's XDP hook. The frames handled are veth1's
/// rx_packets; the rate is frames handled over the wall time from the first frame sent until veth1's counter stops
/// moving. The generator and the receiver share the machine's CPUs, so a rate is end to end; the ratio against
/// XDP_DROP is what tells the filter's own cost.</para>
/// Run as root: <c>dotnet run --project bench/SharpBpf.Bench -c Release -- filter-veth [frames] [runs]</c>.
/// </summary>
public static unsafe partial class FilterVethBench
{
    private const uint LiveFrames = 2; // BPF_F_TEST_XDP_LIVE_FRAMES

    public static int Run(string[] args)
    {
        var frames = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 2_000_000;
        var runs = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 5;
        if (!Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("filter-veth: needs root (network namespace, BPF, XDP attach)");
            return 1;
        }
        var ns = $"sharpbpf-bench-{Environment.ProcessId}";
        var pins = Path.Combine(Path.GetTempPath(), ns);
        Exec("ip", "netns", "add", ns);
        try
        {
            Exec("ip", "-n", ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1");
            Exec("ip", "-n", ns, "link", "set", "veth0", "up");
            Exec("ip", "-n", ns, "link", "set", "veth1", "up");
            Directory.CreateDirectory(pins);
            Exec("mount", "-t", "bpf", "bpf", pins);
            try
            {
                // Everything below runs on this thread, inside the namespace (ifindexes and test-run are per netns).
                EnterNetNs($"/var/run/netns/{ns}");
                return Measure(frames, runs, pins);
            }
            finally
            {
                Exec("umount", pins);
                Directory.Delete(pins);
            }
        }
        finally
        {
            Exec("ip", "netns", "del", ns);
        }
    }

    private static int Measure(int frames, int runs, string pins)
    {
        var veth0 = NetInterfaces("veth0");
        var frame = FramePacket.Udp("198.51.100.7", "10.0.0.2", 40000, 9).Build();
        using var generator = BpfCollection.Load(ObjectFile.Open(BenchPaths.Program("bench/xdp_tx.o")));
        var results = new List<(string Receiver, double Mpps, double Handled)>();

        using (var drop = BpfCollection.Load(ObjectFile.Open(BenchPaths.Program("bench/xdp_drop.o"))))
        using (XdpHook.Attach("veth1", drop.Program("xdp_drop"), new XdpAttachOptions { Mode = XdpAttachMode.Native }))
        {
            var (mpps, handled) = Rate(generator.Program("xdp_tx"), veth0, frame, frames, runs);
            results.Add(("xdp_drop", mpps, handled));
        }

        foreach (var ruleCount in new[] { 1, 10_000 })
        {
            using var filter = XdpFilter.Open(Path.Combine(pins, $"filter{ruleCount}"));
            // ruleCount - 1 source prefixes that do not match, and the one that does.
            var rules = Enumerable.Range(0, ruleCount - 1)
                .Select(i => FilterRule.Ip($"10.{i >> 8 & 0xff}.{i & 0xff}.0/24", FilterDirection.Source))
                .Append(FilterRule.Ip("198.51.100.7", FilterDirection.Source));
            filter.State.AddRange(rules);
            filter.Attach("veth1", XdpAttachMode.Native);
            var (mpps, handled) = Rate(generator.Program("xdp_tx"), veth0, frame, frames, runs);
            var dropped = filter.ReadStatistics().Dropped.Packets;
            filter.Detach("veth1");
            results.Add(($"xdp_filter, {ruleCount:N0} rule{(ruleCount == 1 ? "" : "s")} ({dropped:N0} dropped)", mpps, handled));
        }

        var reference = results[0].Mpps;
        Console.WriteLine($"XDP on veth, native mode: {frames:N0} live frames a run, median of {runs} runs ({Environment.ProcessorCount} CPUs)");
        Console.WriteLine($"{"receiver",-44} {"Mpps",8} {"handled",8} {"ratio",7}");
        foreach (var (receiver, mpps, handled) in results)
            Console.WriteLine($"{receiver,-44} {mpps,8:0.000} {handled,8:P1} {mpps / reference,7:0.00}");
        return 0;
    }

    /// <summary>Median frames handled per second by veth1 over <paramref name="runs"/> runs, and the share of frames sent that it handled.</summary>
    private static (double Mpps, double Handled) Rate(BpfProgram generator, int veth0, byte[] frame, int frames, int runs)
    {
        var rates = new List<double>();
        var handledShares = new List<double>();
        for (var run = 0; run < runs; run++)
        {
            var before = RxPackets("veth1");
            var clock = Stopwatch.StartNew();
            Generate(generator, veth0, frame, frames);
            // Frames still in veth1's ring are handled after the generator returns: wait until the counter settles.
            long last = -1, now = RxPackets("veth1");
            var settled = clock.Elapsed;
            while (now != last && clock.Elapsed < TimeSpan.FromSeconds(30))
            {
                settled = clock.Elapsed;
                last = now;
                Thread.Sleep(20);
                now = RxPackets("veth1");
            }
            var handled = now - before;
            rates.Add(handled / settled.TotalSeconds / 1e6);
            handledShares.Add((double)handled / frames);
        }
        rates.Sort();
        handledShares.Sort();
        return (rates[rates.Count / 2], handledShares[handledShares.Count / 2]);
    }

    private static void Generate(BpfProgram generator, int veth0, byte[] frame, int frames)
    {
        var ctx = new byte[24]; // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
        BitConverter.TryWriteBytes(ctx.AsSpan(4), frame.Length);
        BitConverter.TryWriteBytes(ctx.AsSpan(12), veth0);
        fixed (byte* data = frame)
        fixed (byte* context = ctx)
        {
            var attr = new ProgTestRunAttr
            {
                DataIn = (ulong)data,
                DataSizeIn = (uint)frame.Length,
                CtxIn = (ulong)context,
                CtxSizeIn = (uint)ctx.Length,
                Repeat = (uint)frames,
                Flags = LiveFrames,
                BatchSize = 64,
            };
            var r = Bpf.Default.TryProgTestRun(generator.Fd, ref attr);
            if (r < 0)
                throw new BpfException($"live-frames test-run: {Errno.Name(-r)}");
        }
    }

    private static int NetInterfaces(string name) => SharpBpf.Linux.Net.NetInterfaces.Resolve(name).Index;

    /// <summary>rx_packets of an interface of this thread's namespace (/proc/thread-self/net/dev follows the thread).</summary>
    private static long RxPackets(string name)
    {
        foreach (var line in File.ReadLines("/proc/thread-self/net/dev"))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() == name)
                return long.Parse(line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        throw new InvalidOperationException($"{name} is not in /proc/thread-self/net/dev");
    }

    private static void EnterNetNs(string path)
    {
        const int CloneNewNet = 0x40000000, ReadOnlyCloseOnExec = 0x80000;
        var fd = Open(path, ReadOnlyCloseOnExec);
        if (fd < 0 || SetNs(fd, CloneNewNet) != 0)
            throw new InvalidOperationException($"enter {path}: errno {Marshal.GetLastPInvokeError()}");
        Close(fd);
    }

    private static void Exec(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromSeconds(20)) || process.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)}: {error.Trim()}");
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNs(int fd, int type);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}

/// <summary>Finds the repository's programs/ from the bench binaries.</summary>
internal static class BenchPaths
{
    public static string Program(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SharpBpf.slnx")))
                return Path.Combine(dir.FullName, "programs", relative);
        }
        throw new InvalidOperationException("cannot find the repository root (SharpBpf.slnx) above " + AppContext.BaseDirectory);
    }
}
