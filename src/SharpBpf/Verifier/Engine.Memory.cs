using SharpBpf.Asm;
using SharpBpf.Platform;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Verifier;

/// <summary>The assertions on memory: which pointer may be dereferenced where, and what a load yields.</summary>
internal sealed partial class Engine
{
    private enum Access { Read, Write, Atomic }

    private void Load(Instruction insn)
    {
        var ptr = Read(insn.Src);
        int size = insn.OpCode.SizeInBytes;
        var value = CheckMemory(insn.Src, ptr, insn.Offset, size, Access.Read, null);
        if (insn.OpCode.Mode == AccessMode.MemSx && value.IsScalar)
            value = RegisterState.FromScalar(ScalarArithmetic.SignExtend(value.Value, size * 8)) with { Deps = value.Deps };
        Write(insn.Dst, value);
    }

    private void Store(Instruction insn, RegisterState value, Register? valueReg)
    {
        var ptr = Read(insn.Dst);
        CheckMemory(insn.Dst, ptr, insn.Offset, insn.OpCode.SizeInBytes, Access.Write, value);
    }

    private void Atomic(Instruction insn)
    {
        var ptr = Read(insn.Dst);
        var src = Read(insn.Src);
        int size = insn.OpCode.SizeInBytes;
        var operation = (AtomicOperation)insn.Immediate;
        if (!src.IsScalar && !_options.Privileged)
            throw new Refusal($"R{(int)insn.Src} leaks a pointer into memory", register: insn.Src);
        if (operation == AtomicOperation.CmpXchg)
            Read(Register.R0);
        CheckMemory(insn.Dst, ptr, insn.Offset, size, Access.Atomic, RegisterState.UnknownScalar);
        var fetched = RegisterState.FromScalar(Scalar.OfSize(size));
        if (operation == AtomicOperation.CmpXchg)
            Write(Register.R0, fetched);
        else if (((int)operation & 1) != 0)
            Write(insn.Src, fetched);
    }

    private void LegacyPacketLoad(Instruction insn)
    {
        if (_platform.ProgramType is not (ProgramType.SocketFilter or ProgramType.SchedCls or ProgramType.SchedAct))
            throw new Refusal($"legacy packet loads (LD_ABS/LD_IND) are not allowed in {_platform.ProgramType} programs",
                "read the packet through the context's data pointer instead");
        var r6 = Read(Register.R6);
        if (r6.Type != RegisterType.Context || r6.Offset != 0)
            throw new Refusal("LD_ABS/LD_IND need the context in r6", "keep the context pointer (r1 at entry) in r6", Register.R6);
        if (insn.OpCode.Mode == AccessMode.Ind)
        {
            var index = Read(insn.Src);
            if (!index.IsScalar)
                throw new Refusal($"R{(int)insn.Src} LD_IND index must be a number", register: insn.Src);
        }
        for (int r = 1; r <= 5; r++)
            Frame.Registers[r] = RegisterState.NotInit;
        Frame.Registers[0] = RegisterState.FromScalar(Scalar.OfSize(insn.OpCode.SizeInBytes));
    }

