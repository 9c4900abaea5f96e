namespace SharpBpf.Maps;

/// <summary>Map creation flags (the map_flags of a map spec), numbered as in linux/bpf.h.</summary>
[Flags]
public enum MapCreateFlags : uint
{
    None = 0,
    /// <summary>Allocate hash elements on demand (required for LPM tries).</summary>
    NoPrealloc = 1 << 0,
    /// <summary>LRU hash: one LRU list per CPU instead of a common one.</summary>
    NoCommonLru = 1 << 1,
    NumaNode = 1 << 2,
    /// <summary>User space may only read.</summary>
    ReadOnly = 1 << 3,
    /// <summary>User space may only write.</summary>
    WriteOnly = 1 << 4,
    StackBuildId = 1 << 5,
    /// <summary>Hash maps: hash with seed 0 (reproducible iteration order).</summary>
    ZeroSeed = 1 << 6,
    /// <summary>Programs may only read (libbpf sets it on .rodata).</summary>
    ReadOnlyProgram = 1 << 7,
    /// <summary>Programs may only write.</summary>
    WriteOnlyProgram = 1 << 8,
    Clone = 1 << 9,
    /// <summary>Array maps whose memory user space may map.</summary>
    Mmapable = 1 << 10,
    PreserveElements = 1 << 11,
    /// <summary>An inner map whose max_entries may differ from the template's.</summary>
    InnerMap = 1 << 12,
}

/// <summary>Access flags every map type accepts (bpf_map_flags_access_ok in the kernel).</summary>
internal static class MapFlagMasks
{
    public const uint Access = (uint)(MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly |
                                      MapCreateFlags.ReadOnlyProgram | MapCreateFlags.WriteOnlyProgram);

    /// <summary>The kernel refuses both read-only and write-only on the same side.</summary>
    public static bool AccessOk(uint flags)
    {
        var user = flags & (uint)(MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly);
        var prog = flags & (uint)(MapCreateFlags.ReadOnlyProgram | MapCreateFlags.WriteOnlyProgram);
        return user != (uint)(MapCreateFlags.ReadOnly | MapCreateFlags.WriteOnly) &&
               prog != (uint)(MapCreateFlags.ReadOnlyProgram | MapCreateFlags.WriteOnlyProgram);
    }
}
