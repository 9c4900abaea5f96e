using System.Diagnostics;
using SharpBpf.Asm;
using static SharpBpf.Vm.Jit.Baseline.Reg;

namespace SharpBpf.Vm.Jit.Baseline;

/// <summary>
/// The baseline tier: eBPF to x86-64 in one pass, as the kernel's own JIT does it, with no IL and no RyuJIT, so a
/// program is ready in microseconds; the optimised IL tier replaces it in the background.
/// <para>BPF registers live in the x86 registers of the kernel's mapping, which makes BPF's calling convention the
/// System V one: r1-r5 are the argument registers and clobbered by calls, r6-r9 and the frame pointer are
/// callee-saved, r0 is the return register.</para>
/// <code>
///   r0 rax   r1 rdi   r2 rsi   r3 rdx   r4 rcx   r5 r8    r6 rbx   r7 r13   r8 r14   r9 r15   r10 rbp
///   r12 = the execution's pinned fields (stack and packet bounds, budget, pending flag)
///   r9, r10, r11 = scratch     [rsp] = a <see cref="CallBlock"/>
/// </code>
/// <para>Semantics are the other tiers' instruction for instruction: memory accesses are planned by the same
/// <see cref="JitCompiler.PlanAccesses"/> (checked accesses test the stack and the packet inline and call the runtime
/// for the rest), budget charges sit at the same backward jumps, traps come from the same <see cref="JitRuntime"/>
/// methods. bpf-to-bpf calls are native calls (each function has its own native frame; r6-r10 are kept in the
/// caller's), so the code's frames mirror BPF's; callx resolves its target in the runtime, then calls the same way.
/// Only unverified programs that mix tail calls with bpf-to-bpf calls are left to the IL tiers (see
/// <see cref="Unsupported"/>).</para>
/// <code>
///   entry:     save callee-saved registers; r12 = fields; load r0-r10 from the driver's block;
///              call the function that starts at startPc; return r0
///   function:  (out of line: sub rsp, FrameBytes; jmp body) body: instructions...; exit = add rsp, FrameBytes; ret
///   trap:      the runtime records the exception; return 0 from this function, and from every caller after it
/// </code>
/// </summary>
internal static unsafe class BaselineCompiler
{
    private static readonly Reg[] R = [Rax, Rdi, Rsi, Rdx, Rcx, R8, Rbx, R13, R14, R15, Rbp];
    private static int s_broken;

    /// <summary>Whether this process can run baseline code: x86-64 Linux, not switched off, and pages could be made
    /// executable so far.</summary>
    public static bool IsAvailable => ExecutableMemory.IsSupported && Volatile.Read(ref s_broken) == 0 && !s_switchedOff;

    /// <summary>SHARPBPF_NO_BASELINE set (to anything but "0") switches the baseline tier off for the process: programs
    /// then start with quick IL, as on platforms the tier does not run on.</summary>
    private static readonly bool s_switchedOff = Environment.GetEnvironmentVariable("SHARPBPF_NO_BASELINE") is { Length: > 0 } v && v != "0";

    /// <summary>Why <paramref name="program"/> cannot be compiled to baseline code, or null when it can.</summary>
    public static string? Unsupported(VmProgram program)
    {
        // A tail call inside a native bpf-to-bpf call runs its target nested and returns its r0 from the function
        // that made it; r1-r5 then are the call site's, not what the target left as on the interpreter, which only a
        // verified program (that cannot read them after a call) makes invisible.
        return !program.Verified && Makes(program, VmOp.TailCall) && MakesNativeCalls(program)
            ? "tail calls in an unverified program with bpf-to-bpf calls" : null;
    }

    /// <summary>Whether the code calls functions of its own (local calls, or callx, which may).</summary>
    private static bool MakesNativeCalls(VmProgram program) => Makes(program, VmOp.LocalCall) || Makes(program, VmOp.CallRegister);

    private static bool Makes(VmProgram program, byte op)
    {
        foreach (ref readonly var ins in program.Code)
        {
            if (ins.Op == op)
                return true;
        }
        return false;
    }

    /// <summary>Compiles <paramref name="program"/>, or returns null when it is not supported (the caller compiles IL).</summary>
    public static JitCode? TryCompile(VmProgram program)
    {
        if (!IsAvailable || Unsupported(program) is not null)
            return null;
        var watch = Stopwatch.StartNew();
        var emitter = new Emitter(program);
        var bytes = emitter.Emit();
        BaselineCode native;
        try
        {
            native = BaselineCode.Create(bytes);
        }
        catch (Exception ex) when (ex is InvalidOperationException or OutOfMemoryException or DllNotFoundException or EntryPointNotFoundException)
        {
            // No executable pages here (a policy against writable-then-executable memory): IL from now on, said once
            // with the cause, since the programs still run, only compiled more slowly.
            if (Interlocked.Exchange(ref s_broken, 1) == 0)
                Console.Error.WriteLine($"sharpbpf: the jit's baseline tier is off in this process ({ex.Message}); programs are compiled to IL instead");
            return null;
        }
        watch.Stop();
        // There is no separate emit step: the compile is the emit (and the copy into executable pages).
        return new JitCode(native.Run, JitTier.Baseline, emitter.HasCheckedAccesses, watch.Elapsed, watch.Elapsed, 0, native.Bytes);
    }

    private static readonly System.Reflection.MethodInfo s_mapLookupElem =
        typeof(Helpers.VmHelpers).GetMethod(nameof(Helpers.VmHelpers.MapLookupElem))!;

    private sealed class Emitter
    {
        private readonly VmProgram _program;
        private readonly DecodedInstruction[] _code;
        private readonly JitCompiler.Access[] _plan;
        private readonly X64Assembler _a;
        private readonly AsmLabel[] _labels;
        private readonly AsmLabel _epilogue, _return, _abort;
        private readonly AsmLabel[] _functionEntries;
        private readonly bool[] _isFunction;
        // Out-of-line code (slow paths, traps), placed after the program so the hot path runs straight.
        private readonly List<Action> _cold = [];
        private readonly bool _keepArguments;
        private readonly bool _hasLocalCalls;

