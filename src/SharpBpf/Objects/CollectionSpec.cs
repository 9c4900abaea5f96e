using SharpBpf.Asm;
using SharpBpf.Btf;
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

    /// <summary>The object's name (file name up to the first '.'), used to name global-data maps as libbpf does.</summary>
    public string ObjectName { get; set; } = "";

    /// <summary>The object's BTF (types and the raw bytes for BPF_BTF_LOAD), or null when it has none.</summary>
    public BtfSpec? Btf { get; set; }

    /// <summary>The object's .BTF.ext as read (per-section records); programs carry their own re-based copies.</summary>
    public BtfExt? BtfExt { get; set; }

    /// <summary>
    /// The extern variables and functions the programs use (<c>__kconfig</c>, <c>__ksym</c>), for a loader to
    /// resolve against the running kernel.
    /// </summary>
    public List<ExternSpec> Externs { get; } = [];

    public ExternSpec? FindExtern(string name) => Externs.Find(e => e.Name == name);

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

    /// <summary>BTF func info for the linked program (bpf_func_info, offsets in raw slots), for BPF_PROG_LOAD.</summary>
    public List<BtfFuncInfo> FuncInfos { get; set; } = [];

    /// <summary>BTF line info for the linked program (bpf_line_info, offsets in raw slots), for BPF_PROG_LOAD.</summary>
    public List<BtfLineInfo> LineInfos { get; set; } = [];

    /// <summary>CO-RE relocations of the linked program (offsets in raw slots), still to be applied for a target kernel.</summary>
    public List<BtfCoreRelocation> CoreRelocations { get; set; } = [];

    /// <summary>The C source file of the program's first line, when the object has line info.</summary>
    public string? SourceFile => Lines.Count > 0 ? Lines[0].FileName : null;

    /// <summary>The source line that covers an instruction (by instruction index), or null.</summary>
    public SourceLine? FindLine(int instructionIndex)
    {
        int lo = 0, hi = Lines.Count - 1;
        SourceLine? found = null;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (Lines[mid].InstructionIndex <= instructionIndex)
            {
                found = Lines[mid];
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found;
    }
}

/// <summary>What an extern stands for.</summary>
public enum ExternKind
{
    /// <summary>A <c>__kconfig</c> variable (CONFIG_*, LINUX_KERNEL_VERSION, ...): a value in the <c>.kconfig</c> map.</summary>
    KernelConfig,

    /// <summary>A <c>__ksym</c> variable: a kernel variable, typed (found by BTF) or typeless (<c>const void</c>, found in kallsyms).</summary>
    KernelVariable,

    /// <summary>A <c>__ksym</c> function: a kernel function (kfunc) called by BTF id.</summary>
    KernelFunction,
}

/// <summary>
/// An extern the object declares and its programs use. Instructions refer to it by name: <c>__ksym</c> variables
/// as lddw with Src = <see cref="LoadImmediateSource.BtfId"/>, kfuncs as calls with Src = <see cref="CallKind.Kfunc"/>;
/// <c>__kconfig</c> variables are already lddw of the <c>.kconfig</c> map's value at <see cref="Offset"/>.
/// </summary>
public sealed record ExternSpec
{
    public required string Name { get; init; }
    public ExternKind Kind { get; init; }

    /// <summary>Declared <c>__weak</c>: missing from the kernel, it is 0 (a kfunc call is poisoned) instead of an error.</summary>
    public bool Weak { get; init; }

    /// <summary>The VAR or FUNC in the object's BTF.</summary>
    public uint BtfId { get; init; }

    /// <summary>
    /// The declared type with typedefs and modifiers skipped: a variable's type (0 = void, a typeless ksym), a
    /// function's FUNC_PROTO.
    /// </summary>
    public uint TypeId { get; init; }

    /// <summary>For <see cref="ExternKind.KernelConfig"/>: where the value sits in the <c>.kconfig</c> map, and its size.</summary>
    public uint Offset { get; init; }

    /// <summary>Size in bytes of a kconfig value (0 for others).</summary>
    public uint Size { get; init; }
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

    /// <summary>
    /// The name to give the kernel (BPF_OBJ_NAME_LEN: at most 15 characters are kept). For global data it is
    /// libbpf's: the first 8 characters of the object name then the section name (<c>xdp_maps.bss</c>), or the
    /// section name alone when it has a second dot (<c>.rodata.cfg</c>); for other maps it is <see cref="Name"/>.
    /// </summary>
    public string KernelName { get; set; } = "";

    /// <summary>The section the map was declared in (".maps", "maps", ".data", ...).</summary>
    public string SectionName { get; set; } = "";

    /// <summary>BTF type id of the key (0 = none), for BPF_MAP_CREATE's btf_key_type_id.</summary>
    public uint BtfKeyTypeId { get; set; }

    /// <summary>BTF type id of the value (0 = none); the DATASEC for global data.</summary>
    public uint BtfValueTypeId { get; set; }

    /// <summary>map_extra (e.g. the hash count of a bloom filter).</summary>
    public ulong MapExtra { get; set; }

    /// <summary>
    /// Offset of the value's <c>struct bpf_spin_lock</c> when the value's BTF holds exactly one (the kernel's
    /// btf_record of the map), else null: <c>bpf_spin_lock</c>/<c>bpf_spin_unlock</c> need it, and programs may
    /// not load or store those 4 bytes directly.
    /// </summary>
    public int? SpinLockOffset { get; set; }

    /// <summary>NUMA node the object asks for (numa_node; used with BPF_F_NUMA_NODE).</summary>
    public uint NumaNode { get; set; }

    /// <summary>
    /// Initial slots of a map-in-map or program array (<c>.values = { [1] = &amp;inner }</c>): key index -> the
    /// name of the map (or program, for prog arrays) to store there once it exists.
    /// </summary>
    public List<MapSlotReference> InitialReferences { get; set; } = [];
}

/// <summary>One initial slot of a map-in-map or program array: the map or program named goes at index <c>Key</c>.</summary>
public sealed record MapSlotReference(uint Key, string Name);

public enum MapPinning
{
    None = 0,
    ByName = 1,
}
