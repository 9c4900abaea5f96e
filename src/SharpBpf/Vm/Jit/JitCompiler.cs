using System.Buffers.Binary;
using System.Diagnostics;
using System.Reflection;
using System.Reflection.Emit;
using SharpBpf.Asm;
using OpCode = System.Reflection.Emit.OpCode;

namespace SharpBpf.Vm.Jit;

/// <summary>
/// The compiled form of one program: <c>r0 = Body(e, regs, startPc, baseDepth)</c>.
/// <para><c>regs</c> is a 13-slot block owned by the driver: r0-r10 on entry; when the run has to continue in
/// another program (a successful tail call, or a return into a caller of another program after one) the body
/// stores r0-r10 back, the index to resume at in slot 11 and 1 in slot 12, and returns. <c>startPc</c> is a
/// function entry or a return index.</para>
/// </summary>
internal unsafe delegate ulong JitBody(VmExecution e, ulong* regs, int startPc, int baseDepth);

/// <summary>A program compiled by <see cref="JitCompiler"/>.</summary>
internal sealed class JitCode(JitBody body, JitTier tier, bool checkMemory, TimeSpan compileTime, TimeSpan emitTime, int ilBytes, int nativeBytes = 0)
{
    public JitBody Body { get; } = body;
    public JitTier Tier { get; } = tier;
    /// <summary>Whether any access was compiled with its check (every one in checked mode; the unproven ones of a verified program).</summary>
    public bool CheckMemory { get; } = checkMemory;
    /// <summary>Emitting the IL plus RyuJIT.</summary>
    public TimeSpan CompileTime { get; } = compileTime;
    /// <summary>Emitting the IL alone.</summary>
    public TimeSpan EmitTime { get; } = emitTime;
    public int IlBytes { get; } = ilBytes;
    /// <summary>Bytes of machine code the baseline tier wrote (0 for the IL tiers, whose code RyuJIT writes).</summary>
    public int NativeBytes { get; } = nativeBytes;
}

/// <summary>
/// Compiles a <see cref="VmProgram"/>'s decoded instructions to one <see cref="DynamicMethod"/> named after the
/// program. BPF registers are IL locals (RyuJIT enregisters them), each basic block is straight-line IL, jumps are IL
/// branches. Semantics are the interpreter's, instruction for instruction: the same trap kinds and messages come from
/// the same <see cref="VmExecution"/> methods, budget charges happen at the same backward jumps.
/// <code>
///   prologue: r0..r10 = regs[0..10]; pc = startPc; goto Dispatch
///   Dispatch: switch (pc) { function entries, return indexes } (entry, callx, return from a call)
///   L_i:      instruction i as IL ...
///   L_n:      FellOff trap
/// </code>
/// </summary>
internal static unsafe class JitCompiler
{
    private const BindingFlags Any = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.Instance;

