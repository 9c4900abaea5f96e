using System.Buffers.Binary;
using System.Globalization;
using SharpBpf.Asm;
using SharpBpf.Btf;
using SharpBpf.Objects;
using SharpBpf.Platform;

namespace SharpBpf.Linux;

/// <summary>
/// Fits one object's programs to the running kernel before they are loaded, as libbpf does: CO-RE relocations
/// against the kernel's BTF, <c>__ksym</c> variables (typed: BTF id; typeless: kallsyms address) and kfunc calls,
/// <c>__kconfig</c> values, and the BTF id of the attach target of tracing and LSM programs. The kernel's BTF,
/// kallsyms and config are read only when the object needs them.
/// </summary>
internal sealed class KernelLinker(CollectionSpec collection)
{
    /// <summary>libbpf's poison for a call to a weak kfunc the kernel lacks: the verifier names it only if reachable.</summary>
    public const int PoisonKfuncBase = 2002000000;

    private BtfCoreRelocator? relocator;
    private BtfSpec? vmlinux;

    /// <summary>The kernel's BTF, held for as long as this linker (one collection load) lives.</summary>
    private BtfSpec Vmlinux => vmlinux ??= KernelSymbols.Vmlinux;
    private readonly Dictionary<(string Program, int RawIndex), string> poisons = [];
    private readonly Dictionary<string, Instruction> resolved = new(StringComparer.Ordinal);

    private BtfSpec LocalBtf(string what) => collection.Btf
        ?? throw new BpfException($"{what} needs the object's BTF, and the object has none");

    /// <summary>The program's instructions with its CO-RE relocations applied (the spec's own list when it has none).</summary>
    public IReadOnlyList<Instruction> Relocate(ProgramSpec program)
    {
        if (program.CoreRelocations.Count == 0)
            return program.Instructions;
        relocator ??= new BtfCoreRelocator(LocalBtf($"program '{program.Name}' has CO-RE relocations, which"), Vmlinux);
        try
        {
            var poisoned = new List<(int RawIndex, BtfCoreRelocation Relocation)>();
            var result = relocator.Apply(program.Instructions, program.CoreRelocations, program.Name, poisoned);
            foreach (var (raw, relo) in poisoned)
            {
                string what = $"{BtfCoreRelocator.Describe(relo.Kind)} of {relocator.Local[relo.TypeId]} (access '{relo.AccessString}')";
                string hint = $"this instruction was poisoned: the kernel's BTF has no match for the CO-RE relocation {what}; guard the access with bpf_core_field_exists / bpf_core_type_exists so the verifier sees it is unreachable";
                poisons[(program.Name, raw)] = hint;
                if (LddwStartsAt(program.Instructions, raw))
                    poisons[(program.Name, raw + 1)] = hint; // the second slot of a poisoned lddw
            }
            return result;
        }
        catch (BtfCoreException e)
        {
            throw new BtfCoreException($"load program '{program.Name}': {e.Message}");
        }
    }

    /// <summary>
    /// The instruction to load for an extern reference: a <c>__ksym</c> lddw (Src BtfId) or a kfunc call (Src Kfunc).
    /// </summary>
    public Instruction ResolveExtern(ProgramSpec program, int rawIndex, Instruction insn)
    {
        string name = insn.Reference!;
        bool call = !insn.IsLoadImmediate64;
        string key = (call ? "call:" : "ld:") + name;
        if (!resolved.TryGetValue(key, out var template))
        {
            // Every typeless ksym of the object in one pass over /proc/kallsyms.
            KernelSymbols.LoadAddresses(collection.Externs.Where(e => e.Kind == ExternKind.KernelVariable && e.TypeId == 0).Select(e => e.Name));
            var ext = collection.FindExtern(name) ?? throw new BpfException(
                $"load program '{program.Name}': instruction {rawIndex} refers to '{name}', which is not a __ksym extern of the object (it is in no .ksyms section)");
            template = call ? ResolveFunction(ext) : ResolveVariable(ext);
            resolved[key] = template;
        }
        return template with { Dst = insn.Dst, Reference = null };
    }

