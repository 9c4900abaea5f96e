using SharpBpf.Asm;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Verifier;

/// <summary>Helper calls checked against the platform table, bpf-to-bpf calls with their own frames, callbacks and exit.</summary>
internal sealed partial class Engine
{
    private const int MaxCallFrames = 8;

    private int Call(Instruction insn)
    {
        if (insn.Src == (Register)CallKind.Local)
        {
            int target = _graph.CallTarget(_pc);
            if (_globals.TryGetValue(target, out var global))
            {
                if (_state.Lock is { } held)
                    throw new Refusal($"global function calls are not allowed while holding a lock (bpf_spin_lock at instruction {held.At})",
                        "call bpf_spin_unlock() before the call, or make the function static");
                return CallGlobal(global);
            }
            return EnterFunction(target, _pc + 1, callback: false);
        }
        if (insn.Src == (Register)CallKind.Kfunc)
            return CallKfunc(insn);
        return CallHelper(insn);
    }

    private int EnterFunction(int target, int returnTo, bool callback, RegisterState[]? arguments = null)
    {
        if (_state.Frames.Count >= MaxCallFrames)
            throw new Refusal($"the call stack of {_state.Frames.Count + 1} frames is too deep (the limit is {MaxCallFrames})",
                "flatten the call chain or mark small functions __always_inline");
        var caller = Frame;
        var callee = new FrameState { FunctionStart = target, ReturnTo = returnTo, IsCallback = callback };
        for (int r = 0; r < 11; r++)
            callee.Registers[r] = RegisterState.NotInit;
        for (int r = 1; r <= 5; r++)
            callee.Registers[r] = arguments is null ? caller.Registers[r] : arguments[r - 1];
        _state.Frames.Add(callee);
        return target;
    }

    private int Exit()
    {
        var frame = Frame;
        if (_state.Frames.Count > 1)
        {
            var r0 = frame.Registers[0];
            if (r0.Type == RegisterType.Stack && r0.Frame == _state.Frames.Count - 1)
                throw new Refusal("a function cannot return a pointer to its own stack: the frame is gone after the return", register: Register.R0);
            if (frame.IsCallback)
            {
                var value = Read(Register.R0);
                MarkPrecise(value.Deps);
                if (!value.IsScalar || value.Value.SMin < 0 || value.Value.SMax > 1)
                    throw new Refusal($"a callback must return 0 or 1 (continue or stop), R0 is {value}",
                        "return 0 to continue the loop or 1 to stop it", Register.R0);
            }
            _state.Frames.RemoveAt(_state.Frames.Count - 1);
            if (frame.IsCallback)
                return ReturnFromCallback(frame);
            var caller = Frame;
            for (int r = 1; r <= 5; r++)
                caller.Registers[r] = RegisterState.NotInit;
            caller.Registers[0] = r0;
            return frame.ReturnTo;
        }
        if (_state.Lock is { } lockHeld)
            throw new Refusal($"exit while holding the bpf_spin_lock taken at instruction {lockHeld.At}: BPF_EXIT cannot be used inside a bpf_spin_lock-ed region",
                "call bpf_spin_unlock() on every path before returning");
        var result = Read(Register.R0);
        if (frame.FunctionStart != 0)
        {
            // The end of a global function verified on its own: it returns a number to any caller.
            if (!result.IsScalar)
                throw new Refusal($"a global function must return a number, R0 is {result}", register: Register.R0);
        }
        else if (_platform.ReturnRange is not null && result.IsScalar)
            MarkPrecise(result.Deps);
        if (result.IsPointer && !_options.Privileged)
            throw new Refusal("R0 leaks a pointer as the return value", "return a number (an XDP action)", Register.R0);
        if (_platform.ReturnRange is { } range && (!result.IsScalar || result.Value.SMin < range.Min || result.Value.SMax > range.Max))
            throw new Refusal($"the return value must be in [{range.Min}, {range.Max}], R0 is {result}", register: Register.R0);
        if (_state.References.Count > 0)
        {
            var (id, at) = _state.References.First();
            if (UnreleasedKernelReference(id, at) is { } kernelObject)
                throw kernelObject;
            throw new Refusal($"unreleased reference: the ring buffer memory reserved at instruction {at} is neither submitted nor discarded on this path (id={id})",
                "call bpf_ringbuf_submit() or bpf_ringbuf_discard() on every path after a successful bpf_ringbuf_reserve()");
        }
        return -1;
    }