        public Emitter(VmProgram program)
        {
            _program = program;
            _code = program.Code.ToArray();
            _plan = JitCompiler.PlanAccesses(program, _code);
            _a = new X64Assembler(_code.Length * 12 + 256);
            _labels = new AsmLabel[_code.Length];
            for (int i = 0; i < _labels.Length; i++)
                _labels[i] = _a.DefineLabel();
            _epilogue = _a.DefineLabel();
            _return = _a.DefineLabel();
            _abort = _a.DefineLabel();
            _functionEntries = new AsmLabel[_code.Length];
            _isFunction = new bool[_code.Length];
            for (int pc = 0; pc < program.InstructionCount; pc++)
            {
                if (pc == 0 || program.FunctionIndexOf((ulong)(program.CodePointer + pc)) >= 0)
                {
                    _isFunction[pc] = true;
                    _functionEntries[pc] = _a.DefineLabel();
                }
            }
            // The interpreter leaves r1-r5 as they were after a helper call; a verified program cannot read them.
            _keepArguments = !program.Verified;
            _hasLocalCalls = MakesNativeCalls(program);
            HasCheckedAccesses = Array.IndexOf(_plan, JitCompiler.Access.Checked) >= 0;
        }

        public bool HasCheckedAccesses { get; }

        public ReadOnlySpan<byte> Emit()
        {
            var a = _a;
            // Entry (fields, regs, startPc): save the callee-saved registers, reserve a block (rsp 16-byte aligned),
            // load r0-r10, call the function the run starts in.
            a.Push(Rbp); a.Push(Rbx); a.Push(R12); a.Push(R13); a.Push(R14); a.Push(R15);
            a.AluRI(Alu.Sub, true, Rsp, CallBlock.FrameBytes);
            a.Mov(true, R12, Rdi);
            a.Store(Rsp, CallBlock.RegsOffset, Rsi, 8);
            a.Mov(false, R9, Rdx);
            a.Mov(true, R11, Rsi);
            for (int i = 0; i <= 10; i++)
                a.Load(R[i], R11, i * 8, 8, signed: false);
            for (int pc = 0; pc < _code.Length; pc++)
            {
                if (!_isFunction[pc])
                    continue;
                var next = a.DefineLabel();
                a.AluRI(Alu.Cmp, false, R9, pc);
                a.Jcc(Cond.NotEqual, next);
                a.Call(_functionEntries[pc]);
                a.Jmp(_epilogue);
                a.Mark(next);
            }
            // Not a function entry: trap as the other tiers (FellOff at that index), and return 0.
            a.Store(Rsp, CallBlock.PcOffset, R9, 8);
            a.StoreImm(Rsp, CallBlock.VOffset, 0, 8);
            a.StoreImm(Rsp, CallBlock.OpOffset, (int)RuntimeOp.FellOff, 8);
            a.Mov(true, Rdi, Rsp);
            a.MovImm(R11, BaselineRuntime.RuntimeEntry);
            a.Call(R11);
            a.MovImm32(Rax, 0);
            a.Mark(_epilogue);
            a.AluRI(Alu.Add, true, Rsp, CallBlock.FrameBytes);
            a.Pop(R15); a.Pop(R14); a.Pop(R13); a.Pop(R12); a.Pop(Rbx); a.Pop(Rbp);
            a.Ret();

            for (int pc = 0; pc < _code.Length; pc++)
            {
                if (_isFunction[pc])
                {
                    // The frame is set up out of line: code that falls or jumps into a function (which the verifier
                    // would refuse) keeps the frame it has, as on the interpreter.
                    var entry = _functionEntries[pc];
                    var body = _labels[pc];
                    _cold.Add(() =>
                    {
                        a.Mark(entry);
                        a.AluRI(Alu.Sub, true, Rsp, CallBlock.FrameBytes);
                        a.Jmp(body);
                    });
                }
                if (IsDead(pc))
                {
                    pc = DeadRun(pc);
                    continue;
                }
                a.Mark(_labels[pc]);
                Instruction(pc);
            }

            for (int i = 0; i < _cold.Count; i++)
                _cold[i]();
            EmitStubs();
            // Every function's frame has the same shape, so one return path serves them all.
            a.Mark(_abort);
            a.MovImm32(Rax, 0);
            a.Mark(_return);
            a.AluRI(Alu.Add, true, Rsp, CallBlock.FrameBytes);
            a.Ret();
            return a.Finish();
        }

        private bool IsDead(int pc) => _program.Reached is { } reached && pc < reached.Count && !reached[pc];

        /// <summary>A run of instructions the verifier did not reach: one Unreachable trap for all of them.</summary>
        private int DeadRun(int first)
        {
            int last = first;
            while (last + 1 < _code.Length && IsDead(last + 1) && !_isFunction[last + 1])
                last++;
            for (int pc = first; pc <= last; pc++)
                _a.Mark(_labels[pc]);
            Trap(RuntimeOp.Unreachable, first);
            return last;
        }

        // ---- runtime calls -----------------------------------------------------------------------------------------

        private void SaveVolatile()
        {
            for (int i = 0; i <= 5; i++)
                _a.Store(Rsp, CallBlock.SaveOffset + i * 8, R[i], 8);
        }

        private void RestoreVolatile()
        {
            for (int i = 0; i <= 5; i++)
                _a.Load(R[i], Rsp, CallBlock.SaveOffset + i * 8, 8, signed: false);
        }

