namespace SharpBpf.Platform;

/// <summary>What loading a context field gives: a plain scalar or one of the packet pointers.</summary>
public enum ContextFieldKind
{
    /// <summary>An integer (ifindex, queue index, mark...).</summary>
    Scalar = 0,

    /// <summary>The start of packet data: loading it gives a packet pointer (PTR_TO_PACKET).</summary>
    PacketStart,

    /// <summary>One past the last packet byte (PTR_TO_PACKET_END): only for comparisons.</summary>
    PacketEnd,

    /// <summary>The start of the metadata area in front of the packet (PTR_TO_PACKET_META).</summary>
    PacketMeta,
}

/// <summary>One field of a program type's context struct.</summary>
/// <param name="Name">The C field name (data, data_end, ingress_ifindex...).</param>
/// <param name="Offset">Byte offset in the struct.</param>
/// <param name="Size">Size of the field in bytes.</param>
/// <param name="Kind">What a load of the field yields.</param>
/// <param name="Readable">Whether programs may load it.</param>
/// <param name="Writable">Whether programs may store to it.</param>
/// <param name="NarrowReads">Whether loads smaller than the field (at its start) are allowed; the kernel allows them
/// for most integer fields of __sk_buff, never for pointer fields and never for xdp_md.</param>
public sealed record ContextField(string Name, int Offset, int Size, ContextFieldKind Kind, bool Readable, bool Writable, bool NarrowReads);

/// <summary>
/// The layout of the struct a program type gets in r1, with each field's access rules, as the kernel's
/// <c>*_is_valid_access</c> functions define them. What the program sees is this uapi struct, not the kernel's
/// internal one: the kernel rewrites the accesses, the VM lays the struct out as is.
/// </summary>
public sealed class ContextLayout
{
    private readonly ContextField[] _fields;

    public ContextLayout(string name, int size, IEnumerable<ContextField> fields)
    {
        Name = name;
        Size = size;
        _fields = [.. fields.OrderBy(f => f.Offset)];
    }

    /// <summary>The C struct name (xdp_md, __sk_buff).</summary>
    public string Name { get; }

    /// <summary>sizeof the struct.</summary>
    public int Size { get; }

    public IReadOnlyList<ContextField> Fields => _fields;

    /// <summary>The field that covers byte <paramref name="offset"/>, if any.</summary>
    public ContextField? FieldAt(int offset)
    {
        foreach (var field in _fields)
        {
            if (offset >= field.Offset && offset < field.Offset + field.Size)
                return field;
        }
        return null;
    }

    /// <summary>The field named <paramref name="name"/>, if any.</summary>
    public ContextField? Field(string name) => Array.Find(_fields, f => f.Name == name);

    /// <summary>
    /// Checks one access of <paramref name="size"/> bytes at <paramref name="offset"/>. Returns null when allowed,
    /// else one sentence saying why not. <paramref name="field"/> is the field touched, when there is one.
    /// </summary>
    public string? CheckAccess(int offset, int size, bool write, out ContextField? field)
    {
        field = null;
        if (offset < 0 || offset + size > Size)
            return $"offset {offset} size {size} is outside struct {Name} ({Size} bytes)";
        field = FieldAt(offset);
        if (field is null)
            return $"offset {offset} is not a field of struct {Name}";
        if (write ? !field.Writable : !field.Readable)
            return $"{Name}.{field.Name} is {(write ? "read-only" : "not readable")} for this program type";
        bool whole = offset == field.Offset && size == field.Size;
        if (whole)
            return null;
        // Narrow loads must be aligned within the field; stores must cover the whole field.
        if (!write && field.NarrowReads && size < field.Size && (offset - field.Offset) % size == 0
            && offset + size <= field.Offset + field.Size)
            return null;
        return $"{Name}.{field.Name} must be accessed as a whole {field.Size}-byte field (got {size} bytes at offset {offset})";
    }

    /// <summary>struct xdp_md: every field is a read-only u32; data, data_end and data_meta become packet pointers;
    /// egress_ifindex is readable only by programs attached to a devmap (expected attach type BPF_XDP_DEVMAP).</summary>
    public static ContextLayout XdpMd { get; } = new("xdp_md", 24,
    [
        new("data", 0, 4, ContextFieldKind.PacketStart, true, false, false),
        new("data_end", 4, 4, ContextFieldKind.PacketEnd, true, false, false),
        new("data_meta", 8, 4, ContextFieldKind.PacketMeta, true, false, false),
        new("ingress_ifindex", 12, 4, ContextFieldKind.Scalar, true, false, false),
        new("rx_queue_index", 16, 4, ContextFieldKind.Scalar, true, false, false),
        new("egress_ifindex", 20, 4, ContextFieldKind.Scalar, false, false, false),
    ]);

    /// <summary>struct xdp_md for devmap programs: egress_ifindex becomes readable.</summary>
    public static ContextLayout XdpMdDevmap { get; } = new("xdp_md", 24,
        XdpMd.Fields.Select(f => f.Name == "egress_ifindex" ? f with { Readable = true } : f));

    /// <summary>struct __sk_buff as a socket filter sees it: no packet pointers, only cb[] writable.</summary>
    public static ContextLayout SkBuffSocketFilter { get; } = SkBuff(tc: false);

    /// <summary>struct __sk_buff as tc (sched_cls / sched_act) sees it: data/data_end/data_meta pointers,
    /// mark, priority, tc_index, cb[], tc_classid, queue_mapping and tstamp writable.</summary>
    public static ContextLayout SkBuffTc { get; } = SkBuff(tc: true);

    private static ContextLayout SkBuff(bool tc)
    {
        var fields = new List<ContextField>();
        void Scalar(string name, int offset, int size = 4, bool writable = false, bool readable = true) =>
            fields.Add(new(name, offset, size, ContextFieldKind.Scalar, readable, writable, size <= 8));
        Scalar("len", 0);
        Scalar("pkt_type", 4);
        Scalar("mark", 8, writable: tc);
        Scalar("queue_mapping", 12, writable: tc);
        Scalar("protocol", 16);
        Scalar("vlan_present", 20);
        Scalar("vlan_tci", 24);
        Scalar("vlan_proto", 28);
        Scalar("priority", 32, writable: tc);
        Scalar("ingress_ifindex", 36);
        Scalar("ifindex", 40);
        Scalar("tc_index", 44, writable: tc);
        for (int i = 0; i < 5; i++)
            Scalar($"cb[{i}]", 48 + 4 * i, writable: true);
        Scalar("hash", 68);
        Scalar("tc_classid", 72, writable: tc, readable: tc);
        fields.Add(new("data", 76, 4, ContextFieldKind.PacketStart, tc, false, false));
        fields.Add(new("data_end", 80, 4, ContextFieldKind.PacketEnd, tc, false, false));
        Scalar("napi_id", 84);
        // family .. local_port (88..139) describe the socket; socket filters and tc may not read them.
        fields.Add(new("data_meta", 140, 4, ContextFieldKind.PacketMeta, tc, false, false));
        Scalar("tstamp", 152, 8, writable: tc);
        Scalar("wire_len", 160);
        Scalar("gso_segs", 164);
        Scalar("gso_size", 176);
        Scalar("hwtstamp", 184, 8);
        return new ContextLayout("__sk_buff", 192, fields);
    }
}