    private static readonly MethodInfo s_load4Unchecked = Rt(nameof(JitRuntime.Load4Unchecked)),
        s_checkAtomic = Rt(nameof(JitRuntime.CheckAtomic)), s_atomic32 = Rt(nameof(JitRuntime.Atomic32)),
        s_atomic64 = Rt(nameof(JitRuntime.Atomic64)), s_cmpxchg32 = Rt(nameof(JitRuntime.CmpXchg32)),
        s_cmpxchg64 = Rt(nameof(JitRuntime.CmpXchg64)), s_charge = Rt(nameof(JitRuntime.Charge)),
        s_fellOff = Rt(nameof(JitRuntime.FellOff)), s_unreachable = Rt(nameof(JitRuntime.Unreachable)),
        s_setPc = Rt(nameof(JitRuntime.SetPc)),
        s_pushFrame = Rt(nameof(JitRuntime.PushFrame)), s_popFrame = Rt(nameof(JitRuntime.PopFrame)),
        s_saved = Rt(nameof(JitRuntime.Saved)), s_tailCall = Rt(nameof(JitRuntime.TailCall)),
        s_callRegister = Rt(nameof(JitRuntime.CallRegister)),
        s_div64 = Ar(nameof(JitArithmetic.Div64)), s_mod64 = Ar(nameof(JitArithmetic.Mod64)),
        s_div32 = Ar(nameof(JitArithmetic.Div32)), s_mod32 = Ar(nameof(JitArithmetic.Mod32)),
        s_sdiv64 = Ar(nameof(JitArithmetic.SDiv64)), s_smod64 = Ar(nameof(JitArithmetic.SMod64)),
        s_sdiv32 = Ar(nameof(JitArithmetic.SDiv32)), s_smod32 = Ar(nameof(JitArithmetic.SMod32)),
        s_swap16 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(ushort)])!,
        s_swap32 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(uint)])!,
        s_swap64 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(ulong)])!;

    private static readonly FieldInfo s_callDepth = typeof(VmExecution).GetField(nameof(VmExecution.CallDepth), Any)!,
        s_stackLow = typeof(VmExecution).GetField(nameof(VmExecution.StackLow), Any)!,
        s_stackTop = typeof(VmExecution).GetField(nameof(VmExecution.StackTop), Any)!,
        s_packetLow = typeof(VmExecution).GetField(nameof(VmExecution.PacketLow), Any)!,
        s_packetSpan = typeof(VmExecution).GetField(nameof(VmExecution.PacketSpan), Any)!;
    private static readonly MethodInfo s_load1 = Rt(nameof(JitRuntime.Load1)), s_load2 = Rt(nameof(JitRuntime.Load2)),
        s_load4 = Rt(nameof(JitRuntime.Load4)), s_load8 = Rt(nameof(JitRuntime.Load8)),
        s_store1 = Rt(nameof(JitRuntime.Store1)), s_store2 = Rt(nameof(JitRuntime.Store2)),
        s_store4 = Rt(nameof(JitRuntime.Store4)), s_store8 = Rt(nameof(JitRuntime.Store8));
    private static readonly MethodInfo s_loadSlow = Rt(nameof(JitRuntime.LoadSlow)), s_storeSlow = Rt(nameof(JitRuntime.StoreSlow)),
        s_misalignedAtomic = Rt(nameof(JitRuntime.MisalignedAtomic)),
        s_getXdp = typeof(VmExecution).GetProperty(nameof(VmExecution.Xdp))!.GetMethod!;
    private static readonly FieldInfo s_xdpData = typeof(Xdp.XdpContext).GetField(nameof(Xdp.XdpContext.Data), Any)!,
        s_xdpDataEnd = typeof(Xdp.XdpContext).GetField(nameof(Xdp.XdpContext.DataEnd), Any)!,
        s_xdpDataMeta = typeof(Xdp.XdpContext).GetField(nameof(Xdp.XdpContext.DataMeta), Any)!;

    private static readonly Type[] s_parameters = [typeof(VmExecution), typeof(ulong*), typeof(int), typeof(int)];

    private static MethodInfo Rt(string name) => typeof(JitRuntime).GetMethod(name, Any) ?? throw new UnreachableException(name);
    private static MethodInfo Ar(string name) => typeof(JitArithmetic).GetMethod(name, Any) ?? throw new UnreachableException(name);

    /// <summary>The program's code for <paramref name="tier"/>, compiling it on first use (tail-call targets, the
    /// background compile). Compiles of one program are serialised; different programs compile concurrently. Null
    /// when no code can be had for it (NativeAOT, and the baseline tier does not handle it).</summary>
    public static JitCode? For(VmProgram program, JitTier tier)
    {
        if (program.JitCode is { } code && code.Tier >= tier)
            return code;
        if (program.NoJitCode)
            return null;
        lock (program.JitLock)
        {
            if (program.JitCode is { } again && (again.Tier >= tier || !JitEngine.IlAvailable))
                return again; // without IL (NativeAOT) baseline code is all there is
            if (Compile(program, tier) is not { } compiled)
            {
                program.NoJitCode = true; // no IL here, and the baseline tier does not handle the program
                return null;
            }
            if (program.FirstCompileTicks == 0)
                Volatile.Write(ref program.FirstCompileTicks, Math.Max(1, compiled.CompileTime.Ticks));
            Volatile.Write(ref program.JitCode, compiled);
            return compiled;
        }
    }

    /// <summary>
    /// Locals the quick tier's method declares in all, most of them unused. RyuJIT has no option a
    /// <see cref="DynamicMethod"/> could set for its quick mode (MinOpts: no inlining, no SSA, value numbering or CSE,
    /// locals in the frame), but switches to it on its own for a method with more than 2,000 locals (its
    /// DEFAULT_MIN_OPTS_LV_NUM_COUNT; also for more than 60,000 bytes of IL, 20,000 IL instructions, 2,000 basic blocks
    /// or 8,000 local references). The unused locals cost a few bytes of signature and 8 KB of frame.
    /// If a later runtime drops that rule, quick code is compiled optimised: slower to compile, the same results.
    /// </summary>
    private const int QuickTierLocals = 2048;

    // Deepest IL stack the emitter builds (callx: e, target, pc, r1-r5, &scratch), with room to spare.
    private const int MaxStack = 16;

    /// <summary>Emits and compiles the program to one <see cref="DynamicMethod"/> named after it, its IL written by
    /// <see cref="IlWriter"/> (RyuJIT runs here, not on the first call). The baseline tier writes native code instead,
    /// where it can; where it cannot, the program gets quick IL. Where no IL can be compiled (NativeAOT) every tier is
    /// the baseline tier, and a program it does not handle gets nothing (null): the interpreter runs it.</summary>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("AOT", "IL3050:RequiresDynamicCode",
        Justification = "IL is compiled only where JitEngine.IlAvailable (RuntimeFeature.IsDynamicCodeSupported) says it can run; under NativeAOT For compiles baseline code or nothing.")]
    public static JitCode? Compile(VmProgram program, JitTier tier)
    {
        if (tier == JitTier.Baseline || !JitEngine.IlAvailable)
        {
            if (Baseline.BaselineCompiler.TryCompile(program) is { } native)
                return native;
            if (!JitEngine.IlAvailable)
                return null;
            tier = JitTier.Quick;
        }
        var watch = Stopwatch.StartNew();
        var method = new DynamicMethod("bpf_" + program.Name, typeof(ulong), s_parameters, typeof(JitCompiler).Module, skipVisibility: true)
        {
            InitLocals = false, // every local is written before it is read
        };
        var il = new IlWriter(method, program.Code.Length * 12);
        var emitter = new Emitter(program, il, tier);
        emitter.Emit();
        if (tier == JitTier.Quick)
            il.DeclareUnusedLocals(QuickTierLocals - il.LocalCount);
        il.Complete(MaxStack);
        var emitTime = watch.Elapsed;
        var body = (JitBody)method.CreateDelegate(typeof(JitBody));
        // Force RyuJIT now, so compile time is paid at load and measured here.
        System.Runtime.CompilerServices.RuntimeHelpers.PrepareDelegate(body);
        watch.Stop();
        return new JitCode(body, tier, emitter.HasCheckedAccesses, watch.Elapsed, emitTime, emitter.IlSize);
    }

    /// <summary>How one memory access is compiled.</summary>
    internal enum Access : byte
    {
        /// <summary>Not a memory access.</summary>
        None,
        /// <summary>Stack/packet check (inline on the optimised tier, a JitRuntime.LoadN/StoreN call on the quick tier), slow
        /// path for the rest (checked mode; unproven accesses of verified programs).</summary>
        Checked,
        /// <summary>Plain load or store.</summary>
        Raw,
        /// <summary>4-byte load that may hit the xdp_md block (unchecked mode without facts, or a fact naming ctx and more).</summary>
        Load4MaybeContext,
        /// <summary>xdp_md data / data_end / data_meta, read from the frame (the verifier proved r = ctx + 0).</summary>
        ContextData, ContextDataEnd, ContextDataMeta,
    }

    /// <summary>
    /// Decides per instruction how its memory access is compiled. Unverified checked programs: every access checked.
    /// Unverified unchecked programs (<c>CheckMemory = false</c>): plain, 4-byte loads compare with the context. Verified
    /// programs: what the verifier proved (an access without a proven fact, which the verifier found unreachable,
    /// keeps its check).
    /// </summary>
    internal static Access[] PlanAccesses(VmProgram program, DecodedInstruction[] code)
    {
        var plan = new Access[code.Length];
        var facts = program.AccessFacts;
        for (int pc = 0; pc < program.InstructionCount; pc++)
        {
            ref readonly var ins = ref code[pc];
            int cls = ins.Op & 0x07;
            bool load = cls == 0x01 && (ins.Op & 0xe0) is 0x60 or 0x80; // LDX MEM / MEMSX
            bool store = cls is 0x02 or 0x03 && (ins.Op & 0xe0) == 0x60;
            bool atomic = ins.Op is VmOp.AtomicWord or VmOp.AtomicDoubleWord;
            if (!load && !store && !atomic)
                continue;
            if (program.CheckMemory)
            {
                plan[pc] = Access.Checked;
                continue;
            }
            if (facts is null)
            {
                plan[pc] = load && ins.Size == 4 ? Access.Load4MaybeContext : Access.Raw;
                continue;
            }
            if (!facts.TryGetValue(pc, out var fact) || !fact.ProvenInBounds)
            {
                plan[pc] = Access.Checked;
                continue;
            }
            var regions = fact.Regions;
            if ((regions & Verifier.MemoryRegion.Context) == 0)
                plan[pc] = Access.Raw;
            else if (!load)
                plan[pc] = Access.Checked; // the verifier refuses ctx stores and atomics; never trust one
            else if (regions != Verifier.MemoryRegion.Context)
                plan[pc] = ins.Size == 4 ? Access.Load4MaybeContext : Access.Raw;
            else
                plan[pc] = ins.Size != 4 ? Access.Raw : ins.Offset switch
                {
                    0 => Access.ContextData,
                    4 => Access.ContextDataEnd,
                    8 => Access.ContextDataMeta,
                    _ => Access.Raw,
                };
        }
        return plan;
    }

    private sealed class Emitter
    {
        private readonly VmProgram _program;
        private readonly IlWriter _il;
        private readonly DecodedInstruction[] _code;
        private readonly Access[] _plan;
        // Whether any access is checked inline: only then are the stack and packet bounds kept in locals.
        private readonly bool _hasChecked;
        // Whether checked accesses test stack and packet inline (optimised tier), with the bounds kept in locals; the
        // quick tier calls JitRuntime.LoadN/StoreN instead (a fifth of the IL, so a fifth of RyuJIT's work).
        private readonly bool _inlineChecks;
        private readonly IlLocal[] _r = new IlLocal[11];
        private readonly IlLocal _pc, _scratch, _address, _offset;
        // Copies of the execution's stack and packet bounds, so the inline checks read locals (registers) instead of
        // fields. Reloaded wherever they can change: at Dispatch (entry, callx, return from a call), after a local
        // call, and (packet) after every helper call.
        private readonly IlLocal _stackLow, _stackSpan, _packetLow, _packetSpan;
        private readonly IlLabel[] _labels;
        private readonly IlLabel _dispatch;
        private readonly bool[] _resumable;
        private IlLabel? _popPath;

        public Emitter(VmProgram program, IlWriter il, JitTier tier)
        {
            _program = program;
            _il = il;
            _code = program.Code.ToArray();
            _plan = PlanAccesses(program, _code);
            _hasChecked = Array.IndexOf(_plan, Access.Checked) >= 0;
            _inlineChecks = _hasChecked && tier == JitTier.Optimized;
            for (int i = 0; i < 11; i++)
                _r[i] = il.DeclareLocal(typeof(ulong));
            _pc = il.DeclareLocal(typeof(int));
            _scratch = il.DeclareLocal(typeof(ulong));
            _address = il.DeclareLocal(typeof(ulong));
            _offset = il.DeclareLocal(typeof(ulong));
            _stackLow = il.DeclareLocal(typeof(ulong));
            _stackSpan = il.DeclareLocal(typeof(ulong));
            _packetLow = il.DeclareLocal(typeof(ulong));
            _packetSpan = il.DeclareLocal(typeof(ulong));
            _labels = new IlLabel[_code.Length];
            for (int i = 0; i < _labels.Length; i++)
                _labels[i] = il.DefineLabel();
            _dispatch = il.DefineLabel();
            _resumable = new bool[_code.Length];
            _resumable[0] = true;
            for (int i = 0; i < program.InstructionCount; i++)
            {
                if (program.FunctionIndexOf((ulong)(program.CodePointer + i)) >= 0)
                    _resumable[i] = true;
                byte op = _code[i].Op;
                if (op is VmOp.LocalCall or VmOp.CallRegister)
                    _resumable[i + 1] = true;
            }
        }

        public int IlSize => _il.ILOffset;

        public bool HasCheckedAccesses => _hasChecked;

        public void Emit()
        {
            var il = _il;
            for (int i = 0; i < 11; i++)
            {
                il.Emit(OpCodes.Ldarg_1);
                if (i > 0)
                {
                    I4(i * 8);
                    il.Emit(OpCodes.Add);
                }
                il.Emit(OpCodes.Ldind_I8);
                il.Emit(OpCodes.Stloc, _r[i]);
            }
            il.Emit(OpCodes.Ldarg_2);
            il.Emit(OpCodes.Stloc, _pc);

            // Dispatch: the only indirect entry into the body (start, callx, return from a call).
            var bad = il.DefineLabel();
            il.MarkLabel(_dispatch);
            ReloadStack();
            ReloadPacket();
            int resumable = 0;
            foreach (bool r in _resumable)
                resumable += r ? 1 : 0;
            if (resumable <= 8)
            {
                // Few entries (one function, few calls): compares, not a table with a slot per instruction.
                for (int i = 0; i < _code.Length; i++)
                {
                    if (!_resumable[i])
                        continue;
                    il.Emit(OpCodes.Ldloc, _pc);
                    I4(i);
                    il.Emit(OpCodes.Beq, _labels[i]);
                }
            }
            else
            {
                var table = new IlLabel[_code.Length];
                for (int i = 0; i < table.Length; i++)
                    table[i] = _resumable[i] ? _labels[i] : bad;
                il.Emit(OpCodes.Ldloc, _pc);
                il.Emit(OpCodes.Switch, table);
            }
            il.MarkLabel(bad);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldloc, _pc);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Call, s_fellOff);
            il.Emit(OpCodes.Ldc_I8, 0L);
            il.Emit(OpCodes.Ret);

            for (int pc = 0; pc < _code.Length; pc++)
            {
                if (IsDead(pc))
                {
                    pc = EmitDeadRun(pc);
                    continue;
                }
                il.MarkLabel(_labels[pc]);
                EmitInstruction(pc);
            }
            EmitPopPath();
        }

        /// <summary>Whether the verifier proved no path reaches instruction <paramref name="pc"/> (verified programs).</summary>
        private bool IsDead(int pc) => _program.Reached is { } reached && pc < reached.Count && !reached[pc];

        /// <summary>
        /// Dead code, a run of instructions no verified path reaches (from <paramref name="first"/>): one trap in place
        /// of all of them, as the kernel's JIT never sees the instructions its verifier did not reach (less IL to
        /// compile). Every label of the run marks the trap, so even a jump the verifier ruled out cannot run what
        /// follows. Returns the run's last index.
        /// </summary>
        private int EmitDeadRun(int first)
        {
            int last = first;
            while (last + 1 < _code.Length && IsDead(last + 1))
                last++;
            for (int pc = first; pc <= last; pc++)
                _il.MarkLabel(_labels[pc]);
            _il.Emit(OpCodes.Ldarg_0);
            I4(first);
            Call(s_unreachable);
            I8(0);
            _il.Emit(OpCodes.Ret);
            return last;
        }

        private void ReloadStack()
        {
            if (!_inlineChecks)
                return;
            var il = _il;
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_stackLow);
            il.Emit(OpCodes.Stloc, _stackLow);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_stackTop);
            il.Emit(OpCodes.Ldloc, _stackLow);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Stloc, _stackSpan);
        }

        private void ReloadPacket()
        {
            if (!_inlineChecks)
                return;
            var il = _il;
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_packetLow);
            il.Emit(OpCodes.Stloc, _packetLow);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_packetSpan);
            il.Emit(OpCodes.Stloc, _packetSpan);
        }

        private void Ld(int reg) => _il.Emit(OpCodes.Ldloc, _r[reg]);
        private void St(int reg) => _il.Emit(OpCodes.Stloc, _r[reg]);
        // x86 and x64 load and store at any alignment and RyuJIT ignores the prefix there: leave it out (less IL).
        private static readonly bool s_unalignedPrefix = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture
            is not (System.Runtime.InteropServices.Architecture.X64 or System.Runtime.InteropServices.Architecture.X86);

        private void I8(long v)
        {
            if (v == (int)v)
            {
                // ldc.i4 + conv.i8 is 2-6 bytes of IL against 9; RyuJIT folds the widening at import.
                I4((int)v);
                _il.Emit(OpCodes.Conv_I8);
            }
            else
            {
                _il.Emit(OpCodes.Ldc_I8, v);
            }
        }

        private void I4(int v)
        {
            var il = _il;
            switch (v)
            {
                case -1: il.Emit(OpCodes.Ldc_I4_M1); return;
                case 0: il.Emit(OpCodes.Ldc_I4_0); return;
                case 1: il.Emit(OpCodes.Ldc_I4_1); return;
                case 2: il.Emit(OpCodes.Ldc_I4_2); return;
                case 3: il.Emit(OpCodes.Ldc_I4_3); return;
                case 4: il.Emit(OpCodes.Ldc_I4_4); return;
                case 5: il.Emit(OpCodes.Ldc_I4_5); return;
                case 6: il.Emit(OpCodes.Ldc_I4_6); return;
                case 7: il.Emit(OpCodes.Ldc_I4_7); return;
                case 8: il.Emit(OpCodes.Ldc_I4_8); return;
            }
            if (v == (sbyte)v)
                il.Emit(OpCodes.Ldc_I4_S, (sbyte)v);
            else
                il.Emit(OpCodes.Ldc_I4, v);
        }
        private void Call(MethodInfo m) => _il.Emit(OpCodes.Call, m);

        /// <summary>Source operand: the register, or the sign-extended immediate (64-bit).</summary>
        private void Src64(in DecodedInstruction ins, bool register)
        {
            if (register) Ld(ins.Src);
            else I8(ins.Imm);
        }

        /// <summary>Source operand as an int32 on the IL stack.</summary>
        private void Src32(in DecodedInstruction ins, bool register)
        {
            if (register)
            {
                Ld(ins.Src);
                _il.Emit(OpCodes.Conv_U4);
            }
            else
            {
                I4((int)ins.Imm);
            }
        }

        private void EmitInstruction(int pc)
        {
            var il = _il;
            ref readonly var ins = ref _code[pc];

            byte op = ins.Op;
            int d = ins.Dst;
            bool reg = (op & 0x08) != 0;
            switch (op)
            {
                // ---- ALU64 ----
                case 0x07 or 0x0f: Binary64(ins, reg, OpCodes.Add); return;
                case 0x17 or 0x1f: Binary64(ins, reg, OpCodes.Sub); return;
                case 0x27 or 0x2f: Binary64(ins, reg, OpCodes.Mul); return;
                case 0x47 or 0x4f: Binary64(ins, reg, OpCodes.Or); return;
                case 0x57 or 0x5f: Binary64(ins, reg, OpCodes.And); return;
                case 0xa7 or 0xaf: Binary64(ins, reg, OpCodes.Xor); return;
                case 0x37 or 0x3f: Call64(ins, reg, s_div64); return;
                case 0x97 or 0x9f: Call64(ins, reg, s_mod64); return;
                case VmOp.SDiv64Imm or VmOp.SDiv64Reg: Call64(ins, op == VmOp.SDiv64Reg, s_sdiv64); return;
                case VmOp.SMod64Imm or VmOp.SMod64Reg: Call64(ins, op == VmOp.SMod64Reg, s_smod64); return;
                case 0x67 or 0x6f: Shift64(ins, reg, OpCodes.Shl); return;
                case 0x77 or 0x7f: Shift64(ins, reg, OpCodes.Shr_Un); return;
                case 0xc7 or 0xcf: Shift64(ins, reg, OpCodes.Shr); return;
                case 0x87: Ld(d); il.Emit(OpCodes.Neg); St(d); return;
                case 0xb7: I8(ins.Imm); St(d); return;
                case 0xbf: Ld(ins.Src); St(d); return;
                case VmOp.MovSx64From8: Ld(ins.Src); il.Emit(OpCodes.Conv_I1); il.Emit(OpCodes.Conv_I8); St(d); return;
                case VmOp.MovSx64From16: Ld(ins.Src); il.Emit(OpCodes.Conv_I2); il.Emit(OpCodes.Conv_I8); St(d); return;
                case VmOp.MovSx64From32: Ld(ins.Src); il.Emit(OpCodes.Conv_I4); il.Emit(OpCodes.Conv_I8); St(d); return;

                // ---- ALU32: computed on int32, zero-extended by conv.u8 ----
                case 0x04 or 0x0c: Binary32(ins, reg, OpCodes.Add); return;
                case 0x14 or 0x1c: Binary32(ins, reg, OpCodes.Sub); return;
                case 0x24 or 0x2c: Binary32(ins, reg, OpCodes.Mul); return;
                case 0x44 or 0x4c: Binary32(ins, reg, OpCodes.Or); return;
                case 0x54 or 0x5c: Binary32(ins, reg, OpCodes.And); return;
                case 0xa4 or 0xac: Binary32(ins, reg, OpCodes.Xor); return;
                case 0x34 or 0x3c: Call64(ins, reg, s_div32, imm32: true); return;
                case 0x94 or 0x9c: Call64(ins, reg, s_mod32, imm32: true); return;
                case VmOp.SDiv32Imm or VmOp.SDiv32Reg: Call64(ins, op == VmOp.SDiv32Reg, s_sdiv32, imm32: true); return;
                case VmOp.SMod32Imm or VmOp.SMod32Reg: Call64(ins, op == VmOp.SMod32Reg, s_smod32, imm32: true); return;
                case 0x64 or 0x6c: Shift32(ins, reg, OpCodes.Shl); return;
                case 0x74 or 0x7c: Shift32(ins, reg, OpCodes.Shr_Un); return;
                case 0xc4 or 0xcc: Shift32(ins, reg, OpCodes.Shr); return;
                case 0x84: Ld(d); il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Neg); il.Emit(OpCodes.Conv_U8); St(d); return;
                case 0xb4: I8((long)(uint)ins.Imm); St(d); return;
                case 0xbc: Ld(ins.Src); il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Conv_U8); St(d); return;
                case VmOp.MovSx32From8: Ld(ins.Src); il.Emit(OpCodes.Conv_I1); il.Emit(OpCodes.Conv_U8); St(d); return;
                case VmOp.MovSx32From16: Ld(ins.Src); il.Emit(OpCodes.Conv_I2); il.Emit(OpCodes.Conv_U8); St(d); return;

                // ---- byte order ----
                case VmOp.Truncate16: Ld(d); il.Emit(OpCodes.Conv_U2); il.Emit(OpCodes.Conv_U8); St(d); return;
                case VmOp.Truncate32: Ld(d); il.Emit(OpCodes.Conv_U4); il.Emit(OpCodes.Conv_U8); St(d); return;
                case VmOp.Nop: return;
                case VmOp.Swap16: Ld(d); il.Emit(OpCodes.Conv_U2); Call(s_swap16); il.Emit(OpCodes.Conv_U8); St(d); return;
                case VmOp.Swap32: Ld(d); il.Emit(OpCodes.Conv_U4); Call(s_swap32); il.Emit(OpCodes.Conv_U8); St(d); return;
                case VmOp.Swap64: Ld(d); Call(s_swap64); St(d); return;

                case VmOp.LoadImm64: I8(ins.Imm); St(d); return;

                // ---- loads ----
                case 0x71: Load(ins, pc, 1, signed: false); return;
                case 0x69: Load(ins, pc, 2, signed: false); return;
                case 0x61: Load(ins, pc, 4, signed: false); return;
                case 0x79: Load(ins, pc, 8, signed: false); return;
                case 0x91: Load(ins, pc, 1, signed: true); return;
                case 0x89: Load(ins, pc, 2, signed: true); return;
                case 0x81: Load(ins, pc, 4, signed: true); return;

                // ---- stores ----
                case 0x72 or 0x73: Store(ins, pc, 1, reg: op == 0x73); return;
                case 0x6a or 0x6b: Store(ins, pc, 2, reg: op == 0x6b); return;
                case 0x62 or 0x63: Store(ins, pc, 4, reg: op == 0x63); return;
                case 0x7a or 0x7b: Store(ins, pc, 8, reg: op == 0x7b); return;

                case VmOp.AtomicWord or VmOp.AtomicDoubleWord: Atomic(ins, pc); return;

                // ---- jumps ----
                case VmOp.Jump: Jump(pc, ins.Offset); return;

                // ---- calls ----
                case VmOp.CallHelper: CallHelper(ins, pc); return;
                case VmOp.TailCall: TailCall(pc); return;
                case VmOp.LocalCall:
                    SaveRegs(0, 9);
                    PushFrame(pc);
                    ReloadStack();
                    il.Emit(OpCodes.Br, _labels[ins.Offset]);
                    return;
                case VmOp.CallRegister: CallRegister(ins, pc); return;
                case VmOp.Exit: Exit(); return;
            }
            if ((op & 0x07) is 0x05 or 0x06 && op != VmOp.Jump && op != VmOp.CallHelper && op != VmOp.Exit && ConditionalJump(ins, pc))
                return;
            // The sentinel after the last instruction, or anything the decoder never produces: trap as the interpreter.
            il.Emit(OpCodes.Ldarg_0);
            I4(pc);
            I4(op);
            Call(s_fellOff);
            I8(0);
            il.Emit(OpCodes.Ret);
        }

        private void Binary64(in DecodedInstruction ins, bool reg, OpCode opcode)
        {
            Ld(ins.Dst);
            Src64(ins, reg);
            _il.Emit(opcode);
            St(ins.Dst);
        }

        private void Binary32(in DecodedInstruction ins, bool reg, OpCode opcode)
        {
            Ld(ins.Dst);
            _il.Emit(OpCodes.Conv_U4);
            Src32(ins, reg);
            _il.Emit(opcode);
            _il.Emit(OpCodes.Conv_U8);
            St(ins.Dst);
        }

        private void Call64(in DecodedInstruction ins, bool reg, MethodInfo method, bool imm32 = false)
        {
            Ld(ins.Dst);
            if (reg) Ld(ins.Src);
            else I8(imm32 ? (long)(uint)ins.Imm : ins.Imm);
            Call(method);
            St(ins.Dst);
        }

        private void Shift64(in DecodedInstruction ins, bool reg, OpCode opcode)
        {
            Ld(ins.Dst);
            if (reg)
            {
                Ld(ins.Src);
                _il.Emit(OpCodes.Conv_I4);
                I4(63);
                _il.Emit(OpCodes.And);
            }
            else
            {
                I4((int)(ins.Imm & 63));
            }
            _il.Emit(opcode);
            St(ins.Dst);
        }

        private void Shift32(in DecodedInstruction ins, bool reg, OpCode opcode)
        {
            Ld(ins.Dst);
            _il.Emit(OpCodes.Conv_U4);
            if (reg)
            {
                Ld(ins.Src);
                _il.Emit(OpCodes.Conv_I4);
                I4(31);
                _il.Emit(OpCodes.And);
            }
            else
            {
                I4((int)(ins.Imm & 31));
            }
            _il.Emit(opcode);
            _il.Emit(OpCodes.Conv_U8);
            St(ins.Dst);
        }

        /// <summary>base + offset as a native address: <c>conv.u</c> first, then the 16-bit offset as an int32, which
        /// the native-int addition sign-extends (one IL instruction fewer than a 64-bit add and a conversion).</summary>
        private void NativeAddress(int baseRegister, int offset)
        {
            Ld(baseRegister);
            _il.Emit(OpCodes.Conv_U);
            if (offset != 0)
            {
                I4(offset);
                _il.Emit(OpCodes.Add);
            }
        }

        private void Address(int baseRegister, int offset)
        {
            Ld(baseRegister);
            if (offset != 0)
            {
                I8(offset);
                _il.Emit(OpCodes.Add);
            }
        }

        /// <summary>
        /// The inline check of checked mode, on the address in <c>_address</c>: branches to <paramref name="fast"/>
        /// when [a, a+size) lies in the stack (current and callers' frames) or the packet, else falls through.
        /// <code>
        ///   if (a - StackLow &lt;= (StackTop - StackLow) - size) goto fast
        ///   o = a - PacketLow; if (o &lt; PacketSpan &amp;&amp; PacketSpan - o >= size) goto fast
        /// </code>
        /// </summary>
        private void FastCheck(int size, IlLabel fast)
        {
            var il = _il;
            var slow = il.DefineLabel();
            il.Emit(OpCodes.Ldloc, _address);
            il.Emit(OpCodes.Ldloc, _stackLow);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Ldloc, _stackSpan);
            I8(size);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Ble_Un, fast);
            il.Emit(OpCodes.Ldloc, _address);
            il.Emit(OpCodes.Ldloc, _packetLow);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Stloc, _offset);
            il.Emit(OpCodes.Ldloc, _offset);
            il.Emit(OpCodes.Ldloc, _packetSpan);
            il.Emit(OpCodes.Bge_Un, slow);
            il.Emit(OpCodes.Ldloc, _packetSpan);
            il.Emit(OpCodes.Ldloc, _offset);
            il.Emit(OpCodes.Sub);
            I8(size);
            il.Emit(OpCodes.Bge_Un, fast);
            il.MarkLabel(slow);
        }

        /// <summary>Loads from the native address on the stack.</summary>
        private void RawLoad(int size, bool signed)
        {
            var il = _il;
            if (size != 1 && s_unalignedPrefix)
                il.Emit(OpCodes.Unaligned, (byte)1);
            il.Emit(size switch
            {
                1 => signed ? OpCodes.Ldind_I1 : OpCodes.Ldind_U1,
                2 => signed ? OpCodes.Ldind_I2 : OpCodes.Ldind_U2,
                4 => signed ? OpCodes.Ldind_I4 : OpCodes.Ldind_U4,
                _ => OpCodes.Ldind_I8,
            });
            if (size != 8)
                il.Emit(signed ? OpCodes.Conv_I8 : OpCodes.Conv_U8);
        }

        private void Load(in DecodedInstruction ins, int pc, int size, bool signed)
        {
            var il = _il;
            var access = _plan[pc];
            if (access is Access.ContextData or Access.ContextDataEnd or Access.ContextDataMeta)
            {
                // As the kernel rewrites these ctx loads: the 64-bit pointer, straight from the frame.
                il.Emit(OpCodes.Ldarg_0);
                Call(s_getXdp);
                il.Emit(OpCodes.Ldfld, access switch { Access.ContextData => s_xdpData, Access.ContextDataEnd => s_xdpDataEnd, _ => s_xdpDataMeta });
                il.Emit(OpCodes.Conv_U8);
                if (signed)
                {
                    il.Emit(OpCodes.Conv_I4);
                    il.Emit(OpCodes.Conv_I8);
                }
                St(ins.Dst);
                return;
            }
            if (access == Access.Checked && !_inlineChecks)
            {
                il.Emit(OpCodes.Ldarg_0);
                Address(ins.Src, ins.Offset);
                I4(pc);
                Call(size switch { 1 => s_load1, 2 => s_load2, 4 => s_load4, _ => s_load8 });
                if (signed)
                {
                    il.Emit(size switch { 1 => OpCodes.Conv_I1, 2 => OpCodes.Conv_I2, _ => OpCodes.Conv_I4 });
                    il.Emit(OpCodes.Conv_I8);
                }
                St(ins.Dst);
                return;
            }
            if (access == Access.Checked)
            {
                var fast = il.DefineLabel();
                var done = il.DefineLabel();
                Address(ins.Src, ins.Offset);
                il.Emit(OpCodes.Stloc, _address);
                FastCheck(size, fast);
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldloc, _address);
                I4(size);
                I4(pc);
                Call(s_loadSlow);
                if (signed)
                {
                    il.Emit(size switch { 1 => OpCodes.Conv_I1, 2 => OpCodes.Conv_I2, _ => OpCodes.Conv_I4 });
                    il.Emit(OpCodes.Conv_I8);
                }
                St(ins.Dst);
                il.Emit(OpCodes.Br, done);
                il.MarkLabel(fast);
                il.Emit(OpCodes.Ldloc, _address);
                il.Emit(OpCodes.Conv_U);
                RawLoad(size, signed);
                St(ins.Dst);
                il.MarkLabel(done);
                return;
            }
            if (access == Access.Load4MaybeContext)
            {
                il.Emit(OpCodes.Ldarg_0);
                Address(ins.Src, ins.Offset);
                I4(pc);
                Call(s_load4Unchecked);
                if (signed)
                {
                    il.Emit(OpCodes.Conv_I4);
                    il.Emit(OpCodes.Conv_I8);
                }
                St(ins.Dst);
                return;
            }
            NativeAddress(ins.Src, ins.Offset);
            RawLoad(size, signed);
            St(ins.Dst);
        }

        /// <summary>Stores to the native address on the stack.</summary>
        private void RawStore(in DecodedInstruction ins, int size, bool reg)
        {
            var il = _il;
            Src64(ins, reg);
            if (size != 1 && s_unalignedPrefix)
                il.Emit(OpCodes.Unaligned, (byte)1);
            il.Emit(size switch { 1 => OpCodes.Stind_I1, 2 => OpCodes.Stind_I2, 4 => OpCodes.Stind_I4, _ => OpCodes.Stind_I8 });
        }

        private void Store(in DecodedInstruction ins, int pc, int size, bool reg)
        {
            var il = _il;
            if (_plan[pc] == Access.Checked && !_inlineChecks)
            {
                il.Emit(OpCodes.Ldarg_0);
                Address(ins.Dst, ins.Offset);
                Src64(ins, reg);
                I4(pc);
                Call(size switch { 1 => s_store1, 2 => s_store2, 4 => s_store4, _ => s_store8 });
                return;
            }
            if (_plan[pc] == Access.Checked)
            {
                var fast = il.DefineLabel();
                var done = il.DefineLabel();
                Address(ins.Dst, ins.Offset);
                il.Emit(OpCodes.Stloc, _address);
                FastCheck(size, fast);
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldloc, _address);
                I4(size);
                Src64(ins, reg);
                I4(pc);
                Call(s_storeSlow);
                il.Emit(OpCodes.Br, done);
                il.MarkLabel(fast);
                il.Emit(OpCodes.Ldloc, _address);
                il.Emit(OpCodes.Conv_U);
                RawStore(ins, size, reg);
                il.MarkLabel(done);
                return;
            }
            NativeAddress(ins.Dst, ins.Offset);
            RawStore(ins, size, reg);
        }

        private void Atomic(in DecodedInstruction ins, int pc)
        {
            var il = _il;
            bool wide = ins.Op == VmOp.AtomicDoubleWord;
            Address(ins.Dst, ins.Offset);
            il.Emit(OpCodes.Stloc, _address);
            if (_plan[pc] == Access.Checked)
            {
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldloc, _address);
                I4(wide ? 8 : 4);
                I4(pc);
                Call(s_checkAtomic);
            }
            else if (_program.Verified)
            {
                // The verifier proved the range but not the alignment: trap a misaligned atomic as checked mode does.
                var aligned = il.DefineLabel();
                il.Emit(OpCodes.Ldloc, _address);
                I8(wide ? 7 : 3);
                il.Emit(OpCodes.And);
                il.Emit(OpCodes.Brfalse, aligned);
                il.Emit(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldloc, _address);
                I4(wide ? 8 : 4);
                I4(pc);
                Call(s_misalignedAtomic);
                il.MarkLabel(aligned);
            }
            var operation = (AtomicOperation)ins.Imm;
            il.Emit(OpCodes.Ldloc, _address);
            Ld(ins.Src);
            if (operation == AtomicOperation.CmpXchg)
            {
                Ld(0);
                Call(wide ? s_cmpxchg64 : s_cmpxchg32);
                St(0);
                return;
            }
            if (!wide)
                il.Emit(OpCodes.Conv_U4);
            I4((int)ins.Imm);
            Call(wide ? s_atomic64 : s_atomic32);
            if (!wide)
                il.Emit(OpCodes.Conv_U8);
            bool fetch = operation is AtomicOperation.FetchAdd or AtomicOperation.FetchOr or AtomicOperation.FetchAnd
                or AtomicOperation.FetchXor or AtomicOperation.Xchg;
            if (fetch)
                St(ins.Src);
            else
                il.Emit(OpCodes.Pop);
        }

        /// <summary>Charges a backward jump to the budget, as the interpreter does.</summary>
        private void ChargeIfBackward(int pc, int to)
        {
            if (to > pc)
                return;
            _il.Emit(OpCodes.Ldarg_0);
            I8(pc - to + 1);
            I4(pc);
            Call(s_charge);
        }

        private void Jump(int pc, int to)
        {
            ChargeIfBackward(pc, to);
            _il.Emit(OpCodes.Br, _labels[to]);
        }

        private bool ConditionalJump(in DecodedInstruction ins, int pc)
        {
            var il = _il;
            byte op = ins.Op;
            bool wide = (op & 0x07) == 0x05;
            bool reg = (op & 0x08) != 0;
            int kind = op & 0xf0;
            bool signed = kind is 0x60 or 0x70 or 0xc0 or 0xd0;
            OpCode? branch = kind switch
            {
                0x10 => OpCodes.Beq,
                0x20 => OpCodes.Bgt_Un,
                0x30 => OpCodes.Bge_Un,
                0x40 => OpCodes.Brtrue,
                0x50 => OpCodes.Bne_Un,
                0x60 => OpCodes.Bgt,
                0x70 => OpCodes.Bge,
                0xa0 => OpCodes.Blt_Un,
                0xb0 => OpCodes.Ble_Un,
                0xc0 => OpCodes.Blt,
                0xd0 => OpCodes.Ble,
                _ => null,
            };
            if (branch is null)
                return false;
            Ld(ins.Dst);
            if (!wide)
                il.Emit(signed ? OpCodes.Conv_I4 : OpCodes.Conv_U4);
            if (wide) Src64(ins, reg);
            else Src32(ins, reg);
            if (kind == 0x40)
                il.Emit(OpCodes.And);
            int to = ins.Offset;
            if (to > pc)
            {
                il.Emit(branch.Value, _labels[to]);
                return true;
            }
            var taken = il.DefineLabel();
            var next = il.DefineLabel();
            il.Emit(branch.Value, taken);
            il.Emit(OpCodes.Br, next);
            il.MarkLabel(taken);
            Jump(pc, to);
            il.MarkLabel(next);
            return true;
        }

        private void CallHelper(in DecodedInstruction ins, int pc)
        {
            var il = _il;
            if (!_program.Helpers.TryGet((int)ins.Imm, out var helper))
                throw new UnreachableException($"program '{_program.Name}': instruction {pc}: helper {ins.Imm} passed the decoder but is not in the table");
            il.Emit(OpCodes.Ldarg_0);
            I4(pc);
            Call(s_setPc);
            il.Emit(OpCodes.Ldarg_0);
            for (int i = 1; i <= 5; i++)
                Ld(i);
            Call(helper.Method);
            St(0);
            ReloadPacket();
        }

        // Registers that must survive a call into the runtime (frames, tail calls, callx) go through the driver's
        // block: stored before the call, reloaded after it. Then no BPF register is live across such a call, and
        // RyuJIT does not have to keep all eleven in callee-saved registers or spill them on hot paths (loops).
        private void SaveRegs(int from, int to)
        {
            for (int i = from; i <= to; i++)
            {
                RegSlot(i);
                Ld(i);
                _il.Emit(OpCodes.Stind_I8);
            }
        }

        private void LoadRegs(int from, int to)
        {
            for (int i = from; i <= to; i++)
            {
                RegSlot(i);
                _il.Emit(OpCodes.Ldind_I8);
                St(i);
            }
        }

        private void RegSlot(int i)
        {
            _il.Emit(OpCodes.Ldarg_1);
            if (i > 0)
            {
                I4(i * 8);
                _il.Emit(OpCodes.Add);
            }
        }

        /// <summary>Stores r<paramref name="storeFrom"/>-r10 (the lower ones are already in the block), the index to
        /// resume at, flags the hand-off and returns to the driver.</summary>
        private void HandOff(int storeFrom, Action pushResumeIndex)
        {
            var il = _il;
            SaveRegs(storeFrom, 10);
            RegSlot(11);
            pushResumeIndex();
            il.Emit(OpCodes.Conv_I8);
            il.Emit(OpCodes.Stind_I8);
            RegSlot(12);
            I8(1);
            il.Emit(OpCodes.Stind_I8);
            I8(0);
            il.Emit(OpCodes.Ret);
        }

        private void TailCall(int pc)
        {
            var il = _il;
            var failed = il.DefineLabel();
            SaveRegs(0, 10);
            il.Emit(OpCodes.Ldarg_0);
            Ld(2);
            Ld(3);
            I4(pc);
            Call(s_tailCall);
            il.Emit(OpCodes.Brfalse, failed);
            HandOff(11, () => I4(0));
            il.MarkLabel(failed);
            LoadRegs(0, 10);
        }

        /// <summary>bpf-to-bpf call frame: r6-r9 from the block (SaveRegs ran), r10 = the callee's frame, r0-r9 reloaded.</summary>
        private void PushFrame(int pc)
        {
            _il.Emit(OpCodes.Ldarg_0);
            I4(pc + 1);
            for (int i = 6; i <= 9; i++)
            {
                RegSlot(i);
                _il.Emit(OpCodes.Ldind_I8);
            }
            Call(s_pushFrame);
            St(10);
            LoadRegs(0, 9);
        }

        private void CallRegister(in DecodedInstruction ins, int pc)
        {
            var il = _il;
            var helperCalled = il.DefineLabel();
            SaveRegs(0, 10);
            il.Emit(OpCodes.Ldarg_0);
            Ld(ins.Dst);
            I4(pc);
            for (int i = 1; i <= 5; i++)
                Ld(i);
            il.Emit(OpCodes.Ldloca, _scratch);
            Call(s_callRegister);
            il.Emit(OpCodes.Stloc, _pc);
            il.Emit(OpCodes.Ldloc, _pc);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Blt, helperCalled);
            PushFrame(pc);
            il.Emit(OpCodes.Br, _dispatch);
            il.MarkLabel(helperCalled);
            il.Emit(OpCodes.Ldloc, _scratch);
            St(0);
            LoadRegs(1, 10);
            ReloadPacket();
        }

        private void Exit()
        {
            var il = _il;
            _popPath ??= il.DefineLabel();
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_callDepth);
            il.Emit(OpCodes.Ldarg_3);
            il.Emit(OpCodes.Bne_Un, _popPath.Value);
            Ld(0);
            il.Emit(OpCodes.Ret);
        }

        /// <summary>Return from a bpf-to-bpf call, emitted once after the instructions: every <c>exit</c> of a
        /// subprogram branches here.</summary>
        private void EmitPopPath()
        {
            if (_popPath is not { } pop)
                return;
            var il = _il;
            var otherProgram = il.DefineLabel();
            il.MarkLabel(pop);
            SaveRegs(0, 5);
            il.Emit(OpCodes.Ldarg_0);
            Call(s_popFrame);
            il.Emit(OpCodes.Stloc, _pc);
            for (int k = 0; k < 4; k++)
            {
                il.Emit(OpCodes.Ldarg_0);
                I4(k);
                Call(s_saved);
                St(6 + k);
            }
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, s_stackLow);
            I8(VmExecution.FrameSize);
            il.Emit(OpCodes.Add);
            St(10);
            il.Emit(OpCodes.Ldloc, _pc);
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Blt, otherProgram);
            LoadRegs(0, 5);
            il.Emit(OpCodes.Br, _dispatch);
            il.MarkLabel(otherProgram);
            HandOff(6, () =>
            {
                il.Emit(OpCodes.Ldloc, _pc);
                il.Emit(OpCodes.Not);
            });
        }
    }
}
