using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH.
/// <para>A chained hash table whose readers take no lock (as RCU readers in the kernel): writers, under one
/// lock, publish a fully written node with a volatile store of the bucket head, and unlink a node by pointing its
/// predecessor past it while the node keeps its own next pointer, so a reader standing on it walks on. Unlinked
/// nodes are retired and only reused after <see cref="Reclaim"/>.</para>
/// <para>Kernel semantics kept: updates of an existing key in a plain hash insert a new node at the bucket head
/// and retire the old one (a pointer a program got earlier keeps the old value); per-CPU hashes update in place;
/// a full map refuses new keys with E2BIG, except LRU maps, which evict the least recently used element
/// (second-chance clock over an insertion-ordered list; program lookups set the reference bit, as in the
/// kernel); get_next_key walks buckets in order and chains from their head, and restarts from the first key
/// when the given key is absent.</para>
/// <code>
///   node: | next 8 | lru prev 8 | lru next 8 | hash 4 | ref 1 | pad 3 | key (KeySize up to 8) | value(s) |
///   value(s): ValueSize up to 8, once, or once per possible CPU for per-CPU maps
/// </code>
/// </summary>
public sealed unsafe class HashMap : ManagedMap
{
    private const int OffNext = 0, OffLruPrev = 8, OffLruNext = 16, OffHash = 24, OffRef = 28, OffKey = 32;

    private readonly nint* _buckets;
    private readonly uint _bucketMask;
    private readonly int _keyStride;
    private readonly int _valueStride;
    private readonly int _cpus;
    private readonly int _valueOffset;
    private readonly bool _percpu;
    private readonly bool _lru;
    private readonly ulong _seed;
    private readonly Lock _lock = new();
    private readonly NodePool _pool;
    private byte* _lruHead; // most recently inserted
    private byte* _lruTail; // oldest
    private int _count;

    internal HashMap(MapSpec spec) : base(Validate(spec))
    {
        _percpu = spec.Type is MapType.PercpuHash or MapType.LruPercpuHash;
        _lru = spec.Type is MapType.LruHash or MapType.LruPercpuHash;
        _cpus = _percpu ? PossibleCpus : 1;
        _keyStride = Round8(KeySize);
        _valueStride = Round8(ValueSize);
        _valueOffset = OffKey + _keyStride;
        _pool = new NodePool(_valueOffset + _valueStride * _cpus);
        // The kernel uses roundup_pow_of_two(max_entries) buckets; we cap the table so a huge max_entries does not
        // preallocate memory it may never use (chains just get longer past 1M entries).
        var buckets = Math.Min(BitOperations.RoundUpToPowerOf2((uint)MaxEntries), 1u << 20);
        _bucketMask = buckets - 1;
        _buckets = (nint*)NativeMemory.AllocZeroed(buckets, (nuint)sizeof(nint));
        _seed = (spec.Flags & (uint)MapCreateFlags.ZeroSeed) != 0 ? 0 : (ulong)Random.Shared.NextInt64();
    }

    private static MapSpec Validate(MapSpec spec)
    {
        var lru = spec.Type is MapType.LruHash or MapType.LruPercpuHash;
        var percpu = spec.Type is MapType.PercpuHash or MapType.LruPercpuHash;
        SpecCheck.NoInitialValue(spec);
        SpecCheck.Flags(spec, (uint)(MapCreateFlags.NoPrealloc | MapCreateFlags.NoCommonLru | MapCreateFlags.NumaNode |
                                     MapCreateFlags.ZeroSeed | MapCreateFlags.InnerMap) | MapFlagMasks.Access);
        SpecCheck.Require(spec, !(lru && (spec.Flags & (uint)MapCreateFlags.NoPrealloc) != 0), Errno.ENOTSUPP,
            "LRU maps are always preallocated (BPF_F_NO_PREALLOC is not supported)");
        SpecCheck.Require(spec, lru || (spec.Flags & (uint)MapCreateFlags.NoCommonLru) == 0, Errno.EINVAL,
            "BPF_F_NO_COMMON_LRU is only for LRU maps");
        SpecCheck.MaxEntriesNonZero(spec);
        SpecCheck.Require(spec, spec.KeySize > 0, Errno.EINVAL, "key size must be greater than 0");
        SpecCheck.ValueSizeNonZero(spec);
        // As the kernel: key and value together must fit one allocation (user space could not reach them otherwise).
        SpecCheck.Require(spec, (long)spec.KeySize + spec.ValueSize < SpecCheck.KmallocMax - SpecCheck.HashElementHeader,
            Errno.E2BIG, $"key size {spec.KeySize} plus value size {spec.ValueSize} is too big");
        SpecCheck.Require(spec, !percpu || spec.ValueSize <= SpecCheck.PerCpuValueMax, Errno.E2BIG,
            $"per-CPU value size {spec.ValueSize} is over {SpecCheck.PerCpuValueMax}");
        return spec;
    }

