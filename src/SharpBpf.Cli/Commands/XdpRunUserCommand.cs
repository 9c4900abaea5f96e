using System.CommandLine;
using System.Text.Json;
using SharpBpf.Linux.AfXdp;
using SharpBpf.Vm;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf xdp run-user IFACE FILE.o</c>: the queue's frames go to an AF_XDP socket (by the default redirect
/// program) and an XDP program of FILE.o runs on each in the managed VM. Counters per verdict, live on a terminal
/// or once at the end with <c>--json</c>.
/// </summary>
public static class XdpRunUserCommand
{
    public static Command Build()
    {
        var iface = new Argument<string>("IFACE") { Description = "interface name (or ifindex)" };
        var file = new Argument<FileInfo>("FILE.o") { Description = "BPF object file (clang -target bpf)" };
        var program = new Option<string?>("--program") { Description = "the XDP program to run, when the object has several" };
        var engine = EngineOption.Create();
        var noVerify = EngineOption.CreateNoVerify();
        var jitTier = EngineOption.CreateJitTier();
        var queue = new Option<uint>("--queue") { Description = "receive queue to take frames from (default 0)" };
        var count = new Option<long>("--count") { Description = "stop after this many frames (default: no limit)" };
        var duration = new Option<double?>("--duration") { Description = "stop after this many seconds (default: Ctrl+C)" };
        var json = new Option<bool>("--json") { Description = "print the final counters as JSON" };
        var command = new Command("run-user", "run an XDP program of FILE.o in the managed VM on IFACE's live frames (AF_XDP)")
        {
            iface, file, program, engine, jitTier, queue, count, duration, json,
        };
        command.Options.Add(noVerify);
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var chosenEngine = parse.GetValue(engine);
            if (!EngineOption.EnsureAvailable(chosenEngine, error, vmOnly: true))
                return CliApp.ExitRefused;
            var seconds = parse.GetValue(duration);
            if (seconds is <= 0 || parse.GetValue(count) < 0)
            {
                error.WriteLine("sharpbpf xdp run-user: --count and --duration must be positive");
                return CliApp.ExitUsage;
            }
            return KernelCli.Run("xdp run-user", error, () =>
            {
                var target = Linux.Net.NetInterfaces.Resolve(parse.GetValue(iface)!);
                if (ProgramLoading.Load("xdp run-user", parse.GetValue(file)!.FullName, parse.GetValue(program), chosenEngine, error, verify: !parse.GetValue(noVerify), tiering: parse.GetValue(jitTier)) is not { } loaded)
                    return CliApp.ExitRefused;
                using var collection = loaded.Collection;
                using var cancel = new CancellationTokenSource();
                ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
                Console.CancelKeyPress += onCancel;
                try
                {
                    var traps = new List<string>();
                    var options = new UserXdpOptions
                    {
                        QueueId = parse.GetValue(queue),
                        Count = parse.GetValue(count),
                        Duration = seconds is { } s ? TimeSpan.FromSeconds(s) : null,
                        Trace = m => { lock (traps) if (traps.Count < 10) traps.Add(m); },
                    };
                    var counters = new UserXdpCounters();
                    var started = DateTime.UtcNow;
                    bool live = !parse.GetValue(json) && output == Console.Out && !Console.IsOutputRedirected;
                    if (live)
                    {
                        var console = KernelCli.Console(output);
                        var run = Task.Run(() => UserXdpDatapath.Run(target.Index, loaded.Program, options, counters, cancel.Token));
                        console.Live(Table(counters, target.Name, loaded.Program.Name)).Start(ctx =>
                        {
                            while (!run.Wait(250))
                                ctx.UpdateTarget(Table(counters, target.Name, loaded.Program.Name));
                            ctx.UpdateTarget(Table(counters, target.Name, loaded.Program.Name));
                        });
                        run.GetAwaiter().GetResult();
                    }
                    else
                    {
                        UserXdpDatapath.Run(target.Index, loaded.Program, options, counters, cancel.Token);
                    }
                    var elapsed = (DateTime.UtcNow - started).TotalSeconds;
                    if (parse.GetValue(json))
                    {
                        output.WriteLine(JsonSerializer.Serialize(new
                        {
                            @interface = target.Name,
                            queue = options.QueueId,
                            program = loaded.Program.Name,
                            engine = chosenEngine.ToName(),
                            seconds = Math.Round(elapsed, 3),
                            received = counters.Received,
                            actions = new { aborted = counters.Aborted, drop = counters.Drop, pass = counters.Pass, tx = counters.Tx, redirect = counters.Redirect },
                            passFailed = counters.PassFailed,
                            redirectFailed = counters.RedirectFailed,
                            txFailed = counters.TxFailed,
                            traps,
                            jitTier = RunCommand.JitTierOf(loaded.Program),
                        }, KernelCli.JsonOptions));
                    }
                    else if (!live)
                    {
                        KernelCli.Console(output).Write(Table(counters, target.Name, loaded.Program.Name));
                    }
                    foreach (var trap in traps)
                        error.WriteLine($"sharpbpf xdp run-user: ABORTED: {trap}");
                    return 0;
                }
                finally
                {
                    Console.CancelKeyPress -= onCancel;
                }
            });
        });
        return command;
    }

    private static Table Table(UserXdpCounters c, string iface, string program)
    {
        var table = new Table().Title($"{Markup.Escape(program)} on {Markup.Escape(iface)} (user space)");
        table.AddColumn("verdict");
        table.AddColumn(new TableColumn("frames").RightAligned());
        table.AddRow("received", c.Received.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (name, value) in new[] { ("XDP_ABORTED", c.Aborted), ("XDP_DROP", c.Drop), ("XDP_PASS", c.Pass), ("XDP_TX", c.Tx), ("XDP_REDIRECT", c.Redirect), ("pass refused", c.PassFailed), ("redirect failed", c.RedirectFailed), ("tx failed", c.TxFailed) })
            table.AddRow(name, value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return table;
    }
}