        /// <summary>Calls <see cref="BaselineRuntime"/> with the block's Op and Pc set (the caller set the rest), and
        /// leaves for the epilogue when it threw.</summary>
        private void CallRuntime(RuntimeOp op, int pc)
        {
            var a = _a;
            a.StoreImm(Rsp, CallBlock.OpOffset, (int)op, 8);
            a.StoreImm(Rsp, CallBlock.PcOffset, pc, 8);
            a.Mov(true, Rdi, Rsp);
            a.MovImm(R11, BaselineRuntime.RuntimeEntry);
            a.Call(R11);
            PendingCheck();
        }

        private void PendingCheck()
        {
            _a.CmpByteMI(R12, BaselineRuntime.PendingOffset, 0);
            _a.Jcc(Cond.NotEqual, _abort);
        }

        /// <summary>A trap: the runtime throws, the code returns.</summary>
        private void Trap(RuntimeOp op, int pc, int? v = null)
        {
            if (v is { } value)
                _a.StoreImm(Rsp, CallBlock.VOffset, value, 8);
            CallRuntime(op, pc);
            _a.Jmp(_abort);
        }

        /// <summary>A trap placed out of line; returns its label.</summary>
        private AsmLabel ColdTrap(RuntimeOp op, int pc)
        {
            var label = _a.DefineLabel();
            _cold.Add(() =>
            {
                _a.Mark(label);
                Trap(op, pc);
            });
            return label;
        }

        // ---- instructions ------------------------------------------------------------------------------------------

        private void Instruction(int pc)
        {
            var a = _a;
            ref readonly var ins = ref _code[pc];
            byte op = ins.Op;
            Reg d = ins.Dst <= 10 ? R[ins.Dst] : Rax, s = ins.Src <= 10 ? R[ins.Src] : Rax;
            bool reg = (op & 0x08) != 0;
            int imm = (int)ins.Imm;
            switch (op)
            {
                // ---- ALU64 ----
                case 0x07: a.AluRI(Alu.Add, true, d, imm); return;
                case 0x0f: a.AluRR(Alu.Add, true, d, s); return;
                case 0x17: a.AluRI(Alu.Sub, true, d, imm); return;
                case 0x1f: a.AluRR(Alu.Sub, true, d, s); return;
                case 0x27: a.ImulImm(true, d, imm); return;
                case 0x2f: a.Imul(true, d, s); return;
                case 0x47: a.AluRI(Alu.Or, true, d, imm); return;
                case 0x4f: a.AluRR(Alu.Or, true, d, s); return;
                case 0x57: a.AluRI(Alu.And, true, d, imm); return;
                case 0x5f: a.AluRR(Alu.And, true, d, s); return;
                case 0xa7: a.AluRI(Alu.Xor, true, d, imm); return;
                case 0xaf: a.AluRR(Alu.Xor, true, d, s); return;
                case 0x37 or 0x3f: DivMod(ins, true, signed: false, mod: false, reg); return;
                case 0x97 or 0x9f: DivMod(ins, true, signed: false, mod: true, reg); return;
                case VmOp.SDiv64Imm or VmOp.SDiv64Reg: DivMod(ins, true, signed: true, mod: false, op == VmOp.SDiv64Reg); return;
                case VmOp.SMod64Imm or VmOp.SMod64Reg: DivMod(ins, true, signed: true, mod: true, op == VmOp.SMod64Reg); return;
                case 0x67 or 0x6f: ShiftOp(ins, Shift.Shl, true, reg); return;
                case 0x77 or 0x7f: ShiftOp(ins, Shift.Shr, true, reg); return;
                case 0xc7 or 0xcf: ShiftOp(ins, Shift.Sar, true, reg); return;
                case 0x87: a.Neg(true, d); return;
                case 0xb7: a.MovImm(d, ins.Imm); return;
                case 0xbf: if (d != s) a.Mov(true, d, s); return;
                case VmOp.MovSx64From8: a.MovSx(true, d, s, 1); return;
                case VmOp.MovSx64From16: a.MovSx(true, d, s, 2); return;
                case VmOp.MovSx64From32: a.MovSx(true, d, s, 4); return;

                // ---- ALU32: every 32-bit x86 operation zero-extends its result ----
                case 0x04: a.AluRI(Alu.Add, false, d, imm); return;
                case 0x0c: a.AluRR(Alu.Add, false, d, s); return;
                case 0x14: a.AluRI(Alu.Sub, false, d, imm); return;
                case 0x1c: a.AluRR(Alu.Sub, false, d, s); return;
                case 0x24: a.ImulImm(false, d, imm); return;
                case 0x2c: a.Imul(false, d, s); return;
                case 0x44: a.AluRI(Alu.Or, false, d, imm); return;
                case 0x4c: a.AluRR(Alu.Or, false, d, s); return;
                case 0x54: a.AluRI(Alu.And, false, d, imm); return;
                case 0x5c: a.AluRR(Alu.And, false, d, s); return;
                case 0xa4: a.AluRI(Alu.Xor, false, d, imm); return;
                case 0xac: a.AluRR(Alu.Xor, false, d, s); return;
                case 0x34 or 0x3c: DivMod(ins, false, signed: false, mod: false, reg); return;
                case 0x94 or 0x9c: DivMod(ins, false, signed: false, mod: true, reg); return;
                case VmOp.SDiv32Imm or VmOp.SDiv32Reg: DivMod(ins, false, signed: true, mod: false, op == VmOp.SDiv32Reg); return;
                case VmOp.SMod32Imm or VmOp.SMod32Reg: DivMod(ins, false, signed: true, mod: true, op == VmOp.SMod32Reg); return;
                case 0x64 or 0x6c: ShiftOp(ins, Shift.Shl, false, reg); return;
                case 0x74 or 0x7c: ShiftOp(ins, Shift.Shr, false, reg); return;
                case 0xc4 or 0xcc: ShiftOp(ins, Shift.Sar, false, reg); return;
                case 0x84: a.Neg(false, d); return;
                case 0xb4: a.MovImm32(d, (uint)imm); return;
                case 0xbc: a.Mov(false, d, s); return;
                case VmOp.MovSx32From8: a.MovSx(false, d, s, 1); return;
                case VmOp.MovSx32From16: a.MovSx(false, d, s, 2); return;

                // ---- byte order ----
                case VmOp.Truncate16: a.MovZx16(d, d); return;
                case VmOp.Truncate32: a.Mov(false, d, d); return;
                case VmOp.Nop: return;
                case VmOp.Swap16: a.Swap16(d); a.MovZx16(d, d); return;
                case VmOp.Swap32: a.Bswap(false, d); return;
                case VmOp.Swap64: a.Bswap(true, d); return;

                case VmOp.LoadImm64: a.MovImm(d, ins.Imm); return;

                // ---- memory ----
                case 0x71: Load(ins, pc, 1, signed: false); return;
                case 0x69: Load(ins, pc, 2, signed: false); return;
                case 0x61: Load(ins, pc, 4, signed: false); return;
                case 0x79: Load(ins, pc, 8, signed: false); return;
                case 0x91: Load(ins, pc, 1, signed: true); return;
                case 0x89: Load(ins, pc, 2, signed: true); return;
                case 0x81: Load(ins, pc, 4, signed: true); return;
                case 0x72 or 0x73: Store(ins, pc, 1, op == 0x73); return;
                case 0x6a or 0x6b: Store(ins, pc, 2, op == 0x6b); return;
                case 0x62 or 0x63: Store(ins, pc, 4, op == 0x63); return;
                case 0x7a or 0x7b: Store(ins, pc, 8, op == 0x7b); return;
                case VmOp.AtomicWord or VmOp.AtomicDoubleWord: Atomic(ins, pc); return;

                // ---- control flow ----
                case VmOp.Jump:
                    Charge(pc, ins.Offset);
                    a.Jmp(_labels[ins.Offset]);
                    return;
                case VmOp.CallHelper: CallHelper(ins, pc); return;
                case VmOp.Exit: a.Jmp(_return); return;
                case VmOp.LocalCall: LocalCall(pc, ins.Offset); return;
                case VmOp.CallRegister: CallRegister(ins, pc); return;
                case VmOp.TailCall: TailCall(pc); return;
            }
            if ((op & 0x07) is 0x05 or 0x06 && ConditionalJump(ins, pc))
                return;
            // The sentinel after the last instruction, or anything the decoder never produces: trap as the interpreter.
            Trap(RuntimeOp.FellOff, pc, op);
        }

