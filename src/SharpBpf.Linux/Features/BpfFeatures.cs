using System.Collections.Concurrent;
using System.Text;
using SharpBpf.Asm;
using SharpBpf.Linux.Interop;
using SharpBpf.Platform;

namespace SharpBpf.Linux.Features;

/// <summary>
/// Asks the running kernel what it supports, by trying the smallest thing that needs each feature (as libbpf and
/// cilium/ebpf do). Every answer is cached for the life of the process.
/// </summary>
public static unsafe class BpfFeatures
{
    private static readonly Bpf s_bpf = Bpf.Default;
    private static readonly ConcurrentDictionary<string, FeatureStatus> s_cache = new();
    private static readonly Lazy<string?> s_unavailable = new(ProbeAvailability);

    /// <summary>
    /// Null when this process can use BPF; otherwise one sentence saying why not (not root, bpf(2) missing...),
    /// fit to show a user as is.
    /// </summary>
    public static string? Unavailable => s_unavailable.Value;

    /// <summary>Throws <see cref="BpfNotSupportedException"/> with <see cref="Unavailable"/> when BPF cannot be used here.</summary>
    public static void RequireBpf()
    {
        if (Unavailable is { } why)
            throw new BpfNotSupportedException("BPF", detail: why);
    }

    /// <summary>The running kernel's version (from uname), e.g. 6.18.</summary>
    public static Version KernelVersion => Environment.OSVersion.Version;

    private static string? ProbeAvailability()
    {
        if (!OperatingSystem.IsLinux())
            return "BPF needs Linux; this is " + System.Runtime.InteropServices.RuntimeInformation.OSDescription + ".";
        if (LibC.NR_bpf < 0)
            return "BPF is not available: SharpBpf does not know the bpf(2) syscall number on this CPU architecture.";
        var attr = new MapCreateAttr { MapType = (uint)MapType.Array, KeySize = 4, ValueSize = 4, MaxEntries = 1 };
        int r = s_bpf.Syscalls.Bpf(BpfCommand.BPF_MAP_CREATE, &attr, (uint)sizeof(MapCreateAttr));
        if (r >= 0)
        {
            s_bpf.Syscalls.Close(r);
            return null;
        }
        return -r switch
        {
            Errno.EPERM or Errno.EACCES =>
                "BPF is not available to this process: run it as root (or with CAP_BPF and CAP_NET_ADMIN).",
            Errno.ENOSYS => "BPF is not available: this kernel was built without the bpf(2) system call.",
            _ => $"BPF is not available: the kernel refused to create a test map ({Errno.Name(-r)}: {Errno.Describe(-r)}).",
        };
    }

    // ---- program types ----

    public static FeatureStatus Probe(ProgramType type) => s_cache.GetOrAdd($"prog:{type}", _ => ProbeProgramType(type));

    public static void Require(ProgramType type) => Require(Probe(type));

    private static FeatureStatus ProbeProgramType(ProgramType type)
    {
        var since = KernelVersions.Of(type);
        var (result, log) = LoadProbe(type, [Mov0(), Exit()], withLog: NeedsAttachTarget(type));
        CloseIfFd(result);
        if (result >= 0)
            return new("program type", type.ToString(), true, since);
        if (NeedsAttachTarget(type))
        {
            // These types cannot load without an attach target; a kernel that knows the type gets as far as
            // checking it and says so in the log, one that does not refuses before writing anything.
            bool known = log.Length > 0;
            return new("program type", type.ToString(), known, since, known ? null : "the kernel refused the type before verifying");
        }
        return new("program type", type.ToString(), false, since, Errno.Name(-result));
    }

    private static bool NeedsAttachTarget(ProgramType type) =>
        type is Platform.ProgramType.Tracing or Platform.ProgramType.Ext or Platform.ProgramType.Lsm or Platform.ProgramType.StructOps;

    // ---- map types ----

    public static FeatureStatus Probe(MapType type) => s_cache.GetOrAdd($"map:{type}", _ => ProbeMapType(type));

    public static void Require(MapType type) => Require(Probe(type));

