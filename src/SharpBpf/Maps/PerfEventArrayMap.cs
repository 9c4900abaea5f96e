using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SharpBpf.Objects;

namespace SharpBpf.Maps;

/// <summary>One record bpf_perf_event_output produced: the slot (CPU) it went to and its bytes.</summary>
public readonly record struct PerfEventRecord(int Cpu, byte[] Data);

/// <summary>
/// BPF_MAP_TYPE_PERF_EVENT_ARRAY with a managed reader in place of perf ring buffers: bpf_perf_event_output
/// appends a record to the slot's buffer, which user code drains with <see cref="TryRead"/> or
/// <see cref="ReadAllAsync"/>. A slot receives only once opened (<see cref="Open"/>, or an update with any
/// value, where the kernel takes a perf event fd).
/// <para>Kernel semantics kept: key and value are 4 bytes; the output flags' low 32 bits pick the slot, with
/// BPF_F_CURRENT_CPU (0xffffffff) meaning the running CPU, and other bits are EINVAL; a slot past the end is
/// E2BIG, a slot not opened ENOENT; a full buffer drops the record with ENOSPC and counts it as lost.</para>
/// </summary>
public sealed unsafe class PerfEventArrayMap : ManagedMap
{
    /// <summary>BPF_F_CURRENT_CPU.</summary>
    public const ulong CurrentCpu = 0xffffffff;

    private sealed class Slot(int capacity)
    {
        public readonly int Capacity = capacity;
        public readonly ConcurrentQueue<byte[]> Records = new();
        public int Bytes;
        public long Lost;
    }

    private readonly Slot?[] _slots;
    private readonly ConcurrentQueue<int> _order = new(); // slot of each record, in output order
    private readonly SemaphoreSlim _wakeup = new(0, 1);

    internal PerfEventArrayMap(MapSpec spec) : base(Validate(spec)) => _slots = new Slot?[MaxEntries];

    private static MapSpec Validate(MapSpec spec)
    {
        SpecCheck.NoInitialValue(spec);
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.KeySize(spec, 4);
        SpecCheck.Require(spec, spec.ValueSize == 4, Errno.EINVAL, $"value size must be 4 (a perf event fd), got {spec.ValueSize}");
        SpecCheck.Flags(spec, (uint)(MapCreateFlags.NumaNode | MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly |
                                     MapCreateFlags.PreserveElements));
        SpecCheck.Require(spec, spec.MaxEntries <= 1 << 20, Errno.ENOMEM, $"{spec.MaxEntries} slots are too many");
        return spec;
    }

    /// <summary>Opens slot <paramref name="index"/> with a buffer of <paramref name="capacityBytes"/> bytes of
    /// unread records (perf's ring size).</summary>
    public void Open(uint index, int capacityBytes = 64 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBytes, 8);
        if (index >= (uint)MaxEntries)
            throw Fail("update", Errno.E2BIG);
        Volatile.Write(ref _slots[index], new Slot(capacityBytes));
    }

    /// <summary>Opens every slot (one per CPU, as a perf buffer does).</summary>
    public void OpenAll(int capacityBytes = 64 * 1024)
    {
        for (uint i = 0; i < MaxEntries; i++)
            Open(i, capacityBytes);
    }

    /// <summary>Records dropped because slot <paramref name="index"/>'s buffer was full.</summary>
    public long LostRecords(uint index) =>
        index < (uint)MaxEntries && Volatile.Read(ref _slots[index]) is { } slot ? Interlocked.Read(ref slot.Lost) : 0;

    /// <summary>bpf_perf_event_output: 0 or -errno.</summary>
    public int Output(byte* data, ulong size, ulong flags, int currentCpu)
    {
        if ((flags & ~CurrentCpu) != 0)
            return -Errno.EINVAL;
        var index = (flags & CurrentCpu) == CurrentCpu ? (uint)currentCpu : (uint)flags;
        if (index >= (uint)MaxEntries)
            return -Errno.E2BIG;
        var slot = Volatile.Read(ref _slots[index]);
        if (slot is null)
            return -Errno.ENOENT;
        // A perf sample carries a 4-byte size and is padded to 8; the buffer holds that much.
        var cost = (int)Math.Min(((size + 4 + 7) & ~7ul) + 8, int.MaxValue);
        if (size > int.MaxValue || Interlocked.Add(ref slot.Bytes, cost) > slot.Capacity)
        {
            if (size <= int.MaxValue)
                Interlocked.Add(ref slot.Bytes, -cost);
            Interlocked.Increment(ref slot.Lost);
            return -Errno.ENOSPC;
        }
        slot.Records.Enqueue(new ReadOnlySpan<byte>(data, (int)size).ToArray());
        _order.Enqueue((int)index);
        if (_wakeup.CurrentCount == 0)
        {
            try
            {
                _wakeup.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
        return 0;
    }

    /// <summary>The oldest unread record of any slot.</summary>
    public bool TryRead(out PerfEventRecord record)
    {
        while (_order.TryDequeue(out var index))
        {
            var slot = Volatile.Read(ref _slots[index]);
            if (slot is not null && slot.Records.TryDequeue(out var data))
            {
                Interlocked.Add(ref slot.Bytes, -(int)Math.Min(((ulong)data.Length + 4 + 7 & ~7ul) + 8, int.MaxValue));
                record = new PerfEventRecord(index, data);
                return true;
            }
        }
        record = default;
        return false;
    }

    /// <summary>Every record as it is output, until cancelled.</summary>
    public async IAsyncEnumerable<PerfEventRecord> ReadAllAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
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

    public override byte* LookupForProgram(byte* key, int cpu) => null;
    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu) => -Errno.EINVAL;
    public override int DeleteFromProgram(byte* key) => -Errno.EINVAL;

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => throw Fail("lookup", Errno.ENOTSUPP);

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        if (flags != MapUpdateFlags.Any)
            throw Fail("update", Errno.EINVAL);
        Open(MemoryMarshal.Read<uint>(key));
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        EnsureUserCanWrite("delete");
        var index = MemoryMarshal.Read<uint>(key);
        if (index >= (uint)MaxEntries)
            throw Fail("delete", Errno.E2BIG);
        return Interlocked.Exchange(ref _slots[index], null) is not null;
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => ArrayKeys.Next(this, key, nextKey);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _wakeup?.Dispose();
    }
}
