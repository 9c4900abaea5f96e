using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>
/// The filter in the real kernel (loaded by bpftool, run by BPF_PROG_TEST_RUN): every rule kind drops exactly the
/// packets it matches and passes the rest, and the counters equal the packets run.
/// </summary>
public sealed class FilterKernelVerdictTests
{
    [Theory]
    [MemberData(nameof(FilterScenarios.Names), MemberType = typeof(FilterScenarios))]
    public void RulesDropExactlyTheMatchingPackets(string name)
    {
        BpftoolFilterRunner.RequireBpftool();
        var scenario = FilterScenarios.Get(name);
        var packets = FilterScenarios.Packets;
        var result = BpftoolFilterRunner.Run(scenario.Policy, scenario.Rules, [.. packets.Select(p => p.Frame)]);

        var expected = packets.Select((p, i) => $"{p.Name}: {(scenario.Dropped.Contains(i) ? XdpAction.Drop : XdpAction.Pass)}");
        var actual = packets.Select((p, i) => $"{p.Name}: {(XdpAction)result.Actions[i]}");
        Assert.Equal(expected, actual);
        Assert.Equal(scenario.Hits.Select(h => (ulong)h), result.Hits);
        Assert.Equal((ulong)scenario.Dropped.Length, result.Dropped.Packets);
        Assert.Equal((ulong)(packets.Count - scenario.Dropped.Length), result.Passed.Packets);
        var droppedBytes = scenario.Dropped.Aggregate(0UL, (sum, i) => sum + (ulong)packets[i].Frame.Length);
        Assert.Equal(droppedBytes, result.Dropped.Bytes);
    }
}
