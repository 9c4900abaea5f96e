using System.Collections.Frozen;
using A = SharpBpf.Platform.ArgumentKind;
using R = SharpBpf.Platform.ReturnKind;

namespace SharpBpf.Platform;

/// <summary>
/// What a program type may do: the helpers it may call (with their prototypes), the context it gets in r1, and what
/// its return value must be. This is the one contract the verifier and the VM share: the verifier checks calls and
/// context accesses against it, the VM refuses helpers that are not in it.
/// <para>
/// The helper sets follow the kernel's <c>*_func_proto</c> functions for a privileged (root) loader: the program
/// type's own helpers, then the networking base set, then the general base set. Prototypes follow the kernel's
/// <c>struct bpf_func_proto</c> definitions.
/// </para>
/// <example><code>
/// if (!PlatformTable.Xdp.TryGetHelper(HelperId.MapLookupElem, out var proto)) { /* refuse the call */ }
/// </code></example>
/// </summary>
public sealed class PlatformTable
{
    private readonly FrozenDictionary<HelperId, HelperPrototype> _helpers;

    private PlatformTable(ProgramType type, ContextLayout context, IEnumerable<HelperPrototype> helpers)
    {
        ProgramType = type;
        Context = context;
        _helpers = helpers.ToFrozenDictionary(h => h.Id);
    }

    public ProgramType ProgramType { get; }

    /// <summary>The struct r1 points to at entry.</summary>
    public ContextLayout Context { get; }

    /// <summary>Every helper this program type may call.</summary>
    public IEnumerable<HelperPrototype> Helpers => _helpers.Values.OrderBy(h => h.Id);

    /// <summary>
    /// The inclusive range r0 must be in at program exit, or null when the kernel does not check it. The kernel
    /// (6.x) checks no range for XDP, socket filters or tc: an XDP program returning 7 loads, and the frame is
    /// dropped with a warning at run time.
    /// </summary>
    public (long Min, long Max)? ReturnRange { get; private init; }

    /// <summary>Looks up a helper this program type may call.</summary>
    public bool TryGetHelper(HelperId id, out HelperPrototype prototype)
    {
        if (_helpers.TryGetValue(id, out var found))
        {
            prototype = found;
            return true;
        }
        prototype = null!;
        return false;
    }

    /// <summary>True when this program type may call the helper.</summary>
    public bool Allows(HelperId id) => _helpers.ContainsKey(id);

    /// <summary>The prototype of any known helper, whichever program type may call it.</summary>
    public static bool TryGetPrototype(HelperId id, out HelperPrototype prototype)
    {
        if (AllPrototypes.TryGetValue(id, out var found))
        {
            prototype = found;
            return true;
        }
        prototype = null!;
        return false;
    }

    /// <summary>The table for a program type, or null when SharpBpf does not model that type yet.</summary>
    public static PlatformTable? For(ProgramType type, uint? expectedAttachType = null) => type switch
    {
        ProgramType.Xdp when expectedAttachType == XdpDevmapAttachType => XdpDevmap,
        ProgramType.Xdp => Xdp,
        ProgramType.SocketFilter => SocketFilter,
        ProgramType.SchedCls => SchedCls,
        ProgramType.SchedAct => SchedAct,
        _ => null,
    };

    /// <summary>enum bpf_attach_type BPF_XDP_DEVMAP.</summary>
    public const uint XdpDevmapAttachType = 33;

    // ---- prototypes (struct bpf_func_proto) ----

