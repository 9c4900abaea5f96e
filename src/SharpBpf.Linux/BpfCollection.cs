using SharpBpf.Asm;
using SharpBpf.Linux.Interop;
using SharpBpf.Objects;

namespace SharpBpf.Linux;

/// <summary>
/// The live maps and programs of one object, loaded into the kernel. Disposing it closes every fd; pinned
/// objects stay in the kernel.
/// </summary>
public sealed class BpfCollection : IDisposable
{
    private BpfCollection(Dictionary<string, BpfMap> maps, Dictionary<string, BpfProgram> programs)
    {
        Maps = maps;
        Programs = programs;
    }

    public IReadOnlyDictionary<string, BpfMap> Maps { get; }
    public IReadOnlyDictionary<string, BpfProgram> Programs { get; }

    public BpfProgram Program(string name) =>
        Programs.TryGetValue(name, out var p) ? p : throw new BpfException($"the collection has no program '{name}' (it has: {string.Join(", ", Programs.Keys)})");

    public BpfMap Map(string name) =>
        Maps.TryGetValue(name, out var m) ? m : throw new BpfException($"the collection has no map '{name}' (it has: {string.Join(", ", Maps.Keys)})");

    /// <summary>
    /// Creates the maps (reusing pinned ones where the spec asks), writes global data, and loads the programs.
    /// On any failure everything created so far is closed and maps this call pinned are unpinned.
    /// </summary>
    public static BpfCollection Load(CollectionSpec spec, BpfCollectionOptions? options = null) =>
        Load(Bpf.Default, spec, options ?? new BpfCollectionOptions());

    internal static BpfCollection Load(Bpf bpf, CollectionSpec spec, BpfCollectionOptions options)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var programs = SelectPrograms(spec, options);
        var maps = new Dictionary<string, BpfMap>(StringComparer.Ordinal);
        var loaded = new Dictionary<string, BpfProgram>(StringComparer.Ordinal);
        var pinnedHere = new List<string>();
        try
        {
            var used = UsedMaps(programs);
            foreach (var mapSpec in spec.Maps)
            {
                // Unused maps are still created when the whole object is loaded (as libbpf does), so that
                // a loader can fill them; with a program filter only what the chosen programs use.
                if (options.Programs is not null && !used.Contains(mapSpec.Name))
                    continue;
                maps[mapSpec.Name] = CreateMap(bpf, spec, mapSpec, options, pinnedHere);
            }
            foreach (var programSpec in programs)
            {
                loaded[programSpec.Name] = BpfProgram.Load(bpf, programSpec, maps, options, spec.License, spec.KernelVersion, btf: null);
            }
            return new BpfCollection(maps, loaded);
        }
        catch
        {
            foreach (var p in loaded.Values)
                p.Dispose();
            foreach (var m in maps.Values)
                m.Dispose();
            foreach (var path in pinnedHere)
                TryDelete(path);
            throw;
        }
    }

    private static List<ProgramSpec> SelectPrograms(CollectionSpec spec, BpfCollectionOptions options)
    {
        if (options.Programs is null)
            return spec.Programs;
        var result = new List<ProgramSpec>();
        foreach (var name in options.Programs)
            result.Add(spec.FindProgram(name) ?? throw new BpfException(
                $"the object has no program '{name}' (it has: {string.Join(", ", spec.Programs.Select(p => p.Name))})"));
        return result;
    }

    private static HashSet<string> UsedMaps(List<ProgramSpec> programs)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in programs)
            foreach (var insn in p.Instructions)
                if (insn.IsLoadImmediate64 && insn.Reference is { } name
                    && (LoadImmediateSource)insn.Src is LoadImmediateSource.MapFd or LoadImmediateSource.MapValue)
                    used.Add(name);
        return used;
    }

    private static BpfMap CreateMap(Bpf bpf, CollectionSpec spec, MapSpec mapSpec, BpfCollectionOptions options, List<string> pinnedHere)
    {
        string context = $"map '{mapSpec.Name}'";
        try
        {
            string? pinPath = null;
            if (mapSpec.Pinning == MapPinning.ByName)
            {
                pinPath = Path.Combine(options.PinDirectory, PinName(mapSpec.Name));
                int r = bpf.TryObjGet(pinPath, 0, out var existing);
                if (r == 0)
                {
                    var reused = BpfMap.FromFd(bpf, existing!, mapSpec.Name);
                    reused.PinPath = pinPath;
                    if (Incompatibility(reused, mapSpec) is { } why)
                    {
                        reused.Dispose();
                        throw new BpfException($"{context}: the map pinned at '{pinPath}' cannot be reused: {why}");
                    }
                    return reused;
                }
                if (r != -Errno.ENOENT)
                    throw Bpf.Error(BpfCommand.BPF_OBJ_GET, -r).WithContext($"open pinned '{pinPath}'");
            }

            var map = BpfMap.Create(bpf, mapSpec, btf: null, kernelName: KernelName(spec, mapSpec));
            try
            {
                if (mapSpec.InitialValue is { } initial)
                    WriteInitialValue(map, mapSpec, initial);
                if (mapSpec.Freeze)
                    map.Freeze();
                if (pinPath is not null)
                {
                    map.Pin(pinPath);
                    pinnedHere.Add(pinPath);
                }
                return map;
            }
            catch
            {
                map.Dispose();
                throw;
            }
        }
        catch (BpfSyscallException e)
        {
            throw e.WithContext(context);
        }
    }

    private static void WriteInitialValue(BpfMap map, MapSpec mapSpec, byte[] initial)
    {
        // Global data is one value at key 0; the section may be shorter than the value (.bss is all zeros).
        var value = new byte[map.ValueBufferSize];
        initial.AsSpan(0, Math.Min(initial.Length, value.Length)).CopyTo(value);
        var key = new byte[mapSpec.KeySize];
        map.Update(key, value);
    }

    /// <summary>Why a pinned map cannot stand in for the spec, or null when it can (libbpf's checks).</summary>
    internal static string? Incompatibility(BpfMap pinned, MapSpec spec)
    {
        if (pinned.Type != spec.Type)
            return $"its type is {pinned.Type}, the object wants {spec.Type}";
        if (pinned.KeySize != spec.KeySize)
            return $"its key size is {pinned.KeySize}, the object wants {spec.KeySize}";
        if (pinned.ValueSize != spec.ValueSize)
            return $"its value size is {pinned.ValueSize}, the object wants {spec.ValueSize}";
        if (pinned.MaxEntries != spec.MaxEntries && !(spec.Type == Platform.MapType.PerfEventArray && spec.MaxEntries == 0))
            return $"it holds {pinned.MaxEntries} entries, the object wants {spec.MaxEntries}";
        uint wantedFlags = spec.Flags | (spec.Freeze ? BpfConstants.BPF_F_RDONLY_PROG : 0);
        if (pinned.Flags != wantedFlags)
            return $"its flags are 0x{pinned.Flags:x}, the object wants 0x{wantedFlags:x}";
        return null;
    }

    /// <summary>A map name as a bpffs entry: the kernel refuses '.' in pinned names, so it becomes '_'.</summary>
    public static string PinName(string mapName) => mapName.Replace('.', '_');

    private static string KernelName(CollectionSpec spec, MapSpec map)
    {
        _ = spec;
        return map.Name;
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    public void Dispose()
    {
        foreach (var p in Programs.Values)
            p.Dispose();
        foreach (var m in Maps.Values)
            m.Dispose();
    }
}
