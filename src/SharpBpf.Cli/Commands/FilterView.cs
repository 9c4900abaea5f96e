using System.Globalization;
using SharpBpf.Linux.Filter;
using SharpBpf.Xdp;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace SharpBpf.Cli.Commands;

/// <summary>The tables of <c>sharpbpf filter</c> and <c>sharpbpf demo</c>: counters and rates per action, rules with hits.</summary>
internal static class FilterView
{
    /// <summary>Shows the counters and rates, refreshed in place, until cancelled. Also used by the demo.</summary>
    public static async Task WatchLive(FilterState state, IAnsiConsole console, TimeSpan period, CancellationToken cancel)
    {
        var previous = state.ReadStatistics();
        await console.Live(StatsView(previous, null, state.List(), state.Policy)).StartAsync(async live =>
        {
            while (!cancel.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(period, cancel);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                var now = state.ReadStatistics();
                live.UpdateTarget(StatsView(now, previous, state.List(), state.Policy));
                live.Refresh();
                previous = now;
            }
        });
    }

    /// <summary>The per-action table (with rates when a previous sample is given) above the rules table.</summary>
    public static IRenderable StatsView(FilterStatistics now, FilterStatistics? previous, IReadOnlyList<FilterRuleStatus> rules, FilterPolicy policy)
    {
        var actions = new Table().Title($"Filter counters (policy {Name(policy)})");
        foreach (var column in new[] { "Action", "Packets", "Bytes", "Packets/s", "Bits/s" })
            actions.AddColumn(new TableColumn(column) { Alignment = column == "Action" ? Justify.Left : Justify.Right });
        foreach (var (action, counter) in now.Actions.OrderBy(a => a.Key))
        {
            if (action is XdpAction.Tx or XdpAction.Redirect && counter.Packets == 0)
                continue; // the filter never returns these; keep the table to what it does
            var rate = Rate(now, previous, action);
            actions.AddRow(FilterMetrics.ActionName(action), counter.Packets.ToString("N0", CultureInfo.InvariantCulture),
                counter.Bytes.ToString("N0", CultureInfo.InvariantCulture),
                rate is null ? "-" : rate.Value.PacketsPerSecond.ToString("N0", CultureInfo.InvariantCulture),
                rate is null ? "-" : FormatBits(rate.Value.BitsPerSecond));
        }
        return new Rows(actions, RulesTable(rules));
    }

    public static Table RulesTable(IReadOnlyList<FilterRuleStatus> rules)
    {
        var table = new Table().Title("Rules");
        foreach (var column in new[] { "Id", "Rule", "Packets", "Bytes" })
            table.AddColumn(new TableColumn(column) { Alignment = column == "Rule" ? Justify.Left : Justify.Right });
        foreach (var rule in rules)
        {
            table.AddRow(rule.Id.ToString(CultureInfo.InvariantCulture), Markup.Escape(rule.Rule.ToString()),
                rule.Packets.ToString("N0", CultureInfo.InvariantCulture), rule.Bytes.ToString("N0", CultureInfo.InvariantCulture));
        }
        if (rules.Count == 0)
            table.AddRow("-", "(no rules)", "-", "-");
        return table;
    }

    public static (double PacketsPerSecond, double BitsPerSecond)? Rate(FilterStatistics now, FilterStatistics? previous, XdpAction action)
    {
        if (previous is null)
            return null;
        var seconds = (now.Time - previous.Time).TotalSeconds;
        if (seconds <= 0)
            return null;
        var a = now.Actions.GetValueOrDefault(action);
        var b = previous.Actions.GetValueOrDefault(action);
        // A counter that went down was reset meanwhile: report no rate rather than a huge one.
        if (a.Packets < b.Packets || a.Bytes < b.Bytes)
            return null;
        return ((a.Packets - b.Packets) / seconds, (a.Bytes - b.Bytes) * 8 / seconds);
    }

    private static string FormatBits(double bits) => bits switch
    {
        >= 1e9 => $"{bits / 1e9:0.00} G",
        >= 1e6 => $"{bits / 1e6:0.00} M",
        >= 1e3 => $"{bits / 1e3:0.00} k",
        _ => bits.ToString("0", CultureInfo.InvariantCulture),
    };

    public static string Name(FilterPolicy policy) => policy == FilterPolicy.Deny ? "deny" : "allow";

    public static IAnsiConsole CreateConsole(TextWriter output)
    {
        var terminal = output == System.Console.Out && !System.Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!terminal)
            console.Profile.Width = 160;
        return console;
    }

}
