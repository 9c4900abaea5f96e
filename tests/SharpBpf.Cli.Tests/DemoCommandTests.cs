using SharpBpf.Cli;

namespace SharpBpf.Cli.Tests;

public class DemoCommandTests
{
    [Fact]
    public async Task VmDemoRunsTheFilterOverAGeneratedCaptureAndDropsTheDeniedHalfOfTheSecondHalf()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await CliApp.RunAsync(["demo", "--vm", "--packets", "400"], output, error);
        Assert.True(code == 0, error.ToString());
        var text = output.ToString();
        // 400 alternating packets from two senders; the rule denying the second comes at packet 200,
        // so it drops the second sender's 100 packets of the second half.
        Assert.Contains("ran 400 packets: passed 300, dropped 100", text);
        Assert.Contains("deny ip 10.200.0.3/32 src", text);
        Assert.DoesNotContain("sharpbpf-demo-", Directory.EnumerateFiles(Path.GetTempPath(), "sharpbpf-demo-*.pcap")
            .Select(Path.GetFileName).Where(n => n!.Contains($"-{Environment.ProcessId}.", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("--packets", "1")]
    [InlineData("--seconds", "0")]
    [InlineData("--rate", "0")]
    public async Task OutOfRangeOptionsAreUsageErrors(string option, string value)
    {
        var error = new StringWriter();
        Assert.Equal(CliApp.ExitUsage, await CliApp.RunAsync(["demo", option, value], new StringWriter(), error));
        Assert.Contains("--packets", error.ToString());
    }
}