    private Instruction ResolveVariable(ExternSpec ext)
    {
        var lddw = new Instruction(new OpCode(0x18), Register.R0, Register.R0, 0, 0);
        if (ext.Kind == ExternKind.KernelFunction)
        {
            // The address of a kfunc (`if (bpf_some_kfunc)`, bpf_ksym_exists): its FUNC id, or NULL for a weak one the kernel lacks.
            var call = ResolveFunction(ext);
            return (byte)call.Src == (byte)CallKind.Kfunc
                ? lddw with { Src = (Register)LoadImmediateSource.BtfId, Constant = call.Immediate }
                : lddw;
        }
        if (ext.Kind != ExternKind.KernelVariable)
            throw new BpfException($"extern '{ext.Name}' is a {ext.Kind}, but an lddw loads its address like a kernel variable's");
        if (ext.TypeId == 0)
        {
            // Typeless (extern const void x __ksym): its address, from kallsyms.
            ulong? address = KernelSymbols.Address(ext.Name);
            if (address is null && !ext.Weak)
                throw new BpfException($"extern (ksym) '{ext.Name}': the kernel has no such symbol in /proc/kallsyms");
            return lddw with { Constant = (long)(address ?? 0) };
        }
        var vmlinux = Vmlinux;
        if (vmlinux.FindExact(ext.Name, BtfKind.Var) is not BtfVar kernelVar)
        {
            if (ext.Weak)
                return lddw; // a weak extern the kernel lacks is NULL
            throw new BpfException($"extern (var ksym) '{ext.Name}': the kernel's BTF has no variable of that name (only per-CPU variables are in BTF)");
        }
        var local = LocalBtf($"extern '{ext.Name}'");
        uint targetType = SkipModifiers(vmlinux, kernelVar.Type);
        if (!BtfCoreRelocator.TypesAreCompatible(local, ext.TypeId, vmlinux, targetType))
            throw new BpfException($"extern (var ksym) '{ext.Name}': the object declares it as {local[ext.TypeId]}, the kernel has {vmlinux[targetType]}");
        // BPF_PSEUDO_BTF_ID: imm = the VAR's id in vmlinux, the second imm = the BTF object fd (0: vmlinux).
        return lddw with { Src = (Register)LoadImmediateSource.BtfId, Constant = kernelVar.Id };
    }

    private Instruction ResolveFunction(ExternSpec ext)
    {
        if (ext.Kind != ExternKind.KernelFunction)
            throw new BpfException($"extern '{ext.Name}' is a {ext.Kind}, but it is called like a kernel function");
        var vmlinux = Vmlinux;
        var local = LocalBtf($"kfunc '{ext.Name}'");
        var func = vmlinux.FindExact(ext.Name, BtfKind.Func) as BtfFunc;
        if (func is not null && !BtfCoreRelocator.TypesAreCompatible(local, ext.TypeId, vmlinux, func.Prototype))
        {
            if (!ext.Weak)
                throw new BpfException($"extern (func ksym) '{ext.Name}': the object's prototype does not fit the kernel's ({vmlinux[func.Prototype]})");
            func = null;
        }
        if (func is null)
        {
            if (!ext.Weak)
                throw new BpfException($"extern (func ksym) '{ext.Name}': the kernel's BTF has no such function (a kfunc of a newer kernel, or of a module?)");
            // A weak kfunc the kernel lacks: a call to an invalid helper, refused only if the code can reach it.
            int index = collection.Externs.IndexOf(ext);
            weakKfuncs[PoisonKfuncBase + index] = ext.Name;
            return new Instruction(new OpCode(0x85), Register.R0, Register.R0, 0, PoisonKfuncBase + index);
        }
        // BPF_PSEUDO_KFUNC_CALL: imm = the FUNC's id in vmlinux, off = index in fd_array (0: vmlinux).
        return new Instruction(new OpCode(0x85), Register.R0, (Register)CallKind.Kfunc, 0, func.Id);
    }

    private readonly Dictionary<int, string> weakKfuncs = [];

    private static bool LddwStartsAt(IReadOnlyList<Instruction> instructions, int rawIndex)
    {
        int raw = 0;
        foreach (var insn in instructions)
        {
            if (raw == rawIndex)
                return insn.IsLoadImmediate64;
            if (raw > rawIndex)
                break;
            raw += insn.RawSize;
        }
        return false;
    }

    /// <summary>Why a refused instruction is invalid when this linker made it so (a poisoned CO-RE access, a missing weak kfunc), or null.</summary>
    public string? Explain(string program, int rawIndex, string log)
    {
        if (poisons.TryGetValue((program, rawIndex), out var hint) && log.Contains($"{BtfCoreRelocator.PoisonHelperId}", StringComparison.Ordinal))
            return hint;
        foreach (var (id, name) in weakKfuncs)
            if (log.Contains($"unknown#{id}", StringComparison.Ordinal))
                return $"the weak kfunc '{name}' is not in this kernel, and the verifier found a path that calls it: check `if ({name})` before calling";
        return null;
    }

