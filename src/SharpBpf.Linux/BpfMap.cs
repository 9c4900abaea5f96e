using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SharpBpf.Linux.Interop;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Linux;

/// <summary>
/// A map in the kernel, owned through its fd. Keys and values are raw bytes (or unmanaged structs) laid out as the
/// program sees them. Per-CPU maps exchange one value per possible CPU, each padded to 8 bytes, as the kernel does.
/// </summary>
public sealed unsafe class BpfMap : IDisposable
{
    private readonly Bpf _bpf;

    internal BpfMap(Bpf bpf, BpfFd fd, string name, in BpfMapInfo info)
    {
        _bpf = bpf;
        Fd = fd;
        Name = name;
        Type = (MapType)info.Type;
        KeySize = info.KeySize;
        ValueSize = info.ValueSize;
        MaxEntries = info.MaxEntries;
        Flags = info.MapFlags;
        Id = info.Id;
    }

    public BpfFd Fd { get; }

    /// <summary>The name the object file gave the map (the kernel keeps at most 15 characters of it).</summary>
    public string Name { get; }

    public MapType Type { get; }
    public uint KeySize { get; }
    public uint ValueSize { get; }
    public uint MaxEntries { get; }
    public uint Flags { get; }

    /// <summary>The kernel's id for this map (machine-wide; never assume it small or stable).</summary>
    public uint Id { get; }

    /// <summary>Where the map was pinned by this process or found pinned, if anywhere.</summary>
    public string? PinPath { get; internal set; }

    /// <summary>True for maps that hold one value per CPU.</summary>
    public bool IsPerCpu => Type is MapType.PercpuHash or MapType.PercpuArray or MapType.LruPercpuHash or MapType.PercpuCgroupStorage;

    /// <summary>Bytes of one value as user space exchanges it: for per-CPU maps every CPU's value, 8-byte aligned.</summary>
    public int ValueBufferSize => IsPerCpu ? PerCpuStride * PossibleCpus.Count : (int)ValueSize;

    private int PerCpuStride => (int)((ValueSize + 7) & ~7u);

    // ---- creating and opening ----

    /// <summary>Creates a map from a spec (no BTF; see <see cref="BpfCollection"/> for whole objects).</summary>
    public static BpfMap Create(MapSpec spec) => Create(Bpf.Default, spec, null, null);

    internal static BpfMap Create(Bpf bpf, MapSpec spec, BpfFd? btf, string? kernelName)
    {
        if (string.IsNullOrEmpty(kernelName))
            kernelName = string.IsNullOrEmpty(spec.KernelName) ? spec.Name : spec.KernelName;
        BpfMap? inner = null;
        try
        {
            var attr = new MapCreateAttr
            {
                MapType = (uint)spec.Type,
                KeySize = spec.KeySize,
                ValueSize = spec.ValueSize,
                MaxEntries = spec.MaxEntries,
                MapFlags = spec.Flags,
                MapName = ObjectName.From(kernelName ?? spec.Name),
            };
            if (spec.Type == MapType.PerfEventArray && spec.MaxEntries == 0)
                attr.MaxEntries = (uint)PossibleCpus.Count; // libbpf's default: one slot per CPU
            if (spec.Freeze)
                attr.MapFlags |= BpfConstants.BPF_F_RDONLY_PROG;
            if (spec.InnerMap is { } innerSpec)
            {
                // The kernel copies the inner map's shape at creation; the template itself is not needed afterwards.
                inner = Create(bpf, innerSpec, btf, null);
                attr.InnerMapFd = (uint)inner.Fd.Value;
            }
            if (btf is not null && (spec.BtfKeyTypeId != 0 || spec.BtfValueTypeId != 0))
            {
                attr.BtfFd = (uint)btf.Value;
                attr.BtfKeyTypeId = spec.BtfKeyTypeId;
                attr.BtfValueTypeId = spec.BtfValueTypeId;
            }
            attr.MapExtra = spec.MapExtra;
            attr.NumaNode = spec.NumaNode;
            // The BTF fd stays open for the whole collection load, so its number is stable here.
            int r = bpf.Try(BpfCommand.BPF_MAP_CREATE, ref attr);
            if (r < 0 && attr.BtfFd != 0)
            {
                // As libbpf: some map types (and older kernels) refuse type information; the map works without it.
                attr.BtfFd = attr.BtfKeyTypeId = attr.BtfValueTypeId = 0;
                r = bpf.Try(BpfCommand.BPF_MAP_CREATE, ref attr);
            }
            if (r < 0)
                throw Bpf.Error(BpfCommand.BPF_MAP_CREATE, -r);
            return FromFd(bpf, bpf.Adopt(r), spec.Name);
        }
        finally
        {
            inner?.Dispose();
        }
    }

