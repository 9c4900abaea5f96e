using System.CommandLine;

namespace SharpBpf.Cli;

/// <summary>Builds the root command from the commands in this folder, one file a command.</summary>
public static class CliApp
{
    /// <summary>Exit code: the input was refused (bad file, verifier rejection, kernel refusal, missing privilege).</summary>
    public const int ExitRefused = 1;

    /// <summary>Exit code: the command line itself was wrong.</summary>
    public const int ExitUsage = 2;

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("sharpbpf: load, verify, run and attach eBPF/XDP programs from .NET");
        root.Subcommands.Add(Commands.InspectCommand.Build());
        root.Subcommands.Add(Commands.ConformanceCommand.Build());
        root.Subcommands.Add(Commands.ConformancePluginCommand.Build());
        root.Subcommands.Add(Commands.AsmCommand.Build());
        root.Subcommands.Add(Commands.DisasmCommand.Build());
        root.Subcommands.Add(Commands.VerifyCommand.Build());
        root.Subcommands.Add(Commands.TestRunCommand.Build());
        root.Subcommands.Add(Commands.RunCommand.Build());
        root.Subcommands.Add(Commands.ProgCommand.Build());
        root.Subcommands.Add(Commands.MapCommand.Build());
        root.Subcommands.Add(Commands.FeaturesCommand.Build());
        root.Subcommands.Add(Commands.XdpCommand.Build());
        root.Subcommands.Add(Commands.FilterCommand.Build());
        root.Subcommands.Add(Commands.DemoCommand.Build());
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        var root = BuildRoot();
        var config = new InvocationConfiguration
        {
            Output = stdout ?? Console.Out,
            Error = stderr ?? Console.Error,
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
                await config.Error.WriteLineAsync(error.Message);
            return ExitUsage;
        }
        return await parse.InvokeAsync(config);
    }
}
