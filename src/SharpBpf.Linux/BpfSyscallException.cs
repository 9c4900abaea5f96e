namespace SharpBpf.Linux;

/// <summary>
/// The kernel refused a bpf(2) command. The message names the command and the errno
/// ("BPF_MAP_CREATE: EPERM (operation not permitted)"); callers add context in front of it with
/// <see cref="WithContext"/> ("load program 'xdp_filter': map 'stats': BPF_MAP_CREATE: EPERM ...").
/// </summary>
public class BpfSyscallException : BpfException
{
    public BpfSyscallException(string command, int errno)
        : base($"{command}: {Errno.Name(errno)} ({Errno.Describe(errno)})")
    {
        Command = command;
        ErrorNumber = errno;
    }

    protected BpfSyscallException(string message, string command, int errno, Exception? innerException)
        : base(message, innerException)
    {
        Command = command;
        ErrorNumber = errno;
    }

    /// <summary>The bpf(2) command, in the kernel's spelling (BPF_PROG_LOAD...).</summary>
    public string Command { get; }

    /// <summary>The errno the kernel returned.</summary>
    public int ErrorNumber { get; }

    /// <summary>A copy with "context: " in front of the message, keeping command and errno; this one becomes the inner exception.</summary>
    public virtual BpfSyscallException WithContext(string context) =>
        new($"{context}: {Message}", Command, ErrorNumber, this);
}
