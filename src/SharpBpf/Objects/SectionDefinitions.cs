using SharpBpf.Platform;

namespace SharpBpf.Objects;

/// <summary>What a program's section name implies, following libbpf's section conventions.</summary>
public readonly record struct SectionDefinition(ProgramType Type, uint? ExpectedAttachType, uint Flags);

/// <summary>
/// Maps ELF section names of programs to program type, expected attach type and load flags, with libbpf's rules:
/// an entry ending in '+' matches the name alone or followed by '/' and anything (<c>kprobe/do_exit</c>); other
/// entries match exactly. The first match wins, so more specific entries come first.
/// </summary>
public static class SectionDefinitions
{
    /// <summary>BPF_F_SLEEPABLE.</summary>
    public const uint FlagSleepable = 1u << 4;

    /// <summary>BPF_F_XDP_HAS_FRAGS.</summary>
    public const uint FlagXdpHasFrags = 1u << 5;

    /// <summary>BPF_F_XDP_DEV_BOUND_ONLY: an XDP program loaded for one device (prog_ifindex), which may call the XDP
    /// metadata kfuncs (the device's implementations) and attach only to that device.</summary>
    public const uint FlagXdpDeviceBoundOnly = 1u << 6;

    // enum bpf_attach_type values used below.
    private const uint CgroupInetIngress = 0, CgroupInetEgress = 1, CgroupInetSockCreate = 2, CgroupSockOps = 3,
        SkSkbStreamParser = 4, SkSkbStreamVerdict = 5, CgroupDevice = 6, SkMsgVerdict = 7, CgroupInet4Bind = 8,
        CgroupInet6Bind = 9, CgroupInet4Connect = 10, CgroupInet6Connect = 11, CgroupInet4PostBind = 12,
        CgroupInet6PostBind = 13, CgroupUdp4Sendmsg = 14, CgroupUdp6Sendmsg = 15, LircMode2 = 16, FlowDissector = 17,
        CgroupSysctl = 18, CgroupUdp4Recvmsg = 19, CgroupUdp6Recvmsg = 20, CgroupGetsockopt = 21, CgroupSetsockopt = 22,
        TraceRawTp = 23, TraceFentry = 24, TraceFexit = 25, ModifyReturn = 26, LsmMac = 27, TraceIter = 28,
        CgroupInet4Getpeername = 29, CgroupInet6Getpeername = 30, CgroupInet4Getsockname = 31, CgroupInet6Getsockname = 32,
        XdpDevmap = 33, CgroupInetSockRelease = 34, XdpCpumap = 35, SkLookup = 36, Xdp = 37, SkSkbVerdict = 38,
        SkReuseportSelect = 39, SkReuseportSelectOrMigrate = 40, TraceKprobeMulti = 42, LsmCgroup = 43,
        TcxIngress = 46, TcxEgress = 47, TraceUprobeMulti = 48;

