using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SharpBpf.Maps;
using SharpBpf.Xdp;

namespace SharpBpf.Vm;

/// <summary>
/// The state of runs on one thread: the BPF stack, the memory regions the running program may touch, the
/// instruction budget, and what helpers produced (trace_printk lines, redirect decisions). Reused from run to run
/// so a run allocates nothing. Not thread-safe: one execution per thread.
/// <para>Memory model (see docs/vm.md): programs see real native addresses. The stack is one unmanaged block of
/// <see cref="VmOptions.MaxCallDepth"/> frames of 512 bytes; frame k has r10 = top - k*512. The packet, the XDP
/// context and map values are unmanaged too. In checked mode every access must fall inside one of:</para>
/// <code>
///   [StackLow, StackTop)        the current frame and its callers' frames (read/write)
///   [PacketLow, PacketLow+Span) the packet from data_meta to data_end        (read/write)
///   ctx                         the xdp_md fields, 4-byte loads only          (read)
///   regions[]                   global data (static), map values returned by lookups in this run,
///                               ring buffer records reserved in this run, conformance memory
/// </code>
/// </summary>
public sealed unsafe class VmExecution : IDisposable
{
    public const int FrameSize = 512;

    private readonly byte* _stack;
    private readonly int _stackBytes;
    private ulong[] _regionStart = new ulong[16];
    private ulong[] _regionEnd = new ulong[16];
    private bool[] _regionWritable = new bool[16];
    private int _regionCount;
    private int _staticRegionCount;
    private object? _staticRegionOwner;
    private ulong _randomState;
    private bool _disposed;

    public VmExecution(VmOptions? options = null)
    {
        Options = options ?? VmOptions.Default;
        _stackBytes = FrameSize * Math.Max(1, Options.MaxCallDepth);
        _stack = (byte*)NativeMemory.AlignedAlloc((nuint)_stackBytes, 64);
        NativeMemory.Clear(_stack, (nuint)_stackBytes);
        StackTop = (ulong)_stack + (ulong)_stackBytes;
        StackLow = StackTop - FrameSize;
        _randomState = (ulong)Random.Shared.NextInt64() | 1;
        Frames = new CallFrame[Math.Max(1, Options.MaxCallDepth)];
        MaxCallDepth = Options.MaxCallDepth;
    }

    public VmOptions Options { get; }

    // ---- hot state, read by the engines ------------------------------------------------------------------------
    internal ulong StackTop;
    internal ulong StackLow;
    internal ulong PacketLow;
    internal ulong PacketSpan;
    internal ulong CtxLow;
    /// <summary>Bytes of the xdp_md block at <see cref="CtxLow"/> (0 when the run has no XDP context): a context load
    /// is <c>address - CtxLow &lt; CtxSpan</c>.</summary>
    internal ulong CtxSpan;
    /// <summary>What 4-byte loads of xdp_md->data, data_end and data_meta return: the full pointers, kept current by
    /// <see cref="RefreshPacket"/>.</summary>
    internal ulong CtxData, CtxDataEnd, CtxDataMeta;
    internal long Budget;
    internal int TailCalls;
    internal int CallDepth;
    /// <summary>Whether the running program's accesses are checked (its load options; false only for verified programs).</summary>
    internal bool CheckMemory = true;
    internal CallFrame[] Frames;
    /// <summary>Set (to 1) by the baseline tier's runtime calls when a helper or check threw: the native code returns at
    /// once and the caller rethrows <see cref="NativeException"/>.</summary>
    internal int NativePending;
    /// <summary><see cref="VmOptions.MaxCallDepth"/> of <see cref="Options"/>, where native code can read it.</summary>
    internal readonly int MaxCallDepth;
    internal System.Runtime.ExceptionServices.ExceptionDispatchInfo? NativeException;

    /// <summary>The program that is running (changes on a tail call).</summary>
    public VmProgram? Program { get; internal set; }

    /// <summary>Index of the instruction being executed; engines store it before calling a helper.</summary>
    public int CurrentInstruction { get; set; }

    /// <summary>The XDP frame of the current run, or null for other kinds of runs.</summary>
    public XdpContext? Xdp { get; private set; }

