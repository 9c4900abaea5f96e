using SharpBpf.Objects;

namespace SharpBpf.Verifier.Domains;

/// <summary>What kind of value a register holds (the kernel's enum bpf_reg_type, the ones SharpBpf models).</summary>
public enum RegisterType : byte
{
    /// <summary>Never written on this path: reading it is an error.</summary>
    NotInit = 0,
    Scalar,
    /// <summary>The context struct (xdp_md, __sk_buff).</summary>
    Context,
    /// <summary>A frame's stack: frame pointer plus an offset.</summary>
    Stack,
    /// <summary>Packet data (xdp_md.data plus offsets).</summary>
    Packet,
    /// <summary>One past the packet (xdp_md.data_end): only for comparisons.</summary>
    PacketEnd,
    /// <summary>The metadata area in front of the packet (xdp_md.data_meta plus offsets).</summary>
    PacketMeta,
    /// <summary>A map, loaded with lddw: only for passing to helpers.</summary>
    MapPointer,
    MapValue,
    MapValueOrNull,
    /// <summary>Memory reserved in a ring buffer: must be submitted or discarded.</summary>
    RingbufMemory,
    RingbufMemoryOrNull,
    /// <summary>A subprogram's address (lddw src=BPF_PSEUDO_FUNC), for callback helpers.</summary>
    Function,
    /// <summary>A pointer to a kernel struct typed by the kernel's BTF (PTR_TO_BTF_ID): <see cref="RegisterState.MemorySize"/>
    /// holds the struct's type id, <see cref="RegisterState.Range"/> 1 when it is untrusted (reached by walking pointers).</summary>
    BtfPointer,
    /// <summary>A <see cref="BtfPointer"/> that may be NULL (a kfunc marked KF_RET_NULL).</summary>
    BtfPointerOrNull,
}