    private static FeatureStatus ProbeMapType(MapType type)
    {
        var since = KernelVersions.Of(type);
        var attr = new MapCreateAttr { MapType = (uint)type, KeySize = 4, ValueSize = 4, MaxEntries = 1 };
        BpfFd? inner = null;
        switch (type)
        {
            case Platform.MapType.LpmTrie:
                attr.KeySize = 8; attr.ValueSize = 8; attr.MapFlags = BpfConstants.BPF_F_NO_PREALLOC;
                break;
            case Platform.MapType.Queue or Platform.MapType.Stack:
                attr.KeySize = 0;
                break;
            case Platform.MapType.BloomFilter:
                attr.KeySize = 0;
                break;
            case Platform.MapType.Ringbuf or Platform.MapType.UserRingbuf:
                attr.KeySize = 0; attr.ValueSize = 0; attr.MaxEntries = (uint)Environment.SystemPageSize;
                break;
            case Platform.MapType.CgroupStorage or Platform.MapType.PercpuCgroupStorage:
                attr.KeySize = 16; attr.MaxEntries = 0; // struct bpf_cgroup_storage_key (u64 + u32, padded)
                break;
            case Platform.MapType.StackTrace:
                attr.ValueSize = 8;
                break;
            case Platform.MapType.Xskmap or Platform.MapType.Sockmap or Platform.MapType.Sockhash or Platform.MapType.ReuseportSockarray:
                break;
            case Platform.MapType.ArrayOfMaps or Platform.MapType.HashOfMaps:
                var innerAttr = new MapCreateAttr { MapType = (uint)Platform.MapType.Array, KeySize = 4, ValueSize = 4, MaxEntries = 1 };
                if (s_bpf.Try(BpfCommand.BPF_MAP_CREATE, ref innerAttr) is var fd and >= 0)
                    inner = s_bpf.Adopt(fd);
                attr.InnerMapFd = inner is null ? 0 : (uint)inner.Value;
                break;
            case Platform.MapType.SkStorage or Platform.MapType.InodeStorage or Platform.MapType.TaskStorage or Platform.MapType.StructOps:
                return new("map type", type.ToString(), KernelVersion >= ParseVersion(since), since, "needs BTF to probe; judged by kernel version");
        }
        try
        {
            int r = s_bpf.Try(BpfCommand.BPF_MAP_CREATE, ref attr);
            if (r >= 0)
            {
                s_bpf.Syscalls.Close(r);
                return new("map type", type.ToString(), true, since);
            }
            return new("map type", type.ToString(), false, since, Errno.Name(-r));
        }
        finally
        {
            inner?.Dispose();
        }
    }

    // ---- helpers ----

    /// <summary>Whether programs of <paramref name="type"/> may call <paramref name="helper"/>.</summary>
    public static FeatureStatus Probe(ProgramType type, HelperId helper) =>
        s_cache.GetOrAdd($"helper:{type}:{helper}", _ => ProbeHelper(type, helper));

    public static void Require(ProgramType type, HelperId helper) => Require(Probe(type, helper));

    private static FeatureStatus ProbeHelper(ProgramType type, HelperId helper)
    {
        string name = $"{helper} for {type}";
        var call = new Instruction(new OpCode(0x85), 0, 0, 0, (int)helper);
        var (result, log) = LoadProbe(type, [call, Mov0(), Exit()], withLog: true);
        CloseIfFd(result);
        if (result >= 0)
            return new("helper", name, true, null);
        // The verifier checks the helper before its arguments: "invalid func" (the kernel does not know it),
        // "unknown func" or "cannot use helper" (not allowed for this program type, older and newer wording) mean
        // no; any later complaint means the call itself passed.
        bool refused = log.Contains("invalid func ", StringComparison.Ordinal) || log.Contains("unknown func ", StringComparison.Ordinal)
            || log.Contains("cannot use helper", StringComparison.Ordinal);
        if (log.Length == 0)
            return new("helper", name, null, null, $"the program type could not be loaded ({Errno.Name(-result)})");
        return new("helper", name, !refused, null);
    }

    // ---- links ----

    /// <summary>Whether XDP programs can be attached with a bpf_link (BPF_LINK_CREATE with BPF_XDP).</summary>
    public static FeatureStatus XdpLink => s_cache.GetOrAdd("link:xdp", _ => ProbeXdpLink());

    private static FeatureStatus ProbeXdpLink()
    {
        const string name = "bpf_link for XDP";
        var (fd, _) = LoadProbe(Platform.ProgramType.Xdp, [Mov(2), Exit()], withLog: false);
        if (fd < 0)
            return new("link", name, false, KernelVersions.BpfLinkXdp, "XDP programs cannot be loaded");
        using var program = s_bpf.Adopt(fd);
        // As libxdp does: link the program to the loopback device (ifindex 1) and close the link at once, which
        // detaches it. EBUSY/EEXIST mean another program owns lo's hook, so the command itself is known.
        var attr = new LinkCreateAttr { ProgFd = (uint)program.Value, TargetIfIndex = 1, AttachType = BpfConstants.BPF_XDP };
        int r = s_bpf.Try(BpfCommand.BPF_LINK_CREATE, ref attr);
        if (r >= 0)
        {
            s_bpf.Syscalls.Close(r);
            return new("link", name, true, KernelVersions.BpfLinkXdp);
        }
        if (r is -Errno.EBUSY or -Errno.EEXIST)
            return new("link", name, true, KernelVersions.BpfLinkXdp, "lo's XDP hook is in use; the command is known");
        return new("link", name, false, KernelVersions.BpfLinkXdp, Errno.Name(-r));
    }

    // ---- BTF ----

    /// <summary>Whether the kernel accepts BTF at all (BPF_BTF_LOAD).</summary>
    public static FeatureStatus Btf => s_cache.GetOrAdd("btf", _ => ProbeBtf("BTF", "4.18", BtfProbes.Basic));

