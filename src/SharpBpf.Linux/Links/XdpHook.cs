using SharpBpf.Linux.Interop;
using SharpBpf.Linux.Net;
using SharpBpf.Linux.Netlink;

namespace SharpBpf.Linux.Links;

/// <summary>
/// Attach, detach and query XDP programs on network interfaces, by bpf_link (the default where the kernel has
/// it, Linux 5.9+) or by netlink. Interface names and indexes are those of the calling thread's network
/// namespace; <see cref="Query(string?, string?)"/> can also look into another one.
/// <code>
/// using var attachment = XdpHook.Attach("eth0", program, new XdpAttachOptions { Mode = XdpAttachMode.Native });
/// foreach (var iface in XdpHook.Query()) ...
/// </code>
/// Kernel refusals become <see cref="BpfException"/>s that say what was wrong ("a bpf_link owns this hook
/// (link id N): ..."), with the kernel's errno and message kept in the text and the inner exception.
/// </summary>
public static class XdpHook
{
    private static readonly Lazy<bool> s_linkSupported = new(LinkCalls.ProbeXdpLink);

    /// <summary>True when this kernel can attach XDP by bpf_link (BPF_LINK_CREATE with BPF_XDP, Linux 5.9).</summary>
    public static bool LinkSupported => s_linkSupported.Value;

    /// <summary>Attaches <paramref name="program"/> to the interface named <paramref name="interfaceName"/> (or given by index as text).</summary>
    public static XdpAttachment Attach(string interfaceName, BpfProgram program, XdpAttachOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        using var client = RtNetlinkClient.Open();
        return Attach(client, NetInterfaces.Resolve(client, interfaceName), program, options ?? new XdpAttachOptions());
    }

    /// <summary>Attaches <paramref name="program"/> to interface <paramref name="ifIndex"/>.</summary>
    public static XdpAttachment Attach(int ifIndex, BpfProgram program, XdpAttachOptions? options = null)
    {
        using var client = RtNetlinkClient.Open();
        return Attach(client, NetInterfaces.Resolve(client, ifIndex), program, options ?? new XdpAttachOptions());
    }