        private void ShiftOp(in DecodedInstruction ins, Shift op, bool w, bool reg)
        {
            var a = _a;
            Reg d = R[ins.Dst];
            if (!reg)
            {
                int count = (int)(ins.Imm & (w ? 63 : 31));
                if (count != 0) a.ShiftImm(op, w, d, count);
                else if (!w) a.Mov(false, d, d);
                return;
            }
            Reg s = R[ins.Src];
            if (s == Rcx && d != Rcx)
            {
                a.ShiftCl(op, w, d);
                if (!w)
                    a.Mov(false, d, d); // a count of 0 leaves the register as it was: zero-extend anyway
                return;
            }
            // The count must be in cl, which holds r4: keep r4 in r10 meanwhile, and shift there when r4 is the
            // destination.
            a.Mov(true, R10, Rcx);
            if (s != Rcx)
                a.Mov(true, Rcx, s);
            Reg target = d == Rcx ? R10 : d;
            a.ShiftCl(op, w, target);
            if (!w)
                a.Mov(false, target, target);
            a.Mov(true, Rcx, R10);
        }

        /// <summary>Division and modulo with eBPF's answers for 0 (and, signed, for -1, where x86 would fault on the
        /// most negative dividend). x86 divides rdx:rax, which hold r3 and r0: both are kept in r9/r10 meanwhile.</summary>
        private void DivMod(in DecodedInstruction ins, bool w, bool signed, bool mod, bool reg)
        {
            var a = _a;
            Reg d = R[ins.Dst];
            if (reg) a.Mov(true, R11, R[ins.Src]);
            else a.MovImm(R11, w || signed ? ins.Imm : (uint)ins.Imm);
            var zero = a.DefineLabel();
            var minusOne = a.DefineLabel();
            var done = a.DefineLabel();
            a.Test(w, R11, R11);
            a.Jcc(Cond.Equal, zero);
            if (signed)
            {
                a.AluRI(Alu.Cmp, w, R11, -1);
                a.Jcc(Cond.Equal, minusOne);
            }
            a.Mov(true, R9, Rax);
            a.Mov(true, R10, Rdx);
            if (d != Rax)
                a.Mov(true, Rax, d);
            if (signed) a.SignExtendAccumulator(w);
            else a.MovImm32(Rdx, 0);
            a.Div(w, R11, signed);
            a.Mov(w, R11, mod ? Rdx : Rax);
            a.Mov(true, Rax, R9);
            a.Mov(true, Rdx, R10);
            a.Mov(true, d, R11);
            a.Jmp(done);
            a.Mark(zero);
            if (!mod) a.MovImm32(d, 0);
            else if (!w) a.Mov(false, d, d);
            if (signed)
            {
                a.Jmp(done);
                a.Mark(minusOne);
                if (!mod) a.Neg(w, d);
                else a.MovImm32(d, 0);
            }
            a.Mark(done);
        }

        // ---- memory ------------------------------------------------------------------------------------------------