    private static uint SkipModifiers(BtfSpec btf, uint id)
    {
        for (int depth = 0; depth < BtfSpec.MaxResolveDepth; depth++)
        {
            if (btf[id] is not BtfReference { Kind: not BtfKind.Pointer } r)
                return id;
            id = r.Type;
        }
        throw new BpfException($"kernel BTF type {id}: more than {BtfSpec.MaxResolveDepth} typedefs/modifiers");
    }

    /// <summary>
    /// attach_btf_id for programs that attach by BTF (tp_btf, fentry, fexit, fmod_ret, iter, lsm): the kernel type
    /// named by the section, as libbpf finds it. Null for other programs or when the section names no target.
    /// </summary>
    public uint? AttachBtfId(ProgramSpec program)
    {
        if (program.Type is not (ProgramType.Tracing or ProgramType.Lsm))
            return null;
        int slash = program.SectionName.IndexOf('/');
        if (slash < 0 || slash == program.SectionName.Length - 1)
            return null;
        string target = program.SectionName[(slash + 1)..];
        var (name, kind) = program.ExpectedAttachType switch
        {
            23 => ("btf_trace_" + target, BtfKind.Typedef), // BPF_TRACE_RAW_TP
            27 or 43 => ("bpf_lsm_" + target, BtfKind.Func), // BPF_LSM_MAC, BPF_LSM_CGROUP
            28 => ("bpf_iter_" + target, BtfKind.Func),      // BPF_TRACE_ITER
            _ => (target, BtfKind.Func),                      // fentry, fexit, fmod_ret
        };
        var type = Vmlinux.FindExact(name, kind)
            ?? throw new BpfException($"load program '{program.Name}': the kernel's BTF has no {kind.ToString().ToLowerInvariant()} '{name}' to attach section '{program.SectionName}' to");
        return type.Id;
    }

    // ---- kconfig ----

    /// <summary>The value of the <c>.kconfig</c> map: every kconfig extern at its offset, from the running kernel.</summary>
    public byte[] KconfigValue(MapSpec map)
    {
        var value = new byte[map.ValueSize];
        foreach (var ext in collection.Externs)
        {
            if (ext.Kind != ExternKind.KernelConfig)
                continue;
            var local = LocalBtf($"kconfig extern '{ext.Name}'");
            if ((ulong)ext.Offset + ext.Size > (ulong)value.Length)
                throw new BpfException($"kconfig extern '{ext.Name}' lies outside the .kconfig map");
            var slot = value.AsSpan((int)ext.Offset, (int)ext.Size);
            string? raw = RawValue(ext);
            if (raw is null)
            {
                if (!ext.Weak)
                    throw new BpfException($"kconfig extern '{ext.Name}': the kernel has no value for it{ConfigNote(ext.Name)}; declare it __weak to default to 0");
                continue;
            }
            try
            {
                Store(local, ext, raw, slot);
            }
            catch (FormatException e)
            {
                throw new BpfException($"kconfig extern '{ext.Name}': {e.Message}");
            }
        }
        return value;
    }

    private static string ConfigNote(string name)
    {
        if (!name.StartsWith("CONFIG_", StringComparison.Ordinal))
            return name.StartsWith("LINUX_", StringComparison.Ordinal) ? " (not a LINUX_ value SharpBpf knows)" : " (only CONFIG_* and LINUX_* externs have values)";
        KernelSymbols.Config(name, out bool found, out string where);
        return found ? $" (not set in {where})" : $" (no kernel config was found: {where})";
    }

    private static string? RawValue(ExternSpec ext)
    {
        switch (ext.Name)
        {
            case "LINUX_KERNEL_VERSION":
                return KernelSymbols.VersionCode.ToString(CultureInfo.InvariantCulture);
            case "LINUX_HAS_BPF_COOKIE":
                return Environment.OSVersion.Version >= new Version(5, 15) ? "y" : "n";
            case "LINUX_HAS_SYSCALL_WRAPPER":
                KernelSymbols.LoadAddresses(["__x64_sys_bpf", "__arm64_sys_bpf", "__s390x_sys_bpf"]);
                return KernelSymbols.Address("__x64_sys_bpf") is not null || KernelSymbols.Address("__arm64_sys_bpf") is not null
                    || KernelSymbols.Address("__s390x_sys_bpf") is not null ? "y" : "n";
        }
        if (!ext.Name.StartsWith("CONFIG_", StringComparison.Ordinal))
            return null;
        return KernelSymbols.Config(ext.Name, out _, out _);
    }

