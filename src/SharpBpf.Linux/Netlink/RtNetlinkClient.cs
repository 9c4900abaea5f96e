using System.Buffers.Binary;

namespace SharpBpf.Linux.Netlink;

/// <summary>What RTM_NEWLINK said about one interface (the parts this project uses).</summary>
internal sealed record LinkMessage(int Index, string Name, uint Flags, uint Mtu, string? Kind, byte[]? Address, XdpAttachmentInfo Xdp);

/// <summary>
/// The IFLA_XDP nest of a link: which modes have a program (XDP_ATTACHED_*: 0 none, 1 driver, 2 skb, 3 hw,
/// 4 several) and each mode's program id.
/// </summary>
internal readonly record struct XdpAttachmentInfo(byte Attached, uint DriverProgramId, uint SkbProgramId, uint HardwareProgramId)
{
    public const byte None = 0, Driver = 1, Skb = 2, Hardware = 3, Multi = 4;
}

/// <summary>
/// A small rtnetlink client: interfaces by name or index, a dump of all, and IFLA_XDP attach/detach.
/// One socket, one request at a time (callers that share it lock).
/// </summary>
internal sealed class RtNetlinkClient : IDisposable
{
    private readonly NetlinkSocket _socket;
    private readonly object _gate = new();

    private RtNetlinkClient(NetlinkSocket socket) => _socket = socket;

    /// <summary>A client for the calling thread's network namespace, or the one at <paramref name="netNsPath"/>.</summary>
    public static RtNetlinkClient Open(string? netNsPath = null) => new(NetlinkSocket.Open(netNsPath));

    /// <summary>The interface with this index, or null when there is none.</summary>
    public LinkMessage? GetLink(int ifIndex)
    {
        var request = new NetlinkRequest(Rtnl.GetLink, Rtnl.FlagRequest | Rtnl.FlagAck).InterfaceInfo(ifIndex)
            .U32((ushort)LinkAttribute.ExtMask, 1u << 3); // RTEXT_FILTER_SKIP_STATS: counters are not needed
        return GetOne(request, $"RTM_GETLINK ifindex {ifIndex}");
    }

    /// <summary>The interface with this name (or altname), or null when there is none.</summary>
    public LinkMessage? GetLink(string name)
    {
        if (name.Length is 0 or > 127)
            return null;
        var attribute = name.Length < 16 ? LinkAttribute.IfName : LinkAttribute.AltIfName;
        var request = new NetlinkRequest(Rtnl.GetLink, Rtnl.FlagRequest | Rtnl.FlagAck).InterfaceInfo(0)
            .String((ushort)attribute, name)
            .U32((ushort)LinkAttribute.ExtMask, 1u << 3);
        return GetOne(request, $"RTM_GETLINK '{name}'");
    }

    /// <summary>Every interface of the socket's namespace.</summary>
    public List<LinkMessage> ListLinks()
    {
        var request = new NetlinkRequest(Rtnl.GetLink, Rtnl.FlagRequest | Rtnl.FlagDump).InterfaceInfo(0)
            .U32((ushort)LinkAttribute.ExtMask, 1u << 3);
        lock (_gate)
            return _socket.Exchange(request, "RTM_GETLINK dump").Select(Parse).OfType<LinkMessage>().ToList();
    }

    /// <summary>
    /// RTM_SETLINK with IFLA_XDP: attaches program <paramref name="programFd"/> (or detaches with -1) in the mode
    /// and with the flags given; with <see cref="XdpFlags.Replace"/> the kernel first checks that
    /// <paramref name="expectedFd"/>'s program (or none, for -1) is the one attached.
    /// <code>
    /// RTM_SETLINK ifinfomsg{index} IFLA_XDP{ IFLA_XDP_FD s32, IFLA_XDP_FLAGS u32, IFLA_XDP_EXPECTED_FD s32 }
    /// </code>
    /// </summary>
    public void SetXdp(int ifIndex, int programFd, XdpFlags flags, int expectedFd = -1)
    {
        var request = new NetlinkRequest(Rtnl.SetLink, Rtnl.FlagRequest | Rtnl.FlagAck).InterfaceInfo(ifIndex)
            .BeginNested((ushort)LinkAttribute.Xdp)
            .S32((ushort)XdpAttribute.Fd, programFd);
        if (flags != XdpFlags.None)
            request.U32((ushort)XdpAttribute.Flags, (uint)flags);
        if ((flags & XdpFlags.Replace) != 0)
            request.S32((ushort)XdpAttribute.ExpectedFd, expectedFd);
        request.EndNested();
        var what = programFd < 0 ? "detach" : "attach";
        lock (_gate)
            _socket.Exchange(request, $"RTM_SETLINK IFLA_XDP {what} on ifindex {ifIndex}");
    }