        /// <summary>
        /// The inline check of a checked access to [r11, r11+size): falls through when it lies in the stack or the
        /// packet, else jumps to <paramref name="slow"/>.
        /// <code>
        ///   if (a - StackLow &lt;= (StackTop - StackLow) - size) ok
        ///   o = a - PacketLow; if (o &lt; PacketSpan &amp;&amp; PacketSpan - o >= size) ok
        /// </code>
        /// </summary>
        private void FastCheck(int size, AsmLabel slow)
        {
            var a = _a;
            var fast = a.DefineLabel();
            a.Mov(true, R10, R11);
            a.AluRM(Alu.Sub, true, R10, R12, BaselineRuntime.StackLowOffset);
            a.Load(R9, R12, BaselineRuntime.StackTopOffset, 8, signed: false);
            a.AluRM(Alu.Sub, true, R9, R12, BaselineRuntime.StackLowOffset);
            a.AluRI(Alu.Sub, true, R9, size);
            a.AluRR(Alu.Cmp, true, R10, R9);
            a.Jcc(Cond.BelowOrEqual, fast);
            a.Mov(true, R10, R11);
            a.AluRM(Alu.Sub, true, R10, R12, BaselineRuntime.PacketLowOffset);
            a.AluRM(Alu.Cmp, true, R10, R12, BaselineRuntime.PacketSpanOffset);
            a.Jcc(Cond.AboveOrEqual, slow);
            a.Load(R9, R12, BaselineRuntime.PacketSpanOffset, 8, signed: false);
            a.AluRR(Alu.Sub, true, R9, R10);
            a.AluRI(Alu.Cmp, true, R9, size);
            a.Jcc(Cond.Below, slow);
            a.Mark(fast);
        }

        /// <summary>Out of line: LoadSlow on r11 through the shared stub, its result into dst, back to
        /// <paramref name="done"/>.</summary>
        private AsmLabel ColdLoad(Reg dst, int size, bool signed, int pc, AsmLabel done)
        {
            var label = _a.DefineLabel();
            var stub = SlowStub(RuntimeOp.LoadSlow, size, signed);
            _cold.Add(() =>
            {
                var a = _a;
                a.Mark(label);
                a.StoreImm(Rsp, CallBlock.PcOffset, pc, 8);
                a.Call(stub);
                a.Mov(true, dst, R11);
                a.Jmp(done);
            });
            return label;
        }

        // Shared slow paths of checked accesses, one per operation, size and signedness, placed once after the code.
        private readonly Dictionary<int, AsmLabel> _stubs = [];
        private readonly List<(AsmLabel Label, RuntimeOp Op, int Size, bool Signed)> _stubList = [];
        private AsmLabel? _stubAbort;

        /// <summary>
        /// The shared stub that runs a LoadSlow or StoreSlow for an access: called (so [rsp+8] is the block) with the
        /// address in r11, the block's Pc (and V for a store) set; keeps r0-r5; returns the loaded value in r11,
        /// sign-extended for a signed load. When the runtime threw it leaves through the function's abort path.
        /// Each checked access then costs about 25 bytes out of line instead of 110.
        /// </summary>
        private AsmLabel SlowStub(RuntimeOp op, int size, bool signed)
        {
            int key = ((int)op << 8) | (size << 1) | (signed ? 1 : 0);
            if (!_stubs.TryGetValue(key, out var label))
            {
                label = _a.DefineLabel();
                _stubs[key] = label;
                _stubList.Add((label, op, size, signed));
            }
            return label;
        }

        private void EmitStubs()
        {
            var a = _a;
            const int B = 8; // the return address sits between rsp and the block
            foreach (var (label, op, size, signed) in _stubList)
            {
                a.Mark(label);
                a.Store(Rsp, B + CallBlock.AOffset, R11, 8);
                a.StoreImm(Rsp, B + CallBlock.SizeOffset, size, 8);
                a.StoreImm(Rsp, B + CallBlock.OpOffset, (int)op, 8);
                for (int i = 0; i <= 5; i++)
                    a.Store(Rsp, B + CallBlock.SaveOffset + i * 8, R[i], 8);
                a.Lea(Rdi, Rsp, B);
                a.AluRI(Alu.Sub, true, Rsp, 8); // 16-byte alignment at the call
                a.MovImm(R11, BaselineRuntime.RuntimeEntry);
                a.Call(R11);
                a.AluRI(Alu.Add, true, Rsp, 8);
                if (signed && size < 8) a.MovSx(true, R11, Rax, size);
                else a.Mov(true, R11, Rax);
                for (int i = 0; i <= 5; i++)
                    a.Load(R[i], Rsp, B + CallBlock.SaveOffset + i * 8, 8, signed: false);
                a.CmpByteMI(R12, BaselineRuntime.PendingOffset, 0);
                a.Jcc(Cond.NotEqual, _stubAbort ??= a.DefineLabel());
                a.Ret();
            }
            if (_stubAbort is { } abort)
            {
                a.Mark(abort);
                a.AluRI(Alu.Add, true, Rsp, 8); // drop the return address into the access
                a.Jmp(_abort);
            }
        }

        private void Load(in DecodedInstruction ins, int pc, int size, bool signed)
        {
            var a = _a;
            Reg d = R[ins.Dst], s = R[ins.Src];
            var access = _plan[pc];
            switch (access)
            {
                case JitCompiler.Access.ContextData or JitCompiler.Access.ContextDataEnd or JitCompiler.Access.ContextDataMeta:
                    // As the kernel rewrites these ctx loads: the 64-bit pointer.
                    a.Load(d, R12, access switch
                    {
                        JitCompiler.Access.ContextData => BaselineRuntime.CtxDataOffset,
                        JitCompiler.Access.ContextDataEnd => BaselineRuntime.CtxDataEndOffset,
                        _ => BaselineRuntime.CtxDataMetaOffset,
                    }, 8, signed: false);
                    if (signed)
                        a.MovSx(true, d, d, 4);
                    return;
                case JitCompiler.Access.Load4MaybeContext:
                {
                    // A load from the xdp_md block goes through the runtime (which gives the full pointers).
                    var done = a.DefineLabel();
                    a.Lea(R11, s, ins.Offset);
                    a.Mov(true, R10, R11);
                    a.AluRM(Alu.Sub, true, R10, R12, BaselineRuntime.CtxLowOffset);
                    a.AluRI(Alu.Cmp, true, R10, (int)Xdp.XdpContext.MetadataSize);
                    a.Jcc(Cond.Below, ColdLoad(d, 4, signed, pc, done));
                    a.Load(d, R11, 0, 4, signed);
                    a.Mark(done);
                    return;
                }
                case JitCompiler.Access.Checked:
                {
                    var done = a.DefineLabel();
                    a.Lea(R11, s, ins.Offset);
                    FastCheck(size, ColdLoad(d, size, signed, pc, done));
                    a.Load(d, R11, 0, size, signed);
                    a.Mark(done);
                    return;
                }
                default:
                    a.Load(d, s, ins.Offset, size, signed);
                    return;
            }
        }

