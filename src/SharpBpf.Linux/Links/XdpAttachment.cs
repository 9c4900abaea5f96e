namespace SharpBpf.Linux.Links;

/// <summary>
/// An XDP program attached to an interface by <see cref="XdpHook.Attach(int, BpfProgram, XdpAttachOptions?)"/>.
/// <para>Disposing releases what this process holds: a bpf_link that is not pinned detaches with it; a pinned
/// link and a netlink attachment stay (netlink attachments belong to the interface, not to a process). Call
/// <see cref="Detach"/> to remove the program whatever holds it.</para>
/// </summary>
public sealed class XdpAttachment : IDisposable
{
    private readonly string? _netNsPath;
    private bool _disposed;

    internal XdpAttachment(int ifIndex, string interfaceName, XdpAttachMode mode, XdpAttachMechanism attachedBy, uint programId, XdpLink? link, string? netNsPath)
    {
        IfIndex = ifIndex;
        InterfaceName = interfaceName;
        Mode = mode;
        AttachedBy = attachedBy;
        ProgramId = programId;
        Link = link;
        _netNsPath = netNsPath;
    }

    public int IfIndex { get; }

    public string InterfaceName { get; }

    /// <summary>The mode the program runs in (the kernel's choice when auto was asked).</summary>
    public XdpAttachMode Mode { get; }

    public XdpAttachMechanism AttachedBy { get; }

    /// <summary>The attached program's id.</summary>
    public uint ProgramId { get; }

    /// <summary>The bpf_link, when attached by one.</summary>
    public XdpLink? Link { get; }

    /// <summary>Where the link is pinned, or null.</summary>
    public string? PinPath => Link?.PinPath;

    /// <summary>
    /// Removes the program from the interface: a link is detached (and its pin removed when this attachment made
    /// it); a netlink program is removed only if it is still this one (XDP_FLAGS_REPLACE with it as expected).
    /// </summary>
    public void Detach()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Link is not null)
        {
            Link.Detach();
            Link.Unpin();
            return;
        }
        XdpHook.DetachNetlinkProgram(IfIndex, InterfaceName, Mode, ProgramId, _netNsPath);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Link?.Dispose();
    }
}
