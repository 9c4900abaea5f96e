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
                // Verified programs access map values unchecked, trusting the spec's sizes the verifier used.
                if (options.Verify && (_maps[i].KeySize != mapSpec.KeySize || _maps[i].ValueSize != mapSpec.ValueSize))
                    throw new BpfException($"map '{mapSpec.Name}': the map created for it has key/value sizes {_maps[i].KeySize}/{_maps[i].ValueSize}, the spec {mapSpec.KeySize}/{mapSpec.ValueSize}; verified programs need them equal");
                _mapIndex[mapSpec.Name] = i;
                *(uint*)(_handles + i * HandleSize) = 0x4d56_4d42; // "BMVM": marks a handle when debugging
                if (mapSpec.InitialValue is not null)
                {
                    var value = GlobalValue(_maps[i]);
                    StaticRegions.Add(((ulong)value, (ulong)_maps[i].ValueSize, !mapSpec.Freeze && !_maps[i].IsReadOnlyForProgram));
                }
            }
            foreach (var map in _maps)
            {
                // Program arrays written from user code name programs by VmProgram.Id, where the kernel takes fds.
                if (map is ProgramArrayMap programs)
                    programs.ProgramResolver = id => VmProgram.FromId(id);
            }
            foreach (var program in spec.Programs)
            {
                var helpers = HelperTable.For(program.Type);
                _programs[program.Name] = new VmProgram(program.Name, program.Type, program.Instructions, program.Lines,
                    options, helpers, this, (index, insn) => Resolve(program.Name, index, insn), program, spec.Maps);
            }
            for (int i = 0; i < spec.Maps.Count; i++)
                FillInitialSlots(spec.Maps[i], _maps[i]);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// Statically initialised slots (<c>.values = { [0] = &amp;prog }</c>), as libbpf fills them after loading: a
    /// program array gets the programs loaded here (a program left out of this collection leaves its slot empty, as
    /// a tail call that falls through), a map-in-map the maps of this collection.
    /// </summary>
    private void FillInitialSlots(MapSpec spec, ManagedMap map)
    {
        foreach (var slot in spec.InitialReferences)
        {
            switch (map)
            {
                case ProgramArrayMap programs when _programs.TryGetValue(slot.Name, out var target):
                    programs.Update(BitConverter.GetBytes(slot.Key), BitConverter.GetBytes(target.Id));
                    break;
                case MapOfMaps outer when _mapIndex.TryGetValue(slot.Name, out var inner):
                    outer.SetInnerMap(slot.Key, _maps[inner]);
                    break;
            }
        }
    }

    /// <summary>Creates the maps and loads every program of <paramref name="spec"/>.</summary>
    public static VmCollection Load(CollectionSpec spec, VmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new VmCollection(spec, options ?? VmOptions.Default);
    }

    private static ManagedMap DefaultCreateMap(MapSpec spec) => MapFactory.Create(spec);

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

    /// <summary>The map a program-visible handle stands for, or null. Handles of the collection's own maps resolve
    /// with one subtraction; an inner map (what a map-in-map lookup returns) through the maps' handle registry.</summary>
    internal ManagedMap? ResolveMap(ulong handle)
    {
        ulong offset = handle - (ulong)_handles;
        if (offset >= (ulong)_maps.Length * HandleSize || offset % HandleSize != 0)
            return ManagedMap.FromProgramHandle((void*)handle);
        return _maps[(int)(offset / HandleSize)];
    }

    /// <summary>The ring buffer map that handed out <paramref name="sample"/>, or null.</summary>
    internal RingBufferMap? RingBufferOf(ulong sample)
    {
        foreach (var map in _maps)
        {
            if (map is RingBufferMap ring && ring.IsReservedSample((byte*)sample))
                return ring;
        }
        return null;
    }

    /// <summary>
    /// Lets the maps reuse memory of elements deleted or replaced during runs (programs may hold pointers to them
    /// until their run ends, so maps only retire such memory). Call it when no program of the collection is
    /// running, e.g. between batches of packets.
    /// </summary>
    public void ReclaimMaps()
    {
        foreach (var map in _maps)
            map?.Reclaim();
    }

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
                var value = GlobalValue(map);
                if (!StaticRegions.Exists(r => r.Start == (ulong)value))
                    StaticRegions.Add(((ulong)value, (ulong)map.ValueSize, !map.IsReadOnlyForProgram));
                return (long)(value + offset);
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
