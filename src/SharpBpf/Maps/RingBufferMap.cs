using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SharpBpf.Objects;

namespace SharpBpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_RINGBUF: a multi-producer, single-consumer ring of variable-size records, with the kernel's
/// record format and position arithmetic.
/// <code>
///   record at (position &amp; mask):  | len:30 | discard:1 | busy:1 | page offset:32 | data (len, padded to 8) |
///   positions only grow; producer - consumer is the data in the ring; a reservation fails (null) when it would
///   make producer - consumer, or producer - oldest pending record, exceed size - 1.
/// </code>
/// <para>The kernel maps the data pages twice in a row so a record that wraps stays contiguous; we allocate
/// twice the size and let a record run past the end instead. Only a record's owner ever touches those bytes
/// (reader and writer both address a record from its start), so this behaves the same.</para>
/// <para>Records become visible to the reader in reservation order: a committed record waits behind an earlier
/// one still being written (busy), and discarded records are skipped.</para>
/// </summary>
public sealed unsafe class RingBufferMap : ManagedMap
{
    private const int HeaderSize = 8;
    private const uint BusyBit = 1u << 31;
    private const uint DiscardBit = 1u << 30;
    private const ulong MaxRecordSize = uint.MaxValue / 4;

    /// <summary>Flags of submit/discard/output: BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP.</summary>
    public const ulong NoWakeup = 1, ForceWakeup = 2;

    /// <summary>Queries of bpf_ringbuf_query.</summary>
    public const ulong QueryAvailableData = 0, QueryRingSize = 1, QueryConsumerPosition = 2, QueryProducerPosition = 3;

    private readonly byte* _data;
    private readonly ulong _mask;
    private readonly Lock _producerLock = new();
    private readonly Lock _consumerLock = new();
    private readonly SemaphoreSlim _wakeup = new(0, 1);
    private ulong _producer;
    private ulong _consumer;
    private ulong _pending;

    internal RingBufferMap(MapSpec spec) : base(Validate(spec))
    {
        _mask = (ulong)MaxEntries - 1;
        _data = (byte*)NativeMemory.AlignedAlloc((nuint)MaxEntries * 2, 4096);
        NativeMemory.Clear(_data, (nuint)MaxEntries * 2);
    }

    private static MapSpec Validate(MapSpec spec)
    {
        SpecCheck.NoInitialValue(spec);
        SpecCheck.Flags(spec, (uint)MapCreateFlags.NumaNode);
        SpecCheck.Require(spec, spec.KeySize == 0 && spec.ValueSize == 0, Errno.EINVAL,
            $"key and value size must be 0, got {spec.KeySize} and {spec.ValueSize}");
        SpecCheck.Require(spec, spec.MaxEntries != 0 && (spec.MaxEntries & (spec.MaxEntries - 1)) == 0 &&
                                spec.MaxEntries % 4096 == 0, Errno.EINVAL,
            $"size (max entries) must be a power of 2 and a multiple of the page size, got {spec.MaxEntries}");
        // The kernel maps larger rings lazily; we allocate twice the size up front, so we stop at 1 GiB.
        SpecCheck.Require(spec, spec.MaxEntries <= 1u << 30, Errno.ENOMEM,
            $"size {spec.MaxEntries} is over the managed VM's 1 GiB limit for a ring buffer");
        return spec;
    }

    /// <summary>Size of the data area in bytes.</summary>
    public ulong Size => _mask + 1;

    /// <summary>bpf_ringbuf_reserve: a writable sample of <paramref name="size"/> bytes, or null (flags not 0,
    /// too big, or no room).</summary>
    public byte* Reserve(ulong size, ulong flags)
    {
        if (flags != 0 || size > MaxRecordSize)
            return null;
        var length = (size + HeaderSize + 7) & ~7ul;
        if (length > Size)
            return null;
        var consumer = Volatile.Read(ref _consumer);
        lock (_producerLock)
        {
            var producer = _producer;
            var pending = _pending;
            // Move the oldest-pending mark past records already committed or discarded.
            while (pending < producer)
            {
                var header = Volatile.Read(ref *(uint*)(_data + (pending & _mask)));
                if ((header & BusyBit) != 0)
                    break;
                pending += (((header & ~(BusyBit | DiscardBit)) + HeaderSize + 7) & ~7u);
            }
            _pending = pending;
            var next = producer + length;
            if (next - consumer > _mask || next - pending > _mask)
                return null;
            var record = _data + (producer & _mask);
            *(uint*)(record + 4) = (uint)((producer & _mask) >> 12); // page offset, as the kernel records it
            Volatile.Write(ref *(uint*)record, (uint)size | BusyBit);
            Volatile.Write(ref _producer, next);
            return record + HeaderSize;
        }
    }

