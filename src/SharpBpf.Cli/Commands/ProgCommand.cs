using System.CommandLine;
using SharpBpf.Linux;
using SharpBpf.Objects;
using SharpBpf.Platform;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf prog load FILE.o [--program NAME] [--pin DIR]</c>, <c>prog list [--json]</c>,
/// <c>prog show ID|--pinned PATH [--json]</c>: programs in the kernel.
/// </summary>
public static class ProgCommand
{
    public static Command Build()
    {
        var command = new Command("prog", "Load programs into the kernel and list or show loaded ones (needs root).");
        command.Subcommands.Add(BuildLoad());
        command.Subcommands.Add(BuildList());
        command.Subcommands.Add(BuildShow());
        return command;
    }

    private static Option<bool> JsonOption() => KernelCli.JsonOption();

    internal sealed record LoadReport(string File, bool Pinned, IReadOnlyList<LoadedProgram> Programs, IReadOnlyList<LoadedMap> Maps,
        IReadOnlyList<string> Warnings);

    internal sealed record LoadedProgram(string Name, uint Id, string Type, string Tag, string? PinPath);

    internal sealed record LoadedMap(string Name, uint Id, string Type, string? PinPath);

    private static Command BuildLoad()
    {
        var file = new Argument<FileInfo>("file") { Description = "A BPF ELF object built by clang (-target bpf)." };
        var program = new Option<string[]>("--program") { Description = "Load only this program (repeatable); default: all.", AllowMultipleArgumentsPerToken = false };
        var pin = new Option<DirectoryInfo?>("--pin")
        {
            Description = "Pin the programs as DIR/NAME and the object's pin-by-name maps under DIR (a bpffs directory), so they stay loaded after exit. Without it the programs are verified, loaded, shown and unloaded.",
        };
        var json = JsonOption();
        var command = new Command("load", "Load an object's programs into the kernel (the kernel's verifier decides).") { file, program, pin, json };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            return KernelCli.Run("prog load", error, () =>
            {
                var path = parse.GetRequiredValue(file);
                CollectionSpec spec;
                try { spec = ObjectFile.Open(path.FullName); }
                catch (ObjectFileException e) { throw new BpfException($"{path.Name}: {e.Message}", e); }
                var names = parse.GetValue(program) is { Length: > 0 } n ? n : null;
                // A section name that maps to no program type leaves it Unspec: the kernel would only say EINVAL.
                foreach (var p in spec.Programs)
                    if (p.Type == ProgramType.Unspec && (names is null || names.Contains(p.Name)))
                        throw new BpfException($"{path.Name}: program '{p.Name}': section '{p.SectionName}' names no program type; " +
                            "use a section name such as \"xdp\", \"tc\" or \"socket\" (as libbpf 1.x requires)");
                var pinDir = parse.GetValue(pin)?.FullName;
                if (pinDir is not null)
                    Directory.CreateDirectory(pinDir);
                var options = new BpfCollectionOptions { Programs = names };
                if (pinDir is not null)
                    options = options with { PinDirectory = pinDir };
                using var collection = BpfCollection.Load(spec, options);
                var pinnedHere = new List<string>();
                try
                {
                    if (pinDir is not null)
                    {
                        foreach (var (name, p) in collection.Programs)
                        {
                            var target = Path.Combine(pinDir, BpfCollection.PinName(name));
                            p.Pin(target);
                            pinnedHere.Add(target);
                        }
                    }
                }
                catch
                {
                    foreach (var target in pinnedHere)
                        File.Delete(target);
                    throw;
                }
                var report = new LoadReport(path.Name, pinDir is not null,
                    [.. collection.Programs.Values.Select(p => new LoadedProgram(p.Name, p.Id, p.Type.ToString(), p.GetInfo().Tag, p.PinPath))],
                    [.. collection.Maps.Values.Select(m => new LoadedMap(m.Name, m.Id, m.Type.ToString(), m.PinPath))],
                    collection.Warnings);
                if (parse.GetValue(json))
                {
                    KernelCli.WriteJson(output, report);
                    return 0;
                }
                foreach (var w in report.Warnings)
                    error.WriteLine($"sharpbpf prog load: warning: {w}");
                foreach (var p in report.Programs)
                    output.WriteLine($"loaded program '{p.Name}': id {p.Id}, {p.Type}, tag {p.Tag}" + (p.PinPath is null ? "" : $", pinned at {p.PinPath}"));
                foreach (var m in report.Maps)
                    output.WriteLine($"  map '{m.Name}': id {m.Id}, {m.Type}" + (m.PinPath is null ? "" : $", pinned at {m.PinPath}"));
                if (pinDir is null)
                    output.WriteLine("not pinned (no --pin): the kernel accepted the programs; they are unloaded as this command exits");
                return 0;
            });
        });
        return command;
    }

    private static Command BuildList() =>
        KernelCli.ListCommand("prog list", "List every program loaded in the kernel (ids are machine-wide).", BpfProgram.AllIds, BpfProgram.FromId, o => o.GetInfo(), WriteTable);

    private static Command BuildShow()
    {
        var id = new Argument<uint?>("id") { Description = "The program's id (see prog list).", Arity = ArgumentArity.ZeroOrOne };
        var pinned = new Option<string?>("--pinned") { Description = "The program's pin path on a bpffs, instead of an id." };
        var json = JsonOption();
        var command = new Command("show", "Show one program by id or pin path.") { id, pinned, json };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var idValue = parse.GetValue(id);
            var path = parse.GetValue(pinned);
            if (idValue is null == path is null)
            {
                error.WriteLine("sharpbpf prog show: give either an ID or --pinned PATH");
                return CliApp.ExitUsage;
            }
            return KernelCli.Run("prog show", error, () =>
            {
                using var p = path is not null ? BpfProgram.OpenPinned(path) : BpfProgram.FromId(idValue!.Value);
                var info = p.GetInfo();
                if (parse.GetValue(json))
                    KernelCli.WriteJson(output, info);
                else
                    WriteTable(output, [info]);
                return 0;
            });
        });
        return command;
    }

    private static void WriteTable(TextWriter output, IReadOnlyList<ProgramInfo> infos)
    {
        var table = new Table();
        foreach (var c in new[] { "Id", "Type", "Name", "Tag", "Maps", "JIT bytes", "Insns (xlated)", "Verified insns", "BTF" })
            table.AddColumn(c);
        foreach (var i in infos)
        {
            table.AddRow(KernelCli.Invariant(i.Id), i.Type.ToString(), Markup.Escape(i.Name), i.Tag,
                i.MapIds.Count == 0 ? "-" : string.Join(",", i.MapIds), KernelCli.Invariant(i.JitedSize),
                KernelCli.Invariant(i.TranslatedSize / 8), KernelCli.Invariant(i.VerifiedInstructions), i.BtfId == 0 ? "-" : KernelCli.Invariant(i.BtfId));
        }
        KernelCli.Console(output).Write(table);
    }
}