    private static readonly HelperPrototype[] Prototypes =
    [
        new(HelperId.MapLookupElem, R.MapValueOrNull, A.ConstMapPointer, A.MapKey),
        new(HelperId.MapUpdateElem, R.Integer, A.ConstMapPointer, A.MapKey, A.MapValue, A.Anything),
        new(HelperId.MapDeleteElem, R.Integer, A.ConstMapPointer, A.MapKey),
        new(HelperId.MapPushElem, R.Integer, A.ConstMapPointer, A.MapValue, A.Anything),
        new(HelperId.MapPopElem, R.Integer, A.ConstMapPointer, A.UninitMapValue),
        new(HelperId.MapPeekElem, R.Integer, A.ConstMapPointer, A.UninitMapValue),
        new(HelperId.MapLookupPercpuElem, R.MapValueOrNull, A.ConstMapPointer, A.MapKey, A.Anything),
        new(HelperId.KtimeGetNs, R.Integer),
        new(HelperId.KtimeGetBootNs, R.Integer),
        new(HelperId.KtimeGetCoarseNs, R.Integer),
        new(HelperId.KtimeGetTaiNs, R.Integer),
        new(HelperId.Jiffies64, R.Integer),
        new(HelperId.GetPrandomU32, R.Integer),
        new(HelperId.GetSmpProcessorId, R.Integer),
        new(HelperId.GetNumaNodeId, R.Integer),
        // The kernel checks only the format (bpf_trace_printk_proto): r3-r5 are read as plain numbers, set or not.
        new(HelperId.TracePrintk, R.Integer, A.ReadableMemory, A.ConstSize) { GplOnly = true },
        new(HelperId.TraceVprintk, R.Integer, A.ReadableMemory, A.ConstSize, A.ReadableMemoryOrNull, A.ConstSizeOrZero) { GplOnly = true },
        new(HelperId.Snprintf, R.Integer, A.WritableMemory, A.ConstSizeOrZero, A.ConstString, A.ReadableMemoryOrNull, A.ConstSizeOrZero),
        new(HelperId.Strncmp, R.Integer, A.ReadableMemory, A.ConstSize, A.ConstString),
        new(HelperId.TailCall, R.Void, A.Context, A.ConstMapPointer, A.Anything),
        new(HelperId.RingbufOutput, R.Integer, A.ConstMapPointer, A.ReadableMemory, A.ConstSizeOrZero, A.Anything),
        new(HelperId.RingbufReserve, R.RingbufMemoryOrNull, A.ConstMapPointer, A.ConstAllocSizeOrZero, A.Anything),
        new(HelperId.RingbufSubmit, R.Void, A.RingbufMemoryRelease, A.Anything),
        new(HelperId.SpinLock, R.Void, A.SpinLock),
        new(HelperId.SpinUnlock, R.Void, A.SpinLock),
        new(HelperId.RingbufDiscard, R.Void, A.RingbufMemoryRelease, A.Anything),
        new(HelperId.RingbufQuery, R.Integer, A.ConstMapPointer, A.Anything),
        new(HelperId.ForEachMapElem, R.Integer, A.ConstMapPointer, A.Function, A.StackOrNull, A.Anything),
        new(HelperId.Loop, R.Integer, A.Anything, A.Function, A.StackOrNull, A.Anything),
        new(HelperId.ProbeReadKernel, R.Integer, A.WritableMemory, A.ConstSizeOrZero, A.Anything) { GplOnly = true },
        new(HelperId.ProbeReadKernelStr, R.Integer, A.WritableMemory, A.ConstSizeOrZero, A.Anything) { GplOnly = true },
        new(HelperId.PerfEventOutput, R.Integer, A.Context, A.ConstMapPointer, A.Anything, A.ReadableMemory, A.ConstSizeOrZero),
        new(HelperId.CsumDiff, R.Integer, A.ReadableMemoryOrNull, A.ConstSizeOrZero, A.ReadableMemoryOrNull, A.ConstSizeOrZero, A.Anything),
        new(HelperId.Redirect, R.Integer, A.Anything, A.Anything),
        new(HelperId.RedirectMap, R.Integer, A.ConstMapPointer, A.Anything, A.Anything),
        new(HelperId.XdpAdjustHead, R.Integer, A.Context, A.Anything) { ChangesPacketData = true },
        new(HelperId.XdpAdjustMeta, R.Integer, A.Context, A.Anything) { ChangesPacketData = true },
        new(HelperId.XdpAdjustTail, R.Integer, A.Context, A.Anything) { ChangesPacketData = true },
        new(HelperId.XdpGetBuffLen, R.Integer, A.Context),
        new(HelperId.XdpLoadBytes, R.Integer, A.Context, A.Anything, A.WritableMemory, A.ConstSize),
        new(HelperId.XdpStoreBytes, R.Integer, A.Context, A.Anything, A.ReadableMemory, A.ConstSize),
        new(HelperId.FibLookup, R.Integer, A.Context, A.Memory, A.ConstSize, A.Anything),
        new(HelperId.CheckMtu, R.Integer, A.Context, A.Anything, A.WritableFixedMemory, A.Anything, A.Anything)
        {
            FixedSizes = new Dictionary<int, int> { [2] = 4 },
        },
        // Task and tracing helpers the kernel (6.x) offers every program type in its base set.
        new(HelperId.GetCurrentPidTgid, R.Integer),
        new(HelperId.GetCurrentUidGid, R.Integer),
        new(HelperId.GetCurrentComm, R.Integer, A.WritableMemory, A.ConstSize),
        new(HelperId.GetCurrentTask, R.Integer),
        new(HelperId.GetCurrentCgroupId, R.Integer),
        new(HelperId.GetCurrentAncestorCgroupId, R.Integer, A.Anything),
        new(HelperId.SendSignal, R.Integer, A.Anything),
        new(HelperId.SendSignalThread, R.Integer, A.Anything),
        new(HelperId.ProbeReadUser, R.Integer, A.WritableMemory, A.ConstSizeOrZero, A.Anything) { GplOnly = true },
        new(HelperId.ProbeReadUserStr, R.Integer, A.WritableMemory, A.ConstSizeOrZero, A.Anything) { GplOnly = true },
        new(HelperId.CopyFromUser, R.Integer, A.WritableMemory, A.ConstSizeOrZero, A.Anything),
        new(HelperId.GetNsCurrentPidTgid, R.Integer, A.Anything, A.Anything, A.WritableMemory, A.ConstSize),
        // __sk_buff helpers (socket filter and tc).
        new(HelperId.SkbLoadBytes, R.Integer, A.Context, A.Anything, A.WritableMemory, A.ConstSize),
        new(HelperId.SkbLoadBytesRelative, R.Integer, A.Context, A.Anything, A.WritableMemory, A.ConstSize, A.Anything),
        new(HelperId.SkbStoreBytes, R.Integer, A.Context, A.Anything, A.ReadableMemory, A.ConstSize, A.Anything) { ChangesPacketData = true },
        new(HelperId.L3CsumReplace, R.Integer, A.Context, A.Anything, A.Anything, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.L4CsumReplace, R.Integer, A.Context, A.Anything, A.Anything, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.CloneRedirect, R.Integer, A.Context, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.GetCgroupClassid, R.Integer, A.Context),
        new(HelperId.GetRouteRealm, R.Integer, A.Context),
        new(HelperId.SkbVlanPush, R.Integer, A.Context, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.SkbVlanPop, R.Integer, A.Context) { ChangesPacketData = true },
        new(HelperId.SkbChangeProto, R.Integer, A.Context, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.SkbChangeType, R.Integer, A.Context, A.Anything),
        new(HelperId.SkbChangeTail, R.Integer, A.Context, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.SkbChangeHead, R.Integer, A.Context, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.SkbPullData, R.Integer, A.Context, A.Anything) { ChangesPacketData = true },
        new(HelperId.SkbAdjustRoom, R.Integer, A.Context, A.Anything, A.Anything, A.Anything) { ChangesPacketData = true },
        new(HelperId.CsumUpdate, R.Integer, A.Context, A.Anything),
        new(HelperId.CsumLevel, R.Integer, A.Context, A.Anything),
        new(HelperId.SetHashInvalid, R.Integer, A.Context),
        new(HelperId.SetHash, R.Integer, A.Context, A.Anything),
        new(HelperId.GetHashRecalc, R.Integer, A.Context),
        new(HelperId.GetSocketCookie, R.Integer, A.Context),
        new(HelperId.GetSocketUid, R.Integer, A.Context),
        new(HelperId.SkbEcnSetCe, R.Integer, A.Context),
        new(HelperId.SkbCgroupId, R.Integer, A.Context),
        new(HelperId.SkbCgroupClassid, R.Integer, A.Context),
        new(HelperId.SkbAncestorCgroupId, R.Integer, A.Context, A.Anything),
        new(HelperId.RedirectNeigh, R.Integer, A.Anything, A.ReadableMemoryOrNull, A.ConstSizeOrZero, A.Anything),
        new(HelperId.RedirectPeer, R.Integer, A.Anything, A.Anything),
        new(HelperId.SkbGetTunnelKey, R.Integer, A.Context, A.WritableMemory, A.ConstSize, A.Anything),
        new(HelperId.SkbSetTunnelKey, R.Integer, A.Context, A.ReadableMemory, A.ConstSize, A.Anything),
        new(HelperId.SkbGetTunnelOpt, R.Integer, A.Context, A.WritableMemory, A.ConstSize),
        new(HelperId.SkbSetTunnelOpt, R.Integer, A.Context, A.ReadableMemory, A.ConstSize),
        new(HelperId.SkbUnderCgroup, R.Integer, A.Context, A.ConstMapPointer, A.Anything),
        new(HelperId.SkbSetTstamp, R.Integer, A.Context, A.Anything, A.Anything),
    ];