    /// <summary>Engine hook that runs a BPF function (bpf_loop and for_each_map_elem callbacks).</summary>
    internal IVmFunctionInvoker? Invoker { get; set; }

    /// <summary>Lines written by bpf_trace_printk during runs on this execution, oldest first.</summary>
    public List<string> Trace { get; } = [];

    /// <summary>Called with each bpf_trace_printk line as it is written (also kept in <see cref="Trace"/>).</summary>
    public Action<string>? TraceSink { get; set; }

    /// <summary>Where the last run asked the frame to go (bpf_redirect, bpf_redirect_map), or null.</summary>
    public XdpRedirect? Redirect { get; internal set; }

    private XdpRedirect? _lastRedirect;

    /// <summary>Records a redirect decision; the same decision as an earlier run reuses its (immutable) record, so a
    /// program that redirects every frame the same way allocates nothing per run.</summary>
    internal void SetRedirect(XdpRedirectKind kind, uint index, string? mapName, ulong flags)
    {
        var last = _lastRedirect;
        if (last is null || last.Kind != kind || last.Index != index || last.Flags != flags || !ReferenceEquals(last.MapName, mapName))
            _lastRedirect = last = new XdpRedirect(kind, index, mapName, flags);
        Redirect = last;
    }

    /// <summary>The CPU that bpf_get_smp_processor_id reports and per-CPU maps use.</summary>
    public int Cpu { get => CpuIndex; set => CpuIndex = value; }

    /// <summary><see cref="Cpu"/>, as a field native code can read.</summary>
    internal int CpuIndex;

    /// <summary>Sets up the state for a new run of <paramref name="program"/>.</summary>
    internal void BeginRun(VmProgram program, XdpContext? xdp, ulong data = 0, ulong dataLength = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Reference fields are compared before they are stored: a store is a GC write barrier, and a program usually
        // runs again on the same execution and frame.
        if (!ReferenceEquals(Program, program))
            Program = program;
        CheckMemory = program.CheckMemory;
        if (!ReferenceEquals(Xdp, xdp))
            Xdp = xdp;
        if (CallDepth != 0)
            ClearFrames();
        StackLow = StackTop - FrameSize;
        Budget = Options.InstructionBudget;
        TailCalls = 0;
        if (Redirect is not null)
            Redirect = null;
        CurrentInstruction = 0;
        SetStaticRegions(program.Collection);
        _regionCount = _staticRegionCount;
        if (xdp is not null)
        {
            CtxLow = (ulong)xdp.MetadataBlock;
            CtxSpan = XdpContext.MetadataSize;
            RefreshPacket();
        }
        else
        {
            // A plain memory block (conformance runs) takes the packet's fast-check slot.
            CtxLow = 0;
            CtxSpan = 0;
            PacketLow = data;
            PacketSpan = dataLength;
        }
    }

    /// <summary>Drops the frames a trapped run left behind (a run that ends normally leaves none).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ClearFrames()
    {
        Array.Clear(Frames);
        CallDepth = 0;
    }

    internal void SwitchProgram(VmProgram program)
    {
        Program = program;
        SetStaticRegions(program.Collection);
    }

    private void SetStaticRegions(VmCollection? owner)
    {
        if (ReferenceEquals(owner, _staticRegionOwner))
            return;
        _staticRegionOwner = owner;
        _regionCount = 0;
        if (owner is not null)
        {
            foreach (var r in owner.StaticRegions)
                AddRegionCore(r.Start, r.Length, r.Writable);
        }
        _staticRegionCount = _regionCount;
    }

    /// <summary>Re-reads the packet bounds after a helper moved data, data_end or data_meta.</summary>
    internal void RefreshPacket()
    {
        var xdp = Xdp!;
        CtxData = (ulong)xdp.Data;
        CtxDataEnd = (ulong)xdp.DataEnd;
        CtxDataMeta = (ulong)xdp.DataMeta;
        PacketLow = CtxDataMeta;
        PacketSpan = CtxDataEnd - CtxDataMeta;
    }

    // ---- regions ---------------------------------------------------------------------------------------------------

