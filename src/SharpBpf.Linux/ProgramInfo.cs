using SharpBpf.Linux.Interop;
using SharpBpf.Platform;

namespace SharpBpf.Linux;

/// <summary>What the kernel says about a loaded program (BPF_OBJ_GET_INFO_BY_FD).</summary>
public sealed record ProgramInfo
{
    public required uint Id { get; init; }
    public required ProgramType Type { get; init; }
    public required string Name { get; init; }

    /// <summary>The kernel's tag: a hash of the instructions, 16 hex digits (as bpftool prints it).</summary>
    public required string Tag { get; init; }

    public required IReadOnlyList<uint> MapIds { get; init; }
    public required uint JitedSize { get; init; }
    public required uint TranslatedSize { get; init; }
    public required uint BtfId { get; init; }
    public required bool GplCompatible { get; init; }
    public required uint VerifiedInstructions { get; init; }

    /// <summary>The kernel BTF type a tracing or LSM program attaches to (0 for others).</summary>
    public uint AttachBtfId { get; init; }

    /// <summary>Run count and total run time, when run statistics are enabled (kernel.bpf_stats_enabled).</summary>
    public required ulong RunCount { get; init; }
    public required ulong RunTimeNanoseconds { get; init; }

    internal static ProgramInfo From(in BpfProgInfo info, uint[] mapIds)
    {
        var tag = info.Tag;
        return new()
        {
            Id = info.Id,
            Type = (ProgramType)info.Type,
            Name = info.Name.ToString(),
            Tag = Convert.ToHexStringLower(tag),
            MapIds = mapIds,
            JitedSize = info.JitedProgLen,
            TranslatedSize = info.XlatedProgLen,
            BtfId = info.BtfId,
            GplCompatible = (info.GplCompatibleBits & 1) != 0,
            VerifiedInstructions = info.VerifiedInsns,
            RunCount = info.RunCnt,
            RunTimeNanoseconds = info.RunTimeNs,
            AttachBtfId = info.AttachBtfId,
        };
    }
}
