using SharpBpf.Linux.Interop;
using SharpBpf.Platform;

namespace SharpBpf.Linux;

/// <summary>What the kernel says about a map (BPF_OBJ_GET_INFO_BY_FD).</summary>
public sealed record MapInfo
{
    public required uint Id { get; init; }
    public required MapType Type { get; init; }
    public required string Name { get; init; }
    public required uint KeySize { get; init; }
    public required uint ValueSize { get; init; }
    public required uint MaxEntries { get; init; }
    public required uint Flags { get; init; }

    /// <summary>The id of the BTF object describing key and value, or 0.</summary>
    public required uint BtfId { get; init; }

    internal static MapInfo From(in BpfMapInfo info) => new()
    {
        Id = info.Id,
        Type = (MapType)info.Type,
        Name = info.Name.ToString(),
        KeySize = info.KeySize,
        ValueSize = info.ValueSize,
        MaxEntries = info.MaxEntries,
        Flags = info.MapFlags,
        BtfId = info.BtfId,
    };
}

/// <summary>How an update treats an existing or missing key (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK).</summary>
[Flags]
public enum MapUpdateFlags : ulong
{
    /// <summary>Create or replace.</summary>
    Any = 0,
    /// <summary>Create only: fails with EEXIST when the key is there.</summary>
    NoExist = 1,
    /// <summary>Replace only: fails with ENOENT when the key is missing.</summary>
    Exist = 2,
    /// <summary>Take the value's bpf_spin_lock while writing.</summary>
    Lock = 4,
}