    public override bool IsPerCpu => _percpu;

    public override int UserValueSize => _percpu ? _valueStride * _cpus : ValueSize;

    /// <summary>Number of elements in the map.</summary>
    public int Count => Volatile.Read(ref _count);

    // ---- hashing and raw lookup ---------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint Hash(byte* key)
    {
        // A multiply-xorshift over 8-byte words with a per-map seed (the kernel uses jhash with a random seed;
        // the seed keeps a hostile key set from building one long chain).
        var h = _seed ^ ((ulong)KeySize * 0x9E3779B97F4A7C15UL);
        var p = key;
        var left = KeySize;
        while (left >= 8)
        {
            h = (h ^ Unsafe.ReadUnaligned<ulong>(p)) * 0xbf58476d1ce4e5b9UL;
            h ^= h >> 31;
            p += 8;
            left -= 8;
        }
        if (left > 0)
        {
            ulong tail = 0;
            var i = 0;
            if (left >= 4)
            {
                tail = Unsafe.ReadUnaligned<uint>(p);
                i = 4;
            }
            for (; i < left; i++)
                tail |= (ulong)p[i] << (8 * i);
            h = (h ^ tail) * 0xbf58476d1ce4e5b9UL;
            h ^= h >> 31;
        }
        h *= 0x94d049bb133111ebUL;
        h ^= h >> 29;
        return (uint)h;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool KeyEquals(byte* node, byte* key) => KeySize switch
    {
        // The common key sizes (u32, u64 keys) without the span machinery.
        4 => *(uint*)(node + OffKey) == Unsafe.ReadUnaligned<uint>(key),
        8 => *(ulong*)(node + OffKey) == Unsafe.ReadUnaligned<ulong>(key),
        _ => new ReadOnlySpan<byte>(node + OffKey, KeySize).SequenceEqual(new ReadOnlySpan<byte>(key, KeySize)),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* Next(byte* node) => (byte*)Volatile.Read(ref *(nint*)(node + OffNext));

    /// <summary>Lock-free: safe against concurrent writers (see the class remarks).</summary>
    private byte* Find(byte* key, uint hash)
    {
        var node = (byte*)Volatile.Read(ref _buckets[hash & _bucketMask]);
        while (node != null)
        {
            if (*(uint*)(node + OffHash) == hash && KeyEquals(node, key))
                return node;
            node = Next(node);
        }
        return null;
    }

    // ---- program face -------------------------------------------------------------------------------------------

    public override byte* LookupForProgram(byte* key, int cpu)
    {
        if ((uint)cpu >= (uint)_cpus && _percpu)
            return null;
        var node = Find(key, Hash(key));
        if (node == null)
            return null;
        if (_lru && node[OffRef] == 0)
            node[OffRef] = 1;
        return node + _valueOffset + (_percpu ? cpu * _valueStride : 0);
    }

    public override int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu)
    {
        if (_percpu && (uint)cpu >= (uint)_cpus)
            return -Errno.EINVAL;
        return UpdateCore(key, value, flags, _percpu ? cpu : -1);
    }

    public override int DeleteFromProgram(byte* key) => DeleteCore(key) ? 0 : -Errno.ENOENT;

    public override int ForEachForProgram(MapElementVisitor visitor, int cpu)
    {
        ArgumentNullException.ThrowIfNull(visitor);
        if (_percpu && (uint)cpu >= (uint)_cpus)
            return -Errno.EINVAL;
        var visited = 0;
        // Lock-free, like the lookups: the visitor may update or delete elements (retired nodes stay readable).
        for (uint bucket = 0; bucket <= _bucketMask; bucket++)
        {
            for (var node = (byte*)Volatile.Read(ref _buckets[bucket]); node != null; node = Next(node))
            {
                visited++;
                if (!visitor(node + OffKey, node + _valueOffset + (_percpu ? cpu * _valueStride : 0)))
                    return visited;
            }
        }
        return visited;
    }

    /// <summary>
    /// The update: <paramref name="cpu"/> is the CPU whose value a program sets (other CPUs of a new element are
    /// zeroed, as the kernel does), or -1 when <paramref name="value"/> holds every CPU's value (user space).
    /// </summary>
    private int UpdateCore(byte* key, byte* value, ulong flags, int cpu)
    {
        // BPF_F_LOCK would need a bpf_spin_lock in the value, described by BTF: never the case here.
        if (flags > (ulong)MapUpdateFlags.Exist)
            return -Errno.EINVAL;
        var hash = Hash(key);
        lock (_lock)
        {
            var old = Find(key, hash);
            if (old != null && flags == (ulong)MapUpdateFlags.NoExist)
                return -Errno.EEXIST;
            if (old == null && flags == (ulong)MapUpdateFlags.Exist)
                return -Errno.ENOENT;

            if (old != null && _percpu)
            {
                // Per-CPU hashes update in place.
                CopyValue(old, value, cpu);
                if (_lru)
                    old[OffRef] = 1;
                return 0;
            }

            if (old == null && _count >= MaxEntries)
            {
                if (!_lru)
                    return -Errno.E2BIG;
                EvictOne();
            }

            var node = _pool.Rent();
            *(uint*)(node + OffHash) = hash;
            Buffer.MemoryCopy(key, node + OffKey, KeySize, KeySize);
            CopyValue(node, value, cpu);
            if (_lru && old != null)
                node[OffRef] = 1;

            // Publish the new node before unlinking the old one, so a concurrent reader finds one of them.
            ref var head = ref _buckets[hash & _bucketMask];
            *(nint*)(node + OffNext) = head;
            Volatile.Write(ref head, (nint)node);
            if (_lru)
                LruPushHead(node);
            if (old != null)
                UnlinkAndRetire(old, hash);
            else
                _count++;
            return 0;
        }
    }

    private void CopyValue(byte* node, byte* value, int cpu)
    {
        var target = node + _valueOffset;
        if (!_percpu)
        {
            Buffer.MemoryCopy(value, target, ValueSize, ValueSize);
        }
        else if (cpu < 0)
        {
            Buffer.MemoryCopy(value, target, (long)_valueStride * _cpus, (long)_valueStride * _cpus);
        }
        else
        {
            Buffer.MemoryCopy(value, target + cpu * _valueStride, ValueSize, ValueSize);
        }
    }

    /// <summary>Removes the node for <paramref name="key"/>; under the lock.</summary>
    private bool DeleteCore(byte* key)
    {
        var hash = Hash(key);
        lock (_lock)
        {
            var node = Find(key, hash);
            if (node == null)
                return false;
            UnlinkAndRetire(node, hash);
            _count--;
            return true;
        }
    }

    private void UnlinkAndRetire(byte* node, uint hash)
    {
        ref var link = ref _buckets[hash & _bucketMask];
        while ((byte*)link != node)
        {
            if (link == 0)
                throw new System.Diagnostics.UnreachableException($"map '{Name}': node missing from its bucket");
            link = ref *(nint*)((byte*)link + OffNext);
        }
        // The node keeps its next pointer: a reader standing on it continues down the chain.
        Volatile.Write(ref link, *(nint*)(node + OffNext));
        if (_lru)
            LruUnlink(node);
        _pool.Retire(node);
    }

    // ---- LRU (under the lock) -----------------------------------------------------------------------------------

    private void LruPushHead(byte* node)
    {
        *(nint*)(node + OffLruPrev) = 0;
        *(nint*)(node + OffLruNext) = (nint)_lruHead;
        if (_lruHead != null)
            *(nint*)(_lruHead + OffLruPrev) = (nint)node;
        _lruHead = node;
        if (_lruTail == null)
            _lruTail = node;
    }

    private void LruUnlink(byte* node)
    {
        var prev = (byte*)*(nint*)(node + OffLruPrev);
        var next = (byte*)*(nint*)(node + OffLruNext);
        if (prev != null)
            *(nint*)(prev + OffLruNext) = (nint)next;
        else
            _lruHead = next;
        if (next != null)
            *(nint*)(next + OffLruPrev) = (nint)prev;
        else
            _lruTail = prev;
    }

    /// <summary>Second chance: from the oldest end, referenced elements lose their bit and move to the young end;
    /// the first unreferenced one goes. One full pass clears every bit, so this ends.</summary>
    private void EvictOne()
    {
        for (var steps = 0; steps <= _count; steps++)
        {
            var victim = _lruTail;
            if (victim == null)
                return;
            if (victim[OffRef] != 0)
            {
                victim[OffRef] = 0;
                LruUnlink(victim);
                LruPushHead(victim);
                continue;
            }
            UnlinkAndRetire(victim, *(uint*)(victim + OffHash));
            _count--;
            return;
        }
        // Every element was referenced twice over: evict the oldest outright.
        if (_lruTail != null)
        {
            UnlinkAndRetire(_lruTail, *(uint*)(_lruTail + OffHash));
            _count--;
        }
    }

    // ---- user face ----------------------------------------------------------------------------------------------

    public override bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanRead("lookup");
        fixed (byte* k = key)
        {
            // User lookups do not mark LRU elements as used (the kernel's lookup from the syscall does not either).
            var node = Find(k, Hash(k));
            if (node == null)
                return false;
            new ReadOnlySpan<byte>(node + _valueOffset, UserValueSize).CopyTo(value);
            return true;
        }
    }

