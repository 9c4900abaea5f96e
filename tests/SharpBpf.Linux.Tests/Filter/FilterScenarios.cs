using SharpBpf.Linux.Filter;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>
/// One table of packets and rule sets with the packets each rule set must drop, run on every engine that can run
/// the filter (the kernel through BPF_PROG_TEST_RUN, the kernel on a veth, the managed VM). The expectations are
/// written out by hand from the rules, so an engine that misparses a header fails here.
/// </summary>
public static class FilterScenarios
{
    public static readonly byte[] LanMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x09];

    /// <summary>The packets, by index.</summary>
    public static IReadOnlyList<(string Name, byte[] Frame)> Packets { get; } =
    [
        ("0 udp4 10.0.0.1:40000 -> 10.0.0.2:53", FramePacket.Udp("10.0.0.1", "10.0.0.2", 40000, 53).Build()),
        ("1 tcp4 10.0.0.1:40001 -> 10.0.0.2:22, IPv4 options",
            (FramePacket.Tcp("10.0.0.1", "10.0.0.2", 40001, 22) with { Ipv4Options = [1, 1, 1, 0] }).Build()),
        ("2 udp4 192.168.1.5:53 -> 10.0.0.2:40002", FramePacket.Udp("192.168.1.5", "10.0.0.2", 53, 40002).Build()),
        ("3 udp6 fd00::1:40000 -> fd00::2:53, hop-by-hop + destination options",
            (FramePacket.Udp("fd00::1", "fd00::2", 40000, 53) with { Ipv6Extensions = [0, 60] }).Build()),
        ("4 tcp6 2001:db8::1:40003 -> fd00::2:443, routing header",
            (FramePacket.Tcp("2001:db8::1", "fd00::2", 40003, 443) with { Ipv6Extensions = [43] }).Build()),
        ("5 icmp4 10.0.0.1 -> 10.0.0.2", FramePacket.Icmp("10.0.0.1", "10.0.0.2").Build()),
        ("6 icmp6 fd00::1 -> fd00::2", FramePacket.Icmp("fd00::1", "fd00::2").Build()),
        ("7 udp4 in 802.1ad 100 + 802.1Q 200, 10.0.0.1 -> 10.0.0.2:53",
            (FramePacket.Udp("10.0.0.1", "10.0.0.2", 40000, 53) with { VlanIds = [100, 200] }).Build()),
        ("8 tcp4 in 802.1Q 7, 192.168.1.5:40004 -> 10.0.0.2:22 from the LAN MAC",
            (FramePacket.Tcp("192.168.1.5", "10.0.0.2", 40004, 22) with { VlanIds = [7], SourceMac = LanMac }).Build()),
        ("9 udp4 non-first fragment 10.0.0.1 -> 10.0.0.2:53",
            (FramePacket.Udp("10.0.0.1", "10.0.0.2", 40000, 53) with { FragmentOffset = 8 }).Build()),
        ("10 udp6 non-first fragment fd00::1 -> fd00::2:53",
            (FramePacket.Udp("fd00::1", "fd00::2", 40000, 53) with { FragmentOffset = 8 }).Build()),
        ("11 ARP from 02:00:00:00:00:01", Arp()),
    ];

    /// <summary>A rule set, the policy, the packets it must drop (all others pass) and how many packets each rule
    /// (in the order added) must count.</summary>
    public sealed record Scenario(string Name, FilterPolicy Policy, FilterRule[] Rules, int[] Dropped, int[] Hits)
    {
        public override string ToString() => Name;
    }

    public static IReadOnlyList<Scenario> All { get; } =
    [
        new("no rules", FilterPolicy.Allow, [], [], []),
        new("deny ip 10.0.0.0/8 src", FilterPolicy.Allow, [FilterRule.Ip("10.0.0.0/8", FilterDirection.Source)], [0, 1, 5, 7, 9], [5]),
        new("deny ip 10.0.0.2 dst", FilterPolicy.Allow, [FilterRule.Ip("10.0.0.2", FilterDirection.Destination)], [0, 1, 2, 5, 7, 8, 9], [7]),
        new("deny ip 10.0.0.0/30 both sides", FilterPolicy.Allow, [FilterRule.Ip("10.0.0.0/30")], [0, 1, 2, 5, 7, 8, 9], [7]),
        new("deny ip fd00::/16 src", FilterPolicy.Allow, [FilterRule.Ip("fd00::/16", FilterDirection.Source)], [3, 6, 10], [3]),
        new("deny ip fd00::2 dst", FilterPolicy.Allow, [FilterRule.Ip("fd00::2", FilterDirection.Destination)], [3, 4, 6, 10], [4]),
        new("deny port 53 udp dst", FilterPolicy.Allow, [FilterRule.Port(53, FilterTransport.Udp, FilterDirection.Destination)], [0, 3, 7], [3]),
        new("deny port 53 any side", FilterPolicy.Allow, [FilterRule.Port(53)], [0, 2, 3, 7], [4]),
        new("deny port 22 tcp", FilterPolicy.Allow, [FilterRule.Port(22, FilterTransport.Tcp)], [1, 8], [2]),
        new("deny port 53 tcp (no TCP to 53)", FilterPolicy.Allow, [FilterRule.Port(53, FilterTransport.Tcp)], [], [0]),
        new("deny mac src", FilterPolicy.Allow, [FilterRule.Mac("02:00:00:00:00:09")], [8], [1]),
        new("deny mac dst", FilterPolicy.Allow, [FilterRule.Mac("02:00:00:00:00:02", FilterDirection.Destination)],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [12]),
        new("deny protocol icmp and icmpv6", FilterPolicy.Allow, [FilterRule.Protocol("icmp"), FilterRule.Protocol("icmpv6")], [5, 6], [1, 1]),
        new("deny protocol udp", FilterPolicy.Allow, [FilterRule.Protocol("udp")], [0, 2, 3, 7, 9, 10], [6]),
        new("longest prefix wins", FilterPolicy.Allow,
            [FilterRule.Ip("192.168.0.0/16", FilterDirection.Source), FilterRule.Ip("192.168.1.5", FilterDirection.Source, FilterAction.Allow)],
            [], [0, 2]),
        new("deny wins over allow", FilterPolicy.Allow,
            [FilterRule.Port(53, FilterTransport.Udp, FilterDirection.Destination, FilterAction.Allow), FilterRule.Ip("10.0.0.0/8", FilterDirection.Source)],
            [0, 1, 5, 7, 9], [3, 5]),
        new("default deny, allow udp 53", FilterPolicy.Deny,
            [FilterRule.Port(53, FilterTransport.Udp, FilterDirection.Destination, FilterAction.Allow)],
            [1, 2, 4, 5, 6, 8, 9, 10, 11], [3]),
    ];

    public static TheoryData<string> Names() => new(All.Select(s => s.Name));

    public static Scenario Get(string name) => All.Single(s => s.Name == name);

    private static byte[] Arp()
    {
        var frame = new byte[42];
        FramePacket.Udp("10.0.0.1", "10.0.0.2", 1, 1).Build().AsSpan(0, 12).CopyTo(frame);
        frame[12] = 0x08;
        frame[13] = 0x06;
        return frame;
    }
}
