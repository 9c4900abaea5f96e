using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SharpBpf.Maps;

// Additions to the map contract: identity (id and program handle), freezing, deferred reclamation and the .NET
// user face (typed helpers, per-CPU arrays, iteration, batches). Everything here builds on the abstract members.
public abstract unsafe partial class ManagedMap
{
    private static readonly ConcurrentDictionary<uint, WeakReference<ManagedMap>> s_byId = new();
    private static readonly ConcurrentDictionary<nint, WeakReference<ManagedMap>> s_byHandle = new();
    private static int s_lastId;

    private const uint HandleMagic = 0x4d425053; // "SPBM" in memory order: marks a live map handle

    private readonly byte* _handle;
    private int _disposed;
    private int _frozen;

    /// <summary>Process-wide id of the map (from 1, as kernel map ids). Map-in-map and program-array values
    /// written from user space as bytes name maps by this id, where the kernel would take an fd.</summary>
    public uint Id { get; }

    /// <summary>
    /// An opaque, stable, non-null pointer that stands for this map inside programs: what <c>lddw rX, map</c>
    /// loads in the VM and what a map-in-map lookup returns. <see cref="FromProgramHandle"/> turns it back into the
    /// map. It points to 8 bytes of unmanaged memory (a magic word and the id) that live until the map is disposed.
    /// </summary>
    public byte* ProgramHandle => _handle;

    /// <summary>The map that <paramref name="handle"/> stands for, or null when it is not a live map handle.</summary>
    public static ManagedMap? FromProgramHandle(void* handle) =>
        handle != null && s_byHandle.TryGetValue((nint)handle, out var weak) && weak.TryGetTarget(out var map) &&
        map._disposed == 0
            ? map
            : null;

    /// <summary>The live map with this <see cref="Id"/>, or null.</summary>
    public static ManagedMap? FromId(uint id) =>
        s_byId.TryGetValue(id, out var weak) && weak.TryGetTarget(out var map) && map._disposed == 0 ? map : null;

    private static uint Register(ManagedMap map, out byte* handle)
    {
        var id = (uint)Interlocked.Increment(ref s_lastId);
        handle = (byte*)NativeMemory.Alloc(8);
        ((uint*)handle)[0] = HandleMagic;
        ((uint*)handle)[1] = id;
        var weak = new WeakReference<ManagedMap>(map);
        s_byId[id] = weak;
        s_byHandle[(nint)handle] = weak;
        return id;
    }

    private void Unregister()
    {
        s_byId.TryRemove(Id, out _);
        if (_handle != null && s_byHandle.TryRemove((nint)_handle, out _))
        {
            ((uint*)_handle)[0] = 0;
            NativeMemory.Free(_handle);
        }
    }

