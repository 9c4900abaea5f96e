namespace SharpBpf.Linux.Links;

/// <summary>
/// Turns the kernel's errno for an XDP attach or detach into what the user did wrong and what to do instead.
/// The kernel's own errno and message stay in the inner exception.
/// </summary>
internal static class XdpErrors
{
    /// <summary>What was being done when the kernel refused, and what the hook held just before.</summary>
    internal sealed record Context(string Operation, string InterfaceName, string? Kind, XdpAttachMode Mode, XdpInterfaceStatus? Before, bool Replace, bool UpdateIfNoExist, bool ByNetlink);

    public static BpfException Translate(int errno, string? kernelMessage, Context context, Exception inner)
    {
        var iface = context.InterfaceName;
        var programs = context.Before?.Programs ?? [];
        var linkOwner = programs.FirstOrDefault(p => p.AttachedBy == XdpAttachMechanism.Link
            && (context.Mode == XdpAttachMode.Auto || p.Mode == context.Mode));
        var sameMode = programs.FirstOrDefault(p => context.Mode == XdpAttachMode.Auto || p.Mode == context.Mode);
        var message = errno switch
        {
            Errno.EPERM or Errno.EACCES =>
                $"{context.Operation} needs root (CAP_NET_ADMIN and CAP_BPF)",
            Errno.ENODEV =>
                $"no interface named '{iface}'",
            Errno.EEXIST when IsModeMix(kernelMessage, programs, context.Mode) =>
                $"native and generic XDP cannot be attached at the same time: {iface} has {Describe(programs)}; " +
                $"detach it first (sharpbpf xdp detach {iface}) or attach in the same mode",
            Errno.EEXIST when context.Replace =>
                $"the program attached to {iface} is not the expected one (attached: {Describe(programs)}); nothing was replaced",
            Errno.EBUSY when linkOwner is not null =>
                $"a bpf_link owns this hook (link id {linkOwner.LinkId}): detach it with `sharpbpf xdp detach {iface}` or remove its pin",
            Errno.EBUSY when context.UpdateIfNoExist =>
                $"a program is already attached to {iface} ({Describe(programs)}); use --replace to replace it",
            Errno.EBUSY when sameMode is not null && sameMode.AttachedBy == XdpAttachMechanism.Netlink =>
                $"a program is already attached to {iface} by netlink ({Describe(programs)}): a bpf_link cannot take " +
                $"the hook from it; attach with --replace (or --netlink), or detach it first",
            Errno.EBUSY =>
                $"the XDP hook of {iface} is busy ({Describe(programs)})",
            _ when context.Mode == XdpAttachMode.Hardware && errno is Errno.EINVAL or Errno.EOPNOTSUPP or Errno.ENOTSUPP =>
                $"hardware offload (hw mode) is not supported by the {context.Kind ?? "device's"} driver of {iface}; use --mode native or skb",
            _ when context.Mode == XdpAttachMode.Native && errno is Errno.EOPNOTSUPP or Errno.ENOTSUPP or Errno.EINVAL
                    && kernelMessage?.Contains("native", StringComparison.OrdinalIgnoreCase) == true =>
                $"the {context.Kind ?? "device's"} driver of {iface} has no native XDP; use --mode skb",
            _ => null,
        };
        var detail = kernelMessage is { Length: > 0 } ? $" (kernel: {Errno.Name(errno)}, \"{kernelMessage}\")" : $" (kernel: {Errno.Name(errno)})";
        return message is null
            ? new BpfException($"{context.Operation} on {iface}: {inner.Message}", inner)
            : new BpfException(message + detail, inner);
    }

    private static bool IsModeMix(string? kernelMessage, IReadOnlyList<XdpProgramStatus> programs, XdpAttachMode mode)
    {
        if (kernelMessage?.Contains("at the same time", StringComparison.OrdinalIgnoreCase) == true)
            return true;
        return mode switch
        {
            XdpAttachMode.Native => programs.Any(p => p.Mode == XdpAttachMode.Skb),
            XdpAttachMode.Skb => programs.Any(p => p.Mode == XdpAttachMode.Native),
            _ => false,
        };
    }

    internal static string Describe(IReadOnlyList<XdpProgramStatus> programs) => programs.Count == 0
        ? "no program"
        : string.Join(", ", programs.Select(p =>
            $"program {p.ProgramId}{(p.Name is { Length: > 0 } n ? $" '{n}'" : "")} in {XdpModeNames.Describe(p.Mode)} mode" +
            (p.AttachedBy == XdpAttachMechanism.Link ? $" by bpf_link {p.LinkId}" : " by netlink")));
}
