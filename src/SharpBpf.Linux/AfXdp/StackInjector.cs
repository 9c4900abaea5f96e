namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// Hands frames to the kernel stack as received on one interface and queue, a batch per bpf(2) call, through the
/// <see cref="XskRedirect"/> program attached there (<c>programs/xsk_redirect.c</c>): the frames are written into
/// its mmapped <c>inject_frames</c> array, and one BPF_PROG_TEST_RUN in live-frames mode with repeat N runs the
/// program N times on a frame marked by 4 bytes of metadata; each run turns the live frame into the next stored
/// frame and returns XDP_PASS, so the kernel builds an skb of it and receives it on the interface
/// (netif_receive_skb_list). Two kernel facts shape this: live-frames mode takes one input frame per call and sets
/// a page pool up and down around each call (about 30 µs), and a call with repeat &gt; 1 adds its program to the XDP
/// dispatcher and removes it again (two RCU grace periods, about 30 ms) unless the program is attached already,
/// which is why the program that injects is the attached one.
/// </summary>
internal sealed unsafe class StackInjector : IDisposable
{
    /// <summary>Frames per call (the array's slots).</summary>
    public const int Capacity = 64;
    /// <summary>The largest frame a slot holds (it must also fit the kernel's live frame: a page less its overheads).</summary>
    public const int MaxFrameLength = 3072;
    private const int SlotSize = 8 + MaxFrameLength;
    private const uint Magic = 0x53425046;

    private readonly MappedMemory _frames, _cursor;
    private readonly LiveFrameInjector _injector;
    private readonly BpfMap _sockets;
    private readonly Dictionary<XskSocket, uint> _socketIds = [];
    private readonly byte[] _template = new byte[4 + 60];
    private readonly Group[] _groupOf = new Group[Capacity];
    private int _count;

    /// <summary>Where a stored frame goes: the stack of an interface's queue (Xsk 0), or the socket with id Xsk bound there.</summary>
    public readonly record struct Group(int IfIndex, uint QueueId, uint Xsk);

    /// <summary>What one group of a <see cref="Flush(Span{Result})"/> came to.</summary>
    public readonly record struct Result(Group Group, int Queued, int Taken, int Errno);

    private StackInjector(XskRedirect redirect, MappedMemory frames, MappedMemory cursor)
    {
        _frames = frames;
        _cursor = cursor;
        _sockets = redirect.Collection.Map("inject_xsks");
        _injector = LiveFrameInjector.Through(redirect.Program);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(_template, Magic);
    }

    /// <summary>Injects through <paramref name="redirect"/>'s program, which should be attached (see the summary).</summary>
    public static StackInjector Over(XskRedirect redirect)
    {
        ArgumentNullException.ThrowIfNull(redirect);
        var frames = Map(redirect.Collection.Map("inject_frames"), Capacity * SlotSize);
        try
        {
            return new StackInjector(redirect, frames, Map(redirect.Collection.Map("inject_cursor"), 8 + 4 * Capacity));
        }
        catch
        {
            frames.Dispose();
            throw;
        }
    }

    private static MappedMemory Map(BpfMap map, int length)
    {
        using var lease = map.Fd.Use();
        return MappedMemory.Ring((int)lease.Fd, (nuint)length, 0, $"BPF array '{map.Name}'");
    }

    /// <summary>Frames stored and not sent yet.</summary>
    public int Count => _count;

    /// <summary>The id frames for <paramref name="socket"/> carry (its entry in the program's inject_xsks, made on first
    /// use); 0 when the map is full.</summary>
    public uint SocketId(XskSocket socket)
    {
        if (_socketIds.TryGetValue(socket, out var id))
            return id;
        if (_socketIds.Count == Capacity)
            return 0;
        id = (uint)_socketIds.Count + 1;
        _sockets.Update(id - 1, (uint)socket.Handle.Value);
        _socketIds[socket] = id;
        return id;
    }

    /// <summary>Stores a frame for the stack of <paramref name="ifIndex"/> queue <paramref name="queueId"/>.</summary>
    public bool Add(ReadOnlySpan<byte> frame, int ifIndex, uint queueId) => Add(frame, new Group(ifIndex, queueId, 0));

    /// <summary>Stores a frame for the next <see cref="Flush(Span{Result})"/>; false when it is too short or too long, or the batch is full.</summary>
    public bool Add(ReadOnlySpan<byte> frame, Group group)
    {
        if (frame.Length is < 14 or > MaxFrameLength || _count == Capacity)
            return false;
        byte* slot = _frames.Pointer + (long)_count * SlotSize;
        ((uint*)slot)[0] = (uint)frame.Length;
        ((uint*)slot)[1] = group.Xsk;
        frame.CopyTo(new Span<byte>(slot + 8, frame.Length));
        _groupOf[_count++] = group;
        return true;
    }

    /// <summary>
    /// Sends the stored frames, one call per group (interface, queue, socket) with the group's frames in the order
    /// they were stored; writes each group's outcome to <paramref name="results"/> (room for <see cref="Capacity"/>)
    /// and returns how many groups there were.
    /// </summary>
    public int Flush(Span<Result> results)
    {
        var cursor = (uint*)_cursor.Pointer;
        Span<bool> done = stackalloc bool[Capacity];
        int groups = 0;
        for (int first = 0; first < _count; first++)
        {
            if (done[first])
                continue;
            var group = _groupOf[first];
            uint n = 0;
            for (int j = first; j < _count; j++)
            {
                if (!done[j] && _groupOf[j] == group)
                {
                    cursor[2 + n++] = (uint)j;
                    done[j] = true;
                }
            }
            Volatile.Write(ref cursor[0], 0);
            Volatile.Write(ref cursor[1], 0);
            int errno = _injector.Inject(_template, 4, group.IfIndex, group.QueueId, n, out _);
            results[groups++] = new Result(group, (int)n, (int)Volatile.Read(ref cursor[1]), errno);
        }
        _count = 0;
        return groups;
    }

    /// <summary>Sends the stored frames; returns the first errno (0 if none) and how many frames were taken in all.</summary>
    public int Flush(out int taken)
    {
        Span<Result> results = stackalloc Result[Capacity];
        int groups = Flush(results);
        taken = 0;
        int errno = 0;
        foreach (var r in results[..groups])
        {
            taken += r.Taken;
            errno = errno == 0 ? r.Errno : errno;
        }
        return errno;
    }

    public void Dispose()
    {
        try
        {
            _cursor.Dispose();
        }
        finally
        {
            _frames.Dispose();
        }
    }
}
