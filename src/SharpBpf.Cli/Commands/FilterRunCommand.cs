using System.CommandLine;
using System.Text.Json;
using SharpBpf.Linux.Filter;
using SharpBpf.Vm;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf filter run --pcap IN [--out OUT] [--engine interpreter|jit|kernel] [--policy allow|deny] [--json]</c>:
/// the filter offline. The filter program runs over a capture with the rules and policy pinned in the filter's
/// folder (copied: the live filter and its counters are not touched), or with no rules where nothing is pinned
/// (no root, a fresh machine). It prints the per-action summary of <c>sharpbpf run</c> and each rule's hits in
/// this run, so the same packets and rules give the same counts in the VM and in the kernel.
/// </summary>
internal static class FilterRunCommand
{
    public static Command Build(Option<string> pinDir)
    {
        var pcap = new Option<FileInfo>("--pcap") { Description = "Input packets (pcap or pcapng, Ethernet)", Required = true };
        var outFile = new Option<FileInfo?>("--out") { Description = "Write the packets that leave (PASS) to this pcap file" };
        var engine = EngineOption.Create();
        var noVerify = EngineOption.CreateNoVerify();
        var jitTier = EngineOption.CreateJitTier();
        var policy = new Option<string?>("--policy") { Description = "allow or deny: override the pinned default policy for this run." };
        policy.AcceptOnlyFromAmong("allow", "deny");
        var json = new Option<bool>("--json") { Description = "Print the summary and the rule hits as JSON" };
        var command = new Command("run", "Run the filter over a pcap/pcapng file in the VM or the kernel, with the pinned rules.")
        {
            pcap, outFile, engine, jitTier, policy, json,
        };
        command.Options.Add(noVerify);
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var selected = parse.GetValue(engine);
            if (!EngineOption.EnsureAvailable(selected, error))
                return CliApp.ExitRefused;
            var input = parse.GetRequiredValue(pcap);
            var folder = new DirectoryInfo(parse.GetValue(pinDir) ?? XdpFilter.DefaultPinDirectory);
            try
            {
                var spec = FilterProgram.LoadSpec();
                SharpBpf.Linux.KernelEngine? kernel = null;
                VmCollection? collection = null;
                try
                {
                    IReadOnlyDictionary<string, MapAccess> maps;
                    if (selected == VmEngine.Kernel)
                    {
                        kernel = ProgramLoading.LoadKernelUnpinned(spec, FilterState.ProgramName);
                        maps = MapStateOptions.Of(kernel);
                    }
                    else
                    {
                        collection = VmCollection.Load(spec, new VmOptions { Engine = selected, Verify = !parse.GetValue(noVerify), JitTiering = parse.GetValue(jitTier) });
                        maps = MapStateOptions.Of(collection);
                    }
                    var rulesFrom = CopyRules(folder, maps, error);
                    var state = new FilterState(name => maps[name].Map);
                    if (parse.GetValue(policy) is { } p)
                        state.Policy = p == "deny" ? FilterPolicy.Deny : FilterPolicy.Allow;
                    var summary = kernel is not null
                        ? RunCommand.RunKernel(kernel, input, parse.GetValue(outFile))
                        : RunCommand.Run(collection!.Program(FilterState.ProgramName), collection, input, parse.GetValue(outFile), null);
                    var rules = state.List();
                    if (parse.GetValue(json))
                    {
                        var report = new
                        {
                            run = summary.ToJson(FilterState.ProgramName, selected.ToName(), parse.GetValue(outFile)?.Name,
                                collection is null ? null : RunCommand.JitTierOf(collection.Program(FilterState.ProgramName))),
                            rulesFrom,
                            policy = FilterView.Name(state.Policy),
                            rules = rules.Select(FilterCommand.RuleReport.From),
                        };
                        output.WriteLine(JsonSerializer.Serialize(report, FilterCommand.JsonOptions));
                    }
                    else
                    {
                        summary.Print(output, FilterState.ProgramName);
                        output.WriteLine($"policy {FilterView.Name(state.Policy)}; rules from {rulesFrom ?? "nowhere (none pinned)"}");
                        var console = FilterView.CreateConsole(output);
                        console.Write(FilterView.RulesTable(rules));
                    }
                    return 0;
                }
                finally
                {
                    kernel?.Dispose();
                    collection?.Dispose();
                }
            }
            catch (Exception e) when (e is BpfException or IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"sharpbpf filter run: {e.Message}");
                return CliApp.ExitRefused;
            }
        });
        return command;
    }

    /// <summary>
    /// Copies the pinned rules and policy (not the counters) into the run's maps; returns the folder, or null when no
    /// filter state is pinned there (then the run has no rules, which stderr says).
    /// </summary>
    private static string? CopyRules(DirectoryInfo folder, IReadOnlyDictionary<string, MapAccess> maps, TextWriter error)
    {
        bool pinned;
        try
        {
            pinned = folder.Exists && File.Exists(Path.Combine(folder.FullName, FilterState.ConfigMap));
        }
        catch (UnauthorizedAccessException)
        {
            pinned = false;
        }
        if (!pinned)
        {
            error.WriteLine($"sharpbpf filter run: no filter state is pinned in {folder.FullName}; running with no rules");
            return null;
        }
        var ruleMaps = maps.Where(m => m.Key is not (FilterState.HitsMap or FilterState.StatsMap))
            .ToDictionary(m => m.Key, m => m.Value, StringComparer.Ordinal);
        MapStateOptions.CopyFromPins(folder, ruleMaps);
        return folder.FullName;
    }
}
