using System.CommandLine;
using System.CommandLine.Help;

namespace SharpBpf.Cli;

/// <summary>Builds the root command from the commands in this folder, one file a command.</summary>
public static class CliApp
{
    /// <summary>Exit code: the input was refused (bad file, verifier rejection, kernel refusal, missing privilege).</summary>
    public const int ExitRefused = 1;

    /// <summary>Exit code: the command line itself was wrong.</summary>
    public const int ExitUsage = 2;

    /// <summary>The tool's name as users type it (the assembly is SharpBpf.Cli: see the project file).</summary>
    public const string ToolName = "sharpbpf";

    public static Command BuildRoot()
    {
        // A RootCommand takes its name from the executable (SharpBpf.Cli under 'dotnet run'); help must say sharpbpf.
        var root = new Command(ToolName, "sharpbpf: load, verify, run and attach eBPF/XDP programs from .NET")
        {
            new HelpOption(),
            new VersionOption(),
        };
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