    private enum KconfigType { Bool, Char, Tristate, Int, CharArray }

    private static KconfigType Classify(BtfSpec btf, ExternSpec ext, out bool signed)
    {
        signed = false;
        switch (btf[ext.TypeId])
        {
            case BtfInt i when (i.Encoding & BtfIntEncoding.Bool) != 0:
                return KconfigType.Bool;
            case BtfInt { Size: 1 } i when (i.Encoding & BtfIntEncoding.Char) != 0:
                return KconfigType.Char;
            case BtfInt i:
                signed = (i.Encoding & BtfIntEncoding.Signed) != 0;
                return KconfigType.Int;
            case BtfEnum { Name: "libbpf_tristate" }:
                return KconfigType.Tristate;
            case BtfEnum e:
                signed = e.Signed;
                return KconfigType.Int;
            default:
                return KconfigType.CharArray;
        }
    }

    /// <summary>Writes a config value into its slot with libbpf's conversions and range checks.</summary>
    private static void Store(BtfSpec btf, ExternSpec ext, string raw, Span<byte> slot)
    {
        var type = Classify(btf, ext, out bool signed);
        if (raw is "y" or "n" or "m")
        {
            char c = raw[0];
            switch (type)
            {
                case KconfigType.Bool when c != 'm':
                    slot[0] = c == 'y' ? (byte)1 : (byte)0;
                    return;
                case KconfigType.Tristate:
                    BinaryPrimitives.WriteInt32LittleEndian(slot, c switch { 'y' => 1, 'm' => 2, _ => 0 });
                    return;
                case KconfigType.Char:
                    slot[0] = (byte)c;
                    return;
                default:
                    throw new FormatException($"the value '{c}' does not fit a {Describe(type)}");
            }
        }
        if (raw.StartsWith('"'))
        {
            if (type != KconfigType.CharArray)
                throw new FormatException($"the string value {raw} does not fit a {Describe(type)}");
            if (raw.Length < 2 || raw[^1] != '"')
                throw new FormatException($"the string value {raw} has no closing quote");
            var text = System.Text.Encoding.UTF8.GetBytes(raw[1..^1]);
            int n = Math.Min(text.Length, slot.Length - 1);
            text.AsSpan(0, n).CopyTo(slot);
            slot[n..].Clear();
            return;
        }
        if (!TryParseNumber(raw, out ulong number))
            throw new FormatException($"the value '{raw}' is neither y/n/m, a string nor a number");
        switch (type)
        {
            case KconfigType.Bool when number <= 1:
            case KconfigType.Char when number <= 0xff:
                slot[0] = (byte)number;
                return;
            case KconfigType.Int:
                {
                    int bits = slot.Length * 8;
                    bool fits = signed
                        ? bits == 64 || ((long)number >= -(1L << (bits - 1)) && (long)number < (1L << (bits - 1)))
                        : bits == 64 || number < (1UL << bits);
                    if (!fits)
                        throw new FormatException($"the value {raw} does not fit {slot.Length} {(signed ? "signed" : "unsigned")} bytes");
                    Span<byte> all = stackalloc byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(all, number);
                    all[..slot.Length].CopyTo(slot);
                    return;
                }
            default:
                throw new FormatException($"the number {raw} does not fit a {Describe(type)}");
        }
    }

    private static string Describe(KconfigType type) => type switch
    {
        KconfigType.Bool => "bool",
        KconfigType.Char => "char",
        KconfigType.Tristate => "tristate",
        KconfigType.Int => "integer",
        _ => "char array",
    };

    /// <summary>strtoull with base 0: decimal, 0x hexadecimal, 0 octal, optional minus sign.</summary>
    private static bool TryParseNumber(string text, out ulong value)
    {
        bool negative = text.StartsWith('-');
        var s = negative ? text[1..] : text;
        bool ok;
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            ok = ulong.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        else if (s.Length > 1 && s[0] == '0')
        {
            value = 0;
            ok = s.Skip(1).All(ch => ch is >= '0' and <= '7');
            if (ok)
                foreach (char ch in s[1..])
                    value = value * 8 + (ulong)(ch - '0');
        }
        else
            ok = ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        if (ok && negative)
            value = unchecked(0 - value);
        return ok;
    }
}