    private static readonly FrozenDictionary<HelperId, HelperPrototype> AllPrototypes = Prototypes.ToFrozenDictionary(p => p.Id);

    private static IEnumerable<HelperPrototype> Select(params HelperId[] ids) => ids.Select(id => AllPrototypes[id]);

    /// <summary>bpf_base_func_proto for a privileged loader (CAP_BPF and CAP_PERFMON).</summary>
    private static readonly HelperId[] BaseHelpers =
    [
        HelperId.MapLookupElem, HelperId.MapUpdateElem, HelperId.MapDeleteElem, HelperId.MapPushElem,
        HelperId.MapPopElem, HelperId.MapPeekElem, HelperId.MapLookupPercpuElem, HelperId.GetPrandomU32,
        HelperId.GetSmpProcessorId, HelperId.GetNumaNodeId, HelperId.TailCall, HelperId.KtimeGetNs,
        HelperId.KtimeGetBootNs, HelperId.KtimeGetCoarseNs, HelperId.KtimeGetTaiNs, HelperId.Jiffies64,
        HelperId.RingbufOutput, HelperId.RingbufReserve, HelperId.RingbufSubmit, HelperId.RingbufDiscard,
        HelperId.SpinLock, HelperId.SpinUnlock,
        HelperId.RingbufQuery, HelperId.ForEachMapElem, HelperId.Loop, HelperId.Strncmp, HelperId.TracePrintk,
        HelperId.TraceVprintk, HelperId.Snprintf, HelperId.ProbeReadKernel, HelperId.ProbeReadKernelStr,
        HelperId.GetCurrentPidTgid, HelperId.GetCurrentUidGid, HelperId.GetCurrentComm, HelperId.GetCurrentTask,
        HelperId.GetCurrentCgroupId, HelperId.GetCurrentAncestorCgroupId, HelperId.SendSignal, HelperId.SendSignalThread,
        HelperId.ProbeReadUser, HelperId.ProbeReadUserStr, HelperId.CopyFromUser, HelperId.GetNsCurrentPidTgid,
    ];

