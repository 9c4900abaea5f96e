namespace SharpBpf.Linux.Links;

/// <summary>
/// A bpf_link that holds an XDP program on an interface (BPF_LINK_CREATE with attach type BPF_XDP).
/// The link owns the hook: nobody can replace or detach its program except through the link (update, detach) or
/// by dropping every reference to it. Closing this handle detaches the program unless the link is pinned.
/// </summary>
public sealed class XdpLink : IDisposable
{
    private readonly BpfFd _fd;

    private XdpLink(BpfFd fd)
    {
        _fd = fd;
        var info = LinkCalls.GetLinkInfo(fd);
        Id = info.Id;
        IfIndex = info.IfIndex;
    }

    /// <summary>The kernel's link id (machine-wide).</summary>
    public uint Id { get; }

    /// <summary>The interface the link was created on (0 once the interface is gone or the link was detached).</summary>
    public int IfIndex { get; }

    /// <summary>Where this handle pinned the link, or null.</summary>
    public string? PinPath { get; private set; }

    internal BpfFd Fd => _fd;

    /// <summary>The id of the program the link runs now (0 when the link has been detached).</summary>
    public uint ProgramId => LinkCalls.GetLinkInfo(_fd).ProgramId;

    /// <summary>Creates a link attaching <paramref name="program"/> to <paramref name="ifIndex"/> in <paramref name="mode"/>.</summary>
    /// <remarks>The ifindex is taken in the calling thread's network namespace.</remarks>
    public static XdpLink Create(BpfProgram program, int ifIndex, XdpAttachMode mode = XdpAttachMode.Auto)
    {
        ArgumentNullException.ThrowIfNull(program);
        var fd = LinkCalls.CreateXdpLink(program.Fd, ifIndex, (uint)XdpHook.ModeFlags(mode));
        return Wrap(fd);
    }

    /// <summary>Opens the link pinned at <paramref name="path"/> (BPF_OBJ_GET); it must be an XDP link.</summary>
    public static XdpLink OpenPinned(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var link = Wrap(LinkCalls.OpenPinned(path));
        link.PinPath = path;
        return link;
    }

    /// <summary>Opens the link with id <paramref name="id"/> (BPF_LINK_GET_FD_BY_ID); it must be an XDP link.</summary>
    public static XdpLink FromId(uint id) => Wrap(LinkCalls.LinkFromId(id));

    private static XdpLink Wrap(BpfFd fd)
    {
        try
        {
            var info = LinkCalls.GetLinkInfo(fd);
            if (info.Type != LinkCalls.LinkTypeXdp)
                throw new BpfException($"bpf_link {info.Id} is not an XDP link (link type {info.Type})");
            return new XdpLink(fd);
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Replaces the link's program atomically (BPF_LINK_UPDATE): every frame sees either the old or the new
    /// program. With <paramref name="expected"/>, only if that program is the one running now (else EPERM
    /// from the kernel, reported as "not the expected program").
    /// </summary>
    public void Update(BpfProgram program, BpfProgram? expected = null)
    {
        ArgumentNullException.ThrowIfNull(program);
        try
        {
            LinkCalls.UpdateLink(_fd, program.Fd, expected?.Fd);
        }
        catch (BpfSyscallException e) when (expected is not null && e.ErrorNumber == Errno.EPERM)
        {
            throw new BpfException($"bpf_link {Id}: the attached program is not the expected one (attached: program {ProgramId}); nothing was replaced", e);
        }
    }

    /// <summary>Pins the link at <paramref name="path"/> on a bpffs so it outlives this handle and this process.</summary>
    public void Pin(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        LinkCalls.Pin(_fd, path);
        PinPath = path;
    }

    /// <summary>Removes the pin this handle made or was opened from; the link then lives as long as its fds.</summary>
    public void Unpin()
    {
        if (PinPath is null)
            return;
        File.Delete(PinPath);
        PinPath = null;
    }

    /// <summary>
    /// Detaches the program now (BPF_LINK_DETACH) even though other fds or a pin still hold the link; the link
    /// object stays, defunct, until its last reference goes.
    /// </summary>
    public void Detach() => LinkCalls.DetachLink(_fd);

    /// <summary>Closes this handle: the program is detached unless the link is pinned or open elsewhere.</summary>
    public void Dispose() => _fd.Dispose();
}
