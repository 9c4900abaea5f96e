using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using SharpBpf.Linux.Filter;
using SharpBpf.Linux.Links;
using SharpBpf.Xdp;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf filter ...</c>: the XDP firewall (programs/xdp_filter.c). Rules, policy and counters live in maps
/// pinned under a directory of the bpffs (default /sys/fs/bpf/sharpbpf/filter), so every subcommand is a separate
/// process working on the same state. See docs/filter.md and docs/cli.md.
/// </summary>
public static class FilterCommand
{
    public static Command Build()
    {
        var pinDir = new Option<string>("--pin-dir")
        {
            Description = "Where the filter's maps and links are pinned (a bpffs directory).",
            DefaultValueFactory = _ => XdpFilter.DefaultPinDirectory,
            Recursive = true,
        };
        var command = new Command("filter", "An XDP firewall: attach it, manage its rules, watch its counters.") { pinDir };
        command.Subcommands.Add(BuildAttach(pinDir));
        command.Subcommands.Add(BuildDetach(pinDir));
        command.Subcommands.Add(BuildRuleCommand("add", "Add a rule (deny unless --allow).", pinDir));
        command.Subcommands.Add(BuildRuleCommand("remove", "Remove a rule, given as it was added.", pinDir));
        command.Subcommands.Add(BuildPolicy(pinDir));
        command.Subcommands.Add(BuildList(pinDir));
        command.Subcommands.Add(BuildStats(pinDir));
        command.Subcommands.Add(FilterRunCommand.Build(pinDir));
        return command;
    }

    private static Command BuildAttach(Option<string> pinDir)
    {
        var iface = new Argument<string>("IFACE") { Description = "The interface (name or index)." };
        var mode = new Option<string>("--mode")
        {
            Description = "native (driver), skb (generic) or auto.",
            DefaultValueFactory = _ => "auto",
        };
        mode.AcceptOnlyFromAmong("auto", "native", "drv", "skb", "generic");
        var policy = PolicyOption();
        var command = new Command("attach", "Attach the filter to an interface; the pinned rules apply at once.") { iface, mode, policy };
        command.SetAction(parse => Run(parse, "attach", pinDir, (filter, output) =>
        {
            if (parse.GetValue(policy) is { } p)
                filter.Policy = ParsePolicy(p);
            XdpModeNames.TryParse(parse.GetValue(mode)!, out var attachMode);
            var attachment = filter.Attach(parse.GetRequiredValue(iface), attachMode);
            output.WriteLine($"filter attached to {attachment.Interface} ({XdpModeNames.Describe(attachment.Mode)} mode), " +
                $"policy {FilterView.Name(filter.Policy)}, {filter.ListRules().Count} rules");
        }));
        return command;
    }

    private static Command BuildDetach(Option<string> pinDir)
    {
        var iface = new Argument<string>("IFACE") { Description = "The interface (name or index)." };
        var command = new Command("detach", "Detach the filter from an interface; rules and counters stay pinned.") { iface };
        command.SetAction(parse => Run(parse, "detach", pinDir, (filter, output) =>
        {
            var name = parse.GetRequiredValue(iface);
            if (!filter.Detach(name))
                throw new BpfException($"the filter is not attached to '{name}'");
            output.WriteLine($"filter detached from {name}");
        }));
        return command;
    }

    private static Command BuildPolicy(Option<string> pinDir)
    {
        var policy = new Argument<string>("POLICY") { Description = "allow or deny: what happens to packets no rule decides." };
        policy.AcceptOnlyFromAmong("allow", "deny");
        var command = new Command("policy", "Set the default policy.") { policy };
        command.SetAction(parse => Run(parse, "policy", pinDir, (filter, output) =>
        {
            filter.Policy = ParsePolicy(parse.GetRequiredValue(policy));
            output.WriteLine($"default policy: {FilterView.Name(filter.Policy)}");
        }));
        return command;
    }

