using SharpBpf.Asm;
using SharpBpf.Platform;

namespace SharpBpf.Objects;

/// <summary>
/// Everything an object file describes, as plain editable data: programs and maps. Holds no handles.
/// Loaders (the Linux backend, the managed VM) turn it into live objects.
/// </summary>
public sealed class CollectionSpec
{
    public List<ProgramSpec> Programs { get; } = [];
    public List<MapSpec> Maps { get; } = [];

    /// <summary>Contents of the "license" section, e.g. "GPL".</summary>
    public string License { get; set; } = "";

    /// <summary>Contents of the "version" section (kernel version code), or 0.</summary>
    public uint KernelVersion { get; set; }

    public ProgramSpec? FindProgram(string name) => Programs.Find(p => p.Name == name);
    public MapSpec? FindMap(string name) => Maps.Find(m => m.Name == name);
}

/// <summary>
/// One program, linked and ready to load: subprograms it calls are appended after its own instructions and
/// bpf-to-bpf call offsets are resolved.
/// <para>Conventions for references that a loader resolves:</para>
/// <list type="bullet">
/// <item>a map: lddw with Src = <see cref="LoadImmediateSource.MapFd"/>, <c>Reference</c> = map name, Constant = 0;</item>
/// <item>global data: lddw with Src = <see cref="LoadImmediateSource.MapValue"/>, <c>Reference</c> = map name
///   (e.g. ".bss"), Constant = offset into the value shifted left 32 bits (the low 32 bits take the fd at load).</item>
/// </list>
/// </summary>
public sealed class ProgramSpec
{
    public required string Name { get; set; }
    public required string SectionName { get; set; }
    public ProgramType Type { get; set; }

    /// <summary>Expected attach type (enum bpf_attach_type), when the section name implies one.</summary>
    public uint? ExpectedAttachType { get; set; }

    /// <summary>Program flags implied by the section, e.g. BPF_F_XDP_HAS_FRAGS for "xdp.frags".</summary>
    public uint Flags { get; set; }

    public List<Instruction> Instructions { get; set; } = [];
    public string License { get; set; } = "";

    /// <summary>Source line for instructions, sorted by instruction index (from BTF.ext line info).</summary>
    public List<SourceLine> Lines { get; set; } = [];
}

/// <summary>A C source line as BTF line info records it, attached to the first instruction it covers.</summary>
public sealed record SourceLine(int InstructionIndex, string FileName, int Line, int Column, string Text);

/// <summary>A map as the object file declares it.</summary>
public sealed class MapSpec
{
    public required string Name { get; set; }
    public MapType Type { get; set; }
    public uint KeySize { get; set; }
    public uint ValueSize { get; set; }
    public uint MaxEntries { get; set; }
    public uint Flags { get; set; }

    /// <summary>LIBBPF_PIN_BY_NAME when the object asks for the map to be pinned and reused.</summary>
    public MapPinning Pinning { get; set; }

    /// <summary>Inner map template for array_of_maps / hash_of_maps.</summary>
    public MapSpec? InnerMap { get; set; }

    /// <summary>Initial value bytes of a global-data map (.data, .rodata, .bss): one value, key 0.</summary>
    public byte[]? InitialValue { get; set; }

    /// <summary>True for .rodata maps: created read-only for programs and frozen after the initial value is written.</summary>
    public bool Freeze { get; set; }
}

public enum MapPinning
{
    None = 0,
    ByName = 1,
}
