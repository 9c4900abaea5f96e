namespace SharpBpf.Linux.Interop;

/// <summary>
/// Names the C type a struct mirrors, so a test can compile a C program against the machine's headers and check
/// every mirrored field's offset and size. <see cref="CType"/> is a C type expression usable in offsetof,
/// e.g. "union bpf_attr" or "struct bpf_prog_info".
/// </summary>
[AttributeUsage(AttributeTargets.Struct)]
internal sealed class CTypeAttribute(string cType) : Attribute
{
    public string CType { get; } = cType;

    /// <summary>
    /// When true (the default) the struct's size must equal the end of its last mirrored member rounded up to its alignment,
    /// i.e. the struct has no tail the headers do not know. False for unions we mirror only a head of.
    /// </summary>
    public bool CheckSize { get; init; } = true;
}

/// <summary>
/// Names the C member a field mirrors: a member designator accepted by offsetof ("map_type", "test.prog_fd").
/// Fields without it are padding or reserved space.
/// </summary>
[AttributeUsage(AttributeTargets.Field)]
internal sealed class CFieldAttribute(string member) : Attribute
{
    public string Member { get; } = member;
}