    // What the kernel itself lets each program type call, measured on Linux 6.18 as root (a program calling each id
    // in turn; "unknown func" / "cannot use helper" in the log means refused). Helpers in these sets without a
    // prototype above are refused by SharpBpf's verifier with a "not modelled yet" message, never accepted blind.
    private static readonly int[] KernelXdp = [1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 17, 22, 23, 25, 28, 35, 37, 42, 44, 51, 54, 55, 65, 69, 80, 84, 85, 86, 87, 88, 89, 93, 94, 99, 100, 105, 106, 109, 110, 112, 113, 114, 115, 117, 118, 120, 123, 125, 130, 131, 132, 133, 134, 136, 137, 138, 139, 140, 141, 148, 149, 153, 154, 156, 157, 158, 160, 163, 164, 165, 169, 170, 171, 172, 175, 176, 177, 178, 180, 181, 182, 188, 189, 190, 191, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211];
    private static readonly int[] KernelSocketFilter = [1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 16, 17, 22, 25, 26, 35, 37, 42, 46, 47, 55, 68, 80, 87, 88, 89, 93, 94, 105, 106, 109, 112, 113, 114, 115, 117, 118, 120, 122, 123, 125, 130, 131, 132, 133, 134, 136, 137, 138, 139, 140, 141, 148, 149, 153, 154, 156, 157, 158, 160, 164, 165, 169, 170, 171, 172, 175, 176, 177, 178, 180, 181, 182, 191, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 208, 209, 210, 211];
    private static readonly int[] KernelTc = [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 29, 30, 31, 32, 33, 34, 35, 37, 38, 39, 40, 41, 42, 43, 46, 47, 48, 50, 55, 66, 68, 69, 79, 80, 83, 84, 85, 86, 87, 88, 89, 93, 94, 95, 96, 97, 98, 99, 100, 105, 106, 107, 108, 109, 110, 112, 113, 114, 115, 117, 118, 120, 122, 123, 124, 125, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 148, 149, 151, 152, 153, 154, 155, 156, 157, 158, 160, 163, 164, 165, 169, 170, 171, 172, 175, 176, 177, 178, 180, 181, 182, 191, 192, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211];

