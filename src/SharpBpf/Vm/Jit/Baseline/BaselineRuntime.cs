using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using SharpBpf.Asm;

namespace SharpBpf.Vm.Jit.Baseline;

/// <summary>
/// The block at the bottom of a baseline body's native frame ([rsp]) through which the code talks to
/// <see cref="BaselineRuntime"/>: the arguments of a runtime call, and room to keep r0-r5 across one.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CallBlock
{
    /// <summary>Helper calls: the helper's function pointer.</summary>
    public nint Function;
    public long Pc;
    public long Op;
    /// <summary>Runtime calls: the address (callx: the register's value).</summary>
    public ulong A;
    /// <summary>Runtime calls: the value stored, the atomic operand, or the opcode of a FellOff trap.</summary>
    public ulong V;
    public long Size;
    /// <summary>Runtime calls: the atomic operation; on return from a nested tail call or a callx, which case it was.</summary>
    public long Extra;
    /// <summary>The driver's register block (the entry's block only).</summary>
    public ulong* Regs;
    /// <summary>r0-r5 while a runtime call runs.</summary>
    public fixed ulong Save[6];
    /// <summary>r6-r10 while a bpf-to-bpf call or a nested tail call runs.</summary>
    public fixed ulong Keep[5];

    // The offsets the code generator addresses the fields at ([rsp + offset]); BaselineTests checks them against the
    // layout.
    public const int FunctionOffset = 0, PcOffset = 8, OpOffset = 16, AOffset = 24, VOffset = 32, SizeOffset = 40,
        ExtraOffset = 48, RegsOffset = 56, SaveOffset = 64, KeepOffset = 112;
    /// <summary>The frame every function (and the entry) reserves: the block (152 bytes), which keeps rsp 16-byte
    /// aligned at calls (8 mod 16, as rsp is on entry after the return address, plus this, is 0 mod 16).</summary>
    public const int FrameBytes = 152;
}

/// <summary>What a runtime call asks for (<see cref="CallBlock.Op"/>).</summary>
internal enum RuntimeOp
{
    LoadSlow, StoreSlow, CheckAtomic, MisalignedAtomic, AtomicFetch, TailCall, TailCallNested, CallRegister,
    BudgetExhausted, Unreachable, FellOff, CallDepthExceeded,
}

/// <summary>
/// The managed side of baseline code: the entry points its native code calls (helpers, slow paths of checked
/// accesses, traps), which run the same <see cref="JitRuntime"/> methods as the IL tiers. A managed exception must not
/// unwind through native frames, so each entry point catches what its callee throws, stores it in the execution
/// (<see cref="VmExecution.NativePending"/>) and returns; the code tests the flag after every call and returns at
/// once, and <see cref="BaselineCode"/> rethrows it.
/// </summary>
internal static unsafe class BaselineRuntime
{
    /// <summary>The execution the baseline code on this thread runs for (set around each native call).</summary>
    [ThreadStatic]
    internal static VmExecution? Current;

    public static readonly nint CallHelperEntry = (nint)(delegate* unmanaged<ulong, ulong, ulong, ulong, ulong, CallBlock*, ulong>)&CallHelper;
    public static readonly nint RuntimeEntry = (nint)(delegate* unmanaged<CallBlock*, ulong>)&Runtime;

    // Offsets of VmExecution's hot fields from StackTop (the field the caller pins and passes as the base pointer).
    public static readonly int StackTopOffset, StackLowOffset, PacketLowOffset, PacketSpanOffset, CtxLowOffset,
        CtxDataOffset, CtxDataEndOffset, CtxDataMetaOffset, BudgetOffset, PendingOffset, CallDepthOffset, MaxCallDepthOffset,
        CpuOffset;

    static BaselineRuntime()
    {
        // Field offsets are the same for every instance: measure them on one built without its constructor.
        var e = (VmExecution)RuntimeHelpers.GetUninitializedObject(typeof(VmExecution));
        GC.SuppressFinalize(e);
        StackTopOffset = 0;
        StackLowOffset = Of(e, ref e.StackLow);
        PacketLowOffset = Of(e, ref e.PacketLow);
        PacketSpanOffset = Of(e, ref e.PacketSpan);
        CtxLowOffset = Of(e, ref e.CtxLow);
        CtxDataOffset = Of(e, ref e.CtxData);
        CtxDataEndOffset = Of(e, ref e.CtxDataEnd);
        CtxDataMetaOffset = Of(e, ref e.CtxDataMeta);
        BudgetOffset = Of(e, ref e.Budget);
        PendingOffset = Of(e, ref e.NativePending);
        CallDepthOffset = Of(e, ref e.CallDepth);
        MaxCallDepthOffset = Of(e, ref Unsafe.AsRef(in e.MaxCallDepth));
        CpuOffset = Of(e, ref e.CpuIndex);
    }

