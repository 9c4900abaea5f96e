using System.Runtime.InteropServices;
using SharpBpf.Linux.Interop;

namespace SharpBpf.Linux;

/// <summary>
/// Owns one file descriptor referring to a kernel BPF object (map, program, link, BTF). Closing it drops this
/// process's reference; the object lives on while something else holds it (a pin, an attachment, another fd).
/// </summary>
public sealed class BpfFd : SafeHandle
{
    private readonly IBpfSyscalls _syscalls;

    internal BpfFd(int fd, IBpfSyscalls syscalls) : base(-1, ownsHandle: true)
    {
        _syscalls = syscalls;
        SetHandle(fd);
    }

    public override bool IsInvalid => (long)handle < 0;

    /// <summary>The descriptor number, for diagnostics and for passing to other processes. Do not close it.</summary>
    public int Value => (int)handle;

    internal IBpfSyscalls Syscalls => _syscalls;

    protected override bool ReleaseHandle() => _syscalls.Close((int)handle) == 0;

    /// <summary>Keeps the fd from being closed while a syscall uses its number.</summary>
    internal Lease Use() => new(this);

    public override string ToString() => IsClosed ? "fd (closed)" : $"fd {Value}";

    internal ref struct Lease
    {
        private readonly BpfFd _owner;
        private bool _added;

        public Lease(BpfFd owner)
        {
            _owner = owner;
            _added = false;
            owner.DangerousAddRef(ref _added);
            Fd = (uint)owner.Value;
        }

        public uint Fd { get; }

        public void Dispose()
        {
            if (_added)
            {
                _owner.DangerousRelease();
                _added = false;
            }
        }
    }
}