    /// <summary>Wraps an fd, reading the map's shape from the kernel. Takes ownership of the fd (closes it on failure).</summary>
    internal static BpfMap FromFd(Bpf bpf, BpfFd fd, string? name)
    {
        try
        {
            var info = bpf.GetInfo<BpfMapInfo>(fd);
            return new BpfMap(bpf, fd, name ?? info.Name.ToString(), info);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>Opens a map pinned on a bpffs.</summary>
    public static BpfMap OpenPinned(string path) => OpenPinned(Bpf.Default, path);

    internal static BpfMap OpenPinned(Bpf bpf, string path)
    {
        BpfFd fd;
        try { fd = bpf.ObjGet(path); }
        catch (BpfSyscallException e) { throw e.WithContext($"open pinned map '{path}'"); }
        var map = FromFd(bpf, fd, null);
        if (!IsMapFd(fd))
        {
            map.Dispose();
            throw new BpfException($"open pinned map '{path}': the object pinned there is not a map");
        }
        map.PinPath = path;
        return map;
    }

    /// <summary>Opens a map by its kernel id.</summary>
    public static BpfMap FromId(uint id)
    {
        try { return FromFd(Bpf.Default, Bpf.Default.GetFdById(BpfCommand.BPF_MAP_GET_FD_BY_ID, id), null); }
        catch (BpfSyscallException e) { throw e.WithContext($"open map id {id}"); }
    }

    /// <summary>Every map id in the kernel now (machine-wide).</summary>
    public static List<uint> AllIds()
    {
        var ids = new List<uint>();
        for (uint id = 0; Bpf.Default.TryGetNextId(BpfCommand.BPF_MAP_GET_NEXT_ID, id, out id);)
            ids.Add(id);
        return ids;
    }

    private static bool IsMapFd(BpfFd fd)
    {
        var target = new FileInfo($"/proc/self/fd/{fd.Value}").LinkTarget;
        return target is null || target.Contains("bpf-map", StringComparison.Ordinal);
    }

    /// <summary>
    /// The map's BTF as the kernel holds it, with the key and value type ids, or null when the map has none.
    /// Used to print keys and values as C values (<see cref="BtfValueFormatter"/>).
    /// </summary>
    public (SharpBpf.Btf.BtfSpec Btf, uint KeyTypeId, uint ValueTypeId)? GetBtf()
    {
        var info = _bpf.GetInfo<BpfMapInfo>(Fd);
        if (info.BtfId == 0 || info.BtfValueTypeId == 0)
            return null;
        using var btfFd = _bpf.GetFdById(BpfCommand.BPF_BTF_GET_FD_BY_ID, info.BtfId);
        var head = _bpf.GetInfo<BpfBtfInfo>(btfFd);
        var bytes = new byte[head.BtfSize];
        fixed (byte* p = bytes)
        {
            var withData = new BpfBtfInfo { Btf = (ulong)p, BtfSize = (uint)bytes.Length };
            _bpf.GetInfo(btfFd, ref withData);
        }
        return (SharpBpf.Btf.BtfSpec.Parse(bytes), info.BtfKeyTypeId, info.BtfValueTypeId);
    }

    public MapInfo GetInfo() => MapInfo.From(_bpf.GetInfo<BpfMapInfo>(Fd));

    /// <summary>Pins the map at <paramref name="path"/> on a bpffs, so it outlives this process.</summary>
    public void Pin(string path)
    {
        try { _bpf.ObjPin(Fd, path); }
        catch (BpfSyscallException e) { throw e.WithContext($"pin map '{Name}' at '{path}'"); }
        PinPath = path;
    }

    /// <summary>Makes the map read-only for user space from now on (BPF_MAP_FREEZE).</summary>
    public void Freeze()
    {
        try { _bpf.MapFreeze(Fd); }
        catch (BpfSyscallException e) { throw e.WithContext($"freeze map '{Name}'"); }
    }

    // ---- elements as bytes ----

    /// <summary>Reads the value of <paramref name="key"/> into <paramref name="value"/>; false when the key is absent.</summary>
    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        CheckKey(key);
        if (value.Length < ValueBufferSize)
            throw new ArgumentException($"map '{Name}': the value buffer holds {value.Length} bytes, a value takes {ValueBufferSize}", nameof(value));
        fixed (byte* k = key)
        fixed (byte* v = value)
        {
            int r = _bpf.TryMapLookup(Fd, KeyPointer(k), v);
            if (r == -Errno.ENOENT)
                return false;
            Check(r, BpfCommand.BPF_MAP_LOOKUP_ELEM);
            return true;
        }
    }

    /// <summary>The value of <paramref name="key"/>, or null when absent.</summary>
    public byte[]? Lookup(ReadOnlySpan<byte> key)
    {
        var value = new byte[ValueBufferSize];
        return TryLookup(key, value) ? value : null;
    }

    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        CheckKey(key);
        if (value.Length != ValueBufferSize)
            throw new ArgumentException($"map '{Name}': a value takes {ValueBufferSize} bytes, {value.Length} given", nameof(value));
        fixed (byte* k = key)
        fixed (byte* v = value)
            Check(_bpf.TryMapUpdate(Fd, KeyPointer(k), v, (ulong)flags), BpfCommand.BPF_MAP_UPDATE_ELEM);
    }

