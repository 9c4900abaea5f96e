using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Objects;
using SharpBpf.Platform;
using SharpBpf.Verifier.Domains;

namespace SharpBpf.Verifier;

/// <summary>
/// Kernel functions (kfuncs) and the kernel structs they reach, as the kernel's check_kfunc_call and
/// check_ptr_to_btf_access do: a kfunc is found by name (or id) in the kernel's BTF, its arguments are checked
/// against its BTF prototype, and a pointer it returns is typed by a kernel struct (PTR_TO_BTF_ID) whose loads are
/// checked against that struct's layout: in bounds, whole pointer members (giving a pointer to the member's struct),
/// anything inside a number member (giving a number); never a write. A program that needs the kernel's BTF where
/// there is none is declined as unmodelled, never accepted blind.
/// </summary>
internal sealed partial class Engine
{
    /// <summary>The kernel's BTF when the program needs it (kfunc calls, __ksym externs) and it is available.</summary>
    private BtfSpec? _kernelBtf;

    /// <summary>Why the kernel's BTF is missing, for the refusal of the first kfunc call.</summary>
    private string _kernelBtfMissing = "";

    /// <summary>
    /// The instructions to verify: the program's own, or, when it calls kfuncs or uses __ksym externs and the kernel's
    /// BTF is at hand, with its CO-RE relocations applied against that BTF (kernel struct offsets as the loader
    /// writes them; a relocation the kernel cannot satisfy becomes a poisoned call refused only where reachable).
    /// </summary>
    private IReadOnlyList<Instruction> LinkAgainstKernel()
    {
        var insns = _program.Instructions;
        bool needsKernel = false;
        foreach (var insn in insns)
        {
            if ((insn.OpCode.Value == 0x85 && insn.Src == (Register)CallKind.Kfunc)
                || (insn.IsLoadImmediate64 && (LoadImmediateSource)insn.Src == LoadImmediateSource.BtfId))
            {
                needsKernel = true;
                break;
            }
        }
        if (!needsKernel)
            return insns;
        if (_options.KernelBtf is { } given)
        {
            _kernelBtf = given;
        }
        else if (_options.WithoutRunningKernelBtf)
        {
            _kernelBtfMissing = "no kernel BTF was given, and the running kernel's is not used";
        }
        else
        {
            try
            {
                _kernelBtf = RunningKernelBtf.Load();
                if (_kernelBtf is null)
                    _kernelBtfMissing = $"there is no kernel BTF ({RunningKernelBtf.VmlinuxPath}) here; pass VerifierOptions.KernelBtf to verify against a kernel's";
            }
            catch (Exception e) when (e is ObjectFileException or IOException or UnauthorizedAccessException)
            {
                _kernelBtfMissing = $"the kernel's BTF ({RunningKernelBtf.VmlinuxPath}) cannot be read: {e.Message}";
            }
        }
        if (_kernelBtf is not null && _program.CoreRelocations.Count > 0 && _options.Btf is { } local)
            insns = new BtfCoreRelocator(local, _kernelBtf).Apply(insns, _program.CoreRelocations, _program.Name);
        return insns;
    }

    private ExternSpec? FindExtern(string name)
    {
        foreach (var e in _options.Externs)
        {
            if (e.Name == name)
                return e;
        }
        return null;
    }

    /// <summary>
    /// An lddw of a __ksym: a kfunc's address (the kernel's PTR_TO_MEM of size 0, never NULL; a weak kfunc the kernel
    /// lacks is 0, as libbpf writes it), a typeless kernel symbol's address (a number from kallsyms). Typed kernel
    /// variables (per-CPU data) are not modelled.
    /// </summary>
    private RegisterState KernelSymbol(Instruction insn)
    {
        string name = insn.Reference ?? (_kernelBtf is { } k && (uint)insn.Immediate < k.Types.Count ? k[(uint)insn.Immediate].Name : $"btf id {insn.Immediate}");
        var ext = insn.Reference is null ? null : FindExtern(insn.Reference);
        if (_kernelBtf is null)
            throw new Refusal($"lddw of the kernel symbol '{name}': __ksym externs are not supported by this verifier without the kernel's BTF ({_kernelBtfMissing})",
                "verify this program with the kernel (sharpbpf verify --kernel)");
        if (ext is { Kind: ExternKind.KernelVariable, TypeId: 0 })
        {
            // A typeless ksym: an address from /proc/kallsyms, which a weak one may lack (0).
            return ext.Weak ? RegisterState.UnknownScalar : RegisterState.FromScalar(NonZero);
        }
        var type = insn.Reference is null
            ? ((uint)insn.Immediate < _kernelBtf.Types.Count ? _kernelBtf[(uint)insn.Immediate] : null)
            : _kernelBtf.FindExact(name, BtfKind.Func) ?? _kernelBtf.FindExact(name, BtfKind.Var);
        if (type is BtfFunc)
            return RegisterState.FromScalar(NonZero); // the kernel's non-NULL PTR_TO_MEM: `if (kfunc)` is decided
        if (type is null && ext is { Weak: true })
            return RegisterState.Constant(0);
        if (type is null)
            throw new Refusal($"lddw of the kernel symbol '{name}': the kernel's BTF has no function or variable of that name");
        throw new Refusal($"lddw of the kernel variable '{name}': typed __ksym variables (per-CPU kernel data) are not modelled by this verifier",
            "verify this program with the kernel (sharpbpf verify --kernel)");
    }

