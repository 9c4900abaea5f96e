using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace SharpBpf.Linux.Filter;

/// <summary>What a rule asks for when it matches. The values are the XDP actions the filter returns.</summary>
public enum FilterAction : uint
{
    /// <summary>Drop the packet (XDP_DROP). A matching deny rule wins over any matching allow rule.</summary>
    Deny = 1,

    /// <summary>Pass the packet (XDP_PASS), unless a deny rule also matches.</summary>
    Allow = 2,
}

/// <summary>Which address or port of the packet a rule looks at.</summary>
[Flags]
public enum FilterDirection
{
    Source = 1,
    Destination = 2,
    Both = Source | Destination,
}

/// <summary>Which transports a port rule applies to.</summary>
[Flags]
public enum FilterTransport
{
    Tcp = 1,
    Udp = 2,
    Both = Tcp | Udp,
}

/// <summary>The kinds of rule the filter matches on.</summary>
public enum FilterRuleKind
{
    Ip,
    Port,
    Mac,
    Protocol,
}

/// <summary>
/// One filter rule: what to match and what to do. Build rules with <see cref="Ip(string, FilterDirection, FilterAction)"/>,
/// <see cref="Port"/>, <see cref="Mac"/> and <see cref="Protocol(string, FilterAction)"/>; bad input throws
/// <see cref="FilterRuleException"/> before anything is changed.
/// </summary>
public sealed record FilterRule
{
    private FilterRule(FilterRuleKind kind, FilterAction action, FilterDirection direction)
    {
        Kind = kind;
        Action = action;
        Direction = direction;
    }

    public FilterRuleKind Kind { get; }
    public FilterAction Action { get; }

    /// <summary>The side(s) matched, for IP, port and MAC rules (protocol rules: <see cref="FilterDirection.Both"/>).</summary>
    public FilterDirection Direction { get; }

    /// <summary>The prefix of an IP rule.</summary>
    public IPNetwork? Prefix { get; private init; }

    /// <summary>The port of a port rule.</summary>
    public int PortNumber { get; private init; }

    /// <summary>The transports of a port rule.</summary>
    public FilterTransport Transports { get; private init; }

    /// <summary>The address of a MAC rule.</summary>
    public PhysicalAddress? MacAddress { get; private init; }

    /// <summary>The IP protocol number of a protocol rule.</summary>
    public byte ProtocolNumber { get; private init; }

