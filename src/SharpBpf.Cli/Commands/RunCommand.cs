using System.Buffers.Binary;
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using SharpBpf.Pcap;
using SharpBpf.Vm;
using SharpBpf.Xdp;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf run FILE.o [--program NAME] --pcap IN [--out OUT.pcap] [--engine E] [--jit-tier T] [--json]</c>: runs an XDP program
/// over every packet of a pcap or pcapng file, writes the packets that leave (PASS and TX, as the program left
/// them) to OUT, and prints a per-action summary and the trace_printk lines.
/// </summary>
public static class RunCommand
{
    /// <summary>Files at least this big get a progress bar on an interactive terminal.</summary>
    private const long ProgressThreshold = 4 << 20;

    public static Command Build()
    {
        var file = new Argument<FileInfo>("file") { Description = "A BPF ELF object built by clang (-target bpf)." };
        var program = new Option<string?>("--program") { Description = "The program to run (default: the object's only XDP program)" };
        var pcap = new Option<FileInfo>("--pcap") { Description = "Input packets (pcap or pcapng, Ethernet)", Required = true };
        var outFile = new Option<FileInfo?>("--out") { Description = "Write the packets that leave (PASS and TX) to this pcap file" };
        var engine = EngineOption.Create();
        var noVerify = EngineOption.CreateNoVerify();
        var jitTier = EngineOption.CreateJitTier();
        var json = new Option<bool>("--json") { Description = "Print the summary as JSON" };
        var command = new Command("run", "Run an XDP program over the packets of a pcap/pcapng file")
        {
            file, program, pcap, outFile, engine, jitTier, json,
        };
        command.Options.Add(noVerify);
        var mapState = new MapStateOptions();
        mapState.AddTo(command);
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var selected = parse.GetValue(engine);
            if (!EngineOption.EnsureAvailable(selected, error))
                return CliApp.ExitRefused;
            if (selected == VmEngine.Kernel)
                return RunInKernel(parse.GetRequiredValue(file).FullName, parse.GetValue(program), parse.GetRequiredValue(pcap),
                    parse.GetValue(outFile), parse.GetValue(json), output, error, spec => mapState.Prepare(parse, spec),
                    maps => mapState.Apply(parse, maps), maps => mapState.Save(parse, maps));
            var loaded = ProgramLoading.Load("run", parse.GetRequiredValue(file).FullName, parse.GetValue(program), selected, error,
                spec => mapState.Prepare(parse, spec), verify: !parse.GetValue(noVerify), tiering: parse.GetValue(jitTier));
            if (loaded is not { } l)
                return CliApp.ExitRefused;
            using var collection = l.Collection;
            bool asJson = parse.GetValue(json);
            var input = parse.GetRequiredValue(pcap);
            try
            {
                var maps = MapStateOptions.Of(collection);
                mapState.Apply(parse, maps);
                var summary = Run(l.Program, collection, input, parse.GetValue(outFile), asJson ? null : output);
                mapState.Save(parse, maps);
                if (asJson)
                    output.WriteLine(JsonSerializer.Serialize(summary.ToJson(l.Program.Name, selected.ToName(), parse.GetValue(outFile)?.Name, JitTierOf(l.Program)), new JsonSerializerOptions { WriteIndented = true }));
                else
                    summary.Print(output, l.Program.Name);
                return 0;
            }
            catch (Exception e) when (e is BpfException or IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"sharpbpf run: {input.Name}: {e.Message}");
                return CliApp.ExitRefused;
            }
        });
        return command;
    }

    /// <summary>The code the jit engine runs <paramref name="program"/> with now, or null on the other engines.</summary>
    internal static string? JitTierOf(VmProgram program) => program.Engine == VmEngine.Jit ? program.JitTierName : null;

    /// <summary>
    /// --engine kernel: each packet goes through BPF_PROG_TEST_RUN once. The kernel reports verdicts and output
    /// packets, not redirect targets or trace lines; its time is the kernel's own per-run figure.
    /// </summary>
    private static int RunInKernel(string path, string? programName, FileInfo input, FileInfo? outFile, bool asJson, TextWriter output, TextWriter error,
        Action<SharpBpf.Objects.CollectionSpec> prepare, Action<IReadOnlyDictionary<string, MapAccess>> before, Action<IReadOnlyDictionary<string, MapAccess>> after)
    {
        using var kernel = ProgramLoading.LoadKernel("run", path, programName, error, prepare);
        if (kernel is null)
            return CliApp.ExitRefused;
        Summary summary;
        try
        {
            var maps = MapStateOptions.Of(kernel);
            before(maps);
            summary = RunKernel(kernel, input, outFile);
            after(maps);
        }
        catch (Exception e) when (e is BpfException or IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"sharpbpf run: {input.Name}: {e.Message}");
            return CliApp.ExitRefused;
        }
        if (asJson)
            output.WriteLine(JsonSerializer.Serialize(summary.ToJson(kernel.Name, VmEngine.Kernel.ToName(), outFile?.Name), new JsonSerializerOptions { WriteIndented = true }));
        else
            summary.Print(output, kernel.Name);
        return 0;
    }

    /// <summary>sizeof(struct xdp_md): data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.</summary>
    private const int XdpMdSize = 24;

    /// <summary>The shortest frame BPF_PROG_TEST_RUN takes for an XDP program: an Ethernet header.</summary>
    internal const int KernelMinimumFrame = 14;

    /// <summary>Every packet of <paramref name="input"/> through BPF_PROG_TEST_RUN once.</summary>
    internal static Summary RunKernel(SharpBpf.Linux.KernelEngine kernel, FileInfo input, FileInfo? outFile)
    {
        var summary = new Summary();
        using var stream = File.OpenRead(input.FullName);
        using var reader = new PcapReader(stream, leaveOpen: true);
        using var writer = outFile is null ? null : PcapWriter.Create(outFile.FullName, LinkType.Ethernet, reader.SnapLength > 0 ? reader.SnapLength : 262144);
        foreach (var packet in reader)
        {
            if (packet.LinkType != LinkType.Ethernet)
                throw new BpfException($"packet {packet.Index}: link type {packet.LinkType} is not Ethernet; XDP programs see Ethernet frames");
            if (packet.Data.Length < KernelMinimumFrame)
            {
                // BPF_PROG_TEST_RUN refuses XDP frames shorter than an Ethernet header (EINVAL); no driver delivers one.
                summary.Skipped++;
                continue;
            }
            TestRunResult result;
            try
            {
                // A struct xdp_md in and out: ctx_out.data is then the metadata length, as the kernel returns
                // data_out from data_meta; the packet that leaves (and goes to --out) is the packet alone.
                var context = new byte[XdpMdSize];
                BinaryPrimitives.WriteUInt32LittleEndian(context.AsSpan(4), (uint)packet.Data.Length); // data_end
                result = kernel.TestRun(new TestRunOptions { Data = packet.Data, Context = context });
            }
            catch (BpfException e)
            {
                throw new BpfException($"packet {packet.Index} ({packet.Data.Length} bytes): {e.Message}");
            }
            summary.Packets++;
            summary.AddTime(result.NanosecondsPerRun);
            var name = TestRunCommand.ActionName(result.Action);
            summary.Actions[name] = summary.Actions.GetValueOrDefault(name) + 1;
            if (writer is not null && result.Action is XdpAction.Pass or XdpAction.Tx)
            {
                var metadataLength = result.ContextOut is { Length: >= 4 } contextOut ? (int)BinaryPrimitives.ReadUInt32LittleEndian(contextOut) : 0;
                writer.Write(metadataLength > 0 && metadataLength <= result.DataOut.Length ? result.DataOut[metadataLength..] : result.DataOut,
                    packet.TimestampNanoseconds);
                summary.Written++;
            }
        }
        summary.NanosecondsPerPacket = summary.MedianTime();
        return summary;
    }

    internal sealed class Summary
    {
        public long Packets;
        public long Written;
        public long Skipped;
        public readonly SortedDictionary<string, long> Actions = new(StringComparer.Ordinal);
        public readonly Dictionary<XdpRedirect, long> Redirects = [];
        public long Traps;
        public readonly List<string> FirstTraps = [];
        public readonly List<string> Trace = [];
        /// <summary>The median time of one run: robust to the first runs, which include .NET's compilation.</summary>
        public double NanosecondsPerPacket;

        private readonly List<double> _times = [];

        /// <summary>Keeps a run's time (the first 4M runs: enough for a median).</summary>
        public void AddTime(double nanoseconds)
        {
            if (_times.Count < 1 << 22)
                _times.Add(nanoseconds);
        }

        public double MedianTime()
        {
            if (_times.Count == 0)
                return 0;
            _times.Sort();
            return _times[_times.Count / 2];
        }

        public object ToJson(string program, string engine, string? outName, string? jitTier = null) => new
        {
            program,
            engine,
            packets = Packets,
            actions = Actions,
            redirects = Redirects.Select(r => new { kind = r.Key.Kind.ToString().ToLowerInvariant(), index = r.Key.Index, map = r.Key.MapName, count = r.Value }),
            traps = Traps,
            first_traps = FirstTraps,
            trace = Trace,
            @out = outName,
            written = Written,
            skipped = Skipped,
            ns_per_packet = Math.Round(NanosecondsPerPacket, 1),
            jit_tier = jitTier,
        };

        public void Print(TextWriter output, string program)
        {
            output.WriteLine($"{Packets} packets through '{program}' ({NanosecondsPerPacket:F0} ns per packet, median)");
            foreach (var (action, count) in Actions)
                output.WriteLine($"  {action,-13} {count}");
            foreach (var (target, count) in Redirects)
                output.WriteLine($"  redirect to {target.Kind.ToString().ToLowerInvariant()} {target.Index}{(target.MapName is null ? "" : $" (map '{target.MapName}')")}: {count}");
            if (Traps > 0)
            {
                output.WriteLine($"  {Traps} run(s) trapped (XDP_ABORTED), first:");
                foreach (var trap in FirstTraps)
                    output.WriteLine($"    {trap}");
            }
            if (Written > 0)
                output.WriteLine($"  {Written} packets written");
            if (Skipped > 0)
                output.WriteLine($"  {Skipped} packets skipped: shorter than {KernelMinimumFrame} bytes, which the kernel's test-run refuses");
        }
    }

    internal static Summary Run(VmProgram program, VmCollection collection, FileInfo input, FileInfo? outFile, TextWriter? liveTrace)
    {
        var summary = new Summary();
        using var stream = File.OpenRead(input.FullName);
        using var reader = new PcapReader(stream, leaveOpen: true);
        using var writer = outFile is null ? null : PcapWriter.Create(outFile.FullName, LinkType.Ethernet, reader.SnapLength > 0 ? reader.SnapLength : 262144);
        using var execution = new VmExecution();
        using var context = new XdpContext { IngressIfindex = XdpContext.LoopbackIfindex }; // as the kernel's test-run
        execution.TraceSink = line =>
        {
            summary.Trace.Add(line);
            liveTrace?.WriteLine($"trace: {line}");
        };

        void Process(PcapPacket packet)
        {
            if (packet.LinkType != LinkType.Ethernet)
                throw new BpfException($"packet {packet.Index}: link type {packet.LinkType} is not Ethernet; XDP programs see Ethernet frames");
            context.SetPacket(packet.Data);
            long start = Stopwatch.GetTimestamp();
            var action = program.RunXdp(execution, context, out var trap);
            summary.AddTime(Stopwatch.GetElapsedTime(start).TotalNanoseconds);
            summary.Packets++;
            var name = TestRunCommand.ActionName(action);
            summary.Actions[name] = summary.Actions.GetValueOrDefault(name) + 1;
            if (trap is not null)
            {
                summary.Traps++;
                if (summary.FirstTraps.Count < 5)
                    summary.FirstTraps.Add($"packet {packet.Index}: {trap.Message}");
            }
            if (action == XdpAction.Redirect && execution.Redirect is { } target)
                summary.Redirects[target] = summary.Redirects.GetValueOrDefault(target) + 1;
            if (writer is not null && action is XdpAction.Pass or XdpAction.Tx)
            {
                writer.Write(context.Packet, packet.TimestampNanoseconds);
                summary.Written++;
            }
            if ((summary.Packets & 4095) == 0)
                collection.ReclaimMaps();
        }

        bool progress = liveTrace is not null && !Console.IsOutputRedirected && input.Length >= ProgressThreshold;
        if (progress)
        {
            AnsiConsole.Progress().Start(ctx =>
            {
                var task = ctx.AddTask($"running {input.Name}", maxValue: input.Length);
                foreach (var packet in reader)
                {
                    Process(packet);
                    if ((summary.Packets & 1023) == 0)
                        task.Value = stream.Position;
                }
                task.Value = input.Length;
            });
        }
        else
        {
            foreach (var packet in reader)
                Process(packet);
        }
        summary.NanosecondsPerPacket = summary.MedianTime();
        return summary;
    }
}