    /// <summary>Lets the running program touch [start, start+length) until the run ends (map values, ring buffer records).</summary>
    public void AddRegion(ulong start, ulong length, bool writable) => AddRegionIfNew(start, length, writable);

    /// <summary><see cref="AddRegion"/>; false when the run already had exactly this region (it may become writable).</summary>
    internal bool AddRegionIfNew(ulong start, ulong length, bool writable)
    {
        for (int i = _regionCount - 1; i >= _staticRegionCount; i--)
        {
            if (_regionStart[i] == start && _regionEnd[i] == start + length)
            {
                _regionWritable[i] |= writable;
                return false;
            }
        }
        AddRegionCore(start, length, writable);
        return true;
    }

    // ---- bpf_for_each_map_elem visitors, one per nesting depth --------------------------------------------------

    private ForEachVisitor[] _forEachVisitors = [];
    private int _forEachDepth;

    internal ForEachVisitor RentForEachVisitor()
    {
        if (_forEachDepth == _forEachVisitors.Length)
        {
            Array.Resize(ref _forEachVisitors, _forEachDepth + 1);
            _forEachVisitors[_forEachDepth] = new ForEachVisitor();
        }
        return _forEachVisitors[_forEachDepth++];
    }

    internal void ReturnForEachVisitor() => _forEachDepth--;

    /// <summary>Withdraws a region added in this run (a ring buffer record once submitted or discarded).</summary>
    public void RemoveRegion(ulong start)
    {
        for (int i = _staticRegionCount; i < _regionCount; i++)
        {
            if (_regionStart[i] == start)
            {
                _regionCount--;
                _regionStart[i] = _regionStart[_regionCount];
                _regionEnd[i] = _regionEnd[_regionCount];
                _regionWritable[i] = _regionWritable[_regionCount];
                return;
            }
        }
    }

    private void AddRegionCore(ulong start, ulong length, bool writable)
    {
        if (_regionCount == _regionStart.Length)
        {
            Array.Resize(ref _regionStart, _regionCount * 2);
            Array.Resize(ref _regionEnd, _regionCount * 2);
            Array.Resize(ref _regionWritable, _regionCount * 2);
        }
        _regionStart[_regionCount] = start;
        _regionEnd[_regionCount] = start + length;
        _regionWritable[_regionCount] = writable;
        _regionCount++;
    }

    /// <summary>True when [address, address+size) lies in the stack or the packet: the checks engines inline.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool InFastRegion(ulong address, uint size)
    {
        ulong o = address - StackLow;
        if (o <= (StackTop - StackLow) - size)
            return true;
        o = address - PacketLow;
        return o < PacketSpan && PacketSpan - o >= size;
    }

    /// <summary>
    /// Starts a run of an engine: the frame pointer it begins with, the top of the stack, or for a callback
    /// (<paramref name="nested"/>: bpf_loop, for_each_map_elem) a fresh frame below the caller's, which traps past
    /// <see cref="VmOptions.MaxCallDepth"/>. <paramref name="baseDepth"/> is the call depth to unwind to.
    /// </summary>
    internal ulong EnterRun(bool nested, out int baseDepth)
    {
        baseDepth = CallDepth;
        if (!nested)
            return StackTop;
        if (baseDepth + 1 >= Options.MaxCallDepth)
            throw Trap(TrapKind.CallDepthExceeded, $"a callback would need more than {Options.MaxCallDepth} stack frames");
        CallDepth = ++baseDepth;
        ulong r10 = StackLow;
        StackLow -= FrameSize;
        return r10;
    }

    /// <summary>Ends a run begun by <see cref="EnterRun"/>: unwinds the frames it pushed (a normal exit leaves none;
    /// a trap may leave some) and, for a callback, its own frame.</summary>
    internal void LeaveRun(bool nested, int baseDepth)
    {
        var frames = Frames;
        while (CallDepth > baseDepth)
            frames[--CallDepth].Program = null!;
        if (nested)
        {
            CallDepth = baseDepth - 1;
            StackLow += FrameSize;
        }
    }

