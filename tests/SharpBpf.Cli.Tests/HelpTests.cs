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
        Assert.Contains("sharpbpf", output.ToString());
    }

    [Fact]
    public async Task UnknownOptionIsAUsageError()
    {
        var code = await CliApp.RunAsync(["--no-such-option"], new StringWriter(), new StringWriter());
        Assert.Equal(CliApp.ExitUsage, code);
    }
}