    /// <summary>
    /// Checks one access of <paramref name="size"/> bytes at <paramref name="insnOffset"/> from the pointer in
    /// <paramref name="reg"/>. For reads, returns what the load yields; for writes, records the stored value.
    /// </summary>
    private RegisterState CheckMemory(Register reg, RegisterState ptr, int insnOffset, int size, Access access, RegisterState? stored)
    {
        string verb = access == Access.Read ? "read" : access == Access.Write ? "write" : "atomic update";
        switch (ptr.Type)
        {
            case RegisterType.Scalar:
                if (ptr.Value.IsConst && ptr.Value.ConstValue == 0)
                    throw new Refusal($"R{(int)reg} is NULL: invalid memory {verb}", "check the pointer before using it", reg);
                throw new Refusal($"R{(int)reg} holds a number, not a pointer: invalid memory {verb} (invalid mem access 'scalar')",
                    "only pointers from the context, the stack, a map lookup or a checked packet pointer can be dereferenced", reg);
            case RegisterType.MapValueOrNull:
            case RegisterType.RingbufMemoryOrNull:
            case RegisterType.BtfPointerOrNull:
                throw new Refusal($"R{(int)reg} may be NULL ({RegisterState.TypeName(ptr.Type)}): invalid memory {verb}",
                    $"compare the pointer with NULL before using it: `if (!p) return ...;`", reg);
            case RegisterType.MapPointer:
            case RegisterType.PacketEnd:
            case RegisterType.Function:
                throw new Refusal($"R{(int)reg} points to {RegisterState.TypeName(ptr.Type)}, which cannot be dereferenced (invalid mem access)",
                    ptr.Type == RegisterType.PacketEnd ? "data_end marks the end of the packet: only compare pointers with it" : null, reg);
            case RegisterType.Context:
                return ContextAccess(reg, ptr, insnOffset, size, access);
            case RegisterType.Stack:
                return StackAccess(reg, ptr, insnOffset, size, access, stored);
            case RegisterType.Packet:
            case RegisterType.PacketMeta:
                PacketAccess(reg, ptr, insnOffset, size, access);
                return RegisterState.FromScalar(Scalar.OfSize(size));
            case RegisterType.MapValue:
                MapValueAccess(reg, ptr, insnOffset, size, access);
                if (access == Access.Read && FrozenConstant(ptr, insnOffset, size) is { } known)
                    return RegisterState.Constant((long)known);
                return RegisterState.FromScalar(Scalar.OfSize(size));
            case RegisterType.RingbufMemory:
                BoundedAccess(reg, ptr, insnOffset, size, ptr.MemorySize, "ring buffer memory", access);
                RecordAccess(MemoryRegion.RingbufMemory);
                return RegisterState.FromScalar(Scalar.OfSize(size));
            case RegisterType.BtfPointer:
                return KernelStructAccess(reg, ptr, insnOffset, size, access);
            default:
                throw new System.Diagnostics.UnreachableException($"register type {ptr.Type}");
        }
    }

    private RegisterState ContextAccess(Register reg, RegisterState ptr, int insnOffset, int size, Access access)
    {
        if (access == Access.Atomic)
            throw new Refusal($"atomic operations on the context (R{(int)reg}) are not allowed", register: reg);
        if (ptr.HasVariableOffset)
            throw new Refusal($"R{(int)reg} variable offset into the context ({ptr.Value}) is not allowed",
                "access context fields by constant offsets (ctx->field)", reg);
        if (ptr.Offset != 0)
            throw new Refusal($"R{(int)reg} dereference of a modified context pointer (off={ptr.Offset}) is not allowed",
                $"use the original context pointer with the field's offset: *(u32 *)(ctx + {ptr.Offset + insnOffset})", reg);
        var layout = _platform.Context;
        var why = layout.CheckAccess(insnOffset, size, access == Access.Write, out var field);
        if (why is not null)
            throw new Refusal($"invalid access to the context (struct {layout.Name}) off={insnOffset} size={size}: {why}", register: reg);
        RecordAccess(MemoryRegion.Context);
        if (access != Access.Read)
            return default;
        return field!.Kind switch
        {
            ContextFieldKind.PacketStart => RegisterState.Pointer(RegisterType.Packet),
            ContextFieldKind.PacketEnd => RegisterState.Pointer(RegisterType.PacketEnd),
            ContextFieldKind.PacketMeta => RegisterState.Pointer(RegisterType.PacketMeta),
            _ => RegisterState.FromScalar(Scalar.OfSize(size)),
        };
    }

    private static readonly (int Bytes, string What)[] HeaderHints =
    [
        (14, "the Ethernet header"), (18, "the Ethernet header with a VLAN tag"), (34, "the IPv4 header"),
        (54, "the IPv6 header or a TCP header after IPv4"), (42, "a UDP header after IPv4"), (62, "a UDP header after IPv6"),
        (74, "a TCP header after IPv6"), (38, "an ICMP header after IPv4"),
    ];