    /// <summary>Checks [address, address+length) against every region; false when it is not allowed.</summary>
    internal bool IsAllowed(ulong address, ulong length, bool write)
    {
        if (length == 0)
            return true;
        if (address + length < address)
            return false;
        if (address >= StackLow && address + length <= StackTop)
            return true;
        if (address >= PacketLow && address + length <= PacketLow + PacketSpan)
            return true;
        for (int i = _regionCount - 1; i >= 0; i--)
        {
            if (address >= _regionStart[i] && address + length <= _regionEnd[i])
                return !write || _regionWritable[i];
        }
        return false;
    }

    /// <summary>Helper argument check: traps unless the program may access [address, address+length).</summary>
    public void CheckRange(ulong address, ulong length, bool write, string what)
    {
        if (!IsAllowed(address, length, write))
            throw Trap(TrapKind.MemoryAccess, $"{what}: {(write ? "write" : "read")} of {length} bytes at 0x{address:x} is outside the memory the program may {(write ? "write" : "read")}");
    }

    /// <summary>A load that missed the stack and the packet: the context, or a region; otherwise a trap.</summary>
    internal ulong LoadSlow(ulong address, int size)
    {
        if (address - CtxLow < CtxSpan)
            return LoadContext(address, size);
        if (!IsAllowed(address, (ulong)size, write: false))
            throw Trap(TrapKind.MemoryAccess, $"load of {size} bytes at 0x{address:x} is outside the memory the program may read");
        return Read(address, size);
    }

    /// <summary>A store that missed the stack and the packet: a writable region, otherwise a trap.</summary>
    internal void StoreSlow(ulong address, int size, ulong value)
    {
        if (CtxLow != 0 && address + (ulong)size > CtxLow && address < CtxLow + XdpContext.MetadataSize)
            throw Trap(TrapKind.MemoryAccess, $"store of {size} bytes into the read-only xdp_md context at offset {(long)(address - CtxLow)}");
        if (!IsAllowed(address, (ulong)size, write: true))
            throw Trap(TrapKind.MemoryAccess, $"store of {size} bytes at 0x{address:x} is outside the memory the program may write");
        Write(address, size, value);
    }

    /// <summary>Atomic operand check (checked mode): allowed and writable, aligned to its size.</summary>
    internal void CheckAtomic(ulong address, int size)
    {
        if ((address & (ulong)(size - 1)) != 0)
            throw Trap(TrapKind.MisalignedAtomic, $"{size}-byte atomic at 0x{address:x}");
        if (CtxLow != 0 && address - CtxLow < XdpContext.MetadataSize)
            throw Trap(TrapKind.MemoryAccess, "atomic operation on the read-only xdp_md context");
        if (!IsAllowed(address, (ulong)size, write: true))
            throw Trap(TrapKind.MemoryAccess, $"atomic of {size} bytes at 0x{address:x} is outside the memory the program may write");
    }

    /// <summary>
    /// A load from the XDP context. As the kernel rewrites ctx loads, the 32-bit fields data, data_end and data_meta
    /// give full 64-bit pointers; the other fields read as stored. Only aligned 4-byte loads are allowed.
    /// </summary>
    internal ulong LoadContext(ulong address, int size)
    {
        ulong offset = address - CtxLow;
        if (size != 4 || (offset & 3) != 0)
            throw Trap(TrapKind.MemoryAccess, $"xdp_md is read with aligned 4-byte loads only ({size} bytes at offset {offset})");
        return ContextField(offset);
    }