/// <summary>
/// What is known of one register. For scalars, <see cref="Value"/> is the value; for pointers it is the variable
/// part of the offset, with <see cref="Offset"/> the fixed part (so <c>data + 14 + (x &amp; 7)</c> has
/// Offset 14 and Value [0, 7]).
/// </summary>
public readonly record struct RegisterState
{
    public RegisterType Type { get; init; }

    /// <summary>Fixed offset of a pointer from its base.</summary>
    public int Offset { get; init; }

    /// <summary>The scalar value, or the variable offset of a pointer (0 when there is none).</summary>
    public Scalar Value { get; init; }

    /// <summary>
    /// Identity shared by copies: for *OrNull pointers so a null check on one copy tells the others, for packet
    /// pointers with a variable offset so a range learned on one applies to the others, for scalars so a bound
    /// learned on one copy applies to the others. 0 = none.
    /// </summary>
    public int Id { get; init; }

    /// <summary>For packet pointers: the bytes from the pointer's base (without <see cref="Offset"/>) proven to be
    /// inside the packet by a comparison with data_end.</summary>
    public int Range { get; init; }

    /// <summary>The map of a map pointer or map value.</summary>
    public MapSpec? Map { get; init; }

    /// <summary>Size of ring buffer memory.</summary>
    public int MemorySize { get; init; }

    /// <summary>For stack pointers, the frame (0 = main program) whose stack it points to. For function pointers,
    /// the instruction index of the subprogram.</summary>
    public int Frame { get; init; }

    /// <summary>For ring buffer memory: the reference that must be released before exit.</summary>
    public int ReferenceId { get; init; }

    /// <summary>For scalars: the registers and stack slots of the path's last checkpoint this value was computed
    /// from (precision tracking: when the value decides something, those become precise in the checkpoint).</summary>
    internal DepSet Deps { get; init; }

    public static readonly RegisterState NotInit = new() { Type = RegisterType.NotInit, Value = Scalar.Unknown };
    public static readonly RegisterState UnknownScalar = new() { Type = RegisterType.Scalar, Value = Scalar.Unknown };

    public static RegisterState FromScalar(Scalar value) => new() { Type = RegisterType.Scalar, Value = value };
    public static RegisterState Constant(long value) => FromScalar(Scalar.Const(value));

    public static RegisterState Pointer(RegisterType type, int offset = 0) =>
        new() { Type = type, Offset = offset, Value = Scalar.Const(0) };

    public bool IsScalar => Type == RegisterType.Scalar;
    public bool IsPointer => Type is not (RegisterType.NotInit or RegisterType.Scalar);
    public bool IsPacketPointer => Type is RegisterType.Packet or RegisterType.PacketMeta;
    public bool IsNullable => Type is RegisterType.MapValueOrNull or RegisterType.RingbufMemoryOrNull or RegisterType.BtfPointerOrNull;
    public bool HasVariableOffset => !Value.IsConst;

    /// <summary>The kernel's name for the type, as the kernel's log prints it.</summary>
    public static string TypeName(RegisterType type) => type switch
    {
        RegisterType.NotInit => "not initialised",
        RegisterType.Scalar => "scalar",
        RegisterType.Context => "ctx",
        RegisterType.Stack => "fp",
        RegisterType.Packet => "pkt",
        RegisterType.PacketEnd => "pkt_end",
        RegisterType.PacketMeta => "pkt_meta",
        RegisterType.MapPointer => "map_ptr",
        RegisterType.MapValue => "map_value",
        RegisterType.MapValueOrNull => "map_value_or_null",
        RegisterType.RingbufMemory => "ringbuf_mem",
        RegisterType.RingbufMemoryOrNull => "ringbuf_mem_or_null",
        RegisterType.Function => "func",
        RegisterType.BtfPointer => "ptr_to_btf_id",
        RegisterType.BtfPointerOrNull => "ptr_to_btf_id_or_null",
        _ => type.ToString(),
    };

    public override string ToString()
    {
        switch (Type)
        {
            case RegisterType.NotInit:
                return "?";
            case RegisterType.Scalar:
                return Value.IsConst ? $"{(long)Value.ConstValue}" : $"scalar({Value}{(Id != 0 ? $",id={Id}" : "")})";
        }
        var parts = new List<string>();
        if (Map is not null)
            parts.Add($"map={Map.Name}");
        if (Offset != 0 || Type == RegisterType.Stack)
            parts.Add($"off={Offset}");
        if (HasVariableOffset)
            parts.Add($"var={Value}");
        if (Id != 0)
            parts.Add($"id={Id}");
        if (IsPacketPointer)
            parts.Add($"r={Range}");
        if (Type is RegisterType.BtfPointer or RegisterType.BtfPointerOrNull)
            parts.Add($"btf_id={MemorySize}{(Range != 0 ? ",untrusted" : "")}");
        if (Type is RegisterType.RingbufMemory or RegisterType.RingbufMemoryOrNull)
            parts.Add($"size={MemorySize}");
        if (Type == RegisterType.Stack && Frame != 0)
            parts.Add($"frame={Frame}");
        return TypeName(Type) + (parts.Count > 0 ? "(" + string.Join(",", parts) + ")" : "");
    }
}

/// <summary>
/// A set of locations (registers r0-r9 and 8-byte stack slots) of one checkpoint's single frame; <see cref="All"/>
/// stands for every location of the checkpoint (a checkpoint with several frames, whose locations are not numbered).
/// </summary>
internal readonly record struct DepSet(ushort Regs, ulong Slots, bool All)
{
    public bool IsEmpty => Regs == 0 && Slots == 0 && !All;

    public static DepSet Register(int r) => new((ushort)(1 << r), 0, false);
    public static DepSet Slot(int s) => new(0, 1UL << s, false);
    public static readonly DepSet Everything = new(0, 0, true);

    public DepSet Union(DepSet other) => new((ushort)(Regs | other.Regs), Slots | other.Slots, All || other.All);
}
