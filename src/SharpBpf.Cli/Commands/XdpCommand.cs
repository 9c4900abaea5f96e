using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using SharpBpf.Linux;
using SharpBpf.Linux.Links;
using SharpBpf.Objects;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf xdp attach|detach|status</c>: XDP programs on network interfaces, by bpf_link or netlink.
/// Without <c>--pin</c>, attach uses netlink: a bpf_link that is not pinned ends with this process.
/// </summary>
public static class XdpCommand
{
    public static Command Build()
    {
        var command = new Command("xdp", "attach, detach and show XDP programs on network interfaces");
        command.Subcommands.Add(BuildAttach());
        command.Subcommands.Add(BuildDetach());
        command.Subcommands.Add(BuildStatus());
        command.Subcommands.Add(XdpRunUserCommand.Build());
        return command;
    }

    private static Option<string> ModeOption(string defaultValue) => new("--mode")
    {
        Description = "native (driver), skb (generic), hw (offload) or auto (the kernel's choice)",
        DefaultValueFactory = _ => defaultValue,
        CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : defaultValue;
            if (!XdpModeNames.TryParse(text, out _))
                result.AddError($"--mode must be native, skb, hw or auto, not '{text}'");
            return text;
        },
    };

    private static Command BuildAttach()
    {
        var iface = new Argument<string>("IFACE") { Description = "interface name (or ifindex)" };
        var file = new Argument<FileInfo>("FILE.o") { Description = "BPF object file (clang -target bpf)" };
        var program = new Option<string?>("--program") { Description = "the XDP program to attach, when the object has several" };
        var mode = ModeOption("auto");
        var netlink = new Option<bool>("--netlink") { Description = "attach by netlink instead of a bpf_link" };
        var pin = new Option<DirectoryInfo?>("--pin") { Description = "pin the bpf_link in this bpffs directory so the program stays attached" };
        var replace = new Option<bool>("--replace") { Description = "replace the program attached now, without a gap" };
        var command = new Command("attach", "load FILE.o and attach one of its XDP programs to IFACE")
        {
            iface, file, program, mode, netlink, pin, replace,
        };
        command.SetAction(parse => Run(parse, () =>
        {
            var output = parse.InvocationConfiguration.Output;
            XdpModeNames.TryParse(parse.GetValue(mode)!, out var attachMode);
            var pinDir = parse.GetValue(pin);
            var useNetlink = parse.GetValue(netlink);
            if (pinDir is not null && useNetlink)
                throw new CliUsageException("--pin needs a bpf_link: leave out --netlink");
            var interfaceName = parse.GetValue(iface)!;
            var target = Linux.Net.NetInterfaces.Resolve(interfaceName);
            var spec = ObjectFile.Open(parse.GetValue(file)!.FullName);
            var chosen = ChooseProgram(spec, parse.GetValue(program));
            using var collection = BpfCollection.Load(spec);
            var loaded = collection.Programs[chosen.Name];
            string? pinPath = null;
            if (pinDir is not null)
            {
                Directory.CreateDirectory(pinDir.FullName);
                pinPath = Path.Combine(pinDir.FullName, $"xdp_link_{target.Name}");
            }
            var options = new XdpAttachOptions
            {
                Mode = attachMode,
                // A bpf_link that is not pinned would be closed, and the program detached, when this command exits.
                UseNetlink = useNetlink || pinPath is null,
                PinPath = pinPath,
                Replace = parse.GetValue(replace),
            };
            using var attachment = XdpHook.Attach(target.Index, loaded, options);
            var by = attachment.Link is { } link ? $"bpf_link {link.Id}" : "netlink";
            output.WriteLine($"attached program '{chosen.Name}' (id {attachment.ProgramId}) to {target.Name} in " +
                $"{XdpModeNames.Describe(attachment.Mode)} mode by {by}" + (pinPath is null ? "" : $", pinned at {pinPath}"));
            return 0;
        }));
        return command;
    }

    private static Command BuildDetach()
    {
        var iface = new Argument<string>("IFACE") { Description = "interface name (or ifindex)" };
        var mode = ModeOption("auto");
        var netlink = new Option<bool>("--netlink") { Description = "detach by netlink (refused while a bpf_link owns the hook)" };
        var command = new Command("detach", "remove the XDP program of IFACE") { iface, mode, netlink };
        command.SetAction(parse => Run(parse, () =>
        {
            var output = parse.InvocationConfiguration.Output;
            XdpModeNames.TryParse(parse.GetValue(mode)!, out var detachMode);
            var name = parse.GetValue(iface)!;
            var before = XdpHook.Query(name)[0];
            if (!XdpHook.Detach(name, detachMode, parse.GetValue(netlink)))
            {
                output.WriteLine($"no XDP program attached to {before.Name}" +
                    (detachMode == XdpAttachMode.Auto ? "" : $" in {XdpModeNames.Describe(detachMode)} mode"));
                return 0;
            }
            var removed = before.Programs.Where(p => detachMode == XdpAttachMode.Auto || p.Mode == detachMode).ToList();
            output.WriteLine($"detached {XdpErrors.Describe(removed)} from {before.Name}");
            if (removed.Any(p => p.AttachedBy == XdpAttachMechanism.Link))
                output.WriteLine("a pin of the bpf_link, if it has one, still exists (defunct): remove it to free the link");
            return 0;
        }));
        return command;
    }

    private static Command BuildStatus()
    {
        var iface = new Argument<string?>("IFACE") { Description = "only this interface", Arity = ArgumentArity.ZeroOrOne };
        var json = new Option<bool>("--json") { Description = "machine-readable output (see docs/cli.md)" };
        var command = new Command("status", "show the XDP programs attached to interfaces") { iface, json };
        command.SetAction(parse => Run(parse, () =>
        {
            var output = parse.InvocationConfiguration.Output;
            var status = XdpHook.Query(parse.GetValue(iface));
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(StatusJson.From(status), StatusJsonContext.Default.StatusJson));
                return 0;
            }
            var rows = status.SelectMany(i => i.Programs.Select(p => (i, p))).ToList();
            if (rows.Count == 0)
            {
                output.WriteLine(parse.GetValue(iface) is { } one ? $"no XDP program attached to {status[0].Name}" : "no XDP programs attached");
                return 0;
            }
            var table = new Table().Border(TableBorder.Simple);
            foreach (var header in new[] { "interface", "ifindex", "mode", "prog id", "name", "tag", "attached by", "link id" })
                table.AddColumn(header);
            foreach (var (i, p) in rows)
            {
                table.AddRow(Markup.Escape(i.Name), i.IfIndex.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    XdpModeNames.Describe(p.Mode), p.ProgramId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    Markup.Escape(p.Name ?? "-"), p.Tag ?? "-",
                    p.AttachedBy == XdpAttachMechanism.Link ? "bpf_link" : "netlink",
                    p.LinkId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-");
            }
            var console = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(output),
                Ansi = AnsiSupport.No,
                ColorSystem = ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
            });
            console.Profile.Width = 120;
            console.Write(table);
            return 0;
        }));
        return command;
    }

    private static ProgramSpec ChooseProgram(CollectionSpec spec, string? name)
    {
        var xdp = spec.Programs.Where(p => p.Type == Platform.ProgramType.Xdp).ToList();
        if (name is not null)
        {
            return spec.FindProgram(name) is { } found
                ? found.Type == Platform.ProgramType.Xdp ? found : throw new BpfException($"program '{name}' is not an XDP program (section '{found.SectionName}')")
                : throw new BpfException($"no program named '{name}' in the object (it has: {string.Join(", ", spec.Programs.Select(p => p.Name))})");
        }
        return xdp.Count switch
        {
            1 => xdp[0],
            0 => throw new BpfException("the object has no XDP program (no section named xdp...)"),
            _ => throw new CliUsageException($"the object has {xdp.Count} XDP programs ({string.Join(", ", xdp.Select(p => p.Name))}): choose one with --program"),
        };
    }

    /// <summary>Runs a subcommand: refusals become one sentence on stderr and exit 1, usage errors exit 2.</summary>
    private static int Run(ParseResult parse, Func<int> body)
    {
        var error = parse.InvocationConfiguration.Error;
        if (!OperatingSystem.IsLinux())
        {
            error.WriteLine("sharpbpf xdp: XDP attach needs Linux");
            return CliApp.ExitRefused;
        }
        if (!Environment.IsPrivilegedProcess)
        {
            error.WriteLine("sharpbpf xdp: attaching and querying XDP programs needs root (CAP_NET_ADMIN and CAP_BPF); run it with sudo");
            return CliApp.ExitRefused;
        }
        try
        {
            return body();
        }
        catch (CliUsageException e)
        {
            error.WriteLine("sharpbpf xdp: " + e.Message);
            return CliApp.ExitUsage;
        }
        catch (BpfException e)
        {
            error.WriteLine("sharpbpf xdp: " + e.Message);
            return CliApp.ExitRefused;
        }
        catch (IOException e)
        {
            error.WriteLine("sharpbpf xdp: " + e.Message);
            return CliApp.ExitRefused;
        }
    }

    private sealed class CliUsageException(string message) : Exception(message);
}

/// <summary>The stable shape of <c>sharpbpf xdp status --json</c> (docs/cli.md).</summary>
internal sealed record StatusJson(IReadOnlyList<StatusJson.Interface> Interfaces)
{
    internal sealed record Interface(int Ifindex, string Name, IReadOnlyList<Program> Programs);

    internal sealed record Program(string Mode, uint Id, string? Name, string? Tag, string AttachedBy, uint? LinkId);

    public static StatusJson From(IReadOnlyList<XdpInterfaceStatus> status) => new(status
        .Select(i => new Interface(i.IfIndex, i.Name, i.Programs
            .Select(p => new Program(XdpModeNames.Describe(p.Mode), p.ProgramId, p.Name, p.Tag,
                p.AttachedBy == XdpAttachMechanism.Link ? "link" : "netlink", p.LinkId))
            .ToList()))
        .ToList());
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.Never, WriteIndented = true)]
[JsonSerializable(typeof(StatusJson))]
internal sealed partial class StatusJsonContext : JsonSerializerContext;
