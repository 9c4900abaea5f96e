using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static SharpBpf.Linux.Netlink.NetlinkInterop;

namespace SharpBpf.Linux.Netlink;

/// <summary>
/// A route-netlink socket (AF_NETLINK, NETLINK_ROUTE) with extended acks on. Requests are answered in order;
/// every receive is bounded by a timeout so a silent kernel cannot hang the caller. Not thread-safe: one request
/// at a time. The socket belongs to the network namespace it was opened in, whichever thread uses it later.
/// </summary>
internal sealed unsafe class NetlinkSocket : SafeHandle
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(5);
    private byte[] _buffer = new byte[32 * 1024];
    private uint _sequence = (uint)Environment.TickCount;

    private NetlinkSocket() : base(-1, ownsHandle: true) { }

    public override bool IsInvalid => handle == -1;

    private int Fd => (int)handle;

    /// <summary>
    /// Opens a socket in the calling thread's network namespace, or in the one at <paramref name="netNsPath"/>
    /// (e.g. /var/run/netns/NAME or /proc/PID/ns/net): a short-lived thread enters that namespace only to create it.
    /// </summary>
    public static NetlinkSocket Open(string? netNsPath = null)
    {
        if (netNsPath is null)
            return OpenHere();
        NetlinkSocket? socket = null;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                var nsFd = NetlinkInterop.Open(netNsPath, OpenReadOnlyCloseOnExec);
                if (nsFd < 0)
                    throw new NetlinkException($"open network namespace {netNsPath}", LastErrno(), null);
                try
                {
                    if (SetNamespace(nsFd, NamespaceNetwork) != 0)
                        throw new NetlinkException($"enter network namespace {netNsPath}", LastErrno(), null);
                }
                finally
                {
                    NetlinkInterop.Close(nsFd);
                }
                socket = OpenHere();
            }
            catch (Exception e)
            {
                error = e;
            }
        }) { IsBackground = true, Name = "netlink netns" };
        thread.Start();
        thread.Join();
        if (error is not null)
            throw error;
        return socket!;
    }

    private static NetlinkSocket OpenHere()
    {
        var fd = Socket(AddressFamilyNetlink, SocketRaw | SocketCloseOnExec, ProtocolRoute);
        if (fd < 0)
            throw new NetlinkException("socket(AF_NETLINK, NETLINK_ROUTE)", LastErrno(), null);
        var socket = new NetlinkSocket();
        socket.SetHandle(fd);
        try
        {
            var address = new SocketAddress { Family = AddressFamilyNetlink };
            if (Bind(fd, &address, (uint)sizeof(SocketAddress)) != 0)
                throw new NetlinkException("bind netlink socket", LastErrno(), null);
            var one = 1;
            // Extended acks are best effort: without them errors still carry the errno.
            SetSocketOption(fd, LevelNetlink, OptionExtendedAck, &one, sizeof(int));
            SetSocketOption(fd, LevelNetlink, OptionCapAck, &one, sizeof(int));
            var timeout = new TimeValue { Seconds = (long)s_timeout.TotalSeconds };
            SetSocketOption(fd, LevelSocket, OptionReceiveTimeout, &timeout, (uint)sizeof(TimeValue));
            SetSocketOption(fd, LevelSocket, OptionSendTimeout, &timeout, (uint)sizeof(TimeValue));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="request"/> and collects the payloads (after nlmsghdr) of its replies until the
    /// kernel says it is done: NLMSG_DONE for a dump, the ack for anything else. A refusal throws
    /// <see cref="NetlinkException"/> naming <paramref name="operation"/>.
    /// </summary>
    public List<byte[]> Exchange(NetlinkRequest request, string operation)
    {
        var dump = (request.Flags & Rtnl.FlagDump) == Rtnl.FlagDump;
        var sequence = ++_sequence;
        var bytes = request.ToArray(sequence);
        var replies = new List<byte[]>();
        var success = false;
        DangerousAddRef(ref success);
        try
        {
            fixed (byte* p = bytes)
            {
                if (Send(Fd, p, (nuint)bytes.Length, 0) < 0)
                    throw new NetlinkException(operation + " (send)", LastErrno(), null);
            }
            while (true)
            {
                var length = ReceiveOne(operation);
                var rest = _buffer.AsSpan(0, length);
                while (rest.Length >= Rtnl.HeaderSize)
                {
                    var messageLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(rest);
                    if (messageLength < Rtnl.HeaderSize || messageLength > rest.Length)
                        throw new NetlinkException(operation + " (malformed reply)", Errno.EIO, null);
                    var type = BinaryPrimitives.ReadUInt16LittleEndian(rest[4..]);
                    var flags = BinaryPrimitives.ReadUInt16LittleEndian(rest[6..]);
                    var replySequence = BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]);
                    var payload = rest[Rtnl.HeaderSize..messageLength];
                    rest = rest[Math.Min(rest.Length, (messageLength + 3) & ~3)..];
                    if (replySequence != sequence)
                        continue; // an answer to an earlier request that timed out
                    switch (type)
                    {
                        case Rtnl.Done:
                            return replies;
                        case Rtnl.Error:
                            var error = payload.Length >= 4 ? -BinaryPrimitives.ReadInt32LittleEndian(payload) : Errno.EIO;
                            if (error != 0)
                                throw new NetlinkException(operation, error, ExtendedAckMessage(payload, flags));
                            if (!dump)
                                return replies;
                            break;
                        default:
                            replies.Add(payload.ToArray());
                            break;
                    }
                }
            }
        }
        finally
        {
            if (success)
                DangerousRelease();
        }
    }

    private int ReceiveOne(string operation)
    {
        while (true)
        {
            // Peek with MSG_TRUNC first so a datagram larger than the buffer grows it instead of being cut.
            nint size;
            fixed (byte* p = _buffer)
                size = Receive(Fd, p, (nuint)_buffer.Length, 0x2 | 0x20); // MSG_PEEK | MSG_TRUNC
            if (size < 0)
            {
                var errno = LastErrno();
                if (errno == Errno.EINTR)
                    continue;
                if (errno == Errno.EAGAIN)
                    throw new NetlinkException($"{operation}: no answer from the kernel within {s_timeout.TotalSeconds:0} s", errno, null);
                throw new NetlinkException(operation + " (receive)", errno, null);
            }
            if (size > _buffer.Length)
                _buffer = new byte[size];
            fixed (byte* p = _buffer)
                size = Receive(Fd, p, (nuint)_buffer.Length, 0);
            if (size < 0)
            {
                if (LastErrno() == Errno.EINTR)
                    continue;
                throw new NetlinkException(operation + " (receive)", LastErrno(), null);
            }
            return (int)size;
        }
    }

    /// <summary>
    /// The kernel's sentence in an error reply. With NETLINK_CAP_ACK the payload is
    /// <c>| error s32 | our nlmsghdr (16) | nlattr* |</c>, the attributes present when NLM_F_ACK_TLVS is set.
    /// </summary>
    private static string? ExtendedAckMessage(ReadOnlySpan<byte> payload, ushort flags)
    {
        if ((flags & Rtnl.FlagAckTlvs) == 0 || payload.Length < 4 + Rtnl.HeaderSize)
            return null;
        foreach (var attribute in new NetlinkAttributeReader(payload[(4 + Rtnl.HeaderSize)..]))
        {
            if (attribute.Type == Rtnl.ErrorAttributeMessage)
                return attribute.String();
        }
        return null;
    }

    protected override bool ReleaseHandle() => NetlinkInterop.Close((int)handle) == 0;
}
