using System.CommandLine;
using SharpBpf.Linux.Features;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary><c>sharpbpf features [--json]</c>: what the running kernel supports, probed.</summary>
public static class FeaturesCommand
{
    internal sealed record Report(string Kernel, IReadOnlyList<FeatureStatus> Features);

    public static Command Build()
    {
        var json = new Option<bool>("--json") { Description = "Print stable JSON (documented in docs/cli.md)." };
        var command = new Command("features", "Probe the kernel: program types, map types, helpers, bpf_link for XDP, BTF kinds (needs root).") { json };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            return KernelCli.Run("features", parse.InvocationConfiguration.Error, () =>
            {
                var report = new Report(BpfFeatures.KernelVersion.ToString(), BpfFeatures.All());
                if (parse.GetValue(json))
                {
                    KernelCli.WriteJson(output, report);
                    return 0;
                }
                var console = KernelCli.Console(output);
                console.WriteLine($"Linux {report.Kernel}");
                var table = new Table();
                foreach (var c in new[] { "Category", "Feature", "Supported", "Since Linux", "Note" })
                    table.AddColumn(c);
                foreach (var f in report.Features)
                {
                    table.AddRow(f.Category, Markup.Escape(f.Name), f.Supported switch { true => "yes", false => "no", null => "unknown" },
                        f.SinceKernel ?? "-", Markup.Escape(f.Detail ?? ""));
                }
                console.Write(table);
                return 0;
            });
        });
        return command;
    }
}
