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
    private readonly byte[] _template = new byte[4 + 60];
    private int _count;

    private StackInjector(XskRedirect redirect, MappedMemory frames, MappedMemory cursor)
    {
        _frames = frames;
        _cursor = cursor;
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
            return new StackInjector(redirect, frames, Map(redirect.Collection.Map("inject_cursor"), 8));
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

    /// <summary>Stores a frame for the next <see cref="Flush"/>; false when it is too short or too long, or the batch is full.</summary>
    public bool Add(ReadOnlySpan<byte> frame)
    {
        if (frame.Length is < 14 or > MaxFrameLength || _count == Capacity)
            return false;
        byte* slot = _frames.Pointer + (long)_count * SlotSize;
        *(uint*)slot = (uint)frame.Length;
        frame.CopyTo(new Span<byte>(slot + 8, frame.Length));
        _count++;
        return true;
    }

    /// <summary>Hands the stored frames to the stack of <paramref name="ifIndex"/> queue <paramref name="queueId"/>;
    /// returns 0 or the call's errno, and how many frames the program passed.</summary>
    public int Flush(int ifIndex, uint queueId, out int passed)
    {
        passed = 0;
        if (_count == 0)
            return 0;
        var cursor = (uint*)_cursor.Pointer;
        Volatile.Write(ref cursor[0], 0);
        Volatile.Write(ref cursor[1], 0);
        int errno = _injector.Inject(_template, 4, ifIndex, queueId, (uint)_count, out _);
        passed = (int)Volatile.Read(ref cursor[1]);
        _count = 0;
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
