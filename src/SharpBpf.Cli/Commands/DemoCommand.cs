using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using SharpBpf.Linux.Filter;
using SharpBpf.Linux.Links;
using SharpBpf.Pcap;
using SharpBpf.Vm;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf demo</c>: the XDP filter at work. As root: two network namespaces joined by a veth pair, the filter
/// attached in native mode on the receiving end, bounded UDP traffic from the other side, a deny rule added halfway,
/// and the counters shown moving live; everything is removed at the end, also on Ctrl+C or an error. Otherwise (or
/// with --vm): the same filter object in the managed VM over a packet capture the demo writes, with the same table.
/// </summary>
public static partial class DemoCommand
{
    private const string SenderAddress = "10.200.0.1", OtherSenderAddress = "10.200.0.3", ReceiverAddress = "10.200.0.2";
    private const int Prefix = 24;
    private const ushort ServicePort = 9;

    public static Command Build()
    {
        var vm = new Option<bool>("--vm") { Description = "Run the filter in the managed VM over a generated capture, even as root." };
        var seconds = new Option<double>("--seconds") { Description = "How long the traffic runs (kernel demo), 2..60.", DefaultValueFactory = _ => 8 };
        var rate = new Option<int>("--rate") { Description = "Packets per second from each of the two senders, 1..100000.", DefaultValueFactory = _ => 2000 };
        var packets = new Option<int>("--packets") { Description = "Packets in the generated capture (VM demo), 2..1000000.", DefaultValueFactory = _ => 20000 };
        var keep = new Option<string?>("--pcap") { Description = "Keep the generated capture at this path (VM demo)." };
        var command = new Command("demo", "Show the XDP filter at work: in the kernel on a veth pair as root, else in the managed VM.")
        {
            vm, seconds, rate, packets, keep,
        };
        command.SetAction(async (parse, cancel) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var duration = parse.GetValue(seconds);
            var pps = parse.GetValue(rate);
            var count = parse.GetValue(packets);
            if (duration is < 2 or > 60 || pps is < 1 or > 100_000 || count is < 2 or > 1_000_000)
            {
                await error.WriteLineAsync("sharpbpf demo: --seconds must be 2..60, --rate 1..100000, --packets 2..1000000");
                return CliApp.ExitUsage;
            }
            var console = FilterView.CreateConsole(output);
            try
            {
                if (!parse.GetValue(vm) && KernelDemoUnavailable() is { } reason)
                    console.MarkupLine($"[yellow]{Markup.Escape(reason)}: running the filter in the managed VM instead.[/]");
                else if (!parse.GetValue(vm))
                    return await RunKernel(console, TimeSpan.FromSeconds(duration), pps, cancel);
                return await RunVm(console, count, parse.GetValue(keep), cancel);
            }
            catch (BpfException e)
            {
                await error.WriteLineAsync($"sharpbpf demo: {e.Message}");
                return CliApp.ExitRefused;
            }
        });
        return command;
    }

    /// <summary>Why the kernel demo cannot run here, or null when it can.</summary>
    private static string? KernelDemoUnavailable()
    {
        if (!OperatingSystem.IsLinux())
            return "not Linux";
        if (!Environment.IsPrivilegedProcess)
            return "not root (the kernel demo makes network namespaces and loads BPF)";
        if (FindOnPath("ip") is null)
            return "iproute2's 'ip' is not installed (apt-get install iproute2)";
        return null;
    }

    // ---- the kernel demo ----------------------------------------------------------------------------------------

    private static async Task<int> RunKernel(IAnsiConsole console, TimeSpan duration, int rate, CancellationToken cancel)
    {
        var id = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var sender = $"sharpbpf-demo-{id}-tx";
        var receiver = $"sharpbpf-demo-{id}-rx";
        const string senderLink = "demo-tx", receiverLink = "demo-rx";
        var cleanup = new Stack<(string What, Action Undo)>();
        var pinRoot = Path.Combine(Path.GetTempPath(), $"sharpbpf-demo-{id}");
        try
        {
            console.MarkupLine("[bold]sharpbpf demo[/]: the XDP filter in the kernel, on a veth pair between two network namespaces");
            Ip("netns", "add", sender);
            cleanup.Push(($"network namespace {sender}", () => Ip("netns", "del", sender)));
            Ip("netns", "add", receiver);
            cleanup.Push(($"network namespace {receiver}", () => Ip("netns", "del", receiver)));
            Ip("link", "add", senderLink, "netns", sender, "type", "veth", "peer", "name", receiverLink, "netns", receiver);
            Ip("-n", sender, "addr", "add", $"{SenderAddress}/{Prefix}", "dev", senderLink);
            Ip("-n", sender, "addr", "add", $"{OtherSenderAddress}/{Prefix}", "dev", senderLink);
            Ip("-n", receiver, "addr", "add", $"{ReceiverAddress}/{Prefix}", "dev", receiverLink);
            foreach (var (ns, link) in new[] { (sender, senderLink), (receiver, receiverLink) })
            {
                Ip("-n", ns, "link", "set", "lo", "up");
                Ip("-n", ns, "link", "set", link, "up");
            }
            console.MarkupLine($"  namespaces [blue]{sender}[/] ({SenderAddress}, {OtherSenderAddress}) and [blue]{receiver}[/] ({ReceiverAddress}), veth {senderLink} <-> {receiverLink}");

            // A private bpffs for the demo's pins, so it never touches the filter the machine may have pinned.
            Directory.CreateDirectory(pinRoot);
            Run("mount", "-t", "bpf", "bpf", pinRoot);
            cleanup.Push(($"bpffs {pinRoot}", () =>
            {
                Run("umount", pinRoot);
                Directory.Delete(pinRoot);
            }));

            using var receiverThread = new NetNsThread($"/var/run/netns/{receiver}");
            using var filter = XdpFilter.Open(Path.Combine(pinRoot, "filter"));
            filter.Policy = FilterPolicy.Allow;
            var attachment = receiverThread.Run(() => filter.Attach(receiverLink, XdpAttachMode.Native));
            // On an error or Ctrl+C, unmounting the bpffs drops the link's pin, which detaches the filter, and deleting the
            // namespaces removes the veths; on the normal path the filter is detached explicitly below.
            console.MarkupLine($"  filter attached to {receiverLink} in [green]{XdpModeNames.Describe(attachment.Mode)}[/] mode (program id {attachment.ProgramId}), policy allow");

            // Two flows, rate packets/s each: 10.200.0.1 -> :9 and 10.200.0.3 -> :9. Halfway, a rule denies the second.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            stop.CancelAfter(duration + TimeSpan.FromSeconds(1));
            var rule = FilterRule.Ip(OtherSenderAddress, FilterDirection.Source);
            var senderPath = $"/var/run/netns/{sender}";
            var traffic = Task.WhenAll(
                NetNsThread.RunOnce(senderPath, () => SendUdp(SenderAddress, rate, duration, stop.Token)),
                NetNsThread.RunOnce(senderPath, () => SendUdp(OtherSenderAddress, rate, duration, stop.Token)));
            console.MarkupLine($"  sending UDP to {ReceiverAddress}:{ServicePort} from both senders, {rate} packets/s each, for {duration.TotalSeconds:0} s; " +
                $"after {duration.TotalSeconds / 2:0} s: [red]filter add ip {OtherSenderAddress} --src[/]");

            var started = Stopwatch.StartNew();
            var added = false;
            var previous = filter.ReadStatistics();
            await ShowLive(console, FilterView.StatsView(previous, null, filter.ListRules(), filter.Policy), async show =>
            {
                while (!traffic.IsCompleted)
                {
                    await Task.WhenAny(traffic, Task.Delay(500, CancellationToken.None));
                    if (!added && started.Elapsed >= duration / 2)
                    {
                        filter.Add(rule);
                        added = true;
                    }
                    var now = filter.ReadStatistics();
                    show(FilterView.StatsView(now, previous, filter.ListRules(), filter.Policy));
                    previous = now;
                }
            });
            var sent = await traffic;
            if (cancel.IsCancellationRequested)
                console.MarkupLine("[yellow]interrupted[/]");
            var final = filter.ReadStatistics();
            var hits = filter.ListRules().FirstOrDefault()?.Packets ?? 0;
            console.MarkupLine($"  sent {sent[0]:N0} + {sent[1]:N0} packets; the filter passed {final.Passed.Packets:N0} and dropped " +
                $"[red]{final.Dropped.Packets:N0}[/]; the deny rule matched {hits:N0}");
            receiverThread.Run(() => filter.Detach(receiverLink));
            console.MarkupLine($"  filter detached from {receiverLink}");
            return 0;
        }
        finally
        {
            Cleanup(console, cleanup);
        }
    }

    private static void Cleanup(IAnsiConsole console, Stack<(string What, Action Undo)> cleanup)
    {
        var removed = new List<string>();
        while (cleanup.TryPop(out var step))
        {
            try
            {
                step.Undo();
                removed.Add(step.What);
            }
            catch (Exception e) when (e is BpfException or IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                console.MarkupLine($"[red]cleanup: {Markup.Escape(step.What)}: {Markup.Escape(e.Message)}[/]");
            }
        }
        if (removed.Count > 0)
            console.MarkupLine($"  removed: {Markup.Escape(string.Join(", ", removed))}");
    }

    /// <summary>Sends UDP datagrams from <paramref name="source"/> at a steady rate, bounded by count and time.</summary>
    private static int SendUdp(string source, int rate, TimeSpan duration, CancellationToken cancel)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        var target = new IPEndPoint(IPAddress.Parse(ReceiverAddress), ServicePort);
        var payload = new byte[64];
        var total = (long)(rate * duration.TotalSeconds);
        var clock = Stopwatch.StartNew();
        var sent = 0;
        while (sent < total && clock.Elapsed < duration && !cancel.IsCancellationRequested)
        {
            // Pace by the clock: send what is due, then sleep a little.
            var due = Math.Min(total, (long)(clock.Elapsed.TotalSeconds * rate) + 1);
            for (; sent < due; sent++)
            {
                try
                {
                    socket.SendTo(payload, target);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.NoBufferSpaceAvailable or SocketError.ConnectionRefused or SocketError.HostUnreachable)
                {
                    // A full queue or an ICMP error from the receiver: the packet still counts as offered.
                }
            }
            Thread.Sleep(5);
        }
        return sent;
    }

    // ---- the managed VM demo ------------------------------------------------------------------------------------

    private static async Task<int> RunVm(IAnsiConsole console, int count, string? keepPcap, CancellationToken cancel)
    {
        console.MarkupLine("[bold]sharpbpf demo[/]: the XDP filter in the managed VM over a generated packet capture");
        var pcap = keepPcap ?? Path.Combine(Path.GetTempPath(), $"sharpbpf-demo-{Environment.ProcessId}.pcap");
        try
        {
            WriteCapture(pcap, count);
            console.MarkupLine($"  wrote {count:N0} packets to {Markup.Escape(pcap)}: UDP from {SenderAddress} and {OtherSenderAddress} to {ReceiverAddress}:{ServicePort}");

            using var collection = VmCollection.Load(XdpFilter.LoadSpec());
            var program = collection.Program(FilterState.ProgramName);
            var state = new FilterState(name => new ManagedFilterMap(collection.Map(name)));
            var rule = FilterRule.Ip(OtherSenderAddress, FilterDirection.Source);
            console.MarkupLine($"  filter loaded in the VM ({program.InstructionCount} instructions), policy allow; " +
                $"halfway through the capture: [red]filter add ip {OtherSenderAddress} --src[/]");

            using var reader = PcapReader.Open(pcap);
            var previous = state.ReadStatistics();
            var index = 0;
            var chunk = Math.Max(1, count / 20);
            await ShowLive(console, FilterView.StatsView(previous, null, state.List(), state.Policy), async show =>
            {
                foreach (var packet in reader)
                {
                    if (cancel.IsCancellationRequested)
                        break;
                    if (index == count / 2)
                        state.Add(rule);
                    program.TestRun(new Xdp.TestRunOptions { Data = packet.Data });
                    if (++index % chunk == 0)
                    {
                        // Pause a moment so the table can be watched moving, as in the kernel demo.
                        await Task.Delay(100, CancellationToken.None);
                        var now = state.ReadStatistics();
                        show(FilterView.StatsView(now, previous, state.List(), state.Policy));
                        previous = now;
                    }
                }
                show(FilterView.StatsView(state.ReadStatistics(), null, state.List(), state.Policy));
            });
            var final = state.ReadStatistics();
            console.MarkupLine($"  ran {index:N0} packets: passed {final.Passed.Packets:N0}, dropped [red]{final.Dropped.Packets:N0}[/]");
            return 0;
        }
        finally
        {
            if (keepPcap is null)
                File.Delete(pcap);
        }
    }

    /// <summary>Alternating UDP datagrams from the two senders, one millisecond apart.</summary>
    internal static void WriteCapture(string path, int count)
    {
        using var writer = PcapWriter.Create(path);
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds() * 1_000_000L;
        var flows = new[]
        {
            FramePacket.Udp(SenderAddress, ReceiverAddress, 40000, ServicePort).Build(),
            FramePacket.Udp(OtherSenderAddress, ReceiverAddress, 40001, ServicePort).Build(),
        };
        for (var i = 0; i < count; i++)
            writer.Write(flows[i % 2], start + i * 1_000_000L);
    }

    // ---- plumbing -----------------------------------------------------------------------------------------------

    /// <summary>
    /// Runs <paramref name="body"/>, which shows tables as it goes: redrawn in place on a terminal, and only the last
    /// one when the output is a file or a pipe (where a live display would print every frame).
    /// </summary>
    private static async Task ShowLive(IAnsiConsole console, Spectre.Console.Rendering.IRenderable first,
        Func<Action<Spectre.Console.Rendering.IRenderable>, Task> body)
    {
        if (console.Profile.Capabilities.Interactive)
        {
            await console.Live(first).StartAsync(async live => await body(view =>
            {
                live.UpdateTarget(view);
                live.Refresh();
            }));
            return;
        }
        var last = first;
        await body(view => last = view);
        console.Write(last);
    }

    private static void Ip(params string[] args) => Run("ip", args);

    private static void Run(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        using var process = Process.Start(info) ?? throw new BpfException($"cannot start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(20)))
        {
            process.Kill();
            throw new BpfException($"{program} {string.Join(' ', args)} did not finish in 20 s");
        }
        if (process.ExitCode != 0)
            throw new BpfException($"{program} {string.Join(' ', args)}: {(stderr.Result + stdout.Result).Trim()}");
    }

    private static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    /// <summary>
    /// A thread that has entered another network namespace (setns on /var/run/netns/NAME): sockets it opens and
    /// interfaces it names are that namespace's, while the rest of the process stays where it is.
    /// </summary>
    private sealed partial class NetNsThread : IDisposable
    {
        private readonly System.Collections.Concurrent.BlockingCollection<Action> work = new();
        private readonly Thread thread;

        public NetNsThread(string path)
        {
            var entered = new TaskCompletionSource();
            thread = new Thread(() =>
            {
                try
                {
                    Enter(path);
                    entered.SetResult();
                }
                catch (Exception e)
                {
                    entered.SetException(e);
                    return;
                }
                foreach (var item in work.GetConsumingEnumerable())
                    item();
            }) { IsBackground = true, Name = "netns " + path };
            thread.Start();
            entered.Task.GetAwaiter().GetResult();
        }

        public T Run<T>(Func<T> func)
        {
            T result = default!;
            ExceptionDispatchInfo? error = null;
            using var done = new ManualResetEventSlim();
            work.Add(() =>
            {
                try { result = func(); }
                catch (Exception e) { error = ExceptionDispatchInfo.Capture(e); }
                finally { done.Set(); }
            });
            done.Wait();
            error?.Throw();
            return result;
        }

        /// <summary>Runs <paramref name="func"/> on a new thread inside the namespace.</summary>
        public static Task<T> RunOnce<T>(string path, Func<T> func)
        {
            var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
            new Thread(() =>
            {
                try
                {
                    Enter(path);
                    result.SetResult(func());
                }
                catch (Exception e)
                {
                    result.SetException(e);
                }
            }) { IsBackground = true, Name = "netns sender" }.Start();
            return result.Task;
        }

        public void Dispose()
        {
            work.CompleteAdding();
            thread.Join(TimeSpan.FromSeconds(10));
            work.Dispose();
        }

        private static void Enter(string path)
        {
            const int CloneNewNet = 0x40000000, ReadOnlyCloseOnExec = 0x80000;
            var fd = Open(path, ReadOnlyCloseOnExec);
            if (fd < 0)
                throw new BpfException($"open {path}: errno {Marshal.GetLastPInvokeError()}");
            try
            {
                if (SetNs(fd, CloneNewNet) != 0)
                    throw new BpfException($"setns {path}: errno {Marshal.GetLastPInvokeError()}");
            }
            finally
            {
                Close(fd);
            }
        }

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
        private static partial int SetNs(int fd, int type);

        [LibraryImport("libc", EntryPoint = "close")]
        private static partial int Close(int fd);
    }
}