    /// <summary>add|remove with the subcommands ip, port, mac, protocol (and remove id).</summary>
    private static Command BuildRuleCommand(string verb, string description, Option<string> pinDir)
    {
        var adding = verb == "add";
        var command = new Command(verb, description);

        Option<bool> Flag(string name, string text) => new(name) { Description = text };
        var allowDescription = adding ? "Allow what the rule matches (the default is deny)." : "Ignored: a rule is removed whatever its action.";

        var prefix = new Argument<string>("PREFIX") { Description = "An IPv4 or IPv6 prefix (10.0.0.0/8, fd00::/16) or address." };
        var ipSrc = Flag("--src", "Match the source address only.");
        var ipDst = Flag("--dst", "Match the destination address only.");
        var ipAllow = Flag("--allow", allowDescription);
        var ip = new Command("ip", "A source and/or destination IP prefix.") { prefix, ipSrc, ipDst, ipAllow };
        ip.SetAction(parse => Rule(parse, verb, pinDir, () =>
            FilterRule.Ip(parse.GetRequiredValue(prefix), Direction(parse, ipSrc, ipDst, FilterDirection.Both), Action(parse, ipAllow))));
        command.Subcommands.Add(ip);

        var port = new Argument<int>("PORT") { Description = "A TCP/UDP port, 1..65535." };
        var tcp = Flag("--tcp", "TCP only.");
        var udp = Flag("--udp", "UDP only.");
        var portSrc = Flag("--src", "Match the source port only.");
        var portDst = Flag("--dst", "Match the destination port only.");
        var portAllow = Flag("--allow", allowDescription);
        var portCommand = new Command("port", "A TCP and/or UDP source and/or destination port.") { port, tcp, udp, portSrc, portDst, portAllow };
        portCommand.SetAction(parse => Rule(parse, verb, pinDir, () =>
        {
            var transports = (parse.GetValue(tcp) ? FilterTransport.Tcp : 0) | (parse.GetValue(udp) ? FilterTransport.Udp : 0);
            return FilterRule.Port(parse.GetValue(port), transports == 0 ? FilterTransport.Both : transports,
                Direction(parse, portSrc, portDst, FilterDirection.Both), Action(parse, portAllow));
        }));
        command.Subcommands.Add(portCommand);

        var mac = new Argument<string>("MAC") { Description = "A MAC address, 02:00:00:00:00:01." };
        var macSrc = Flag("--src", "Match the source address (the default).");
        var macDst = Flag("--dst", "Match the destination address.");
        var macAllow = Flag("--allow", allowDescription);
        var macCommand = new Command("mac", "A source (default) and/or destination MAC address.") { mac, macSrc, macDst, macAllow };
        macCommand.SetAction(parse => Rule(parse, verb, pinDir, () =>
            FilterRule.Mac(parse.GetRequiredValue(mac), Direction(parse, macSrc, macDst, FilterDirection.Source), Action(parse, macAllow))));
        command.Subcommands.Add(macCommand);

        var protocol = new Argument<string>("PROTOCOL") { Description = "tcp, udp, icmp, icmpv6, sctp, gre or a number 0..255." };
        var protocolAllow = Flag("--allow", allowDescription);
        var protocolCommand = new Command("protocol", "An IP protocol.") { protocol, protocolAllow };
        protocolCommand.SetAction(parse => Rule(parse, verb, pinDir, () =>
            FilterRule.Protocol(parse.GetRequiredValue(protocol), Action(parse, protocolAllow))));
        command.Subcommands.Add(protocolCommand);

        if (!adding)
        {
            var id = new Argument<int>("ID") { Description = "The rule id 'filter list' shows." };
            var byId = new Command("id", "A rule by its id.") { id };
            byId.SetAction(parse => Run(parse, "remove", pinDir, (filter, output) =>
            {
                var number = parse.GetValue(id);
                if (!filter.State.RemoveById(number))
                    throw new FilterRuleException($"there is no rule #{number}");
                output.WriteLine($"removed rule #{number}");
            }));
            command.Subcommands.Add(byId);
        }
        return command;
    }

    private static int Rule(ParseResult parse, string verb, Option<string> pinDir, Func<FilterRule> build)
    {
        FilterRule rule;
        try
        {
            // The rule is checked before the filter's state is even opened: a bad rule changes nothing.
            rule = build();
        }
        catch (FilterRuleException e)
        {
            parse.InvocationConfiguration.Error.WriteLine($"sharpbpf filter {verb}: {e.Message}");
            return CliApp.ExitRefused;
        }
        return Run(parse, verb, pinDir, (filter, output) =>
        {
            if (verb == "add")
                output.WriteLine($"rule #{filter.Add(rule)}: {rule}");
            else
                output.WriteLine($"removed rule #{filter.Remove(rule)}: {rule.Match}");
        });
    }