    /// <summary>An IPv4 or IPv6 prefix ("10.0.0.0/8", "fd00::/8"); a bare address means the one host.</summary>
    public static FilterRule Ip(string prefix, FilterDirection direction = FilterDirection.Both, FilterAction action = FilterAction.Deny)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        return Ip(ParsePrefix(prefix), direction, action);
    }

    public static FilterRule Ip(IPNetwork prefix, FilterDirection direction = FilterDirection.Both, FilterAction action = FilterAction.Deny)
    {
        CheckDirection(direction);
        CheckAction(action);
        if (prefix.BaseAddress.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            throw new FilterRuleException($"'{prefix}' is neither an IPv4 nor an IPv6 prefix");
        return new FilterRule(FilterRuleKind.Ip, action, direction) { Prefix = prefix };
    }

    /// <summary>A TCP and/or UDP port (1..65535).</summary>
    public static FilterRule Port(int port, FilterTransport transports = FilterTransport.Both,
        FilterDirection direction = FilterDirection.Both, FilterAction action = FilterAction.Deny)
    {
        if (port is < 1 or > 65535)
            throw new FilterRuleException($"port {port} is out of range: a TCP/UDP port is 1..65535");
        if (transports is not (FilterTransport.Tcp or FilterTransport.Udp or FilterTransport.Both))
            throw new FilterRuleException($"transport '{transports}' is not TCP, UDP or both");
        CheckDirection(direction);
        CheckAction(action);
        return new FilterRule(FilterRuleKind.Port, action, direction) { PortNumber = port, Transports = transports };
    }

    /// <summary>A MAC address ("02:00:00:00:00:01" or with '-'), matched as the frame's source and/or destination.</summary>
    public static FilterRule Mac(string address, FilterDirection direction = FilterDirection.Source, FilterAction action = FilterAction.Deny)
    {
        ArgumentNullException.ThrowIfNull(address);
        var parts = address.Trim().Split(':', '-');
        var bytes = new byte[6];
        if (parts.Length != 6 || !parts.Select((part, i) =>
                part.Length is 1 or 2 && byte.TryParse(part, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out bytes[i])).All(ok => ok))
            throw new FilterRuleException($"'{address}' is not a MAC address (expected six hex bytes like 02:00:00:00:00:01)");
        CheckDirection(direction);
        CheckAction(action);
        return new FilterRule(FilterRuleKind.Mac, action, direction) { MacAddress = new PhysicalAddress(bytes) };
    }

    /// <summary>An IP protocol by name (tcp, udp, icmp, icmpv6) or number (0..255).</summary>
    public static FilterRule Protocol(string protocol, FilterAction action = FilterAction.Deny)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        var number = protocol.Trim().ToLowerInvariant() switch
        {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            "icmpv6" or "ipv6-icmp" => 58,
            "sctp" => 132,
            "gre" => 47,
            var text when int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) => n,
            _ => -1,
        };
        if (number is < 0 or > 255)
            throw new FilterRuleException($"'{protocol}' is not an IP protocol (tcp, udp, icmp, icmpv6, sctp, gre or a number 0..255)");
        return Protocol((byte)number, action);
    }

    public static FilterRule Protocol(byte protocol, FilterAction action = FilterAction.Deny)
    {
        CheckAction(action);
        return new FilterRule(FilterRuleKind.Protocol, action, FilterDirection.Both) { ProtocolNumber = protocol };
    }

    /// <summary>The rule as the CLI spells it, e.g. "deny ip 10.0.0.0/8 src" or "allow port 22 tcp dst".</summary>
    public override string ToString()
    {
        var action = Action == FilterAction.Deny ? "deny" : "allow";
        return Kind switch
        {
            FilterRuleKind.Ip => $"{action} ip {Prefix}{DirectionText}",
            FilterRuleKind.Port => $"{action} port {PortNumber}{TransportText}{DirectionText}",
            FilterRuleKind.Mac => $"{action} mac {FormatMac(MacAddress!)}{DirectionText}",
            FilterRuleKind.Protocol => $"{action} protocol {ProtocolName(ProtocolNumber)}",
            _ => throw new System.Diagnostics.UnreachableException(),
        };
    }

    /// <summary>What the rule matches, without its action: "ip 10.0.0.0/8 src".</summary>
    public string Match => ToString()[(ToString().IndexOf(' ', StringComparison.Ordinal) + 1)..];

    private string DirectionText => Direction switch
    {
        FilterDirection.Source => " src",
        FilterDirection.Destination => " dst",
        _ => "",
    };

    private string TransportText => Transports switch
    {
        FilterTransport.Tcp => " tcp",
        FilterTransport.Udp => " udp",
        _ => "",
    };

    internal static string FormatMac(PhysicalAddress mac) =>
        string.Join(':', mac.GetAddressBytes().Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));

    internal static string ProtocolName(byte protocol) => protocol switch
    {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        47 => "gre",
        58 => "icmpv6",
        132 => "sctp",
        _ => protocol.ToString(CultureInfo.InvariantCulture),
    };

    internal static IPNetwork ParsePrefix(string text)
    {
        text = text.Trim();
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var addressText = slash < 0 ? text : text[..slash];
        if (!IPAddress.TryParse(addressText, out var address) ||
            address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6) ||
            addressText.Count(c => c == '.') is not (0 or 3))
            throw new FilterRuleException($"'{text}' is not an IP prefix: '{addressText}' is not an IPv4 or IPv6 address");
        if (address.IsIPv4MappedToIPv6)
            throw new FilterRuleException($"'{text}': write IPv4-mapped addresses as plain IPv4");
        var bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var length = bits;
        if (slash >= 0 && (!int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > bits))
            throw new FilterRuleException($"'{text}' is not an IP prefix: the length after '/' must be 0..{bits}");
        var network = new IPNetwork(Mask(address, length), length);
        if (!network.BaseAddress.Equals(address))
            throw new FilterRuleException($"'{text}' has host bits set past /{length}: did you mean {network}?");
        return network;
    }

    private static IPAddress Mask(IPAddress address, int length)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(length - i * 8, 0, 8);
            bytes[i] &= (byte)(0xff00 >> keep);
        }
        return new IPAddress(bytes);
    }

    private static void CheckDirection(FilterDirection direction)
    {
        if (direction is not (FilterDirection.Source or FilterDirection.Destination or FilterDirection.Both))
            throw new FilterRuleException($"direction '{direction}' is not source, destination or both");
    }

    private static void CheckAction(FilterAction action)
    {
        if (action is not (FilterAction.Deny or FilterAction.Allow))
            throw new FilterRuleException($"action '{action}' is not deny or allow");
    }
}

/// <summary>A rule, or an operation on the filter's rules, was refused; nothing was changed.</summary>
public class FilterRuleException : BpfException
{
    public FilterRuleException(string message) : base(message) { }
    public FilterRuleException(string message, Exception? inner) : base(message, inner) { }
}
