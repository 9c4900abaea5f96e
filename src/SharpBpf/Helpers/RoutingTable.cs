using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace SharpBpf.Helpers;

/// <summary>What a route does with a matching packet (the kernel's RTN_* route types that bpf_fib_lookup tells apart).</summary>
public enum RouteType
{
    /// <summary>RTN_UNICAST: forwarded through the route's interface (and gateway).</summary>
    Unicast,

    /// <summary>RTN_LOCAL: delivered to this host (bpf_fib_lookup: BPF_FIB_LKUP_RET_NOT_FWDED).</summary>
    Local,

    /// <summary>RTN_BROADCAST: delivered to this host (BPF_FIB_LKUP_RET_NOT_FWDED).</summary>
    Broadcast,

    /// <summary>RTN_BLACKHOLE (<c>ip route add blackhole</c>): BPF_FIB_LKUP_RET_BLACKHOLE.</summary>
    Blackhole,

    /// <summary>RTN_UNREACHABLE (<c>ip route add unreachable</c>): BPF_FIB_LKUP_RET_UNREACHABLE.</summary>
    Unreachable,

    /// <summary>RTN_PROHIBIT (<c>ip route add prohibit</c>): BPF_FIB_LKUP_RET_PROHIBIT.</summary>
    Prohibit,
}

/// <summary>One interface of a <see cref="RoutingTable"/>.</summary>
public sealed record RouteInterface(uint Ifindex, PhysicalAddress Mac, int Mtu, bool Forwarding)
{
    /// <summary>The interface's addresses (<see cref="RoutingTable.AddAddress"/>), used as source addresses.</summary>
    public List<IPAddress> Addresses { get; } = [];

    /// <summary>Link-layer header length added to the MTU by bpf_check_mtu (dev->hard_header_len: 14 for Ethernet
    /// and for the loopback device).</summary>
    public int HeaderLength { get; init; } = 14;
}

/// <summary>One route of a <see cref="RoutingTable"/>.</summary>
public sealed record Route(IPNetwork Prefix, RouteType Type, uint Ifindex, IPAddress? Gateway, int? Mtu, uint Metric, uint Table, IPAddress? Source);

/// <summary>
/// The network the managed VM's <c>bpf_fib_lookup</c> and <c>bpf_check_mtu</c> see: interfaces (ifindex, MAC, MTU,
/// forwarding on or off), routes in numbered tables (prefix to interface and gateway, with an MTU, a metric, a
/// type), and a neighbour table (IP to MAC per interface). Set it on <see cref="Vm.VmOptions.Routes"/>; it mirrors
/// what <c>ip link</c>, <c>ip addr</c>, <c>ip route</c> and <c>ip neigh</c> set up in a kernel namespace.
/// <para>
/// The loopback interface (ifindex 1, MTU 65536, forwarding on) is always present; <see cref="AddInterface"/> with
/// ifindex 1 replaces it. Full lookups (no BPF_FIB_LOOKUP_DIRECT) search the local table (255), then the main
/// table (254), then the default table (253), as the kernel's default rules do; FIB rules beyond those are not
/// modelled. The table is safe to read from several runs at once; change it between runs, not during one.
/// </para>
/// <example><code>
/// var routes = new RoutingTable()
///     .AddInterface(2, PhysicalAddress.Parse("02-00-00-00-00-02"))
///     .AddAddress(2, "10.0.0.2/24")
///     .AddRoute("10.9.0.0/16", ifindex: 2, gateway: "10.0.0.1")
///     .AddNeighbour(2, "10.0.0.1", PhysicalAddress.Parse("02-00-00-00-00-01"));
/// var options = VmOptions.Default with { Routes = routes };
/// </code></example>
/// </summary>
public sealed class RoutingTable
{
    /// <summary>RT_TABLE_MAIN.</summary>
    public const uint MainTable = 254;

    /// <summary>RT_TABLE_LOCAL.</summary>
    public const uint LocalTable = 255;

    /// <summary>RT_TABLE_DEFAULT.</summary>
    public const uint DefaultTable = 253;

    private readonly Dictionary<uint, RouteInterface> _interfaces = [];
    private readonly List<Route> _routes = [];
    private readonly Dictionary<(uint, IPAddress), PhysicalAddress> _neighbours = [];

    public RoutingTable() =>
        _interfaces[1] = new RouteInterface(1, new PhysicalAddress(new byte[6]), 65536, Forwarding: true);

