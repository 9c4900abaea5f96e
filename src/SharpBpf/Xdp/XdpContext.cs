using System.Runtime.InteropServices;

namespace SharpBpf.Xdp;

/// <summary>
/// One XDP frame as a program sees it, laid out as the kernel lays it out for BPF_PROG_TEST_RUN:
/// <code>
///   hard_start          data_meta   data                 data_end              hard_end        frame end
///   | xdp_frame (40) .. headroom 256 | metadata | packet ...       | free tail ...  | shared info (320) |
/// </code>
/// The frame is <see cref="DefaultFrameSize"/> bytes (a page) unless the packet needs more; the context block the
/// program gets in r1 is a <c>struct xdp_md</c>: u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index,
/// egress_ifindex. The VM answers 32-bit loads of data, data_end and data_meta with full pointers, as the kernel
/// rewrites those loads.
/// </summary>
public sealed unsafe class XdpContext : IDisposable
{
    /// <summary>XDP_PACKET_HEADROOM.</summary>
    public const int Headroom = 256;
    /// <summary>Room the kernel reserves at the end of a frame for struct skb_shared_info (aligned, x86-64).</summary>
    public const int Tailroom = 320;
    /// <summary>sizeof(struct xdp_frame): bpf_xdp_adjust_head/meta may not move data below hard_start + this.</summary>
    public const int FrameHeaderSize = 40;
    /// <summary>Frame size the kernel's test run uses (PAGE_SIZE).</summary>
    public const int DefaultFrameSize = 4096;
    /// <summary>sizeof(struct xdp_md).</summary>
    public const int MetadataSize = 24;
    /// <summary>ETH_HLEN: the packet may not shrink below an Ethernet header.</summary>
    public const int EthernetHeaderSize = 14;

    private byte* _frame;
    private int _frameSize;
    private readonly byte* _md;
    private bool _disposed;

    public XdpContext()
    {
        _md = (byte*)NativeMemory.AlignedAlloc(MetadataSize, 8);
        NativeMemory.Clear(_md, MetadataSize);
        Allocate(DefaultFrameSize);
        SetPacket([]);
    }

    internal byte* HardStart => _frame;
    internal byte* HardEnd => _frame + _frameSize - Tailroom;
    internal byte* Data;
    internal byte* DataEnd;
    internal byte* DataMeta;

    /// <summary>The xdp_md block passed to the program in r1.</summary>
    internal byte* MetadataBlock => _md;

    /// <summary>Total size of the frame buffer (headroom, packet, tail room and shared-info room).</summary>
    public int FrameSize => _frameSize;

    /// <summary>The loopback device's ifindex in every network namespace: where the kernel's test-run says a frame arrived.</summary>
    public const uint LoopbackIfindex = 1;

    /// <summary>ingress_ifindex of xdp_md.</summary>

    public uint IngressIfindex { get => ((uint*)_md)[3]; set => ((uint*)_md)[3] = value; }

    /// <summary>rx_queue_index of xdp_md.</summary>
    public uint RxQueueIndex { get => ((uint*)_md)[4]; set => ((uint*)_md)[4] = value; }

    /// <summary>egress_ifindex of xdp_md (0 at the XDP hook on receive).</summary>
    public uint EgressIfindex { get => ((uint*)_md)[5]; set => ((uint*)_md)[5] = value; }

    /// <summary>The packet, from data to data_end.</summary>
    public Span<byte> Packet => new(Data, (int)(DataEnd - Data));

    /// <summary>The metadata area, from data_meta to data.</summary>
    public Span<byte> Metadata => new(DataMeta, (int)(Data - DataMeta));

    /// <summary>Metadata and packet together, from data_meta to data_end (what the kernel's test run returns).</summary>
    public Span<byte> MetadataAndPacket => new(DataMeta, (int)(DataEnd - DataMeta));

    /// <summary>Places a packet at the standard headroom, with no metadata; the frame grows if the packet needs it.</summary>
    public void SetPacket(ReadOnlySpan<byte> packet) => SetPacket(packet, 0);

