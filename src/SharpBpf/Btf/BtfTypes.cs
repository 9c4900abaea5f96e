namespace SharpBpf.Btf;

/// <summary>BTF type kinds, numbered as BTF_KIND_* in linux/btf.h.</summary>
public enum BtfKind : byte
{
    Void = 0,
    Int = 1,
    Pointer = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    Forward = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    DataSec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

/// <summary>Linkage of a BTF_KIND_FUNC (btf_func_linkage) or BTF_KIND_VAR (BTF_VAR_*).</summary>
public enum BtfLinkage : uint
{
    Static = 0,
    Global = 1,
    Extern = 2,
}

/// <summary>
/// One BTF type. Every type has an id (its position; 0 is void), a kind and a name (empty for anonymous types).
/// Kind-specific data lives in the derived classes.
/// <code>
///   struct btf_type { u32 name_off; u32 info; u32 size_or_type; }   followed by kind-specific data
///   info: | kind_flag:1 | unused:2 | kind:5 | unused:8 | vlen:16 |
/// </code>
/// </summary>
public abstract class BtfType
{
    private protected BtfType(uint id, BtfKind kind, string name)
    {
        Id = id;
        Kind = kind;
        Name = name;
    }

    public uint Id { get; }
    public BtfKind Kind { get; }
    public string Name { get; }

    /// <summary>Byte offset of the record in the type section (so fix-ups can patch the raw bytes).</summary>
    internal int RecordOffset { get; set; }

    public override string ToString() => $"[{Id}] {Kind} '{Name}'";
}

/// <summary>The void type (id 0).</summary>
public sealed class BtfVoid : BtfType
{
    internal BtfVoid() : base(0, BtfKind.Void, "") { }
}

/// <summary>BTF_INT_* encoding bits.</summary>
[Flags]
public enum BtfIntEncoding : byte
{
    None = 0,
    Signed = 1,
    Char = 2,
    Bool = 4,
}

public sealed class BtfInt(uint id, string name, uint size, BtfIntEncoding encoding, byte bitOffset, byte bits) : BtfType(id, BtfKind.Int, name)
{
    public uint Size { get; } = size;
    public BtfIntEncoding Encoding { get; } = encoding;
    public byte BitOffset { get; } = bitOffset;
    public byte Bits { get; } = bits;
}

public sealed class BtfFloat(uint id, string name, uint size) : BtfType(id, BtfKind.Float, name)
{
    public uint Size { get; } = size;
}

/// <summary>A kind that only refers to another type: pointer, typedef, volatile, const, restrict, type tag.</summary>
public sealed class BtfReference(uint id, BtfKind kind, string name, uint type) : BtfType(id, kind, name)
{
    public uint Type { get; } = type;
}

public sealed class BtfArray(uint id, uint elementType, uint indexType, uint count) : BtfType(id, BtfKind.Array, "")
{
    public uint ElementType { get; } = elementType;
    public uint IndexType { get; } = indexType;
    public uint Count { get; } = count;
}

/// <summary>A struct or union member. <see cref="BitOffset"/> is from the start of the composite.</summary>
public sealed record BtfMember(string Name, uint Type, uint BitOffset, byte BitfieldSize);

public sealed class BtfComposite(uint id, BtfKind kind, string name, uint size, IReadOnlyList<BtfMember> members) : BtfType(id, kind, name)
{
    public uint Size { get; } = size;
    public IReadOnlyList<BtfMember> Members { get; } = members;
}

public sealed record BtfEnumValue(string Name, long Value);

/// <summary>BTF_KIND_ENUM (32-bit values) or BTF_KIND_ENUM64.</summary>
public sealed class BtfEnum(uint id, BtfKind kind, string name, uint size, bool signed, IReadOnlyList<BtfEnumValue> values) : BtfType(id, kind, name)
{
    public uint Size { get; } = size;
    public bool Signed { get; } = signed;
    public IReadOnlyList<BtfEnumValue> Values { get; } = values;
}

public sealed class BtfForward(uint id, string name, bool isUnion) : BtfType(id, BtfKind.Forward, name)
{
    public bool IsUnion { get; } = isUnion;
}

public sealed class BtfFunc(uint id, string name, uint prototype, BtfLinkage linkage) : BtfType(id, BtfKind.Func, name)
{
    public uint Prototype { get; } = prototype;
    public BtfLinkage Linkage { get; } = linkage;
}

public sealed record BtfParameter(string Name, uint Type);

public sealed class BtfFuncProto(uint id, uint returnType, IReadOnlyList<BtfParameter> parameters) : BtfType(id, BtfKind.FuncProto, "")
{
    public uint ReturnType { get; } = returnType;
    public IReadOnlyList<BtfParameter> Parameters { get; } = parameters;
}

public sealed class BtfVar(uint id, string name, uint type, BtfLinkage linkage) : BtfType(id, BtfKind.Var, name)
{
    public uint Type { get; } = type;
    public BtfLinkage Linkage { get; } = linkage;
}

/// <summary>A variable in a data section: its VAR type id, byte offset and size.</summary>
public sealed record BtfVarSecInfo(uint Type, uint Offset, uint Size);

/// <summary>
/// A data section (.data, .bss, .maps, ...). clang leaves Size at 0; the object reader fills it from the ELF
/// section, as libbpf does, before the types go to the kernel.
/// </summary>
public sealed class BtfDataSec(uint id, string name, uint size, IReadOnlyList<BtfVarSecInfo> variables) : BtfType(id, BtfKind.DataSec, name)
{
    public uint Size { get; internal set; } = size;
    public IReadOnlyList<BtfVarSecInfo> Variables { get; internal set; } = variables;
}

/// <summary>A declaration tag on a type, or on a member/parameter (<see cref="ComponentIndex"/> >= 0).</summary>
public sealed class BtfDeclTag(uint id, string name, uint type, int componentIndex) : BtfType(id, BtfKind.DeclTag, name)
{
    public uint Type { get; } = type;
    public int ComponentIndex { get; } = componentIndex;
}
