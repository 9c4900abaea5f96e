using SharpBpf.Linux.Features;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux.Links;

/// <summary>
/// The bpf(2) commands the XDP code needs, over the backend's one bpf(2) layer (<see cref="Bpf"/>): link create,
/// update, detach, pin, open, info, and the walk over all links. Errors stay <see cref="BpfSyscallException"/>s
/// with the errno, so callers can translate them.
/// </summary>
internal static class LinkCalls
{
    /// <summary>BPF_LINK_TYPE_XDP in enum bpf_link_type.</summary>
    public const uint LinkTypeXdp = 6;

    /// <summary>BPF_F_REPLACE in link_update.flags: replace only if old_prog_fd's program is the one attached.</summary>
    private const uint UpdateReplace = 1u << 2;

    private static Bpf Bpf => Bpf.Default;

    public static BpfFd CreateXdpLink(BpfFd program, int ifIndex, uint flags)
    {
        using var lease = program.Use();
        var attr = new LinkCreateAttr
        {
            ProgFd = lease.Fd,
            TargetIfIndex = (uint)ifIndex,
            AttachType = BpfConstants.BPF_XDP,
            Flags = flags,
        };
        return Bpf.LinkCreate(ref attr);
    }

    public static void UpdateLink(BpfFd link, BpfFd program, BpfFd? expected)
    {
        using var linkLease = link.Use();
        using var programLease = program.Use();
        var attr = new LinkUpdateAttr { LinkFd = linkLease.Fd, NewProgFd = programLease.Fd };
        if (expected is null)
        {
            Bpf.LinkUpdate(ref attr);
            return;
        }
        using var expectedLease = expected.Use();
        attr.Flags = UpdateReplace;
        attr.OldProgFd = expectedLease.Fd;
        Bpf.LinkUpdate(ref attr);
    }

    public static void DetachLink(BpfFd link) => Bpf.LinkDetach(link);

    public static void Pin(BpfFd fd, string path) => Bpf.ObjPin(fd, path);

    public static BpfFd OpenPinned(string path) => Bpf.ObjGet(path);

    public static BpfFd LinkFromId(uint id) => Bpf.GetFdById(BpfCommand.BPF_LINK_GET_FD_BY_ID, id);

    public static BpfFd ProgramFromId(uint id) => Bpf.GetFdById(BpfCommand.BPF_PROG_GET_FD_BY_ID, id);

    public static (uint Id, uint Type, uint ProgramId, int IfIndex) GetLinkInfo(BpfFd link)
    {
        var info = Bpf.GetInfo<BpfLinkInfo>(link);
        return (info.Id, info.Type, info.ProgId, info.Type == LinkTypeXdp ? (int)info.XdpIfIndex : 0);
    }

    /// <summary>The name and tag of program <paramref name="id"/>, or nulls when it cannot be opened (gone, or not permitted).</summary>
    public static (string? Name, string? Tag) TryProgramNameAndTag(uint id)
    {
        if (Bpf.TryGetFdById(BpfCommand.BPF_PROG_GET_FD_BY_ID, id, out var fd) < 0)
            return (null, null);
        using (fd)
        {
            var info = Bpf.GetInfo<BpfProgInfo>(fd!);
            return (info.Name.ToString(), Convert.ToHexStringLower(info.Tag));
        }
    }

    /// <summary>
    /// Every live XDP bpf_link, as (ifindex, program id) -> link id. The link info has no namespace, so the pair is
    /// what identifies the interface's owner.
    /// </summary>
    public static Dictionary<(int IfIndex, uint ProgramId), uint> XdpLinkOwners()
    {
        var owners = new Dictionary<(int, uint), uint>();
        for (uint id = 0; Bpf.TryGetNextId(BpfCommand.BPF_LINK_GET_NEXT_ID, id, out id);)
        {
            if (Bpf.TryGetFdById(BpfCommand.BPF_LINK_GET_FD_BY_ID, id, out var fd) < 0)
                continue; // went away meanwhile
            using (fd)
            {
                var info = GetLinkInfo(fd!);
                if (info.Type == LinkTypeXdp && info.IfIndex != 0)
                    owners.TryAdd((info.IfIndex, info.ProgramId), info.Id);
            }
        }
        return owners;
    }

    /// <summary>The errno of a bpf(2) refusal, looking through wrapping; null for any other exception.</summary>
    public static int? ErrnoOf(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is BpfSyscallException syscall)
                return syscall.ErrorNumber;
        }
        return null;
    }

    /// <summary>Whether BPF_LINK_CREATE takes XDP programs here (the backend's cached feature probe).</summary>
    public static bool ProbeXdpLink() => BpfFeatures.XdpLink.Supported == true;
}