    private void PacketAccess(Register reg, RegisterState ptr, int insnOffset, int size, Access access)
    {
        string kind = ptr.Type == RegisterType.Packet ? "packet" : "packet metadata";
        if (access == Access.Atomic)
            throw new Refusal($"atomic operations on {kind} (R{(int)reg}) are not allowed", register: reg);
        if (access == Access.Write && _platform.ProgramType == ProgramType.SocketFilter)
            throw new Refusal("socket filters may not write the packet", register: reg);
        if (ptr.Value.SMin < 0)
            throw new Refusal($"R{(int)reg} min value is negative: the variable offset into the {kind} may be below its start",
                "use an unsigned index or check `if (index >= 0)`", reg);
        int offset = ptr.Offset + insnOffset;
        long end = offset + size;
        if (offset < 0 || end > ptr.Range || ptr.Value.UMax + (ulong)Math.Max(end, 0) > MaxPacketOffset)
        {
            string what = ptr.Type == RegisterType.Packet ? "data_end" : "data";
            string start = ptr.Type == RegisterType.Packet ? "data" : "data_meta";
            string variable = ptr.HasVariableOffset ? " + the variable offset" : "";
            string header = "";
            if (!ptr.HasVariableOffset)
            {
                foreach (var (bytes, name) in HeaderHints)
                {
                    if (bytes == end)
                        header = $" ({name} ends there)";
                }
            }
            var line = SourceLineOf(_pc);
            string at = line is null ? "" : $" at line {line.Line}";
            throw new Refusal(
                $"invalid access to {kind}: {verb(access)} of {size} bytes at offset {offset} from R{(int)reg}, but only {ptr.Range} bytes are proven inside the {kind}",
                $"compare `{start}{variable} + {end}` with `{what}` before this {verb(access)}{at}{header}: `if ({start} + {end} > {what}) return XDP_DROP;`",
                reg);
        }
        RecordAccess(ptr.Type == RegisterType.Packet ? MemoryRegion.Packet : MemoryRegion.PacketMeta);

        static string verb(Access a) => a == Access.Read ? "read" : "write";
    }

    private void MapValueAccess(Register reg, RegisterState ptr, int insnOffset, int size, Access access)
    {
        var map = ptr.Map!;
        if (access != Access.Read && map.Freeze)
            throw new Refusal($"write into map '{map.Name}' is forbidden: it is read-only for programs (frozen .rodata)",
                "const globals live in .rodata and cannot be changed; drop `const` to put the variable in .data", reg);
        BoundedAccess(reg, ptr, insnOffset, size, (int)map.ValueSize, $"map '{map.Name}' value", access);
        // The kernel's check_map_access: the value's struct bpf_spin_lock is touched only by the lock helpers.
        if (map.SpinLockOffset is { } lockOffset
            && (long)ptr.Offset + insnOffset + (long)ptr.Value.UMin < lockOffset + 4
            && lockOffset < (long)ptr.Offset + insnOffset + (long)Math.Min(ptr.Value.UMax, (ulong)map.ValueSize) + size)
            throw new Refusal($"R{(int)reg} bpf_spin_lock cannot be accessed directly by load/store: bytes {lockOffset}..{lockOffset + 3} of map '{map.Name}' value are its lock",
                "use bpf_spin_lock()/bpf_spin_unlock() on `&v->lock` and access only the other fields", reg);
        // A global function's memory argument is whatever memory its callers pass: any region but the context.
        RecordAccess(_argumentMaps.Contains(map)
            ? MemoryRegion.Stack | MemoryRegion.Packet | MemoryRegion.PacketMeta | MemoryRegion.MapValue | MemoryRegion.RingbufMemory
            : MemoryRegion.MapValue);
    }

