using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Maps;

/// <summary>
/// A map of the managed VM, with the kernel's semantics. Two faces:
/// <list type="bullet">
/// <item>the program face (hot path): raw pointers and kernel status codes (0 or a negative errno), never
///   exceptions. Values live in stable unmanaged memory, so a pointer that a lookup returned stays valid while the
///   program runs, as in the kernel (an element deleted meanwhile is not reused before the map is disposed or the
///   memory is recycled after the run);</item>
/// <item>the user face: spans and exceptions (<see cref="MapException"/> carrying the errno).</item>
/// </list>
/// Every map is safe to use from several threads at once.
/// </summary>
public abstract unsafe partial class ManagedMap : IDisposable
{
    protected ManagedMap(MapSpec spec)
    {
        Name = spec.Name;
        Type = spec.Type;
        KeySize = (int)spec.KeySize;
        ValueSize = (int)spec.ValueSize;
        MaxEntries = (int)spec.MaxEntries;
        Flags = spec.Flags;
        Id = Register(this, out _handle);
    }

    public string Name { get; }
    public MapType Type { get; }
    public int KeySize { get; }
    public int ValueSize { get; }
    public int MaxEntries { get; }
    public uint Flags { get; }

    /// <summary>Number of (simulated) CPUs that per-CPU maps keep a value for.</summary>
    public static int PossibleCpus { get; } = Environment.ProcessorCount;

    // ---- program face -------------------------------------------------------------------------------------------

    /// <summary>bpf_map_lookup_elem: pointer to the value (for <paramref name="cpu"/> in per-CPU maps) or null.</summary>
    public abstract byte* LookupForProgram(byte* key, int cpu);

    /// <summary>bpf_map_update_elem: 0 or -errno (-EEXIST, -ENOENT, -E2BIG, -EINVAL...).</summary>
    public abstract int UpdateFromProgram(byte* key, byte* value, ulong flags, int cpu);

    /// <summary>bpf_map_delete_elem: 0 or -errno.</summary>
    public abstract int DeleteFromProgram(byte* key);

    /// <summary>bpf_map_push_elem (queue, stack, bloom filter): 0 or -errno.</summary>
    public virtual int PushFromProgram(byte* value, ulong flags) => -Errno.EINVAL;

    /// <summary>bpf_map_pop_elem: copies the value out and removes it; 0 or -errno.</summary>
    public virtual int PopFromProgram(byte* value) => -Errno.EINVAL;

    /// <summary>bpf_map_peek_elem: copies the value out; 0 or -errno.</summary>
    public virtual int PeekFromProgram(byte* value) => -Errno.EINVAL;

    // ---- user face ----------------------------------------------------------------------------------------------

    /// <summary>Copies the value for <paramref name="key"/> into <paramref name="value"/> (all CPUs' values, one
    /// after the other, for per-CPU maps). False when the key is absent.</summary>
    public abstract bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value);

    /// <summary>Sets the value (all CPUs' values for per-CPU maps). Throws <see cref="MapException"/> on refusal.</summary>
    public abstract void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, MapUpdateFlags flags = MapUpdateFlags.Any);

    /// <summary>Removes the key; false when it was absent.</summary>
    public abstract bool Delete(ReadOnlySpan<byte> key);

    /// <summary>The key after <paramref name="key"/> (the first key when <paramref name="key"/> is empty or absent,
    /// as the kernel does); false at the end.</summary>
    public abstract bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey);

    /// <summary>Bytes of one value as user space sees it: ValueSize, times <see cref="PossibleCpus"/> (each rounded
    /// up to 8) for per-CPU maps.</summary>
    public virtual int UserValueSize => ValueSize;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        Dispose(true);
        Unregister();
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }
}

/// <summary>Flags of a map update, as BPF_ANY / BPF_NOEXIST / BPF_EXIST (and BPF_F_LOCK).</summary>
[Flags]
public enum MapUpdateFlags : ulong
{
    Any = 0,
    NoExist = 1,
    Exist = 2,
    Lock = 4,
}

/// <summary>A map operation refused, with the errno the kernel would have given.</summary>
public class MapException : BpfException
{
    public MapException(string map, string operation, int errno)
        : base($"map '{map}': {operation}: {Errno.Name(errno)} ({Errno.Describe(errno)})")
    {
        ErrorNumber = errno;
    }

    /// <summary>A refusal with a detail saying why (e.g. which spec field is wrong).</summary>
    public MapException(string map, string operation, int errno, string detail)
        : base($"map '{map}': {operation}: {Errno.Name(errno)} ({Errno.Describe(errno)}): {detail}")
    {
        ErrorNumber = errno;
    }

    /// <summary>The positive errno value (e.g. 17 for EEXIST).</summary>
    public int ErrorNumber { get; }
}
