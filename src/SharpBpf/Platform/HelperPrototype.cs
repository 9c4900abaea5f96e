namespace SharpBpf.Platform;

/// <summary>
/// What a helper argument must be, as the kernel's <c>enum bpf_arg_type</c> classifies it. The verifier checks each
/// argument register against this before the call; the VM uses it to know which registers carry pointers and sizes.
/// </summary>
public enum ArgumentKind
{
    /// <summary>The argument is not used: the register is not read.</summary>
    None = 0,

    /// <summary>ARG_ANYTHING: any initialised value (a scalar, or a pointer for privileged programs).</summary>
    Anything,

    /// <summary>ARG_CONST_MAP_PTR: a map pointer loaded with lddw (the map is known statically).</summary>
    ConstMapPointer,

    /// <summary>ARG_PTR_TO_MAP_KEY: readable memory of the map's key size (stack, map value or packet).</summary>
    MapKey,

    /// <summary>ARG_PTR_TO_MAP_VALUE: readable memory of the map's value size.</summary>
    MapValue,

    /// <summary>ARG_PTR_TO_MAP_VALUE | MEM_UNINIT: writable memory of the map's value size, may be uninitialised.</summary>
    UninitMapValue,

    /// <summary>ARG_PTR_TO_MEM (| MEM_RDONLY): initialised memory the helper reads; size in the next argument.</summary>
    ReadableMemory,

    /// <summary>ARG_PTR_TO_MEM without MEM_RDONLY: initialised memory the helper reads and writes (so not
    /// read-only map values); size in the next argument.</summary>
    Memory,

    /// <summary>ARG_PTR_TO_MEM | PTR_MAYBE_NULL: as <see cref="ReadableMemory"/>, or NULL with a zero size.</summary>
    ReadableMemoryOrNull,

    /// <summary>ARG_PTR_TO_UNINIT_MEM: memory the helper writes, may be uninitialised; size in the next argument.</summary>
    WritableMemory,

    /// <summary>ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT: writable memory of <see cref="HelperPrototype.FixedSizes"/> bytes.</summary>
    WritableFixedMemory,

    /// <summary>ARG_CONST_SIZE: a scalar in [1, max] bounding the previous memory argument.</summary>
    ConstSize,

    /// <summary>ARG_CONST_SIZE_OR_ZERO: a scalar in [0, max] bounding the previous memory argument.</summary>
    ConstSizeOrZero,

    /// <summary>ARG_CONST_ALLOC_SIZE_OR_ZERO: a known constant size of memory the helper returns (ringbuf reserve).</summary>
    ConstAllocSizeOrZero,

    /// <summary>ARG_PTR_TO_CTX: the program's context pointer, unmodified.</summary>
    Context,

    /// <summary>ARG_PTR_TO_RINGBUF_MEM | OBJ_RELEASE: memory returned by ringbuf reserve, released by the call.</summary>
    RingbufMemoryRelease,

    /// <summary>ARG_PTR_TO_FUNC: a callback, loaded with lddw src=BPF_PSEUDO_FUNC.</summary>
    Function,

    /// <summary>ARG_PTR_TO_STACK_OR_NULL: a stack pointer or NULL, passed through to a callback.</summary>
    StackOrNull,

    /// <summary>ARG_PTR_TO_CONST_STR: a pointer into a frozen read-only map value holding a NUL-terminated string.</summary>
    ConstString,

    /// <summary>ARG_PTR_TO_SPIN_LOCK: a map value pointer at the value's struct bpf_spin_lock (from BTF).</summary>
    SpinLock,
}

/// <summary>What a helper returns in r0, as the kernel's <c>enum bpf_return_type</c> classifies it.</summary>
public enum ReturnKind
{
    /// <summary>RET_INTEGER: an unknown scalar.</summary>
    Integer = 0,

    /// <summary>RET_VOID: r0 is left unreadable.</summary>
    Void,

    /// <summary>RET_PTR_TO_MAP_VALUE_OR_NULL: a value of the map in the first argument, or NULL.</summary>
    MapValueOrNull,

    /// <summary>RET_PTR_TO_RINGBUF_MEM_OR_NULL: memory of the size given in the alloc-size argument, or NULL.</summary>
    RingbufMemoryOrNull,
}

/// <summary>
/// One helper's prototype (the kernel's <c>struct bpf_func_proto</c>): its id, up to five argument kinds, the return
/// kind, and facts the verifier needs about its effects.
/// </summary>
public sealed record HelperPrototype
{
    public HelperPrototype(HelperId id, ReturnKind returns, params ArgumentKind[] arguments)
    {
        if (arguments.Length > 5)
            throw new ArgumentException("a helper takes at most five arguments", nameof(arguments));
        Id = id;
        Returns = returns;
        Arguments = [.. arguments];
    }

    public HelperId Id { get; }

    /// <summary>The C name, e.g. <c>bpf_map_lookup_elem</c>.</summary>
    public string Name => "bpf_" + KernelName(Id);

    public ReturnKind Returns { get; }

    /// <summary>Argument kinds for r1..r5; shorter than five when the helper takes fewer arguments.</summary>
    public IReadOnlyList<ArgumentKind> Arguments { get; }

    /// <summary>For <see cref="ArgumentKind.WritableFixedMemory"/> arguments: the fixed size, by argument index.</summary>
    public IReadOnlyDictionary<int, int> FixedSizes { get; init; } = new Dictionary<int, int>();

    /// <summary>True when the helper may move packet data (xdp_adjust_*, skb_change_*): every packet pointer is
    /// invalidated after the call (the kernel's bpf_helper_changes_pkt_data).</summary>
    public bool ChangesPacketData { get; init; }

    /// <summary>True when only GPL-compatible programs may call it.</summary>
    public bool GplOnly { get; init; }

    /// <summary>Argument kind of register r(<paramref name="index"/>+1), or <see cref="ArgumentKind.None"/>.</summary>
    public ArgumentKind Argument(int index) => index < Arguments.Count ? Arguments[index] : ArgumentKind.None;

    public override string ToString() => $"{Name}#{(int)Id}";

    /// <summary>The kernel's snake_case name without bpf_ (map_lookup_elem) from the .NET enum name.</summary>
    internal static string KernelName(HelperId id)
    {
        var name = id.ToString();
        var builder = new System.Text.StringBuilder(name.Length + 8);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c))
            {
                // A digit run like "Ipv4" stays glued: only an upper-case letter opens a new word.
                if (i > 0)
                    builder.Append('_');
                builder.Append(char.ToLowerInvariant(c));
            }
            else
            {
                builder.Append(c);
            }
        }
        return builder.ToString();
    }
}
