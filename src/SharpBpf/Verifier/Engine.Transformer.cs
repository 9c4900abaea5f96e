using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Verifier;

/// <summary>How each instruction changes the state: ALU, jumps and lddw (memory and calls are in their own files).</summary>
internal sealed partial class Engine
{
    /// <summary>Executes the instruction at _pc on _state. Returns the next pc, or -1 when the path ends.</summary>
    private int Step(Checkpoint? parent)
    {
        var insn = Insn;
        var op = insn.OpCode;
        switch (op.Class)
        {
            case InstructionClass.Alu:
            case InstructionClass.Alu64:
                Alu(insn);
                return _pc + 1;
            case InstructionClass.Jmp:
            case InstructionClass.Jmp32:
                switch (op.JumpOperation)
                {
                    case JumpOperation.Exit:
                        return Exit();
                    case JumpOperation.Call:
                        return Call(insn);
                    case JumpOperation.Ja:
                        return _graph.JumpTarget(_pc);
                    default:
                        return ConditionalJump(insn, parent);
                }
            case InstructionClass.Ld:
                if (insn.IsLoadImmediate64)
                    LoadImmediate(insn);
                else
                    LegacyPacketLoad(insn);
                return _pc + 1;
            case InstructionClass.Ldx:
                Load(insn);
                return _pc + 1;
            case InstructionClass.St:
                Store(insn, RegisterState.Constant(insn.Immediate), null);
                return _pc + 1;
            default:
                if (op.Mode == AccessMode.Atomic)
                    Atomic(insn);
                else
                    Store(insn, Read(insn.Src), insn.Src);
                return _pc + 1;
        }
    }

    private void LoadImmediate(Instruction insn)
    {
        switch ((LoadImmediateSource)insn.Src)
        {
            case LoadImmediateSource.Immediate:
                Write(insn.Dst, RegisterState.Constant(insn.Constant));
                return;
            case LoadImmediateSource.MapFd:
                Write(insn.Dst, RegisterState.Pointer(RegisterType.MapPointer) with { Map = FindMap(insn) });
                return;
            case LoadImmediateSource.MapValue:
            {
                var map = FindMap(insn);
                long offset = insn.Constant >> 32;
                if (offset < 0 || offset >= map.ValueSize)
                    throw new Refusal($"lddw points {offset} bytes into map '{map.Name}' whose value is {map.ValueSize} bytes");
                Write(insn.Dst, RegisterState.Pointer(RegisterType.MapValue, (int)offset) with { Map = map });
                return;
            }
            case LoadImmediateSource.Function:
                Write(insn.Dst, RegisterState.Pointer(RegisterType.Function) with { Frame = _graph.CallTarget(_pc) });
                return;
            case LoadImmediateSource.BtfId:
                Write(insn.Dst, KernelSymbol(insn));
                return;
            default:
                throw new Refusal($"lddw with src={(int)insn.Src} is not supported by this verifier");
        }
    }

    private MapSpec FindMap(Instruction insn)
    {
        if (insn.Reference is { } name && _maps.TryGetValue(name, out var map))
            return map;
        throw new Refusal(insn.Reference is null
            ? "lddw loads a map but names none (the instruction has no map reference)"
            : $"lddw refers to map '{insn.Reference}', which the object does not define");
    }

