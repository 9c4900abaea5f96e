using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Objects;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary><c>sharpbpf inspect FILE.o [--json]</c>: what an object file holds (programs, maps, license, BTF).</summary>
public static class InspectCommand
{
    public static Command Build()
    {
        var file = new Argument<FileInfo>("file") { Description = "A BPF ELF object built by clang (-target bpf)." };
        var json = new Option<bool>("--json") { Description = "Print stable JSON (documented in docs/cli.md) instead of tables." };
        var command = new Command("inspect", "Show the programs, maps, license and BTF of a BPF object file.") { file, json };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var path = parse.GetRequiredValue(file).FullName;
            CollectionSpec spec;
            try
            {
                spec = ObjectFile.Open(path);
            }
            catch (ObjectFileException e)
            {
                error.WriteLine($"sharpbpf inspect: {parse.GetRequiredValue(file).Name}: {e.Message}");
                return CliApp.ExitRefused;
            }
            var report = Describe(Path.GetFileName(path), spec);
            if (parse.GetValue(json))
                output.WriteLine(JsonSerializer.Serialize(report, JsonOptions));
            else
                WriteTables(output, report);
            return 0;
        });
        return command;
    }

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter() },
    };

    internal sealed record Report(string File, string ObjectName, string License, uint KernelVersion,
        IReadOnlyList<ProgramReport> Programs, IReadOnlyList<MapReport> Maps, BtfReport? Btf);

    internal sealed record ProgramReport(string Name, string Section, string Type, uint? ExpectedAttachType, uint Flags,
        int Instructions, int RawInstructions, string? SourceFile, int FuncInfos, int LineInfos, int CoreRelocations);

    internal sealed record MapReport(string Name, string KernelName, string Section, string Type, uint KeySize, uint ValueSize,
        uint MaxEntries, uint Flags, string Pinning, bool Freeze, int? InitialValueSize, MapReport? InnerMap,
        IReadOnlyList<MapSlotReference> InitialReferences);

    internal sealed record BtfReport(int Types, IReadOnlyDictionary<string, int> Kinds, int StringBytes,
        int FuncInfos, int LineInfos, int CoreRelocations);

    internal static Report Describe(string file, CollectionSpec spec)
    {
        var programs = spec.Programs.Select(p => new ProgramReport(p.Name, p.SectionName, p.Type.ToString(), p.ExpectedAttachType, p.Flags,
            p.Instructions.Count, InstructionCodec.RawLength(p.Instructions), p.SourceFile, p.FuncInfos.Count, p.LineInfos.Count,
            p.CoreRelocations.Count)).ToList();
        var maps = spec.Maps.Select(DescribeMap).ToList();
        BtfReport? btf = null;
        if (spec.Btf is { } types)
        {
            btf = new BtfReport(types.Types.Count - 1,
                types.CountByKind().ToDictionary(p => p.Key.ToString(), p => p.Value),
                types.StringTableLength,
                spec.BtfExt?.FuncInfoCount ?? 0, spec.BtfExt?.LineInfoCount ?? 0, spec.BtfExt?.CoreRelocationCount ?? 0);
        }
        return new Report(file, spec.ObjectName, spec.License, spec.KernelVersion, programs, maps, btf);
    }

    private static MapReport DescribeMap(MapSpec m) =>
        new(m.Name, m.KernelName, m.SectionName, m.Type.ToString(), m.KeySize, m.ValueSize, m.MaxEntries, m.Flags, m.Pinning.ToString(),
            m.Freeze, m.InitialValue?.Length, m.InnerMap is null ? null : DescribeMap(m.InnerMap), m.InitialReferences);

    private static void WriteTables(TextWriter output, Report report)
    {
        bool terminal = output == Console.Out && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (!terminal)
            console.Profile.Width = 160; // redirected or captured: no terminal to fit, keep rows on one line
        console.WriteLine($"{report.File}: license \"{report.License}\"" + (report.KernelVersion != 0 ? $", kernel version 0x{report.KernelVersion:x}" : ""));

        var programs = new Table().Title("Programs");
        foreach (var c in new[] { "Name", "Section", "Type", "Instructions", "Source" })
            programs.AddColumn(c);
        foreach (var p in report.Programs)
            programs.AddRow(Markup.Escape(p.Name), Markup.Escape(p.Section), p.Type, p.Instructions.ToString(), Markup.Escape(p.SourceFile ?? "-"));
        console.Write(programs);

        var maps = new Table().Title("Maps");
        foreach (var c in new[] { "Name", "Type", "Key", "Value", "Max entries", "Flags", "Pinning", "Inner map" })
            maps.AddColumn(c);
        foreach (var m in report.Maps)
        {
            maps.AddRow(Markup.Escape(m.Name), m.Type, m.KeySize.ToString(), m.ValueSize.ToString(), m.MaxEntries.ToString(),
                $"0x{m.Flags:x}", m.Pinning, m.InnerMap is { } inner ? $"{inner.Type} {inner.KeySize}/{inner.ValueSize} x{inner.MaxEntries}" : "-");
        }
        console.Write(maps);

        if (report.Btf is { } btf)
        {
            var kinds = string.Join(", ", btf.Kinds.Select(k => $"{k.Key} {k.Value}"));
            console.WriteLine($"BTF: {btf.Types} types ({kinds}); {btf.StringBytes} bytes of strings");
            console.WriteLine($"BTF.ext: {btf.FuncInfos} func info, {btf.LineInfos} line info, {btf.CoreRelocations} CO-RE relocation records");
        }
        else
        {
            console.WriteLine("BTF: none");
        }
    }
}