        private void Store(in DecodedInstruction ins, int pc, int size, bool reg)
        {
            var a = _a;
            Reg d = R[ins.Dst], s = R[ins.Src];
            int imm = (int)ins.Imm;
            if (_plan[pc] != JitCompiler.Access.Checked)
            {
                if (reg) a.Store(d, ins.Offset, s, size);
                else a.StoreImm(d, ins.Offset, imm, size);
                return;
            }
            var done = a.DefineLabel();
            var slow = a.DefineLabel();
            var stub = SlowStub(RuntimeOp.StoreSlow, size, signed: false);
            _cold.Add(() =>
            {
                a.Mark(slow);
                a.StoreImm(Rsp, CallBlock.PcOffset, pc, 8);
                if (reg) a.Store(Rsp, CallBlock.VOffset, s, 8);
                else a.StoreImm(Rsp, CallBlock.VOffset, imm, 8);
                a.Call(stub);
                a.Jmp(done);
            });
            a.Lea(R11, d, ins.Offset);
            FastCheck(size, slow);
            if (reg) a.Store(R11, 0, s, size);
            else a.StoreImm(R11, 0, imm, size);
            a.Mark(done);
        }

        private void Atomic(in DecodedInstruction ins, int pc)
        {
            var a = _a;
            bool w = ins.Op == VmOp.AtomicDoubleWord;
            int size = w ? 8 : 4;
            Reg d = R[ins.Dst], s = R[ins.Src];
            if (_plan[pc] == JitCompiler.Access.Checked)
            {
                a.Lea(R11, d, ins.Offset);
                a.Store(Rsp, CallBlock.AOffset, R11, 8);
                a.StoreImm(Rsp, CallBlock.SizeOffset, size, 8);
                SaveVolatile();
                CallRuntime(RuntimeOp.CheckAtomic, pc);
                RestoreVolatile();
                a.Lea(R11, d, ins.Offset);
            }
            else
            {
                a.Lea(R11, d, ins.Offset);
                if (_program.Verified)
                {
                    // The verifier proved the range, not the alignment: trap a misaligned atomic as checked mode does.
                    var misaligned = a.DefineLabel();
                    a.TestImm(true, R11, size - 1);
                    a.Jcc(Cond.NotEqual, misaligned);
                    _cold.Add(() =>
                    {
                        a.Mark(misaligned);
                        a.Store(Rsp, CallBlock.AOffset, R11, 8);
                        a.StoreImm(Rsp, CallBlock.SizeOffset, size, 8);
                        Trap(RuntimeOp.MisalignedAtomic, pc);
                    });
                }
            }
            switch ((AtomicOperation)ins.Imm)
            {
                case AtomicOperation.Add: a.LockAlu(Alu.Add, w, R11, s); return;
                case AtomicOperation.Or: a.LockAlu(Alu.Or, w, R11, s); return;
                case AtomicOperation.And: a.LockAlu(Alu.And, w, R11, s); return;
                case AtomicOperation.Xor: a.LockAlu(Alu.Xor, w, R11, s); return;
                case AtomicOperation.FetchAdd:
                    a.Mov(true, R10, s);
                    a.LockXadd(w, R11, R10);
                    a.Mov(true, s, R10);
                    return;
                case AtomicOperation.Xchg:
                    a.Mov(true, R10, s);
                    a.Xchg(w, R11, R10);
                    a.Mov(true, s, R10);
                    return;
                case AtomicOperation.CmpXchg:
                    // r0 is rax, the register cmpxchg compares with and loads the old value into.
                    a.LockCmpXchg(w, R11, s);
                    if (!w)
                        a.Mov(false, Rax, Rax);
                    return;
                default:
                    // fetch-or, fetch-and, fetch-xor: a compare-exchange loop in the runtime.
                    a.Store(Rsp, CallBlock.AOffset, R11, 8);
                    a.Store(Rsp, CallBlock.VOffset, s, 8);
                    a.StoreImm(Rsp, CallBlock.SizeOffset, size, 8);
                    a.StoreImm(Rsp, CallBlock.ExtraOffset, (int)ins.Imm, 8);
                    SaveVolatile();
                    CallRuntime(RuntimeOp.AtomicFetch, pc);
                    a.Mov(true, R11, Rax);
                    RestoreVolatile();
                    a.Mov(true, s, R11);
                    return;
            }
        }

        // ---- control flow ------------------------------------------------------------------------------------------

        /// <summary>Charges a backward jump to the budget, as the interpreter does (the span's length).</summary>
        private void Charge(int pc, int to)
        {
            if (to > pc)
                return;
            _a.AluMI(Alu.Sub, true, R12, BaselineRuntime.BudgetOffset, pc - to + 1);
            _a.Jcc(Cond.Less, ColdTrap(RuntimeOp.BudgetExhausted, pc));
        }