    /// <summary>What the arguments told about the call, for later arguments and the return value.</summary>
    private sealed class CallInfo
    {
        public MapSpec? Map;
        public Register? MemoryReg;
        public RegisterState Memory;
        public ArgumentKind MemoryKind;
        public int AllocSize = -1;
        public int Callback = -1;
        public RegisterState CallbackContext;
        public bool ConstantKeyInRange;
    }

    private int CallHelper(Instruction insn)
    {
        var id = (HelperId)insn.Immediate;
        if (_state.Lock is { } held && id != HelperId.SpinUnlock)
            throw new Refusal($"function calls are not allowed while holding a lock: helper #{insn.Immediate} is called inside the bpf_spin_lock-ed region taken at instruction {held.At}",
                "call bpf_spin_unlock() first: only plain loads, stores and arithmetic may run under the lock");
        if (!_platform.TryGetHelper(id, out var proto))
        {
            if (_platform.KernelAllows(id))
                throw new Refusal($"helper {"bpf_" + HelperPrototype.KernelName(id)}#{(int)id} is allowed for {_platform.ProgramType} programs by the kernel, but this verifier does not model its prototype yet",
                    "verify this program with the kernel (sharpbpf verify --kernel)");
            if (PlatformTable.TryGetPrototype(id, out var known) || Enum.IsDefined(id))
                throw new Refusal($"{_platform.ProgramType} programs may not call helper {(known?.Name ?? "bpf_" + HelperPrototype.KernelName(id))}#{(int)id}",
                    "this helper belongs to other program types; see the helpers this program type may call");
            throw new Refusal($"unknown helper #{insn.Immediate}");
        }
        if (proto.GplOnly && !IsGplCompatible(_program.License))
            throw new Refusal($"{proto.Name} may only be called by GPL-compatible programs, and the license is '{_program.License}'",
                "declare `char _license[] SEC(\"license\") = \"GPL\";`");

        var info = new CallInfo();
        for (int a = 0; a < proto.Arguments.Count; a++)
            CheckArgument(proto, a, (Register)(a + 1), info);
        CheckMapCompatibility(proto, info.Map);
        // A callback may run (again): explored later from the state before the call, returning to this call.
        if (info.Callback >= 0)
            ScheduleCallback(id, info);

        if (proto.ChangesPacketData)
        {
            // The packet may have moved: every packet pointer is now a stale number.
            _state.UpdateAll(r => r.Type is RegisterType.Packet or RegisterType.PacketEnd or RegisterType.PacketMeta
                ? RegisterState.UnknownScalar : r);
        }
        for (int r = 1; r <= 5; r++)
            Frame.Registers[r] = RegisterState.NotInit;

        switch (proto.Returns)
        {
            case ReturnKind.Void:
                Frame.Registers[0] = RegisterState.NotInit;
                break;
            case ReturnKind.MapValueOrNull:
                if (info.Map is { Type: MapType.ArrayOfMaps or MapType.HashOfMaps, InnerMap: null } outer)
                    throw new Refusal($"map '{outer.Name}' is a map of maps without an inner map template: the type of its values is unknown",
                        "declare the inner map type with __array(values, struct inner_map)");
                // Since Linux 6.14 an array lookup with a constant key below max_entries cannot fail: the kernel
                // gives a plain map value pointer, and programs that skip the NULL check load.
                Frame.Registers[0] = info.ConstantKeyInRange
                    ? RegisterState.Pointer(RegisterType.MapValue) with { Map = info.Map, Id = info.Map?.SpinLockOffset is null ? 0 : NewId() }
                    : RegisterState.Pointer(RegisterType.MapValueOrNull) with { Map = info.Map, Id = NewId() };
                break;
            case ReturnKind.RingbufMemoryOrNull:
            {
                int reference = NewId();
                _state.References[reference] = _pc;
                Frame.Registers[0] = RegisterState.Pointer(RegisterType.RingbufMemoryOrNull) with
                {
                    Id = NewId(), ReferenceId = reference, MemorySize = info.AllocSize,
                };
                break;
            }
            default:
                Frame.Registers[0] = RegisterState.UnknownScalar;
                break;
        }

        return _pc + 1;
    }