    /// <summary>Frees native memory of a map that was never disposed.</summary>
    ~ManagedMap()
    {
        // Id 0: the spec was refused before the map existed, there is nothing to free.
        if (Id == 0 || Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Dispose(false);
        Unregister();
    }

    /// <summary>True once <see cref="Dispose()"/> ran.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>True when programs may only read the map's values (BPF_F_RDONLY_PROG, set on .rodata).</summary>
    public virtual bool IsReadOnlyForProgram => (Flags & (uint)MapCreateFlags.ReadOnlyProgram) != 0;

    /// <summary>True after <see cref="Freeze"/>: user space may no longer write (programs still may, unless
    /// <see cref="IsReadOnlyForProgram"/>).</summary>
    public bool IsFrozen => Volatile.Read(ref _frozen) != 0;

    /// <summary>True for per-CPU maps: user values hold one value per possible CPU, each rounded up to 8 bytes.</summary>
    public virtual bool IsPerCpu => false;

    /// <summary>BPF_MAP_FREEZE: user space can no longer write. A second freeze is refused with EBUSY.</summary>
    public void Freeze()
    {
        if (Interlocked.Exchange(ref _frozen, 1) != 0)
            throw Fail("freeze", Errno.EBUSY);
    }

    /// <summary>
    /// Makes memory of deleted or replaced elements reusable. Programs may hold pointers to values that were
    /// deleted or replaced during their run (as with RCU in the kernel), so such memory is only retired, never
    /// reused or freed, until this is called. Call it when no program that uses the map is running (the VM does
    /// between runs). Nothing happens to live elements.
    /// </summary>
    public virtual void Reclaim() { }

    /// <summary>
    /// Makes reusable the memory no program run in progress can still reach, for engines that bracket runs with
    /// <see cref="ProgramRuns.Enter"/>/<see cref="ProgramRuns.Exit"/>: safe to call at any time, from any thread.
    /// </summary>
    public void ReclaimUnreachable() => ReclaimBefore(ProgramRuns.OldestActive());

    /// <summary>Reuses memory retired at or before epoch <paramref name="oldestActive"/>.</summary>
    private protected virtual void ReclaimBefore(long oldestActive) { }

    /// <summary>The exception for a refused operation on this map.</summary>
    protected MapException Fail(string operation, int errno) => new(Name, operation, errno);

    /// <summary>Refuses user writes to frozen maps and to maps created read-only for user space (EPERM).</summary>
    protected void EnsureUserCanWrite(string operation)
    {
        if (IsFrozen || (Flags & (uint)MapCreateFlags.ReadOnly) != 0)
            throw Fail(operation, Errno.EPERM);
    }

    /// <summary>Refuses user reads of maps created write-only for user space (EPERM).</summary>
    protected void EnsureUserCanRead(string operation)
    {
        if ((Flags & (uint)MapCreateFlags.WriteOnly) != 0)
            throw Fail(operation, Errno.EPERM);
    }

    /// <summary>Checks user-face argument sizes (a wrong size is the caller's bug, not a kernel refusal).</summary>
    protected void CheckUserSizes(int keyLength, int valueLength, bool checkValue = true)
    {
        if (keyLength != KeySize)
            throw new ArgumentException($"map '{Name}': key must be {KeySize} bytes, got {keyLength}");
        if (checkValue && valueLength != UserValueSize)
            throw new ArgumentException($"map '{Name}': value must be {UserValueSize} bytes, got {valueLength}");
    }

    // ---- typed user face ----------------------------------------------------------------------------------------

    /// <summary>Looks up an unmanaged key and reads the value as <typeparamref name="TValue"/>.</summary>
    public bool TryLookup<TKey, TValue>(TKey key, out TValue value)
        where TKey : unmanaged where TValue : unmanaged
    {
        value = default;
        CheckTyped<TKey>(KeySize, "key");
        CheckTyped<TValue>(UserValueSize, "value");
        return TryLookup(Bytes(ref key), MemoryMarshal.AsBytes(new Span<TValue>(ref value)));
    }

    /// <summary>Looks up a key that must be present (MapException with ENOENT otherwise).</summary>
    public TValue Lookup<TKey, TValue>(TKey key) where TKey : unmanaged where TValue : unmanaged =>
        TryLookup<TKey, TValue>(key, out var value) ? value : throw Fail("lookup", Errno.ENOENT);

    /// <summary>Sets the value of an unmanaged key.</summary>
    public void Update<TKey, TValue>(TKey key, TValue value, MapUpdateFlags flags = MapUpdateFlags.Any)
        where TKey : unmanaged where TValue : unmanaged
    {
        CheckTyped<TKey>(KeySize, "key");
        CheckTyped<TValue>(UserValueSize, "value");
        Update(Bytes(ref key), MemoryMarshal.AsBytes(new Span<TValue>(ref value)), flags);
    }

    /// <summary>Removes an unmanaged key; false when it was absent.</summary>
    public bool Delete<TKey>(TKey key) where TKey : unmanaged
    {
        CheckTyped<TKey>(KeySize, "key");
        return Delete(Bytes(ref key));
    }

    /// <summary>Per-CPU maps: the value of every possible CPU, index = CPU. Null when the key is absent.</summary>
    public TValue[]? LookupPerCpu<TKey, TValue>(TKey key) where TKey : unmanaged where TValue : unmanaged
    {
        CheckTyped<TKey>(KeySize, "key");
        var stride = CheckPerCpu<TValue>();
        var buffer = new byte[UserValueSize];
        if (!TryLookup(Bytes(ref key), buffer))
            return null;
        var values = new TValue[PossibleCpus];
        for (var cpu = 0; cpu < values.Length; cpu++)
            values[cpu] = MemoryMarshal.Read<TValue>(buffer.AsSpan(cpu * stride));
        return values;
    }

    /// <summary>Per-CPU maps: sets the value of every possible CPU (<paramref name="values"/> has one per CPU).</summary>
    public void UpdatePerCpu<TKey, TValue>(TKey key, ReadOnlySpan<TValue> values,
        MapUpdateFlags flags = MapUpdateFlags.Any) where TKey : unmanaged where TValue : unmanaged
    {
        CheckTyped<TKey>(KeySize, "key");
        var stride = CheckPerCpu<TValue>();
        if (values.Length != PossibleCpus)
            throw new ArgumentException($"map '{Name}': per-CPU update needs {PossibleCpus} values, got {values.Length}");
        var buffer = new byte[UserValueSize];
        for (var cpu = 0; cpu < values.Length; cpu++)
        {
            var v = values[cpu];
            MemoryMarshal.Write(buffer.AsSpan(cpu * stride), in v);
        }
        Update(Bytes(ref key), buffer, flags);
    }

    private int CheckPerCpu<TValue>() where TValue : unmanaged
    {
        if (!IsPerCpu)
            throw new InvalidOperationException($"map '{Name}' ({Type}) is not a per-CPU map");
        CheckTyped<TValue>(ValueSize, "per-CPU value");
        return (ValueSize + 7) & ~7;
    }

    private void CheckTyped<T>(int expected, string what) where T : unmanaged
    {
        if (sizeof(T) != expected)
            throw new ArgumentException(
                $"map '{Name}': {what} type {typeof(T).Name} is {sizeof(T)} bytes, the map's {what} is {expected}");
    }

    private static Span<byte> Bytes<T>(ref T value) where T : unmanaged =>
        MemoryMarshal.AsBytes(new Span<T>(ref value));

    // ---- iteration ----------------------------------------------------------------------------------------------

    /// <summary>
    /// The keys, in the order <see cref="TryGetNextKey"/> gives them (the kernel's get_next_key walk). As in the
    /// kernel, if the current key is deleted meanwhile the walk restarts from the first key; the walk stops after
    /// 2 x MaxEntries + 16 steps so that concurrent churn cannot make it endless.
    /// </summary>
    public IEnumerable<byte[]> Keys
    {
        get
        {
            if (KeySize == 0)
                yield break;
            var current = Array.Empty<byte>();
            var limit = 2L * MaxEntries + 16;
            for (long step = 0; step < limit; step++)
            {
                var next = new byte[KeySize];
                if (!TryGetNextKey(current, next))
                    yield break;
                yield return next;
                current = next;
            }
        }
    }

    /// <summary>Key/value pairs (values as user space sees them: all CPUs for per-CPU maps). Keys deleted while
    /// walking are skipped.</summary>
    public IEnumerable<KeyValuePair<byte[], byte[]>> Entries
    {
        get
        {
            foreach (var key in Keys)
            {
                var value = new byte[UserValueSize];
                if (TryLookup(key, value))
                    yield return new KeyValuePair<byte[], byte[]>(key, value);
            }
        }
    }

    // ---- batches ------------------------------------------------------------------------------------------------

    /// <summary>
    /// BPF_MAP_LOOKUP_BATCH: fills <paramref name="keys"/> and <paramref name="values"/> (KeySize and
    /// UserValueSize bytes a slot) with the entries after <paramref name="cursor"/> (null to start). Returns how
    /// many were filled and moves the cursor on; 0 means the walk is over.
    /// </summary>
    public int LookupBatch(ref byte[]? cursor, Span<byte> keys, Span<byte> values)
    {
        var capacity = BatchCapacity(keys.Length, values.Length);
        var count = 0;
        var current = cursor ?? [];
        var next = new byte[KeySize];
        while (count < capacity && TryGetNextKey(current, next))
        {
            var keySlot = keys.Slice(count * KeySize, KeySize);
            next.CopyTo(keySlot);
            current = next.ToArray();
            if (TryLookup(keySlot, values.Slice(count * UserValueSize, UserValueSize)))
                count++;
        }
        if (count > 0)
            cursor = current;
        return count;
    }

    /// <summary>BPF_MAP_LOOKUP_AND_DELETE_BATCH: takes up to the slots' worth of entries out of the map.</summary>
    public int LookupAndDeleteBatch(Span<byte> keys, Span<byte> values)
    {
        var capacity = BatchCapacity(keys.Length, values.Length);
        var count = 0;
        var next = new byte[KeySize];
        var misses = 0;
        while (count < capacity && misses <= MaxEntries && TryGetNextKey([], next))
        {
            var keySlot = keys.Slice(count * KeySize, KeySize);
            next.CopyTo(keySlot);
            if (TryLookup(keySlot, values.Slice(count * UserValueSize, UserValueSize)) && Delete(keySlot))
                count++;
            else
                misses++;
        }
        return count;
    }

    /// <summary>BPF_MAP_UPDATE_BATCH: applies updates in order; stops at the first refusal with a
    /// <see cref="MapBatchException"/> that says how many were applied.</summary>
    public int UpdateBatch(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        var count = BatchCount(keys.Length, values.Length);
        for (var i = 0; i < count; i++)
        {
            try
            {
                Update(keys.Slice(i * KeySize, KeySize), values.Slice(i * UserValueSize, UserValueSize), flags);
            }
            catch (MapException e)
            {
                throw new MapBatchException(Name, "update batch", e.ErrorNumber, i, e);
            }
        }
        return count;
    }

    /// <summary>BPF_MAP_DELETE_BATCH: deletes keys in order; an absent key stops it with ENOENT, as in the kernel.</summary>
    public int DeleteBatch(ReadOnlySpan<byte> keys)
    {
        if (KeySize == 0 || keys.Length % KeySize != 0)
            throw new ArgumentException($"map '{Name}': keys must be a whole number of {KeySize}-byte keys");
        var count = keys.Length / KeySize;
        for (var i = 0; i < count; i++)
        {
            bool deleted;
            try
            {
                deleted = Delete(keys.Slice(i * KeySize, KeySize));
            }
            catch (MapException e)
            {
                throw new MapBatchException(Name, "delete batch", e.ErrorNumber, i, e);
            }
            if (!deleted)
                throw new MapBatchException(Name, "delete batch", Errno.ENOENT, i, null);
        }
        return count;
    }

    private int BatchCapacity(int keysLength, int valuesLength)
    {
        if (KeySize == 0)
            throw Fail("batch", Errno.EINVAL);
        var capacity = keysLength / KeySize;
        if (valuesLength < capacity * UserValueSize)
            throw new ArgumentException($"map '{Name}': values need {capacity * UserValueSize} bytes for {capacity} keys");
        return capacity;
    }

    private int BatchCount(int keysLength, int valuesLength)
    {
        if (KeySize == 0)
            throw Fail("batch", Errno.EINVAL);
        if (keysLength % KeySize != 0 || valuesLength != keysLength / KeySize * UserValueSize)
            throw new ArgumentException(
                $"map '{Name}': batch needs keys of {KeySize} bytes and as many values of {UserValueSize} bytes");
        return keysLength / KeySize;
    }

    /// <summary>Rounds up to a multiple of 8, as the kernel sizes elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Round8(int size) => (size + 7) & ~7;
}

/// <summary>A batch operation that stopped part-way; <see cref="Completed"/> elements were processed.</summary>
public sealed class MapBatchException : MapException
{
    public MapBatchException(string map, string operation, int errno, int completed, Exception? inner)
        : base(map, operation, errno, $"stopped after {completed} element(s)" + (inner is null ? "" : $": {inner.Message}"))
    {
        Completed = completed;
    }