        private bool ConditionalJump(in DecodedInstruction ins, int pc)
        {
            var a = _a;
            byte op = ins.Op;
            bool w = (op & 0x07) == 0x05;
            bool reg = (op & 0x08) != 0;
            int kind = op & 0xf0;
            Cond? cond = kind switch
            {
                0x10 => Cond.Equal,
                0x20 => Cond.Above,
                0x30 => Cond.AboveOrEqual,
                0x40 => Cond.NotEqual,
                0x50 => Cond.NotEqual,
                0x60 => Cond.Greater,
                0x70 => Cond.GreaterOrEqual,
                0xa0 => Cond.Below,
                0xb0 => Cond.BelowOrEqual,
                0xc0 => Cond.Less,
                0xd0 => Cond.LessOrEqual,
                _ => null,
            };
            if (cond is not { } c)
                return false;
            Reg d = R[ins.Dst];
            if (kind == 0x40)
            {
                if (reg) a.Test(w, d, R[ins.Src]);
                else a.TestImm(w, d, (int)ins.Imm);
            }
            else
            {
                if (reg) a.AluRR(Alu.Cmp, w, d, R[ins.Src]);
                else a.AluRI(Alu.Cmp, w, d, (int)ins.Imm);
            }
            int to = ins.Offset;
            if (to > pc)
            {
                a.Jcc(c, _labels[to]);
                return true;
            }
            var next = a.DefineLabel();
            a.Jcc((Cond)((int)c ^ 1), next);
            Charge(pc, to);
            a.Jmp(_labels[to]);
            a.Mark(next);
            return true;
        }

        /// <summary>
        /// bpf-to-bpf call: a native call, with the execution's call depth and stack bounds kept as the other tiers
        /// keep them (the callee's r10 is the current StackLow), and r6-r10 kept in this frame's block.
        /// </summary>
        private void LocalCall(int pc, int target)
        {
            var a = _a;
            a.Load(R11, R12, BaselineRuntime.CallDepthOffset, 4, signed: false);
            a.AluRI(Alu.Add, false, R11, 1);
            a.AluRM(Alu.Cmp, false, R11, R12, BaselineRuntime.MaxCallDepthOffset);
            a.Jcc(Cond.GreaterOrEqual, ColdTrap(RuntimeOp.CallDepthExceeded, pc));
            a.Store(R12, BaselineRuntime.CallDepthOffset, R11, 4);
            for (int i = 6; i <= 10; i++)
                a.Store(Rsp, CallBlock.KeepOffset + (i - 6) * 8, R[i], 8);
            a.Load(Rbp, R12, BaselineRuntime.StackLowOffset, 8, signed: false);
            a.AluMI(Alu.Sub, true, R12, BaselineRuntime.StackLowOffset, VmExecution.FrameSize);
            a.Call(_functionEntries[target]);
            a.AluMI(Alu.Add, true, R12, BaselineRuntime.StackLowOffset, VmExecution.FrameSize);
            a.AluMI(Alu.Sub, false, R12, BaselineRuntime.CallDepthOffset, 1);
            for (int i = 6; i <= 10; i++)
                a.Load(R[i], Rsp, CallBlock.KeepOffset + (i - 6) * 8, 8, signed: false);
            PendingCheck();
        }

        /// <summary>
        /// callx: the runtime resolves the register (JitRuntime.CallRegister): a function of the program, which is then
        /// called as a bpf-to-bpf call (a compare per function entry picks the native call), or a helper, which the
        /// runtime has called already (its result is r0).
        /// </summary>
        private void CallRegister(in DecodedInstruction ins, int pc)
        {
            var a = _a;
            var helperCalled = a.DefineLabel();
            var done = a.DefineLabel();
            a.Store(Rsp, CallBlock.AOffset, R[ins.Dst], 8);
            SaveVolatile();
            CallRuntime(RuntimeOp.CallRegister, pc);
            a.Mov(true, R11, Rax);
            RestoreVolatile();
            a.AluMI(Alu.Cmp, true, Rsp, CallBlock.ExtraOffset, 0);
            a.Jcc(Cond.Equal, helperCalled);
            for (int f = 0; f < _code.Length; f++)
            {
                if (!_isFunction[f])
                    continue;
                var next = a.DefineLabel();
                a.AluRI(Alu.Cmp, true, R11, f);
                a.Jcc(Cond.NotEqual, next);
                LocalCall(pc, f);
                a.Jmp(done);
                a.Mark(next);
            }
            Trap(RuntimeOp.FellOff, pc, VmOp.CallRegister); // FunctionIndexOf gives function entries only
            a.Mark(helperCalled);
            a.Mov(true, Rax, R11);
            a.Mark(done);
        }

        /// <summary>bpf_tail_call: when the runtime switched programs, hands r0-r10 to the driver with "resume at 0"
        /// (as the IL tiers do) and returns; otherwise execution goes on. In a program without bpf-to-bpf calls this
        /// frame is the entry's callee, whose block holds the driver's block pointer; in a program with them the
        /// target runs nested instead (TailCallNested) and this function returns its r0.</summary>
        private void TailCall(int pc)
        {
            var a = _a;
            var failed = a.DefineLabel();
            if (_hasLocalCalls)
            {
                // Nested (see Unsupported): the target runs to its exit inside the runtime call.
                a.Store(Rsp, CallBlock.AOffset, R[2], 8);
                a.Store(Rsp, CallBlock.VOffset, R[3], 8);
                for (int i = 6; i <= 10; i++)
                    a.Store(Rsp, CallBlock.KeepOffset + (i - 6) * 8, R[i], 8);
                SaveVolatile();
                CallRuntime(RuntimeOp.TailCallNested, pc);
                a.Mov(true, R11, Rax);
                RestoreVolatile();
                a.AluMI(Alu.Cmp, true, Rsp, CallBlock.ExtraOffset, 0);
                a.Jcc(Cond.Equal, failed);
                a.Mov(true, Rax, R11);
                a.Jmp(_return);
                a.Mark(failed);
                return;
            }
            a.Store(Rsp, CallBlock.AOffset, R[2], 8);
            a.Store(Rsp, CallBlock.VOffset, R[3], 8);
            SaveVolatile();
            CallRuntime(RuntimeOp.TailCall, pc);
            a.Mov(true, R11, Rax);
            RestoreVolatile();
            a.Test(true, R11, R11);
            a.Jcc(Cond.Equal, failed);
            a.Load(R9, Rsp, CallBlock.FrameBytes + 8 + CallBlock.RegsOffset, 8, signed: false);
            for (int i = 0; i <= 10; i++)
                a.Store(R9, i * 8, R[i], 8);
            a.StoreImm(R9, 11 * 8, 0, 8);
            a.StoreImm(R9, 12 * 8, 1, 8);
            a.MovImm32(Rax, 0);
            a.Jmp(_return);
            a.Mark(failed);
        }