    private void Alu(Instruction insn)
    {
        var op = insn.OpCode;
        bool is64 = op.Class == InstructionClass.Alu64;
        var alu = op.AluOperation;
        bool fromRegister = op.Source == OperandSource.Register;

        if (alu == AluOperation.Mov)
        {
            if (!fromRegister)
            {
                Write(insn.Dst, RegisterState.Constant(is64 ? insn.Constant : (uint)insn.Immediate));
                return;
            }
            var src = Read(insn.Src);
            if (insn.Offset != 0)
            {
                if (!src.IsScalar)
                    throw new Refusal($"R{(int)insn.Src} sign-extending move of a pointer is not allowed", register: insn.Src);
                var ext = ScalarArithmetic.SignExtend(src.Value, insn.Offset);
                Write(insn.Dst, RegisterState.FromScalar(is64 ? ext : ext.ZeroExtend32()) with { Deps = src.Deps });
                return;
            }
            if (is64)
            {
                if (src.IsScalar && !src.Value.IsConst && insn.Src != insn.Dst)
                {
                    // Copies share an id, so a bound learned on one applies to both.
                    if (src.Id == 0)
                    {
                        src = src with { Id = NewId() };
                        Frame.Registers[(int)insn.Src] = src;
                    }
                }
                Write(insn.Dst, src);
                return;
            }
            if (!src.IsScalar)
            {
                if (!_options.Privileged)
                    throw new Refusal($"R{(int)insn.Src} partial copy of a pointer", register: insn.Src);
                Write(insn.Dst, RegisterState.FromScalar(Scalar.OfSize(4)));
                return;
            }
            Write(insn.Dst, RegisterState.FromScalar(src.Value.ZeroExtend32()) with { Deps = src.Deps });
            return;
        }

        var dst = Read(insn.Dst);
        if (alu == AluOperation.Neg || alu == AluOperation.End)
        {
            if (!dst.IsScalar)
                throw new Refusal($"R{(int)insn.Dst} {(alu == AluOperation.Neg ? "negation" : "byte swap")} of a pointer is not allowed", register: insn.Dst);
            var value = alu == AluOperation.Neg
                ? ScalarArithmetic.Apply(AluOperation.Sub, Scalar.Const(0), dst.Value, is64)
                : ScalarArithmetic.ByteSwap(dst.Value, insn.Immediate, swap: fromRegister || is64);
            Write(insn.Dst, RegisterState.FromScalar(value) with { Deps = dst.Deps });
            return;
        }

        var operand = fromRegister
            ? Read(insn.Src)
            : RegisterState.Constant(is64 ? insn.Constant : (uint)insn.Immediate);
        if (dst.IsPointer || operand.IsPointer)
        {
            Write(insn.Dst, PointerArithmetic(insn, alu, is64, dst, operand));
            return;
        }
        bool signed = insn.Offset == 1;
        Write(insn.Dst, RegisterState.FromScalar(ScalarArithmetic.Apply(alu, dst.Value, operand.Value, is64, signed))
            with { Deps = dst.Deps.Union(operand.Deps) });
    }

    private const int MaxVariableOffset = 1 << 29;

    private RegisterState PointerArithmetic(Instruction insn, AluOperation alu, bool is64, RegisterState dst, RegisterState src)
    {
        var dstReg = insn.Dst;
        string opName = alu.ToString().ToLowerInvariant();
        if (dst.IsPointer && src.IsPointer)
        {
            if (alu == AluOperation.Sub && is64 && _options.Privileged)
                return RegisterState.UnknownScalar;
            throw new Refusal($"R{(int)dstReg} pointer {opName} pointer is not allowed", register: dstReg);
        }
        if (!is64)
        {
            // 32-bit arithmetic on a pointer makes a meaningless number; the kernel lets privileged loaders subtract.
            if (alu == AluOperation.Sub && _options.Privileged)
                return RegisterState.FromScalar(Scalar.OfSize(4));
            throw new Refusal($"R{(int)dstReg} 32-bit pointer arithmetic is not allowed", "use 64-bit arithmetic on pointers", dstReg);
        }
        RegisterState ptr, scalar;
        if (dst.IsPointer)
        {
            ptr = dst;
            scalar = src;
        }
        else
        {
            ptr = src;
            scalar = dst;
            if (alu == AluOperation.Sub)
                throw new Refusal($"R{(int)dstReg} tried to subtract a pointer from a scalar", register: dstReg);
        }
        if (alu is not (AluOperation.Add or AluOperation.Sub))
        {
            throw new Refusal($"R{(int)dstReg} {opName} on a pointer ({RegisterState.TypeName(ptr.Type)}) is not allowed: pointers only take + and -",
                register: dstReg);
        }
        switch (ptr.Type)
        {
            case RegisterType.MapValueOrNull:
            case RegisterType.RingbufMemoryOrNull:
            case RegisterType.BtfPointerOrNull:
                throw new Refusal($"R{(int)dstReg} pointer arithmetic on {RegisterState.TypeName(ptr.Type)} is not allowed",
                    "compare the pointer with NULL first: `if (!p) return ...;`", dstReg);
            case RegisterType.MapPointer:
            case RegisterType.PacketEnd:
            case RegisterType.Function:
                throw new Refusal($"R{(int)dstReg} pointer arithmetic on {RegisterState.TypeName(ptr.Type)} is not allowed", register: dstReg);
        }
        if (alu == AluOperation.Sub && ptr.Type == RegisterType.Stack)
            throw new Refusal($"R{(int)dstReg} subtraction from stack pointer prohibited", "add a negative offset instead: `r1 += -16`", dstReg);
        // The pointer's offset depends on the scalar's exact value: it must be precise.
        MarkPrecise(scalar.Deps);
        var s = scalar.Value;
        if (s.IsConst)
        {
            long delta = alu == AluOperation.Add ? (long)s.ConstValue : -(long)s.ConstValue;
            long offset = ptr.Offset + delta;
            if (offset >= MaxVariableOffset || offset <= -MaxVariableOffset)
                throw new Refusal($"R{(int)dstReg} adding {delta} makes the {RegisterState.TypeName(ptr.Type)} pointer out of bounds", register: dstReg);
            return ptr with { Offset = (int)offset };
        }
        if (s.SMin == long.MinValue)
        {
            throw new Refusal($"R{(int)dstReg} math between a {RegisterState.TypeName(ptr.Type)} pointer and a register with an unbounded minimum value is not allowed",
                "bound the value first, e.g. `if (x > 1500) return XDP_DROP;` or `x &= 0xff;`", dstReg);
        }
        if (s.SMin + ptr.Offset <= -MaxVariableOffset || s.SMax >= MaxVariableOffset)
            throw new Refusal($"R{(int)dstReg} the value {s} makes the {RegisterState.TypeName(ptr.Type)} pointer out of bounds",
                "bound the value first", dstReg);
        var variable = ScalarArithmetic.Apply(alu, ptr.Value, s, true);
        var result = ptr with { Value = variable };
        if (ptr.IsPacketPointer)
            result = result with { Id = NewId(), Range = 0 };
        return result;
    }

