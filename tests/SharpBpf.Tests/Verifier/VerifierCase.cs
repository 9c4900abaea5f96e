using System.Globalization;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Tests.Support;

namespace SharpBpf.Tests.Verifier;

/// <summary>
/// One verifier test case from a text file under Verifier/Cases. A file holds one rule's cases, accepted and
/// refused side by side:
/// <code>
/// ## map: counters array 4 8 1          (name type key-size value-size max-entries [frozen | inner=TYPE/KEY/VALUE/ENTRIES | lock=OFFSET]; file-wide)
/// ## case: read after a bounds check
/// ## program: xdp                       (xdp | xdp_devmap | socket_filter | tc; default xdp)
/// ## expect: accept
/// ...assembly...
/// ## case: read without a check
/// ## expect: refuse at 3: invalid access to packet
/// ...assembly...
/// </code>
/// Other <c>##</c> keys: <c>unprivileged</c> (verify as an unprivileged loader), <c>license: X</c>,
/// <c>line N: text</c> (a C source line for instruction N), <c>hint: fragment</c> (expected in the fix hint),
/// <c>limit: N</c> (a lower complexity limit, to keep a case that must exhaust it quick), <c>device-bound</c> (an XDP
/// program loaded for one device, BPF_F_XDP_DEV_BOUND_ONLY).
/// </summary>
public sealed class VerifierCase
{
    public required string File { get; init; }
    public required string Name { get; init; }
    public required string Assembly { get; init; }
    public bool ExpectAccept { get; set; }
    public int? ExpectIndex { get; set; }
    public string? ExpectMessage { get; set; }
    public string? ExpectHint { get; set; }
    public ProgramType ProgramType { get; set; } = ProgramType.Xdp;
    /// <summary>enum bpf_attach_type the program is loaded with (xdp_devmap: BPF_XDP_DEVMAP), or null.</summary>
    public uint? ExpectedAttachType { get; set; }
    public bool Privileged { get; set; } = true;
    public string License { get; set; } = "GPL";
    public int ComplexityLimit { get; set; } = 1_000_000;
    /// <summary>BPF_F_XDP_DEV_BOUND_ONLY (<c>## device-bound</c>): loaded for one device (the kernel test uses lo).</summary>
    public bool DeviceBound { get; set; }
    public List<MapSpec> Maps { get; } = [];
    public List<SourceLine> Lines { get; } = [];

    public string Id => $"{File}: {Name}";

    /// <summary>The case calls kernel functions by name (<c>call kfunc:NAME</c>): it needs the kernel's BTF.</summary>
    public bool NeedsKernelBtf => Assembly.Contains("kfunc:", StringComparison.Ordinal);

    public override string ToString() => Id;

    public static string CasesDirectory => Path.Combine(TestPaths.RepoRoot, "tests", "SharpBpf.Tests", "Verifier", "Cases");

    public static IEnumerable<VerifierCase> LoadAll()
    {
        foreach (var path in Directory.GetFiles(CasesDirectory, "*.txt").Order(StringComparer.Ordinal))
        {
            foreach (var c in Load(path))
                yield return c;
        }
    }

    public static List<VerifierCase> Load(string path)
    {
        var file = Path.GetFileNameWithoutExtension(path);
        var fileMaps = new List<MapSpec>();
        var cases = new List<VerifierCase>();
        string? name = null;
        var header = new List<string>();
        var body = new System.Text.StringBuilder();

        void Flush()
        {
            if (name is null)
                return;
            var c = new VerifierCase { File = file, Name = name, Assembly = body.ToString() };
            c.Maps.AddRange(fileMaps);
            foreach (var line in header)
                c.Apply(line, path);
            cases.Add(c);
        }

        foreach (var raw in System.IO.File.ReadAllLines(path))
        {
            var line = raw.Trim();
            if (line.StartsWith("## case:", StringComparison.Ordinal))
            {
                Flush();
                name = line[8..].Trim();
                header.Clear();
                body.Clear();
            }
            else if (line.StartsWith("## map:", StringComparison.Ordinal) && name is null)
            {
                fileMaps.Add(ParseMap(line[7..].Trim()));
            }
            else if (line.StartsWith("##", StringComparison.Ordinal))
            {
                header.Add(line[2..].Trim());
            }
            else if (name is not null)
            {
                body.AppendLine(raw);
            }
        }
        Flush();
        return cases;
    }