    /// <summary>The value of the xdp_md field at <paramref name="offset"/> (a multiple of 4 below 24).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal ulong ContextField(ulong offset) => offset switch
    {
        0 => CtxData,
        4 => CtxDataEnd,
        8 => CtxDataMeta,
        _ => *(uint*)(CtxLow + offset),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Read(ulong address, int size) => size switch
    {
        1 => *(byte*)address,
        2 => Unsafe.ReadUnaligned<ushort>((void*)address),
        4 => Unsafe.ReadUnaligned<uint>((void*)address),
        _ => Unsafe.ReadUnaligned<ulong>((void*)address),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Write(ulong address, int size, ulong value)
    {
        switch (size)
        {
            case 1: *(byte*)address = (byte)value; break;
            case 2: Unsafe.WriteUnaligned((void*)address, (ushort)value); break;
            case 4: Unsafe.WriteUnaligned((void*)address, (uint)value); break;
            default: Unsafe.WriteUnaligned((void*)address, value); break;
        }
    }

    // ---- traps -------------------------------------------------------------------------------------------------------

    /// <summary>A trap at the current instruction of the running program.</summary>
    public VmTrapException Trap(TrapKind kind, string detail)
    {
        var program = Program;
        int index = CurrentInstruction;
        return new VmTrapException(kind, detail, program?.Name ?? "?", index, program?.SourceLineAt(index));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal VmTrapException Trap(int pc, TrapKind kind, string detail)
    {
        CurrentInstruction = pc;
        return Trap(kind, detail);
    }

    // ---- helper services ---------------------------------------------------------------------------------------------

    /// <summary>bpf_get_prandom_u32: a fast per-execution xorshift generator.</summary>
    internal uint NextRandom()
    {
        ulong x = _randomState;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        _randomState = x;
        return (uint)(x >> 16);
    }

    internal void WriteTrace(string line)
    {
        Trace.Add(line);
        TraceSink?.Invoke(line);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        NativeMemory.AlignedFree(_stack);
        GC.SuppressFinalize(this);
    }

    ~VmExecution()
    {
        if (!_disposed)
            NativeMemory.AlignedFree(_stack);
    }
}

/// <summary>
/// The state of one bpf_for_each_map_elem call: the element visitor the map calls, with its delegate made once.
/// An execution keeps one per nesting depth (a callback may iterate a map too), so a call allocates nothing.
/// </summary>
internal sealed unsafe class ForEachVisitor
{
    private VmExecution? _e;
    private IVmFunctionInvoker? _invoker;
    private ManagedMap? _map;
    private ulong _handle, _callback, _ctx;
    private int _instruction;

    public ForEachVisitor() => Visit = VisitElement;

    /// <summary>The delegate handed to <see cref="ManagedMap.ForEachForProgram"/>.</summary>
    public MapElementVisitor Visit { get; }

    /// <summary>Elements visited by the current call.</summary>
    public long Count { get; private set; }

    public void Start(VmExecution e, IVmFunctionInvoker invoker, ManagedMap map, ulong handle, ulong callback, ulong ctx, int instruction)
    {
        _e = e;
        _invoker = invoker;
        _map = map;
        _handle = handle;
        _callback = callback;
        _ctx = ctx;
        _instruction = instruction;
        Count = 0;
    }

    public void End()
    {
        _e = null;
        _invoker = null;
        _map = null;
    }

    private bool VisitElement(byte* key, byte* value)
    {
        var e = _e!;
        var map = _map!;
        if (--e.Budget < 0)
            throw e.Trap(TrapKind.BudgetExhausted, $"more than {e.Options.InstructionBudget} instructions in one run");
        Count++;
        // The key (read-only) and the value are the callback's to touch during its call only; a region the run
        // already had (a value looked up before) stays.
        bool keyAdded = false, valueAdded = false;
        if (e.CheckMemory)
        {
            keyAdded = e.AddRegionIfNew((ulong)key, (ulong)map.KeySize, writable: false);
            valueAdded = e.AddRegionIfNew((ulong)value, (ulong)map.ValueSize, writable: !map.IsReadOnlyForProgram);
        }
        ulong result;
        try
        {
            result = _invoker!.Invoke(e, _callback, _handle, (ulong)key, (ulong)value, _ctx, 0);
        }
        finally
        {
            if (valueAdded)
                e.RemoveRegion((ulong)value);
            if (keyAdded)
                e.RemoveRegion((ulong)key);
        }
        e.CurrentInstruction = _instruction;
        return result == 0;
    }
}

/// <summary>How helpers that take a callback (bpf_loop, bpf_for_each_map_elem) run it: each engine provides one.</summary>
internal interface IVmFunctionInvoker
{
    /// <summary>Runs the BPF function whose address <paramref name="function"/> is, with r1-r5 set; returns its r0.</summary>
    ulong Invoke(VmExecution execution, ulong function, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5);
}