    private static readonly Scalar NonZero = Scalar.URange(1, ulong.MaxValue);

    private int CallKfunc(Instruction insn)
    {
        string label = insn.Reference ?? $"btf id {insn.Immediate}";
        if (_kernelBtf is null)
            throw new Refusal($"call to the kernel function {label}: calls to kernel functions (kfuncs) are not supported by this verifier without the kernel's BTF ({_kernelBtfMissing})",
                "verify this program with the kernel (sharpbpf verify --kernel)");
        var func = insn.Reference is { } name
            ? _kernelBtf.FindExact(name, BtfKind.Func) as BtfFunc
            : (uint)insn.Immediate < _kernelBtf.Types.Count ? _kernelBtf[(uint)insn.Immediate] as BtfFunc : null;
        if (func is null)
        {
            if (insn.Reference is { } missing && FindExtern(missing) is { Weak: true })
                throw new Refusal($"the weak kfunc '{missing}' is not in this kernel, and this path calls it",
                    $"check `if ({missing})` before calling it");
            throw new Refusal($"kernel function {label} is not in the kernel's BTF (a kfunc of a newer kernel, or of a module?)");
        }
        if (_state.Lock is { } held)
            throw new Refusal($"function calls are not allowed while holding a lock: kfunc {func.Name} is called inside the bpf_spin_lock-ed region taken at instruction {held.At}",
                "call bpf_spin_unlock() first");
        if (_kernelBtf[func.Prototype] is not BtfFuncProto)
            throw new Refusal($"kernel function {func.Name} has no prototype in the kernel's BTF");

        RegisterState result;
        switch (func.Name)
        {
            case "bpf_cast_to_kern_ctx":
            {
                // The program's context, seen as the kernel's own struct (xdp_buff, sk_buff): a trusted pointer.
                CheckKfuncContext(func.Name, 0, Register.R1);
                string kernelContext = _platform.ProgramType == ProgramType.Xdp ? "xdp_buff" : "sk_buff";
                var type = _kernelBtf.FindExact(kernelContext, BtfKind.Struct)
                    ?? throw new Refusal($"the kernel's BTF has no struct {kernelContext} for {func.Name}");
                result = BtfPointer(type.Id, trusted: true);
                break;
            }
            case "bpf_rdonly_cast":
            {
                // (obj, btf_id__k): any number or pointer seen as the kernel type named by the constant id, untrusted.
                var obj = Read(Register.R1);
                var id = Read(Register.R2);
                if (!id.IsScalar || !id.Value.IsConst)
                    throw new Refusal($"R2 argument 2 of {func.Name} must be a constant (a BTF type id), got {id}", register: Register.R2);
                MarkPrecise(id.Deps);
                _ = obj;
                uint target = (uint)id.Value.ConstValue;
                if (target >= _kernelBtf.Types.Count || _kernelBtf.SkipQualifiers(target) is not BtfComposite { Kind: BtfKind.Struct } s)
                    throw new Refusal($"{func.Name} to btf id {target}, which is not a kernel struct: casts to other types are not modelled by this verifier",
                        "verify this program with the kernel (sharpbpf verify --kernel)");
                result = BtfPointer(s.Id, trusted: false);
                break;
            }
            case "bpf_xdp_ct_lookup" when _platform.ProgramType == ProgramType.Xdp:
            case "bpf_skb_ct_lookup" when _platform.ProgramType is ProgramType.SchedCls or ProgramType.SchedAct:
            {
                // (ctx, struct bpf_sock_tuple *tuple, u32 tuple__sz, struct bpf_ct_opts *opts, u32 opts__sz):
                // KF_ACQUIRE | KF_RET_NULL, an nf_conn reference to release with bpf_ct_release.
                CheckKfuncContext(func.Name, 0, Register.R1);
                CheckKfuncMemory(func.Name, 1, Register.R2, Register.R3);
                CheckKfuncMemory(func.Name, 3, Register.R4, Register.R5);
                var type = _kernelBtf.FindExact("nf_conn", BtfKind.Struct)
                    ?? throw new Refusal($"the kernel's BTF has no struct nf_conn for {func.Name}");
                int reference = NewId();
                _state.References[reference] = _pc;
                result = BtfPointer(type.Id, trusted: true) with { Type = RegisterType.BtfPointerOrNull, Id = NewId(), ReferenceId = reference };
                break;
            }
            case "bpf_ct_release":
            {
                // (struct nf_conn *): KF_RELEASE of a reference from a lookup.
                var value = Read(Register.R1);
                if (value.Type == RegisterType.BtfPointerOrNull)
                    throw new Refusal($"R1 Possibly NULL pointer passed to trusted arg0 of {func.Name}",
                        "compare the connection with NULL first: `if (!ct) return ...;`", Register.R1);
                if (value.Type != RegisterType.BtfPointer || _kernelBtf[(uint)value.MemorySize].Name != "nf_conn")
                    throw new Refusal($"R1 arg#0 of {func.Name} expected pointer to struct nf_conn, got {RegisterState.TypeName(value.Type)}", register: Register.R1);
                if (value.Offset != 0 || value.HasVariableOffset)
                    throw new Refusal($"R1 must have zero offset when passed to release func (off={value.Offset})", register: Register.R1);
                if (value.ReferenceId == 0)
                    throw new Refusal($"R1 must be referenced when passed to release func {func.Name}",
                        "release only the connection bpf_xdp_ct_lookup returned", Register.R1);
                int reference = value.ReferenceId;
                _state.References.Remove(reference);
                _state.UpdateAll(r => r.ReferenceId == reference && r.IsPointer ? RegisterState.UnknownScalar : r);
                result = RegisterState.NotInit;
                break;
            }
            case "bpf_xdp_metadata_rx_timestamp" when DeviceBound:
            case "bpf_xdp_metadata_rx_hash" when DeviceBound:
            case "bpf_xdp_metadata_rx_vlan_tag" when DeviceBound:
            {
                // (const struct xdp_md *ctx, T *out, ...): the context, then pointers to the numbers the device
                // writes (KF_ARG_PTR_TO_MEM of the pointee's size); an int: 0 or -errno (-EOPNOTSUPP, -ENODATA).
                CheckKfuncContext(func.Name, 0, Register.R1);
                var parameters = ((BtfFuncProto)_kernelBtf[func.Prototype]).Parameters;
                for (int i = 1; i < parameters.Count && i < 5; i++)
                {
                    if (_kernelBtf.SkipQualifiers(parameters[i].Type) is not BtfReference { Kind: BtfKind.Pointer } pointer)
                        throw new Refusal($"kernel function {func.Name}: argument {i + 1} is not a pointer in the kernel's BTF; this verifier does not model it");
                    ulong size = _kernelBtf.SizeOf(_kernelBtf.SkipQualifiers(pointer.Type).Id);
                    CheckKfuncFixedMemory(func.Name, i, (Register)(i + 1), size);
                }
                result = RegisterState.UnknownScalar; // as the kernel: an unknown number, not only 32 bits
                break;
            }
            case "bpf_xdp_metadata_rx_timestamp":
            case "bpf_xdp_metadata_rx_hash":
            case "bpf_xdp_metadata_rx_vlan_tag":
                // The kernel resolves these per device when the program is loaded for one (BPF_F_XDP_DEV_BOUND_ONLY
                // with prog_ifindex); loaded for no device, it refuses them.
                throw new Refusal($"{func.Name} is an XDP metadata kfunc: the kernel allows it only in a device-bound program (metadata kfuncs require device-bound program), and this program is not bound to a device",
                    "load the program for one device (BPF_F_XDP_DEV_BOUND_ONLY and prog_ifindex), or read the metadata another way");
            default:
                throw new Refusal($"kernel function {func.Name} is in the kernel's BTF, but this verifier does not model its rules yet (flags, argument kinds, what it returns)",
                    "verify this program with the kernel (sharpbpf verify --kernel)");
        }
        for (int r = 1; r <= 5; r++)
            Frame.Registers[r] = RegisterState.NotInit;
        Frame.Registers[0] = result;
        return _pc + 1;
    }