    /// <summary>
    /// A load at a constant offset from frozen read-only data (.rodata) reads the map's initial bytes: the value is
    /// known, as in the kernel (bpf_map_direct_read for a map that is BPF_F_RDONLY_PROG and frozen), so branches on
    /// configuration constants are decided and the code they rule out is never explored.
    /// </summary>
    private static ulong? FrozenConstant(RegisterState ptr, int insnOffset, int size)
    {
        if (ptr.Map is not { Freeze: true, InitialValue: { } bytes } map || !ptr.Value.IsConst || size is not (1 or 2 or 4 or 8))
            return null;
        long at = (long)ptr.Offset + insnOffset + (long)ptr.Value.ConstValue;
        if (at < 0 || at + size > map.ValueSize)
            return null;
        ulong value = 0;
        for (int i = size - 1; i >= 0; i--)
            value = value << 8 | (at + i < bytes.Length ? bytes[at + i] : (byte)0);
        return value;
    }

    /// <summary>An access to a region of known size: offset plus variable part must stay in [0, regionSize).</summary>
    private void BoundedAccess(Register reg, RegisterState ptr, int insnOffset, int size, int regionSize, string region, Access access)
    {
        if (ptr.Value.SMin < 0)
            throw new Refusal($"R{(int)reg} min value is negative: the variable offset into the {region} may be below its start",
                "use an unsigned index, or check `if (i < 0) return ...;` first", reg);
        long low = (long)ptr.Offset + insnOffset + (long)ptr.Value.UMin;
        long fixedPart = (long)ptr.Offset + insnOffset;
        ulong highVar = ptr.Value.UMax;
        bool tooHigh = highVar > (ulong)regionSize || fixedPart + (long)highVar + size > regionSize;
        if (low < 0 || fixedPart < 0 && ptr.Value.UMin == 0 || tooHigh)
        {
            string hint = ptr.HasVariableOffset
                ? $"bound the index so that offset + {size} <= {regionSize}: e.g. `if (i >= {Math.Max(0, (regionSize - size - fixedPart) + 1)}) return ...;` before the access"
                : $"the {region} is {regionSize} bytes; offsets must be in [0, {regionSize - size}] for a {size}-byte access";
            throw new Refusal(
                $"invalid access to {region} (value_size={regionSize}): {(access == Access.Read ? "read" : "write")} of {size} bytes at offset {fixedPart}{(ptr.HasVariableOffset ? $" + [{ptr.Value.UMin}, {ptr.Value.UMax}]" : "")}",
                hint, reg);
        }
    }

    private RegisterState StackAccess(Register reg, RegisterState ptr, int insnOffset, int size, Access access, RegisterState? stored)
    {
        var frame = _state.Frames[ptr.Frame];
        long offset = (long)ptr.Offset + insnOffset;
        long low = offset + ptr.Value.SMin, high = offset + ptr.Value.SMax + size;
        if (ptr.HasVariableOffset && (ptr.Value.SMin < -FrameState.StackSize || ptr.Value.SMax > FrameState.StackSize))
            low = long.MinValue;
        if (low < -FrameState.StackSize || high > 0)
        {
            throw new Refusal($"invalid stack access off={offset}{(ptr.HasVariableOffset ? $"+{ptr.Value}" : "")} size={size}: outside the 512-byte frame",
                "stack offsets from r10 must lie in [-512, -size]; large buffers belong in a per-CPU array map", reg);
        }
        if (!ptr.HasVariableOffset && offset % size != 0)
            throw new Refusal($"misaligned stack access off={offset} size={size}", $"align {size}-byte stack accesses to {size} bytes", reg);
        frame.Depth = Math.Max(frame.Depth, (int)-low);
        CheckCombinedStack();
        RecordAccess(MemoryRegion.Stack);
        int first = (int)(low + FrameState.StackSize), last = (int)(high + FrameState.StackSize); // [first, last)

        if (access == Access.Read || access == Access.Atomic)
        {
            var loaded = ReadStack(reg, frame, first, last, size, offset, ptr.HasVariableOffset);
            if (access == Access.Read)
                return loaded;
        }
        WriteStack(frame, first, last, size, ptr.HasVariableOffset, access == Access.Atomic ? RegisterState.UnknownScalar : stored!.Value, ptr.Frame);
        return default;
    }

