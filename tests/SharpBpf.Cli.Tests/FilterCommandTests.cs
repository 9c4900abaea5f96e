using SharpBpf.Cli;

namespace SharpBpf.Cli.Tests;

public class FilterCommandTests
{
    [Theory]
    [InlineData("port", "70000", "port 70000 is out of range")]
    [InlineData("ip", "10.0.0.1/8", "host bits set")]
    [InlineData("ip", "10.0.0.0/33", "0..32")]
    [InlineData("mac", "02:00:00:00:00", "not a MAC address")]
    [InlineData("protocol", "banana", "not an IP protocol")]
    public async Task BadRulesAreRefusedBeforeTheStateIsOpened(string kind, string value, string message)
    {
        // The pin directory does not exist and is not on a bpffs: a rule that got that far would fail differently.
        var pins = Path.Combine(Path.GetTempPath(), $"sharpbpf-no-such-{Guid.NewGuid():N}");
        var error = new StringWriter();
        var code = await CliApp.RunAsync(["filter", "add", kind, value, "--pin-dir", pins], new StringWriter(), error);
        Assert.Equal(CliApp.ExitRefused, code);
        Assert.Contains(message, error.ToString());
        Assert.False(Directory.Exists(pins));
    }

    [Fact]
    public async Task ANonNumericPortIsAUsageError() =>
        Assert.Equal(CliApp.ExitUsage, await CliApp.RunAsync(["filter", "add", "port", "abc"], new StringWriter(), new StringWriter()));

    [Fact]
    public async Task APinDirectoryOffTheBpffsIsRefusedClearly()
    {
        var pins = Path.Combine(Path.GetTempPath(), $"sharpbpf-no-such-{Guid.NewGuid():N}");
        var error = new StringWriter();
        Assert.Equal(CliApp.ExitRefused, await CliApp.RunAsync(["filter", "list", "--pin-dir", pins], new StringWriter(), error));
        Assert.Contains("not on a bpffs", error.ToString());
        Assert.False(Directory.Exists(pins));
    }
}
