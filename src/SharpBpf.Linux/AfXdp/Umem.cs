using System.Numerics;
using System.Runtime.CompilerServices;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// The packet buffer area of AF_XDP: <see cref="UmemOptions.FrameCount"/> chunks of <see cref="UmemOptions.FrameSize"/>
/// bytes in anonymous memory, registered with the kernel (XDP_UMEM_REG) by the first socket created on it; later
/// sockets share it (XDP_SHARED_UMEM). Frames are named by their offset in the area. The UMEM keeps a pool of
/// frames that no ring holds, for sockets to fill their fill rings and to transmit from; it is not thread-safe.
/// Dispose the sockets first, then the UMEM (the memory is unmapped here).
/// </summary>
public sealed unsafe class Umem : IDisposable
{
    private readonly MappedMemory _memory;
    private readonly ulong[] _free;
    private int _freeCount;
    private readonly ulong _chunkMask;

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

    /// <summary>The socket that registered this UMEM (its fd is what sharing sockets name), or null before the first.</summary>
    internal XskSocket? Owner { get; set; }

    internal byte* Base => _memory.Pointer;

    /// <summary>The area's mapping (start, length), for leak checks.</summary>
    internal (nint Start, nuint Length) Mapping => ((nint)_memory.Pointer, _memory.Length);

    internal bool IsDisposed => _memory.IsClosed;

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

    public void Dispose() => _memory.Dispose();
}