    /// <summary>A kfunc argument that must be the program's context, unmodified (KF_ARG_PTR_TO_CTX).</summary>
    private void CheckKfuncContext(string name, int index, Register reg)
    {
        var value = Read(reg);
        if (value.Type != RegisterType.Context)
            throw new Refusal($"R{(int)reg} arg#{index} of {name} expected pointer to ctx, but got {RegisterState.TypeName(value.Type)}",
                "pass the program's context argument (ctx) unchanged", reg);
        if (value.Offset != 0 || value.HasVariableOffset)
            throw new Refusal($"R{(int)reg} dereference of modified ctx ptr (off={value.Offset}): {name} needs the context itself", register: reg);
    }

    /// <summary>A kfunc's memory argument with its size in the next register (an <c>__sz</c> parameter): the
    /// memory must be readable and writable for the size's maximum (the kernel's check_kfunc_mem_size_reg).</summary>
    private void CheckKfuncMemory(string name, int index, Register memReg, Register sizeReg)
    {
        var mem = Read(memReg);
        var size = Read(sizeReg);
        if (!size.IsScalar)
            throw new Refusal($"R{(int)sizeReg} arg#{index + 1} of {name} is a size and must be a number, got {RegisterState.TypeName(size.Type)}", register: sizeReg);
        MarkPrecise(size.Deps);
        if (size.Value.SMin < 0)
            throw new Refusal($"R{(int)sizeReg} the size for {name} may be negative ({size.Value})", register: sizeReg);
        if (size.Value.UMax >= MaxVariableOffset)
            throw new Refusal($"R{(int)sizeReg} the size for {name} is unbounded ({size.Value})", register: sizeReg);
        if (mem.IsScalar || mem.IsNullable)
            throw new Refusal($"R{(int)memReg} arg#{index} of {name} must point to memory, got {RegisterState.TypeName(mem.Type)}",
                mem.IsNullable ? "compare the pointer with NULL first" : null, memReg);
        if (mem.Type == RegisterType.MapValue && mem.Map!.Freeze)
            throw new Refusal($"R{(int)memReg} {name} may write arg#{index}, which points into read-only map '{mem.Map.Name}'", register: memReg);
        CheckHelperMemory(memReg, mem, size.Value.UMax, false, name);
        CheckHelperMemory(memReg, mem, size.Value.UMax, true, name);
    }