        private bool[]? _entered;

        /// <summary>Instructions some jump, call or callback can start at (not only the one before them).</summary>
        private bool[] Entered()
        {
            if (_entered is { } known)
                return known;
            var entered = (bool[])_isFunction.Clone();
            for (int pc = 0; pc < _program.InstructionCount; pc++)
            {
                ref readonly var ins = ref _code[pc];
                bool jump = (ins.Op & 0x07) is 0x05 or 0x06 && ins.Op is not (VmOp.CallHelper or VmOp.CallRegister or VmOp.Exit);
                if ((jump || ins.Op == VmOp.LocalCall) && (uint)ins.Offset < (uint)entered.Length)
                    entered[ins.Offset] = true;
            }
            return _entered = entered;
        }

        /// <summary>
        /// The map r1 holds at the helper call at <paramref name="pc"/> when that is certain from the code: the last
        /// write of r1 is an lddw of a map of this program's collection in the same straight run of code (no jump
        /// lands between it and the call), with only ALU, loads and plain stores that leave r1 alone in between.
        /// </summary>
        private Maps.ManagedMap? ConstantMap(int pc)
        {
            if (_program.Collection is not { } collection)
                return null;
            var entered = Entered();
            for (int i = pc - 1; i >= 0; i--)
            {
                if (entered[i + 1])
                    return null;
                ref readonly var ins = ref _code[i];
                int cls = ins.Op & 0x07;
                if (ins.Op == VmOp.LoadImm64)
                {
                    if (ins.Dst == 1)
                        return collection.ResolveMap((ulong)ins.Imm);
                    continue;
                }
                bool keeps = cls switch
                {
                    0x04 or 0x07 or 0x01 => ins.Dst != 1,                                             // ALU, LDX
                    0x02 or 0x03 => ins.Op is not (VmOp.AtomicWord or VmOp.AtomicDoubleWord),         // ST, STX
                    _ => false,
                };
                if (!keeps)
                    return null;
            }
            return null;
        }

        /// <summary>
        /// bpf_map_lookup_elem on an array (or per-CPU array) map known at compile time, in a verified unchecked
        /// program, as the kernel's JIT inlines it (the map's gen_lookup): the element's address from the key, or 0
        /// past the end, with no call into .NET (the same answer as ArrayMap.LookupForProgram). r1-r5 are left as
        /// they are (a verified program cannot read them after a call).
        /// </summary>
        private void InlineArrayLookup(Maps.ArrayMap map)
        {
            var a = _a;
            int cpus = map.IsPerCpu ? Maps.ManagedMap.PossibleCpus : 1;
            var none = a.DefineLabel();
            var done = a.DefineLabel();
            a.Load(R11, R[2], 0, 4, signed: false);                      // the index: the key's u32
            a.AluRI(Alu.Cmp, false, R11, map.MaxEntries);
            a.Jcc(Cond.AboveOrEqual, none);
            if (map.IsPerCpu)
            {
                a.Load(R10, R12, BaselineRuntime.CpuOffset, 4, signed: false);
                a.AluRI(Alu.Cmp, false, R10, cpus);
                a.Jcc(Cond.AboveOrEqual, none);
                a.ImulImm(true, R11, cpus);
                a.AluRR(Alu.Add, true, R11, R10);
            }
            a.ImulImm(true, R11, map.ElementSize);
            a.MovImm(Rax, (long)map.Data);
            a.AluRR(Alu.Add, true, Rax, R11);
            a.Jmp(done);
            a.Mark(none);
            a.MovImm32(Rax, 0);
            a.Mark(done);
        }

        private void CallHelper(in DecodedInstruction ins, int pc)
        {
            var a = _a;
            if (!_program.Helpers.TryGet((int)ins.Imm, out var helper))
                throw new UnreachableException($"program '{_program.Name}': instruction {pc}: helper {ins.Imm} passed the decoder but is not in the table");
            // Verified unchecked programs only: the verifier proved r1 a map and r2 a readable key, and no region needs
            // registering for the value.
            if (helper.Method == s_mapLookupElem && _program.Verified && !_program.CheckMemory && !_keepArguments
                && ConstantMap(pc) is Maps.ArrayMap array)
            {
                InlineArrayLookup(array);
                return;
            }
            if (_keepArguments)
                SaveVolatile();
            a.StoreImm(Rsp, CallBlock.PcOffset, pc, 8);
            a.MovImm(R11, (long)helper.Function);
            a.Store(Rsp, CallBlock.FunctionOffset, R11, 8);
            a.Mov(true, R9, Rsp);
            a.MovImm(R11, BaselineRuntime.CallHelperEntry);
            a.Call(R11);
            PendingCheck();
            if (_keepArguments)
            {
                for (int i = 1; i <= 5; i++)
                    a.Load(R[i], Rsp, CallBlock.SaveOffset + i * 8, 8, signed: false);
            }
        }
    }
}