    /// <summary>
    /// Removes the XDP program of <paramref name="interfaceName"/> in <paramref name="mode"/> (auto: the one
    /// attached, whichever mode). A bpf_link is detached through the link, unless <paramref name="useNetlink"/>
    /// asks for netlink, which the kernel refuses while a link owns the hook. Returns false when nothing was attached.
    /// </summary>
    public static bool Detach(string interfaceName, XdpAttachMode mode = XdpAttachMode.Auto, bool useNetlink = false)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        using var client = RtNetlinkClient.Open();
        return Detach(client, NetInterfaces.Resolve(client, interfaceName), mode, useNetlink);
    }

    /// <inheritdoc cref="Detach(string, XdpAttachMode, bool)"/>
    public static bool Detach(int ifIndex, XdpAttachMode mode = XdpAttachMode.Auto, bool useNetlink = false)
    {
        using var client = RtNetlinkClient.Open();
        return Detach(client, NetInterfaces.Resolve(client, ifIndex), mode, useNetlink);
    }

    /// <summary>
    /// The XDP programs of every interface (or only of <paramref name="interfaceName"/>), in the calling thread's
    /// namespace or in the one at <paramref name="netNsPath"/>: ids, names, tags, mode, and whether a bpf_link
    /// (with its id) or netlink attached each.
    /// </summary>
    public static IReadOnlyList<XdpInterfaceStatus> Query(string? interfaceName = null, string? netNsPath = null)
    {
        using var client = RtNetlinkClient.Open(netNsPath);
        var links = interfaceName is null
            ? client.ListLinks()
            : [client.GetLink(NetInterfaces.Resolve(client, interfaceName).Index)!];
        return Describe(links);
    }

    /// <summary>The XDP programs of interface <paramref name="ifIndex"/> in the calling thread's namespace.</summary>
    public static XdpInterfaceStatus Query(int ifIndex)
    {
        using var client = RtNetlinkClient.Open();
        return Status(client, ifIndex);
    }

    internal static XdpFlags ModeFlags(XdpAttachMode mode) => mode switch
    {
        XdpAttachMode.Native => XdpFlags.DriverMode,
        XdpAttachMode.Skb => XdpFlags.SkbMode,
        XdpAttachMode.Hardware => XdpFlags.HardwareMode,
        _ => XdpFlags.None,
    };

    private static XdpAttachment Attach(RtNetlinkClient client, NetInterface iface, BpfProgram program, XdpAttachOptions options)
    {
        ArgumentNullException.ThrowIfNull(program);
        var replace = options.Replace || options.ExpectedProgram is not null;
        var useLink = !options.UseNetlink && LinkSupported;
        if (options.PinPath is not null && options.UseNetlink)
            throw new BpfException("a netlink attachment cannot be pinned: pinning needs a bpf_link (leave out --netlink)");
        if (options.PinPath is not null && !LinkSupported)
            throw new BpfNotSupportedException("bpf_link for XDP", "5.9", "a pinned attachment needs a bpf_link");

        if (replace)
        {
            var current = Pick(Status(client, iface.Index).Programs, options.Mode);
            if (current?.AttachedBy == XdpAttachMechanism.Link)
                return UpdateLink(client, iface, current, program, options);
            if (current is not null || !useLink)
                return AttachByNetlink(client, iface, program, options, current?.Mode ?? options.Mode, current);
            if (options.ExpectedProgram is not null)
                throw new BpfException($"nothing is attached to {iface.Name}, so the expected program {options.ExpectedProgram.Id} cannot be replaced");
        }
        return useLink
            ? AttachByLink(client, iface, program, options)
            : AttachByNetlink(client, iface, program, options, options.Mode, null);
    }

    private static XdpAttachment AttachByLink(RtNetlinkClient client, NetInterface iface, BpfProgram program, XdpAttachOptions options)
    {
        XdpLink link;
        try
        {
            link = XdpLink.Create(program, iface.Index, options.Mode);
        }
        catch (BpfSyscallException e)
        {
            throw Translate(client, iface, "attaching XDP by bpf_link", options, byNetlink: false, e.ErrorNumber, null, e);
        }
        try
        {
            if (options.PinPath is not null)
                link.Pin(options.PinPath);
            var mode = ModeOf(client, iface.Index, program.Id) ?? options.Mode;
            return new XdpAttachment(iface.Index, iface.Name, mode, XdpAttachMechanism.Link, program.Id, link, null);
        }
        catch
        {
            link.Dispose();
            throw;
        }
    }

    private static XdpAttachment UpdateLink(RtNetlinkClient client, NetInterface iface, XdpProgramStatus current, BpfProgram program, XdpAttachOptions options)
    {
        var link = XdpLink.FromId(current.LinkId!.Value);
        try
        {
            link.Update(program, options.ExpectedProgram);
            if (options.PinPath is not null)
                link.Pin(options.PinPath);
            return new XdpAttachment(iface.Index, iface.Name, current.Mode, XdpAttachMechanism.Link, program.Id, link, null);
        }
        catch
        {
            link.Dispose();
            throw;
        }
    }

    private static XdpAttachment AttachByNetlink(RtNetlinkClient client, NetInterface iface, BpfProgram program, XdpAttachOptions options, XdpAttachMode mode, XdpProgramStatus? current)
    {
        var flags = ModeFlags(mode);
        if (options.UpdateIfNoExist)
            flags |= XdpFlags.UpdateIfNoExist;
        BpfFd? currentFd = null;
        try
        {
            BpfFd? expected = null;
            if (options.Replace || options.ExpectedProgram is not null)
            {
                flags |= XdpFlags.Replace;
                // The kernel replaces only if the expected program is still attached: none (-1) when nothing is.
                expected = options.ExpectedProgram?.Fd;
                if (expected is null && current is not null)
                    expected = currentFd = LinkCalls.ProgramFromId(current.ProgramId);
            }
            using var programLease = program.Fd.Use();
            if (expected is null)
            {
                client.SetXdp(iface.Index, (int)programLease.Fd, flags);
            }
            else
            {
                using var expectedLease = expected.Use();
                client.SetXdp(iface.Index, (int)programLease.Fd, flags, (int)expectedLease.Fd);
            }
        }
        catch (NetlinkException e)
        {
            throw Translate(client, iface, "attaching XDP by netlink", options, byNetlink: true, e.Errno, e.KernelMessage, e);
        }
        finally
        {
            currentFd?.Dispose();
        }
        var attachedMode = ModeOf(client, iface.Index, program.Id) ?? mode;
        return new XdpAttachment(iface.Index, iface.Name, attachedMode, XdpAttachMechanism.Netlink, program.Id, null, null);
    }

    private static bool Detach(RtNetlinkClient client, NetInterface iface, XdpAttachMode mode, bool useNetlink)
    {
        var programs = Status(client, iface.Index).Programs;
        var candidates = programs.Where(p => mode == XdpAttachMode.Auto || p.Mode == mode).ToList();
        if (candidates.Count == 0)
            return false;
        if (candidates.Count > 1)
            throw new BpfException($"{iface.Name} has {XdpErrors.Describe(candidates)}: say which mode to detach");
        var target = candidates[0];
        if (target.AttachedBy == XdpAttachMechanism.Link && !useNetlink)
        {
            using var link = XdpLink.FromId(target.LinkId!.Value);
            link.Detach();
            return true;
        }
        try
        {
            client.SetXdp(iface.Index, -1, ModeFlags(target.Mode));
        }
        catch (NetlinkException e)
        {
            var options = new XdpAttachOptions { Mode = target.Mode, UseNetlink = true };
            throw Translate(client, iface, "detaching XDP by netlink", options, byNetlink: true, e.Errno, e.KernelMessage, e);
        }
        return true;
    }

    /// <summary>Detaches by netlink the program <paramref name="programId"/> if it is still the one attached in <paramref name="mode"/>.</summary>
    internal static void DetachNetlinkProgram(int ifIndex, string interfaceName, XdpAttachMode mode, uint programId, string? netNsPath)
    {
        using var client = RtNetlinkClient.Open(netNsPath);
        if (Bpf.Default.TryGetFdById(BpfCommand.BPF_PROG_GET_FD_BY_ID, programId, out var expected) < 0)
            return; // the program is gone, so it is attached nowhere
        using (expected)
        {
            using var lease = expected!.Use();
            try
            {
                client.SetXdp(ifIndex, -1, ModeFlags(mode) | XdpFlags.Replace, (int)lease.Fd);
            }
            catch (NetlinkException e) when (e.Errno == Errno.EEXIST)
            {
                throw new BpfException($"program {programId} is no longer the one attached to {interfaceName}: left as it is", e);
            }
            catch (NetlinkException e) when (e.Errno == Errno.ENODEV)
            {
                // the interface is gone, and its programs with it
            }
        }
    }

    private static BpfException Translate(RtNetlinkClient client, NetInterface iface, string operation, XdpAttachOptions options, bool byNetlink, int errno, string? kernelMessage, Exception inner)
    {
        XdpInterfaceStatus? now = null;
        try
        {
            now = Status(client, iface.Index);
        }
        catch (BpfException)
        {
            // the refusal matters more than the state we could not read
        }
        var context = new XdpErrors.Context(operation, iface.Name, iface.Kind, options.Mode, now,
            options.Replace || options.ExpectedProgram is not null, options.UpdateIfNoExist, byNetlink);
        return XdpErrors.Translate(errno, kernelMessage, context, inner);
    }

    private static XdpProgramStatus? Pick(IReadOnlyList<XdpProgramStatus> programs, XdpAttachMode mode) =>
        mode == XdpAttachMode.Auto
            ? programs.FirstOrDefault(p => p.Mode != XdpAttachMode.Hardware) ?? programs.FirstOrDefault()
            : programs.FirstOrDefault(p => p.Mode == mode);

    private static XdpAttachMode? ModeOf(RtNetlinkClient client, int ifIndex, uint programId)
    {
        var xdp = client.GetLink(ifIndex)?.Xdp ?? default;
        if (xdp.DriverProgramId == programId) return XdpAttachMode.Native;
        if (xdp.SkbProgramId == programId) return XdpAttachMode.Skb;
        if (xdp.HardwareProgramId == programId) return XdpAttachMode.Hardware;
        return null;
    }

    private static XdpInterfaceStatus Status(RtNetlinkClient client, int ifIndex)
    {
        var link = client.GetLink(ifIndex) ?? throw new BpfException($"no interface with index {ifIndex}");
        return Describe([link])[0];
    }

    private static List<XdpInterfaceStatus> Describe(IReadOnlyList<LinkMessage> interfaces)
    {
        // Which (ifindex, program) pairs a bpf_link holds: only worth the walk over all links when something is attached.
        var owners = interfaces.Any(l => l.Xdp.Attached != XdpAttachmentInfo.None) ? LinkCalls.XdpLinkOwners() : [];
        var result = new List<XdpInterfaceStatus>(interfaces.Count);
        foreach (var link in interfaces)
        {
            var programs = new List<XdpProgramStatus>();
            Add(link.Xdp.DriverProgramId, XdpAttachMode.Native);
            Add(link.Xdp.SkbProgramId, XdpAttachMode.Skb);
            Add(link.Xdp.HardwareProgramId, XdpAttachMode.Hardware);
            result.Add(new XdpInterfaceStatus(link.Index, link.Name, programs));

            void Add(uint programId, XdpAttachMode mode)
            {
                if (programId == 0)
                    return;
                var (name, tag) = LinkCalls.TryProgramNameAndTag(programId);
                uint? linkId = owners.TryGetValue((link.Index, programId), out var id) ? id : null;
                programs.Add(new XdpProgramStatus(mode, programId, name, tag,
                    linkId is null ? XdpAttachMechanism.Netlink : XdpAttachMechanism.Link, linkId));
            }
        }
        return result;
    }
}
