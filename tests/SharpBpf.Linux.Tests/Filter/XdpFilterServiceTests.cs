using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using SharpBpf.Hosting;
using SharpBpf.Linux.Filter;
using SharpBpf.Linux.Links;
using SharpBpf.Linux.Tests.Support;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>The hosted service keeps the filter attached while it runs, serves its metrics, and detaches on stop.</summary>
[Collection(XdpFilterKernelTests.Collection)]
public sealed class XdpFilterServiceTests
{
    private static string Get(System.Net.IPEndPoint endPoint)
    {
        using var client = new TcpClient(AddressFamily.InterNetwork);
        client.Connect(endPoint);
        var stream = client.GetStream();
        stream.Write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"u8);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    [Fact]
    public async Task StartAttachesAndServesMetricsStopDetaches()
    {
        using var env = KernelTestEnvironment.Create();
        Ip.Run("-n", env.Ns.Name, "link", "set", "lo", "up"); // the metrics endpoint listens on the namespace's loopback
        var options = new XdpFilterOptions
        {
            PinDirectory = Path.Combine(env.BpfFs, "filter"),
            Mode = XdpAttachMode.Native,
            Policy = FilterPolicy.Allow,
            MetricsAddress = "127.0.0.1:0",
        };
        options.Interfaces.Add(KernelTestEnvironment.Veth1);
        options.Rules.Add(FilterRule.Port(53, FilterTransport.Udp, FilterDirection.Destination));
        using (var filter = XdpFilter.Open(options.PinDirectory))
        {
            var service = new XdpFilterService(filter, Options.Create(options), NullLogger<XdpFilterService>.Instance);
            env.Ns.Run(() => service.StartAsync(CancellationToken.None).GetAwaiter().GetResult());
            try
            {
                Assert.Single(env.Ns.Run(filter.Attachments));
                var frame = FramePacket.Udp("10.0.0.1", "10.0.0.2", 40000, 53).Build();
                Assert.Equal(30, env.Ns.Run(() => FrameSender.Send(env.Veth0Index, frame, 30, TimeSpan.FromSeconds(10))));
                var deadline = DateTime.UtcNow.AddSeconds(5);
                while (filter.ReadStatistics().Dropped.Packets < 30 && DateTime.UtcNow < deadline)
                    Thread.Sleep(5);

                // The endpoint listens in the test's namespace (the service started there): ask from there.
                var text = env.Ns.Run(() => Get(service.MetricsEndPoint!));
                Assert.Contains("sharpbpf_filter_packets_total{action=\"drop\"} 30\n", text);
                Assert.Contains("rule=\"deny port 53 udp dst\"} 30\n", text);
            }
            finally
            {
                env.Ns.Run(() => service.StopAsync(CancellationToken.None).GetAwaiter().GetResult());
                await service.DisposeAsync();
            }
            Assert.Empty(env.Ns.Run(filter.Attachments));
            Assert.Empty(env.Ns.Run(() => XdpHook.Query(env.Veth1Index)).Programs);
            // The rules stay pinned for the next start.
            Assert.Single(filter.ListRules());
        }
        env.AssertNoFdLeaks();
    }
}