    private RegisterState ReadStack(Register reg, FrameState frame, int first, int last, int size, long offset, bool variable)
    {
        if (!variable && first % 8 == 0 && frame.StackBytes[first] == StackByte.Spill && FrameState.SpillSize(frame.StackBytes, first / 8) == size)
            return frame.Spills[first / 8];
        bool allZero = true;
        var deps = default(DepSet);
        for (int i = first; i < last; i++)
        {
            var b = frame.StackBytes[i];
            if (b == StackByte.Spill)
            {
                var spilled = frame.Spills[i / 8];
                deps = deps.Union(spilled.Deps);
                if (spilled.Type != RegisterType.Scalar)
                    throw new Refusal($"invalid size of register fill: reading {size} bytes of the {RegisterState.TypeName(spilled.Type)} pointer spilled at fp{i / 8 * 8 - FrameState.StackSize}",
                        "read spilled pointers back whole (8 bytes at the offset they were stored at)", reg);
                if (!(spilled.Value.IsConst && spilled.Value.ConstValue == 0))
                    allZero = false;
                continue;
            }
            if (b == StackByte.Invalid)
            {
                if (!_options.Privileged)
                    throw new Refusal($"invalid read from stack off={offset} size={size}: the bytes were never written",
                        "initialise the variable (e.g. `= {}` or memset) before reading it", reg);
                allZero = false;
                continue;
            }
            if (b != StackByte.Zero)
                allZero = false;
        }
        if (allZero)
            return RegisterState.Constant(0) with { Deps = deps };
        return RegisterState.FromScalar(Scalar.OfSize(size));
    }

    private void WriteStack(FrameState frame, int first, int last, int size, bool variable, RegisterState value, int targetFrame)
    {
        // As the kernel (check_stack_write_fixed_off): no stack pointer, of any frame, is spilled into another frame
        // than the running function's own.
        if (value.Type == RegisterType.Stack && !variable && targetFrame != _state.Frames.Count - 1)
            throw new Refusal("cannot spill pointers to stack into stack frame of the caller: a function (or callback) may store a stack pointer only in its own frame",
                "store the pointer in this function's own stack, or pass it back in r0");
        if (value.Type == RegisterType.Stack && value.Frame > targetFrame)
            throw new Refusal("a pointer to a callee's stack cannot be stored in a caller's stack: it would outlive the call");
        // Breaking into a spilled slot turns the rest of the spill into untracked bytes.
        for (int slot = first / 8; slot <= (last - 1) / 8; slot++)
            BreakSpill(frame, slot);
        if (!variable && size == 8 && first % 8 == 0 && value.Type != RegisterType.NotInit)
        {
            for (int i = first; i < last; i++)
                frame.SetByte(i, StackByte.Spill);
            frame.SetSpill(first / 8, value);
            return;
        }
        if (!variable && size < 8 && first % 8 == 0 && value.IsScalar && _options.Privileged)
        {
            // As the kernel (since 5.x, for CAP_BPF): a 1/2/4-byte store of a number at the start of a slot is a
            // narrow spill, read back whole by a load of the same size (a 4-byte key stays a known constant).
            var narrowed = value.Value.UMax < 1UL << (size * 8)
                ? value with { Id = 0 }
                : RegisterState.FromScalar(Scalar.OfSize(size)) with { Deps = value.Deps };
            for (int i = first; i < last; i++)
                frame.SetByte(i, StackByte.Spill);
            frame.SetSpill(first / 8, narrowed);
            return;
        }
        bool zero = value.IsScalar && value.Value.IsConst && value.Value.ConstValue == 0;
        if (zero)
            MarkPrecise(value.Deps); // the bytes become STACK_ZERO because the value is exactly 0
        for (int i = first; i < last; i++)
            frame.SetByte(i, zero ? (variable && frame.StackBytes[i] != StackByte.Zero ? StackByte.Misc : StackByte.Zero) : StackByte.Misc);
    }

