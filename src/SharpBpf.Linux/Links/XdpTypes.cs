namespace SharpBpf.Linux.Links;

/// <summary>Where on the interface's receive path an XDP program runs.</summary>
public enum XdpAttachMode
{
    /// <summary>Let the kernel choose: native when the driver has XDP, generic otherwise.</summary>
    Auto = 0,

    /// <summary>In the driver, before an skb exists (XDP_FLAGS_DRV_MODE; "native", "drv").</summary>
    Native,

    /// <summary>Generic XDP on the skb, for any driver, slower (XDP_FLAGS_SKB_MODE; "skb", "generic").</summary>
    Skb,

    /// <summary>Offloaded to the NIC (XDP_FLAGS_HW_MODE); only a few smart NICs have it.</summary>
    Hardware,
}

/// <summary>How a program was attached, which decides how it can be replaced or removed.</summary>
public enum XdpAttachMechanism
{
    /// <summary>
    /// By a bpf_link (BPF_LINK_CREATE): the link owns the hook; closing its last fd (and pin) detaches it, and
    /// neither netlink nor another link can take the hook from it.
    /// </summary>
    Link,

    /// <summary>By netlink (RTM_SETLINK IFLA_XDP): stays until replaced or detached, whoever asks.</summary>
    Netlink,
}

/// <summary>Options of <see cref="XdpHook.Attach(int, SharpBpf.Linux.BpfProgram, XdpAttachOptions?)"/>.</summary>
public sealed record XdpAttachOptions
{
    /// <summary>Native, skb (generic), hardware, or auto (the kernel's choice).</summary>
    public XdpAttachMode Mode { get; init; } = XdpAttachMode.Auto;

    /// <summary>Attach by netlink even where the kernel has bpf_link for XDP (Linux 5.9+).</summary>
    public bool UseNetlink { get; init; }

    /// <summary>
    /// Take the hook over from the program attached now, without a gap: a bpf_link that owns the hook is updated
    /// in place (BPF_LINK_UPDATE), a netlink program is replaced by netlink with XDP_FLAGS_REPLACE. With
    /// <see cref="ExpectedProgram"/> the kernel replaces only if that program is still the attached one.
    /// </summary>
    public bool Replace { get; init; }

    /// <summary>With <see cref="Replace"/>: the program that must be attached now for the replacement to happen.</summary>
    public BpfProgram? ExpectedProgram { get; init; }

    /// <summary>Refuse if any program is attached in this mode (XDP_FLAGS_UPDATE_IF_NOEXIST; netlink only, links always refuse).</summary>
    public bool UpdateIfNoExist { get; init; }

    /// <summary>
    /// Pin the bpf_link here (a path on a bpffs) so the program stays attached after this process exits; removing
    /// the pin (with every fd closed) detaches it. Needs a bpf_link.
    /// </summary>
    public string? PinPath { get; init; }
}

/// <summary>One XDP program attached to an interface, as <see cref="XdpHook.Query(string?, string?)"/> reports it.</summary>
/// <param name="Mode">Native, skb or hardware (never auto).</param>
/// <param name="ProgramId">The kernel's program id (machine-wide).</param>
/// <param name="Name">The program's name as the kernel keeps it (up to 15 characters), null if it could not be read.</param>
/// <param name="Tag">The program's tag (hex of the first 8 bytes of its SHA-1), null if it could not be read.</param>
/// <param name="AttachedBy">Link or netlink.</param>
/// <param name="LinkId">The bpf_link's id when <paramref name="AttachedBy"/> is <see cref="XdpAttachMechanism.Link"/>.</param>
public sealed record XdpProgramStatus(XdpAttachMode Mode, uint ProgramId, string? Name, string? Tag, XdpAttachMechanism AttachedBy, uint? LinkId);

/// <summary>An interface and the XDP programs attached to it (none, one, or native+hardware / skb+hardware).</summary>
public sealed record XdpInterfaceStatus(int IfIndex, string Name, IReadOnlyList<XdpProgramStatus> Programs);

internal static class XdpModeNames
{
    public static string Describe(XdpAttachMode mode) => mode switch
    {
        XdpAttachMode.Native => "native",
        XdpAttachMode.Skb => "skb",
        XdpAttachMode.Hardware => "hw",
        _ => "auto",
    };

    /// <summary>Parses native|drv|skb|generic|hw|offload|auto (the CLI's and the common tools' spellings).</summary>
    public static bool TryParse(string text, out XdpAttachMode mode)
    {
        mode = text.ToLowerInvariant() switch
        {
            "native" or "drv" or "driver" => XdpAttachMode.Native,
            "skb" or "generic" => XdpAttachMode.Skb,
            "hw" or "hardware" or "offload" => XdpAttachMode.Hardware,
            "auto" => XdpAttachMode.Auto,
            _ => (XdpAttachMode)(-1),
        };
        return mode >= 0;
    }
}
