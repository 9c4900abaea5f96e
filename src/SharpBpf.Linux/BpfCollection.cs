using SharpBpf.Asm;
using SharpBpf.Linux.Features;
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
        BpfFd? btf = null;
        var linker = new KernelLinker(spec);
        try
        {
            btf = LoadBtf(bpf, spec, out var btfWarning);
            var warnings = new List<string>();
            if (btfWarning is not null)
                warnings.Add(btfWarning);
            var used = UsedMaps(spec, programs);
            foreach (var mapSpec in spec.Maps)
            {
                // Unused maps are still created when the whole object is loaded (as libbpf does), so that
                // a loader can fill them; with a program filter only what the chosen programs use.
                if (options.Programs is not null && !used.Contains(mapSpec.Name))
                    continue;
                maps[mapSpec.Name] = CreateMap(bpf, spec, mapSpec, options, pinnedHere, btf, linker);
            }
            foreach (var programSpec in programs)
            {
                loaded[programSpec.Name] = BpfProgram.Load(bpf, programSpec, maps, options, spec.License, spec.KernelVersion, btf, linker);
            }
            FillInitialSlots(spec, maps, loaded);
            btf?.Dispose();
            return new BpfCollection(maps, loaded) { Warnings = warnings };
        }
        catch
        {
            btf?.Dispose();
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

    private static HashSet<string> UsedMaps(CollectionSpec spec, List<ProgramSpec> programs)
    {
        var used = new HashSet<string>(StringComparer.Ordinal);
        // Maps stored in the initial slots of a used map-in-map are used too.
        void Add(string name)
        {
            if (!used.Add(name) || spec.FindMap(name) is not { } map || map.Type == Platform.MapType.ProgArray)
                return;
            foreach (var slot in map.InitialReferences)
                Add(slot.Name);
        }
        foreach (var p in programs)
            foreach (var insn in p.Instructions)
                if (insn.IsLoadImmediate64 && insn.Reference is { } name
                    && (LoadImmediateSource)insn.Src is LoadImmediateSource.MapFd or LoadImmediateSource.MapValue)
                    Add(name);
        return used;
    }

    /// <summary>Things that did not stop the load but a user may want to know (BTF refused, so no source lines).</summary>
    public IReadOnlyList<string> Warnings { get; private init; } = [];

    /// <summary>
    /// Loads the object's BTF. Kinds this kernel lacks are rewritten into ones it has (as libbpf does); if the
    /// kernel still refuses it, the load goes on without BTF, as libbpf's does, and says so in a warning.
    /// </summary>
    private static BpfFd? LoadBtf(Bpf bpf, CollectionSpec spec, out string? warning)
    {
        warning = null;
        if (spec.Btf is null || spec.Btf.RawBytes.Length == 0)
            return null;
        var bytes = BtfSanitizer.Sanitize(spec.Btf.RawBytes.Span, BpfFeatures.HasBtfKind);
        BtfSanitizer.SanitizeExterns(bytes);
        unsafe
        {
            fixed (byte* p = bytes)
            {
                var attr = new BtfLoadAttr { Btf = (ulong)p, BtfSize = (uint)bytes.Length };
                int r = bpf.TryBtfLoad(ref attr);
                if (r >= 0)
                    return bpf.Adopt(r);
                warning = $"the kernel refused the object's BTF ({Errno.Name(-r)}): loaded without it, so verifier messages have no source lines";
                return null;
            }
        }
    }

    /// <summary>Stores maps into map-in-map slots and programs into program arrays, as the object's initial values say.</summary>
    private static void FillInitialSlots(CollectionSpec spec, Dictionary<string, BpfMap> maps, Dictionary<string, BpfProgram> programs)
    {
        foreach (var mapSpec in spec.Maps)
        {
            if (mapSpec.InitialReferences.Count == 0 || !maps.TryGetValue(mapSpec.Name, out var map))
                continue;
            foreach (var slot in mapSpec.InitialReferences)
            {
                BpfFd? target = mapSpec.Type == Platform.MapType.ProgArray
                    ? programs.GetValueOrDefault(slot.Name)?.Fd
                    : maps.GetValueOrDefault(slot.Name)?.Fd;
                if (target is null)
                {
                    if (mapSpec.Type == Platform.MapType.ProgArray && spec.FindProgram(slot.Name) is not null)
                        continue; // a program not chosen for this load
                    throw new BpfException($"map '{mapSpec.Name}': slot {slot.Key} names '{slot.Name}', which the object does not define");
                }
                try
                {
                    map.Update(BitConverter.GetBytes(slot.Key), BitConverter.GetBytes(target.Value));
                }
                catch (BpfSyscallException e)
                {
                    throw e.WithContext($"store '{slot.Name}' in slot {slot.Key}");
                }
            }
        }
    }

    private static BpfMap CreateMap(Bpf bpf, CollectionSpec spec, MapSpec mapSpec, BpfCollectionOptions options, List<string> pinnedHere, BpfFd? btf, KernelLinker linker)
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

            var map = BpfMap.Create(bpf, mapSpec, btf, kernelName: null);
            try
            {
                // The .kconfig map's value comes from the running kernel, not from the object.
                var initial = mapSpec.SectionName == ObjectReader.KconfigSection && spec.Externs.Count > 0
                    ? linker.KconfigValue(mapSpec)
                    : mapSpec.InitialValue;
                if (initial is not null)
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
