using System.Buffers.Binary;
using System.Text;

namespace SharpBpf.Linux.Netlink;

/// <summary>Message types, flags and attribute numbers of rtnetlink that this client uses (linux/netlink.h, rtnetlink.h, if_link.h).</summary>
internal static class Rtnl
{
    // nlmsghdr.nlmsg_type
    public const ushort Error = 2, Done = 3;                           // NLMSG_ERROR, NLMSG_DONE
    public const ushort NewLink = 16, GetLink = 18, SetLink = 19;       // RTM_NEWLINK, RTM_GETLINK, RTM_SETLINK

    // nlmsghdr.nlmsg_flags
    public const ushort FlagRequest = 0x1, FlagMulti = 0x2, FlagAck = 0x4, FlagDump = 0x300;
    public const ushort FlagAckTlvs = 0x200;                           // NLM_F_ACK_TLVS on an NLMSG_ERROR
    public const ushort FlagExclusive = 0x200, FlagCreate = 0x400;     // NLM_F_EXCL, NLM_F_CREATE on a NEW request

    public const int HeaderSize = 16;                                  // struct nlmsghdr
    public const int InterfaceInfoSize = 16;                           // struct ifinfomsg
    public const ushort AttributeNested = 0x8000;                      // NLA_F_NESTED
    public const ushort AttributeTypeMask = 0x3fff;

    // NLMSGERR_ATTR_*
    public const ushort ErrorAttributeMessage = 1, ErrorAttributeOffset = 2;

    // struct ifinfomsg.ifi_flags
    public const uint InterfaceUp = 0x1, InterfaceLoopback = 0x8;
}

/// <summary>IFLA_* attributes of a link message.</summary>
internal enum LinkAttribute : ushort
{
    Address = 1,        // IFLA_ADDRESS
    IfName = 3,         // IFLA_IFNAME
    Mtu = 4,            // IFLA_MTU
    OperState = 16,     // IFLA_OPERSTATE
    LinkInfo = 18,      // IFLA_LINKINFO
    ExtMask = 29,       // IFLA_EXT_MASK
    Xdp = 43,           // IFLA_XDP
    TargetNetNsId = 46, // IFLA_TARGET_NETNSID
    AltIfName = 53,     // IFLA_ALT_IFNAME
}

/// <summary>IFLA_INFO_* inside IFLA_LINKINFO.</summary>
internal enum LinkInfoAttribute : ushort
{
    Kind = 1,           // IFLA_INFO_KIND
    Data = 2,           // IFLA_INFO_DATA
}

/// <summary>VETH_INFO_* inside IFLA_INFO_DATA of a veth.</summary>
internal enum VethAttribute : ushort
{
    Peer = 1,           // VETH_INFO_PEER: struct ifinfomsg, then the peer's IFLA_* attributes
}

/// <summary>IFLA_XDP_* inside IFLA_XDP.</summary>
internal enum XdpAttribute : ushort
{
    Fd = 1,             // IFLA_XDP_FD (s32; -1 detaches)
    Attached = 2,       // IFLA_XDP_ATTACHED (u8, XDP_ATTACHED_*)
    Flags = 3,          // IFLA_XDP_FLAGS (u32, XDP_FLAGS_*)
    ProgramId = 4,      // IFLA_XDP_PROG_ID (u32; only when a single mode is attached)
    DriverProgramId = 5,  // IFLA_XDP_DRV_PROG_ID
    SkbProgramId = 6,     // IFLA_XDP_SKB_PROG_ID
    HardwareProgramId = 7,// IFLA_XDP_HW_PROG_ID
    ExpectedFd = 8,     // IFLA_XDP_EXPECTED_FD (s32; with XDP_FLAGS_REPLACE)
}

/// <summary>XDP_FLAGS_* of IFLA_XDP_FLAGS (also the flags of BPF_LINK_CREATE for BPF_XDP).</summary>
[Flags]
internal enum XdpFlags : uint
{
    None = 0,
    UpdateIfNoExist = 1 << 0, // XDP_FLAGS_UPDATE_IF_NOEXIST
    SkbMode = 1 << 1,         // XDP_FLAGS_SKB_MODE
    DriverMode = 1 << 2,      // XDP_FLAGS_DRV_MODE
    HardwareMode = 1 << 3,    // XDP_FLAGS_HW_MODE
    Replace = 1 << 4,         // XDP_FLAGS_REPLACE
}

