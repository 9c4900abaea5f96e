using System.Buffers.Binary;
using System.Net;
using SharpBpf.Vm;

namespace SharpBpf.Helpers;

public static unsafe partial class VmHelpers
{
    // struct bpf_fib_lookup (64 bytes): family u8 @0, l4_protocol @1, sport @2, dport @4, tot_len/mtu_result u16 @6,
    // ifindex u32 @8, tos/flowinfo/rt_metric u32 @12, ipv4_src / ipv6_src @16, ipv4_dst / ipv6_dst @32,
    // h_vlan_proto+h_vlan_TCI / tbid u32 @48, smac[6] @52 (mark u32 @52 as input), dmac[6] @58.
    private const int FibParamsSize = 64;
    private const int AfInet = 2, AfInet6 = 10, EAFNOSUPPORT = 97;

    /// <summary>BPF_FIB_LOOKUP_DIRECT | OUTPUT | SKIP_NEIGH | TBID | SRC | MARK: the flags Linux 6.18 accepts.</summary>
    private const ulong FibKnownFlags = 0x3f;
    private const ulong FibDirect = 1, FibOutput = 2, FibSkipNeigh = 4, FibTbid = 8, FibSrc = 16;

    /// <summary>BPF_FIB_LKUP_RET_* codes.</summary>
    private const ulong FibSuccess = 0, FibBlackhole = 1, FibUnreachable = 2, FibProhibit = 3, FibNotForwarded = 4,
        FibForwardingDisabled = 5, FibNoNeighbour = 7, FibFragNeeded = 8, FibNoSourceAddress = 9;

    /// <summary>
    /// bpf_fib_lookup(ctx, params, plen, flags) for XDP, against <see cref="VmOptions.Routes"/>, with the kernel's
    /// order of checks and outputs: -EINVAL for a short struct or unknown flags, -EAFNOSUPPORT for a family other than
    /// AF_INET/AF_INET6, -ENODEV for an unknown params->ifindex, then BPF_FIB_LKUP_RET_FWD_DISABLED, the route's
    /// type (BLACKHOLE, UNREACHABLE, PROHIBIT; NOT_FWDED for none, local or broadcast), FRAG_NEEDED when tot_len
    /// exceeds the route's MTU (mtu_result set), NO_NEIGH; on success ifindex, rt_metric, the gateway in the
    /// destination, smac/dmac (unless SKIP_NEIGH), mtu_result and zeroed VLAN fields. With no routing table
    /// configured the VM is a fresh namespace (<see cref="RoutingTable.Unconfigured"/>): FWD_DISABLED for the
    /// loopback, -ENODEV for other interfaces.
    /// </summary>
    public static ulong FibLookup(VmExecution e, ulong ctx, ulong parameters, ulong plen, ulong flags, ulong r5)
    {
        Xdp(e, ctx, "bpf_fib_lookup");
        Check(e, parameters, plen, true, "bpf_fib_lookup params");
        if ((long)plen < FibParamsSize)
            return Errno(SharpBpf.Errno.EINVAL);
        if ((flags & ~FibKnownFlags) != 0)
            return Errno(SharpBpf.Errno.EINVAL);
        byte* p = (byte*)parameters;
        byte family = p[0];
        if (family is not (AfInet or AfInet6))
            return Errno(EAFNOSUPPORT);
        var routes = e.Program?.Routes ?? e.Options.Routes ?? RoutingTable.Unconfigured;
        bool v4 = family == AfInet;
        uint ifindex = *(uint*)(p + 8);
        if (!routes.TryGetInterface(ifindex, out var ingress))
            return Errno(SharpBpf.Errno.ENODEV);
        if (!ingress.Forwarding)
            return FibForwardingDisabled;

        var destination = v4 ? new IPAddress(new ReadOnlySpan<byte>(p + 32, 4)) : new IPAddress(new ReadOnlySpan<byte>(p + 32, 16));
        uint oif = (flags & FibOutput) != 0 ? ifindex : 0;
        Route? route;
        if ((flags & FibDirect) != 0)
        {
            uint table = RoutingTable.MainTable;
            if ((flags & FibTbid) != 0)
            {
                table = *(uint*)(p + 48);
                *(uint*)(p + 48) = 0; // the kernel clears tbid, which shares its place with the VLAN output
            }
            if (!routes.HasTable(table))
                return FibNotForwarded;
            // Linux keeps IPv4's local and main tables in one trie until policy rules are added: a direct lookup in
            // main also finds local and broadcast routes.
            route = v4 && table == RoutingTable.MainTable
                ? RoutingTable.Longest(routes.Lookup(RoutingTable.LocalTable, destination, oif), routes.Lookup(table, destination, oif))
                : routes.Lookup(table, destination, oif);
        }
        else
        {
            route = routes.Lookup(RoutingTable.LocalTable, destination, oif)
                ?? routes.Lookup(RoutingTable.MainTable, destination, oif)
                ?? routes.Lookup(RoutingTable.DefaultTable, destination, oif);
        }
        if (route is null)
            return FibNotForwarded;
        switch (route.Type)
        {
            case RouteType.Unicast: break;
            case RouteType.Blackhole: return FibBlackhole;
            case RouteType.Unreachable: return FibUnreachable;
            case RouteType.Prohibit: return FibProhibit;
            default: return FibNotForwarded;
        }
        if (!routes.TryGetInterface(route.Ifindex, out var egress))
            return FibNotForwarded;

        // XDP always checks the MTU against tot_len: the route's MTU when it is locked, else the device's (IPv4 caps
        // it at IP_MAX_MTU, 65535).
        int mtu = route.Mtu ?? (v4 ? Math.Min(egress.Mtu, 65535) : egress.Mtu);
        if (*(ushort*)(p + 6) > mtu)
        {
            *(ushort*)(p + 6) = (ushort)mtu;
            return FibFragNeeded;
        }

        *(uint*)(p + 12) = route.Metric;
        *(uint*)(p + 8) = egress.Ifindex;
        if ((flags & FibSrc) != 0)
        {
            var source = route.Source ?? egress.Addresses.FirstOrDefault(a => a.AddressFamily == destination.AddressFamily);
            if (source is null && !v4)
                return FibNoSourceAddress;
            var bytes = new Span<byte>(p + 16, v4 ? 4 : 16);
            if (source is null)
                bytes.Clear();
            else
                source.TryWriteBytes(bytes, out _);
        }
        var nexthop = route.Gateway ?? destination;
        if (route.Gateway is not null)
            route.Gateway.TryWriteBytes(new Span<byte>(p + 32, v4 ? 4 : 16), out _);

        if ((flags & FibSkipNeigh) == 0)
        {
            var mac = routes.Neighbour(egress.Ifindex, nexthop);
            if (mac is null)
                return FibNoNeighbour;
            mac.GetAddressBytes().CopyTo(new Span<byte>(p + 58, 6));
            egress.Mac.GetAddressBytes().CopyTo(new Span<byte>(p + 52, 6));
        }
        // bpf_fib_set_fwd_params: no VLAN, the MTU in mtu_result.
        *(uint*)(p + 48) = 0;
        *(ushort*)(p + 6) = (ushort)mtu;
        return FibSuccess;
    }

