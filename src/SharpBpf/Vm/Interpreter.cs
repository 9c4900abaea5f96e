using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using SharpBpf.Asm;
using SharpBpf.Helpers;

namespace SharpBpf.Vm;

/// <summary>Selects checked or unchecked memory access at JIT time of the interpreter loop (no cost per access).</summary>
internal interface IMemoryPolicy
{
    static abstract bool Checked { get; }
}

internal struct CheckedMemory : IMemoryPolicy
{
    public static bool Checked => true;
}

internal struct UncheckedMemory : IMemoryPolicy
{
    public static bool Checked => false;
}

/// <summary>Saved state of a caller while a bpf-to-bpf call runs.</summary>
internal struct CallFrame
{
    public int ReturnPc;
    public VmProgram Program;
    public ulong R6, R7, R8, R9;
}

/// <summary>
/// The reference engine: runs <see cref="DecodedInstruction"/>s with the kernel's semantics. Registers live in a
/// stack-allocated array; one switch over the opcode byte dispatches; the instruction budget is charged at backward
/// jumps only. Traps are thrown as <see cref="VmTrapException"/> and never leave the VM as anything else.
/// </summary>
internal static unsafe class Interpreter
{
    private sealed class Invoker : IVmFunctionInvoker
    {
        public static readonly Invoker Instance = new();

        public ulong Invoke(VmExecution e, ulong function, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
        {
            var program = e.Program!;
            int target = program.FunctionIndexOf(function);
            if (target < 0)
                throw e.Trap(TrapKind.BadCall, $"0x{function:x} is not the address of a function of program '{program.Name}'");
            return e.CheckMemory
                ? Execute<CheckedMemory>(e, program, target, r1, r2, r3, r4, r5, nested: true)
                : Execute<UncheckedMemory>(e, program, target, r1, r2, r3, r4, r5, nested: true);
        }
    }

    /// <summary>Runs <paramref name="program"/> from its first instruction; BeginRun must have been called.</summary>
    /// <remarks>A top-level run needs no clean-up when it traps: the trap ends the run, and the next
    /// <see cref="VmExecution.BeginRun"/> drops the frames it left.</remarks>
    public static ulong Run(VmExecution e, VmProgram program, ulong r1, ulong r2)
    {
        if (!ReferenceEquals(e.Invoker, Invoker.Instance))
            e.Invoker = Invoker.Instance;
        return e.CheckMemory
            ? Loop<CheckedMemory>(e, program, 0, r1, r2, 0, 0, 0, e.StackTop, 0)
            : Loop<UncheckedMemory>(e, program, 0, r1, r2, 0, 0, 0, e.StackTop, 0);
    }