    /// <summary>The key's value when it is a 4-byte constant on the stack (zeroed bytes or a spilled constant).</summary>
    private ulong? ConstantStackKey(RegisterState ptr, int size)
    {
        if (size != 4 || ptr.Type != RegisterType.Stack || ptr.HasVariableOffset)
            return null;
        var frame = _state.Frames[ptr.Frame];
        int first = ptr.Offset + FrameState.StackSize;
        if (first < 0 || first + 4 > FrameState.StackSize)
            return null;
        bool zero = true;
        for (int i = first; i < first + 4; i++)
            zero &= frame.StackBytes[i] == StackByte.Zero;
        if (zero)
            return 0;
        // The kernel's get_constant_map_key: a spill of exactly the key's size holding a constant.
        if (first % 8 == 0 && frame.StackBytes[first] == StackByte.Spill && FrameState.SpillSize(frame.StackBytes, first / 8) == size
            && frame.Spills[first / 8] is { Type: RegisterType.Scalar } spilled && spilled.Value.IsConst)
        {
            MarkPrecise(spilled.Deps); // the lookup cannot fail because of this exact key
            return (uint)spilled.Value.ConstValue;
        }
        return null;
    }

    private static bool IsGplCompatible(string license) =>
        license is "GPL" or "GPL v2" or "GPL and additional rights" or "Dual BSD/GPL" or "Dual MIT/GPL" or "Dual MPL/GPL";