    /// <summary>
    /// bpf_check_mtu(ctx, ifindex, mtu_len, len_diff, flags) for XDP: -EINVAL for any flag (BPF_MTU_CHK_SEGS is
    /// tc-only), -ENODEV for an unknown ifindex (0 is the receiving interface); the L2 length is the packet's, or
    /// *mtu_len plus the device's header length when *mtu_len is not 0, plus len_diff; more than MTU plus header
    /// length gives BPF_MTU_CHK_RET_FRAG_NEEDED (1), otherwise 0. *mtu_len is set to the device's MTU either way.
    /// Devices come from <see cref="VmOptions.Routes"/> (without one only the loopback, ifindex 1, MTU 65536).
    /// </summary>
    public static ulong CheckMtu(VmExecution e, ulong ctx, ulong ifindex, ulong mtuLen, ulong lenDiff, ulong flags)
    {
        var xdp = Xdp(e, ctx, "bpf_check_mtu");
        Check(e, mtuLen, 4, true, "bpf_check_mtu mtu_len");
        if (flags != 0)
            return Errno(SharpBpf.Errno.EINVAL);
        uint index = (uint)ifindex == 0 ? xdp.IngressIfindex : (uint)ifindex;
        var routes = e.Program?.Routes ?? e.Options.Routes ?? RoutingTable.Unconfigured;
        if (!routes.TryGetInterface(index, out var device))
            return Errno(SharpBpf.Errno.ENODEV);
        int mtu = device.Mtu, header = device.HeaderLength;
        uint* length = (uint*)mtuLen;
        int l2 = *length != 0 ? (int)*length + header : (int)(xdp.DataEnd - xdp.Data);
        l2 += (int)lenDiff;
        ulong result = l2 > mtu + header ? 1UL : 0UL;
        *length = (uint)mtu;
        return result;
    }
}
