using SharpBpf.Platform;

namespace SharpBpf.Linux.Features;

/// <summary>The Linux version that brought each program type, map type and BTF kind (from the kernel's history).</summary>
internal static class KernelVersions
{
    public static string? Of(ProgramType type) => type switch
    {
        ProgramType.SocketFilter => "3.19",
        ProgramType.Kprobe => "4.1",
        ProgramType.SchedCls => "4.1",
        ProgramType.SchedAct => "4.1",
        ProgramType.Tracepoint => "4.7",
        ProgramType.Xdp => "4.8",
        ProgramType.PerfEvent => "4.9",
        ProgramType.CgroupSkb => "4.10",
        ProgramType.CgroupSock => "4.10",
        ProgramType.LwtIn or ProgramType.LwtOut or ProgramType.LwtXmit => "4.10",
        ProgramType.SockOps => "4.13",
        ProgramType.SkSkb => "4.14",
        ProgramType.CgroupDevice => "4.15",
        ProgramType.SkMsg => "4.17",
        ProgramType.RawTracepoint => "4.17",
        ProgramType.CgroupSockAddr => "4.17",
        ProgramType.LwtSeg6local => "4.18",
        ProgramType.LircMode2 => "4.18",
        ProgramType.SkReuseport => "4.19",
        ProgramType.FlowDissector => "4.20",
        ProgramType.CgroupSysctl => "5.2",
        ProgramType.RawTracepointWritable => "5.2",
        ProgramType.CgroupSockopt => "5.3",
        ProgramType.Tracing => "5.5",
        ProgramType.StructOps => "5.6",
        ProgramType.Ext => "5.6",
        ProgramType.Lsm => "5.7",
        ProgramType.SkLookup => "5.9",
        ProgramType.Syscall => "5.14",
        _ => null,
    };

    public static string? Of(MapType type) => type switch
    {
        MapType.Hash or MapType.Array => "3.19",
        MapType.ProgArray => "4.2",
        MapType.PerfEventArray => "4.3",
        MapType.PercpuHash or MapType.PercpuArray or MapType.StackTrace => "4.6",
        MapType.CgroupArray => "4.8",
        MapType.LruHash or MapType.LruPercpuHash => "4.10",
        MapType.LpmTrie => "4.11",
        MapType.ArrayOfMaps or MapType.HashOfMaps => "4.12",
        MapType.Devmap or MapType.Sockmap => "4.14",
        MapType.Cpumap => "4.15",
        MapType.Xskmap => "4.18",
        MapType.Sockhash or MapType.CgroupStorage or MapType.ReuseportSockarray => "4.18",
        MapType.PercpuCgroupStorage or MapType.Queue or MapType.Stack => "4.20",
        MapType.SkStorage => "5.2",
        MapType.DevmapHash => "5.4",
        MapType.StructOps => "5.6",
        MapType.Ringbuf => "5.8",
        MapType.InodeStorage => "5.10",
        MapType.TaskStorage => "5.11",
        MapType.BloomFilter => "5.16",
        MapType.UserRingbuf => "6.1",
        _ => null,
    };

    public const string BpfLinkXdp = "5.9";
    public const string MapBatch = "5.6";
}
