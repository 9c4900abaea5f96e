namespace SharpBpf.Linux.Netlink;

/// <summary>
/// The kernel refused a netlink request. Carries the errno and, where the kernel gave one (extended ack,
/// NLMSGERR_ATTR_MSG), its own sentence, e.g. "native and generic XDP can't be active at the same time".
/// </summary>
public sealed class NetlinkException : BpfException
{
    public NetlinkException(string operation, int errno, string? kernelMessage)
        : base(Format(operation, errno, kernelMessage))
    {
        Operation = operation;
        Errno = errno;
        KernelMessage = kernelMessage;
    }

    /// <summary>What was asked, e.g. "RTM_SETLINK IFLA_XDP on ifindex 3".</summary>
    public string Operation { get; }

    /// <summary>The positive errno the kernel answered with.</summary>
    public int Errno { get; }

    /// <summary>The kernel's extended-ack message, or null when it sent none.</summary>
    public string? KernelMessage { get; }

    private static string Format(string operation, int errno, string? kernelMessage)
    {
        var text = $"{operation}: {SharpBpf.Errno.Name(errno)} ({SharpBpf.Errno.Describe(errno)})";
        return kernelMessage is { Length: > 0 } ? $"{text}: {kernelMessage}" : text;
    }
}
