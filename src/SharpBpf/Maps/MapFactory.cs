using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Maps;

/// <summary>Creates the managed map for a spec, with the kernel's checks of key size, value size, max entries and
/// flags for the type. A refused spec throws <see cref="MapException"/> naming the map and the reason; a type
/// the managed VM does not model throws <see cref="BpfNotSupportedException"/>.</summary>
public static class MapFactory
{
    public static ManagedMap Create(MapSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.InitialValue is not null && spec.Type != MapType.Array)
            throw SpecCheck.Refuse(spec, Errno.EINVAL, "only array maps can carry an initial value");
        return spec.Type switch
        {
            MapType.Array or MapType.PercpuArray => new ArrayMap(spec),
            MapType.Hash or MapType.PercpuHash or MapType.LruHash or MapType.LruPercpuHash => new HashMap(spec),
            MapType.LpmTrie => new LpmTrieMap(spec),
            MapType.Queue or MapType.Stack => new QueueStackMap(spec),
            MapType.Ringbuf => new RingBufferMap(spec),
            MapType.ProgArray => new ProgramArrayMap(spec),
            MapType.Devmap => new DevMap(spec),
            MapType.DevmapHash => new DevMapHash(spec),
            MapType.Cpumap => new CpuMap(spec),
            MapType.Xskmap => new XskMap(spec),
            MapType.ArrayOfMaps or MapType.HashOfMaps => new MapOfMaps(spec),
            MapType.PerfEventArray => new PerfEventArrayMap(spec),
            _ => throw new BpfNotSupportedException($"map type {spec.Type} in the managed VM",
                detail: $"map '{spec.Name}'"),
        };
    }
}
