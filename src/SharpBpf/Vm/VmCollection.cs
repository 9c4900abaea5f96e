using System.Runtime.InteropServices;
using SharpBpf.Asm;
using SharpBpf.Helpers;
using SharpBpf.Maps;
using SharpBpf.Objects;

namespace SharpBpf.Vm;

/// <summary>
/// A <see cref="CollectionSpec"/> loaded into the managed VM: its maps created, its programs loaded with every
/// lddw map reference resolved to a native map handle and every global-data reference to the native address of
/// the value. Dispose it to free the maps.
/// <para>Map handles: the collection owns one unmanaged block of 16 bytes a map; <c>lddw rX, map</c> loads the
/// address of the map's slot, so a helper turns a handle into the map with one subtraction and a bounds check.</para>
/// </summary>
public sealed unsafe class VmCollection : IDisposable
{
    private readonly ManagedMap[] _maps;
    private readonly byte* _handles;
    private readonly Dictionary<string, int> _mapIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, VmProgram> _programs = new(StringComparer.Ordinal);
    private bool _disposed;

    private const int HandleSize = 16;

    private VmCollection(CollectionSpec spec, VmOptions options)
    {
        var create = options.CreateMap ?? DefaultCreateMap;
        _maps = new ManagedMap[spec.Maps.Count];
        _handles = (byte*)NativeMemory.AllocZeroed((nuint)Math.Max(1, spec.Maps.Count * HandleSize));
        try
        {
            for (int i = 0; i < spec.Maps.Count; i++)
            {
                var mapSpec = spec.Maps[i];
                _maps[i] = create(mapSpec);
                _mapIndex[mapSpec.Name] = i;
                *(uint*)(_handles + i * HandleSize) = 0x4d56_4d42; // "BMVM": marks a handle when debugging
                if (mapSpec.InitialValue is not null)
                {
                    var value = GlobalValue(_maps[i]);
                    StaticRegions.Add(((ulong)value, (ulong)_maps[i].ValueSize, !mapSpec.Freeze));
                }
            }
            foreach (var program in spec.Programs)
            {
                var helpers = HelperTable.For(program.Type);
                _programs[program.Name] = new VmProgram(program.Name, program.Type, program.Instructions, program.Lines,
                    options, helpers, this, (index, insn) => Resolve(program.Name, index, insn));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Creates the maps and loads every program of <paramref name="spec"/>.</summary>
    public static VmCollection Load(CollectionSpec spec, VmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new VmCollection(spec, options ?? VmOptions.Default);
    }

    private static ManagedMap DefaultCreateMap(MapSpec spec) =>
        throw new BpfNotSupportedException("managed maps", detail: $"map '{spec.Name}': no map factory is available in this build; pass VmOptions.CreateMap");

    public IReadOnlyDictionary<string, VmProgram> Programs => _programs;

    public IEnumerable<ManagedMap> Maps => _maps.Where(m => m is not null);

    public VmProgram Program(string name) =>
        _programs.TryGetValue(name, out var p) ? p : throw new KeyNotFoundException($"no program '{name}' in the collection");

    public ManagedMap Map(string name) =>
        _mapIndex.TryGetValue(name, out var i) ? _maps[i] : throw new KeyNotFoundException($"no map '{name}' in the collection");

    /// <summary>The handle programs see for <paramref name="name"/> (what lddw of the map loads).</summary>
    public ulong MapHandle(string name) => (ulong)(_handles + _mapIndex[name] * HandleSize);

    /// <summary>Global-data values the programs may touch in every run: (start, length, writable).</summary>
    internal List<(ulong Start, ulong Length, bool Writable)> StaticRegions { get; } = [];

    /// <summary>The map a program-visible handle stands for, or null.</summary>
    internal ManagedMap? ResolveMap(ulong handle)
    {
        ulong offset = handle - (ulong)_handles;
        if (offset >= (ulong)_maps.Length * HandleSize || offset % HandleSize != 0)
            return null;
        return _maps[(int)(offset / HandleSize)];
    }

    /// <summary>Called after each run: nothing to release yet (map memory reclamation is the maps' business).</summary>
    internal void EndRun() { }

    private static byte* GlobalValue(ManagedMap map)
    {
        uint key = 0;
        byte* value = map.LookupForProgram((byte*)&key, 0);
        if (value == null)
            throw new BpfException($"map '{map.Name}': global data has no value at key 0");
        return value;
    }

    private long Resolve(string program, int index, Instruction insn)
    {
        var name = insn.Reference;
        if (name is null || !_mapIndex.TryGetValue(name, out int i))
            throw new VmLoadException(program, index, name is null ? "lddw of a map has no map reference" : $"lddw refers to map '{name}', which the collection does not have");
        switch ((LoadImmediateSource)insn.Src)
        {
            case LoadImmediateSource.MapFd:
            case LoadImmediateSource.MapIndex:
                return (long)(_handles + i * HandleSize);
            default:
            {
                var map = _maps[i];
                uint offset = (uint)(insn.Constant >> 32);
                if (offset >= (uint)map.ValueSize)
                    throw new VmLoadException(program, index, $"offset {offset} is outside the value of map '{name}' ({map.ValueSize} bytes)");
                return (long)(GlobalValue(map) + offset);
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var map in _maps)
            map?.Dispose();
        NativeMemory.Free(_handles);
    }
}
