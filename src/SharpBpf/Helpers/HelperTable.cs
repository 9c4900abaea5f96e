using System.Reflection;
using SharpBpf.Platform;
using SharpBpf.Vm;

namespace SharpBpf.Helpers;

/// <summary>
/// One helper as the engines call it. Every helper is a static method
/// <c>ulong Name(VmExecution e, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)</c>: the interpreter calls it
/// through <see cref="Function"/>, a JIT can emit a direct call to <see cref="Method"/>.
/// </summary>
public sealed unsafe class HelperDescriptor
{
    internal HelperDescriptor(int id, string name, delegate*<VmExecution, ulong, ulong, ulong, ulong, ulong, ulong> function, MethodInfo method)
    {
        Id = id;
        Name = name;
        Function = function;
        Method = method;
    }

    /// <summary>The kernel's helper id.</summary>
    public int Id { get; }

    /// <summary>The kernel's name, e.g. "bpf_map_lookup_elem".</summary>
    public string Name { get; }

    public delegate*<VmExecution, ulong, ulong, ulong, ulong, ulong, ulong> Function { get; }

    /// <summary>The static method that implements the helper.</summary>
    public MethodInfo Method { get; }
}

/// <summary>
/// The helpers a kind of program may call, by kernel id. A program that calls any other helper is refused at load
/// with a message naming the helper. (Until the platform's prototype table lands this table is the VM's own list.)
/// </summary>
public sealed unsafe class HelperTable
{
    /// <summary>Helper ids are below this bound.</summary>
    public const int Capacity = 256;

    private readonly HelperDescriptor?[] _byId = new HelperDescriptor?[Capacity];
    private readonly nint* _functions;

    private readonly PlatformTable? _platform;