    /// <summary>The program is loaded for one device (BPF_F_XDP_DEV_BOUND_ONLY): the XDP metadata kfuncs are allowed.</summary>
    private bool DeviceBound => _platform.ProgramType == ProgramType.Xdp && (_program.Flags & SectionDefinitions.FlagXdpDeviceBoundOnly) != 0;

    /// <summary>A kfunc's pointer to a number it reads and writes (KF_ARG_PTR_TO_MEM of the pointee's size).</summary>
    private void CheckKfuncFixedMemory(string name, int index, Register reg, ulong size)
    {
        var mem = Read(reg);
        if (mem.IsScalar || mem.IsNullable)
            throw new Refusal($"R{(int)reg} arg#{index} of {name} must point to {size} bytes of memory, got {RegisterState.TypeName(mem.Type)}",
                mem.IsNullable ? "compare the pointer with NULL first" : "pass the address of a local variable: `&value`", reg);
        if (mem.Type == RegisterType.MapValue && mem.Map!.Freeze)
            throw new Refusal($"R{(int)reg} {name} writes arg#{index}, which points into read-only map '{mem.Map.Name}'", register: reg);
        CheckHelperMemory(reg, mem, size, false, name);
        CheckHelperMemory(reg, mem, size, true, name);
    }

    /// <summary>The refusal for a reference a kfunc acquired and this path never released, or null for others.</summary>
    private Refusal? UnreleasedKernelReference(int id, int at)
    {
        var insn = _graph[at];
        if (insn.OpCode.Value != 0x85 || insn.Src != (Register)CallKind.Kfunc)
            return null;
        return new Refusal($"unreleased reference: the connection (struct nf_conn) acquired by {insn.Reference ?? "the kfunc"} at instruction {at} is not released on this path (id={id})",
            "call bpf_ct_release() on every path after a successful lookup");
    }

    private static RegisterState BtfPointer(uint typeId, bool trusted) =>
        RegisterState.Pointer(RegisterType.BtfPointer) with { MemorySize = (int)typeId, Range = trusted ? 0 : 1 };