    private int[] _kernelAllowed = [];

    /// <summary>True when the Linux kernel (6.18, root) lets this program type call the helper, whether or not
    /// SharpBpf models its prototype (see <see cref="TryGetHelper"/> for the ones it does).</summary>
    public bool KernelAllows(HelperId id) => _kernelAllowed.Length > 0 ? Array.IndexOf(_kernelAllowed, (int)id) >= 0 : Allows(id);

    /// <summary>XDP (xdp_func_proto): its own helpers over the base set.</summary>
    public static PlatformTable Xdp { get; } = new(ProgramType.Xdp, ContextLayout.XdpMd, Select(
    [
        .. BaseHelpers,
        HelperId.PerfEventOutput, HelperId.CsumDiff, HelperId.XdpAdjustHead, HelperId.XdpAdjustMeta,
        HelperId.XdpAdjustTail, HelperId.Redirect, HelperId.RedirectMap, HelperId.XdpGetBuffLen,
        HelperId.XdpLoadBytes, HelperId.XdpStoreBytes, HelperId.FibLookup, HelperId.CheckMtu,
    ])) { _kernelAllowed = KernelXdp };

    /// <summary>XDP programs attached to a devmap entry: as <see cref="Xdp"/>, egress_ifindex readable.</summary>
    public static PlatformTable XdpDevmap { get; } = new(ProgramType.Xdp, ContextLayout.XdpMdDevmap, Xdp.Helpers) { _kernelAllowed = KernelXdp };

    /// <summary>Socket filters (sk_filter_func_proto): read-only packet access through skb_load_bytes.</summary>
    public static PlatformTable SocketFilter { get; } = new(ProgramType.SocketFilter, ContextLayout.SkBuffSocketFilter, Select(
    [
        .. BaseHelpers,
        HelperId.SkbLoadBytes, HelperId.SkbLoadBytesRelative, HelperId.GetSocketCookie, HelperId.GetSocketUid,
        HelperId.PerfEventOutput,
    ])) { _kernelAllowed = KernelSocketFilter };

    private static readonly HelperId[] TcHelpers =
    [
        .. BaseHelpers,
        HelperId.SkbStoreBytes, HelperId.SkbLoadBytes, HelperId.SkbLoadBytesRelative, HelperId.SkbPullData,
        HelperId.CsumDiff, HelperId.CsumUpdate, HelperId.CsumLevel, HelperId.L3CsumReplace, HelperId.L4CsumReplace,
        HelperId.CloneRedirect, HelperId.GetCgroupClassid, HelperId.SkbVlanPush, HelperId.SkbVlanPop,
        HelperId.SkbChangeProto, HelperId.SkbChangeType, HelperId.SkbAdjustRoom, HelperId.SkbChangeTail,
        HelperId.SkbChangeHead, HelperId.SkbGetTunnelKey, HelperId.SkbSetTunnelKey, HelperId.SkbGetTunnelOpt,
        HelperId.SkbSetTunnelOpt, HelperId.Redirect, HelperId.RedirectNeigh,
        HelperId.RedirectPeer, HelperId.GetRouteRealm, HelperId.GetHashRecalc, HelperId.SetHashInvalid,
        HelperId.SetHash, HelperId.PerfEventOutput, HelperId.GetSmpProcessorId, HelperId.SkbUnderCgroup,
        HelperId.GetSocketCookie, HelperId.GetSocketUid, HelperId.FibLookup, HelperId.SkbEcnSetCe,
        HelperId.SkbCgroupId, HelperId.SkbCgroupClassid, HelperId.SkbAncestorCgroupId, HelperId.CheckMtu,
        HelperId.SkbSetTstamp,
    ];

    /// <summary>tc classifiers (tc_cls_act_func_proto).</summary>
    public static PlatformTable SchedCls { get; } = new(ProgramType.SchedCls, ContextLayout.SkBuffTc, Select(TcHelpers.Distinct().ToArray())) { _kernelAllowed = KernelTc };

    /// <summary>tc actions: the same helpers and context as classifiers.</summary>
    public static PlatformTable SchedAct { get; } = new(ProgramType.SchedAct, ContextLayout.SkBuffTc, SchedCls.Helpers) { _kernelAllowed = KernelTc };
}