    /// <summary>BTF kinds newer than BTF itself, each probed by loading a blob that uses it.</summary>
    public static IReadOnlyList<FeatureStatus> BtfKinds => s_btfKinds ??=
        [.. BtfProbes.All.Select(p => s_cache.GetOrAdd($"btf:{p.Kind}", _ => ProbeBtf(p.Kind, p.Since, p.Blob)))];

    // Probed once per process, like every feature; kept as a list so that each load's BTF sanitising only reads it.
    private static FeatureStatus[]? s_btfKinds;

    /// <summary>Whether the kernel knows a BTF kind by the names <see cref="BtfKinds"/> uses ("FLOAT", "ENUM64"...).</summary>
    public static bool HasBtfKind(string kind)
    {
        foreach (var k in BtfKinds)
        {
            if (k.Name.Contains(kind, StringComparison.Ordinal))
                return k.Supported == true;
        }
        return false;
    }

    private static FeatureStatus ProbeBtf(string kind, string since, byte[] blob)
    {
        fixed (byte* p = blob)
        {
            var attr = new BtfLoadAttr { Btf = (ulong)p, BtfSize = (uint)blob.Length };
            int r = s_bpf.TryBtfLoad(ref attr);
            if (r >= 0)
            {
                s_bpf.Syscalls.Close(r);
                return new("btf kind", kind, true, since);
            }
            return new("btf kind", kind, false, since, Errno.Name(-r));
        }
    }

    // ---- all of it ----

    /// <summary>Every probe, for `sharpbpf features`.</summary>
    public static List<FeatureStatus> All()
    {
        var result = new List<FeatureStatus>();
        foreach (var t in Enum.GetValues<ProgramType>().Where(t => t != Platform.ProgramType.Unspec))
            result.Add(Probe(t));
        foreach (var t in Enum.GetValues<MapType>().Where(t => t != Platform.MapType.Unspec))
            result.Add(Probe(t));
        result.Add(XdpLink);
        result.Add(Btf);
        result.AddRange(BtfKinds);
        foreach (var h in s_xdpHelpers)
            result.Add(Probe(Platform.ProgramType.Xdp, h));
        return result;
    }

    // The helpers XDP programs commonly use, listed by `sharpbpf features`.
    private static readonly HelperId[] s_xdpHelpers =
    [
        HelperId.MapLookupElem, HelperId.MapUpdateElem, HelperId.MapDeleteElem, HelperId.KtimeGetNs,
        HelperId.TracePrintk, HelperId.Redirect, HelperId.XdpAdjustHead, HelperId.RedirectMap,
    ];

    private static void Require(FeatureStatus status)
    {
        if (status.Supported == false)
            throw new BpfNotSupportedException(status.Category + " " + status.Name, status.SinceKernel, status.Detail);
    }

    // ---- probe plumbing ----

    private static Instruction Mov0() => Mov(0);
    private static Instruction Mov(int value) => new(new OpCode(0xb7), Register.R0, 0, 0, value);
    private static Instruction Exit() => new(new OpCode(0x95), 0, 0, 0, 0);

    /// <summary>Loads a probe program; returns the fd (the caller closes it) or -errno, and the log when asked.</summary>
    private static (int Result, string Log) LoadProbe(ProgramType type, List<Instruction> instructions, bool withLog)
    {
        var code = InstructionCodec.Encode(instructions);
        var license = "GPL\0"u8.ToArray();
        var log = withLog ? new byte[64 * 1024] : null;
        fixed (byte* insns = code)
        fixed (byte* lic = license)
        fixed (byte* logBuf = log)
        {
            var attr = new ProgLoadAttr
            {
                ProgType = (uint)type,
                InsnCnt = (uint)instructions.Count,
                Insns = (ulong)insns,
                License = (ulong)lic,
                LogBuf = (ulong)logBuf,
                LogSize = (uint)(log?.Length ?? 0),
                LogLevel = log is null ? 0u : 1u,
            };
            if (type == Platform.ProgramType.Kprobe)
                attr.KernVersion = KernelVersionCode();
            if (NeedsAttachTarget(type))
                attr.AttachBtfId = 1;
            int r = s_bpf.TryProgLoad(ref attr);
            string text = "";
            if (log is not null)
            {
                int end = Array.IndexOf(log, (byte)0);
                text = Encoding.UTF8.GetString(log, 0, end < 0 ? log.Length : end);
            }
            return (r, text);
        }
    }

    private static void CloseIfFd(int result)
    {
        if (result >= 0)
            s_bpf.Syscalls.Close(result);
    }

    private static uint KernelVersionCode()
    {
        var v = KernelVersion;
        return (uint)((v.Major << 16) | (v.Minor << 8) | Math.Min(255, Math.Max(0, v.Build)));
    }

    private static Version ParseVersion(string? text) => text is null ? new Version(0, 0) : Version.Parse(text);
}