    private void Apply(string line, string path)
    {
        int colon = line.IndexOf(':');
        string key = colon < 0 ? line : line[..colon].Trim();
        string value = colon < 0 ? "" : line[(colon + 1)..].Trim();
        switch (key)
        {
            case "expect":
                if (value == "accept")
                {
                    ExpectAccept = true;
                    break;
                }
                // refuse at N: fragment
                if (!value.StartsWith("refuse", StringComparison.Ordinal))
                    throw new FormatException($"{path}: {Name}: expect must be 'accept' or 'refuse at N: message'");
                var rest = value[6..].Trim().TrimStart(':').Trim();
                if (rest.StartsWith("at ", StringComparison.Ordinal))
                {
                    int c2 = rest.IndexOf(':');
                    ExpectIndex = int.Parse(rest[3..(c2 < 0 ? rest.Length : c2)].Trim(), CultureInfo.InvariantCulture);
                    rest = c2 < 0 ? "" : rest[(c2 + 1)..].Trim();
                }
                ExpectMessage = rest.Length > 0 ? rest : null;
                break;
            case "program":
                ProgramType = value switch
                {
                    "xdp" or "xdp_devmap" => ProgramType.Xdp,
                    "socket_filter" => ProgramType.SocketFilter,
                    "tc" => ProgramType.SchedCls,
                    _ => throw new FormatException($"{path}: unknown program type '{value}'"),
                };
                ExpectedAttachType = value == "xdp_devmap" ? PlatformTable.XdpDevmapAttachType : null;
                break;
            case "unprivileged":
                Privileged = false;
                break;
            case "license":
                License = value;
                break;
            case "limit":
                ComplexityLimit = int.Parse(value, CultureInfo.InvariantCulture);
                break;
            case "hint":
                ExpectHint = value;
                break;
            case "device-bound":
                DeviceBound = true;
                break;
            case "map":
                Maps.Add(ParseMap(value));
                break;
            default:
                if (key.StartsWith("line ", StringComparison.Ordinal))
                {
                    int index = int.Parse(key[5..], CultureInfo.InvariantCulture);
                    Lines.Add(new SourceLine(index, "prog.c", index + 10, 1, value));
                    break;
                }
                throw new FormatException($"{path}: {Name}: unknown key '{key}'");
        }
    }

    private static MapSpec ParseMap(string text)
    {
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var type = parts[1] switch
        {
            "array" => MapType.Array,
            "hash" => MapType.Hash,
            "percpu_array" => MapType.PercpuArray,
            "prog_array" => MapType.ProgArray,
            "devmap" => MapType.Devmap,
            "xskmap" => MapType.Xskmap,
            "ringbuf" => MapType.Ringbuf,
            "queue" => MapType.Queue,
            "lru_hash" => MapType.LruHash,
            "perf_event_array" => MapType.PerfEventArray,
            "array_of_maps" => MapType.ArrayOfMaps,
            "hash_of_maps" => MapType.HashOfMaps,
            _ => throw new FormatException($"unknown map type '{parts[1]}'"),
        };
        var map = new MapSpec
        {
            Name = parts[0],
            Type = type,
            KeySize = uint.Parse(parts[2], CultureInfo.InvariantCulture),
            ValueSize = uint.Parse(parts[3], CultureInfo.InvariantCulture),
            MaxEntries = uint.Parse(parts[4], CultureInfo.InvariantCulture),
        };
        // A map of maps names its inner map's template: inner=TYPE/KEY/VALUE/ENTRIES.
        if (parts.Length > 5 && parts[5].StartsWith("inner=", StringComparison.Ordinal))
        {
            var inner = parts[5][6..].Split('/');
            map.InnerMap = ParseMap($"{parts[0]}.inner {inner[0]} {inner[1]} {inner[2]} {inner[3]}");
            map.ValueSize = 4;
        }
        // A value with a struct bpf_spin_lock at offset N (described by BTF when loaded into the kernel): lock=N.
        if (parts.Length > 5 && parts[5].StartsWith("lock=", StringComparison.Ordinal))
            map.SpinLockOffset = int.Parse(parts[5][5..], CultureInfo.InvariantCulture);
        if (parts.Length > 5 && parts[5] == "frozen")
        {
            map.Freeze = true;
            map.InitialValue = new byte[map.ValueSize];
            "%d\n\0"u8.ToArray().CopyTo(map.InitialValue, 0);
        }
        return map;
    }

    public ProgramSpec ToProgram() => new()
    {
        Name = Name,
        SectionName = ProgramType == ProgramType.Xdp ? ExpectedAttachType is null ? "xdp" : "xdp/devmap"
            : ProgramType == ProgramType.SocketFilter ? "socket" : "tc",
        Type = ProgramType,
        ExpectedAttachType = ExpectedAttachType,
        Instructions = CaseAssembler.Assemble(Assembly),
        License = License,
        Flags = DeviceBound ? SectionDefinitions.FlagXdpDeviceBoundOnly : 0,
        Lines = [.. Lines.OrderBy(l => l.InstructionIndex)],
    };
}
