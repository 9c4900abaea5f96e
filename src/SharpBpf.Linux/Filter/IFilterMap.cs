namespace SharpBpf.Linux.Filter;

/// <summary>
/// The user face of one of the filter's maps, as the filter needs it. Kernel maps (the Linux backend) and
/// managed maps (the VM, <see cref="ManagedFilterMap"/>) both provide it, so the same rule management runs over the
/// kernel's pinned maps and over a filter loaded in the managed VM.
/// </summary>
public interface IFilterMap
{
    string Name { get; }
    int KeySize { get; }

    /// <summary>Bytes of one value as user space reads and writes it: for per-CPU maps one value a CPU, each
    /// rounded up to 8 bytes.</summary>
    int UserValueSize { get; }

    bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value);

    /// <summary>Creates or replaces the value; throws a <see cref="BpfException"/> when the map refuses.</summary>
    void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value);

    bool Delete(ReadOnlySpan<byte> key);

    /// <summary>The key after <paramref name="key"/>, or the first key when <paramref name="key"/> is empty.</summary>
    bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey);
}

/// <summary>A managed VM map seen as an <see cref="IFilterMap"/>.</summary>
public sealed class ManagedFilterMap(SharpBpf.Maps.ManagedMap map) : IFilterMap
{
    public string Name => map.Name;
    public int KeySize => map.KeySize;
    public int UserValueSize => map.UserValueSize;
    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value) => map.TryLookup(key, value);
    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value) => map.Update(key, value);
    public bool Delete(ReadOnlySpan<byte> key) => map.Delete(key);
    public bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey) => map.TryGetNextKey(key, nextKey);
}