    public int Completed { get; }
}

public abstract unsafe partial class ManagedMap
{
    /// <summary>Checks the arguments of TryGetNextKey: key empty (start) or KeySize bytes; room for the next key.</summary>
    protected void CheckNextKeyArgs(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        if (!key.IsEmpty && key.Length != KeySize)
            throw new ArgumentException($"map '{Name}': key must be empty or {KeySize} bytes, got {key.Length}");
        if (nextKey.Length != KeySize)
            throw new ArgumentException($"map '{Name}': next key must be {KeySize} bytes, got {nextKey.Length}");
    }
}

/// <summary>Called by <see cref="ManagedMap.ForEachForProgram"/> for each element; return false to stop.</summary>
public unsafe delegate bool MapElementVisitor(byte* key, byte* value);

public abstract unsafe partial class ManagedMap
{
    /// <summary>
    /// bpf_for_each_map_elem: calls <paramref name="visitor"/> with pointers to each element's key and value (the
    /// value for <paramref name="cpu"/> in per-CPU maps), which stay valid during the call, and returns how many
    /// elements were visited (the one that stopped the walk included), or -EINVAL for map types the kernel does
    /// not iterate (only hash and array kinds). Elements deleted by the visitor meanwhile are safe to touch.
    /// </summary>
    public virtual int ForEachForProgram(MapElementVisitor visitor, int cpu) => -Errno.EINVAL;
}