    private static Command BuildList(Option<string> pinDir)
    {
        var json = new Option<bool>("--json") { Description = "Print stable JSON (documented in docs/cli.md)." };
        var command = new Command("list", "List the rules with the packets and bytes each matched.") { json };
        command.SetAction(parse => Run(parse, "list", pinDir, (filter, output) =>
        {
            var rules = filter.ListRules();
            if (parse.GetValue(json))
            {
                var report = new ListReport(filter.PinDirectory, FilterView.Name(filter.Policy),
                    [.. filter.Attachments().Select(a => new AttachmentReport(a.Interface, a.IfIndex, XdpModeNames.Describe(a.Mode), a.ProgramId))],
                    [.. rules.Select(RuleReport.From)]);
                output.WriteLine(JsonSerializer.Serialize(report, JsonOptions));
                return;
            }
            var console = FilterView.CreateConsole(output);
            var attached = filter.Attachments();
            console.WriteLine($"policy {FilterView.Name(filter.Policy)}; attached to " +
                (attached.Count == 0 ? "no interface" : string.Join(", ", attached.Select(a => $"{a.Interface} ({XdpModeNames.Describe(a.Mode)})"))));
            console.Write(FilterView.RulesTable(rules));
        }));
        return command;
    }

    private static Command BuildStats(Option<string> pinDir)
    {
        var iface = new Argument<string?>("IFACE")
        {
            Description = "Show the counters only if the filter is attached to this interface (and label metrics with it).",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var watch = new Option<bool>("--watch", "-w") { Description = "Refresh in place until Ctrl+C (with --json: one JSON line a refresh)." };
        var interval = new Option<double>("--interval") { Description = "Seconds between refreshes.", DefaultValueFactory = _ => 1.0 };
        var json = new Option<bool>("--json") { Description = "Print stable JSON (documented in docs/cli.md)." };
        var metrics = new Option<string?>("--metrics") { Description = "Serve the counters in Prometheus text format on ADDRESS:PORT until Ctrl+C." };
        var duration = new Option<double?>("--duration") { Description = "Stop watching or serving after this many seconds." };
        var command = new Command("stats", "Packets, bytes and rates per action.") { iface, watch, interval, json, metrics, duration };
        command.SetAction(async (parse, cancel) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            if (parse.GetValue(interval) is <= 0 or > 3600)
            {
                await error.WriteLineAsync("sharpbpf filter stats: --interval must be more than 0 and at most 3600 seconds");
                return CliApp.ExitUsage;
            }
            try
            {
                using var filter = XdpFilter.Open(parse.GetValue(pinDir));
                var name = parse.GetValue(iface);
                if (name is not null && !filter.Attachments().Any(a => a.Interface == name || a.IfIndex.ToString(CultureInfo.InvariantCulture) == name))
                    throw new BpfException($"the filter is not attached to '{name}'");

                using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                if (parse.GetValue(duration) is { } seconds)
                    stop.CancelAfter(TimeSpan.FromSeconds(Math.Max(0, seconds)));
                var period = TimeSpan.FromSeconds(parse.GetValue(interval));

                MetricsServer? server = null;
                if (parse.GetValue(metrics) is { } address)
                {
                    server = MetricsServer.Start(address, () => FilterMetrics.Format(filter.ReadStatistics(), filter.ListRules(), filter.Policy, name));
                    await error.WriteLineAsync($"serving Prometheus metrics on http://{server.EndPoint}/metrics");
                }
                await using (server)
                {
                    if (parse.GetValue(json))
                        await WatchJson(filter, name, output, parse.GetValue(watch), period, stop.Token);
                    else if (parse.GetValue(watch))
                        await FilterView.WatchLive(filter.State, FilterView.CreateConsole(output), period, stop.Token);
                    else
                        FilterView.CreateConsole(output).Write(FilterView.StatsView(filter.ReadStatistics(), null, filter.ListRules(), filter.Policy));

                    if (server is not null && !stop.IsCancellationRequested)
                        await Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                }
                return 0;
            }
            catch (BpfException e)
            {
                await error.WriteLineAsync($"sharpbpf filter stats: {e.Message}");
                return CliApp.ExitRefused;
            }
        });
        return command;
    }

