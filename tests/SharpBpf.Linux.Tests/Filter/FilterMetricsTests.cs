using System.Net.Sockets;
using System.Text;
using SharpBpf.Linux.Filter;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests.Filter;

public sealed class FilterMetricsTests
{
    private static readonly FilterStatistics Stats = new(
        new Dictionary<XdpAction, FilterCounter>
        {
            [XdpAction.Aborted] = default,
            [XdpAction.Drop] = new(7, 700),
            [XdpAction.Pass] = new(3, 180),
            [XdpAction.Tx] = default,
            [XdpAction.Redirect] = default,
        },
        DateTimeOffset.UnixEpoch);

    private static readonly FilterRuleStatus[] Rules =
        [new(1, FilterRule.Ip("10.0.0.0/8", FilterDirection.Source), 7, 700), new(2, FilterRule.Port(22, action: FilterAction.Allow), 0, 0)];

    [Fact]
    public void FormatWritesOneSampleALineWithHelpAndType()
    {
        var text = FilterMetrics.Format(Stats, Rules, FilterPolicy.Deny, "eth0");
        Assert.Contains("# TYPE sharpbpf_filter_packets_total counter\n", text);
        Assert.Contains("sharpbpf_filter_packets_total{interface=\"eth0\",action=\"drop\"} 7\n", text);
        Assert.Contains("sharpbpf_filter_bytes_total{interface=\"eth0\",action=\"pass\"} 180\n", text);
        Assert.Contains("sharpbpf_filter_rule_packets_total{interface=\"eth0\",id=\"1\",rule=\"deny ip 10.0.0.0/8 src\"} 7\n", text);
        Assert.Contains("sharpbpf_filter_rules{interface=\"eth0\"} 2\n", text);
        Assert.Contains("sharpbpf_filter_default_deny{interface=\"eth0\"} 1\n", text);
        Assert.DoesNotContain("\r", text);
        // Every line is a comment or "name{labels} value".
        Assert.All(text.TrimEnd('\n').Split('\n'), line =>
            Assert.Matches(@"^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? \d+)$", line));
    }

    [Fact]
    public async Task ServerAnswersAGetWithTheMetrics()
    {
        await using var server = MetricsServer.Start("127.0.0.1:0", () => FilterMetrics.Format(Stats, Rules, FilterPolicy.Allow));
        using var client = new TcpClient();
        await client.ConnectAsync(server.EndPoint, TestContext.Current.CancellationToken);
        var stream = client.GetStream();
        await stream.WriteAsync("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), TestContext.Current.CancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var response = await reader.ReadToEndAsync(TestContext.Current.CancellationToken);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", response);
        Assert.Contains("Content-Type: text/plain; version=0.0.4", response);
        Assert.Contains("sharpbpf_filter_packets_total{action=\"drop\"} 7\n", response);
        Assert.Contains("sharpbpf_filter_default_deny 0\n", response);
    }

    [Theory]
    [InlineData("9435")]
    [InlineData("127.0.0.1")]
    [InlineData("nowhere:80")]
    public void BadAddressesAreRefused(string address) =>
        Assert.Contains(address, Assert.Throws<BpfException>(() => MetricsServer.ParseEndPoint(address)).Message);

    [Fact]
    public void AddressesParse()
    {
        Assert.Equal(9435, MetricsServer.ParseEndPoint("localhost:9435").Port);
        Assert.Equal("[::1]:80", MetricsServer.ParseEndPoint("[::1]:80").ToString());
    }
}
