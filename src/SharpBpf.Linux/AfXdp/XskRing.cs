using System.Runtime.CompilerServices;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.AfXdp;

/// <summary>
/// One single-producer/single-consumer ring shared with the kernel, mapped at the offsets XDP_MMAP_OFFSETS gave:
/// <code>
///   map + producer: u32 producer index     (written by the producing side)
///   map + consumer: u32 consumer index     (written by the consuming side)
///   map + flags:    u32 XDP_RING_NEED_WAKEUP
///   map + desc:     size entries (u64 addresses for fill/completion, xdp_desc for RX/TX)
/// </code>
/// Indexes run freely and wrap at 2^32; an entry is at index &amp; (size - 1). The peer's index is read with acquire
/// (Volatile.Read) and ours published with release (Volatile.Write), pairing with the kernel's smp_load_acquire and
/// smp_store_release: entries written before a producer update are visible to whoever sees the update, and entries
/// are not reused before the consumer update that frees them. Each side caches the peer's index to touch the shared
/// cache line only when the cached view runs out.
/// </summary>
internal sealed unsafe class XskRing
{
    private readonly MappedMemory _map;
    private readonly uint* _producer, _consumer, _flags;
    private readonly byte* _entries;
    private readonly uint _mask;
    private uint _local;        // our index (producer for fill/TX, consumer for RX/completion), reserved or peeked
    private uint _peerCached;   // last seen index of the other side

    public XskRing(MappedMemory map, in xdp_ring_offset offsets, uint size, bool producerSide)
    {
        _map = map;
        var b = map.Pointer;
        _producer = (uint*)(b + offsets.producer);
        _consumer = (uint*)(b + offsets.consumer);
        _flags = (uint*)(b + offsets.flags);
        _entries = b + offsets.desc;
        Size = size;
        _mask = size - 1;
        IsProducer = producerSide;
        _local = producerSide ? Volatile.Read(ref *_producer) : Volatile.Read(ref *_consumer);
        _peerCached = producerSide ? Volatile.Read(ref *_consumer) : Volatile.Read(ref *_producer);
    }

    public uint Size { get; }
    public bool IsProducer { get; }
    public MappedMemory Map => _map;

    public bool NeedsWakeup => (Volatile.Read(ref *_flags) & Xsk.XDP_RING_NEED_WAKEUP) != 0;

    // ---- producer side (fill, TX) ----

    /// <summary>Reserves up to <paramref name="wanted"/> entries from <paramref name="index"/> on; returns how many.</summary>
    public uint Reserve(uint wanted, out uint index)
    {
        uint free = Size - (_local - _peerCached);
        if (free < wanted)
        {
            _peerCached = Volatile.Read(ref *_consumer);
            free = Size - (_local - _peerCached);
        }
        uint n = Math.Min(wanted, free);
        index = _local;
        _local += n;
        return n;
    }

    /// <summary>Publishes every reserved entry to the kernel.</summary>
    public void Submit() => Volatile.Write(ref *_producer, _local);

    /// <summary>Entries the kernel has not consumed yet (for tests and diagnostics).</summary>
    public uint Outstanding => _local - Volatile.Read(ref *_consumer);

    // ---- consumer side (RX, completion) ----

    /// <summary>Takes up to <paramref name="wanted"/> filled entries from <paramref name="index"/> on; returns how many.</summary>
    public uint Peek(uint wanted, out uint index)
    {
        uint available = _peerCached - _local;
        if (available < wanted)
        {
            _peerCached = Volatile.Read(ref *_producer);
            available = _peerCached - _local;
        }
        uint n = Math.Min(wanted, available);
        index = _local;
        _local += n;
        return n;
    }

    /// <summary>Hands every peeked entry back to the kernel.</summary>
    public void Release() => Volatile.Write(ref *_consumer, _local);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref ulong Address(uint index) => ref ((ulong*)_entries)[index & _mask];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ref XdpDesc Descriptor(uint index) => ref ((XdpDesc*)_entries)[index & _mask];
}
