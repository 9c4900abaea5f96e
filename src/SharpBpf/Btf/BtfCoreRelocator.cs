using SharpBpf.Asm;
using SharpBpf.Objects;

namespace SharpBpf.Btf;

/// <summary>
/// What a CO-RE relocation resolves to: the value the compiler assumed (from the object's own BTF) and the value
/// for the target (a kernel's BTF), or <see cref="Poison"/> when the target has no matching field, type or
/// enumerator and the relocation kind needs one.
/// </summary>
public readonly record struct BtfCoreResult
{
    /// <summary>The value computed against the object's own (local) BTF: what the instruction should hold now.</summary>
    public ulong LocalValue { get; init; }

    /// <summary>The value computed against the target BTF: what the instruction gets.</summary>
    public ulong TargetValue { get; init; }

    /// <summary>No target matched and the kind needs one: the instruction is turned into a call to an invalid helper.</summary>
    public bool Poison { get; init; }

    /// <summary>Whether the instruction must hold <see cref="LocalValue"/> before it is patched (false for bitfields and type ids).</summary>
    public bool Validate { get; init; }

    /// <summary>Byte size of the field locally and in the target (field byte offsets only; 0 otherwise).</summary>
    public uint LocalSize { get; init; }

    /// <summary>Byte size of the field in the target; a load or store is resized to it when it differs.</summary>
    public uint TargetSize { get; init; }

    /// <summary>The field's size changed in a way a resized load cannot follow (not a pointer, not unsigned).</summary>
    public bool BadSizeChange { get; init; }

    /// <summary>The target type the relocation matched, e.g. "[123] STRUCT task_struct", or null when none did.</summary>
    public string? Target { get; init; }
}

/// <summary>
/// Computes and applies CO-RE relocations (bpf_core_relo records of .BTF.ext) of an object against a target BTF,
/// with libbpf's rules:
/// <list type="bullet">
/// <item>candidates are the target's types of a compatible kind (the same, or enum vs enum64) whose name equals the
///   local type's name once a <c>___flavour</c> suffix is dropped from both;</item>
/// <item>a field access string ("0:1:2") is walked through the local type (first number: index into the root as an
///   array; then member indexes of structs/unions and element indexes of arrays) and matched by member name in each
///   candidate, looking through anonymous members, with compatible member types;</item>
/// <item>every matching candidate must give the same result, otherwise the relocation is ambiguous (an error);</item>
/// <item>with no match, existence kinds give 0, type kinds give 0, and the others poison the instruction.</item>
/// </list>
/// A relocator with the local BTF as target resolves every relocation to what the compiler assumed.
/// </summary>
public sealed class BtfCoreRelocator
{
    /// <summary>The helper id of a poisoned instruction (0xbad2310, "bad relo"): the verifier reports it only if it is reachable.</summary>
    public const int PoisonHelperId = 0xbad2310;

    private const int MaxSpecLength = 64;
    private readonly Dictionary<uint, List<uint>> candidateCache = [];

    /// <summary>Relocates against <paramref name="target"/> (e.g. the kernel's vmlinux BTF).</summary>
    public BtfCoreRelocator(BtfSpec local, BtfSpec target)
    {
        Local = local ?? throw new ArgumentNullException(nameof(local));
        Target = target ?? throw new ArgumentNullException(nameof(target));
    }

    public BtfSpec Local { get; }
    public BtfSpec Target { get; }

    // ---- specs ----

    /// <summary>One step of an access: a named member (Name set) or an array element / the root index (Name null).</summary>
    private readonly record struct Accessor(uint TypeId, int Index, string? Name);

    private sealed class Spec(BtfSpec btf, uint rootId)
    {
        public BtfSpec Btf { get; } = btf;
        public uint RootId { get; } = rootId;
        public List<Accessor> Access { get; } = [];
        public List<int> Raw { get; } = [];
        public long BitOffset { get; set; }
    }

    private static bool IsFieldKind(BtfCoreRelocationKind k) => k <= BtfCoreRelocationKind.FieldRShiftU64;
    private static bool IsTypeKind(BtfCoreRelocationKind k) =>
        k is BtfCoreRelocationKind.TypeIdLocal or BtfCoreRelocationKind.TypeIdTarget or BtfCoreRelocationKind.TypeExists
            or BtfCoreRelocationKind.TypeSize or BtfCoreRelocationKind.TypeMatches;
    private static bool IsEnumKind(BtfCoreRelocationKind k) => k is BtfCoreRelocationKind.EnumValueExists or BtfCoreRelocationKind.EnumValue;