    /// <summary>
    /// Goes on with a run of the jit engine that was handed over to <paramref name="program"/>, a program without
    /// compiled code (where only the baseline tier can run, as under NativeAOT, and it does not handle this program):
    /// from <paramref name="pc"/> with r0-r10 from the hand-off block <paramref name="regs"/>, at the run's
    /// <paramref name="baseDepth"/>. Callbacks of the interpreted code run on the interpreter meanwhile.
    /// </summary>
    internal static ulong Continue(VmExecution e, VmProgram program, int pc, ulong* regs, int baseDepth)
    {
        var invoker = e.Invoker;
        e.Invoker = Invoker.Instance;
        try
        {
            return e.CheckMemory
                ? Loop<CheckedMemory>(e, program, pc, regs[1], regs[2], regs[3], regs[4], regs[5], regs[10], baseDepth, regs)
                : Loop<UncheckedMemory>(e, program, pc, regs[1], regs[2], regs[3], regs[4], regs[5], regs[10], baseDepth, regs);
        }
        finally
        {
            e.Invoker = invoker;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Load<T>(VmExecution e, ulong a, uint size, DecodedInstruction* ins, DecodedInstruction* code) where T : struct, IMemoryPolicy
    {
        if (T.Checked)
        {
            if (!e.InFastRegion(a, size))
            {
                // xdp_md fields (4-byte aligned loads) without leaving the loop; anything else goes the slow way.
                if (size == 4 && a - e.CtxLow < e.CtxSpan && (a & 3) == 0)
                    return e.ContextField(a - e.CtxLow);
                return LoadSlow(e, a, size, ins, code);
            }
        }
        else if (size == 4 && a - e.CtxLow < e.CtxSpan)
        {
            return (a & 3) == 0 ? e.ContextField(a - e.CtxLow) : LoadSlow(e, a, size, ins, code);
        }
        return size switch
        {
            1 => *(byte*)a,
            2 => Unsafe.ReadUnaligned<ushort>((void*)a),
            4 => Unsafe.ReadUnaligned<uint>((void*)a),
            _ => Unsafe.ReadUnaligned<ulong>((void*)a),
        };
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ulong LoadSlow(VmExecution e, ulong a, uint size, DecodedInstruction* ins, DecodedInstruction* code)
    {
        e.CurrentInstruction = Pc(ins, code);
        return e.LoadSlow(a, (int)size);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(VmExecution e, ulong a, uint size, ulong value, DecodedInstruction* ins, DecodedInstruction* code) where T : struct, IMemoryPolicy
    {
        if (T.Checked && !e.InFastRegion(a, size))
        {
            StoreSlow(e, a, size, value, ins, code);
            return;
        }
        switch (size)
        {
            case 1: *(byte*)a = (byte)value; break;
            case 2: Unsafe.WriteUnaligned((void*)a, (ushort)value); break;
            case 4: Unsafe.WriteUnaligned((void*)a, (uint)value); break;
            default: Unsafe.WriteUnaligned((void*)a, value); break;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void StoreSlow(VmExecution e, ulong a, uint size, ulong value, DecodedInstruction* ins, DecodedInstruction* code)
    {
        e.CurrentInstruction = Pc(ins, code);
        e.StoreSlow(a, (int)size, value);
    }

    private static ulong Execute<T>(VmExecution e, VmProgram program, int startPc,
        ulong a1, ulong a2, ulong a3, ulong a4, ulong a5, bool nested) where T : struct, IMemoryPolicy
    {
        ulong r10 = e.EnterRun(nested, out int baseDepth);
        // The loop itself has no exception handling, so the JIT keeps its locals in registers; clean-up after a
        // trap happens here.
        try
        {
            return Loop<T>(e, program, startPc, a1, a2, a3, a4, a5, r10, baseDepth);
        }
        finally
        {
            e.LeaveRun(nested, baseDepth);
        }
    }

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ulong Loop<T>(VmExecution e, VmProgram program, int startPc,
        ulong a1, ulong a2, ulong a3, ulong a4, ulong a5, ulong r10, int baseDepth, ulong* handOff = null) where T : struct, IMemoryPolicy
    {
        // stackalloc (not a struct local): the register file's address stays in one register of the loop.
        ulong* r = stackalloc ulong[16];
        r[0] = 0; r[1] = a1; r[2] = a2; r[3] = a3; r[4] = a4; r[5] = a5;
        r[6] = 0; r[7] = 0; r[8] = 0; r[9] = 0; r[10] = r10;
        if (handOff != null)
        {
            // A run the jit engine handed over (Continue): r0 and r6-r9 as the compiled code left them.
            r[0] = handOff[0];
            r[6] = handOff[6]; r[7] = handOff[7]; r[8] = handOff[8]; r[9] = handOff[9];
        }
        var frames = e.Frames;
        DecodedInstruction* code = program.CodePointer;
        nint* helpers = program.HelperFunctions;
        // The program counter is the instruction pointer itself; its index (ins - code) is computed only where it
        // is reported (traps, helpers, call frames), so the loop keeps one register for it.
        DecodedInstruction* ins = code + startPc;
        {
            while (true)
            {
                switch (ins->Op)
                {
                    // ---- ALU64 ----
                    case 0x07: r[ins->Dst] += (ulong)ins->Imm; break;
                    case 0x0f: r[ins->Dst] += r[ins->Src]; break;
                    case 0x17: r[ins->Dst] -= (ulong)ins->Imm; break;
                    case 0x1f: r[ins->Dst] -= r[ins->Src]; break;
                    case 0x27: r[ins->Dst] *= (ulong)ins->Imm; break;
                    case 0x2f: r[ins->Dst] *= r[ins->Src]; break;
                    case 0x37: { ulong d = (ulong)ins->Imm; r[ins->Dst] = d == 0 ? 0 : r[ins->Dst] / d; break; }
                    case 0x3f: { ulong d = r[ins->Src]; r[ins->Dst] = d == 0 ? 0 : r[ins->Dst] / d; break; }
                    case 0x47: r[ins->Dst] |= (ulong)ins->Imm; break;
                    case 0x4f: r[ins->Dst] |= r[ins->Src]; break;
                    case 0x57: r[ins->Dst] &= (ulong)ins->Imm; break;
                    case 0x5f: r[ins->Dst] &= r[ins->Src]; break;
                    case 0x67: r[ins->Dst] <<= (int)(ins->Imm & 63); break;
                    case 0x6f: r[ins->Dst] <<= (int)(r[ins->Src] & 63); break;
                    case 0x77: r[ins->Dst] >>= (int)(ins->Imm & 63); break;
                    case 0x7f: r[ins->Dst] >>= (int)(r[ins->Src] & 63); break;
                    case 0x87: r[ins->Dst] = 0 - r[ins->Dst]; break;
                    case 0x97: { ulong d = (ulong)ins->Imm; if (d != 0) r[ins->Dst] %= d; break; }
                    case 0x9f: { ulong d = r[ins->Src]; if (d != 0) r[ins->Dst] %= d; break; }
                    case 0xa7: r[ins->Dst] ^= (ulong)ins->Imm; break;
                    case 0xaf: r[ins->Dst] ^= r[ins->Src]; break;
                    case 0xb7: r[ins->Dst] = (ulong)ins->Imm; break;
                    case 0xbf: r[ins->Dst] = r[ins->Src]; break;
                    case 0xc7: r[ins->Dst] = (ulong)((long)r[ins->Dst] >> (int)(ins->Imm & 63)); break;
                    case 0xcf: r[ins->Dst] = (ulong)((long)r[ins->Dst] >> (int)(r[ins->Src] & 63)); break;
                    case VmOp.SDiv64Imm: r[ins->Dst] = (ulong)SDiv64((long)r[ins->Dst], ins->Imm); break;
                    case VmOp.SDiv64Reg: r[ins->Dst] = (ulong)SDiv64((long)r[ins->Dst], (long)r[ins->Src]); break;
                    case VmOp.SMod64Imm: r[ins->Dst] = (ulong)SMod64((long)r[ins->Dst], ins->Imm); break;
                    case VmOp.SMod64Reg: r[ins->Dst] = (ulong)SMod64((long)r[ins->Dst], (long)r[ins->Src]); break;
                    case VmOp.MovSx64From8: r[ins->Dst] = (ulong)(long)(sbyte)r[ins->Src]; break;
                    case VmOp.MovSx64From16: r[ins->Dst] = (ulong)(long)(short)r[ins->Src]; break;
                    case VmOp.MovSx64From32: r[ins->Dst] = (ulong)(long)(int)r[ins->Src]; break;

                    // ---- ALU32: results are zero-extended ----
                    case 0x04: r[ins->Dst] = (uint)r[ins->Dst] + (uint)ins->Imm; break;
                    case 0x0c: r[ins->Dst] = (uint)r[ins->Dst] + (uint)r[ins->Src]; break;
                    case 0x14: r[ins->Dst] = (uint)r[ins->Dst] - (uint)ins->Imm; break;
                    case 0x1c: r[ins->Dst] = (uint)r[ins->Dst] - (uint)r[ins->Src]; break;
                    case 0x24: r[ins->Dst] = (uint)r[ins->Dst] * (uint)ins->Imm; break;
                    case 0x2c: r[ins->Dst] = (uint)r[ins->Dst] * (uint)r[ins->Src]; break;
                    case 0x34: { uint d = (uint)ins->Imm; r[ins->Dst] = d == 0 ? 0 : (uint)r[ins->Dst] / d; break; }
                    case 0x3c: { uint d = (uint)r[ins->Src]; r[ins->Dst] = d == 0 ? 0 : (uint)r[ins->Dst] / d; break; }
                    case 0x44: r[ins->Dst] = (uint)r[ins->Dst] | (uint)ins->Imm; break;
                    case 0x4c: r[ins->Dst] = (uint)r[ins->Dst] | (uint)r[ins->Src]; break;
                    case 0x54: r[ins->Dst] = (uint)r[ins->Dst] & (uint)ins->Imm; break;
                    case 0x5c: r[ins->Dst] = (uint)r[ins->Dst] & (uint)r[ins->Src]; break;
                    case 0x64: r[ins->Dst] = (uint)r[ins->Dst] << (int)(ins->Imm & 31); break;
                    case 0x6c: r[ins->Dst] = (uint)r[ins->Dst] << (int)(r[ins->Src] & 31); break;
                    case 0x74: r[ins->Dst] = (uint)r[ins->Dst] >> (int)(ins->Imm & 31); break;
                    case 0x7c: r[ins->Dst] = (uint)r[ins->Dst] >> (int)(r[ins->Src] & 31); break;
                    case 0x84: r[ins->Dst] = 0u - (uint)r[ins->Dst]; break;
                    case 0x94: { uint d = (uint)ins->Imm; r[ins->Dst] = d == 0 ? (uint)r[ins->Dst] : (uint)r[ins->Dst] % d; break; }
                    case 0x9c: { uint d = (uint)r[ins->Src]; r[ins->Dst] = d == 0 ? (uint)r[ins->Dst] : (uint)r[ins->Dst] % d; break; }
                    case 0xa4: r[ins->Dst] = (uint)r[ins->Dst] ^ (uint)ins->Imm; break;
                    case 0xac: r[ins->Dst] = (uint)r[ins->Dst] ^ (uint)r[ins->Src]; break;
                    case 0xb4: r[ins->Dst] = (uint)ins->Imm; break;
                    case 0xbc: r[ins->Dst] = (uint)r[ins->Src]; break;
                    case 0xc4: r[ins->Dst] = (uint)((int)r[ins->Dst] >> (int)(ins->Imm & 31)); break;
                    case 0xcc: r[ins->Dst] = (uint)((int)r[ins->Dst] >> (int)(r[ins->Src] & 31)); break;
                    case VmOp.SDiv32Imm: r[ins->Dst] = (uint)SDiv32((int)r[ins->Dst], (int)ins->Imm); break;
                    case VmOp.SDiv32Reg: r[ins->Dst] = (uint)SDiv32((int)r[ins->Dst], (int)r[ins->Src]); break;
                    case VmOp.SMod32Imm: r[ins->Dst] = (uint)SMod32((int)r[ins->Dst], (int)ins->Imm); break;
                    case VmOp.SMod32Reg: r[ins->Dst] = (uint)SMod32((int)r[ins->Dst], (int)r[ins->Src]); break;
                    case VmOp.MovSx32From8: r[ins->Dst] = (uint)(int)(sbyte)r[ins->Src]; break;
                    case VmOp.MovSx32From16: r[ins->Dst] = (uint)(int)(short)r[ins->Src]; break;

                    // ---- byte order ----
                    case VmOp.Truncate16: r[ins->Dst] = (ushort)r[ins->Dst]; break;
                    case VmOp.Truncate32: r[ins->Dst] = (uint)r[ins->Dst]; break;
                    case VmOp.Nop: break;
                    case VmOp.Swap16: r[ins->Dst] = BinaryPrimitives.ReverseEndianness((ushort)r[ins->Dst]); break;
                    case VmOp.Swap32: r[ins->Dst] = BinaryPrimitives.ReverseEndianness((uint)r[ins->Dst]); break;
                    case VmOp.Swap64: r[ins->Dst] = BinaryPrimitives.ReverseEndianness(r[ins->Dst]); break;

                    case VmOp.LoadImm64: r[ins->Dst] = (ulong)ins->Imm; break;

                    // ---- loads ----
                    case 0x61: { ulong v = Load<T>(e, r[ins->Src] + (ulong)ins->Offset, 4, ins, code); r[ins->Dst] = v; break; }
                    case 0x69: { ulong v = Load<T>(e, r[ins->Src] + (ulong)ins->Offset, 2, ins, code); r[ins->Dst] = v; break; }
                    case 0x71: { ulong v = Load<T>(e, r[ins->Src] + (ulong)ins->Offset, 1, ins, code); r[ins->Dst] = v; break; }
                    case 0x79: { ulong v = Load<T>(e, r[ins->Src] + (ulong)ins->Offset, 8, ins, code); r[ins->Dst] = v; break; }
                    case 0x81: { ulong v = Load<T>(e, r[ins->Src] + (ulong)ins->Offset, 4, ins, code); r[ins->Dst] = (ulong)(long)(int)v; break; }
                    case 0x89: { ulong v = Load<T>(e, r[ins->Src] + (ulong)ins->Offset, 2, ins, code); r[ins->Dst] = (ulong)(long)(short)v; break; }
                    case 0x91: { ulong v = Load<T>(e, r[ins->Src] + (ulong)ins->Offset, 1, ins, code); r[ins->Dst] = (ulong)(long)(sbyte)v; break; }

                    // ---- stores ----
                    case 0x62: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 4, (ulong)ins->Imm, ins, code); break;
                    case 0x6a: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 2, (ulong)ins->Imm, ins, code); break;
                    case 0x72: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 1, (ulong)ins->Imm, ins, code); break;
                    case 0x7a: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 8, (ulong)ins->Imm, ins, code); break;
                    case 0x63: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 4, r[ins->Src], ins, code); break;
                    case 0x6b: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 2, r[ins->Src], ins, code); break;
                    case 0x73: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 1, r[ins->Src], ins, code); break;
                    case 0x7b: Store<T>(e, r[ins->Dst] + (ulong)ins->Offset, 8, r[ins->Src], ins, code); break;

                    case VmOp.AtomicWord:
                    case VmOp.AtomicDoubleWord:
                    {
                        ulong a = r[ins->Dst] + (ulong)ins->Offset;
                        if (T.Checked)
                            CheckAtomic(e, a, ins->Size, Pc(ins, code));
                        if (ins->Op == VmOp.AtomicWord)
                            Atomic32(r, ins, (uint*)a);
                        else
                            Atomic64(r, ins, (ulong*)a);
                        break;
                    }

                    // ---- jumps ----
                    case VmOp.Jump: goto Jump;
                    case 0x15: if (r[ins->Dst] == (ulong)ins->Imm) goto Jump; break;
                    case 0x1d: if (r[ins->Dst] == r[ins->Src]) goto Jump; break;
                    case 0x25: if (r[ins->Dst] > (ulong)ins->Imm) goto Jump; break;
                    case 0x2d: if (r[ins->Dst] > r[ins->Src]) goto Jump; break;
                    case 0x35: if (r[ins->Dst] >= (ulong)ins->Imm) goto Jump; break;
                    case 0x3d: if (r[ins->Dst] >= r[ins->Src]) goto Jump; break;
                    case 0x45: if ((r[ins->Dst] & (ulong)ins->Imm) != 0) goto Jump; break;
                    case 0x4d: if ((r[ins->Dst] & r[ins->Src]) != 0) goto Jump; break;
                    case 0x55: if (r[ins->Dst] != (ulong)ins->Imm) goto Jump; break;
                    case 0x5d: if (r[ins->Dst] != r[ins->Src]) goto Jump; break;
                    case 0x65: if ((long)r[ins->Dst] > ins->Imm) goto Jump; break;
                    case 0x6d: if ((long)r[ins->Dst] > (long)r[ins->Src]) goto Jump; break;
                    case 0x75: if ((long)r[ins->Dst] >= ins->Imm) goto Jump; break;
                    case 0x7d: if ((long)r[ins->Dst] >= (long)r[ins->Src]) goto Jump; break;
                    case 0xa5: if (r[ins->Dst] < (ulong)ins->Imm) goto Jump; break;
                    case 0xad: if (r[ins->Dst] < r[ins->Src]) goto Jump; break;
                    case 0xb5: if (r[ins->Dst] <= (ulong)ins->Imm) goto Jump; break;
                    case 0xbd: if (r[ins->Dst] <= r[ins->Src]) goto Jump; break;
                    case 0xc5: if ((long)r[ins->Dst] < ins->Imm) goto Jump; break;
                    case 0xcd: if ((long)r[ins->Dst] < (long)r[ins->Src]) goto Jump; break;
                    case 0xd5: if ((long)r[ins->Dst] <= ins->Imm) goto Jump; break;
                    case 0xdd: if ((long)r[ins->Dst] <= (long)r[ins->Src]) goto Jump; break;
                    case 0x16: if ((uint)r[ins->Dst] == (uint)ins->Imm) goto Jump; break;
                    case 0x1e: if ((uint)r[ins->Dst] == (uint)r[ins->Src]) goto Jump; break;
                    case 0x26: if ((uint)r[ins->Dst] > (uint)ins->Imm) goto Jump; break;
                    case 0x2e: if ((uint)r[ins->Dst] > (uint)r[ins->Src]) goto Jump; break;
                    case 0x36: if ((uint)r[ins->Dst] >= (uint)ins->Imm) goto Jump; break;
                    case 0x3e: if ((uint)r[ins->Dst] >= (uint)r[ins->Src]) goto Jump; break;
                    case 0x46: if (((uint)r[ins->Dst] & (uint)ins->Imm) != 0) goto Jump; break;
                    case 0x4e: if (((uint)r[ins->Dst] & (uint)r[ins->Src]) != 0) goto Jump; break;
                    case 0x56: if ((uint)r[ins->Dst] != (uint)ins->Imm) goto Jump; break;
                    case 0x5e: if ((uint)r[ins->Dst] != (uint)r[ins->Src]) goto Jump; break;
                    case 0x66: if ((int)r[ins->Dst] > (int)ins->Imm) goto Jump; break;
                    case 0x6e: if ((int)r[ins->Dst] > (int)r[ins->Src]) goto Jump; break;
                    case 0x76: if ((int)r[ins->Dst] >= (int)ins->Imm) goto Jump; break;
                    case 0x7e: if ((int)r[ins->Dst] >= (int)r[ins->Src]) goto Jump; break;
                    case 0xa6: if ((uint)r[ins->Dst] < (uint)ins->Imm) goto Jump; break;
                    case 0xae: if ((uint)r[ins->Dst] < (uint)r[ins->Src]) goto Jump; break;
                    case 0xb6: if ((uint)r[ins->Dst] <= (uint)ins->Imm) goto Jump; break;
                    case 0xbe: if ((uint)r[ins->Dst] <= (uint)r[ins->Src]) goto Jump; break;
                    case 0xc6: if ((int)r[ins->Dst] < (int)ins->Imm) goto Jump; break;
                    case 0xce: if ((int)r[ins->Dst] < (int)r[ins->Src]) goto Jump; break;
                    case 0xd6: if ((int)r[ins->Dst] <= (int)ins->Imm) goto Jump; break;
                    case 0xde: if ((int)r[ins->Dst] <= (int)r[ins->Src]) goto Jump; break;

                    // ---- calls ----
                    case VmOp.CallHelper:
                        e.CurrentInstruction = Pc(ins, code);
                        r[0] = ((delegate*<VmExecution, ulong, ulong, ulong, ulong, ulong, ulong>)helpers[ins->Imm])(e, r[1], r[2], r[3], r[4], r[5]);
                        break;
                    case VmOp.TailCall:
                    {
                        e.CurrentInstruction = Pc(ins, code);
                        var target = VmHelpers.ResolveTailCall(e, r[2], r[3]);
                        if (target is null)
                            break;
                        program = target;
                        e.SwitchProgram(target);
                        code = target.CodePointer;
                        helpers = target.HelperFunctions;
                        ins = code;
                        continue;
                    }
                    case VmOp.LocalCall:
                        PushFrame(e, r, frames, program, Pc(ins, code) + 1, baseDepth);
                        ins = code + ins->Offset;
                        continue;
                    case VmOp.CallRegister:
                    {
                        ulong target = r[ins->Dst];
                        int index = program.FunctionIndexOf(target);
                        if (index >= 0)
                        {
                            PushFrame(e, r, frames, program, Pc(ins, code) + 1, baseDepth);
                            ins = code + index;
                            continue;
                        }
                        e.CurrentInstruction = Pc(ins, code);
                        r[0] = CallHelperByRegister(e, helpers, target, r);
                        break;
                    }
                    case VmOp.Exit:
                        if (e.CallDepth == baseDepth)
                            return r[0];
                        {
                            ref var frame = ref frames[--e.CallDepth];
                            r[6] = frame.R6; r[7] = frame.R7; r[8] = frame.R8; r[9] = frame.R9;
                            if (!ReferenceEquals(frame.Program, program))
                            {
                                program = frame.Program;
                                e.SwitchProgram(program);
                                code = program.CodePointer;
                                helpers = program.HelperFunctions;
                            }
                            ins = code + frame.ReturnPc;
                            frame.Program = null!;
                            e.StackLow += VmExecution.FrameSize;
                            r[10] = e.StackLow + VmExecution.FrameSize;
                        }
                        continue;

                    // Listing the lowest codes makes the jump table start at 0: no rebasing subtraction before the lookup.
                    case VmOp.FellOff: case 0x01: case 0x02: case 0x03:
                    default:
                        throw FellOff(e, Pc(ins, code), ins->Op);
                }
                ins++;
                continue;

            Jump:
                DecodedInstruction* to = code + ins->Offset;
                if (to <= ins)
                {
                    // Backward jump: charge the loop body to the budget.
                    long budget = e.Budget - (ins - to + 1);
                    e.Budget = budget;
                    if (budget < 0)
                        throw BudgetExhausted(e, Pc(ins, code));
                }
                ins = to;
            }
        }
    }

