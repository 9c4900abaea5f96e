using System.CommandLine;
using System.Text.Json;
using SharpBpf.Vm;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf conformance PATH... [--engine interpreter|jit|kernel] [--jit-tier T] [--json]</c>: runs bpf_conformance <c>.data</c>
/// files (folders are searched recursively) and ends with <c>N passed, N failed</c> (and <c>, N skipped</c>).
/// Exit code 0 when nothing failed, 1 otherwise or when the engine is not available.
/// </summary>
public static class ConformanceCommand
{
    public static Command Build()
    {
        var paths = new Argument<string[]>("paths") { Description = ".data files or folders of them", Arity = ArgumentArity.OneOrMore };
        var engine = EngineOption.Create();
        var jitTier = EngineOption.CreateJitTier();
        var json = new Option<bool>("--json") { Description = "Print the results as JSON" };
        var command = new Command("conformance", "Run bpf_conformance test files on an engine")
        {
            paths, engine, jitTier, json,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var selected = parse.GetValue(engine);
            var tiering = parse.GetValue(jitTier);
            if (!EngineOption.EnsureAvailable(selected, error, vmOnly: true))
                return CliApp.ExitRefused;

            var files = new List<string>();
            foreach (var path in parse.GetValue(paths) ?? [])
            {
                if (Directory.Exists(path))
                    files.AddRange(Directory.EnumerateFiles(path, "*.data", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
                else if (File.Exists(path))
                    files.Add(path);
                else
                {
                    error.WriteLine($"conformance: no such file or folder: {path}");
                    return CliApp.ExitRefused;
                }
            }

            var outcomes = files.Select(f => ConformanceRunner.RunFile(f, selected, tiering)).ToList();
            int passed = outcomes.Count(o => o.Verdict == ConformanceVerdict.Passed);
            int failed = outcomes.Count(o => o.Verdict == ConformanceVerdict.Failed);
            int skipped = outcomes.Count(o => o.Verdict == ConformanceVerdict.Skipped);
            if (parse.GetValue(json))
            {
                var document = new
                {
                    engine = selected.ToName(),
                    passed,
                    failed,
                    skipped,
                    results = outcomes.Select(o => new
                    {
                        file = o.File,
                        verdict = o.Verdict.ToString().ToLowerInvariant(),
                        negative = o.Negative,
                        detail = o.Detail,
                        expected = o.Expected is { } e ? $"0x{e:x}" : null,
                        actual = o.Actual is { } a ? $"0x{a:x}" : null,
                    }),
                    jitTiering = selected == VmEngine.Jit ? EngineOption.TieringName(tiering) : null,
                };
                output.WriteLine(JsonSerializer.Serialize(document, new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                foreach (var o in outcomes.Where(o => o.Verdict != ConformanceVerdict.Passed))
                    output.WriteLine($"{(o.Verdict == ConformanceVerdict.Failed ? "FAIL" : "SKIP")} {o.File}: {o.Detail}");
                var skipReasons = outcomes.Where(o => o.Verdict == ConformanceVerdict.Skipped)
                    .GroupBy(o => o.Detail).Select(g => $"{g.Count()} {g.Key}");
                var line = $"{passed} passed, {failed} failed";
                if (skipped > 0)
                    line += $", {skipped} skipped ({string.Join("; ", skipReasons)})";
                output.WriteLine(line);
            }
            return failed == 0 ? 0 : CliApp.ExitRefused;
        });
        return command;
    }
}