    /// <summary>Skips typedefs, const/volatile/restrict and type tags (libbpf's skip_mods_and_typedefs), returning the id reached.</summary>
    private static BtfType Skip(BtfSpec btf, uint id, out uint resolved)
    {
        for (int depth = 0; depth < BtfSpec.MaxResolveDepth; depth++)
        {
            var t = btf[id];
            if (t is BtfReference { Kind: not BtfKind.Pointer } r)
            {
                id = r.Type;
                continue;
            }
            resolved = id;
            return t;
        }
        throw new BtfCoreException($"type {id}: more than {BtfSpec.MaxResolveDepth} typedefs/modifiers (a loop?)");
    }

    private static long SizeOf(BtfSpec btf, uint id)
    {
        try { return (long)btf.SizeOf(id); }
        catch (ObjectFileException e) { throw new BtfCoreException(e.Message); }
    }

    private static Spec ParseSpec(BtfSpec btf, BtfCoreRelocation relo)
    {
        string access = relo.AccessString;
        if (access.Length == 0 || access[0] == ':')
            throw new BtfCoreException($"access string '{access}' is malformed");
        var spec = new Spec(btf, relo.TypeId);
        if (IsTypeKind(relo.Kind))
        {
            if (access != "0")
                throw new BtfCoreException($"a type relocation must have access string '0', not '{access}'");
            btf[relo.TypeId].ToString(); // checks the id
            return spec;
        }
        foreach (var part in access.Split(':'))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n))
                throw new BtfCoreException($"access string '{access}' is malformed");
            if (spec.Raw.Count == MaxSpecLength)
                throw new BtfCoreException($"access string '{access}' is longer than {MaxSpecLength} steps");
            spec.Raw.Add(n);
        }
        var t = Skip(btf, relo.TypeId, out uint id);
        int index = spec.Raw[0];
        if (IsEnumKind(relo.Kind))
        {
            if (t is not BtfEnum e || spec.Raw.Count > 1 || index >= e.Values.Count)
                throw new BtfCoreException($"access string '{access}' does not name an enumerator of {t}");
            spec.Access.Add(new Accessor(id, index, e.Values[index].Name));
            return spec;
        }
        if (!IsFieldKind(relo.Kind))
            throw new BtfCoreException($"unknown relocation kind {(uint)relo.Kind}");

        spec.Access.Add(new Accessor(id, index, null));
        spec.BitOffset = index * SizeOf(btf, id) * 8;
        for (int i = 1; i < spec.Raw.Count; i++)
        {
            t = Skip(btf, id, out id);
            index = spec.Raw[i];
            if (t is BtfComposite c)
            {
                if (index >= c.Members.Count)
                    throw new BtfCoreException($"access string '{access}': {t} has no member #{index}");
                var m = c.Members[index];
                spec.BitOffset += m.BitOffset;
                if (m.Name.Length > 0)
                    spec.Access.Add(new Accessor(id, index, m.Name));
                id = m.Type;
            }
            else if (t is BtfArray a)
            {
                Skip(btf, a.ElementType, out id);
                if (!IsFlexibleArray(btf, spec.Access[^1], a) && index >= a.Count)
                    throw new BtfCoreException($"access string '{access}': index {index} is past the {a.Count} elements of the array");
                spec.Access.Add(new Accessor(id, index, null));
                spec.BitOffset += index * SizeOf(btf, id) * 8;
            }
            else
            {
                throw new BtfCoreException($"access string '{access}': step {i} reaches {t}, which has neither members nor elements");
            }
        }
        return spec;
    }

    /// <summary>An array of 0 elements that is the last member of its struct (a C flexible array member).</summary>
    private static bool IsFlexibleArray(BtfSpec btf, Accessor parent, BtfArray array)
    {
        if (array.Count != 0 || parent.Name is null)
            return false;
        return btf[parent.TypeId] is BtfComposite c && parent.Index == c.Members.Count - 1;
    }

    // ---- names ----

    /// <summary>
    /// The length of a name without its flavour: <c>task_struct___v1</c> -> 11. A flavour is the text after the
    /// last "___" that has a character other than '_' on each side.
    /// </summary>
    public static int EssentialNameLength(string name)
    {
        for (int i = name.Length - 5; i >= 0; i--)
        {
            if (name[i] != '_' && name[i + 1] == '_' && name[i + 2] == '_' && name[i + 3] == '_' && name[i + 4] != '_')
                return i + 1;
        }
        return name.Length;
    }

    /// <summary>The name without its <c>___flavour</c> suffix.</summary>
    public static string EssentialName(string name) => name[..EssentialNameLength(name)];

    private static bool EssentialNamesEqual(string a, string b)
    {
        int la = EssentialNameLength(a), lb = EssentialNameLength(b);
        return la == lb && string.CompareOrdinal(a, 0, b, 0, la) == 0;
    }

    private static bool IsAnyEnum(BtfType t) => t.Kind is BtfKind.Enum or BtfKind.Enum64;
    private static bool KindsCompatible(BtfType a, BtfType b) => a.Kind == b.Kind || (IsAnyEnum(a) && IsAnyEnum(b));

    private List<uint> Candidates(BtfType local)
    {
        lock (candidateCache)
        {
            if (candidateCache.TryGetValue(local.Id, out var cached))
                return cached;
        }
        var list = new List<uint>();
        foreach (var id in Target.WithEssentialName(EssentialName(local.Name)))
        {
            if (KindsCompatible(Target[id], local))
                list.Add(id);
        }
        lock (candidateCache)
            candidateCache[local.Id] = list;
        return list;
    }

    // ---- compatibility ----

    /// <summary>
    /// libbpf's bpf_core_types_are_compat: same kinds after typedefs and modifiers; structs, unions, enums and
    /// forwards by kind only; ints unless bitfield-like; pointers, arrays and function prototypes recursively.
    /// Used for type relocations and to check that a __ksym extern's type fits the kernel's.
    /// </summary>
    public static bool TypesAreCompatible(BtfSpec local, uint localId, BtfSpec target, uint targetId) =>
        TypesAreCompatible(local, localId, target, targetId, BtfSpec.MaxResolveDepth);

    private static bool TypesAreCompatible(BtfSpec local, uint localId, BtfSpec target, uint targetId, int level)
    {
        if (!KindsCompatible(local[localId], target[targetId]))
            return false;
        for (int depth = BtfSpec.MaxResolveDepth; depth > 0; depth--)
        {
            var l = Skip(local, localId, out localId);
            var t = Skip(target, targetId, out targetId);
            if (!KindsCompatible(l, t))
                return false;
            switch (l)
            {
                case BtfVoid or BtfComposite or BtfEnum or BtfForward:
                    return true;
                case BtfInt li:
                    return li.BitOffset == 0 && ((BtfInt)t).BitOffset == 0;
                case BtfReference { Kind: BtfKind.Pointer } lp:
                    localId = lp.Type;
                    targetId = ((BtfReference)t).Type;
                    break;
                case BtfArray la:
                    localId = la.ElementType;
                    targetId = ((BtfArray)t).ElementType;
                    break;
                case BtfFuncProto lf:
                    {
                        var tf = (BtfFuncProto)t;
                        if (lf.Parameters.Count != tf.Parameters.Count)
                            return false;
                        if (level <= 0)
                            throw new BtfCoreException("function prototypes nest too deeply");
                        for (int i = 0; i < lf.Parameters.Count; i++)
                        {
                            Skip(local, lf.Parameters[i].Type, out uint lpId);
                            Skip(target, tf.Parameters[i].Type, out uint tpId);
                            if (!TypesAreCompatible(local, lpId, target, tpId, level - 1))
                                return false;
                        }
                        Skip(local, lf.ReturnType, out localId);
                        Skip(target, tf.ReturnType, out targetId);
                        break;
                    }
                default:
                    return false;
            }
        }
        throw new BtfCoreException("types nest too deeply to compare");
    }

    /// <summary>libbpf's bpf_core_fields_are_compat: may a local member's type stand for a target member's?</summary>
    private static bool FieldsAreCompatible(BtfSpec local, uint localId, BtfSpec target, uint targetId)
    {
        for (int depth = BtfSpec.MaxResolveDepth; depth > 0; depth--)
        {
            var l = Skip(local, localId, out localId);
            var t = Skip(target, targetId, out targetId);
            if (l is BtfComposite && t is BtfComposite)
                return true;
            if (!KindsCompatible(l, t))
                return false;
            switch (l)
            {
                case BtfReference { Kind: BtfKind.Pointer } or BtfFloat:
                    return true;
                case BtfForward or BtfEnum:
                    return l.Name.Length == 0 || t.Name.Length == 0 || EssentialNamesEqual(l.Name, t.Name);
                case BtfInt li:
                    return li.BitOffset == 0 && ((BtfInt)t).BitOffset == 0;
                case BtfArray la:
                    localId = la.ElementType;
                    targetId = ((BtfArray)t).ElementType;
                    break;
                default:
                    return false;
            }
        }
        throw new BtfCoreException("array types nest too deeply to compare");
    }

    /// <summary>libbpf's bpf_core_types_match (TYPE_MATCHES): a stricter, member-by-member comparison.</summary>
    private static bool TypesMatch(BtfSpec local, uint localId, BtfSpec target, uint targetId, bool behindPointer, int level)
    {
        if (level <= 0)
            throw new BtfCoreException("types nest too deeply to match");
        for (int depth = BtfSpec.MaxResolveDepth; depth > 0; depth--)
        {
            var l = Skip(local, localId, out localId);
            var t = Skip(target, targetId, out targetId);
            if (t.Name.Length == 0 ? l.Name.Length != 0 : !EssentialNamesEqual(l.Name, t.Name))
                return false;
            switch (l)
            {
                case BtfVoid:
                    return t.Kind == BtfKind.Void;
                case BtfForward lf:
                    if (behindPointer && t.Kind != BtfKind.Forward)
                        return (t.Kind == BtfKind.Struct && !lf.IsUnion) || (t.Kind == BtfKind.Union && lf.IsUnion);
                    return t is BtfForward tf && tf.IsUnion == lf.IsUnion;
                case BtfEnum le:
                    {
                        if (t is not BtfEnum te || le.Size != te.Size || le.Values.Count > te.Values.Count)
                            return false;
                        foreach (var v in le.Values)
                            if (!te.Values.Any(w => w.Name.Length == 0 ? v.Name.Length == 0 : EssentialNamesEqual(v.Name, w.Name)))
                                return false;
                        return true;
                    }
                case BtfComposite lc:
                    if (behindPointer)
                        return l.Kind == t.Kind || (t is BtfForward tfw && tfw.IsUnion == (l.Kind == BtfKind.Union));
                    if (l.Kind != t.Kind)
                        return false;
                    {
                        var tc = (BtfComposite)t;
                        if (lc.Members.Count > tc.Members.Count)
                            return false;
                        foreach (var lm in lc.Members)
                        {
                            bool matched = false;
                            foreach (var tm in tc.Members)
                            {
                                if (tm.Name.Length == 0 ? lm.Name.Length != 0 : !EssentialNamesEqual(lm.Name, tm.Name))
                                    continue;
                                if (TypesMatch(local, lm.Type, target, tm.Type, behindPointer, level - 1))
                                {
                                    matched = true;
                                    break;
                                }
                            }
                            if (!matched)
                                return false;
                        }
                        return true;
                    }
                case BtfInt li:
                    return t is BtfInt ti && li.Size == ti.Size
                        && (li.Encoding & BtfIntEncoding.Signed) == (ti.Encoding & BtfIntEncoding.Signed);
                case BtfReference { Kind: BtfKind.Pointer } lp:
                    if (t is not BtfReference { Kind: BtfKind.Pointer } tp)
                        return false;
                    behindPointer = true;
                    localId = lp.Type;
                    targetId = tp.Type;
                    break;
                case BtfArray la:
                    if (t is not BtfArray ta || la.Count != ta.Count)
                        return false;
                    localId = la.ElementType;
                    targetId = ta.ElementType;
                    break;
                case BtfFuncProto lfp:
                    {
                        if (t is not BtfFuncProto tfp || lfp.Parameters.Count != tfp.Parameters.Count)
                            return false;
                        for (int i = 0; i < lfp.Parameters.Count; i++)
                            if (!TypesMatch(local, lfp.Parameters[i].Type, target, tfp.Parameters[i].Type, behindPointer, level - 1))
                                return false;
                        localId = lfp.ReturnType;
                        targetId = tfp.ReturnType;
                        break;
                    }
                default:
                    return false;
            }
        }
        throw new BtfCoreException("types nest too deeply to match");
    }

    // ---- matching a local spec to a candidate ----

    private static bool MatchMember(BtfSpec local, Accessor localAccess, BtfSpec target, uint targetId, Spec spec, ref uint nextTargetId)
    {
        var t = Skip(target, targetId, out targetId);
        if (t is not BtfComposite composite)
            return false;
        var localMember = ((BtfComposite)local[localAccess.TypeId]).Members[localAccess.Index];
        for (int i = 0; i < composite.Members.Count; i++)
        {
            var m = composite.Members[i];
            if (spec.Raw.Count == MaxSpecLength)
                throw new BtfCoreException($"a match is deeper than {MaxSpecLength} steps");
            spec.BitOffset += m.BitOffset;
            spec.Raw.Add(i);
            if (m.Name.Length == 0)
            {
                // An anonymous struct or union: its members are reached as if they were the parent's.
                if (MatchMember(local, localAccess, target, m.Type, spec, ref nextTargetId))
                    return true;
            }
            else if (m.Name == localMember.Name)
            {
                nextTargetId = m.Type;
                if (!FieldsAreCompatible(local, localMember.Type, target, m.Type))
                    return false;
                spec.Access.Add(new Accessor(targetId, i, m.Name));
                return true;
            }
            spec.BitOffset -= m.BitOffset;
            spec.Raw.RemoveAt(spec.Raw.Count - 1);
        }
        return false;
    }

    private Spec? Match(Spec local, BtfCoreRelocationKind kind, uint targetId)
    {
        var spec = new Spec(Target, targetId);
        if (IsTypeKind(kind))
        {
            bool ok = kind == BtfCoreRelocationKind.TypeMatches
                ? TypesMatch(Local, local.RootId, Target, targetId, false, BtfSpec.MaxResolveDepth)
                : TypesAreCompatible(Local, local.RootId, Target, targetId);
            return ok ? spec : null;
        }
        if (IsEnumKind(kind))
        {
            if (Skip(Target, targetId, out targetId) is not BtfEnum e)
                return null;
            string name = local.Access[0].Name!;
            for (int i = 0; i < e.Values.Count; i++)
            {
                if (EssentialNamesEqual(name, e.Values[i].Name))
                {
                    spec.Access.Add(new Accessor(targetId, i, e.Values[i].Name));
                    spec.Raw.Add(i);
                    return spec;
                }
            }
            return null;
        }
        for (int i = 0; i < local.Access.Count; i++)
        {
            var localAccess = local.Access[i];
            var t = Skip(Target, targetId, out targetId);
            if (localAccess.Name is not null)
            {
                if (!MatchMember(Local, localAccess, Target, targetId, spec, ref targetId))
                    return null;
                continue;
            }
            if (i > 0)
            {
                if (t is not BtfArray a)
                    return null;
                if (!IsFlexibleArray(Target, spec.Access[^1], a) && localAccess.Index >= a.Count)
                    return null;
                Skip(Target, a.ElementType, out targetId);
            }
            if (spec.Raw.Count == MaxSpecLength)
                throw new BtfCoreException($"a match is deeper than {MaxSpecLength} steps");
            spec.Access.Add(new Accessor(targetId, localAccess.Index, null));
            spec.Raw.Add(localAccess.Index);
            spec.BitOffset += localAccess.Index * SizeOf(Target, targetId) * 8;
        }
        return spec;
    }

    // ---- values ----

    private readonly record struct FieldValue(ulong Value, uint Size, uint TypeId, bool Validate, bool Poison);

    private static FieldValue FieldRelocationValue(BtfCoreRelocationKind kind, Spec? spec)
    {
        if (kind == BtfCoreRelocationKind.FieldExists)
            return new FieldValue(spec is null ? 0u : 1u, 0, 0, true, false);
        if (spec is null)
            return new FieldValue(0, 0, 0, true, Poison: true);
        var access = spec.Access[^1];
        if (access.Name is null)
        {
            // An array element (or the root itself): only its offset and size have a meaning.
            long size = SizeOf(spec.Btf, access.TypeId);
            return kind switch
            {
                BtfCoreRelocationKind.FieldByteOffset => new FieldValue((ulong)(spec.BitOffset / 8), (uint)size, access.TypeId, true, false),
                BtfCoreRelocationKind.FieldByteSize => new FieldValue((ulong)size, 0, 0, true, false),
                _ => throw new BtfCoreException($"{Describe(kind)} cannot be applied to an array element"),
            };
        }
        var composite = (BtfComposite)spec.Btf[access.TypeId];
        var member = composite.Members[access.Index];
        var memberType = Skip(spec.Btf, member.Type, out uint fieldTypeId);
        long bitOffset = spec.BitOffset;
        long bitSize = member.BitfieldSize;
        bool bitfield = bitSize > 0;
        long byteSize, byteOffset;
        if (bitfield)
        {
            byteSize = memberType switch
            {
                BtfInt i => i.Size,
                BtfEnum e => e.Size,
                _ => throw new BtfCoreException($"bitfield '{member.Name}' has type {memberType}, which is not an integer"),
            };
            if (byteSize == 0)
                throw new BtfCoreException($"bitfield '{member.Name}' has a zero-sized type");
            byteOffset = bitOffset / 8 / byteSize * byteSize;
            // The smallest load that holds the whole bitfield.
            while (bitOffset + bitSize - byteOffset * 8 > byteSize * 8)
            {
                if (byteSize >= 8)
                    throw new BtfCoreException($"bitfield '{member.Name}' cannot be read with one 64-bit load");
                byteSize *= 2;
                byteOffset = bitOffset / 8 / byteSize * byteSize;
            }
        }
        else
        {
            byteSize = SizeOf(spec.Btf, fieldTypeId);
            byteOffset = bitOffset / 8;
            bitSize = byteSize * 8;
        }
        return kind switch
        {
            BtfCoreRelocationKind.FieldByteOffset => new FieldValue((ulong)byteOffset, bitfield ? 0 : (uint)byteSize, bitfield ? 0 : fieldTypeId, !bitfield, false),
            BtfCoreRelocationKind.FieldByteSize => new FieldValue((ulong)byteSize, 0, 0, !bitfield, false),
            BtfCoreRelocationKind.FieldSigned => new FieldValue(
                (memberType is BtfEnum { Signed: true } || memberType is BtfInt { Encoding: var enc } && (enc & BtfIntEncoding.Signed) != 0) ? 1u : 0u, 0, 0, true, false),
            BtfCoreRelocationKind.FieldLShiftU64 => new FieldValue((ulong)(64 - (bitOffset + bitSize - byteOffset * 8)), 0, 0, !bitfield, false),
            BtfCoreRelocationKind.FieldRShiftU64 => new FieldValue((ulong)(64 - bitSize), 0, 0, true, false),
            _ => throw new BtfCoreException($"unknown field relocation kind {(uint)kind}"),
        };
    }

    private static (ulong Value, bool Validate) TypeRelocationValue(BtfCoreRelocationKind kind, Spec? spec)
    {
        if (spec is null)
            return (0, true);
        return kind switch
        {
            // Type ids change when objects are linked: not worth checking against the instruction.
            BtfCoreRelocationKind.TypeIdTarget or BtfCoreRelocationKind.TypeIdLocal => (spec.RootId, false),
            BtfCoreRelocationKind.TypeExists or BtfCoreRelocationKind.TypeMatches => (1, true),
            BtfCoreRelocationKind.TypeSize => ((ulong)SizeOf(spec.Btf, spec.RootId), true),
            _ => throw new BtfCoreException($"unknown type relocation kind {(uint)kind}"),
        };
    }

    private static (ulong Value, bool Poison) EnumRelocationValue(BtfCoreRelocationKind kind, Spec? spec)
    {
        if (kind == BtfCoreRelocationKind.EnumValueExists)
            return (spec is null ? 0u : 1u, false);
        if (spec is null)
            return (0, true);
        var e = (BtfEnum)spec.Btf[spec.Access[0].TypeId];
        long value = e.Values[spec.Access[0].Index].Value;
        // A 32-bit enumerator is a signed 32-bit number in BTF; it widens as libbpf widens it.
        return (e.Kind == BtfKind.Enum ? (ulong)(long)unchecked((int)value) : (ulong)value, false);
    }

    private BtfCoreResult Calculate(BtfCoreRelocationKind kind, Spec local, Spec? target)
    {
        if (IsFieldKind(kind))
        {
            var l = FieldRelocationValue(kind, local);
            var t = FieldRelocationValue(kind, target);
            bool badSize = false;
            if (!t.Poison && l.Size != t.Size)
            {
                var lt = Local[l.TypeId];
                var tt = Target[t.TypeId];
                bool pointers = lt.Kind == BtfKind.Pointer && tt.Kind == BtfKind.Pointer;
                bool unsigned = lt is BtfInt li && tt is BtfInt ti && li.Encoding != BtfIntEncoding.Signed && ti.Encoding != BtfIntEncoding.Signed;
                badSize = !pointers && !unsigned;
            }
            return new BtfCoreResult
            {
                LocalValue = l.Value, TargetValue = t.Value, Poison = t.Poison, Validate = l.Validate,
                LocalSize = l.Size, TargetSize = t.Size, BadSizeChange = badSize,
                Target = target is null ? null : Target[target.RootId].ToString(),
            };
        }
        if (IsTypeKind(kind))
        {
            var (lv, validate) = TypeRelocationValue(kind, local);
            var (tv, _) = TypeRelocationValue(kind, target);
            return new BtfCoreResult { LocalValue = lv, TargetValue = tv, Validate = validate, Target = target is null ? null : Target[target.RootId].ToString() };
        }
        var (le, _) = EnumRelocationValue(kind, local);
        var (te, poison) = EnumRelocationValue(kind, target);
        return new BtfCoreResult { LocalValue = le, TargetValue = te, Poison = poison, Validate = true, Target = target is null ? null : Target[target.RootId].ToString() };
    }

    /// <summary>
    /// Resolves one relocation against the target BTF. Throws <see cref="BtfCoreException"/> for a malformed record,
    /// an anonymous local type, or candidates that disagree (ambiguity).
    /// </summary>
    public BtfCoreResult Calculate(BtfCoreRelocation relocation)
    {
        if (relocation.Kind > BtfCoreRelocationKind.TypeMatches)
            throw new BtfCoreException($"unknown relocation kind {(uint)relocation.Kind}");
        var localType = Local[relocation.TypeId];
        var local = ParseSpec(Local, relocation);
        if (relocation.Kind == BtfCoreRelocationKind.TypeIdLocal)
            return new BtfCoreResult { LocalValue = local.RootId, TargetValue = local.RootId, Validate = false, Target = localType.ToString() };
        if (localType.Name.Length == 0)
            throw new BtfCoreException($"{Describe(relocation.Kind)} of an anonymous type ({localType}) cannot be matched by name");

        BtfCoreResult? result = null;
        Spec? chosen = null;
        foreach (var id in Candidates(localType))
        {
            var candidate = Match(local, relocation.Kind, id);
            if (candidate is null)
                continue;
            var r = Calculate(relocation.Kind, local, candidate);
            if (result is null)
            {
                result = r;
                chosen = candidate;
            }
            else if (candidate.BitOffset != chosen!.BitOffset)
            {
                throw new BtfCoreException($"ambiguous: {Target[chosen.RootId]} and {Target[id]} put the field at different bit offsets ({chosen.BitOffset} and {candidate.BitOffset})");
            }
            else if (r.Poison != result.Value.Poison || r.TargetValue != result.Value.TargetValue)
            {
                throw new BtfCoreException($"ambiguous: {Target[chosen.RootId]} gives {result.Value.TargetValue}, {Target[id]} gives {r.TargetValue}");
            }
        }
        return result ?? Calculate(relocation.Kind, local, null);
    }

    // ---- patching ----

    /// <summary>
    /// A copy of <paramref name="instructions"/> (a linked program) with every relocation applied. Relocation offsets
    /// are raw slots. An instruction whose relocation cannot be satisfied is poisoned: it becomes
    /// <c>call 0xbad2310</c> (both halves of an lddw), which the verifier refuses only if it can be reached.
    /// </summary>
    public List<Instruction> Apply(IReadOnlyList<Instruction> instructions, IReadOnlyList<BtfCoreRelocation> relocations, string programName) =>
        Apply(instructions, relocations, programName, null);

    /// <summary>As <see cref="Apply(IReadOnlyList{Instruction}, IReadOnlyList{BtfCoreRelocation}, string)"/>; records the raw slot and relocation of each poisoned instruction.</summary>
    internal List<Instruction> Apply(IReadOnlyList<Instruction> instructions, IReadOnlyList<BtfCoreRelocation> relocations, string programName,
        List<(int RawIndex, BtfCoreRelocation Relocation)>? poisonedRelocations)
    {
        var result = instructions.ToList();
        if (relocations.Count == 0)
            return result;
        // Raw slot -> logical index.
        var byRaw = new Dictionary<int, int>(instructions.Count);
        int raw = 0;
        for (int i = 0; i < instructions.Count; i++)
        {
            byRaw[raw] = i;
            raw += instructions[i].RawSize;
        }
        var poisoned = new SortedSet<int>();
        for (int n = 0; n < relocations.Count; n++)
        {
            var relo = relocations[n];
            string where = $"program '{programName}': CO-RE relocation #{n} ({Describe(relo.Kind)} of {SafeName(relo.TypeId)}, access '{relo.AccessString}') at instruction {relo.InstructionOffset}";
            if (!byRaw.TryGetValue(relo.InstructionOffset, out int index))
                throw new BtfCoreException($"{where}: no instruction starts there");
            BtfCoreResult r;
            try { r = Calculate(relo); }
            catch (BtfCoreException e) { throw new BtfCoreException($"{where}: {e.Message}"); }
            try
            {
                result[index] = Patch(result[index], r, out bool poison);
                if (poison)
                {
                    poisoned.Add(index);
                    poisonedRelocations?.Add((relo.InstructionOffset, relo));
                }
            }
            catch (BtfCoreException e) { throw new BtfCoreException($"{where}: {e.Message}"); }
        }
        // A poisoned lddw becomes two poisoned calls (it took two slots); go from the end so indexes stay valid.
        foreach (int index in poisoned.Reverse())
        {
            if (result[index].IsLoadImmediate64)
            {
                result[index] = PoisonCall;
                result.Insert(index + 1, PoisonCall);
            }
            else
            {
                result[index] = PoisonCall;
            }
        }
        return result;
    }

    private static readonly Instruction PoisonCall = new(new OpCode(0x85), Register.R0, Register.R0, 0, PoisonHelperId);

    private static Instruction Patch(Instruction insn, BtfCoreResult r, out bool poison)
    {
        poison = r.Poison;
        if (poison)
            return insn;
        var op = insn.OpCode;
        switch (op.Class)
        {
            case InstructionClass.Alu or InstructionClass.Alu64:
                if (op.Source != OperandSource.Immediate)
                    throw new BtfCoreException($"the instruction ({op}) takes no immediate to relocate");
                if (r.Validate && (ulong)(long)insn.Immediate != r.LocalValue)
                    throw new BtfCoreException($"the instruction holds {insn.Immediate}, the object's BTF says it should hold {r.LocalValue}");
                return insn with { Constant = unchecked((int)(uint)r.TargetValue) };
            case InstructionClass.Ldx or InstructionClass.St or InstructionClass.Stx:
                {
                    if (r.Validate && (ulong)(long)insn.Offset != r.LocalValue)
                        throw new BtfCoreException($"the instruction's offset is {insn.Offset}, the object's BTF says it should be {r.LocalValue}");
                    if (r.TargetValue > (ulong)short.MaxValue)
                        throw new BtfCoreException($"the target offset {r.TargetValue} does not fit an instruction's 16-bit offset");
                    if (r.BadSizeChange)
                    {
                        // libbpf poisons it: the field changed size and type in a way a resized access would misread.
                        poison = true;
                        return insn;
                    }
                    var patched = insn with { Offset = (short)r.TargetValue };
                    if (r.LocalSize != r.TargetSize)
                    {
                        if (op.SizeInBytes != r.LocalSize)
                            throw new BtfCoreException($"the instruction accesses {op.SizeInBytes} bytes, the field has {r.LocalSize}");
                        AccessSize size = r.TargetSize switch
                        {
                            1 => AccessSize.Byte,
                            2 => AccessSize.Half,
                            4 => AccessSize.Word,
                            8 => AccessSize.DoubleWord,
                            _ => throw new BtfCoreException($"the target field has {r.TargetSize} bytes, which no load or store can access"),
                        };
                        patched = patched with { OpCode = new OpCode((byte)((op.Value & 0xe7) | (byte)size)) };
                    }
                    return patched;
                }
            case InstructionClass.Ld when insn.IsLoadImmediate64:
                if (insn.Src != Register.R0 || insn.Offset != 0 || insn.Reference is not null)
                    throw new BtfCoreException("the lddw is not a plain 64-bit constant");
                if (r.Validate && (ulong)insn.Constant != r.LocalValue)
                    throw new BtfCoreException($"the instruction holds {insn.Constant}, the object's BTF says it should hold {r.LocalValue}");
                return insn with { Constant = (long)r.TargetValue };
            default:
                throw new BtfCoreException($"instruction {op} cannot be relocated");
        }
    }

    private string SafeName(uint id)
    {
        try { return Local[id].ToString(); }
        catch (ObjectFileException) { return $"type {id}"; }
    }

    /// <summary>A readable name of a relocation kind, e.g. "field byte offset".</summary>
    public static string Describe(BtfCoreRelocationKind kind) => kind switch
    {
        BtfCoreRelocationKind.FieldByteOffset => "field byte offset",
        BtfCoreRelocationKind.FieldByteSize => "field byte size",
        BtfCoreRelocationKind.FieldExists => "field exists",
        BtfCoreRelocationKind.FieldSigned => "field signed",
        BtfCoreRelocationKind.FieldLShiftU64 => "field left shift",
        BtfCoreRelocationKind.FieldRShiftU64 => "field right shift",
        BtfCoreRelocationKind.TypeIdLocal => "local type id",
        BtfCoreRelocationKind.TypeIdTarget => "target type id",
        BtfCoreRelocationKind.TypeExists => "type exists",
        BtfCoreRelocationKind.TypeSize => "type size",
        BtfCoreRelocationKind.EnumValueExists => "enum value exists",
        BtfCoreRelocationKind.EnumValue => "enum value",
        BtfCoreRelocationKind.TypeMatches => "type matches",
        _ => $"kind {(uint)kind}",
    };
}

/// <summary>A CO-RE relocation that cannot be applied: malformed, ambiguous, or not fitting its instruction.</summary>
public sealed class BtfCoreException(string message) : BpfException(message);