    /// <summary>What a program sees with no table configured: a fresh network namespace, whose only interface is the
    /// loopback (ifindex 1, MTU 65536) with forwarding off, so bpf_fib_lookup answers BPF_FIB_LKUP_RET_FWD_DISABLED
    /// for it and -ENODEV for any other ifindex, as the kernel does in such a namespace (and in a root namespace
    /// with forwarding off, where test runs arrive on the loopback).</summary>
    public static RoutingTable Unconfigured { get; } = new RoutingTable().AddInterface(1, new PhysicalAddress(new byte[6]), 65536, forwarding: false);

    /// <summary>The interfaces by ifindex.</summary>
    public IReadOnlyDictionary<uint, RouteInterface> Interfaces => _interfaces;

    /// <summary>Every route, in the order added.</summary>
    public IReadOnlyList<Route> Routes => _routes;

    /// <summary>Adds (or replaces) an interface. <paramref name="forwarding"/> is the interface's
    /// net.ipv4.conf.IF.forwarding / net.ipv6.conf.IF.forwarding: without it lookups for packets that arrived on
    /// it give BPF_FIB_LKUP_RET_FWD_DISABLED.</summary>
    public RoutingTable AddInterface(uint ifindex, PhysicalAddress mac, int mtu = 1500, bool forwarding = true)
    {
        if (ifindex == 0)
            throw new ArgumentOutOfRangeException(nameof(ifindex), "ifindex 0 is not an interface");
        if (mac.GetAddressBytes().Length != 6)
            throw new ArgumentException($"interface {ifindex}: a MAC address has 6 bytes, not {mac.GetAddressBytes().Length}", nameof(mac));
        if (mtu is < 68 or > 65536)
            throw new ArgumentOutOfRangeException(nameof(mtu), $"interface {ifindex}: MTU {mtu} is outside 68..65536");
        _interfaces[ifindex] = new RouteInterface(ifindex, mac, mtu, forwarding);
        return this;
    }

    /// <summary>
    /// Adds an address to an interface, as <c>ip addr add</c> does: a local route to the address in the local table,
    /// the prefix route to the interface in the main table (metric 0 for IPv4, 256 for IPv6), and for IPv4 prefixes
    /// shorter than /31 a broadcast route in the local table.
    /// </summary>
    public RoutingTable AddAddress(uint ifindex, string addressWithPrefix)
    {
        var iface = Interface(ifindex);
        int slash = addressWithPrefix.IndexOf('/');
        var address = IPAddress.Parse(slash < 0 ? addressWithPrefix : addressWithPrefix[..slash]);
        int bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int length = slash < 0 ? bits : int.Parse(addressWithPrefix[(slash + 1)..]);
        if (length < 0 || length > bits)
            throw new ArgumentException($"'{addressWithPrefix}': prefix length {length} is outside 0..{bits}", nameof(addressWithPrefix));
        iface.Addresses.Add(address);
        _routes.Add(new Route(new IPNetwork(address, bits), RouteType.Local, ifindex, null, null, 0, LocalTable, address));
        var network = Network(address, length);
        bool v4 = bits == 32;
        _routes.Add(new Route(network, RouteType.Unicast, ifindex, null, null, v4 ? 0u : 256u, MainTable, address));
        if (v4 && length < 31)
        {
            var bytes = network.BaseAddress.GetAddressBytes();
            uint host = uint.MaxValue >> length;
            for (int i = 0; i < 4; i++)
                bytes[i] |= (byte)(host >> (24 - 8 * i));
            _routes.Add(new Route(new IPNetwork(new IPAddress(bytes), 32), RouteType.Broadcast, ifindex, null, null, 0, LocalTable, address));
        }
        return this;
    }