    /// <summary>True when <paramref name="sample"/> is a sample this ring handed out and not yet committed.</summary>
    public bool IsReservedSample(byte* sample)
    {
        if (sample < _data + HeaderSize || sample >= _data + Size + HeaderSize || ((nint)(sample - _data) & 7) != 0)
            return false;
        return (Volatile.Read(ref *(uint*)(sample - HeaderSize)) & BusyBit) != 0;
    }

    /// <summary>bpf_ringbuf_submit.</summary>
    public void Submit(byte* sample, ulong flags) => Commit(sample, flags, discard: false);

    /// <summary>bpf_ringbuf_discard.</summary>
    public void Discard(byte* sample, ulong flags) => Commit(sample, flags, discard: true);

    private void Commit(byte* sample, ulong flags, bool discard)
    {
        if (!IsReservedSample(sample))
            return; // not ours or already committed: the verifier would have refused the program
        ref var header = ref *(uint*)(sample - HeaderSize);
        var length = Volatile.Read(ref header) & ~BusyBit;
        if (discard)
            length |= DiscardBit;
        Interlocked.Exchange(ref header, length);
        var position = (ulong)(sample - HeaderSize - _data);
        var consumer = Volatile.Read(ref _consumer) & _mask;
        // As the kernel: wake the reader when forced, or when this record is the next it will read.
        if ((flags & ForceWakeup) != 0 || (consumer == position && (flags & NoWakeup) == 0))
            Wake();
    }

    private void Wake()
    {
        if (_wakeup.CurrentCount == 0)
        {
            try
            {
                _wakeup.Release();
            }
            catch (SemaphoreFullException)
            {
                // Another producer woke the reader at the same time.
            }
        }
    }

    /// <summary>bpf_ringbuf_output: copies <paramref name="size"/> bytes as one record. 0, -EINVAL for unknown
    /// flags, -EAGAIN when there is no room.</summary>
    public int Output(byte* data, ulong size, ulong flags)
    {
        if ((flags & ~(NoWakeup | ForceWakeup)) != 0)
            return -Errno.EINVAL;
        var sample = Reserve(size, 0);
        if (sample == null)
            return -Errno.EAGAIN;
        Buffer.MemoryCopy(data, sample, (long)size, (long)size);
        Commit(sample, flags, discard: false);
        return 0;
    }

    /// <summary>bpf_ringbuf_query.</summary>
    public ulong Query(ulong flags) => flags switch
    {
        QueryAvailableData => Volatile.Read(ref _producer) - Volatile.Read(ref _consumer),
        QueryRingSize => Size,
        QueryConsumerPosition => Volatile.Read(ref _consumer),
        QueryProducerPosition => Volatile.Read(ref _producer),
        _ => 0,
    };

    // ---- user-side reader ---------------------------------------------------------------------------------------

    /// <summary>Takes the next committed record, skipping discarded ones. False when none is ready (the ring is
    /// empty or the next record is still being written).</summary>
    public bool TryRead(out byte[] record)
    {
        lock (_consumerLock)
        {
            var consumer = _consumer;
            while (consumer < Volatile.Read(ref _producer))
            {
                var at = _data + (consumer & _mask);
                var header = Volatile.Read(ref *(uint*)at);
                if ((header & BusyBit) != 0)
                    break;
                var length = header & ~(BusyBit | DiscardBit);
                var next = consumer + ((length + HeaderSize + 7) & ~7u);
                if ((header & DiscardBit) == 0)
                {
                    record = new ReadOnlySpan<byte>(at + HeaderSize, (int)length).ToArray();
                    Volatile.Write(ref _consumer, next);
                    return true;
                }
                consumer = next;
                Volatile.Write(ref _consumer, consumer);
            }
        }
        record = [];
        return false;
    }

    /// <summary>Every record as it is committed, until cancelled. Records submitted with BPF_RB_NO_WAKEUP are
    /// picked up within 100 ms.</summary>
    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAllAsync(
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            while (TryRead(out var record))
                yield return record;
            try
            {
                await _wakeup.WaitAsync(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
        }
    }

    // ---- map operations the kernel does not support on a ring buffer --------------------------------------------

    public override byte* LookupForProgram(byte* key, int cpu) => null;
    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) => -Errno.ENOTSUPP;
    public override int DeleteFromProgram(byte* key) => -Errno.ENOTSUPP;
    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => throw Fail("lookup", Errno.ENOTSUPP);
    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any) =>
        throw Fail("update", Errno.ENOTSUPP);
    public override bool Delete(ReadOnlySpan<byte> key) => throw Fail("delete", Errno.ENOTSUPP);
    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => throw Fail("get next key", Errno.ENOTSUPP);

    protected override void Dispose(bool disposing)
    {
        if (_data != null)
            NativeMemory.AlignedFree(_data);
        if (disposing)
            _wakeup?.Dispose();
    }
}
