using System.CommandLine;
using SharpBpf.Linux;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf map list|show|dump|lookup|update|delete</c>: maps in the kernel, by id or pin path, keys and values
/// as hex bytes.
/// </summary>
public static class MapCommand
{
    public static Command Build()
    {
        var command = new Command("map", "List, show, dump and edit maps in the kernel, by id or pin path (needs root).");
        command.Subcommands.Add(BuildList());
        command.Subcommands.Add(BuildShow());
        command.Subcommands.Add(BuildDump());
        command.Subcommands.Add(BuildLookup());
        command.Subcommands.Add(BuildUpdate());
        command.Subcommands.Add(BuildDelete());
        return command;
    }

    /// <summary>One entry as JSON: the value, or for per-CPU maps one value per possible CPU.</summary>
    internal sealed record Entry(string Key, string? Value, IReadOnlyList<string>? Values)
    {
        /// <summary>Key and value as C values from the map's BTF (per-CPU: one per CPU, joined), when it has BTF.</summary>
        public string? KeyText { get; init; }
        public string? ValueText { get; init; }
    }

    internal sealed record DumpReport(MapInfo Map, IReadOnlyList<Entry> Entries);

    private static Option<bool> JsonOption() => KernelCli.JsonOption();

    /// <summary>The map operand: an id argument or --pinned PATH.</summary>
    private sealed class Target
    {
        public Argument<uint?> Id { get; } = new("id") { Description = "The map's id (see map list).", Arity = ArgumentArity.ZeroOrOne };
        public Option<string?> Pinned { get; } = new("--pinned") { Description = "The map's pin path on a bpffs, instead of an id." };

        public void AddTo(Command command)
        {
            command.Arguments.Add(Id);
            command.Options.Add(Pinned);
        }

        /// <summary>Null (after a usage message) when neither or both were given.</summary>
        public Func<BpfMap>? Resolve(ParseResult parse, string command)
        {
            var id = parse.GetValue(Id);
            var path = parse.GetValue(Pinned);
            if (id is null == path is null)
            {
                parse.InvocationConfiguration.Error.WriteLine($"sharpbpf {command}: give either an ID or --pinned PATH");
                return null;
            }
            return path is not null ? () => BpfMap.OpenPinned(path) : () => BpfMap.FromId(id!.Value);
        }
    }

    private static Command BuildList() =>
        KernelCli.ListCommand("map list", "List every map in the kernel (ids are machine-wide).", BpfMap.AllIds, BpfMap.FromId, o => o.GetInfo(), WriteTable);

    private static Command BuildShow()
    {
        var target = new Target();
        var json = JsonOption();
        var command = new Command("show", "Show one map's shape (type, key and value sizes, entries, flags).") { json };
        target.AddTo(command);
        command.SetAction(parse =>
        {
            if (target.Resolve(parse, "map show") is not { } open)
                return CliApp.ExitUsage;
            var output = parse.InvocationConfiguration.Output;
            return KernelCli.Run("map show", parse.InvocationConfiguration.Error, () =>
            {
                using var map = open();
                var info = map.GetInfo();
                if (parse.GetValue(json))
                    KernelCli.WriteJson(output, info);
                else
                    WriteTable(output, [info]);
                return 0;
            });
        });
        return command;
    }

    private static Command BuildDump()
    {
        var target = new Target();
        var json = JsonOption();
        var command = new Command("dump", "Print every entry (batched where the map type allows).") { json };
        target.AddTo(command);
        command.SetAction(parse =>
        {
            if (target.Resolve(parse, "map dump") is not { } open)
                return CliApp.ExitUsage;
            var output = parse.InvocationConfiguration.Output;
            return KernelCli.Run("map dump", parse.InvocationConfiguration.Error, () =>
            {
                using var map = open();
                var entries = map.EntriesBatched().Select(e => ToEntry(map, e.Key, e.Value)).ToList();
                if (parse.GetValue(json))
                {
                    KernelCli.WriteJson(output, new DumpReport(map.GetInfo(), entries));
                    return 0;
                }
                foreach (var e in entries)
                    WriteEntry(output, e);
                output.WriteLine($"{entries.Count} entries");
                return 0;
            });
        });
        return command;
    }

    private static Command BuildLookup()
    {
        var target = new Target();
        var key = KeyOption();
        var json = JsonOption();
        var command = new Command("lookup", "Print the value of one key.") { key, json };
        target.AddTo(command);
        command.SetAction(parse =>
        {
            if (target.Resolve(parse, "map lookup") is not { } open)
                return CliApp.ExitUsage;
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            return KernelCli.Run("map lookup", error, () =>
            {
                using var map = open();
                var k = KernelCli.ParseHex(parse.GetRequiredValue(key), "key");
                var value = map.Lookup(k);
                if (value is null)
                {
                    error.WriteLine($"sharpbpf map lookup: map '{map.Name}' has no key {KernelCli.Hex(k)}");
                    return CliApp.ExitRefused;
                }
                var entry = ToEntry(map, k, value);
                if (parse.GetValue(json))
                    KernelCli.WriteJson(output, entry);
                else
                    WriteEntry(output, entry);
                return 0;
            });
        });
        return command;
    }

