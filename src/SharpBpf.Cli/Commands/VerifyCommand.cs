using System.CommandLine;
using System.Globalization;
using SharpBpf.Linux;
using SharpBpf.Objects;
using SharpBpf.Verifier;
using Spectre.Console;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf verify FILE.o [--program NAME] [--kernel] [--json] [--log]</c>: SharpBpf's verifier's verdict on each
/// program (exit 0 when all are accepted, 1 otherwise); with <c>--kernel</c> the running kernel's verdict beside it,
/// disagreements flagged.
/// </summary>
public static class VerifyCommand
{
    public static Command Build()
    {
        var file = new Argument<FileInfo>("file") { Description = "A BPF ELF object built by clang (-target bpf)." };
        var program = new Option<string?>("--program", "-p") { Description = "Only this program (by function name)." };
        var kernel = new Option<bool>("--kernel") { Description = "Also load each program into the running kernel and show its verdict beside ours (root)." };
        var json = new Option<bool>("--json") { Description = "Print stable JSON (documented in docs/cli.md)." };
        var log = new Option<bool>("--log") { Description = "Print the full state trace of our verifier (and the kernel's log with --kernel)." };
        var unprivileged = new Option<bool>("--unprivileged") { Description = "Verify with the rules for unprivileged loaders." };
        var command = new Command("verify", "Prove the programs of an object safe, as the kernel's verifier does, and explain any refusal.")
        {
            file, program, kernel, json, log, unprivileged,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var info = parse.GetRequiredValue(file);
            var name = parse.GetValue(program);
            if (ProgramLoading.Open("verify", info.FullName, error) is not { } spec
                || ProgramLoading.SelectAll("verify", info.FullName, spec, name, error) is not { } programs)
                return CliApp.ExitRefused;

            bool withKernel = parse.GetValue(kernel);
            if (withKernel && !KernelCli.EnsureBpf("verify --kernel", error))
                return CliApp.ExitRefused;

            var options = new VerifierOptions { Log = parse.GetValue(log), Privileged = !parse.GetValue(unprivileged) };
            var rows = new List<Verdict>();
            foreach (var p in programs)
            {
                VerifierResult ours;
                try
                {
                    ours = BpfVerifier.Verify(spec, p.Name, options);
                }
                catch (BpfNotSupportedException e)
                {
                    // An object may mix program types; say which ones were left out and go on with the rest.
                    error.WriteLine($"sharpbpf verify: {info.Name}: program '{p.Name}' skipped: {e.Message}");
                    continue;
                }
                catch (BpfException e)
                {
                    error.WriteLine($"sharpbpf verify: {info.Name}: program '{p.Name}': {e.Message}");
                    return CliApp.ExitRefused;
                }
                rows.Add(new Verdict(p.Name, p.SectionName, ours, withKernel ? KernelVerdict(spec, p) : null));
            }

            if (rows.Count == 0)
            {
                // Every program was skipped: an empty table with exit code 0 would read as "all proven safe".
                error.WriteLine($"sharpbpf verify: {info.Name}: no program was verified (every one was skipped)");
                return CliApp.ExitRefused;
            }

            if (parse.GetValue(json))
                KernelCli.WriteJson(output, rows.Select(ToJson).ToList());
            else
                WriteHuman(output, rows, parse.GetValue(log));
            return rows.All(r => r.Ours.Accepted && (r.Kernel?.Accepted ?? true)) ? 0 : CliApp.ExitRefused;
        });
        return command;
    }

    private sealed record Verdict(string Program, string Section, VerifierResult Ours, KernelResult? Kernel)
    {
        // Only a verdict of the kernel's verifier can disagree: a load that failed before it (a map the kernel
        // cannot create, a symbol it cannot resolve) is shown as not verified.
        public bool Disagree => Kernel is { Verified: true } && Kernel.Accepted != Ours.Accepted;
    }

    private sealed record KernelResult(bool Accepted, bool Verified, string? Message, int? InstructionIndex, string? Log);

    internal sealed record VerdictJson(string Program, string Section, bool Accepted, int ProcessedInstructions, int States,
        double ElapsedMicroseconds, ErrorJson? Error, KernelJson? Kernel, bool? Disagreement, string? Log);

    internal sealed record ErrorJson(int InstructionIndex, int RawIndex, string Instruction, string Message, string? Hint,
        string? RegisterState, string? SourceFile, int? SourceLine, string? SourceText);

    internal sealed record KernelJson(bool Accepted, bool Verified, string? Message, int? InstructionIndex, string? Log);

    /// <summary>Loads one program (and the maps it uses, unpinned) into the kernel, and closes everything again.</summary>
    private static KernelResult KernelVerdict(CollectionSpec spec, ProgramSpec program)
    {
        // Verification must leave nothing behind: no pins in bpffs, no objects after the command.
        foreach (var map in spec.Maps)
            map.Pinning = MapPinning.None;
        try
        {
            using var loaded = BpfCollection.Load(spec, new BpfCollectionOptions { Programs = [program.Name], VerifierLogLevel = 1 });
            return new KernelResult(true, true, null, null, null);
        }
        catch (BpfVerifierException e)
        {
            var reason = e.Log.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .LastOrDefault(l => !l.StartsWith("processed ", StringComparison.Ordinal) && !l.StartsWith("verification time", StringComparison.Ordinal));
            return new KernelResult(false, true, reason ?? e.Message, e.InstructionIndex, e.Log);
        }
        catch (BpfException e)
        {
            return new KernelResult(false, false, e.Message, null, null);
        }
    }

    private static VerdictJson ToJson(Verdict v)
    {
        var err = v.Ours.Error;
        return new VerdictJson(v.Program, v.Section, v.Ours.Accepted, v.Ours.ProcessedInstructions, v.Ours.TotalStates,
            v.Ours.Elapsed.TotalMicroseconds,
            err is null ? null : new ErrorJson(err.InstructionIndex, err.RawIndex, err.Instruction, err.Message, err.Hint,
                err.RegisterState, err.SourceLine?.FileName, err.SourceLine?.Line, err.SourceLine?.Text.Trim()),
            v.Kernel is null ? null : new KernelJson(v.Kernel.Accepted, v.Kernel.Verified, v.Kernel.Message, v.Kernel.InstructionIndex, v.Kernel.Log),
            v.Kernel is null ? null : v.Disagree, v.Ours.Log);
    }

    private static void WriteHuman(TextWriter output, List<Verdict> rows, bool withLog)
    {
        var console = KernelCli.Console(output);
        var table = new Table().AddColumns("program", "section", "verdict", "processed", "states", "time");
        bool kernel = rows.Any(r => r.Kernel is not null);
        if (kernel)
            table.AddColumn("kernel");
        foreach (var r in rows)
        {
            var cells = new List<string>
            {
                Markup.Escape(r.Program), Markup.Escape(r.Section),
                r.Ours.Accepted ? "[green]accepted[/]" : "[red]refused[/]",
                r.Ours.ProcessedInstructions.ToString(CultureInfo.InvariantCulture),
                r.Ours.TotalStates.ToString(CultureInfo.InvariantCulture),
                $"{r.Ours.Elapsed.TotalMicroseconds.ToString("0", CultureInfo.InvariantCulture)} us",
            };
            if (kernel)
                cells.Add(r.Kernel is null ? "" : !r.Kernel.Verified ? "not verified" : (r.Kernel.Accepted ? "accepted" : "refused") + (r.Disagree ? " [yellow](disagrees)[/]" : ""));
            table.AddRow(cells.ToArray());
        }
        console.Write(table);
        foreach (var r in rows)
        {
            if (r.Ours.Error is { } e)
            {
                output.WriteLine();
                output.WriteLine($"{r.Program}: refused at instruction {e.InstructionIndex}: {e.Instruction}");
                if (e.SourceLine is { } line)
                    output.WriteLine($"  {line.FileName}:{line.Line}: {line.Text.Trim()}");
                output.WriteLine($"  {e.Message}");
                if (e.RegisterState is not null)
                    output.WriteLine($"  state: {e.RegisterState}");
                if (e.Hint is not null)
                    output.WriteLine($"  hint: {e.Hint}");
            }
            if (r.Kernel is { Verified: false } unverified)
                output.WriteLine($"{r.Program}: the kernel did not verify it (the load failed before its verifier ran): {unverified.Message}");
            else if (r.Kernel is { Accepted: false } k)
                output.WriteLine($"{r.Program}: the kernel refused it{(k.InstructionIndex is { } i ? $" at instruction {i}" : "")}: {k.Message}");
            if (withLog && r.Ours.Log is not null)
            {
                output.WriteLine();
                output.WriteLine($"--- {r.Program}: SharpBpf verifier trace ---");
                output.Write(r.Ours.Log);
            }
            if (withLog && r.Kernel?.Log is not null)
            {
                output.WriteLine($"--- {r.Program}: kernel verifier log ---");
                output.Write(r.Kernel.Log);
            }
        }
    }
}