    public override void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckUserSizes(key.Length, value.Length);
        EnsureUserCanWrite("update");
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            var status = UpdateCore(k, v, (ulong)flags, -1);
            if (status != 0)
                throw Fail("update", -status);
        }
    }

    public override bool Delete(ReadOnlySpan<byte> key)
    {
        CheckUserSizes(key.Length, 0, checkValue: false);
        EnsureUserCanWrite("delete");
        fixed (byte* k = key)
            return DeleteCore(k);
    }

    public override bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        CheckNextKeyArgs(key, nextKey);
        lock (_lock)
        {
            byte* found = null;
            uint bucket = 0;
            if (!key.IsEmpty)
            {
                fixed (byte* k = key)
                {
                    var hash = Hash(k);
                    var node = Find(k, hash);
                    if (node != null)
                    {
                        found = Next(node);
                        bucket = (hash & _bucketMask) + 1;
                    }
                }
            }
            for (; found == null && bucket <= _bucketMask; bucket++)
                found = (byte*)_buckets[bucket];
            if (found == null)
                return false;
            new ReadOnlySpan<byte>(found + OffKey, KeySize).CopyTo(nextKey);
            return true;
        }
    }

    public override void Reclaim()
    {
        lock (_lock)
            _pool.Reclaim();
    }

    private protected override void ReclaimBefore(long oldestActive)
    {
        lock (_lock)
            _pool.ReclaimBefore(oldestActive);
    }

    /// <summary>Retired nodes waiting for <see cref="Reclaim"/> (for tests and diagnostics).</summary>
    public int RetiredCount
    {
        get
        {
            lock (_lock)
                return _pool.RetiredCount;
        }
    }

    protected override void Dispose(bool disposing)
    {
        _pool?.Dispose();
        if (_buckets != null)
            NativeMemory.Free(_buckets);
    }
}