    /// <summary>The bytes of a spill in this slot become untracked; the slot's other bytes keep what they were.</summary>
    private static void BreakSpill(FrameState frame, int slot)
    {
        if (frame.StackBytes[slot * 8] != StackByte.Spill)
            return;
        for (int i = slot * 8; i < slot * 8 + 8; i++)
        {
            if (frame.StackBytes[i] == StackByte.Spill)
                frame.SetByte(i, StackByte.Misc);
        }
    }

    private void CheckCombinedStack()
    {
        int total = 0;
        foreach (var f in _state.Frames)
            total += RoundUp32(f.Depth);
        _maxDepth = Math.Max(_maxDepth, _state.Frames.Max(f => f.Depth));
        if (total > FrameState.StackSize)
            throw new Refusal($"combined stack size of {_state.Frames.Count} calls is {total} bytes, more than 512",
                "reduce local variables in nested functions, or move buffers to a per-CPU array map");
    }

    private static int RoundUp32(int n) => n == 0 ? 0 : (n + 31) / 32 * 32;

    /// <summary>Checks memory a helper reads (<paramref name="write"/> false) or writes, [0, maxSize) from the pointer.</summary>
    private void CheckHelperMemory(Register reg, RegisterState ptr, ulong maxSize, bool write, string helper)
    {
        if (maxSize == 0)
            return;
        if (maxSize > int.MaxValue)
            throw new Refusal($"R{(int)reg} memory size for {helper} is unbounded", "bound the size: `if (len > N) return ...;`", reg);
        int size = (int)maxSize;
        switch (ptr.Type)
        {
            case RegisterType.Stack:
            {
                var frame = _state.Frames[ptr.Frame];
                long offset = ptr.Offset;
                long low = offset + ptr.Value.SMin, high = offset + ptr.Value.SMax + size;
                if (low < -FrameState.StackSize || high > 0)
                    throw new Refusal($"R{(int)reg} stack memory of {size} bytes at off={offset} for {helper} is outside the 512-byte frame", register: reg);
                frame.Depth = Math.Max(frame.Depth, (int)-low);
                CheckCombinedStack();
                int first = (int)(low + FrameState.StackSize), last = (int)(high + FrameState.StackSize);
                if (!write)
                {
                    for (int i = first; i < last; i++)
                    {
                        if (frame.StackBytes[i] == StackByte.Invalid && !_options.Privileged)
                            throw new Refusal($"R{(int)reg} {helper} reads stack bytes fp{i - FrameState.StackSize} that were never written (invalid indirect read from stack)",
                                "initialise the buffer before passing it", reg);
                    }
                }
                if (write)
                {
                    for (int slot = first / 8; slot <= (last - 1) / 8; slot++)
                        BreakSpill(frame, slot);
                    for (int i = first; i < last; i++)
                        frame.SetByte(i, StackByte.Misc);
                }
                return;
            }
            case RegisterType.Packet:
            case RegisterType.PacketMeta:
                PacketAccess(reg, ptr, 0, size, write ? Access.Write : Access.Read);
                return;
            case RegisterType.MapValue:
                MapValueAccess(reg, ptr, 0, size, write ? Access.Write : Access.Read);
                return;
            case RegisterType.RingbufMemory:
                BoundedAccess(reg, ptr, 0, size, ptr.MemorySize, "ring buffer memory", write ? Access.Write : Access.Read);
                return;
            case RegisterType.Context:
                throw new Refusal($"R{(int)reg} the context cannot be passed to {helper} as memory", register: reg);
            default:
                CheckMemory(reg, ptr, 0, 1, Access.Read, null);
                throw new Refusal($"R{(int)reg} {helper} needs a pointer to memory, got {RegisterState.TypeName(ptr.Type)}", register: reg);
        }
    }
}
