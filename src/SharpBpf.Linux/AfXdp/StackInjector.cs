using SharpBpf.Objects;

namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// Hands frames to the kernel stack as received on one interface and queue, a batch per bpf(2) call: the frames
/// are written into the mmapped array of <c>programs/xdp_pass_batch.c</c>, and one BPF_PROG_TEST_RUN in live-frames
/// mode with repeat N runs that program N times; each run turns the live frame into the next stored frame and
/// returns XDP_PASS, so the kernel builds an skb of it and receives it on the interface (netif_receive_skb_list).
/// The kernel takes only one input frame per call and sets up and tears down a page pool around every call, which
/// costs tens of microseconds: batching spreads that over up to <see cref="Capacity"/> frames.
/// </summary>
internal sealed unsafe class StackInjector : IDisposable
{
    /// <summary>Frames per call (the array's slots).</summary>
    public const int Capacity = 64;
    /// <summary>The largest frame a slot holds (it must also fit the kernel's live frame: a page less its overheads).</summary>
    public const int MaxFrameLength = 3072;
    private const int SlotSize = 8 + MaxFrameLength;

    private readonly BpfCollection _collection;
    private readonly MappedMemory _frames, _cursor;
    private readonly LiveFrameInjector _injector;
    private readonly byte[] _template = new byte[64];
    private int _count;

    private StackInjector(BpfCollection collection, MappedMemory frames, MappedMemory cursor)
    {
        _collection = collection;
        _frames = frames;
        _cursor = cursor;
        _injector = LiveFrameInjector.Through(collection.Program("xdp_pass_batch"));
    }

    public static StackInjector Load()
    {
        using var stream = typeof(StackInjector).Assembly.GetManifestResourceStream("SharpBpf.Linux.AfXdp.xdp_pass_batch.o")
            ?? throw new System.Diagnostics.UnreachableException("xdp_pass_batch.o is not embedded in SharpBpf.Linux");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var collection = BpfCollection.Load(ObjectFile.Read(buffer.ToArray(), "xdp_pass_batch"));
        MappedMemory? frames = null;
        try
        {
            frames = Map(collection.Map("frames"), Capacity * SlotSize);
            var cursor = Map(collection.Map("cursor"), 8);
            return new StackInjector(collection, frames, cursor);
        }
        catch
        {
            frames?.Dispose();
            collection.Dispose();
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

    /// <summary>Stores a frame for the next <see cref="Flush"/>; false when it is too short or too long.
    /// The caller flushes when <see cref="Count"/> reaches <see cref="Capacity"/>.</summary>
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
        int errno = _injector.Inject(_template, ifIndex, queueId, (uint)_count);
        passed = (int)Volatile.Read(ref cursor[1]);
        _count = 0;
        return errno;
    }

    public void Dispose()
    {
        try
        {
            _cursor.Dispose();
            _frames.Dispose();
        }
        finally
        {
            _collection.Dispose();
        }
    }
}