    private static readonly (string Pattern, SectionDefinition Definition)[] Table =
    [
        ("socket", new(ProgramType.SocketFilter, null, 0)),
        ("sk_reuseport/migrate", new(ProgramType.SkReuseport, SkReuseportSelectOrMigrate, 0)),
        ("sk_reuseport", new(ProgramType.SkReuseport, SkReuseportSelect, 0)),
        ("kprobe.multi+", new(ProgramType.Kprobe, TraceKprobeMulti, 0)),
        ("kretprobe.multi+", new(ProgramType.Kprobe, TraceKprobeMulti, 0)),
        ("uprobe.multi.s+", new(ProgramType.Kprobe, TraceUprobeMulti, FlagSleepable)),
        ("uprobe.multi+", new(ProgramType.Kprobe, TraceUprobeMulti, 0)),
        ("uretprobe.multi.s+", new(ProgramType.Kprobe, TraceUprobeMulti, FlagSleepable)),
        ("uretprobe.multi+", new(ProgramType.Kprobe, TraceUprobeMulti, 0)),
        ("kprobe+", new(ProgramType.Kprobe, null, 0)),
        ("uprobe.s+", new(ProgramType.Kprobe, null, FlagSleepable)),
        ("uprobe+", new(ProgramType.Kprobe, null, 0)),
        ("kretprobe+", new(ProgramType.Kprobe, null, 0)),
        ("uretprobe.s+", new(ProgramType.Kprobe, null, FlagSleepable)),
        ("uretprobe+", new(ProgramType.Kprobe, null, 0)),
        ("ksyscall+", new(ProgramType.Kprobe, null, 0)),
        ("kretsyscall+", new(ProgramType.Kprobe, null, 0)),
        ("usdt+", new(ProgramType.Kprobe, null, 0)),
        ("tc/ingress", new(ProgramType.SchedCls, TcxIngress, 0)),
        ("tc/egress", new(ProgramType.SchedCls, TcxEgress, 0)),
        ("tcx/ingress", new(ProgramType.SchedCls, TcxIngress, 0)),
        ("tcx/egress", new(ProgramType.SchedCls, TcxEgress, 0)),
        ("tc", new(ProgramType.SchedCls, null, 0)),
        ("classifier", new(ProgramType.SchedCls, null, 0)),
        ("action", new(ProgramType.SchedAct, null, 0)),
        ("tracepoint+", new(ProgramType.Tracepoint, null, 0)),
        ("tp+", new(ProgramType.Tracepoint, null, 0)),
        ("raw_tracepoint.w+", new(ProgramType.RawTracepointWritable, null, 0)),
        ("raw_tp.w+", new(ProgramType.RawTracepointWritable, null, 0)),
        ("raw_tracepoint+", new(ProgramType.RawTracepoint, null, 0)),
        ("raw_tp+", new(ProgramType.RawTracepoint, null, 0)),
        ("tp_btf+", new(ProgramType.Tracing, TraceRawTp, 0)),
        ("fentry.s+", new(ProgramType.Tracing, TraceFentry, FlagSleepable)),
        ("fmod_ret.s+", new(ProgramType.Tracing, ModifyReturn, FlagSleepable)),
        ("fexit.s+", new(ProgramType.Tracing, TraceFexit, FlagSleepable)),
        ("fentry+", new(ProgramType.Tracing, TraceFentry, 0)),
        ("fmod_ret+", new(ProgramType.Tracing, ModifyReturn, 0)),
        ("fexit+", new(ProgramType.Tracing, TraceFexit, 0)),
        ("freplace+", new(ProgramType.Ext, null, 0)),
        ("lsm.s+", new(ProgramType.Lsm, LsmMac, FlagSleepable)),
        ("lsm_cgroup+", new(ProgramType.Lsm, LsmCgroup, 0)),
        ("lsm+", new(ProgramType.Lsm, LsmMac, 0)),
        ("iter.s+", new(ProgramType.Tracing, TraceIter, FlagSleepable)),
        ("iter+", new(ProgramType.Tracing, TraceIter, 0)),
        ("syscall", new(ProgramType.Syscall, null, FlagSleepable)),
        ("xdp.frags/devmap", new(ProgramType.Xdp, XdpDevmap, FlagXdpHasFrags)),
        ("xdp/devmap", new(ProgramType.Xdp, XdpDevmap, 0)),
        ("xdp.frags/cpumap", new(ProgramType.Xdp, XdpCpumap, FlagXdpHasFrags)),
        ("xdp/cpumap", new(ProgramType.Xdp, XdpCpumap, 0)),
        ("xdp.frags", new(ProgramType.Xdp, Xdp, FlagXdpHasFrags)),
        ("xdp", new(ProgramType.Xdp, Xdp, 0)),
        ("perf_event", new(ProgramType.PerfEvent, null, 0)),
        ("lwt_in", new(ProgramType.LwtIn, null, 0)),
        ("lwt_out", new(ProgramType.LwtOut, null, 0)),
        ("lwt_xmit", new(ProgramType.LwtXmit, null, 0)),
        ("lwt_seg6local", new(ProgramType.LwtSeg6local, null, 0)),
        ("sockops", new(ProgramType.SockOps, CgroupSockOps, 0)),
        ("sk_skb/stream_parser", new(ProgramType.SkSkb, SkSkbStreamParser, 0)),
        ("sk_skb/stream_verdict", new(ProgramType.SkSkb, SkSkbStreamVerdict, 0)),
        ("sk_skb/verdict", new(ProgramType.SkSkb, SkSkbVerdict, 0)),
        ("sk_skb", new(ProgramType.SkSkb, null, 0)),
        ("sk_msg", new(ProgramType.SkMsg, SkMsgVerdict, 0)),
        ("lirc_mode2", new(ProgramType.LircMode2, LircMode2, 0)),
        ("flow_dissector", new(ProgramType.FlowDissector, FlowDissector, 0)),
        ("cgroup_skb/ingress", new(ProgramType.CgroupSkb, CgroupInetIngress, 0)),
        ("cgroup_skb/egress", new(ProgramType.CgroupSkb, CgroupInetEgress, 0)),
        ("cgroup/skb", new(ProgramType.CgroupSkb, null, 0)),
        ("cgroup/sock_create", new(ProgramType.CgroupSock, CgroupInetSockCreate, 0)),
        ("cgroup/sock_release", new(ProgramType.CgroupSock, CgroupInetSockRelease, 0)),
        ("cgroup/sock", new(ProgramType.CgroupSock, CgroupInetSockCreate, 0)),
        ("cgroup/post_bind4", new(ProgramType.CgroupSock, CgroupInet4PostBind, 0)),
        ("cgroup/post_bind6", new(ProgramType.CgroupSock, CgroupInet6PostBind, 0)),
        ("cgroup/bind4", new(ProgramType.CgroupSockAddr, CgroupInet4Bind, 0)),
        ("cgroup/bind6", new(ProgramType.CgroupSockAddr, CgroupInet6Bind, 0)),
        ("cgroup/connect4", new(ProgramType.CgroupSockAddr, CgroupInet4Connect, 0)),
        ("cgroup/connect6", new(ProgramType.CgroupSockAddr, CgroupInet6Connect, 0)),
        ("cgroup/sendmsg4", new(ProgramType.CgroupSockAddr, CgroupUdp4Sendmsg, 0)),
        ("cgroup/sendmsg6", new(ProgramType.CgroupSockAddr, CgroupUdp6Sendmsg, 0)),
        ("cgroup/recvmsg4", new(ProgramType.CgroupSockAddr, CgroupUdp4Recvmsg, 0)),
        ("cgroup/recvmsg6", new(ProgramType.CgroupSockAddr, CgroupUdp6Recvmsg, 0)),
        ("cgroup/getpeername4", new(ProgramType.CgroupSockAddr, CgroupInet4Getpeername, 0)),
        ("cgroup/getpeername6", new(ProgramType.CgroupSockAddr, CgroupInet6Getpeername, 0)),
        ("cgroup/getsockname4", new(ProgramType.CgroupSockAddr, CgroupInet4Getsockname, 0)),
        ("cgroup/getsockname6", new(ProgramType.CgroupSockAddr, CgroupInet6Getsockname, 0)),
        ("cgroup/sysctl", new(ProgramType.CgroupSysctl, CgroupSysctl, 0)),
        ("cgroup/getsockopt", new(ProgramType.CgroupSockopt, CgroupGetsockopt, 0)),
        ("cgroup/setsockopt", new(ProgramType.CgroupSockopt, CgroupSetsockopt, 0)),
        ("cgroup/dev", new(ProgramType.CgroupDevice, CgroupDevice, 0)),
        ("struct_ops.s+", new(ProgramType.StructOps, null, FlagSleepable)),
        ("struct_ops+", new(ProgramType.StructOps, null, 0)),
        ("sk_lookup", new(ProgramType.SkLookup, SkLookup, 0)),
    ];

    /// <summary>What the section name implies, or null when no convention matches (the program type is then Unspec).</summary>
    public static SectionDefinition? Find(string sectionName)
    {
        foreach (var (pattern, definition) in Table)
        {
            if (Matches(pattern, sectionName))
                return definition;
        }
        return null;
    }

    private static bool Matches(string pattern, string name)
    {
        if (!pattern.EndsWith('+'))
            return name == pattern;
        var prefix = pattern.AsSpan(0, pattern.Length - 1);
        return name.AsSpan().StartsWith(prefix, StringComparison.Ordinal)
            && (name.Length == prefix.Length || name[prefix.Length] == '/');
    }
}