    private static async Task WatchJson(XdpFilter filter, string? iface, TextWriter output, bool watch, TimeSpan period, CancellationToken cancel)
    {
        FilterStatistics? previous = null;
        var options = watch ? JsonLineOptions : JsonOptions;
        do
        {
            var now = filter.ReadStatistics();
            await output.WriteLineAsync(JsonSerializer.Serialize(StatsReport.From(now, previous, iface, filter.Policy), options));
            await output.FlushAsync(CancellationToken.None);
            previous = now;
            if (!watch)
                return;
            try
            {
                await Task.Delay(period, cancel);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
        while (true);
    }

    // ---- plumbing -----------------------------------------------------------------------------------------------

    private static int Run(ParseResult parse, string verb, Option<string> pinDir, Action<XdpFilter, TextWriter> work)
    {
        try
        {
            using var filter = XdpFilter.Open(parse.GetValue(pinDir));
            work(filter, parse.InvocationConfiguration.Output);
            return 0;
        }
        catch (BpfException e)
        {
            parse.InvocationConfiguration.Error.WriteLine($"sharpbpf filter {verb}: {e.Message}");
            return CliApp.ExitRefused;
        }
    }

    private static Option<string?> PolicyOption()
    {
        var policy = new Option<string?>("--policy") { Description = "allow or deny: what happens to packets no rule decides." };
        policy.AcceptOnlyFromAmong("allow", "deny");
        return policy;
    }

    private static FilterPolicy ParsePolicy(string text) => text == "deny" ? FilterPolicy.Deny : FilterPolicy.Allow;


    private static FilterDirection Direction(ParseResult parse, Option<bool> src, Option<bool> dst, FilterDirection fallback)
    {
        var direction = (parse.GetValue(src) ? FilterDirection.Source : 0) | (parse.GetValue(dst) ? FilterDirection.Destination : 0);
        return direction == 0 ? fallback : direction;
    }

    private static FilterAction Action(ParseResult parse, Option<bool> allow) => parse.GetValue(allow) ? FilterAction.Allow : FilterAction.Deny;

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
    };

    private static readonly JsonSerializerOptions JsonLineOptions = new(JsonOptions) { WriteIndented = false };

    internal sealed record ListReport(string PinDirectory, string Policy, IReadOnlyList<AttachmentReport> Attached, IReadOnlyList<RuleReport> Rules);

    internal sealed record AttachmentReport(string Interface, int IfIndex, string Mode, uint ProgramId);

    internal sealed record RuleReport(int Id, string Rule, string Kind, string Action, string Match, string? Direction,
        string? Transport, ulong Packets, ulong Bytes)
    {
        public static RuleReport From(FilterRuleStatus status)
        {
            var rule = status.Rule;
            var match = rule.Kind switch
            {
                FilterRuleKind.Ip => rule.Prefix!.Value.ToString(),
                FilterRuleKind.Port => rule.PortNumber.ToString(CultureInfo.InvariantCulture),
                FilterRuleKind.Mac => string.Join(':', rule.MacAddress!.GetAddressBytes().Select(b => b.ToString("x2", CultureInfo.InvariantCulture))),
                _ => rule.ProtocolNumber.ToString(CultureInfo.InvariantCulture),
            };
            string? direction = rule.Kind == FilterRuleKind.Protocol ? null : rule.Direction switch
            {
                FilterDirection.Source => "source",
                FilterDirection.Destination => "destination",
                _ => "both",
            };
            string? transport = rule.Kind != FilterRuleKind.Port ? null : rule.Transports switch
            {
                FilterTransport.Tcp => "tcp",
                FilterTransport.Udp => "udp",
                _ => "both",
            };
            return new RuleReport(status.Id, rule.ToString(), rule.Kind.ToString().ToLowerInvariant(),
                rule.Action == FilterAction.Deny ? "deny" : "allow", match, direction, transport, status.Packets, status.Bytes);
        }
    }

    internal sealed record CounterReport(ulong Packets, ulong Bytes, double? PacketsPerSecond, double? BitsPerSecond);

    internal sealed record StatsReport(DateTimeOffset Time, string? Interface, string Policy, IReadOnlyDictionary<string, CounterReport> Actions)
    {
        public static StatsReport From(FilterStatistics now, FilterStatistics? previous, string? iface, FilterPolicy policy) =>
            new(now.Time, iface, FilterView.Name(policy), now.Actions.OrderBy(a => a.Key).ToDictionary(
                a => FilterMetrics.ActionName(a.Key),
                a => FilterView.Rate(now, previous, a.Key) is { } rate
                    ? new CounterReport(a.Value.Packets, a.Value.Bytes, Math.Round(rate.PacketsPerSecond, 1), Math.Round(rate.BitsPerSecond, 1))
                    : new CounterReport(a.Value.Packets, a.Value.Bytes, null, null)));
    }
}
