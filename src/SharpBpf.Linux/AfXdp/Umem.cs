using System.Numerics;
using System.Runtime.CompilerServices;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// The packet buffer area of AF_XDP: <see cref="UmemOptions.FrameCount"/> chunks of <see cref="UmemOptions.FrameSize"/>
/// bytes in anonymous memory, registered with the kernel (XDP_UMEM_REG) by the first socket created on it; later
/// sockets share it (XDP_SHARED_UMEM). Frames are named by their offset in the area. The UMEM keeps a pool of
/// frames that no ring holds, for sockets to fill their fill rings and to transmit from; it is not thread-safe.
/// Every socket holds a reference on the area: <see cref="Dispose"/> refuses new sockets at once, but the memory is
/// unmapped only when the last socket made on it is disposed too, whatever the order.
/// </summary>
public sealed unsafe class Umem : IDisposable
{
    private readonly MappedMemory _memory;
    private readonly ulong[] _free;
    private int _freeCount;
    private readonly ulong _chunkMask;
    private readonly List<XskSocket> _sockets = [];
    private readonly Lock _sync = new();
    private bool _disposeRequested;

    public Umem(UmemOptions? options = null)
    {
        Options = options ?? new UmemOptions();
        if (Options.FrameCount < 1)
            throw new ArgumentOutOfRangeException(nameof(options), "a UMEM needs at least one frame");
        if (Options.FrameSize < 2048 || (!Options.Unaligned && !BitOperations.IsPow2(Options.FrameSize)))
            throw new ArgumentOutOfRangeException(nameof(options), $"frame size {Options.FrameSize}: aligned chunks are a power of two of at least 2048 bytes");
        if (Options.Headroom < 0 || Options.Headroom + Xsk.XDP_PACKET_HEADROOM >= Options.FrameSize)
            throw new ArgumentOutOfRangeException(nameof(options), $"headroom {Options.Headroom} leaves no room in a {Options.FrameSize}-byte frame");
        Length = (long)Options.FrameCount * Options.FrameSize;
        _memory = MappedMemory.Anonymous((nuint)Length);
        _chunkMask = Options.Unaligned ? ulong.MaxValue : ~((ulong)Options.FrameSize - 1);
        _free = new ulong[Options.FrameCount];
        for (int i = 0; i < Options.FrameCount; i++)
            _free[i] = (ulong)(Options.FrameCount - 1 - i) * (ulong)Options.FrameSize;
        _freeCount = Options.FrameCount;
    }

    public UmemOptions Options { get; }

    public int FrameSize => Options.FrameSize;
    public int FrameCount => Options.FrameCount;

    /// <summary>Bytes in the area.</summary>
    public long Length { get; }

    /// <summary>Frames in the pool (in no ring and not handed out).</summary>
    public int FreeFrames => _freeCount;

    /// <summary>Sockets made on this UMEM and not disposed yet: each holds the memory mapped.</summary>
    public int SocketCount
    {
        get { lock (_sync) return _sockets.Count; }
    }

    /// <summary>
    /// The live socket a new socket on (<paramref name="ifIndex"/>, <paramref name="queueId"/>) names in
    /// XDP_SHARED_UMEM: one bound to that same queue if any (then the kernel gives the new socket its fill and
    /// completion rings), else any (then the new socket has rings of its own); null when none is left, and the new
    /// socket registers the area again.
    /// </summary>
    internal XskSocket? ShareWith(int ifIndex, uint queueId)
    {
        lock (_sync)
            return _sockets.Find(s => s.IfIndex == ifIndex && s.QueueId == queueId) ?? (_sockets.Count > 0 ? _sockets[0] : null);
    }

    /// <summary>A new socket takes a reference on the area.</summary>
    internal void AddSocket(XskSocket socket)
    {
        lock (_sync)
        {
            ObjectDisposedException.ThrowIf(_disposeRequested, this);
            _sockets.Add(socket);
        }
    }

    /// <summary>A disposed socket drops its reference; the last one unmaps an area whose dispose was asked for.</summary>
    internal void RemoveSocket(XskSocket socket)
    {
        bool unmap;
        lock (_sync)
        {
            _sockets.Remove(socket);
            unmap = _disposeRequested && _sockets.Count == 0;
        }
        if (unmap)
            _memory.Dispose();
    }

    internal byte* Base => _memory.Pointer;

    /// <summary>The area's mapping (start, length), for leak checks.</summary>
    internal (nint Start, nuint Length) Mapping => ((nint)_memory.Pointer, _memory.Length);

    /// <summary>True once <see cref="Dispose"/> was called (the memory may stay mapped for sockets still open).</summary>
    internal bool IsDisposed
    {
        get { lock (_sync) return _disposeRequested || _memory.IsClosed; }
    }

    internal xdp_umem_reg Registration() => new()
    {
        addr = (ulong)_memory.Pointer,
        len = (ulong)Length,
        chunk_size = (uint)Options.FrameSize,
        headroom = (uint)Options.Headroom,
        flags = Options.Unaligned ? Xsk.XDP_UMEM_UNALIGNED_CHUNK_FLAG : 0,
    };

    /// <summary>Offset in the area where the data of a descriptor's address starts (the unaligned form carries the
    /// in-chunk offset in bits 48-63).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong DataOffset(ulong address) => Options.Unaligned
        ? (address & Xsk.XSK_UNALIGNED_BUF_ADDR_MASK) + (address >> Xsk.XSK_UNALIGNED_BUF_OFFSET_SHIFT)
        : address;

    /// <summary>The chunk a descriptor's address lies in: what goes back into the fill ring or the pool.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ChunkAddress(ulong address) => Options.Unaligned ? address & Xsk.XSK_UNALIGNED_BUF_ADDR_MASK : address & _chunkMask;

    /// <summary>The packet bytes a descriptor describes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Data(in XdpDesc descriptor)
    {
        ulong offset = DataOffset(descriptor.Address);
        if (offset + descriptor.Length > (ulong)Length)
            throw new ArgumentOutOfRangeException(nameof(descriptor), $"descriptor {descriptor} lies outside the {Length}-byte UMEM");
        return new Span<byte>(_memory.Pointer + offset, (int)descriptor.Length);
    }

    /// <summary>A whole frame from its chunk address (for writing a packet to transmit).</summary>
    public Span<byte> Frame(ulong chunkAddress)
    {
        if (chunkAddress + (ulong)FrameSize > (ulong)Length)
            throw new ArgumentOutOfRangeException(nameof(chunkAddress), $"frame 0x{chunkAddress:x} lies outside the {Length}-byte UMEM");
        return new Span<byte>(_memory.Pointer + chunkAddress, FrameSize);
    }

    /// <summary>Takes a frame from the pool; false when every frame is in a ring or handed out.</summary>
    public bool TryAllocate(out ulong chunkAddress)
    {
        if (_freeCount == 0)
        {
            chunkAddress = 0;
            return false;
        }
        chunkAddress = _free[--_freeCount];
        return true;
    }

    /// <summary>Returns a frame (any address within it) to the pool.</summary>
    public void Free(ulong address)
    {
        if (_freeCount == _free.Length)
            throw new InvalidOperationException("more frames freed than the UMEM has: a frame was freed twice");
        _free[_freeCount++] = ChunkAddress(address);
    }

    /// <summary>No new socket may use the UMEM from now on; the memory is unmapped now if no socket uses it, else when the last one is disposed.</summary>
    public void Dispose()
    {
        bool unmap;
        lock (_sync)
        {
            unmap = !_disposeRequested && _sockets.Count == 0;
            _disposeRequested = true;
        }
        if (unmap)
            _memory.Dispose();
    }
}