    private int ConditionalJump(Instruction insn, Checkpoint? parent)
    {
        var op = insn.OpCode;
        bool is32 = op.Class == InstructionClass.Jmp32;
        var jump = op.JumpOperation;
        int target = _graph.JumpTarget(_pc);
        var left = Read(insn.Dst);
        var right = op.Source == OperandSource.Register
            ? Read(insn.Src)
            : RegisterState.Constant(is32 ? (uint)insn.Immediate : insn.Constant);
        Register? rightReg = op.Source == OperandSource.Register ? insn.Src : null;

        if (left.IsScalar && right.IsScalar)
        {
            // Decide both edges on the values first: the state is copied only when the path really forks.
            var takenLeft = left.Value;
            var takenRight = right.Value;
            var fallLeft = left.Value;
            var fallRight = right.Value;
            bool takenPossible = BranchRefinement.Refine(jump, true, is32, ref takenLeft, ref takenRight);
            bool fallPossible = BranchRefinement.Refine(jump, false, is32, ref fallLeft, ref fallRight);
            if (takenPossible && fallPossible)
            {
                var forked = _state.Clone();
                SetScalar(forked, insn.Dst, left, takenLeft);
                if (rightReg is { } tr)
                    SetScalar(forked, tr, right, takenRight);
                SetScalar(_state, insn.Dst, left, fallLeft);
                if (rightReg is { } fr)
                    SetScalar(_state, fr, right, fallRight);
                Fork(forked, target, parent);
                return _pc + 1;
            }
            // The values decided the branch: the kernel's mark_chain_precision on both operands.
            MarkPrecise(left.Deps);
            MarkPrecise(right.Deps);
            if (takenPossible)
            {
                SetScalar(_state, insn.Dst, left, takenLeft);
                if (rightReg is { } tr)
                    SetScalar(_state, tr, right, takenRight);
                return target;
            }
            if (fallPossible)
            {
                SetScalar(_state, insn.Dst, left, fallLeft);
                if (rightReg is { } fr)
                    SetScalar(_state, fr, right, fallRight);
                return _pc + 1;
            }
            return -1;
        }

        var taken = _state.Clone();
        var fallthrough = _state;
        bool takenOk = Assume(taken, jump, true, is32, insn.Dst, left, rightReg, right);
        bool fallOk = Assume(fallthrough, jump, false, is32, insn.Dst, left, rightReg, right);
        if (takenOk && fallOk)
        {
            Fork(taken, target, parent);
            return _pc + 1;
        }
        // The values decided the branch: the kernel's mark_chain_precision on both operands.
        if (left.IsScalar)
            MarkPrecise(left.Deps);
        if (right.IsScalar)
            MarkPrecise(right.Deps);
        if (takenOk)
        {
            _state = taken;
            return target;
        }
        if (fallOk)
            return _pc + 1;
        // Neither edge is possible: the path itself was impossible (contradictory facts); nothing to check.
        return -1;
    }

    /// <summary>Refines <paramref name="state"/> with "left op right" (or its negation). False when impossible.</summary>
    private bool Assume(VerifierState state, Asm.JumpOperation op, bool taken, bool is32, Register leftReg, RegisterState left, Register? rightReg, RegisterState right)
    {
        if (left.IsScalar && right.IsScalar)
        {
            var a = left.Value;
            var b = right.Value;
            if (!BranchRefinement.Refine(op, taken, is32, ref a, ref b))
                return false;
            SetScalar(state, leftReg, left, a);
            if (rightReg is { } rr)
                SetScalar(state, rr, right, b);
            return true;
        }
        // Pointer against NULL.
        if (left.IsPointer && right.IsScalar && right.Value.IsConst && right.Value.ConstValue == 0 && op is Asm.JumpOperation.Jeq or Asm.JumpOperation.Jne)
            return AssumeNull(state, left, op == Asm.JumpOperation.Jeq == taken);
        if (right.IsPointer && left.IsScalar && left.Value.IsConst && left.Value.ConstValue == 0 && op is Asm.JumpOperation.Jeq or Asm.JumpOperation.Jne)
            return AssumeNull(state, right, op == Asm.JumpOperation.Jeq == taken);
        if (left.IsPointer && right.IsPointer && !is32)
        {
            LearnPacketRange(state, op, taken, left, right);
            return true;
        }
        if (!_options.Privileged)
            throw new Refusal("pointer comparison is not allowed for unprivileged programs", register: leftReg);
        return true;
    }

