using System.Buffers.Binary;
using SharpBpf.Linux.Filter;
using SharpBpf.Xdp;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>Rule management over the filter's map layouts, without a kernel.</summary>
public sealed class FilterStateTests
{
    private readonly Dictionary<string, InMemoryFilterMap> maps = InMemoryFilterMap.FilterMaps();
    private readonly FilterState state;

    public FilterStateTests() => state = new FilterState(name => maps[name]);

    private string Snapshot() => string.Join(";", maps.Values.Select(m =>
    {
        var parts = new List<string>();
        var key = Array.Empty<byte>();
        var next = new byte[m.KeySize];
        var value = new byte[m.UserValueSize];
        while (m.TryGetNextKey(key, next))
        {
            key = (byte[])next.Clone();
            m.TryLookup(key, value);
            parts.Add(Convert.ToHexString(key) + "=" + Convert.ToHexString(value));
        }
        return m.Name + ":" + string.Join(",", parts);
    }));

    [Fact]
    public void IpRuleWritesOneTrieEntryPerSideWithTheWireAddress()
    {
        var id = state.Add(FilterRule.Ip("10.1.0.0/16"));
        Assert.Equal(1, id);
        Assert.Equal(1, maps[FilterState.SourceV4Map].Count);
        Assert.Equal(1, maps[FilterState.DestinationV4Map].Count);
        var value = new byte[8];
        Assert.True(maps[FilterState.SourceV4Map].TryLookup([16, 0, 0, 0, 10, 1, 0, 0], value));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(value));
        Assert.Equal((uint)FilterAction.Deny, BinaryPrimitives.ReadUInt32LittleEndian(value.AsSpan(4)));