/// <summary>
/// Builds one netlink request. Layout (every part 4-byte aligned):
/// <code>
/// nlmsghdr  | len u32 | type u16 | flags u16 | seq u32 | pid u32 |
/// ifinfomsg | family u8 | pad u8 | type u16 | index s32 | flags u32 | change u32 |
/// nlattr*   | len u16 | type u16 | payload, padded to 4 |   (nested: payload is nlattr*)
/// </code>
/// </summary>
internal sealed class NetlinkRequest
{
    private readonly List<byte> _bytes = new(256);
    private readonly Stack<int> _nests = new();

    public NetlinkRequest(ushort type, ushort flags)
    {
        _bytes.AddRange(new byte[Rtnl.HeaderSize]);
        Type = type;
        Flags = flags;
    }

    public ushort Type { get; }

    public ushort Flags { get; }

    /// <summary>Appends a struct ifinfomsg for <paramref name="ifIndex"/> (0 = look up by name or dump all).</summary>
    public NetlinkRequest InterfaceInfo(int ifIndex, uint flags = 0, uint change = 0)
    {
        Span<byte> info = stackalloc byte[Rtnl.InterfaceInfoSize];
        info.Clear(); // family AF_UNSPEC
        BinaryPrimitives.WriteInt32LittleEndian(info[4..], ifIndex);
        BinaryPrimitives.WriteUInt32LittleEndian(info[8..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(info[12..], change);
        _bytes.AddRange(info);
        return this;
    }

    public NetlinkRequest U32(ushort type, uint value)
    {
        Span<byte> payload = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, value);
        return Attribute(type, payload);
    }

    public NetlinkRequest S32(ushort type, int value) => U32(type, unchecked((uint)value));

    public NetlinkRequest String(ushort type, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value + "\0");
        return Attribute(type, bytes);
    }

    public NetlinkRequest Attribute(ushort type, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)(4 + payload.Length));
        BinaryPrimitives.WriteUInt16LittleEndian(header[2..], type);
        _bytes.AddRange(header);
        _bytes.AddRange(payload);
        Pad();
        return this;
    }

    /// <summary>Opens a nest; <paramref name="flagNested"/> false for attributes whose payload is a struct plus attributes (VETH_INFO_PEER).</summary>
    public NetlinkRequest BeginNested(ushort type, bool flagNested = true)
    {
        _nests.Push(_bytes.Count);
        var wireType = flagNested ? (ushort)(type | Rtnl.AttributeNested) : type;
        _bytes.AddRange([0, 0, (byte)wireType, (byte)(wireType >> 8)]);
        return this;
    }

    public NetlinkRequest EndNested()
    {
        var start = _nests.Pop();
        var length = (ushort)(_bytes.Count - start);
        _bytes[start] = (byte)length;
        _bytes[start + 1] = (byte)(length >> 8);
        return this;
    }

    /// <summary>The finished message with its header filled in.</summary>
    public byte[] ToArray(uint sequence)
    {
        var bytes = _bytes.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)bytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(4), Type);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(6), Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), sequence);
        return bytes;
    }

    private void Pad()
    {
        while (_bytes.Count % 4 != 0)
            _bytes.Add(0);
    }
}

/// <summary>One netlink attribute seen in a reply.</summary>
internal readonly ref struct NetlinkAttribute(ushort type, ReadOnlySpan<byte> payload)
{
    public ushort Type { get; } = (ushort)(type & Rtnl.AttributeTypeMask);

    public ReadOnlySpan<byte> Payload { get; } = payload;

    public byte U8() => Payload.Length >= 1 ? Payload[0] : (byte)0;

    public uint U32() => Payload.Length >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(Payload) : 0;

    public string String()
    {
        var end = Payload.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? Payload : Payload[..end]);
    }

    public NetlinkAttributeReader Nested() => new(Payload);
}

/// <summary>Walks a run of attributes; stops at the first malformed one instead of reading past the buffer.</summary>
internal ref struct NetlinkAttributeReader(ReadOnlySpan<byte> data)
{
    private ReadOnlySpan<byte> _rest = data;

    public NetlinkAttribute Current { get; private set; }

    public bool MoveNext()
    {
        if (_rest.Length < 4)
            return false;
        var length = BinaryPrimitives.ReadUInt16LittleEndian(_rest);
        var type = BinaryPrimitives.ReadUInt16LittleEndian(_rest[2..]);
        if (length < 4 || length > _rest.Length)
            return false;
        Current = new NetlinkAttribute(type, _rest[4..length]);
        var aligned = (length + 3) & ~3;
        _rest = aligned >= _rest.Length ? [] : _rest[aligned..];
        return true;
    }

    public readonly NetlinkAttributeReader GetEnumerator() => this;
}
