namespace SharpBpf.Linux.Interop;

/// <summary>
/// The one point through which SharpBpf calls the kernel for bpf(2) and file descriptors. The real implementation
/// is <see cref="LinuxSyscalls"/>; tests may substitute a fake. Results are never thrown here: each call returns a
/// non-negative result or a negated errno, and <see cref="Bpf"/> turns failures into exceptions.
/// </summary>
internal unsafe interface IBpfSyscalls
{
    /// <summary>bpf(cmd, attr, size): the result (often a new fd) or -errno.</summary>
    int Bpf(BpfCommand command, void* attr, uint size);

    /// <summary>close(fd): 0 or -errno.</summary>
    int Close(int fd);
}

/// <summary>The real syscalls, through libc's syscall(2) wrapper (no libbpf).</summary>
internal sealed unsafe class LinuxSyscalls : IBpfSyscalls
{
    public static LinuxSyscalls Instance { get; } = new();

    public int Bpf(BpfCommand command, void* attr, uint size)
    {
        long result = LibC.syscall(LibC.NR_bpf, (long)command, attr, size);
        return result < 0 ? -LibC.LastErrno() : checked((int)result);
    }

    public int Close(int fd) => LibC.close(fd) < 0 ? -LibC.LastErrno() : 0;
}