    private HelperTable(string programKind, PlatformTable? platform, IEnumerable<(HelperId Id, string Method)> entries, IEnumerable<(int Id, string Name, string Method)>? extra = null)
    {
        ProgramKind = programKind;
        _platform = platform;
        _functions = (nint*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(Capacity, (nuint)sizeof(nint));
        foreach (var (id, method) in entries)
        {
            // The platform table (shared with the verifier) says what the program type may call.
            if (platform is null || platform.Allows(id))
                Add((int)id, KernelName(id), method);
        }
        if (extra is not null)
        {
            foreach (var (id, name, method) in extra)
                Add(id, name, method);
        }
    }

    private void Add(int id, string name, string methodName)
    {
        var method = typeof(VmHelpers).GetMethod(methodName, BindingFlags.Public | BindingFlags.Static)
            ?? throw new System.Diagnostics.UnreachableException($"helper method {methodName} is missing");
        var pointer = method.MethodHandle.GetFunctionPointer();
        _byId[id] = new HelperDescriptor(id, name, (delegate*<VmExecution, ulong, ulong, ulong, ulong, ulong, ulong>)pointer, method);
        _functions[id] = pointer;
    }

    /// <summary>"xdp", "conformance"...: used in refusals.</summary>
    public string ProgramKind { get; }

    /// <summary>Function pointers by helper id (0 where the helper is not allowed); lives as long as the process.</summary>
    internal nint* Functions => _functions;

    public bool TryGet(int id, out HelperDescriptor helper)
    {
        helper = (uint)id < Capacity ? _byId[id]! : null!;
        return helper is not null;
    }

    public IEnumerable<HelperDescriptor> All => _byId.Where(h => h is not null)!;

    /// <summary>Why a call to helper <paramref name="id"/> is refused.</summary>
    public string DescribeRefusal(int id)
    {
        if (!Enum.IsDefined((HelperId)id))
            return $"unknown helper id {id}";
        var name = KernelName((HelperId)id);
        if (_platform is not null && !_platform.Allows((HelperId)id))
            return $"{ProgramKind} programs may not call helper {name} (id {id})";
        return $"helper {name} (id {id}) is not available to {ProgramKind} programs in the managed VM";
    }

    /// <summary>bpf_ plus the kernel's snake_case name.</summary>
    public static string KernelName(HelperId id)
    {
        var name = id.ToString();
        var sb = new System.Text.StringBuilder("bpf");
        foreach (var c in name)
        {
            if (char.IsUpper(c))
                sb.Append('_').Append(char.ToLowerInvariant(c));
            else
                sb.Append(c);
        }
        return sb.ToString();
    }

    private static readonly (HelperId, string)[] s_common =
    [
        (HelperId.MapLookupElem, nameof(VmHelpers.MapLookupElem)),
        (HelperId.MapUpdateElem, nameof(VmHelpers.MapUpdateElem)),
        (HelperId.MapDeleteElem, nameof(VmHelpers.MapDeleteElem)),
        (HelperId.MapPushElem, nameof(VmHelpers.MapPushElem)),
        (HelperId.MapPopElem, nameof(VmHelpers.MapPopElem)),
        (HelperId.MapPeekElem, nameof(VmHelpers.MapPeekElem)),
        (HelperId.KtimeGetNs, nameof(VmHelpers.KtimeGetNs)),
        (HelperId.KtimeGetBootNs, nameof(VmHelpers.KtimeGetBootNs)),
        (HelperId.KtimeGetCoarseNs, nameof(VmHelpers.KtimeGetNs)),
        (HelperId.KtimeGetTaiNs, nameof(VmHelpers.KtimeGetTaiNs)),
        (HelperId.Jiffies64, nameof(VmHelpers.Jiffies64)),
        (HelperId.GetNumaNodeId, nameof(VmHelpers.GetNumaNodeId)),
        (HelperId.MapLookupPercpuElem, nameof(VmHelpers.MapLookupPercpuElem)),
        (HelperId.Strncmp, nameof(VmHelpers.Strncmp)),
        (HelperId.ProbeReadKernel, nameof(VmHelpers.ProbeReadKernel)),
        (HelperId.ProbeReadKernelStr, nameof(VmHelpers.ProbeReadKernelStr)),
        (HelperId.GetPrandomU32, nameof(VmHelpers.GetPrandomU32)),
        (HelperId.GetSmpProcessorId, nameof(VmHelpers.GetSmpProcessorId)),
        (HelperId.TracePrintk, nameof(VmHelpers.TracePrintk)),
        (HelperId.TailCall, nameof(VmHelpers.TailCallUnsupported)),
        (HelperId.Loop, nameof(VmHelpers.Loop)),
        (HelperId.ForEachMapElem, nameof(VmHelpers.ForEachMapElem)),
        (HelperId.CsumDiff, nameof(VmHelpers.CsumDiff)),
        (HelperId.RingbufOutput, nameof(VmHelpers.RingbufOutput)),
        (HelperId.RingbufReserve, nameof(VmHelpers.RingbufReserve)),
        (HelperId.RingbufSubmit, nameof(VmHelpers.RingbufSubmit)),
        (HelperId.RingbufDiscard, nameof(VmHelpers.RingbufDiscard)),
        (HelperId.RingbufQuery, nameof(VmHelpers.RingbufQuery)),
        (HelperId.SpinLock, nameof(VmHelpers.SpinLock)),
        (HelperId.SpinUnlock, nameof(VmHelpers.SpinUnlock)),
    ];

    private static readonly (HelperId, string)[] s_xdp =
    [
        (HelperId.Redirect, nameof(VmHelpers.Redirect)),
        (HelperId.RedirectMap, nameof(VmHelpers.RedirectMap)),
        (HelperId.XdpAdjustHead, nameof(VmHelpers.XdpAdjustHead)),
        (HelperId.XdpAdjustMeta, nameof(VmHelpers.XdpAdjustMeta)),
        (HelperId.XdpAdjustTail, nameof(VmHelpers.XdpAdjustTail)),
        (HelperId.XdpLoadBytes, nameof(VmHelpers.XdpLoadBytes)),
        (HelperId.XdpStoreBytes, nameof(VmHelpers.XdpStoreBytes)),
        (HelperId.XdpGetBuffLen, nameof(VmHelpers.XdpGetBuffLen)),
        (HelperId.PerfEventOutput, nameof(VmHelpers.PerfEventOutput)),
        (HelperId.FibLookup, nameof(VmHelpers.FibLookup)),
        (HelperId.CheckMtu, nameof(VmHelpers.CheckMtu)),
    ];

    /// <summary>Helpers XDP programs may call in the managed VM.</summary>
    public static HelperTable Xdp { get; } = new("xdp", PlatformTable.Xdp, s_common.Concat(s_xdp));

    /// <summary>Programs with no context of a known type (raw instruction runs): the helpers that need no context.</summary>
    public static HelperTable Generic { get; } = new("generic", null, s_common);

    /// <summary>
    /// bpf_conformance runs: helper 5 is the suite's test helper (uBPF's "unwind"-style helper that returns its
    /// first argument), used by the call and callx tests.
    /// </summary>
    public static HelperTable Conformance { get; } = new("conformance", null, [], [(5, "conformance_test_helper", nameof(VmHelpers.ConformanceTestHelper))]);

    public static HelperTable For(ProgramType type) => type == ProgramType.Xdp ? Xdp : Generic;
}