    private static void SetScalar(VerifierState state, Register reg, RegisterState before, Scalar value)
    {
        var frame = state.Current;
        if (before.Id != 0)
        {
            // Every copy of this scalar learns the same bound.
            int id = before.Id;
            state.UpdateAll(r => r.Type == RegisterType.Scalar && r.Id == id ? r with { Value = value } : r);
        }
        else
        {
            frame.Registers[(int)reg] = before with { Value = value };
        }
    }

    /// <summary>isNull: the edge where the pointer equals NULL.</summary>
    private bool AssumeNull(VerifierState state, RegisterState ptr, bool isNull)
    {
        if (!ptr.IsNullable)
            return !isNull; // a pointer that is never NULL
        int id = ptr.Id;
        if (isNull)
        {
            state.UpdateAll(r => r.IsNullable && r.Id == id ? RegisterState.Constant(0) : r);
            // A failed ring buffer reservation holds nothing to release.
            if (ptr.ReferenceId != 0)
                state.References.Remove(ptr.ReferenceId);
        }
        else
        {
            // A lookup in a map of maps gives the inner map itself once it is not NULL (the kernel's
            // CONST_PTR_TO_MAP with the inner map's template).
            state.UpdateAll(r => !(r.IsNullable && r.Id == id) ? r
                : r.Type == RegisterType.MapValueOrNull && r.Map is { Type: MapType.ArrayOfMaps or MapType.HashOfMaps, InnerMap: { } inner }
                    ? RegisterState.Pointer(RegisterType.MapPointer) with { Map = inner }
                    : r with
                    {
                        Type = r.Type switch
                        {
                            RegisterType.MapValueOrNull => RegisterType.MapValue,
                            RegisterType.BtfPointerOrNull => RegisterType.BtfPointer,
                            _ => RegisterType.RingbufMemory,
                        },
                        // A value holding a bpf_spin_lock keeps its id: the lock taken through it is that lookup's.
                        Id = r.Type == RegisterType.MapValueOrNull && r.Map?.SpinLockOffset is not null ? r.Id : 0,
                    });
        }
        return true;
    }

    private const int MaxPacketOffset = 0xffff;

    /// <summary>
    /// A comparison of a packet pointer with data_end (or of a meta pointer with data) proves bytes in bounds on one
    /// edge: after <c>if (p + 14 &gt; end) goto out</c> the fall-through knows 14 bytes from p's base are in the packet.
    /// </summary>
    private static void LearnPacketRange(VerifierState state, Asm.JumpOperation op, bool taken, RegisterState left, RegisterState right)
    {
        RegisterState ptr;
        bool ptrOnLeft;
        if ((left.Type == RegisterType.Packet && right.Type == RegisterType.PacketEnd)
            || (left.Type == RegisterType.PacketMeta && right.Type == RegisterType.Packet))
        {
            ptr = left;
            ptrOnLeft = true;
        }
        else if ((right.Type == RegisterType.Packet && left.Type == RegisterType.PacketEnd)
            || (right.Type == RegisterType.PacketMeta && left.Type == RegisterType.Packet))
        {
            ptr = right;
            ptrOnLeft = false;
        }
        else
        {
            return;
        }
        if (!taken)
            op = BranchRefinement.Negate(op);
        if (!ptrOnLeft)
            op = BranchRefinement.Swap(op);
        // Now the edge knows "ptr op end".
        int range;
        switch (op)
        {
            case Asm.JumpOperation.Jle:
            case Asm.JumpOperation.Jeq:
                range = ptr.Offset;
                break;
            case Asm.JumpOperation.Jlt:
                range = ptr.Offset + 1;
                break;
            default:
                return;
        }
        if (ptr.Offset < 0 || ptr.Value.UMax > MaxPacketOffset || ptr.Value.UMax + (ulong)ptr.Offset > MaxPacketOffset || range <= 0)
            return;
        var type = ptr.Type;
        int id = ptr.Id;
        state.UpdateAll(r => r.Type == type && r.Id == id && r.Range < range ? r with { Range = range } : r);
    }
}