        var v6 = state.Add(FilterRule.Ip("fd00::/8", FilterDirection.Destination, FilterAction.Allow));
        Assert.Equal(2, v6);
        Assert.Equal(0, maps[FilterState.SourceV6Map].Count);
        Assert.True(maps[FilterState.DestinationV6Map].TryLookup([8, 0, 0, 0, 0xfd, .. new byte[15]], value));
    }

    [Fact]
    public void ListRebuildsEveryKindOfRuleWithItsHits()
    {
        state.Add(FilterRule.Ip("192.168.0.0/24", FilterDirection.Source));
        var port = state.Add(FilterRule.Port(53, FilterTransport.Udp, FilterDirection.Destination));
        state.Add(FilterRule.Port(22, FilterTransport.Both, FilterDirection.Both, FilterAction.Allow));
        state.Add(FilterRule.Mac("02:00:00:00:00:01"));
        state.Add(FilterRule.Protocol("icmp"));

        // Hits for the port rule on two CPUs: 3+4 packets, 100+200 bytes.
        var hits = new byte[32];
        BinaryPrimitives.WriteUInt64LittleEndian(hits, 3);
        BinaryPrimitives.WriteUInt64LittleEndian(hits.AsSpan(8), 100);
        BinaryPrimitives.WriteUInt64LittleEndian(hits.AsSpan(16), 4);
        BinaryPrimitives.WriteUInt64LittleEndian(hits.AsSpan(24), 200);
        maps[FilterState.HitsMap].Update(BitConverter.GetBytes((uint)port), hits);

        var rules = state.List();
        Assert.Equal(
            ["deny ip 192.168.0.0/24 src", "deny port 53 udp dst", "allow port 22", "deny mac 02:00:00:00:00:01 src", "deny protocol icmp"],
            rules.Select(r => r.Rule.ToString()));
        Assert.Equal([1, 2, 3, 4, 5], rules.Select(r => r.Id));
        Assert.Equal((7UL, 300UL), (rules[1].Packets, rules[1].Bytes));
        Assert.Equal(4, maps[FilterState.PortsMap].Count - 1); // 22: tcp/udp x src/dst, plus 53
    }

    [Fact]
    public void AddingTheSameRuleAgainGivesItsIdAndChangesNothing()
    {
        var id = state.Add(FilterRule.Port(80, FilterTransport.Tcp));
        var before = Snapshot();
        Assert.Equal(id, state.Add(FilterRule.Port(80, FilterTransport.Tcp)));
        Assert.Equal(before, Snapshot());
    }

    [Fact]
    public void OverlappingRulesAreRefusedAndChangeNothing()
    {
        state.Add(FilterRule.Ip("10.0.0.0/8", FilterDirection.Source));
        var before = Snapshot();
        var other = Assert.Throws<FilterRuleException>(() => state.Add(FilterRule.Ip("10.0.0.0/8", FilterDirection.Source, FilterAction.Allow)));
        Assert.Contains("rule #1", other.Message);
        Assert.Throws<FilterRuleException>(() => state.Add(FilterRule.Ip("10.0.0.0/8")));
        Assert.Equal(before, Snapshot());
    }

    [Theory]
    [InlineData("10.0.0.1/8", "host bits")]
    [InlineData("10.0.0.0/33", "0..32")]
    [InlineData("300.0.0.1", "not an IPv4 or IPv6")]
    [InlineData("10.1", "not an IPv4 or IPv6")]
    [InlineData("fd00::/129", "0..128")]
    [InlineData("banana", "not an IPv4 or IPv6")]
    public void BadPrefixesAreRefusedClearly(string prefix, string reason)
    {
        var error = Assert.Throws<FilterRuleException>(() => FilterRule.Ip(prefix));
        Assert.Contains(reason, error.Message);
        Assert.Contains(prefix, error.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(70000)]
    [InlineData(-1)]
    public void PortsOutOfRangeAreRefused(int port) =>
        Assert.Contains($"port {port}", Assert.Throws<FilterRuleException>(() => FilterRule.Port(port)).Message);

    [Theory]
    [InlineData("02:00:00:00:00")]
    [InlineData("02:00:00:00:00:zz")]
    [InlineData("020000000001")]
    public void BadMacsAreRefused(string mac) => Assert.Throws<FilterRuleException>(() => FilterRule.Mac(mac));

    [Fact]
    public void ProtocolsByNameAndNumber()
    {
        Assert.Equal(58, FilterRule.Protocol("ICMPv6").ProtocolNumber);
        Assert.Equal(132, FilterRule.Protocol("132").ProtocolNumber);
        Assert.Throws<FilterRuleException>(() => FilterRule.Protocol("256"));
        Assert.Throws<FilterRuleException>(() => FilterRule.Protocol("tcpx"));
    }

    [Fact]
    public void RemoveTakesTheWholeRuleAndFreesItsId()
    {
        var empty = Snapshot();
        var id = state.Add(FilterRule.Port(443));
        Assert.Equal(id, state.Remove(FilterRule.Port(443)));
        Assert.Empty(state.List());
        Assert.Throws<FilterRuleException>(() => state.Remove(FilterRule.Port(443)));
        Assert.Equal(id, state.Add(FilterRule.Mac("02:00:00:00:00:09")));

        // Removing one side of a two-sided rule is refused: the rule stays whole.
        state.Add(FilterRule.Ip("fd00::/16"));
        var before = Snapshot();
        Assert.Contains("only part of", Assert.Throws<FilterRuleException>(() => state.Remove(FilterRule.Ip("fd00::/16", FilterDirection.Source))).Message);
        Assert.Equal(before, Snapshot());
        Assert.NotEqual(empty, before);
    }

    [Fact]
    public void AFullMapRollsBackTheEntriesAlreadyWritten()
    {
        var small = InMemoryFilterMap.FilterMaps(ruleCapacity: 3);
        var limited = new FilterState(name => small[name]);
        limited.Add(FilterRule.Port(1, FilterTransport.Tcp, FilterDirection.Source));
        // Needs four port entries, only two fit: refused, and the two written are taken back.
        var error = Assert.Throws<FilterRuleException>(() => limited.Add(FilterRule.Port(2)));
        Assert.Contains("E2BIG", error.Message);
        Assert.Equal(1, small[FilterState.PortsMap].Count);
        Assert.Single(limited.List());
    }

    [Fact]
    public void PolicyAndStatisticsSumOverCpus()
    {
        Assert.Equal(FilterPolicy.Allow, state.Policy);
        state.Policy = FilterPolicy.Deny;
        Assert.Equal(FilterPolicy.Deny, state.Policy);
        var value = new byte[8];
        maps[FilterState.ConfigMap].TryLookup(new byte[4], value);
        Assert.Equal((uint)XdpAction.Drop, BinaryPrimitives.ReadUInt32LittleEndian(value));

        var drops = new byte[32];
        BinaryPrimitives.WriteUInt64LittleEndian(drops, 5);
        BinaryPrimitives.WriteUInt64LittleEndian(drops.AsSpan(8), 500);
        BinaryPrimitives.WriteUInt64LittleEndian(drops.AsSpan(16), 6);
        BinaryPrimitives.WriteUInt64LittleEndian(drops.AsSpan(24), 600);
        maps[FilterState.StatsMap].Update(BitConverter.GetBytes((uint)XdpAction.Drop), drops);
        var stats = state.ReadStatistics();
        Assert.Equal(new FilterCounter(11, 1100), stats.Dropped);
        Assert.Equal(default, stats.Passed);

        state.ResetCounters();
        Assert.Equal(0UL, state.ReadStatistics().TotalPackets);
    }

    [Fact]
    public void ANarrowerPrefixUnderAWiderOneIsItsOwnRule()
    {
        // An LPM lookup of 10.1.2.3/32 answers with 10.0.0.0/8's value; the state must not take that for the same key.
        var wide = state.Add(FilterRule.Ip("10.0.0.0/8", FilterDirection.Source));
        var narrow = state.Add(FilterRule.Ip("10.1.2.3", FilterDirection.Source, FilterAction.Allow));
        Assert.NotEqual(wide, narrow);
        Assert.Equal(["deny ip 10.0.0.0/8 src", "allow ip 10.1.2.3/32 src"], state.List().Select(r => r.Rule.ToString()));
        Assert.Equal(narrow, state.Remove(FilterRule.Ip("10.1.2.3", FilterDirection.Source)));
        Assert.Throws<FilterRuleException>(() => state.Remove(FilterRule.Ip("10.1.2.3", FilterDirection.Source)));
        Assert.Single(state.List());
    }

    [Fact]
    public void AddRangeGivesIdsInOrder()
    {
        var rules = Enumerable.Range(0, 300).Select(i => FilterRule.Ip($"10.{i / 256}.{i % 256}.0/24", FilterDirection.Source)).ToList();
        Assert.Equal(Enumerable.Range(1, 300), state.AddRange(rules));
        Assert.Equal(300, state.List().Count);
    }
}