    /// <summary>
    /// Creates a veth pair <paramref name="name"/> / <paramref name="peerName"/> (RTM_NEWLINK, create-exclusive):
    /// <code>
    /// ifinfomsg IFLA_IFNAME name IFLA_LINKINFO{ IFLA_INFO_KIND "veth" IFLA_INFO_DATA{ VETH_INFO_PEER{ ifinfomsg IFLA_IFNAME peer } } }
    /// </code>
    /// </summary>
    public void CreateVethPair(string name, string peerName)
    {
        var request = new NetlinkRequest(Rtnl.NewLink, Rtnl.FlagRequest | Rtnl.FlagAck | Rtnl.FlagCreate | Rtnl.FlagExclusive)
            .InterfaceInfo(0)
            .String((ushort)LinkAttribute.IfName, name)
            .BeginNested((ushort)LinkAttribute.LinkInfo)
            .String((ushort)LinkInfoAttribute.Kind, "veth")
            .BeginNested((ushort)LinkInfoAttribute.Data)
            .BeginNested((ushort)VethAttribute.Peer, flagNested: false)
            .InterfaceInfo(0)
            .String((ushort)LinkAttribute.IfName, peerName)
            .EndNested()
            .EndNested()
            .EndNested();
        lock (_gate)
            _socket.Exchange(request, $"RTM_NEWLINK veth {name}/{peerName}");
    }

    /// <summary>Sets an interface administratively up or down (ifi_flags IFF_UP under ifi_change IFF_UP).</summary>
    public void SetUp(int ifIndex, bool up)
    {
        var request = new NetlinkRequest(Rtnl.SetLink, Rtnl.FlagRequest | Rtnl.FlagAck)
            .InterfaceInfo(ifIndex, up ? Rtnl.InterfaceUp : 0, Rtnl.InterfaceUp);
        lock (_gate)
            _socket.Exchange(request, $"RTM_SETLINK {(up ? "up" : "down")} ifindex {ifIndex}");
    }

    public void Dispose() => _socket.Dispose();

    private LinkMessage? GetOne(NetlinkRequest request, string operation)
    {
        try
        {
            lock (_gate)
                return _socket.Exchange(request, operation).Select(Parse).OfType<LinkMessage>().FirstOrDefault();
        }
        catch (NetlinkException e) when (e.Errno == Errno.ENODEV)
        {
            return null;
        }
    }

    /// <summary>Reads an RTM_NEWLINK payload: ifinfomsg then attributes.</summary>
    internal static LinkMessage? Parse(byte[] payload)
    {
        if (payload.Length < Rtnl.InterfaceInfoSize)
            return null;
        var index = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(4));
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(payload.AsSpan(8));
        string name = "";
        string? kind = null;
        byte[]? address = null;
        uint mtu = 0;
        var xdp = default(XdpAttachmentInfo);
        foreach (var attribute in new NetlinkAttributeReader(payload.AsSpan(Rtnl.InterfaceInfoSize)))
        {
            switch ((LinkAttribute)attribute.Type)
            {
                case LinkAttribute.IfName:
                    name = attribute.String();
                    break;
                case LinkAttribute.Mtu:
                    mtu = attribute.U32();
                    break;
                case LinkAttribute.Address:
                    address = attribute.Payload.ToArray();
                    break;
                case LinkAttribute.LinkInfo:
                    foreach (var info in attribute.Nested())
                    {
                        if (info.Type == (ushort)LinkInfoAttribute.Kind)
                            kind = info.String();
                    }
                    break;
                case LinkAttribute.Xdp:
                    xdp = ParseXdp(attribute.Nested());
                    break;
            }
        }
        return new LinkMessage(index, name, flags, mtu, kind, address, xdp);
    }

    private static XdpAttachmentInfo ParseXdp(NetlinkAttributeReader reader)
    {
        byte attached = 0;
        uint single = 0, driver = 0, skb = 0, hardware = 0;
        foreach (var attribute in reader)
        {
            switch ((XdpAttribute)attribute.Type)
            {
                case XdpAttribute.Attached: attached = attribute.U8(); break;
                case XdpAttribute.ProgramId: single = attribute.U32(); break;
                case XdpAttribute.DriverProgramId: driver = attribute.U32(); break;
                case XdpAttribute.SkbProgramId: skb = attribute.U32(); break;
                case XdpAttribute.HardwareProgramId: hardware = attribute.U32(); break;
            }
        }
        // Kernels before the per-mode ids (4.18) sent only IFLA_XDP_PROG_ID with the mode in IFLA_XDP_ATTACHED.
        if (single != 0 && driver == 0 && skb == 0 && hardware == 0)
        {
            switch (attached)
            {
                case XdpAttachmentInfo.Driver: driver = single; break;
                case XdpAttachmentInfo.Skb: skb = single; break;
                case XdpAttachmentInfo.Hardware: hardware = single; break;
            }
        }
        return new XdpAttachmentInfo(attached, driver, skb, hardware);
    }
}