    private static int Of<T>(VmExecution e, ref T field) =>
        checked((int)Unsafe.ByteOffset(ref Unsafe.As<ulong, byte>(ref e.StackTop), ref Unsafe.As<T, byte>(ref field)));

    [UnmanagedCallersOnly]
    private static ulong CallHelper(ulong r1, ulong r2, ulong r3, ulong r4, ulong r5, CallBlock* b)
    {
        var e = Current!;
        try
        {
            e.CurrentInstruction = (int)b->Pc;
            return ((delegate*<VmExecution, ulong, ulong, ulong, ulong, ulong, ulong>)b->Function)(e, r1, r2, r3, r4, r5);
        }
        catch (Exception ex)
        {
            Pend(e, ex);
            return 0;
        }
    }

    [UnmanagedCallersOnly]
    private static ulong Runtime(CallBlock* b)
    {
        var e = Current!;
        int pc = (int)b->Pc;
        int size = (int)b->Size;
        try
        {
            switch ((RuntimeOp)b->Op)
            {
                case RuntimeOp.LoadSlow:
                    return JitRuntime.LoadSlow(e, b->A, size, pc);
                case RuntimeOp.StoreSlow:
                    JitRuntime.StoreSlow(e, b->A, size, b->V, pc);
                    return 0;
                case RuntimeOp.CheckAtomic:
                    JitRuntime.CheckAtomic(e, b->A, size, pc);
                    return 0;
                case RuntimeOp.AtomicFetch:
                    return size == 8 ? JitRuntime.Atomic64(b->A, b->V, (int)b->Extra) : JitRuntime.Atomic32(b->A, (uint)b->V, (int)b->Extra);
                case RuntimeOp.TailCall:
                    return JitRuntime.TailCall(e, b->A, b->V, pc) ? 1UL : 0UL;
                case RuntimeOp.TailCallNested:
                    return TailCallNested(e, b, pc);
                case RuntimeOp.CallRegister:
                {
                    // callx: a function index (Extra = 1), or a helper called here with r1-r5 (Extra = 0, r0 returned).
                    ulong r0 = 0;
                    int index = JitRuntime.CallRegister(e, b->A, pc, b->Save[1], b->Save[2], b->Save[3], b->Save[4], b->Save[5], ref r0);
                    b->Extra = index >= 0 ? 1 : 0;
                    return index >= 0 ? (ulong)index : r0;
                }
                case RuntimeOp.CallDepthExceeded:
                    throw e.Trap(pc, TrapKind.CallDepthExceeded, $"bpf-to-bpf calls nest deeper than {e.Options.MaxCallDepth} frames");
                case RuntimeOp.MisalignedAtomic:
                    JitRuntime.MisalignedAtomic(e, b->A, size, pc);
                    break;
                case RuntimeOp.BudgetExhausted:
                    JitRuntime.BudgetExhausted(e, pc);
                    break;
                case RuntimeOp.Unreachable:
                    JitRuntime.Unreachable(e, pc);
                    break;
                case RuntimeOp.FellOff:
                    JitRuntime.FellOff(e, pc, (int)b->V);
                    break;
            }
            // A trap entry that did not throw, or an operation this runtime does not know: never continue silently.
            throw new UnreachableException($"baseline runtime call {b->Op} at instruction {pc} returned where it must trap");
        }
        catch (Exception ex)
        {
            Pend(e, ex);
            return 0;
        }
    }