    private static Command BuildUpdate()
    {
        var target = new Target();
        var key = KeyOption();
        var value = new Option<string>("--value")
        {
            Description = "The value as hex bytes. For per-CPU maps: one value for every CPU, or all CPUs' values back to back (each padded to 8 bytes).",
            Required = true,
        };
        var flags = new Option<string>("--flags") { Description = "any (default), noexist (create only) or exist (replace only).", DefaultValueFactory = _ => "any" };
        flags.AcceptOnlyFromAmong("any", "noexist", "exist");
        var command = new Command("update", "Create or replace one entry.") { key, value, flags };
        target.AddTo(command);
        command.SetAction(parse =>
        {
            if (target.Resolve(parse, "map update") is not { } open)
                return CliApp.ExitUsage;
            var output = parse.InvocationConfiguration.Output;
            return KernelCli.Run("map update", parse.InvocationConfiguration.Error, () =>
            {
                using var map = open();
                var k = KernelCli.ParseHex(parse.GetRequiredValue(key), "key");
                var v = KernelCli.ParseHex(parse.GetRequiredValue(value), "value");
                if (map.IsPerCpu && v.Length == map.ValueSize)
                {
                    // One value given: every CPU gets it.
                    var all = new byte[map.ValueBufferSize];
                    int stride = map.ValueBufferSize / BpfMap.PossibleCpus.Count;
                    for (int cpu = 0; cpu < BpfMap.PossibleCpus.Count; cpu++)
                        v.CopyTo(all, cpu * stride);
                    v = all;
                }
                var mode = parse.GetValue(flags) switch { "noexist" => MapUpdateFlags.NoExist, "exist" => MapUpdateFlags.Exist, _ => MapUpdateFlags.Any };
                map.Update(k, v, mode);
                output.WriteLine($"updated key {KernelCli.Hex(k)} of map '{map.Name}'");
                return 0;
            });
        });
        return command;
    }

    private static Command BuildDelete()
    {
        var target = new Target();
        var key = KeyOption();
        var command = new Command("delete", "Delete one entry.") { key };
        target.AddTo(command);
        command.SetAction(parse =>
        {
            if (target.Resolve(parse, "map delete") is not { } open)
                return CliApp.ExitUsage;
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            return KernelCli.Run("map delete", error, () =>
            {
                using var map = open();
                var k = KernelCli.ParseHex(parse.GetRequiredValue(key), "key");
                if (!map.Delete(k))
                {
                    error.WriteLine($"sharpbpf map delete: map '{map.Name}' has no key {KernelCli.Hex(k)}");
                    return CliApp.ExitRefused;
                }
                output.WriteLine($"deleted key {KernelCli.Hex(k)} of map '{map.Name}'");
                return 0;
            });
        });
        return command;
    }

    private static Option<string> KeyOption() =>
        new("--key") { Description = "The key as hex bytes, e.g. \"01 00 00 00\" (little-endian 1 for a u32 key).", Required = true };

    private static Entry ToEntry(BpfMap map, byte[] key, byte[] value)
    {
        var entry = map.IsPerCpu
            ? new Entry(KernelCli.Hex(key), null, [.. map.SplitPerCpu(value).Select(v => KernelCli.Hex(v))])
            : new Entry(KernelCli.Hex(key), KernelCli.Hex(value), null);
        if (BtfOf(map) is not { } btf)
            return entry;
        var valueText = map.IsPerCpu
            ? "[" + string.Join(", ", map.SplitPerCpu(value).Select(v => BtfValueFormatter.Format(btf.Btf, btf.ValueTypeId, v))) + "]"
            : BtfValueFormatter.Format(btf.Btf, btf.ValueTypeId, value);
        return entry with
        {
            KeyText = btf.KeyTypeId != 0 ? BtfValueFormatter.Format(btf.Btf, btf.KeyTypeId, key) : null,
            ValueText = valueText,
        };
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<BpfMap, Tuple<(SharpBpf.Btf.BtfSpec Btf, uint KeyTypeId, uint ValueTypeId)?>> s_btf = [];

    private static (SharpBpf.Btf.BtfSpec Btf, uint KeyTypeId, uint ValueTypeId)? BtfOf(BpfMap map) =>
        s_btf.GetValue(map, m =>
        {
            try { return Tuple.Create(m.GetBtf()); }
            catch (BpfException) { return Tuple.Create<(SharpBpf.Btf.BtfSpec, uint, uint)?>(null); }
        }).Item1;

    private static void WriteEntry(TextWriter output, Entry e)
    {
        if (e.ValueText is not null)
        {
            output.WriteLine($"key: {e.KeyText ?? e.Key}  value: {e.ValueText}");
            return;
        }
        if (e.Values is null)
        {
            output.WriteLine($"key: {e.Key}  value: {e.Value}");
            return;
        }
        output.WriteLine($"key: {e.Key}");
        for (int cpu = 0; cpu < e.Values.Count; cpu++)
            output.WriteLine($"  cpu {cpu}: {e.Values[cpu]}");
    }

    private static void WriteTable(TextWriter output, IReadOnlyList<MapInfo> infos)
    {
        var table = new Table();
        foreach (var c in new[] { "Id", "Type", "Name", "Key", "Value", "Max entries", "Flags", "BTF" })
            table.AddColumn(c);
        foreach (var i in infos)
        {
            table.AddRow(KernelCli.Invariant(i.Id), i.Type.ToString(), Markup.Escape(i.Name), KernelCli.Invariant(i.KeySize),
                KernelCli.Invariant(i.ValueSize), KernelCli.Invariant(i.MaxEntries), $"0x{i.Flags:x}", i.BtfId == 0 ? "-" : KernelCli.Invariant(i.BtfId));
        }
        KernelCli.Console(output).Write(table);
    }
}
