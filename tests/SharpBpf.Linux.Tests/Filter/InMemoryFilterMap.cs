using SharpBpf.Linux.Filter;

namespace SharpBpf.Linux.Tests.Filter;

/// <summary>A plain key/value map with a capacity, to test rule management without a kernel or a VM.</summary>
internal sealed class InMemoryFilterMap(string name, int keySize, int userValueSize, int capacity, bool isArray = false, bool isLpm = false) : IFilterMap
{
    private readonly SortedDictionary<string, byte[]> entries = new(StringComparer.Ordinal);

    public string Name => name;
    public int KeySize => keySize;
    public int UserValueSize => userValueSize;
    public int Count => entries.Count;

    public bool TryLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        if (!entries.TryGetValue(Convert.ToHexString(key), out var stored) && isLpm)
            stored = LongestPrefix(key.ToArray());
        if (stored is null)
        {
            if (!isArray || !InArray(key))
                return false;
            value[..userValueSize].Clear();
            return true;
        }
        stored.CopyTo(value);
        return true;
    }

    public void Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        Assert.Equal(keySize, key.Length);
        Assert.Equal(userValueSize, value.Length);
        var hex = Convert.ToHexString(key);
        if (isArray ? !InArray(key) : !entries.ContainsKey(hex) && entries.Count >= capacity)
            throw new BpfException($"map '{name}': update: E2BIG");
        entries[hex] = value.ToArray();
    }

    public bool Delete(ReadOnlySpan<byte> key) => !isArray && entries.Remove(Convert.ToHexString(key));

    public bool TryGetNextKey(ReadOnlySpan<byte> key, Span<byte> nextKey)
    {
        var hex = key.IsEmpty ? null : Convert.ToHexString(key);
        foreach (var candidate in entries.Keys)
        {
            if (hex is null || string.CompareOrdinal(candidate, hex) > 0)
            {
                Convert.FromHexString(candidate).CopyTo(nextKey);
                return true;
            }
        }
        return false;
    }

    /// <summary>As the kernel's LPM trie answers a lookup, from user space too: the longest stored prefix that covers
    /// the key's first prefixlen bits.</summary>
    private byte[]? LongestPrefix(byte[] key)
    {
        var length = BitConverter.ToInt32(key);
        byte[]? best = null;
        var bestLength = -1;
        foreach (var (hex, value) in entries)
        {
            var stored = Convert.FromHexString(hex);
            var storedLength = BitConverter.ToInt32(stored);
            if (storedLength > length || storedLength <= bestLength)
                continue;
            var covers = true;
            for (var bit = 0; bit < storedLength && covers; bit++)
                covers = ((stored[4 + bit / 8] ^ key[4 + bit / 8]) & (0x80 >> (bit % 8))) == 0;
            if (covers)
                (best, bestLength) = (value, storedLength);
        }
        return best;
    }

    private bool InArray(ReadOnlySpan<byte> key) => BitConverter.ToUInt32(key) < capacity;

    /// <summary>The filter's ten maps with the sizes of programs/include/xdp_filter.h, per-CPU maps for <paramref name="cpus"/> CPUs.</summary>
    public static Dictionary<string, InMemoryFilterMap> FilterMaps(int cpus = 2, int ruleCapacity = 16384) => new()
    {
        [FilterState.ConfigMap] = new(FilterState.ConfigMap, 4, 8, 1, isArray: true),
        [FilterState.SourceV4Map] = new(FilterState.SourceV4Map, 8, 8, ruleCapacity, isLpm: true),
        [FilterState.DestinationV4Map] = new(FilterState.DestinationV4Map, 8, 8, ruleCapacity, isLpm: true),
        [FilterState.SourceV6Map] = new(FilterState.SourceV6Map, 20, 8, ruleCapacity, isLpm: true),
        [FilterState.DestinationV6Map] = new(FilterState.DestinationV6Map, 20, 8, ruleCapacity, isLpm: true),
        [FilterState.PortsMap] = new(FilterState.PortsMap, 4, 8, ruleCapacity),
        [FilterState.MacsMap] = new(FilterState.MacsMap, 8, 8, ruleCapacity),
        [FilterState.ProtocolsMap] = new(FilterState.ProtocolsMap, 4, 8, 256, isArray: true),
        [FilterState.HitsMap] = new(FilterState.HitsMap, 4, 16 * cpus, 16384, isArray: true),
        [FilterState.StatsMap] = new(FilterState.StatsMap, 4, 16 * cpus, 5, isArray: true),
    };
}