    /// <summary>A tail call in a program with bpf-to-bpf calls: when the runtime switched programs, runs the target
    /// to its exit (<see cref="JitEngine.RunTailCallTarget"/>) with r0-r5 from the block's Save and r6-r10 from its
    /// Keep, switches back to the caller's program and returns the target's r0, with Extra = 1; Extra = 0 when the
    /// call fell through.</summary>
    private static ulong TailCallNested(VmExecution e, CallBlock* b, int pc)
    {
        var caller = e.Program!;
        if (!JitRuntime.TailCall(e, b->A, b->V, pc))
        {
            b->Extra = 0;
            return 0;
        }
        b->Extra = 1;
        ulong* regs = stackalloc ulong[13];
        for (int i = 0; i <= 5; i++)
            regs[i] = b->Save[i];
        for (int i = 0; i <= 4; i++)
            regs[6 + i] = b->Keep[i];
        var outer = Current;
        ulong r0 = JitEngine.RunTailCallTarget(e, regs);
        Current = outer;
        e.SwitchProgram(caller);
        return r0;
    }

    private static void Pend(VmExecution e, Exception ex)
    {
        e.NativeException = ExceptionDispatchInfo.Capture(ex);
        e.NativePending = 1;
    }
}

/// <summary>
/// A program's baseline code: native x86-64 instructions in pages of their own (mapped writable, filled, then made
/// executable and read-only), freed when the code is no longer referenced.
/// </summary>
internal sealed unsafe class BaselineCode
{
    private readonly nint _pages;
    private readonly nuint _length;
    private readonly delegate* unmanaged<ulong*, ulong*, int, ulong> _entry;

    private BaselineCode(nint pages, nuint length, int bytes)
    {
        Bytes = bytes;
        _pages = pages;
        _length = length;
        _entry = (delegate* unmanaged<ulong*, ulong*, int, ulong>)pages;
    }

    /// <summary>Bytes of machine code (the pages hold them rounded up to 4 KiB).</summary>
    public int Bytes { get; }

    /// <summary>Copies <paramref name="code"/> into new executable pages.</summary>
    public static BaselineCode Create(ReadOnlySpan<byte> code)
    {
        nuint length = (nuint)((code.Length + 4095) & ~4095);
        nint pages = ExecutableMemory.Map(length);
        code.CopyTo(new Span<byte>((void*)pages, code.Length));
        ExecutableMemory.MakeExecutable(pages, length);
        return new BaselineCode(pages, length, code.Length);
    }

    ~BaselineCode() => ExecutableMemory.Unmap(_pages, _length);

    /// <summary>The <see cref="JitBody"/> of this code: runs it with the execution's fields pinned, then rethrows
    /// what a helper or a check threw inside it.</summary>
    public ulong Run(VmExecution e, ulong* regs, int startPc, int baseDepth)
    {
        // Handed over inside a bpf-to-bpf call another program made (a tail call from its subprogram): this program's
        // exit must return into that program's frame, which only the frames of e.Frames describe and native code
        // does not pop. The interpreter finishes such a run (rare: as the kernel, most tail calls are made at the top).
        if (e.CallDepth != baseDepth)
            return Interpreter.Continue(e, e.Program!, startPc, regs, baseDepth);
        var outer = BaselineRuntime.Current;
        BaselineRuntime.Current = e;
        ulong r0;
        fixed (ulong* fields = &e.StackTop)
            r0 = _entry(fields, regs, startPc);
        BaselineRuntime.Current = outer;
        GC.KeepAlive(this);
        if (e.NativePending != 0)
        {
            e.NativePending = 0;
            var pending = e.NativeException!;
            e.NativeException = null;
            pending.Throw();
        }
        return r0;
    }
}

/// <summary>Pages of native code on Linux: mmap, mprotect, munmap from libc.</summary>
internal static partial class ExecutableMemory
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4, MapPrivate = 2, MapAnonymous = 0x20;

    public static bool IsSupported { get; } = OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    public static nint Map(nuint length)
    {
        nint p = mmap(0, length, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (p == -1)
            throw new OutOfMemoryException($"mmap of {length} bytes for baseline code failed (errno {Marshal.GetLastPInvokeError()})");
        return p;
    }

    public static void MakeExecutable(nint pages, nuint length)
    {
        if (mprotect(pages, length, ProtRead | ProtExec) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            munmap(pages, length);
            throw new InvalidOperationException($"mprotect(PROT_READ|PROT_EXEC) of baseline code failed (errno {errno})");
        }
    }

    public static void Unmap(nint pages, nuint length) => munmap(pages, length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mprotect(nint address, nuint length, int protection);

    [LibraryImport("libc")]
    private static partial int munmap(nint address, nuint length);
}
