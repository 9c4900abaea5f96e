using SharpBpf.Cli;

namespace SharpBpf.Cli.Tests;

public class HelpTests
{
    [Fact]
    public async Task RootHelpExitsZeroAndNamesTheTool()
    {
        var output = new StringWriter();
        var code = await CliApp.RunAsync(["--help"], output, new StringWriter());
        Assert.Equal(0, code);
        Assert.Contains("Usage:\n  sharpbpf [command] [options]", output.ToString().ReplaceLineEndings("\n"));
    }

    [Fact]
    public async Task SubcommandHelpUsesTheToolName()
    {
        var output = new StringWriter();
        Assert.Equal(0, await CliApp.RunAsync(["filter", "run", "--help"], output, new StringWriter()));
        Assert.Contains("sharpbpf filter run [options]", output.ToString());
    }

    [Fact]
    public async Task VersionPrintsTheAssemblyVersion()
    {
        var output = new StringWriter();
        Assert.Equal(0, await CliApp.RunAsync(["--version"], output, new StringWriter()));
        Assert.Matches(@"^\d+\.\d+\.\d+", output.ToString());
    }

    [Fact]
    public async Task UnknownOptionIsAUsageError()
    {
        var code = await CliApp.RunAsync(["--no-such-option"], new StringWriter(), new StringWriter());
        Assert.Equal(CliApp.ExitUsage, code);
    }
}