    /// <summary>
    /// Adds a route (<c>ip route add PREFIX [via GATEWAY] dev IF [mtu lock N] [metric M] [table T] [src S]</c>).
    /// <paramref name="mtu"/> is a locked route MTU (<c>mtu lock N</c>): the kernel's bpf_fib_lookup uses a route's
    /// MTU only when it is locked and otherwise the device's, so leave an unlocked <c>mtu N</c> out.
    /// <paramref name="metric"/> defaults to 0 for IPv4 and 1024 for IPv6, as <c>ip route</c> does. For
    /// <see cref="RouteType.Blackhole"/>, <see cref="RouteType.Unreachable"/> and <see cref="RouteType.Prohibit"/>
    /// routes <paramref name="ifindex"/> is ignored (pass 0).
    /// </summary>
    public RoutingTable AddRoute(string prefix, uint ifindex, string? gateway = null, int? mtu = null, uint? metric = null,
        uint table = MainTable, RouteType type = RouteType.Unicast, string? source = null)
    {
        var network = ParsePrefix(prefix);
        bool v4 = network.BaseAddress.AddressFamily == AddressFamily.InterNetwork;
        IPAddress? via = gateway is null ? null : IPAddress.Parse(gateway);
        if (via is not null && via.AddressFamily != network.BaseAddress.AddressFamily)
            throw new ArgumentException($"route {prefix}: gateway {gateway} is not of the prefix's family", nameof(gateway));
        if (type == RouteType.Unicast)
            Interface(ifindex);
        else
            ifindex = type is RouteType.Local or RouteType.Broadcast ? ifindex : 0;
        if (mtu is < 68 or > 65536)
            throw new ArgumentOutOfRangeException(nameof(mtu), $"route {prefix}: MTU {mtu} is outside 68..65536");
        if (table == 0)
            throw new ArgumentOutOfRangeException(nameof(table), "table 0 is not a routing table");
        _routes.Add(new Route(network, type, ifindex, via, mtu, metric ?? (v4 ? 0u : 1024u), table,
            source is null ? null : IPAddress.Parse(source)));
        return this;
    }

    /// <summary>Adds a reachable neighbour (<c>ip neigh add ADDRESS lladdr MAC dev IF nud permanent</c>).</summary>
    public RoutingTable AddNeighbour(uint ifindex, string address, PhysicalAddress mac)
    {
        Interface(ifindex);
        if (mac.GetAddressBytes().Length != 6)
            throw new ArgumentException($"neighbour {address}: a MAC address has 6 bytes", nameof(mac));
        _neighbours[(ifindex, IPAddress.Parse(address))] = mac;
        return this;
    }

    private RouteInterface Interface(uint ifindex) =>
        _interfaces.TryGetValue(ifindex, out var iface) ? iface
            : throw new ArgumentException($"interface {ifindex} is not in the routing table: add it with AddInterface first");

    private static IPNetwork ParsePrefix(string prefix)
    {
        int slash = prefix.IndexOf('/');
        if (prefix == "default")
            throw new ArgumentException("say 0.0.0.0/0 or ::/0 for a default route", nameof(prefix));
        if (!IPAddress.TryParse(slash < 0 ? prefix : prefix[..slash], out var address))
            throw new ArgumentException($"'{prefix}' is not an IP prefix", nameof(prefix));
        int bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        int length = bits;
        if (slash >= 0 && (!int.TryParse(prefix[(slash + 1)..], out length) || length < 0 || length > bits))
            throw new ArgumentException($"'{prefix}': the prefix length must be 0..{bits}", nameof(prefix));
        return Network(address, length);
    }

    private static IPNetwork Network(IPAddress address, int length)
    {
        var bytes = address.GetAddressBytes();
        for (int i = 0; i < bytes.Length; i++)
        {
            int keep = Math.Clamp(length - 8 * i, 0, 8);
            bytes[i] &= (byte)(0xff00 >> keep);
        }
        return new IPNetwork(new IPAddress(bytes), length);
    }

    // ---- lookups (bpf_fib_lookup) ----

    internal bool TryGetInterface(uint ifindex, out RouteInterface iface) => _interfaces.TryGetValue(ifindex, out iface!);

    internal bool HasTable(uint table) => table is MainTable or LocalTable || _routes.Exists(r => r.Table == table);

    /// <summary>Longest prefix, then lowest metric, in one table; <paramref name="oif"/> (when not 0) restricts
    /// unicast routes to that interface.</summary>
    internal Route? Lookup(uint table, IPAddress destination, uint oif)
    {
        Route? best = null;
        foreach (var route in _routes)
        {
            if (route.Table != table || !route.Prefix.Contains(destination))
                continue;
            if (oif != 0 && route.Type == RouteType.Unicast && route.Ifindex != oif)
                continue;
            if (best is null || route.Prefix.PrefixLength > best.Prefix.PrefixLength
                || (route.Prefix.PrefixLength == best.Prefix.PrefixLength && route.Metric < best.Metric))
                best = route;
        }
        return best;
    }

    internal static Route? Longest(Route? a, Route? b) =>
        a is null ? b : b is null ? a : b.Prefix.PrefixLength > a.Prefix.PrefixLength ? b : a;

    internal PhysicalAddress? Neighbour(uint ifindex, IPAddress address) =>
        _neighbours.TryGetValue((ifindex, address), out var mac) ? mac : null;
}
