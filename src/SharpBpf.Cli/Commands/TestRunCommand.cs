using System.CommandLine;
using System.Text.Json;
using SharpBpf.Vm;
using SharpBpf.Xdp;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// <c>sharpbpf test-run FILE.o [--program NAME] (--data-hex HEX | --data FILE) [--repeat N] [--engine E] [--jit-tier T] [--json]</c>:
/// the test-run contract (BPF_PROG_TEST_RUN's shape) on a chosen engine.
/// </summary>
public static class TestRunCommand
{
    public static Command Build()
    {
        var file = new Argument<FileInfo>("file") { Description = "A BPF ELF object built by clang (-target bpf)." };
        var program = new Option<string?>("--program") { Description = "The program to run (default: the object's only XDP program)" };
        var dataHex = new Option<string?>("--data-hex") { Description = "The input packet as hex bytes" };
        var data = new Option<FileInfo?>("--data") { Description = "A file holding the input packet" };
        var repeat = new Option<int>("--repeat") { Description = "Runs (writes accumulate, as in the kernel)", DefaultValueFactory = _ => 1 };
        var engine = EngineOption.Create();
        var noVerify = EngineOption.CreateNoVerify();
        var jitTier = EngineOption.CreateJitTier();
        var json = new Option<bool>("--json") { Description = "Print JSON: retval, data_out, ns_per_run, engine, program" };
        var command = new Command("test-run", "Run a program once (or --repeat times) on one packet and show its verdict and output packet")
        {
            file, program, dataHex, data, repeat, engine, jitTier, json,
        };
        command.Options.Add(noVerify);
        var mapState = new MapStateOptions();
        mapState.AddTo(command);
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            var hex = parse.GetValue(dataHex);
            var dataFile = parse.GetValue(data);
            if ((hex is null) == (dataFile is null))
            {
                error.WriteLine("sharpbpf test-run: give exactly one of --data-hex and --data");
                return CliApp.ExitUsage;
            }
            int runs = parse.GetValue(repeat);
            if (runs < 1)
            {
                error.WriteLine("sharpbpf test-run: --repeat must be at least 1");
                return CliApp.ExitUsage;
            }
            byte[] packet;
            try
            {
                packet = hex is not null ? ConformanceRunner.ParseHex(hex) : File.ReadAllBytes(dataFile!.FullName);
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
            {
                error.WriteLine($"sharpbpf test-run: input packet: {e.Message}");
                return CliApp.ExitRefused;
            }
            var selected = parse.GetValue(engine);
            if (!EngineOption.EnsureAvailable(selected, error))
                return CliApp.ExitRefused;
            IDisposable owner;
            ITestRunnable runnable;
            IReadOnlyDictionary<string, MapAccess> maps;
            VmProgram? managed = null;
            if (selected == VmEngine.Kernel)
            {
                if (ProgramLoading.LoadKernel("test-run", parse.GetRequiredValue(file).FullName, parse.GetValue(program), error, spec => mapState.Prepare(parse, spec)) is not { } kernel)
                    return CliApp.ExitRefused;
                (owner, runnable, maps) = (kernel, kernel, mapState.Any(parse) ? MapStateOptions.Of(kernel) : new Dictionary<string, MapAccess>());
            }
            else
            {
                if (ProgramLoading.Load("test-run", parse.GetRequiredValue(file).FullName, parse.GetValue(program), selected, error, spec => mapState.Prepare(parse, spec), verify: !parse.GetValue(noVerify), tiering: parse.GetValue(jitTier)) is not { } l)
                    return CliApp.ExitRefused;
                (owner, runnable, maps) = (l.Collection, l.Program, MapStateOptions.Of(l.Collection));
                managed = l.Program;
            }
            using var collection = owner;
            TestRunResult result;
            try
            {
                mapState.Apply(parse, maps);
                result = runnable.TestRun(new TestRunOptions { Data = packet, Repeat = runs });
                mapState.Save(parse, maps);
            }
            catch (BpfException e)
            {
                error.WriteLine($"sharpbpf test-run: {e.Message}");
                return CliApp.ExitRefused;
            }
            if (parse.GetValue(json))
            {
                output.WriteLine(JsonSerializer.Serialize(new
                {
                    retval = result.ReturnValue,
                    action = ActionName(result.Action),
                    data_out = Convert.ToHexStringLower(result.DataOut),
                    ns_per_run = Math.Round(result.NanosecondsPerRun, 1),
                    engine = result.Engine,
                    program = result.Program,
                    trap = result.Trap,
                    trace = result.Trace,
                    jit_tier = managed?.Engine == VmEngine.Jit ? managed.JitTierName : null,
                }, new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                output.WriteLine($"program   {result.Program} ({(managed is not null ? EngineOption.Describe(managed) : result.Engine)})");
                output.WriteLine($"retval    {result.ReturnValue} ({ActionName(result.Action)})");
                output.WriteLine($"data_out  {Convert.ToHexStringLower(result.DataOut)} ({result.DataOut.Length} bytes)");
                output.WriteLine($"time      {result.NanosecondsPerRun:F1} ns per run over {runs} run(s)");
                if (result.Trap is not null)
                    output.WriteLine($"trap      {result.Trap}");
                foreach (var line in result.Trace)
                    output.WriteLine($"trace     {line}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>XDP_PASS etc., or the number when r0 is not an action.</summary>
    public static string ActionName(XdpAction action) => action switch
    {
        XdpAction.Aborted => "XDP_ABORTED",
        XdpAction.Drop => "XDP_DROP",
        XdpAction.Pass => "XDP_PASS",
        XdpAction.Tx => "XDP_TX",
        XdpAction.Redirect => "XDP_REDIRECT",
        _ => ((uint)action).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
