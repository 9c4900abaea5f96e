using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using SharpBpf.Linux.Filter;

namespace SharpBpf.Cli.Commands;

/// <summary>
/// The map contents a run starts from and ends with, for <c>run</c> and <c>test-run</c> on every engine:
/// <c>--maps FILE.json</c> fills maps from a file, <c>--maps-from DIR</c> copies the kernel maps pinned in DIR
/// (a live filter's rules, say) and <c>--maps-out FILE.json</c> writes every map after the run. The file format is
/// the entries of <c>sharpbpf map dump --json</c>, keyed by map name:
/// <c>{ "maps": { "NAME": [ { "key": "0a 00 00 01", "value": "01 00 00 00" }, { "key": "..", "values": ["cpu 0", "cpu 1"] } ] } }</c>.
/// </summary>
internal sealed class MapStateOptions
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    public Option<FileInfo?> MapsIn { get; } = new("--maps")
    {
        Description = "Fill maps before the run from this JSON file ({\"maps\": {NAME: [{key, value}]}}, the entries of 'map dump --json')",
    };

    public Option<DirectoryInfo?> MapsFrom { get; } = new("--maps-from")
    {
        Description = "Copy the entries of the kernel maps pinned in this bpffs folder into the maps of the same name (needs root)",
    };

    public Option<FileInfo?> MapsOut { get; } = new("--maps-out")
    {
        Description = "Write every map's entries after the run to this JSON file (same format as --maps)",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(MapsIn);
        command.Options.Add(MapsFrom);
        command.Options.Add(MapsOut);
    }

    /// <summary>True when an option asks for map state work.</summary>
    public bool Any(ParseResult parse) =>
        parse.GetValue(MapsIn) is not null || parse.GetValue(MapsFrom) is not null || parse.GetValue(MapsOut) is not null;

    /// <summary>
    /// Before the load: the --maps values of read-only global data (.rodata, frozen once created) become the maps'
    /// initial values, as a libbpf skeleton sets <c>const volatile</c> configuration before loading.
    /// </summary>
    public void Prepare(ParseResult parse, SharpBpf.Objects.CollectionSpec spec)
    {
        if (parse.GetValue(MapsIn) is not { } file)
            return;
        foreach (var (name, entries) in Read(file).Maps)
        {
            if (spec.Maps.Find(m => m.Name == name) is not { Freeze: true } map)
                continue;
            for (int i = 0; i < entries.Count; i++)
            {
                var where = $"{file.Name}: map '{name}', entry {i}";
                var key = ParseHex(entries[i].Key, where + " key");
                if (key.Length != 4 || BitConverter.ToUInt32(key) != 0)
                    throw new BpfException($"{where}: global data has one value, at key 00 00 00 00");
                var value = ParseHex(entries[i].Value ?? throw new BpfException($"{where}: no \"value\""), where + " value");
                if (value.Length != map.ValueSize)
                    throw new BpfException($"{where}: the value has {value.Length} bytes; the map's value has {map.ValueSize}");
                map.InitialValue = value;
            }
        }
    }

    /// <summary>
    /// After the load: fills <paramref name="maps"/> from --maps-from, then --maps (read-only global data was set by
    /// <see cref="Prepare"/>). Throws <see cref="BpfException"/> naming the map and entry.
    /// </summary>
    public void Apply(ParseResult parse, IReadOnlyDictionary<string, MapAccess> maps)
    {
        if (parse.GetValue(MapsFrom) is { } dir)
            CopyFromPins(dir, maps);
        if (parse.GetValue(MapsIn) is { } file)
            Fill(file, maps);
    }

    /// <summary>Writes --maps-out, when given.</summary>
    public void Save(ParseResult parse, IReadOnlyDictionary<string, MapAccess> maps)
    {
        if (parse.GetValue(MapsOut) is not { } file)
            return;
        var state = new MapStateFile();
        foreach (var (name, map) in maps.OrderBy(m => m.Key, StringComparer.Ordinal))
            state.Maps[name] = Entries(map.Map).Select(e => ToEntry(map, e.Value, e.Key)).ToList();
        try
        {
            File.WriteAllText(file.FullName, JsonSerializer.Serialize(state, s_json) + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BpfException($"--maps-out: {e.Message}");
        }
    }

    /// <summary>The maps of a VM collection by name.</summary>
    public static IReadOnlyDictionary<string, MapAccess> Of(SharpBpf.Vm.VmCollection collection) =>
        collection.Maps.ToDictionary(m => m.Name, m => new MapAccess(new ManagedFilterMap(m), m.ValueSize, m.IsPerCpu, m.IsFrozen), StringComparer.Ordinal);

    /// <summary>The maps a kernel engine's program uses, by name. BPF_F_RDONLY_PROG marks .rodata, frozen at load.</summary>
    public static IReadOnlyDictionary<string, MapAccess> Of(SharpBpf.Linux.KernelEngine engine) =>
        engine.Maps.ToDictionary(m => m.Key, m => new MapAccess(new KernelFilterMap(m.Value), (int)m.Value.ValueSize, m.Value.IsPerCpu,
            (m.Value.Flags & 0x80u) != 0), StringComparer.Ordinal);

    internal static void Fill(FileInfo file, IReadOnlyDictionary<string, MapAccess> maps)
    {
        foreach (var (name, entries) in Read(file).Maps)
        {
            var access = Find(maps, name, file.Name);
            if (access.ReadOnly)
                continue; // set before the load
            var map = access.Map;
            for (int i = 0; i < entries.Count; i++)
            {
                var where = $"{file.Name}: map '{name}', entry {i}";
                var e = entries[i];
                var key = ParseHex(e.Key, where + " key");
                if (key.Length != map.KeySize)
                    throw new BpfException($"{where}: the key has {key.Length} bytes; the map's key has {map.KeySize}");
                byte[] value;
                if (e.Values is { } perCpu)
                {
                    var parts = perCpu.Select((v, cpu) => ParseHex(v, $"{where} value of cpu {cpu}")).ToList();
                    value = PerCpuBuffer(map, parts, where);
                }
                else
                {
                    value = ParseHex(e.Value ?? throw new BpfException($"{where}: no \"value\" (or \"values\" for a per-CPU map)"), where + " value");
                    if (value.Length != map.UserValueSize)
                    {
                        // One value for a per-CPU map goes to every CPU, as 'map update' does.
                        int cpus = CpuCount(map, value.Length);
                        value = cpus > 0
                            ? PerCpuBuffer(map, Enumerable.Repeat(value, cpus).ToList(), where)
                            : throw new BpfException($"{where}: the value has {value.Length} bytes; the map's value has {map.UserValueSize}");
                    }
                }
                Update(map, key, value, where);
            }
        }
    }

    private static MapStateFile Read(FileInfo file)
    {
        MapStateFile? state;
        try
        {
            state = JsonSerializer.Deserialize<MapStateFile>(File.ReadAllText(file.FullName), s_json);
        }
        catch (JsonException e)
        {
            throw new BpfException($"--maps: {file.Name}: not a map state file ({e.Message})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BpfException($"--maps: {e.Message}");
        }
        if (state?.Maps is null)
            throw new BpfException($"--maps: {file.Name}: no \"maps\" object");
        return state;
    }

    /// <summary>
    /// Copies the pinned maps of <paramref name="dir"/> whose names match (pins have '.' replaced by '_') into
    /// <paramref name="maps"/>. Per-CPU values go CPU by CPU; CPUs the target lacks are added to its last CPU so that
    /// counters keep their sums.
    /// </summary>
    internal static void CopyFromPins(DirectoryInfo dir, IReadOnlyDictionary<string, MapAccess> maps)
    {
        if (!dir.Exists)
            throw new BpfException($"--maps-from: no folder {dir.FullName}");
        int copied = 0;
        foreach (var (name, access) in maps)
        {
            var target = access.Map;
            var pin = Path.Combine(dir.FullName, SharpBpf.Linux.BpfCollection.PinName(name));
            if (!File.Exists(pin))
                continue;
            using var source = SharpBpf.Linux.BpfMap.OpenPinned(pin);
            if (source.KeySize != target.KeySize)
                throw new BpfException($"--maps-from: {pin} has {source.KeySize}-byte keys; map '{name}' of the object has {target.KeySize}");
            foreach (var (key, value) in source.EntriesBatched())
            {
                byte[] converted = value;
                if (source.IsPerCpu)
                    converted = PerCpuBuffer(target, source.SplitPerCpu(value).ToList(), $"--maps-from: {pin}", fold: true);
                else if (value.Length != target.UserValueSize)
                    throw new BpfException($"--maps-from: {pin} has {value.Length}-byte values; map '{name}' of the object has {target.UserValueSize}");
                Update(target, key, converted, $"--maps-from: {pin}");
            }
            copied++;
        }
        if (copied == 0)
            throw new BpfException($"--maps-from: no map of the object is pinned in {dir.FullName} (looked for: {string.Join(", ", maps.Keys.Select(SharpBpf.Linux.BpfCollection.PinName))})");
    }

    private static MapAccess Find(IReadOnlyDictionary<string, MapAccess> maps, string name, string where) =>
        maps.TryGetValue(name, out var map) ? map
        : throw new BpfException($"{where}: the program has no map '{name}' (it has: {string.Join(", ", maps.Keys.Order(StringComparer.Ordinal))})");

    private static void Update(IFilterMap map, byte[] key, byte[] value, string where)
    {
        try
        {
            map.Update(key, value);
        }
        catch (BpfException e)
        {
            throw new BpfException($"{where}: {e.Message}");
        }
    }

    /// <summary>How many CPU values of <paramref name="valueSize"/> bytes the map's user buffer holds, or 0 when not per-CPU.</summary>
    private static int CpuCount(IFilterMap map, int valueSize)
    {
        int stride = (valueSize + 7) & ~7;
        return stride > 0 && map.UserValueSize > valueSize && map.UserValueSize % stride == 0 ? map.UserValueSize / stride : 0;
    }

    /// <summary>Lays out per-CPU values in the map's user buffer (each padded to 8 bytes).</summary>
    private static byte[] PerCpuBuffer(IFilterMap map, List<byte[]> values, string where, bool fold = false)
    {
        if (values.Count == 0)
            throw new BpfException($"{where}: no per-CPU values");
        int size = values[0].Length;
        int cpus = CpuCount(map, size);
        if (cpus == 0)
            throw new BpfException($"{where}: map '{map.Name}' is not a per-CPU map with {size}-byte values");
        if (values.Count > cpus && !fold)
            throw new BpfException($"{where}: {values.Count} per-CPU values; this engine has {cpus} CPUs");
        int stride = (size + 7) & ~7;
        var buffer = new byte[map.UserValueSize];
        for (int cpu = 0; cpu < values.Count; cpu++)
        {
            if (values[cpu].Length != size)
                throw new BpfException($"{where}: the value of cpu {cpu} has {values[cpu].Length} bytes, not {size}");
            if (cpu < cpus)
                values[cpu].CopyTo(buffer, cpu * stride);
            else
                AddInto(buffer.AsSpan((cpus - 1) * stride, size), values[cpu]);
        }
        return buffer;
    }

    /// <summary>Adds little-endian 64-bit words (counters), and any tail bytes as they are, into <paramref name="sum"/>.</summary>
    private static void AddInto(Span<byte> sum, ReadOnlySpan<byte> add)
    {
        int i = 0;
        for (; i + 8 <= sum.Length; i += 8)
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(sum[i..],
                System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(sum[i..]) + System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(add[i..]));
        for (; i < sum.Length; i++)
            sum[i] += add[i];
    }

    private static IEnumerable<KeyValuePair<byte[], byte[]>> Entries(IFilterMap map)
    {
        var key = Array.Empty<byte>();
        var next = new byte[map.KeySize];
        var value = new byte[map.UserValueSize];
        while (map.TryGetNextKey(key, next))
        {
            key = next.ToArray();
            if (map.TryLookup(key, value))
                yield return new(key, value.ToArray());
        }
    }

    private static MapStateEntry ToEntry(MapAccess map, byte[] value, byte[] key)
    {
        if (!map.PerCpu)
            return new MapStateEntry { Key = Hex(key), Value = Hex(value) };
        int stride = (map.ValueSize + 7) & ~7;
        var values = new List<string>();
        for (int at = 0; at + map.ValueSize <= value.Length; at += stride)
            values.Add(Hex(value.AsSpan(at, map.ValueSize)));
        return new MapStateEntry { Key = Hex(key), Values = values };
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => KernelCli.Hex(bytes);

    /// <summary>The hex of a file entry (as <c>map update</c> takes it); a bad one names the file, map and entry.</summary>
    private static byte[] ParseHex(string text, string where)
    {
        try
        {
            return KernelCli.ParseHex(text, where);
        }
        catch (FormatException e)
        {
            throw new BpfException(e.Message);
        }
    }
}

/// <summary>One map as the state options need it: its user face, its value size and whether it keeps a value a CPU.</summary>
internal sealed record MapAccess(IFilterMap Map, int ValueSize, bool PerCpu, bool ReadOnly = false);

/// <summary>The JSON shape of --maps and --maps-out.</summary>
internal sealed class MapStateFile
{
    [JsonPropertyName("maps")]
    public Dictionary<string, List<MapStateEntry>> Maps { get; set; } = new(StringComparer.Ordinal);
}

internal sealed class MapStateEntry
{
    [JsonPropertyName("key")]
    public string Key { get; set; } = "";

    [JsonPropertyName("value")]
    public string? Value { get; set; }

    [JsonPropertyName("values")]
    public List<string>? Values { get; set; }
}