    private void CheckArgument(HelperPrototype proto, int index, Register reg, CallInfo info)
    {
        var kind = proto.Argument(index);
        string name = proto.Name;
        var value = Read(reg);
        // Sizes, NULL buffers and other scalar arguments are checked by value: they must be precise.
        if (value.IsScalar && kind is not (ArgumentKind.None or ArgumentKind.Anything))
            MarkPrecise(value.Deps);
        string Got() => RegisterState.TypeName(value.Type);
        switch (kind)
        {
            case ArgumentKind.None:
            case ArgumentKind.Anything:
                return;
            case ArgumentKind.ConstMapPointer:
                if (value.Type != RegisterType.MapPointer)
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must be a map (loaded with lddw), got {Got()}",
                        "pass the map itself: `&my_map`", reg);
                info.Map = value.Map;
                return;
            case ArgumentKind.MapKey:
            case ArgumentKind.MapValue:
            case ArgumentKind.UninitMapValue:
            {
                var map = info.Map ?? throw new System.Diagnostics.UnreachableException("map argument before the map");
                bool key = kind == ArgumentKind.MapKey;
                uint size = key ? map.KeySize : map.ValueSize;
                if (value.Type is not (RegisterType.Stack or RegisterType.Packet or RegisterType.PacketMeta or RegisterType.MapValue))
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must point to the map's {(key ? "key" : "value")} ({size} bytes) on the stack, in a map value or the packet, got {Got()}",
                        key ? "put the key in a local variable and pass its address: `bpf_map_lookup_elem(&map, &key)`" : null, reg);
                CheckHelperMemory(reg, value, size, kind == ArgumentKind.UninitMapValue, name);
                if (key && proto.Id == HelperId.MapLookupElem && map.Type is MapType.Array or MapType.PercpuArray
                    && ConstantStackKey(value, (int)size) is { } k && k < map.MaxEntries)
                    info.ConstantKeyInRange = true;
                return;
            }
            case ArgumentKind.ReadableMemory:
            case ArgumentKind.Memory:
            case ArgumentKind.ReadableMemoryOrNull:
            case ArgumentKind.WritableMemory:
                if (kind == ArgumentKind.ReadableMemoryOrNull && value.IsScalar && value.Value.IsConst && value.Value.ConstValue == 0)
                {
                    info.MemoryReg = null;
                    info.MemoryKind = kind;
                    return;
                }
                if (value.IsScalar || value.IsNullable)
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must point to memory, got {Got()}",
                        value.IsNullable ? "compare the pointer with NULL first" : null, reg);
                if ((kind is ArgumentKind.Memory or ArgumentKind.WritableMemory) && value.Type == RegisterType.MapValue && value.Map!.Freeze)
                    throw new Refusal($"R{(int)reg} {name} writes argument {index + 1}, which points into read-only map '{value.Map.Name}'", register: reg);
                info.MemoryReg = reg;
                info.Memory = value;
                info.MemoryKind = kind;
                return;
            case ArgumentKind.ConstSize:
            case ArgumentKind.ConstSizeOrZero:
            {
                if (!value.IsScalar)
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} is a size and must be a number, got {Got()}", register: reg);
                var s = value.Value;
                if (s.SMin < 0)
                    throw new Refusal($"R{(int)reg} the size for {name} may be negative ({s})",
                        "use an unsigned size, or bound it: `if (len < 0 || len > N) return ...;`", reg);
                if (kind == ArgumentKind.ConstSize && s.UMax == 0)
                    throw new Refusal($"R{(int)reg} the size for {name} is zero, which it does not accept", register: reg);
                if (s.UMax >= MaxVariableOffset)
                    throw new Refusal($"R{(int)reg} the size for {name} is unbounded ({s})",
                        "bound it: `if (len > N) return ...;` or `len &= 0xff;`", reg);
                if (info.MemoryReg is { } memReg)
                {
                    bool write = info.MemoryKind is ArgumentKind.WritableMemory or ArgumentKind.Memory;
                    CheckHelperMemory(memReg, info.Memory, s.UMax, info.MemoryKind == ArgumentKind.WritableMemory, name);
                    if (write && info.MemoryKind == ArgumentKind.Memory)
                        CheckHelperMemory(memReg, info.Memory, s.UMax, true, name);
                }
                else if (info.MemoryKind == ArgumentKind.ReadableMemoryOrNull && s.UMax != 0)
                {
                    throw new Refusal($"R{(int)reg} a NULL buffer for {name} needs a zero size", register: reg);
                }
                return;
            }
            case ArgumentKind.WritableFixedMemory:
            {
                int size = proto.FixedSizes[index];
                if (value.IsScalar || value.IsNullable)
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must point to {size} bytes of memory, got {Got()}", register: reg);
                CheckHelperMemory(reg, value, (ulong)size, true, name);
                return;
            }
            case ArgumentKind.ConstAllocSizeOrZero:
                if (!value.IsScalar || !value.Value.IsConst)
                    throw new Refusal($"R{(int)reg} the size for {name} must be a constant the verifier can see, got {value}",
                        "reserve a fixed size, e.g. `bpf_ringbuf_reserve(&rb, sizeof(struct event), 0)`", reg);
                if (value.Value.ConstValue >= MaxVariableOffset)
                    throw new Refusal($"R{(int)reg} the size for {name} is too large ({(long)value.Value.ConstValue})", register: reg);
                info.AllocSize = (int)value.Value.ConstValue;
                return;
            case ArgumentKind.Context:
                if (value.Type != RegisterType.Context)
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must be the context, got {Got()}",
                        "pass the program's context argument (ctx) unchanged", reg);
                if (value.Offset != 0 || value.HasVariableOffset)
                    throw new Refusal($"R{(int)reg} dereference of a modified context pointer: {name} needs the context itself (off={value.Offset})", register: reg);
                return;
            case ArgumentKind.RingbufMemoryRelease:
            {
                if (value.Type != RegisterType.RingbufMemory)
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must be memory from bpf_ringbuf_reserve, got {Got()}",
                        value.Type == RegisterType.RingbufMemoryOrNull ? "compare the reservation with NULL first" : null, reg);
                if (value.Offset != 0 || value.HasVariableOffset)
                    throw new Refusal($"R{(int)reg} {name} needs the pointer bpf_ringbuf_reserve returned, unmodified (off={value.Offset})", register: reg);
                int reference = value.ReferenceId;
                _state.References.Remove(reference);
                _state.UpdateAll(r => r.ReferenceId == reference && r.IsPointer ? RegisterState.UnknownScalar : r);
                return;
            }
            case ArgumentKind.Function:
                if (value.Type != RegisterType.Function)
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must be a function (a callback), got {Got()}", register: reg);
                info.Callback = value.Frame;
                return;
            case ArgumentKind.StackOrNull:
                if (!(value.Type == RegisterType.Stack || (value.IsScalar && value.Value.IsConst && value.Value.ConstValue == 0)))
                    throw new Refusal($"R{(int)reg} argument {index + 1} of {name} must be a stack pointer or NULL, got {Got()}", register: reg);
                info.CallbackContext = value;
                return;
            case ArgumentKind.ConstString:
                CheckConstString(reg, value, name);
                return;
            case ArgumentKind.SpinLock:
                CheckSpinLock(proto.Id, reg, value, name);
                return;
            default:
                throw new System.Diagnostics.UnreachableException($"argument kind {kind}");
        }
    }

    /// <summary>bpf_spin_lock/unlock (the kernel's process_spin_lock): the argument points to the one struct
    /// bpf_spin_lock of a map value (known from BTF); one lock at a time; unlock what this path holds.</summary>
    private void CheckSpinLock(HelperId id, Register reg, RegisterState value, string name)
    {
        if (value.Type != RegisterType.MapValue)
            throw new Refusal($"R{(int)reg} argument 1 of {name} must point to the struct bpf_spin_lock in a map value, got {RegisterState.TypeName(value.Type)}",
                value.IsNullable ? "compare the pointer with NULL first" : "pass the lock field of a value from bpf_map_lookup_elem(): `&v->lock`", reg);
        var map = value.Map!;
        if (value.HasVariableOffset)
            throw new Refusal($"R{(int)reg} {name} needs a constant offset into map '{map.Name}' value (the lock's), got a variable one", register: reg);
        if (map.SpinLockOffset is not { } lockOffset)
            throw new Refusal($"map '{map.Name}' has no struct bpf_spin_lock in its value: {name} needs a map whose value type (BTF) has exactly one",
                "declare the map with `__type(value, struct my_value)` where the struct holds one `struct bpf_spin_lock` field", reg);
        if (value.Offset != lockOffset)
            throw new Refusal($"R{(int)reg} {name} must point to the lock at offset {lockOffset} of map '{map.Name}' value, got offset {value.Offset}",
                "pass `&v->lock`", reg);
        if (id == HelperId.SpinLock)
        {
            if (_state.Lock is { } held)
                throw new Refusal($"locking two bpf_spin_locks is not allowed: the lock taken at instruction {held.At} is still held",
                    "release the first lock with bpf_spin_unlock() before taking another", reg);
            _state.Lock = new HeldLock(map, value.Id, _pc);
            return;
        }
        if (_state.Lock is not { } taken)
            throw new Refusal($"{name} without taking a lock: no bpf_spin_lock is held on this path", "call bpf_spin_lock() first on every path that reaches the unlock", reg);
        if (taken.Map != map || taken.PointerId != value.Id)
            throw new Refusal($"{name} of a different lock than the one taken at instruction {taken.At} (map '{taken.Map.Name}')",
                "unlock through the same pointer the lock was taken with", reg);
        _state.Lock = null;
    }

    private static void CheckConstString(Register reg, RegisterState value, string name)
    {
        if (value.Type != RegisterType.MapValue || value.Map is not { Freeze: true } map || value.HasVariableOffset)
            throw new Refusal($"R{(int)reg} {name} needs a constant string in read-only data (.rodata)", register: reg);
        var bytes = map.InitialValue;
        if (bytes is null || value.Offset >= bytes.Length || Array.IndexOf(bytes, (byte)0, value.Offset) < 0)
            throw new Refusal($"R{(int)reg} the string for {name} is not NUL-terminated", register: reg);
    }

    /// <summary>Which map types each helper takes, and which helpers each special map type allows (check_map_func_compatibility).</summary>
    private static void CheckMapCompatibility(HelperPrototype proto, MapSpec? map)
    {
        if (map is null)
            return;
        var id = proto.Id;
        bool ok = map.Type switch
        {
            MapType.ProgArray => id == HelperId.TailCall,
            MapType.PerfEventArray => id is HelperId.PerfEventOutput or HelperId.PerfEventRead or HelperId.SkbOutput or HelperId.XdpOutput,
            MapType.Ringbuf => id is HelperId.RingbufOutput or HelperId.RingbufReserve or HelperId.RingbufQuery,
            MapType.Devmap or MapType.DevmapHash => id is HelperId.RedirectMap or HelperId.MapLookupElem,
            MapType.Cpumap => id == HelperId.RedirectMap,
            MapType.Xskmap => id is HelperId.RedirectMap or HelperId.MapLookupElem,
            MapType.Queue or MapType.Stack => id is HelperId.MapPushElem or HelperId.MapPopElem or HelperId.MapPeekElem,
            MapType.ArrayOfMaps or MapType.HashOfMaps => id == HelperId.MapLookupElem,
            _ => true,
        };
        ok &= id switch
        {
            HelperId.TailCall => map.Type == MapType.ProgArray,
            HelperId.RedirectMap => map.Type is MapType.Devmap or MapType.DevmapHash or MapType.Cpumap or MapType.Xskmap,
            HelperId.RingbufOutput or HelperId.RingbufReserve or HelperId.RingbufQuery => map.Type == MapType.Ringbuf,
            HelperId.PerfEventOutput => map.Type == MapType.PerfEventArray,
            HelperId.MapPushElem or HelperId.MapPeekElem => map.Type is MapType.Queue or MapType.Stack or MapType.BloomFilter,
            HelperId.MapPopElem => map.Type is MapType.Queue or MapType.Stack,
            HelperId.ForEachMapElem => map.Type is MapType.Hash or MapType.LruHash or MapType.PercpuHash or MapType.LruPercpuHash or MapType.Array or MapType.PercpuArray,
            _ => true,
        };
        if (!ok)
            throw new Refusal($"map '{map.Name}' of type {map.Type} cannot be passed to {proto.Name}",
                "check the map type in the map definition against the helper");
    }
}