    /// <summary>The index of <paramref name="ins"/> in the program.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Pc(DecodedInstruction* ins, DecodedInstruction* code) => (int)((ulong)((byte*)ins - (byte*)code) / (ulong)sizeof(DecodedInstruction));

    // Cold paths live out of line so the loop's registers are not spilled around them.

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static VmTrapException FellOff(VmExecution e, int pc, byte op) =>
        e.Trap(pc, TrapKind.FellOffEnd, $"no instruction at index {pc} (op 0x{op:x2})");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static VmTrapException BudgetExhausted(VmExecution e, int pc) =>
        e.Trap(pc, TrapKind.BudgetExhausted, $"more than {e.Options.InstructionBudget} instructions in one run");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void CheckAtomic(VmExecution e, ulong address, int size, int pc)
    {
        e.CurrentInstruction = pc;
        e.CheckAtomic(address, size);
    }

    /// <summary>callx with a helper id (the caller has stored the instruction index).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ulong CallHelperByRegister(VmExecution e, nint* helpers, ulong target, ulong* r)
    {
        if (target < HelperTable.Capacity && helpers[target] != 0)
        {
            if (target == (ulong)Platform.HelperId.TailCall)
                throw e.Trap(TrapKind.BadCall, "callx to bpf_tail_call is not supported");
            return ((delegate*<VmExecution, ulong, ulong, ulong, ulong, ulong, ulong>)helpers[target])(e, r[1], r[2], r[3], r[4], r[5]);
        }
        throw e.Trap(TrapKind.BadCall, $"callx target 0x{target:x} is neither a function of the program nor a helper it may call");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void PushFrame(VmExecution e, ulong* r, CallFrame[] frames, VmProgram program, int returnPc, int baseDepth)
    {
        if (e.CallDepth + 1 >= e.Options.MaxCallDepth)
            throw e.Trap(returnPc - 1, TrapKind.CallDepthExceeded, $"bpf-to-bpf calls nest deeper than {e.Options.MaxCallDepth} frames");
        ref var frame = ref frames[e.CallDepth++];
        frame.ReturnPc = returnPc;
        frame.Program = program;
        frame.R6 = r[6]; frame.R7 = r[7]; frame.R8 = r[8]; frame.R9 = r[9];
        r[10] = e.StackLow;
        e.StackLow -= VmExecution.FrameSize;
    }

    internal static long SDiv64(long a, long b) => b switch
    {
        0 => 0,
        -1 => unchecked(-a),
        _ => a / b,
    };

    internal static long SMod64(long a, long b) => b switch
    {
        0 => a,
        -1 => 0,
        _ => a % b,
    };

    internal static int SDiv32(int a, int b) => b switch
    {
        0 => 0,
        -1 => unchecked(-a),
        _ => a / b,
    };

    internal static int SMod32(int a, int b) => b switch
    {
        0 => a,
        -1 => 0,
        _ => a % b,
    };

    private static void Atomic32(ulong* r, DecodedInstruction* ins, uint* p)
    {
        ref uint cell = ref *p;
        uint v = (uint)r[ins->Src];
        switch ((AtomicOperation)ins->Imm)
        {
            case AtomicOperation.Add: Interlocked.Add(ref cell, v); break;
            case AtomicOperation.Or: Interlocked.Or(ref cell, v); break;
            case AtomicOperation.And: Interlocked.And(ref cell, v); break;
            case AtomicOperation.Xor: Xor32(ref cell, v); break;
            case AtomicOperation.FetchAdd: r[ins->Src] = Interlocked.Add(ref cell, v) - v; break;
            case AtomicOperation.FetchOr: r[ins->Src] = Interlocked.Or(ref cell, v); break;
            case AtomicOperation.FetchAnd: r[ins->Src] = Interlocked.And(ref cell, v); break;
            case AtomicOperation.FetchXor: r[ins->Src] = Xor32(ref cell, v); break;
            case AtomicOperation.Xchg: r[ins->Src] = Interlocked.Exchange(ref cell, v); break;
            case AtomicOperation.CmpXchg: r[0] = Interlocked.CompareExchange(ref cell, v, (uint)r[0]); break;
        }
    }

    private static void Atomic64(ulong* r, DecodedInstruction* ins, ulong* p)
    {
        ref ulong cell = ref *p;
        ulong v = r[ins->Src];
        switch ((AtomicOperation)ins->Imm)
        {
            case AtomicOperation.Add: Interlocked.Add(ref cell, v); break;
            case AtomicOperation.Or: Interlocked.Or(ref cell, v); break;
            case AtomicOperation.And: Interlocked.And(ref cell, v); break;
            case AtomicOperation.Xor: Xor64(ref cell, v); break;
            case AtomicOperation.FetchAdd: r[ins->Src] = Interlocked.Add(ref cell, v) - v; break;
            case AtomicOperation.FetchOr: r[ins->Src] = Interlocked.Or(ref cell, v); break;
            case AtomicOperation.FetchAnd: r[ins->Src] = Interlocked.And(ref cell, v); break;
            case AtomicOperation.FetchXor: r[ins->Src] = Xor64(ref cell, v); break;
            case AtomicOperation.Xchg: r[ins->Src] = Interlocked.Exchange(ref cell, v); break;
            case AtomicOperation.CmpXchg: r[0] = Interlocked.CompareExchange(ref cell, v, r[0]); break;
        }
    }

    internal static uint Xor32(ref uint cell, uint v)
    {
        uint old;
        do
            old = Volatile.Read(ref cell);
        while (Interlocked.CompareExchange(ref cell, old ^ v, old) != old);
        return old;
    }

    internal static ulong Xor64(ref ulong cell, ulong v)
    {
        ulong old;
        do
            old = Volatile.Read(ref cell);
        while (Interlocked.CompareExchange(ref cell, old ^ v, old) != old);
        return old;
    }
}