    /// <summary>Places <paramref name="metadataLength"/> bytes of metadata followed by the packet: the first bytes of
    /// <paramref name="bytes"/> are the metadata (as the kernel's test run takes data_meta from the context).</summary>
    public void SetPacket(ReadOnlySpan<byte> bytes, int metadataLength)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if ((uint)metadataLength > (uint)bytes.Length || metadataLength > 32 || (metadataLength & 3) != 0)
            throw new ArgumentOutOfRangeException(nameof(metadataLength), "metadata must be a multiple of 4 bytes, at most 32, within the data");
        int needed = Headroom + bytes.Length + Tailroom;
        if (needed > _frameSize)
            Allocate((needed + 4095) & ~4095);
        DataMeta = _frame + Headroom;
        Data = DataMeta + metadataLength;
        bytes.CopyTo(new Span<byte>(DataMeta, bytes.Length));
        DataEnd = DataMeta + bytes.Length;
        // The headroom and the bytes after the packet read as zero, as in the fresh page the kernel's test run gives
        // every packet: nothing a previous packet left in the frame (e.g. headers it pushed) shows through.
        NativeMemory.Clear(_frame, Headroom);
        NativeMemory.Clear(DataEnd, (nuint)(_frame + _frameSize - DataEnd));
    }

    private void Allocate(int size)
    {
        if (_frame != null)
            NativeMemory.AlignedFree(_frame);
        _frame = (byte*)NativeMemory.AlignedAlloc((nuint)size, 64);
        NativeMemory.Clear(_frame, (nuint)size);
        _frameSize = size;
    }

    // ---- the kernel's adjust helpers (return 0 or -errno) -------------------------------------------------------

    /// <summary>bpf_xdp_adjust_head: moves data by <paramref name="delta"/>; metadata moves with it.</summary>
    internal int AdjustHead(int delta)
    {
        byte* data = Data + delta;
        long metaLength = Data - DataMeta;
        if (data < _frame + FrameHeaderSize + metaLength || data > DataEnd - EthernetHeaderSize)
            return -Errno.EINVAL;
        if (metaLength > 0)
            Buffer.MemoryCopy(DataMeta, DataMeta + delta, metaLength, metaLength);
        DataMeta += delta;
        Data = data;
        return 0;
    }

    /// <summary>bpf_xdp_adjust_meta: moves data_meta by <paramref name="delta"/>.</summary>
    internal int AdjustMeta(int delta)
    {
        byte* meta = DataMeta + delta;
        if (meta < _frame + FrameHeaderSize || meta > Data)
            return -Errno.EINVAL;
        long length = Data - meta;
        if (length > 32 || (length & 3) != 0)
            return -Errno.EACCES;
        DataMeta = meta;
        return 0;
    }

    /// <summary>bpf_xdp_adjust_tail: moves data_end by <paramref name="delta"/>; grown bytes are zeroed.</summary>
    internal int AdjustTail(int delta)
    {
        byte* end = DataEnd + delta;
        if (end > HardEnd || end < Data + EthernetHeaderSize)
            return -Errno.EINVAL;
        if (delta > 0)
            NativeMemory.Clear(DataEnd, (nuint)delta);
        DataEnd = end;
        return 0;
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        NativeMemory.AlignedFree(_frame);
        NativeMemory.AlignedFree(_md);
        _frame = null;
        GC.SuppressFinalize(this);
    }

    ~XdpContext()
    {
        if (!_disposed)
        {
            NativeMemory.AlignedFree(_frame);
            NativeMemory.AlignedFree(_md);
        }
    }
}

/// <summary>Where a program redirected a frame (bpf_redirect or bpf_redirect_map), for the caller to route it.</summary>
/// <param name="Kind">What the target is.</param>
/// <param name="Index">The ifindex (interface), CPU number, or queue/key of the target.</param>
/// <param name="MapName">The map that chose the target, for bpf_redirect_map.</param>
/// <param name="Flags">The flags the program passed.</param>
public sealed record XdpRedirect(XdpRedirectKind Kind, uint Index, string? MapName, ulong Flags);

public enum XdpRedirectKind
{
    /// <summary>bpf_redirect, or a devmap entry: out of another interface (Index = ifindex or devmap key).</summary>
    Interface,
    /// <summary>A cpumap entry: to another CPU (Index = CPU).</summary>
    Cpu,
    /// <summary>An xskmap entry: to an AF_XDP socket (Index = queue / key).</summary>
    Socket,
}