    /// <summary>Deletes <paramref name="key"/>; false when it was absent.</summary>
    public bool Delete(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        fixed (byte* k = key)
        {
            int r = _bpf.TryMapDelete(Fd, KeyPointer(k));
            if (r == -Errno.ENOENT)
                return false;
            Check(r, BpfCommand.BPF_MAP_DELETE_ELEM);
            return true;
        }
    }

    /// <summary>The key after <paramref name="key"/> (or the first key when null); false at the end.</summary>
    public bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey, bool first)
    {
        fixed (byte* k = key)
        fixed (byte* n = nextKey)
        {
            int r = _bpf.TryMapGetNextKey(Fd, first ? null : k, n);
            if (r == -Errno.ENOENT)
                return false;
            Check(r, BpfCommand.BPF_MAP_GET_NEXT_KEY);
            return true;
        }
    }

    /// <summary>Every key, one BPF_MAP_GET_NEXT_KEY per key. Concurrent deletes may restart a hash walk, as in the kernel.</summary>
    public IEnumerable<byte[]> Keys()
    {
        var key = new byte[KeySize];
        bool first = true;
        while (true)
        {
            var next = new byte[KeySize];
            if (!TryGetNextKey(key, next, first))
                yield break;
            first = false;
            yield return next;
            key = next;
        }
    }

    /// <summary>Every entry, by key walk and one lookup each (see <see cref="EntriesBatched"/> for fewer syscalls).</summary>
    public IEnumerable<KeyValuePair<byte[], byte[]>> Entries()
    {
        foreach (var key in Keys())
        {
            var value = Lookup(key);
            if (value is not null) // deleted meanwhile
                yield return new(key, value);
        }
    }

    // ---- batches ----

    /// <summary>
    /// Every entry, read <paramref name="batchSize"/> at a time with BPF_MAP_LOOKUP_BATCH. Falls back to
    /// <see cref="Entries"/> for map types without batch support.
    /// </summary>
    public List<KeyValuePair<byte[], byte[]>> EntriesBatched(int batchSize = 256)
    {
        var result = new List<KeyValuePair<byte[], byte[]>>();
        int valueSize = ValueBufferSize;
        var keys = new byte[KeySize * (long)batchSize];
        var values = new byte[valueSize * (long)batchSize];
        // The cursor is opaque: a bucket index for hashes, an index for arrays; key_size bytes are always enough
        // for libbpf, and we give at least 8.
        var cursor = new byte[Math.Max(KeySize, 8)];
        bool first = true;
        while (true)
        {
            int r, count;
            fixed (byte* c = cursor)
            fixed (byte* k = keys)
            fixed (byte* v = values)
            {
                var attr = new MapBatchAttr
                {
                    InBatch = first ? 0 : (ulong)c,
                    OutBatch = (ulong)c,
                    Keys = (ulong)k,
                    Values = (ulong)v,
                    Count = (uint)batchSize,
                };
                r = _bpf.TryMapBatch(BpfCommand.BPF_MAP_LOOKUP_BATCH, Fd, ref attr);
                count = (int)attr.Count;
            }
            if (first && r is -Errno.EINVAL or -Errno.ENOTSUPP or -Errno.EOPNOTSUPP && count == 0)
                return [.. Entries()];
            if (r == -Errno.ENOSPC && count == 0)
            {
                // A hash bucket holds more entries than the batch: grow it and read the same bucket again.
                batchSize *= 2;
                keys = new byte[KeySize * (long)batchSize];
                values = new byte[valueSize * (long)batchSize];
                continue;
            }
            if (r < 0 && r != -Errno.ENOENT)
                Check(r, BpfCommand.BPF_MAP_LOOKUP_BATCH);
            for (int i = 0; i < count; i++)
                result.Add(new(keys.AsSpan(i * (int)KeySize, (int)KeySize).ToArray(), values.AsSpan(i * valueSize, valueSize).ToArray()));
            if (r == -Errno.ENOENT)
                return result;
            first = false;
        }
    }

    /// <summary>Writes <paramref name="count"/> entries in one BPF_MAP_UPDATE_BATCH; keys and values are packed back to back.</summary>
    public void UpdateBatch(ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, int count, MapUpdateFlags flags = MapUpdateFlags.Any)
    {
        if (keys.Length < count * KeySize || values.Length < count * (long)ValueBufferSize)
            throw new ArgumentException($"map '{Name}': {count} entries need {count * KeySize} key bytes and {count * (long)ValueBufferSize} value bytes");
        fixed (byte* k = keys)
        fixed (byte* v = values)
        {
            var attr = new MapBatchAttr { Keys = (ulong)k, Values = (ulong)v, Count = (uint)count, ElemFlags = (ulong)flags };
            Check(_bpf.TryMapBatch(BpfCommand.BPF_MAP_UPDATE_BATCH, Fd, ref attr), BpfCommand.BPF_MAP_UPDATE_BATCH);
        }
    }

    /// <summary>Deletes <paramref name="count"/> packed keys in one BPF_MAP_DELETE_BATCH; returns how many were deleted.</summary>
    public int DeleteBatch(ReadOnlySpan<byte> keys, int count)
    {
        if (keys.Length < count * KeySize)
            throw new ArgumentException($"map '{Name}': {count} keys need {count * KeySize} bytes");
        fixed (byte* k = keys)
        {
            var attr = new MapBatchAttr { Keys = (ulong)k, Count = (uint)count };
            int r = _bpf.TryMapBatch(BpfCommand.BPF_MAP_DELETE_BATCH, Fd, ref attr);
            if (r < 0 && r != -Errno.ENOENT)
                Check(r, BpfCommand.BPF_MAP_DELETE_BATCH);
            return (int)attr.Count;
        }
    }

    // ---- typed access ----

    public bool TryLookup<TKey, TValue>(TKey key, out TValue value) where TKey : unmanaged where TValue : unmanaged
    {
        CheckTyped<TKey, TValue>(perCpu: false);
        value = default;
        return TryLookup(AsBytes(ref key), MemoryMarshal.AsBytes(new Span<TValue>(ref value)));
    }

    public void Update<TKey, TValue>(TKey key, TValue value, MapUpdateFlags flags = MapUpdateFlags.Any) where TKey : unmanaged where TValue : unmanaged
    {
        CheckTyped<TKey, TValue>(perCpu: false);
        Update(AsBytes(ref key), AsBytes(ref value), flags);
    }

    public bool Delete<TKey>(TKey key) where TKey : unmanaged => Delete(AsBytes(ref key));

    /// <summary>Every CPU's value of <paramref name="key"/> (index = CPU number), or null when absent.</summary>
    public TValue[]? LookupPerCpu<TKey, TValue>(TKey key) where TKey : unmanaged where TValue : unmanaged
    {
        CheckTyped<TKey, TValue>(perCpu: true);
        var buffer = Lookup(AsBytes(ref key));
        if (buffer is null)
            return null;
        var result = new TValue[PossibleCpus.Count];
        for (int cpu = 0; cpu < result.Length; cpu++)
            result[cpu] = MemoryMarshal.Read<TValue>(buffer.AsSpan(cpu * PerCpuStride));
        return result;
    }

    /// <summary>Sets every CPU's value of <paramref name="key"/> (one value per possible CPU).</summary>
    public void UpdatePerCpu<TKey, TValue>(TKey key, ReadOnlySpan<TValue> values, MapUpdateFlags flags = MapUpdateFlags.Any) where TKey : unmanaged where TValue : unmanaged
    {
        CheckTyped<TKey, TValue>(perCpu: true);
        if (values.Length != PossibleCpus.Count)
            throw new ArgumentException($"map '{Name}': {PossibleCpus.Count} per-CPU values are needed, {values.Length} given", nameof(values));
        var buffer = new byte[ValueBufferSize];
        for (int cpu = 0; cpu < values.Length; cpu++)
            MemoryMarshal.Write(buffer.AsSpan(cpu * PerCpuStride), in values[cpu]);
        Update(AsBytes(ref key), buffer, flags);
    }

    /// <summary>Splits a per-CPU value buffer into one slice per CPU.</summary>
    public byte[][] SplitPerCpu(ReadOnlySpan<byte> buffer)
    {
        if (!IsPerCpu)
            return [buffer.ToArray()];
        var result = new byte[PossibleCpus.Count][];
        for (int cpu = 0; cpu < result.Length; cpu++)
            result[cpu] = buffer.Slice(cpu * PerCpuStride, (int)ValueSize).ToArray();
        return result;
    }

    public void Dispose() => Fd.Dispose();

    public override string ToString() => $"map '{Name}' ({Type}, id {Id})";

    // ---- helpers ----

    private static Span<byte> AsBytes<T>(ref T value) where T : unmanaged => MemoryMarshal.AsBytes(new Span<T>(ref value));

    private void CheckTyped<TKey, TValue>(bool perCpu) where TKey : unmanaged where TValue : unmanaged
    {
        if (Unsafe.SizeOf<TKey>() != KeySize)
            throw new ArgumentException($"map '{Name}': keys are {KeySize} bytes, {typeof(TKey).Name} is {Unsafe.SizeOf<TKey>()}");
        if (perCpu != IsPerCpu)
            throw new InvalidOperationException(IsPerCpu
                ? $"map '{Name}' is per-CPU: use LookupPerCpu/UpdatePerCpu"
                : $"map '{Name}' is not per-CPU: use TryLookup/Update");
        if (Unsafe.SizeOf<TValue>() != ValueSize)
            throw new ArgumentException($"map '{Name}': values are {ValueSize} bytes, {typeof(TValue).Name} is {Unsafe.SizeOf<TValue>()}");
    }

    private void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
            throw new ArgumentException($"map '{Name}': keys are {KeySize} bytes, {key.Length} given", nameof(key));
    }

    // Maps without keys (queue, stack, bloom filter) take a null key pointer.
    private void* KeyPointer(byte* key) => KeySize == 0 ? null : key;

    private void Check(int result, BpfCommand command)
    {
        if (result < 0)
            throw Bpf.Error(command, -result).WithContext($"map '{Name}'");
    }

    /// <summary>The CPUs the kernel may run on (/sys/devices/system/cpu/possible): per-CPU values come in this count.</summary>
    public static IReadOnlyList<int> PossibleCpus => s_possibleCpus.Value;

    private static readonly Lazy<int[]> s_possibleCpus = new(() => ParseCpuList(File.ReadAllText("/sys/devices/system/cpu/possible")));

    /// <summary>Parses a kernel CPU list ("0-3,5,7-8"). Per-CPU values are indexed 0..highest, so gaps count too.</summary>
    internal static int[] ParseCpuList(string text)
    {
        int highest = -1;
        foreach (var part in text.Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var range = part.Split('-');
            highest = Math.Max(highest, int.Parse(range[^1], System.Globalization.CultureInfo.InvariantCulture));
        }
        return Enumerable.Range(0, highest + 1).ToArray();
    }
}