    /// <summary>
    /// A load through a pointer to a kernel struct (the kernel's btf_struct_walk): a pointer member read whole gives
    /// a pointer to the struct it points to (untrusted: it may be NULL, the kernel's loads of it are fault-tolerant),
    /// any other member a number; a read across members, beyond the struct or of part of a pointer is refused; writes
    /// are refused (only read is supported).
    /// </summary>
    private RegisterState KernelStructAccess(Register reg, RegisterState ptr, int insnOffset, int size, Access access)
    {
        var btf = _kernelBtf ?? throw new System.Diagnostics.UnreachableException("a BTF pointer without the kernel's BTF");
        var root = (BtfComposite)btf[(uint)ptr.MemorySize];
        string pointerName = "ptr_" + root.Name;
        if (ptr.HasVariableOffset)
            throw new Refusal($"R{(int)reg} is {pointerName} invalid variable offset: off={ptr.Offset + insnOffset}, var_off={ptr.Value}",
                "read kernel struct fields at constant offsets", reg);
        long off = (long)ptr.Offset + insnOffset;
        if (off < 0)
            throw new Refusal($"R{(int)reg} is {pointerName} invalid negative access: off={off}", register: reg);
        if (access != Access.Read)
            throw new Refusal($"R{(int)reg} {(access == Access.Write ? "write" : "atomic update")} into {pointerName}: only read is supported: kernel structs reached through a kfunc are read-only for {_platform.ProgramType} programs",
                register: reg);
        return WalkStruct(btf, root.Id, (int)off, size, untrusted: ptr.Range != 0, reg);
    }

    private RegisterState WalkStruct(BtfSpec btf, uint typeId, int off, int size, bool untrusted, Register reg)
    {
        for (int depth = 0; depth < BtfSpec.MaxResolveDepth; depth++)
        {
            var type = btf.SkipQualifiers(typeId);
            if (type is not BtfComposite t)
                throw new Refusal($"R{(int)reg} type '{type.Name}' is not a struct");
            if ((long)off + size > t.Size)
                throw new Refusal($"R{(int)reg} access beyond struct {t.Name} at off {off} size {size}", register: reg);
            BtfComposite? inner = null;
            foreach (var member in t.Members)
            {
                int moff = (int)(member.BitOffset / 8);
                if (off + size <= moff)
                    break; // the members from here on are further on
                if (member.BitfieldSize != 0)
                {
                    int endBit = (int)member.BitOffset + member.BitfieldSize;
                    if (off <= moff && (endBit + 7) / 8 <= off + size)
                        return RegisterState.FromScalar(Scalar.OfSize(size));
                    continue;
                }
                if (off < moff)
                    break; // a hole between members
                var mtype = btf.SkipQualifiers(member.Type);
                long msize = (long)btf.SizeOf(mtype.Id);
                long mend = moff + msize;
                if (off >= mend)
                    continue;
                // Arrays of structs: the element the offset falls in. Other arrays are numbers to the end of the array.
                var element = mtype;
                long elementStart = moff;
                while (element is BtfArray array && array.Count > 0)
                {
                    var elementType = btf.SkipQualifiers(array.ElementType);
                    long elementSize = (long)btf.SizeOf(elementType.Id);
                    if (elementSize == 0)
                        break;
                    elementStart += (off - elementStart) / elementSize * elementSize;
                    element = elementType;
                }
                if (element is BtfComposite nested)
                {
                    inner = nested;
                    off -= (int)elementStart;
                    break;
                }
                if (element is BtfReference { Kind: BtfKind.Pointer } pointer)
                {
                    if (size != 8 || off != elementStart)
                        throw new Refusal($"R{(int)reg} cannot access ptr member {member.Name} with moff {moff} in struct {t.Name} with off {off} size {size}", register: reg);
                    var target = btf.SkipQualifiers(pointer.Type);
                    return target is BtfComposite { Kind: BtfKind.Struct or BtfKind.Union }
                        ? BtfPointer(target.Id, trusted: false)
                        : RegisterState.UnknownScalar;
                }
                if (off + size > mend && !untrusted)
                    throw new Refusal($"R{(int)reg} access beyond the end of member {member.Name} (mend:{mend}) in struct {t.Name} with off {off} size {size}", register: reg);
                return RegisterState.FromScalar(Scalar.OfSize(size));
            }
            if (inner is null)
                throw new Refusal($"R{(int)reg} struct {t.Name} doesn't have field at offset {off}", register: reg);
            typeId = inner.Id;
        }
        throw new Refusal($"R{(int)reg} kernel structs nested more than {BtfSpec.MaxResolveDepth} deep", register: reg);
    }
}
